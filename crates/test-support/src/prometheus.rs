//! A real Prometheus (Debian's 2.42, installed by `.ci/deps.sh --test`) scraping a
//! simulator with the shipped configuration and rules (`deploy/prometheus`), at test speed.

use std::path::{Path, PathBuf};

use crate::cluster::TOKEN;
use crate::servers::{free_port, tool, KillOnDrop};

/// The shipped Prometheus and Alertmanager files.
pub fn deploy() -> PathBuf {
    crate::workspace_root().join("deploy/prometheus")
}

/// One instant query; the result vector (empty when nothing matched or it failed).
pub async fn query(base: &str, promql: &str) -> Vec<serde_json::Value> {
    let url = reqwest::Url::parse_with_params(&format!("{base}/api/v1/query"), [("query", promql)])
        .unwrap();
    let Ok(response) = reqwest::Client::new().get(url).send().await else {
        return Vec::new();
    };
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// A sample's value, NaN when it has none.
pub fn value(sample: &serde_json::Value) -> f64 {
    sample["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Prometheus scraping the simulator `s` every second with the shipped rules, its files
/// and data in `dir`; its base URL and the guard that stops it.
pub async fn prometheus_on(s: &firebreak_sim::RunningSim, dir: &Path) -> (String, KillOnDrop) {
    prometheus_alerting(s, dir, 9093).await
}

/// [`prometheus_on`], sending its alerts to the Alertmanager on `am_port`.
pub async fn prometheus_alerting(
    s: &firebreak_sim::RunningSim,
    dir: &Path,
    am_port: u16,
) -> (String, KillOnDrop) {
    std::fs::write(dir.join("sim-token"), TOKEN).unwrap();
    std::fs::copy(deploy().join("rules.yml"), dir.join("rules.yml")).unwrap();
    let config = std::fs::read_to_string(deploy().join("prometheus.yml"))
        .unwrap()
        .replace("127.0.0.1:7700", &s.addr.to_string())
        .replace("scrape_interval: 5s", "scrape_interval: 1s")
        .replace("evaluation_interval: 5s", "evaluation_interval: 1s")
        .replace("127.0.0.1:9093", &format!("127.0.0.1:{am_port}"));
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    start(dir)
}

/// A Prometheus scraping each simulator of `targets` every second under its own job name
/// (no rules), its files and data in `dir`; its base URL and the guard that stops it.
pub async fn prometheus_scraping(
    targets: &[(&str, &firebreak_sim::RunningSim)],
    dir: &Path,
) -> (String, KillOnDrop) {
    std::fs::write(dir.join("sim-token"), TOKEN).unwrap();
    let mut config = String::from("global:\n  scrape_interval: 1s\nscrape_configs:\n");
    for (job, s) in targets {
        config.push_str(&format!(
            "  - job_name: {job}\n    authorization:\n      type: Bearer\n      credentials_file: sim-token\n    static_configs:\n      - targets: [\"{}\"]\n",
            s.addr
        ));
    }
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    start(dir)
}

/// Prometheus on `dir`'s prometheus.yml, its data beside it, on a free port.
fn start(dir: &Path) -> (String, KillOnDrop) {
    let port = free_port();
    let child = tool("prometheus")
        .current_dir(dir)
        .arg("--config.file=prometheus.yml")
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    (format!("http://127.0.0.1:{port}"), KillOnDrop(child))
}

/// A Prometheus scraping every second the targets listed in `dir`'s targets.json (file
/// service discovery: [`set_targets`] changes them while it runs); its base URL and guard.
pub async fn prometheus_file_sd(dir: &Path) -> (String, KillOnDrop) {
    std::fs::write(dir.join("sim-token"), TOKEN).unwrap();
    set_targets(dir, &[]);
    std::fs::write(
        dir.join("prometheus.yml"),
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: fleet\n    authorization:\n      type: Bearer\n      credentials_file: sim-token\n    file_sd_configs:\n      - files: [targets.json]\n        refresh_interval: 1s\n",
    )
    .unwrap();
    start(dir)
}

/// The simulators `dir`'s Prometheus (of [`prometheus_file_sd`]) scrapes from now on.
pub fn set_targets(dir: &Path, sims: &[&firebreak_sim::RunningSim]) {
    let targets: Vec<String> = sims.iter().map(|s| s.addr.to_string()).collect();
    let text = serde_json::json!([{ "targets": targets }]).to_string();
    // Written whole, then renamed: Prometheus never reads half a file.
    std::fs::write(dir.join("targets.json.new"), text).unwrap();
    std::fs::rename(dir.join("targets.json.new"), dir.join("targets.json")).unwrap();
}

/// A Prometheus scraping each simulator of `targets` every second under its own job,
/// prefixing the value of the label that names its services (and of DCGM's `pod`) with
/// the job's name, as fleets on different stacks serve differently named models: `(job,
/// simulator, service label)`. Its base URL and the guard that stops it.
pub async fn prometheus_stacks(
    targets: &[(&str, &firebreak_sim::RunningSim, &str)],
    dir: &Path,
) -> (String, KillOnDrop) {
    std::fs::write(dir.join("sim-token"), TOKEN).unwrap();
    let mut config = String::from("global:\n  scrape_interval: 1s\nscrape_configs:\n");
    for (job, s, label) in targets {
        config.push_str(&format!(
            "  - job_name: {job}\n    authorization:\n      type: Bearer\n      credentials_file: sim-token\n    static_configs:\n      - targets: [\"{}\"]\n    metric_relabel_configs:\n",
            s.addr
        ));
        for l in [*label, "pod"] {
            config.push_str(&format!(
                "      - source_labels: [{l}]\n        regex: (.+)\n        target_label: {l}\n        replacement: {job}-$1\n"
            ));
        }
    }
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    start(dir)
}
