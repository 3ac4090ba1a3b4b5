//! `firebreak gateway init`: a first configuration from what is there. It asks Prometheus
//! which serving stacks' metrics exist and with which labels (and which services they
//! name, in which regions), whether DCGM exports GPU use per pod, and whether vLLM still
//! uses its older metric names; with a kubeconfig and namespaces, which Deployments carry
//! the discovery label and which run a serving stack's image without it. It writes a
//! commented configuration that discovers those services: every choice says why, and what
//! it could not decide is marked `QUESTION`. The file is accepted by `--check` as written.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::presets::Stack;

/// What `init` inspects, and where it writes.
#[derive(Debug, Clone, clap::Args)]
pub struct InitArgs {
    /// The Prometheus that scrapes the serving fleet.
    #[arg(long, value_name = "URL")]
    pub prometheus: String,
    /// A kubeconfig for the cluster's API (in the cluster: leave it out and say
    /// --in-cluster).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Use the pod's service account (the gateway runs in the cluster).
    #[arg(long, conflicts_with = "kubeconfig")]
    pub in_cluster: bool,
    /// The kubeconfig's context (default: its current one).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// The namespaces the serving workloads run in (repeat it); Kubernetes is inspected
    /// only in these, as the gateway's Role grants.
    #[arg(long = "namespace", value_name = "NAME")]
    pub namespaces: Vec<String>,
    /// The cluster's name as consoles record it.
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,
    /// Where to write the configuration (default: standard output).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Label names that carry a region, in the order they are preferred.
const REGION_LABELS: &[&str] = &[
    "region",
    "topology_kubernetes_io_region",
    "cluster_region",
    "zone",
    "cluster",
    "namespace",
];
/// Label names that may carry a service, when the stack's own is missing.
const SERVICE_LABELS: &[&str] = &[
    "model_name",
    "model",
    "service",
    "service_name",
    "app",
    "job",
];
/// Images that tell a Deployment's serving stack.
const IMAGES: &[(&str, Stack)] = &[
    ("vllm", Stack::Vllm),
    ("tritonserver", Stack::Triton),
    ("text-generation-inference", Stack::Tgi),
    ("sglang", Stack::Sglang),
    ("kserve", Stack::Kserve),
];

/// One stack whose metrics Prometheus has.
#[derive(Debug, Clone, PartialEq)]
pub struct StackFound {
    pub stack: Stack,
    pub service_label: String,
    pub region_label: String,
    /// The labels its presence metric carries.
    pub labels: Vec<String>,
    /// Services found: name → regions.
    pub services: BTreeMap<String, BTreeSet<String>>,
    pub why: Vec<String>,
    pub questions: Vec<String>,
}

/// What `init` found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Found {
    pub stacks: Vec<StackFound>,
    /// Whether DCGM exports GPU use with the pod that uses the GPU.
    pub dcgm: Option<String>,
    /// Deployments labelled for discovery, and the regions they name.
    pub labelled: Vec<String>,
    pub regions: BTreeSet<String>,
    /// What it found in Kubernetes that needs a person.
    pub kube_questions: Vec<String>,
    /// Routes in the namespaces that split traffic, in words (for failover).
    pub routes: Vec<String>,
    /// The node label that names pools, and each pool with its nodes and GPUs.
    pub pools: Option<(String, Vec<String>)>,
    pub notes: Vec<String>,
}

/// A Prometheus API answer's `data`.
async fn api(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    query: &[(&str, &str)],
) -> Result<serde_json::Value> {
    let url =
        reqwest::Url::parse_with_params(&format!("{}{path}", base.trim_end_matches('/')), query)
            .with_context(|| format!("{base} is not a URL"))?;
    let answer: serde_json::Value = http
        .get(url)
        .send()
        .await
        .with_context(|| format!("Prometheus at {base} did not answer"))?
        .error_for_status()
        .with_context(|| format!("Prometheus at {base} refused"))?
        .json()
        .await
        .with_context(|| format!("{base} did not answer as Prometheus does"))?;
    anyhow::ensure!(
        answer["status"] == "success",
        "Prometheus refused: {}",
        answer["error"]
    );
    Ok(answer["data"].clone())
}

/// The label names of the series of `metric`.
async fn labels_of(http: &reqwest::Client, base: &str, metric: &str) -> Result<Vec<String>> {
    let data = api(http, base, "/api/v1/labels", &[("match[]", metric)]).await?;
    Ok(data
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|l| l.as_str())
                .filter(|l| *l != "__name__")
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default())
}

/// Inspects Prometheus (and Kubernetes, when asked).
pub async fn inspect(args: &InitArgs) -> Result<Found> {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let base = args.prometheus.as_str();
    let mut found = Found::default();
    for stack in Stack::ALL {
        let labels = labels_of(&http, base, stack.presence()).await?;
        if labels.is_empty() {
            continue;
        }
        let mut why = Vec::new();
        let mut questions = Vec::new();
        let service_label = if labels.iter().any(|l| l == stack.service_label()) {
            why.push(format!(
                "service from {}, the stack's own label",
                stack.service_label()
            ));
            stack.service_label().to_owned()
        } else if let Some(l) = SERVICE_LABELS
            .iter()
            .find(|l| labels.iter().any(|x| x == *l))
        {
            questions.push(format!(
                "{} has no {} label: services are named by {l}; is that right?",
                stack.presence(),
                stack.service_label()
            ));
            (*l).to_owned()
        } else {
            questions.push(format!(
                "{} has none of the labels that name a service ({}); name it with a relabeling rule",
                stack.presence(),
                SERVICE_LABELS.join(", ")
            ));
            stack.service_label().to_owned()
        };
        let region_label = match REGION_LABELS
            .iter()
            .find(|l| labels.iter().any(|x| x == *l))
        {
            Some(&"region") => {
                why.push("region from region".into());
                "region".to_owned()
            }
            Some(l) => {
                questions.push(format!(
                    "no region label on {}: regions are read from {l}; is each of its values a region?",
                    stack.presence()
                ));
                (*l).to_owned()
            }
            None => {
                questions.push(format!(
                    "no label on {} says a region ({}): add one in the scrape configuration",
                    stack.presence(),
                    REGION_LABELS.join(", ")
                ));
                "region".to_owned()
            }
        };
        let query = format!(
            "count by ({service_label}, {region_label}) ({})",
            stack.presence()
        );
        let data = api(&http, base, "/api/v1/query", &[("query", &query)]).await?;
        let mut services: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for series in data["result"].as_array().into_iter().flatten() {
            let labels = crate::prometheus::strings(&series["metric"]);
            if let (Some(s), Some(r)) = (labels.get(&service_label), labels.get(&region_label)) {
                services.entry(s.clone()).or_default().insert(r.clone());
            }
        }
        found.stacks.push(StackFound {
            stack,
            service_label,
            region_label,
            labels,
            services,
            why,
            questions,
        });
    }
    if found.stacks.iter().any(|s| s.stack == Stack::Vllm)
        && !labels_of(&http, base, "vllm:gpu_cache_usage_perc")
            .await?
            .is_empty()
    {
        found.notes.push(
            "vLLM before 0.10 is running (vllm:gpu_cache_usage_perc): the preset reads the older name where the new one gives nothing"
                .into(),
        );
    }
    let dcgm = labels_of(&http, base, "DCGM_FI_DEV_GPU_UTIL").await?;
    found.dcgm = if dcgm.iter().any(|l| l == "pod") {
        Some("DCGM_FI_DEV_GPU_UTIL found with the pod using each GPU".into())
    } else if dcgm.is_empty() {
        None
    } else {
        found.notes.push(
            "DCGM_FI_DEV_GPU_UTIL has no pod label (run dcgm-exporter with its Kubernetes mapping): GPU use is left out"
                .into(),
        );
        None
    };
    if args.kubeconfig.is_some() || args.in_cluster {
        inspect_kubernetes(args, &mut found).await?;
    }
    Ok(found)
}

/// The namespaces' Deployments: labelled for discovery, or running a stack unlabelled.
async fn inspect_kubernetes(args: &InitArgs, found: &mut Found) -> Result<()> {
    use k8s_openapi::api::apps::v1::Deployment;
    use kube::api::{Api, ListParams};
    if args.namespaces.is_empty() {
        found.kube_questions.push(
            "which namespaces do the serving workloads run in? (say --namespace; the gateway reads only those)"
                .into(),
        );
        return Ok(());
    }
    let client = crate::kubernetes::watch::client(&kubernetes(args)).await?;
    inspect_nodes(&client, found).await;
    for ns in &args.namespaces {
        inspect_routes(&client, ns, found).await;
        let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
        let list = api
            .list(&ListParams::default())
            .await
            .with_context(|| format!("listing Deployments in {ns}"))?;
        for d in list.items {
            let name = d.metadata.name.clone().unwrap_or_default();
            let labels = d.metadata.labels.clone().unwrap_or_default();
            let annotations = d.metadata.annotations.clone().unwrap_or_default();
            if let Some(service) = labels.get("firebreak.dev/service") {
                found
                    .labelled
                    .push(format!("{ns}/{name} is the service {service}"));
                if let Some(regions) = annotations.get("firebreak.dev/regions") {
                    found.regions.extend(
                        regions
                            .split(',')
                            .map(|r| r.trim().to_owned())
                            .filter(|r| !r.is_empty()),
                    );
                }
                continue;
            }
            let images: Vec<String> = d
                .spec
                .as_ref()
                .and_then(|s| s.template.spec.as_ref())
                .map(|p| {
                    p.containers
                        .iter()
                        .filter_map(|c| c.image.clone())
                        .collect()
                })
                .unwrap_or_default();
            if let Some((_, stack)) = IMAGES
                .iter()
                .find(|(needle, _)| images.iter().any(|i| i.contains(needle)))
            {
                found.kube_questions.push(format!(
                    "{ns}/{name} runs {} ({}) but is not labelled for discovery: \
                     kubectl -n {ns} label deployment {name} firebreak.dev/service={name} firebreak.dev/stack={}",
                    stack.title(),
                    images.join(", "),
                    stack.as_str()
                ));
            }
        }
    }
    Ok(())
}

/// Labels that name a node's pool, in the order they are preferred.
const POOL_LABELS: &[&str] = &[
    "firebreak.dev/pool",
    "cloud.google.com/gke-nodepool",
    "eks.amazonaws.com/nodegroup",
    "karpenter.sh/nodepool",
    "kubernetes.azure.com/agentpool",
    "node.kubernetes.io/instance-type",
];

/// The nodes' pools: the first pool label the nodes carry, each pool's nodes and GPUs.
async fn inspect_nodes(client: &kube::Client, found: &mut Found) {
    use k8s_openapi::api::core::v1::Node;
    use kube::api::{Api, ListParams};
    let nodes = match Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
    {
        Ok(list) => list.items,
        Err(e) => {
            found
                .kube_questions
                .push(format!("cannot list nodes to find their pools: {e}"));
            return;
        }
    };
    let Some(label) = POOL_LABELS.iter().find(|l| {
        nodes.iter().any(|n| {
            n.metadata
                .labels
                .as_ref()
                .is_some_and(|ls| ls.contains_key(**l))
        })
    }) else {
        if !nodes.is_empty() {
            found.kube_questions.push(format!(
                "no node carries a pool label ({}): label the GPU nodes firebreak.dev/pool=<pool>",
                POOL_LABELS.join(", ")
            ));
        }
        return;
    };
    let mut pools: BTreeMap<String, (usize, i64)> = BTreeMap::new();
    for n in &nodes {
        let Some(pool) = n.metadata.labels.as_ref().and_then(|ls| ls.get(*label)) else {
            continue;
        };
        let gpus = n
            .status
            .as_ref()
            .and_then(|s| s.capacity.as_ref())
            .and_then(|c| c.get("nvidia.com/gpu"))
            .and_then(|q| q.0.parse::<i64>().ok())
            .unwrap_or(0);
        let entry = pools.entry(pool.clone()).or_default();
        entry.0 += 1;
        entry.1 += gpus;
    }
    found.pools = Some((
        (*label).to_owned(),
        pools
            .into_iter()
            .map(|(pool, (nodes, gpus))| {
                let s = |n: i64| if n == 1 { "" } else { "s" };
                format!(
                    "{pool} ({nodes} node{}, {gpus} GPU{})",
                    s(nodes as i64),
                    s(gpus)
                )
            })
            .collect(),
    ));
}

/// The namespace's HTTPRoutes and Istio VirtualServices, each with where it sends traffic.
async fn inspect_routes(client: &kube::Client, ns: &str, found: &mut Found) {
    use crate::kubernetes::act::dynamic;
    use kube::api::ListParams;
    for kind in ["HTTPRoute", "VirtualService"] {
        let (api, rules, refs) = if kind == "HTTPRoute" {
            (
                dynamic(client, ns, "gateway.networking.k8s.io", "v1", kind),
                "rules",
                "backendRefs",
            )
        } else {
            (
                dynamic(client, ns, "networking.istio.io", "v1beta1", kind),
                "http",
                "route",
            )
        };
        // A kind whose CRD is not installed, or not granted, is simply not there.
        let Ok(list) = api.list(&ListParams::default()).await else {
            continue;
        };
        for route in list.items {
            let name = route.metadata.name.clone().unwrap_or_default();
            let mut to = Vec::new();
            for rule in route.data["spec"][rules].as_array().into_iter().flatten() {
                for r in rule[refs].as_array().into_iter().flatten() {
                    let target = r["name"]
                        .as_str()
                        .or_else(|| r["destination"]["host"].as_str());
                    if let Some(t) = target {
                        to.push(match r["weight"].as_i64() {
                            Some(w) => format!("{t} (weight {w})"),
                            None => t.to_owned(),
                        });
                    }
                }
            }
            if to.len() > 1 {
                found.routes.push(format!(
                    "{kind} {ns}/{name} splits traffic between {}: a service it serves fails over \
                     through it once listed with [services.kubernetes.route] (README, \"On Kubernetes\")",
                    to.join(", ")
                ));
            }
        }
    }
}

/// How `init` reaches the API: as the configuration it writes will (its defaults).
fn kubernetes(args: &InitArgs) -> crate::config::Kubernetes {
    crate::config::Kubernetes {
        kubeconfig: args.kubeconfig.clone(),
        context: args.context.clone(),
        region_label: "topology.kubernetes.io/region".into(),
        pool_label: "firebreak.dev/pool".into(),
        model_version: crate::config::ModelVersionSource::ImageTag(String::new()),
    }
}

/// A TOML basic string (JSON's escapes are TOML's: `\"`, `\\`, `\n`, `\uXXXX`).
fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// The configuration for what was found, commented.
pub fn write(args: &InitArgs, found: &Found) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(format!(
        "# Written by `firebreak gateway init` from {}{}.",
        args.prometheus,
        match (&args.kubeconfig, args.in_cluster) {
            (Some(k), _) => format!(" and the Kubernetes API of {}", k.display()),
            (None, true) => " and the Kubernetes API (in the cluster)".into(),
            _ => String::new(),
        }
    ));
    line(
        "# Each choice says why; what it could not decide is marked QUESTION. Review, then".into(),
    );
    line(
        "# `firebreak-gateway --check FILE` and run it (README, \"Connect a real cluster\")."
            .into(),
    );
    line(String::new());
    match &args.cluster {
        Some(c) => line(format!("cluster = {}", toml_str(c))),
        None => line(format!(
            "cluster = {}   # QUESTION: the name consoles record this cluster under",
            toml_str(args.context.as_deref().unwrap_or("cluster"))
        )),
    }
    line("listen = \"127.0.0.1:7443\"   # loopback; to listen on the network add [tls] with cert and key".into());
    line(String::new());
    line("[[tokens]]                     # one per person or team; the name is the actor of what they do".into());
    line("name = \"oncall\"".into());
    line("file = \"/etc/firebreak/tokens/oncall\"   # QUESTION: write a long random token into this file".into());
    line(String::new());
    line("[prometheus]".into());
    line(format!("url = {}", toml_str(&args.prometheus)));
    line("interval_s = 5".into());
    let kube = args.kubeconfig.is_some() || args.in_cluster;
    if kube {
        line(String::new());
        line("[kubernetes]".into());
        if let Some(k) = &args.kubeconfig {
            line(format!(
                "kubeconfig = {}",
                toml_str(&k.display().to_string())
            ));
        }
        if let Some(c) = &args.context {
            line(format!("context = {}", toml_str(c)));
        }
        if let Some((label, pools)) = &found.pools {
            line(format!(
                "pool_label = {}   # the nodes' pools: {}",
                toml_str(label),
                pools.join(", ")
            ));
        }
        for r in &found.routes {
            line(format!("# {r}"));
        }
    }
    let by_kube = kube && !args.namespaces.is_empty();
    if by_kube || !found.stacks.is_empty() {
        line(String::new());
        line("[discovery]".into());
        line("interval_s = 60".into());
    }
    if by_kube {
        line(String::new());
        for l in &found.labelled {
            line(format!("# {l}"));
        }
        for q in &found.kube_questions {
            line(format!("# QUESTION: {q}"));
        }
        line(
            "[discovery.kubernetes]          # workloads labelled firebreak.dev/service=<name>"
                .into(),
        );
        let namespaces: Vec<String> = args.namespaces.iter().map(|n| toml_str(n)).collect();
        line(format!("namespaces = [{}]", namespaces.join(", ")));
        let regions: BTreeSet<String> = found
            .regions
            .iter()
            .cloned()
            .chain(
                found
                    .stacks
                    .iter()
                    .flat_map(|s| s.services.values().flatten().cloned()),
            )
            .collect();
        match regions.iter().next() {
            Some(r) if regions.len() == 1 => line(format!(
                "regions = [{}]   # the one region the metrics show; a workload's firebreak.dev/regions annotation wins",
                toml_str(r)
            )),
            _ => line(
                "# QUESTION: regions = [\"…\"] for workloads whose firebreak.dev/regions annotation names none"
                    .into(),
            ),
        }
    } else if kube {
        for q in &found.kube_questions {
            line(format!("# QUESTION: {q}"));
        }
    }
    if found.stacks.is_empty() {
        line(String::new());
        line(
            "# QUESTION: no serving stack's metrics were found in Prometheus (vllm, triton, tgi, sglang, kserve);"
                .into(),
        );
        line(
            "# list services under [[services]] with their own [services.queries] instead.".into(),
        );
    }
    for s in &found.stacks {
        line(String::new());
        line(format!(
            "# {}: {} found with labels {}; {}.",
            s.stack.title(),
            s.stack.presence(),
            s.labels.join(", "),
            s.why.join("; ")
        ));
        let services: Vec<String> = s
            .services
            .iter()
            .map(|(name, regions)| {
                format!(
                    "{name} ({})",
                    regions.iter().cloned().collect::<Vec<_>>().join(", ")
                )
            })
            .collect();
        line(format!(
            "# Services it names now: {}.",
            if services.is_empty() {
                "none".into()
            } else {
                services.join(", ")
            }
        ));
        for q in &s.questions {
            line(format!("# QUESTION: {q}"));
        }
        for n in found
            .notes
            .iter()
            .filter(|_| s.stack == Stack::Vllm)
            .filter(|n| n.starts_with("vLLM"))
        {
            line(format!("# {n}"));
        }
        line("[[discovery.prometheus]]".into());
        line(format!("stack = {}", toml_str(s.stack.as_str())));
        if s.service_label != s.stack.service_label() {
            line(format!("service_label = {}", toml_str(&s.service_label)));
        }
        line(format!("region_label = {}", toml_str(&s.region_label)));
        match &found.dcgm {
            Some(why) => line(format!("gpu = \"dcgm\"   # {why}")),
            None => line(
                "gpu = \"none\"   # no DCGM_FI_DEV_GPU_UTIL with a pod label: GPU use left out"
                    .into(),
            ),
        }
    }
    for n in found.notes.iter().filter(|n| !n.starts_with("vLLM")) {
        line(format!("# {n}"));
    }
    out
}

/// What `init` decided, one line each, for the person running it.
pub fn summary(found: &Found) -> Vec<String> {
    let mut out = Vec::new();
    for s in &found.stacks {
        for (name, regions) in &s.services {
            out.push(format!(
                "{name}: {} metrics found with labels {}; service from {}, region from {} ({})",
                s.stack.title(),
                s.labels.join(", "),
                s.service_label,
                s.region_label,
                regions.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        out.extend(s.questions.iter().map(|q| format!("QUESTION: {q}")));
    }
    out.extend(found.labelled.iter().cloned());
    out.extend(
        found
            .kube_questions
            .iter()
            .map(|q| format!("QUESTION: {q}")),
    );
    if let Some((label, pools)) = &found.pools {
        out.push(format!("node pools by {label}: {}", pools.join(", ")));
    }
    out.extend(found.routes.iter().cloned());
    out.extend(found.notes.iter().cloned());
    match &found.dcgm {
        Some(why) => out.push(format!("GPU use: {why}")),
        None => out.push("GPU use: left out (no DCGM_FI_DEV_GPU_UTIL with a pod label)".into()),
    }
    out
}

/// `firebreak gateway init`: inspects, writes, says what it decided.
pub async fn run(args: &InitArgs) -> Result<()> {
    let found = inspect(args).await?;
    let text = write(args, &found);
    // What it writes must be what --check accepts.
    crate::config::parse(std::path::Path::new("gateway.toml"), &text)
        .map_err(|e| anyhow::anyhow!("the configuration init wrote is not valid (a bug): {e}"))?;
    match &args.out {
        Some(path) => {
            std::fs::write(path, &text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("{}: written", path.display());
        }
        None => print!("{text}"),
    }
    for l in summary(&found) {
        eprintln!("{l}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> InitArgs {
        InitArgs {
            prometheus: "http://prometheus:9090".into(),
            kubeconfig: None,
            in_cluster: false,
            context: None,
            namespaces: Vec::new(),
            cluster: None,
            out: None,
        }
    }

    fn check(text: &str) -> crate::config::Config {
        crate::config::parse(std::path::Path::new("gateway.toml"), text)
            .unwrap_or_else(|e| panic!("--check refuses it: {e}\n{text}"))
    }

    /// An empty Prometheus: a configuration that still checks, asking what to do.
    #[test]
    fn nothing_found_still_checks_and_says_what_to_do() {
        let text = write(&args(), &Found::default());
        let config = check(&text);
        assert!(config.discovery.is_none());
        assert!(
            text.contains("QUESTION: no serving stack's metrics were found"),
            "{text}"
        );
        assert!(
            text.contains("cluster = \"cluster\"   # QUESTION"),
            "{text}"
        );
    }

    /// A region read from a namespace is a question; a service label the stack does not
    /// use is written out; a namespace with an unlabelled vLLM Deployment says how to
    /// label it, and a kubeconfig with namespaces discovers there.
    #[test]
    fn what_it_could_not_decide_is_marked_and_the_file_still_checks() {
        let mut services = BTreeMap::new();
        services.insert(
            "chat".to_owned(),
            BTreeSet::from(["serving-us-east".to_owned()]),
        );
        let found = Found {
            stacks: vec![StackFound {
                stack: Stack::Tgi,
                service_label: "app".into(),
                region_label: "namespace".into(),
                labels: vec!["app".into(), "namespace".into()],
                services,
                why: Vec::new(),
                questions: vec![
                    "no region label on tgi_queue_size: regions are read from namespace; is each of its values a region?".into(),
                ],
            }],
            kube_questions: vec!["serving/chat runs vLLM (vllm/vllm-openai:v0.9) but is not labelled for discovery: kubectl -n serving label deployment chat firebreak.dev/service=chat firebreak.dev/stack=vllm".into()],
            ..Found::default()
        };
        let mut a = args();
        a.kubeconfig = Some("/home/ana/.kube/config".into());
        a.namespaces = vec!["serving".into()];
        let text = write(&a, &found);
        let config = check(&text);
        let d = config.discovery.unwrap();
        assert_eq!(d.prometheus[0].service_label, "app");
        assert_eq!(d.prometheus[0].region_label, "namespace");
        assert_eq!(d.prometheus[0].gpu, crate::presets::GpuSource::None);
        assert_eq!(d.kubernetes.unwrap().regions, ["serving-us-east"]);
        assert!(
            text.contains("# QUESTION: no region label on tgi_queue_size"),
            "{text}"
        );
        assert!(
            text.contains("# QUESTION: serving/chat runs vLLM"),
            "{text}"
        );
    }
}
