//! The command line: one binary, a window by default, headless subcommands beside it.
//! Headless subcommands never touch the GUI stack: this crate does not depend on the
//! window. The program that has one (the `firebreak` app) passes it in as a [`Window`].

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use firebreak_store::paths::DataDir;
use firebreak_store::Store;

use crate::incident::IncidentChange;
use crate::team::TeamCommand;

pub mod act;
pub mod history;
pub mod incident;
pub mod report;
pub mod team;
pub mod watch;

#[derive(Debug, Parser)]
#[command(
    name = "firebreak",
    version,
    about = "Incident-command console for AI model-serving fleets",
    long_about = "Incident-command console for AI model-serving fleets.\n\n\
                  Without a subcommand, opens the console window."
)]
pub struct Cli {
    /// Where the database and logs live (default: the OS app-data dir).
    #[arg(long, global = true, env = "FIREBREAK_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// With the window: watch the built-in simulator running bad-model-rollout.
    #[arg(long)]
    pub demo: bool,

    /// Simulated seconds per real second for --demo (tests run it faster).
    #[arg(long, default_value_t = 1.0, hide = true)]
    pub demo_speed: f64,

    /// Another scenario for --demo, a name or a TOML file (tests use slowed-down variants).
    #[arg(long, hide = true, value_name = "SCENARIO")]
    pub demo_scenario: Option<String>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the built-in simulator of an AI model-serving fleet (events and action API).
    Sim(firebreak_sim::cli::SimArgs),
    /// Record clusters' events and open incidents without a window.
    Watch {
        /// A cluster to watch, as NAME=EVENTS_URL (repeatable).
        #[arg(
            long = "cluster",
            value_name = "NAME=EVENTS_URL",
            required_unless_present = "demo"
        )]
        clusters: Vec<String>,
        /// The action API's URL, when there is one cluster and it is not the events host.
        #[arg(long)]
        actions_url: Option<String>,
        /// Read the bearer token from this environment variable (never from the command line).
        #[arg(long, value_name = "VAR")]
        token_env: Option<String>,
        /// Trust this CA certificate file (PEM) besides the OS store, for the stream and
        /// the actions: a gateway behind a company's own certificate authority.
        #[arg(long, value_name = "FILE")]
        ca_file: Option<PathBuf>,
        /// Watch the built-in simulator running bad-model-rollout, as the demo does.
        #[arg(long, conflicts_with = "clusters")]
        demo: bool,
    },
    /// The gateway that speaks protocol v1 for a real cluster (the same as the
    /// `firebreak-gateway` binary, which servers install; kept here for one release).
    Gateway(firebreak_gateway::cli::GatewayArgs),
    /// The team server: incidents shared live between consoles, kept in PostgreSQL
    /// (TEAM.md). The same as the `firebreak-team-server` binary, kept here for one release.
    TeamServer(firebreak_team_server::cli::TeamServerArgs),
    /// Measure performance (figures for README, beside a baseline from the same run).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Act on an incident's service through the same desk as the window: preview,
    /// precondition, idempotency key, grace period, verification, audit record.
    #[command(
        long_about = "Act on an incident's service through the same desk as the window: \
preview, precondition, idempotency key, grace period, verification, audit record.\n\n\
  rollback   roll the deployment back (--to-revision N, else the revision before the rollout)\n\
  failover   move the service's traffic to its healthiest other region\n\
  pause      stop the rollout under way before its next wave\n\
  resume     let a paused rollout go on\n\
  abort      send the rollout's nodes back to the stable revision\n\
  promote    run the rollout's next wave now (--full: every remaining wave)\n\
  silence    silence an alert of the incident (--alert NAME [--region R] [--for 1h])\n\n\
Exit status: 0 when the service recovered (a silence: when it was created), 1 when the \
action failed or the service did not recover, 3 when the action succeeded but nothing the \
cluster gave (no metrics, no rollout state) could verify the outcome."
    )]
    Act {
        #[arg(value_enum)]
        kind: ActKind,
        /// The incident's number, as `firebreak incidents` shows it.
        #[arg(long)]
        incident: i64,
        /// Why: recorded on the timeline and in reports.
        #[arg(long)]
        reason: String,
        /// Confirm without asking (for scripts).
        #[arg(long)]
        yes: bool,
        /// The service's name, when the blast radius asks for it to be typed.
        #[arg(long, value_name = "SERVICE")]
        confirm_service: Option<String>,
        /// Read the cluster's token from this environment variable instead of the keychain.
        #[arg(long, value_name = "VAR")]
        token_env: Option<String>,
        /// rollback: the revision to roll back to (one of the deployment's history).
        #[arg(long, value_name = "N")]
        to_revision: Option<u32>,
        /// promote: every remaining wave, not only the next.
        #[arg(long)]
        full: bool,
        /// silence: the alert, by name, as the incident's timeline shows it.
        #[arg(long, value_name = "NAME")]
        alert: Option<String>,
        /// silence: the region, when the alert fired in several.
        #[arg(long, value_name = "REGION")]
        region: Option<String>,
        /// silence: for how long (30m, 1h, 2h30m, 2d; at most 7d).
        #[arg(long = "for", value_name = "DURATION", default_value = "1h", value_parser = parse_duration_s)]
        silence_for: u32,
        /// Print the action and its outcome as one JSON document on standard output (the
        /// preview and progress go to standard error).
        #[arg(long)]
        json: bool,
    },
    /// Change an incident without the window, through the same code (a team-shared
    /// incident's change is pushed to the team like the window's).
    Incident {
        /// The incident's number, as `firebreak incidents` shows it.
        id: i64,
        #[command(subcommand)]
        change: IncidentChange,
        /// Read the team token from this environment variable instead of the keychain.
        #[arg(long, value_name = "VAR", global = true)]
        token_env: Option<String>,
        /// Print the incident as JSON after the change.
        #[arg(long, global = true)]
        json: bool,
    },
    /// List recorded actions; --resume follows unfinished ones (after a crash) to the end.
    Actions {
        #[arg(long)]
        incident: Option<i64>,
        #[arg(long)]
        json: bool,
        /// Carry on actions left unfinished, with their stored idempotency keys.
        #[arg(long)]
        resume: bool,
        /// Read the clusters' token from this environment variable instead of the keychain.
        #[arg(long, value_name = "VAR")]
        token_env: Option<String>,
    },
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Work incidents with a team through a team server (TEAM.md), without the window.
    #[command(subcommand)]
    Team(TeamCommand),
    /// Demo data to try the console on.
    #[command(subcommand)]
    Demo(DemoCommand),
    /// The summit report of every incident opened in a period, or of chosen incidents:
    /// Markdown, HTML or JSON.
    Summit {
        /// First day (YYYY-MM-DD, UTC), included.
        #[arg(long, requires = "to", required_unless_present = "incidents")]
        from: Option<chrono::NaiveDate>,
        /// Last day (YYYY-MM-DD, UTC), included.
        #[arg(long, requires = "from")]
        to: Option<chrono::NaiveDate>,
        /// These incidents instead of a period (comma-separated ids).
        #[arg(long, value_delimiter = ',', conflicts_with_all = ["from", "to"])]
        incidents: Vec<i64>,
        /// Compare with this period (first day, YYYY-MM-DD) instead of the one of the
        /// same length before.
        #[arg(long, requires = "baseline_to")]
        baseline_from: Option<chrono::NaiveDate>,
        /// The baseline's last day, included.
        #[arg(long, requires = "baseline_from")]
        baseline_to: Option<chrono::NaiveDate>,
        #[arg(long, default_value = "md", value_parser = ["md", "html", "json"])]
        format: String,
        /// Write here (atomically) instead of to standard output.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Write one incident, with its raw events, timeline, actions, audit chain and report,
    /// to one bundle file (for a colleague or an archive).
    Export {
        incident: i64,
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: PathBuf,
    },
    /// Load a bundle into this store; refused when its audit chain does not verify.
    Import { file: PathBuf },
    /// Write an incident's report: Markdown, self-contained HTML or JSON.
    Report {
        /// The incident's number, as `firebreak incidents` shows it.
        incident: i64,
        #[arg(long, default_value = "md", value_parser = ["md", "html", "json"])]
        format: String,
        /// Write here (atomically) instead of to standard output.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Runbooks: check files, list what matches an incident.
    #[command(subcommand)]
    Runbooks(RunbooksCommand),
    /// List incidents, unresolved and most severe first.
    Incidents {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print one incident's timeline.
    Timeline {
        /// The incident's number, as `firebreak incidents` shows it.
        incident: i64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ActKind {
    Rollback,
    Failover,
    Pause,
    Resume,
    Abort,
    Promote,
    Silence,
}

impl ActKind {
    fn action(self) -> firebreak_protocol::actions::ActionKind {
        use firebreak_protocol::actions::ActionKind as K;
        match self {
            ActKind::Rollback => K::Rollback,
            ActKind::Failover => K::Failover,
            ActKind::Pause => K::PauseRollout,
            ActKind::Resume => K::ResumeRollout,
            ActKind::Abort => K::AbortRollout,
            ActKind::Promote => K::PromoteRollout,
            ActKind::Silence => K::Silence,
        }
    }
}

/// `30m`, `1h`, `2h30m`, `2d`: seconds, as long as a silence may last (a minute to 7 days).
fn parse_duration_s(text: &str) -> Result<u32, String> {
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("{text:?}: a duration is like 30m, 1h or 2h30m"))?;
        digits.clear();
        total += n * match c {
            'd' => 86_400,
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(format!("{text:?}: the units are d, h, m and s")),
        };
    }
    if !digits.is_empty() {
        return Err(format!("{text:?}: say the unit (30m, 1h)"));
    }
    if !firebreak_protocol::actions::SILENCE_DURATION_S
        .contains(&(total.min(u64::from(u32::MAX)) as u32))
    {
        return Err(format!("{text:?}: a silence lasts from 1m to 7d"));
    }
    Ok(total as u32)
}

#[derive(Debug, Subcommand)]
pub enum RunbooksCommand {
    /// Validate runbook files (for a team's own CI): every problem with its file and line,
    /// and a non-zero exit when there is any. Without paths: the built-in runbooks and the
    /// user's runbook folder.
    Check { paths: Vec<PathBuf> },
    /// The runbooks that are loaded, or those that match an incident, best first, with why.
    List {
        #[arg(long)]
        incident: Option<i64>,
    },
    /// Run a runbook against the simulator, headless: checks are answered, actions
    /// confirmed; exits non-zero unless the incident ended mitigated.
    Rehearse {
        /// A runbook id (built-in or in the runbook folder) or a path to a file.
        runbook: String,
        /// The simulator scenario to rehearse against (see `firebreak sim --list`).
        #[arg(long)]
        scenario: String,
        /// Simulated seconds per real second.
        #[arg(long, default_value_t = 10.0)]
        speed: f64,
    },
}

#[derive(Debug, Subcommand)]
pub enum DemoCommand {
    /// Record weeks of simulated incidents into the store (acknowledged, acted on and
    /// reviewed by a scripted responder who gets faster week by week), marked as demo
    /// data, to try the summit report on. The same seed and end day record the same history.
    History {
        /// How many weeks, ending the day before --until.
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=52))]
        weeks: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The day the history ends (YYYY-MM-DD, UTC; not included). Default: today.
        #[arg(long)]
        until: Option<chrono::NaiveDate>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain; exits non-zero naming the first record that does not match.
    Verify,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// The team server: records/s accepted, sync lag with 10 and 50 consoles, a console
    /// catching up (a scratch PostgreSQL of its own unless --database-url).
    Team {
        #[arg(long, value_name = "URL")]
        database_url: Option<String>,
        /// Records for the catch-up measurement.
        #[arg(long, default_value_t = 100_000)]
        catch_up: u64,
    },
    /// Events from the simulator into SQLite, beside a raw-insert baseline.
    Ingest {
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Target events per second from the simulator.
        #[arg(long, default_value_t = 150_000)]
        rate: u64,
    },
    /// A 200-entry timeline page on an incident with many entries, by key and by OFFSET.
    Timeline {
        /// Events (each with its timeline entry) on the incident.
        #[arg(long, default_value_t = 1_000_000)]
        entries: i64,
    },
    /// Exporting an incident with many timeline entries: the report in each format and
    /// the bundle, and reading its timeline by key beside the same pages by OFFSET.
    Export {
        /// Events (each with its timeline entry) on the incident.
        #[arg(long, default_value_t = 100_000)]
        entries: i64,
    },
    /// The window's memory after recording many events, beside an idle window (needs a
    /// display and an OS keychain).
    Memory {
        /// Events the window records before it is measured.
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Target events per second from the simulator.
        #[arg(long, default_value_t = 50_000)]
        rate: u64,
    },
    /// Cold start of the window: to its window mapped, and to the page's first paint of
    /// the console frame; with the binary's size (needs a display and xdotool).
    Startup {
        #[arg(long, default_value_t = 7)]
        runs: u32,
    },
    /// The window's frame times on the Fleet view during an event storm, beside the same
    /// window with the cluster quiet (needs a display and an OS keychain).
    Frames {
        /// Events per second the cluster sends during the storm.
        #[arg(long, default_value_t = 5_000)]
        rate: u64,
        /// Seconds each window measures.
        #[arg(long, default_value_t = 15)]
        seconds: u32,
        /// The cluster's fleet, as SERVICESxREGIONS (the demo's is 3x2; a real fleet's board
        /// is measured with 300x6).
        #[arg(long, default_value = "3x2", value_name = "SERVICESxREGIONS")]
        fleet: firebreak_sim::FleetShape,
    },
    /// Bad rollouts over a range of severities, and good ones: how many the canary
    /// verdict catches at wave 1 and by wave 2 and how soon, beside the SLO rule and the
    /// anomaly detector on the same runs, and how many good ones it fails.
    Detection {
        /// Seeded runs per severity.
        #[arg(long, default_value_t = 100)]
        runs: usize,
        /// Good rollouts.
        #[arg(long, default_value_t = 200)]
        good: usize,
        /// Also draw the share caught against severity into this SVG file.
        #[arg(long, value_name = "FILE")]
        plot: Option<PathBuf>,
    },
    /// The gateway discovering a large vLLM fleet through the real Prometheus (on PATH):
    /// time until every service has its first figures, and queries per minute, with a
    /// preset's services asked together beside one query per figure, region and service.
    Discovery {
        #[arg(long, default_value = "300x6", value_name = "SERVICESxREGIONS")]
        fleet: firebreak_sim::FleetShape,
        /// Seconds each gateway may take to reach every service.
        #[arg(long, default_value_t = 300)]
        limit: u64,
    },
    /// The gateway: fan-out of its journal to 1, 10 and 50 subscribers beside the journal
    /// read alone; Alertmanager notification to an event committed in a console.
    Gateway {
        /// Events in the journal every subscriber reads.
        #[arg(long, default_value_t = 100_000)]
        events: u64,
        /// Notifications sent, one at a time, for the latency figures.
        #[arg(long, default_value_t = 300)]
        samples: usize,
    },
    /// The simulator's synthetic event generator, alone and over a loopback WebSocket.
    Generator {
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Target events per second.
        #[arg(long, default_value_t = 400_000)]
        rate: u64,
    },
}

/// The console window, as the program that has one gives it to the command line.
pub struct Window {
    /// Runs first, before anything else in the process (WebKit reads its environment
    /// when it starts).
    pub prepare: fn(),
    /// Opens the console on `data_dir` (with the built-in demo when asked) and returns
    /// when it is closed.
    pub open: fn(DataDir, Option<Demo>) -> Result<()>,
}

/// `--demo`: the console on the built-in simulator.
#[derive(Debug, Clone)]
pub struct Demo {
    /// Simulated seconds per real second.
    pub speed: f64,
    /// Another scenario than bad-model-rollout (tests use slowed-down variants).
    pub scenario: Option<String>,
}

/// Parses the command line and runs it, opening `window` when no subcommand is given.
/// Errors end as one readable line and exit code 1.
pub fn main(window: &Window) -> ExitCode {
    (window.prepare)();
    firebreak_common::process::install_tls_provider();
    let cli = Cli::parse();
    match run(cli, window) {
        Ok(code) => code,
        Err(e) if e.is::<crate::act::Unverified>() => {
            eprintln!("firebreak: {e}");
            ExitCode::from(crate::act::EXIT_UNVERIFIED)
        }
        Err(e) => {
            eprintln!("firebreak: {}", firebreak_common::process::one_line(&e));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli, window: &Window) -> Result<ExitCode> {
    let data_dir = DataDir::resolve(cli.data_dir)?;
    let _log_guard = firebreak_common::logging::init(&data_dir.logs());
    match cli.command {
        None => open_window(
            window,
            data_dir,
            cli.demo
                .then(|| (cli.demo_speed, cli.demo_scenario.clone())),
        ),
        Some(command) => {
            let runtime =
                tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            runtime.block_on(headless(command, &data_dir))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn headless(command: Command, data_dir: &DataDir) -> Result<()> {
    let command = match command {
        // The servers' own commands, as their binaries run them.
        Command::Sim(args) => return firebreak_sim::cli::run(args).await,
        Command::Gateway(args) => return firebreak_gateway::cli::run(args, data_dir.root()).await,
        Command::TeamServer(args) => return firebreak_team_server::cli::run(args).await,
        Command::Bench(bench) => return run_bench(bench, data_dir).await,
        Command::Runbooks(RunbooksCommand::Check { paths }) => {
            return check_runbooks(data_dir, &paths).await
        }
        Command::Runbooks(RunbooksCommand::Rehearse {
            runbook,
            scenario,
            speed,
        }) => return rehearse(data_dir, &runbook, &scenario, speed).await,
        other => other,
    };
    let store = Store::open(&data_dir.database()).await?;
    let result = match command {
        Command::Incidents { json } => crate::report::print_incidents(&store, json).await,
        Command::Timeline { incident, json } => {
            crate::report::print_timeline(&store, incident, json).await
        }
        Command::Watch {
            clusters,
            actions_url,
            token_env,
            ca_file,
            demo,
        } => watch(&store, clusters, actions_url, token_env, ca_file, demo).await,
        Command::Act {
            kind,
            incident,
            reason,
            yes,
            confirm_service,
            token_env,
            to_revision,
            full,
            alert,
            region,
            silence_for,
            json,
        } => {
            crate::act::act(
                &store,
                crate::act::ActArgs {
                    kind: kind.action(),
                    incident,
                    reason,
                    yes,
                    confirm_service,
                    token_env,
                    to_revision,
                    full,
                    alert,
                    region,
                    silence_s: silence_for,
                    json,
                },
            )
            .await
        }
        Command::Incident {
            id,
            change,
            token_env,
            json,
        } => crate::incident::change(&store, id, change, token_env, json).await,
        Command::Actions {
            incident,
            json,
            resume,
            token_env,
        } => crate::act::actions(&store, incident, json, resume, token_env).await,
        Command::Audit(AuditCommand::Verify) => crate::act::audit_verify(&store).await,
        Command::Team(team) => crate::team::run(&store, team).await,
        Command::Demo(DemoCommand::History { weeks, seed, until }) => {
            demo_history(&store, weeks, seed, until).await
        }
        Command::Report {
            incident,
            format,
            output,
        } => write_report(&store, incident, &format, output).await,
        Command::Summit {
            from,
            to,
            incidents,
            baseline_from,
            baseline_to,
            format,
            output,
        } => {
            let baseline = baseline_from.zip(baseline_to);
            summit(&store, from.zip(to), incidents, baseline, &format, output).await
        }
        Command::Export { incident, output } => export_bundle(&store, incident, output).await,
        Command::Import { file } => import_bundle(&store, &file).await,
        Command::Runbooks(RunbooksCommand::List { incident }) => {
            list_runbooks(&store, data_dir, incident).await
        }
        Command::Sim(_)
        | Command::Gateway(_)
        | Command::TeamServer(_)
        | Command::Bench(_)
        | Command::Runbooks(RunbooksCommand::Check { .. })
        | Command::Runbooks(RunbooksCommand::Rehearse { .. }) => {
            unreachable!("handled above")
        }
    };
    store.close().await;
    result
}

/// The benchmarks (README's Performance section), each on its own data under the data
/// dir.
async fn run_bench(bench: BenchCommand, data_dir: &DataDir) -> Result<()> {
    match bench {
        BenchCommand::Generator { seconds, rate } => {
            firebreak_bench::generator(seconds, rate).await
        }
        BenchCommand::Detection { runs, good, plot } => {
            firebreak_bench::detection::detection(runs, good, plot.as_deref())
        }
        BenchCommand::Discovery { fleet, limit } => {
            firebreak_bench::discovery::discovery(fleet, limit, data_dir.root()).await
        }
        BenchCommand::Gateway { events, samples } => {
            firebreak_bench::gateway(events, samples.max(1), data_dir.root()).await
        }
        BenchCommand::Team {
            database_url,
            catch_up,
        } => firebreak_bench::team::team(database_url, catch_up, data_dir.root()).await,
        BenchCommand::Ingest { seconds, rate } => {
            firebreak_bench::ingest(seconds, rate, data_dir.root()).await
        }
        BenchCommand::Timeline { entries } => {
            firebreak_bench::timeline(entries, data_dir.root()).await
        }
        BenchCommand::Export { entries } => firebreak_bench::export(entries, data_dir.root()).await,
        BenchCommand::Startup { runs } => {
            firebreak_bench::startup(runs.max(1), data_dir.root()).await
        }
        BenchCommand::Frames {
            rate,
            seconds,
            fleet,
        } => firebreak_bench::frames(rate, seconds.max(1), fleet, data_dir.root()).await,
        BenchCommand::Memory { events, rate } => {
            firebreak_bench::memory(events, rate, data_dir.root()).await
        }
    }
}

/// The summit report of a period (`from`, `to`) or of chosen incidents, compared with a
/// baseline period when one is given.
async fn summit(
    store: &Store,
    period_asked: Option<(chrono::NaiveDate, chrono::NaiveDate)>,
    incidents: Vec<i64>,
    baseline: Option<(chrono::NaiveDate, chrono::NaiveDate)>,
    format: &str,
    output: Option<PathBuf>,
) -> Result<()> {
    let selection = match period_asked {
        Some((from, to)) => period(from, to)?,
        None => firebreak_reports::summit::Selection::Incidents { ids: incidents },
    };
    let baseline = match baseline {
        Some((from, to)) => match period(from, to)? {
            firebreak_reports::summit::Selection::Period { from, to } => Some((from, to)),
            firebreak_reports::summit::Selection::Incidents { .. } => None,
        },
        None => None,
    };
    write_summit(store, &selection, baseline, format, output).await
}

fn open_window(
    window: &Window,
    data_dir: DataDir,
    demo: Option<(f64, Option<String>)>,
) -> Result<ExitCode> {
    if let Some(why) = no_display() {
        eprintln!("firebreak: {why}: the console window cannot open. Run `firebreak --help` for the headless commands.");
        return Ok(ExitCode::from(2));
    }
    let demo = demo.map(|(speed, scenario)| Demo {
        speed: speed.max(0.01),
        scenario,
    });
    (window.open)(data_dir, demo)?;
    Ok(ExitCode::SUCCESS)
}

async fn demo_history(
    store: &Store,
    weeks: u32,
    seed: u64,
    until: Option<chrono::NaiveDate>,
) -> Result<()> {
    let until = until.unwrap_or_else(|| chrono::Utc::now().date_naive());
    let opts = crate::history::HistoryOptions {
        weeks,
        seed,
        until: until.and_time(chrono::NaiveTime::MIN).and_utc(),
    };
    let started = std::time::Instant::now();
    println!(
        "recording {weeks} weeks of demo incidents up to {until} (seed {seed}) as cluster {:?}…",
        crate::history::CLUSTER
    );
    let recorded = crate::history::record(store, &opts, &mut |n, total, r| {
        let acts: Vec<String> = r
            .actions
            .iter()
            .map(|(kind, helped)| {
                format!(
                    "{}{}",
                    kind.as_str(),
                    if *helped { "" } else { " (did not help)" }
                )
            })
            .collect();
        println!(
            "  [{n:>2}/{total}] week {} {}  #{} {}: {}, mitigated after {} min",
            r.planned.week + 1,
            r.planned.at.format("%Y-%m-%d %H:%M"),
            r.incident,
            r.planned.story.scenario(),
            acts.join(", then "),
            r.mitigated_after_s / 60
        );
    })
    .await?;
    println!(
        "recorded {} incidents in {:.0} s. Try: firebreak summit --from {} --to {} --format html -o summit.html",
        recorded.len(),
        started.elapsed().as_secs_f64(),
        (opts.until - chrono::Duration::weeks(i64::from(weeks))).format("%Y-%m-%d"),
        (opts.until - chrono::Duration::days(1)).format("%Y-%m-%d"),
    );
    Ok(())
}

/// On Linux a window needs an X11 or Wayland display; say so plainly instead of a GTK panic.
fn no_display() -> Option<&'static str> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let set = |v: &str| std::env::var_os(v).is_some_and(|s| !s.is_empty());
    (!set("DISPLAY") && !set("WAYLAND_DISPLAY"))
        .then_some("no display (DISPLAY and WAYLAND_DISPLAY are unset)")
}

/// `firebreak runbooks check [PATH…]`: folders are searched for `*.md`.
async fn check_runbooks(data_dir: &DataDir, paths: &[PathBuf]) -> Result<()> {
    use firebreak_engine::runbooks::Library;
    let lib = if paths.is_empty() {
        // The folders the console loads: the user's, and those added in settings.
        let folders = if data_dir.database().exists() {
            let store = Store::open(&data_dir.database()).await?;
            let folders = firebreak_engine::runbooks::folders(&store, data_dir.runbooks()).await;
            store.close().await;
            folders
        } else {
            vec![data_dir.runbooks().to_owned()]
        };
        Library::load(&folders)
    } else {
        let mut files = Vec::new();
        for p in paths {
            if p.is_dir() {
                let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                    .with_context(|| format!("cannot read {}", p.display()))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|f| f.extension().is_some_and(|x| x == "md"))
                    .collect();
                found.sort();
                files.extend(found);
            } else {
                files.push(p.clone());
            }
        }
        Library::load_files(&files)
    };
    for rb in &lib.runbooks {
        println!("ok    {} ({}, {} steps)", rb.source, rb.id, rb.steps.len());
    }
    for e in &lib.errors {
        println!("error {e}");
    }
    anyhow::ensure!(
        lib.errors.is_empty(),
        "{} runbook problem(s) found",
        lib.errors.len()
    );
    Ok(())
}

/// The days `from` to `to`, both included, as a summit selection.
fn period(
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
) -> Result<firebreak_reports::summit::Selection> {
    anyhow::ensure!(from <= to, "--from is after --to");
    Ok(firebreak_reports::summit::Selection::Period {
        from: from.and_hms_opt(0, 0, 0).context("bad --from")?.and_utc(),
        to: (to + chrono::Days::new(1))
            .and_hms_opt(0, 0, 0)
            .context("bad --to")?
            .and_utc(),
    })
}

/// `firebreak summit (--from DATE --to DATE | --incidents IDS) --format md|html|json [-o FILE]`.
async fn write_summit(
    store: &Store,
    selection: &firebreak_reports::summit::Selection,
    baseline: Option<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)>,
    format: &str,
    output: Option<PathBuf>,
) -> Result<()> {
    use firebreak_reports::{summit, Format};
    let report = summit::summit_with(store, selection, baseline, &mut |done, total| {
        tracing::debug!(done, total, "summit: incidents read");
    })
    .await?;
    let format = Format::parse(format).context("the format is md, html or json")?;
    emit(&summit::render(&report, format), output)
}

/// `firebreak export ID -o FILE`.
async fn export_bundle(store: &Store, incident: i64, output: PathBuf) -> Result<()> {
    let (bundle, counts) = firebreak_reports::bundle(store, incident).await?;
    firebreak_reports::write_atomically_with(&output, |f| {
        serde_json::to_writer(f, &bundle).map_err(std::io::Error::from)
    })
    .with_context(|| format!("cannot write {}", output.display()))?;
    eprintln!("wrote {}", output.display());
    eprintln!(
        "incident {incident}: {} events, {} timeline entries, {} actions, {} audit records",
        counts.events, counts.timeline, counts.actions, counts.audit
    );
    Ok(())
}

/// `firebreak import FILE`.
async fn import_bundle(store: &Store, file: &std::path::Path) -> Result<()> {
    const LIMIT: u64 = 1 << 30;
    let size = std::fs::metadata(file)
        .with_context(|| format!("cannot read {}", file.display()))?
        .len();
    anyhow::ensure!(
        size <= LIMIT,
        "{} is larger than a bundle can be (1 GiB)",
        file.display()
    );
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let bundle: firebreak_store::bundle::Bundle = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a Firebreak bundle", file.display()))?;
    let id = store.import(&bundle, &store.author().await).await?;
    println!("imported as incident {id}: {}", bundle.incident.title);
    Ok(())
}

/// Prints, or writes atomically to the chosen file.
fn emit(text: &str, output: Option<PathBuf>) -> Result<()> {
    match output {
        Some(path) => {
            firebreak_reports::write_atomically(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// `firebreak report ID --format md|html|json [-o FILE]`.
async fn write_report(
    store: &Store,
    incident: i64,
    format: &str,
    output: Option<PathBuf>,
) -> Result<()> {
    let format =
        firebreak_reports::Format::parse(format).context("--format is md, html or json")?;
    let report = firebreak_reports::build(store, incident).await?;
    emit(&firebreak_reports::render(&report, format), output)
}

/// `firebreak runbooks rehearse RUNBOOK --scenario NAME`.
async fn rehearse(data_dir: &DataDir, runbook: &str, scenario: &str, speed: f64) -> Result<()> {
    use firebreak_engine::runbooks::Library;
    anyhow::ensure!(speed > 0.0, "--speed must be above 0");
    let path = std::path::Path::new(runbook);
    let rb = if path.is_file() {
        let lib = Library::load_files(&[path.to_owned()]);
        if let Some(e) = lib.errors.first() {
            anyhow::bail!("{e}");
        }
        lib.runbooks
            .into_iter()
            .next()
            .context("no runbook in the file")?
    } else {
        let lib = Library::load(&[data_dir.runbooks().to_owned()]);
        lib.get(runbook)
            .cloned()
            .with_context(|| format!("no runbook {runbook:?} (see `firebreak runbooks list`)"))?
    };
    let scratch = tempfile_dir()?;
    println!(
        "rehearsing {} against scenario {scenario} at {speed}× …",
        rb.id
    );
    let r = firebreak_engine::runbooks::rehearse::rehearse(&rb, scenario, speed, &scratch).await;
    let _ = std::fs::remove_dir_all(&scratch);
    let r = r?;
    for step in &r.steps {
        println!("  {step}");
    }
    println!(
        "{} in {:.1} s ({:.0} simulated s)",
        if r.mitigated {
            "mitigated"
        } else {
            "NOT mitigated"
        },
        r.took.as_secs_f64(),
        r.simulated_s
    );
    anyhow::ensure!(r.mitigated, "the incident did not end mitigated");
    Ok(())
}

/// A fresh folder under the OS temp dir, for stores nobody keeps.
fn tempfile_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("firebreak-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// `firebreak runbooks list [--incident N]`.
async fn list_runbooks(store: &Store, data_dir: &DataDir, incident: Option<i64>) -> Result<()> {
    use firebreak_engine::runbooks::{matching, IncidentFacts, Library};
    let lib = Library::load(&firebreak_engine::runbooks::folders(store, data_dir.runbooks()).await);
    for e in &lib.errors {
        eprintln!("warning: {e}");
    }
    let Some(id) = incident else {
        for rb in &lib.runbooks {
            println!(
                "{:<24} v{:<4} {:<20} {}",
                rb.id, rb.version, rb.owner, rb.title
            );
        }
        return Ok(());
    };
    let incident = store.incident(id).await?;
    let facts = IncidentFacts::of(&incident, &store.incident_event_data(id).await?);
    let found = matching(&lib, &facts);
    if found.is_empty() {
        println!("no runbook matches incident {id}");
    }
    for m in found {
        println!(
            "{:<24} score {:<3} {}: {}",
            m.runbook_id,
            m.score,
            m.title,
            m.reasons.join("; ")
        );
    }
    Ok(())
}

async fn watch(
    store: &Store,
    clusters: Vec<String>,
    actions_url: Option<String>,
    token_env: Option<String>,
    ca_file: Option<PathBuf>,
    demo: bool,
) -> Result<()> {
    if demo {
        let (sim, target) = crate::watch::start_demo(store, 1.0, None).await?;
        eprintln!("demo: the built-in simulator runs bad-model-rollout; an incident opens within a minute. Ctrl-C stops.");
        let result = crate::watch::run_targets(store, vec![target]).await;
        sim.shutdown();
        return result;
    }
    anyhow::ensure!(
        actions_url.is_none() || clusters.len() == 1,
        "--actions-url goes with exactly one --cluster"
    );
    let token = match token_env {
        Some(var) => {
            Some(std::env::var(&var).with_context(|| format!("--token-env: ${var} is not set"))?)
        }
        None => None,
    };
    let mut specs = Vec::new();
    for spec in &clusters {
        specs.push((
            crate::watch::parse_cluster(spec, actions_url.as_deref(), ca_file.as_deref())?,
            token.clone(),
        ));
    }
    crate::watch::run(store, specs).await
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    /// clap checks the whole command line (every subcommand, the servers' included) only
    /// when it is parsed: a mistake in it would panic at the first run of that command.
    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
