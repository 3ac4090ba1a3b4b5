//! Every command the page can call, in one place. Each is also listed in
//! `src-tauri/build.rs` (so it gets a permission) and granted, one by one, in
//! `src-tauri/capabilities/main.json`.

use tauri::State;

use super::Console;
use crate::ipc::{AppInfo, ErrorCode, IpcError};
use firebreak_engine::actions::{ActionSettings, DeskError};
use firebreak_engine::watchlist::{TokenChange, WatchedCluster};
use firebreak_protocol::actions::ActionKind;
use firebreak_store::actions::ActionRecord;
use firebreak_store::feed::{Diagnostics, FeedFilter, FeedPage, FeedPageRequest, RawEvent};
use firebreak_store::incident::{Incident, IncidentStatus, NewIncident, Severity, TimelineEntry};
use firebreak_store::NewCluster;

use firebreak_engine::ingest::sink::ConsoleUpdate;

type Reply<T> = Result<T, IpcError>;

pub fn handler<R: tauri::Runtime>() -> impl Fn(tauri::ipc::Invoke<R>) -> bool + Send + Sync + 'static
{
    tauri::generate_handler![
        app_info,
        list_clusters,
        add_cluster,
        update_cluster,
        remove_cluster,
        event_feed,
        raw_event,
        diagnostics,
        propose_action,
        propose_silence,
        rollout_state,
        fleet_board,
        rollout_verdicts,
        rollout_guards,
        set_rollout_guard,
        objectives,
        set_objective,
        incident_changes,
        bench_frames,
        show_incident_in_title,
        incident_actions,
        confirm_action,
        cancel_action,
        action_settings,
        set_action_settings,
        runbook_library,
        matching_runbooks,
        start_runbook,
        incident_runs,
        answer_step,
        runbook_folders,
        set_runbook_folders,
        super::review::incident_review,
        super::review::review_timeline,
        super::review::set_key_moment,
        super::review::annotate_entry,
        super::review::set_root_cause,
        super::review::add_factor,
        super::review::remove_factor,
        super::review::add_follow_up,
        super::review::update_follow_up,
        super::review::root_causes,
        super::review::set_root_causes,
        super::review::export_report,
        super::review::export_summit,
        super::review::summit_report,
        list_incidents,
        get_incident,
        incident_timeline,
        timeline_since,
        open_incident,
        change_incident_status,
        add_note,
        change_incident_severity,
        set_commander,
        set_author,
        subscribe,
        super::team::team_settings,
        super::team::link_team,
        super::team::set_team_sync,
        super::team::team_viewing,
        super::team::redo_refused,
        super::team::team_activity,
    ]
}

#[tauri::command]
fn app_info(console: State<'_, Console>) -> AppInfo {
    AppInfo {
        author: console.author(),
        ..console.info.clone()
    }
}

#[tauri::command]
async fn list_clusters(console: State<'_, Console>) -> Reply<Vec<WatchedCluster>> {
    Ok(console.watchlist()?.list().await?)
}

/// Adds a cluster and starts watching it; the token goes to the OS keychain.
#[tauri::command]
async fn add_cluster(
    console: State<'_, Console>,
    cluster: NewCluster,
    token: Option<String>,
) -> Reply<WatchedCluster> {
    Ok(console.watchlist()?.add(&cluster, token.as_deref()).await?)
}

#[tauri::command]
async fn update_cluster(
    console: State<'_, Console>,
    id: i64,
    cluster: NewCluster,
    token: TokenChange,
) -> Reply<WatchedCluster> {
    Ok(console.watchlist()?.update(id, &cluster, &token).await?)
}

/// Stops watching a cluster; its recorded events and incidents stay.
#[tauri::command]
async fn remove_cluster(console: State<'_, Console>, id: i64) -> Reply<()> {
    Ok(console.watchlist()?.remove(id).await?)
}

#[tauri::command]
async fn event_feed(
    console: State<'_, Console>,
    filter: FeedFilter,
    page: FeedPageRequest,
) -> Reply<FeedPage> {
    Ok(console.store()?.feed(&filter, page).await?)
}

#[tauri::command]
async fn raw_event(console: State<'_, Console>, seq: i64) -> Reply<RawEvent> {
    Ok(console.store()?.raw_event(seq).await?)
}

#[tauri::command]
async fn diagnostics(console: State<'_, Console>) -> Reply<Diagnostics> {
    Ok(console.store()?.diagnostics().await?)
}

#[tauri::command]
async fn list_incidents(console: State<'_, Console>) -> Reply<Vec<Incident>> {
    Ok(console.store()?.incidents().await?)
}

#[tauri::command]
async fn get_incident(console: State<'_, Console>, id: i64) -> Reply<Incident> {
    Ok(console.store()?.incident(id).await?)
}

#[tauri::command]
async fn incident_timeline(
    console: State<'_, Console>,
    id: i64,
    after_at: Option<i64>,
    after_id: Option<i64>,
    limit: i64,
) -> Reply<Vec<TimelineEntry>> {
    let after = after_at.zip(after_id);
    Ok(console.store()?.timeline(id, after, limit).await?)
}

/// Entries recorded after entry `since_id` (the live view's refresh), in recording order.
#[tauri::command]
async fn timeline_since(
    console: State<'_, Console>,
    id: i64,
    since_id: i64,
    limit: i64,
) -> Reply<Vec<TimelineEntry>> {
    Ok(console.store()?.timeline_since(id, since_id, limit).await?)
}

#[tauri::command]
async fn open_incident(console: State<'_, Console>, incident: NewIncident) -> Reply<Incident> {
    let author = console.author();
    Ok(console.store()?.open_incident(&incident, &author).await?)
}

#[tauri::command]
async fn change_incident_status(
    console: State<'_, Console>,
    id: i64,
    to: IncidentStatus,
) -> Reply<Incident> {
    let author = console.author();
    Ok(console.store()?.change_status(id, to, &author).await?)
}

#[tauri::command]
async fn add_note(console: State<'_, Console>, id: i64, text: String) -> Reply<TimelineEntry> {
    let author = console.author();
    Ok(console.store()?.add_note(id, &text, &author).await?)
}

/// The page's live feed: cluster states and incident changes, batched.
#[tauri::command]
fn subscribe(console: State<'_, Console>, channel: tauri::ipc::Channel<ConsoleUpdate>) {
    console.live.subscribe(channel);
}

#[tauri::command]
async fn change_incident_severity(
    console: State<'_, Console>,
    id: i64,
    to: Severity,
) -> Reply<Incident> {
    let author = console.author();
    Ok(console.store()?.change_severity(id, to, &author).await?)
}

/// `commander`: the new commander (this user's own name to take command), or null to step down.
#[tauri::command]
async fn set_commander(
    console: State<'_, Console>,
    id: i64,
    commander: Option<String>,
) -> Reply<Incident> {
    let author = console.author();
    Ok(console
        .store()?
        .set_commander(id, commander.as_deref(), &author)
        .await?)
}

/// Changes who this user's changes are recorded as (kept in settings).
#[tauri::command]
async fn set_author(console: State<'_, Console>, name: String) -> Reply<String> {
    let name = name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(IpcError::new(
            ErrorCode::Invalid,
            "an author name is 1 to 100 characters",
        ));
    }
    console.store()?.set_setting("author", &name).await?;
    *console.author.lock().unwrap_or_else(|e| e.into_inner()) = name.clone();
    Ok(name)
}

impl From<DeskError> for IpcError {
    fn from(e: DeskError) -> Self {
        match e {
            DeskError::Store(e) => e.into(),
            DeskError::ReadOnly => IpcError::new(ErrorCode::ReadOnly, e.to_string()),
            DeskError::Refused(_) | DeskError::NotApplicable(_) => {
                IpcError::new(ErrorCode::Refused, e.to_string())
            }
            DeskError::Unreachable(_) => IpcError::new(ErrorCode::Unreachable, e.to_string()),
        }
    }
}

/// Resolves an action for the incident (rollback, failover, a rollout lever) and records
/// it as proposed. The page names the kind and, at most, a revision of the history to roll
/// back to or that a promotion runs every remaining wave: the target, the precondition and
/// the preview are decided here from the cluster's state.
#[tauri::command]
async fn propose_action(
    console: State<'_, Console>,
    incident_id: i64,
    kind: ActionKind,
    to_revision: Option<u32>,
    full: Option<bool>,
) -> Reply<ActionRecord> {
    let author = console.author();
    let choice = firebreak_engine::actions::Choice {
        to_revision,
        full: full.unwrap_or(false),
    };
    Ok(console
        .desk()?
        .propose_with(incident_id, kind, choice, &author)
        .await?)
}

/// What the page measured for a benchmark that started this window (`bench frames`: the
/// milliseconds between frames; `bench startup`: when it first painted, in milliseconds
/// since the epoch), written to the file the benchmark named; the window then closes.
/// Refused in a window no benchmark started: the page names no path.
#[tauri::command]
fn bench_frames<R: tauri::Runtime>(app: tauri::AppHandle<R>, frames: Vec<f64>) -> Reply<()> {
    let Some(path) = super::bench_frames()
        .map(|(_, p)| p)
        .or_else(super::bench_paint)
    else {
        return Err(IpcError::new(
            ErrorCode::Refused,
            "this window is not measuring its frames",
        ));
    };
    let text = serde_json::to_string(&frames).unwrap_or_default();
    std::fs::write(&path, text)
        .map_err(|e| IpcError::new(ErrorCode::Refused, format!("cannot write the frames: {e}")))?;
    app.exit(0);
    Ok(())
}

/// Names the open incident in the window's title ("#12 llm-assistant error rate… —
/// Firebreak"), or just "Firebreak" with none. The page names only the incident; its
/// title comes from the store.
#[tauri::command]
async fn show_incident_in_title<R: tauri::Runtime>(
    window: tauri::WebviewWindow<R>,
    console: State<'_, Console>,
    incident_id: Option<i64>,
) -> Reply<()> {
    let title = match incident_id {
        Some(id) => {
            let incident = console.store()?.incident(id).await?;
            format!("#{id} {} — Firebreak", incident.title)
        }
        None => "Firebreak".to_owned(),
    };
    window
        .set_title(&title.replace('\0', ""))
        .map_err(|e| IpcError::new(ErrorCode::Refused, format!("cannot set the title: {e}")))
}

/// The fleet at a glance, from what the store recorded (it reads the same offline).
#[tauri::command]
async fn fleet_board(console: State<'_, Console>) -> Reply<firebreak_store::fleet::FleetBoard> {
    let mut board = console.store()?.fleet_board().await?;
    // Each service's budget as last counted (counting 30 days is not done on every read).
    if let Some(slo) = &console.slo {
        for cluster in &mut board.clusters {
            for service in &mut cluster.services {
                service.budget = slo.budget(cluster.id, &service.name);
            }
        }
    }
    Ok(board)
}

/// The canary verdicts of a service's newest rollout, wave by wave, from what the store
/// recorded of it (its figures by revision); none when the service never rolled out.
#[tauri::command]
async fn rollout_verdicts(
    console: State<'_, Console>,
    cluster_id: i64,
    service: String,
) -> Reply<Option<firebreak_engine::canary::RolloutVerdicts>> {
    let store = console.store()?;
    Ok(firebreak_engine::canary::rollout_verdicts(store, cluster_id, &service).await?)
}

/// Every recorded service's rollout guard (none set: watch), with what a runbook
/// recommends for it.
#[tauri::command]
async fn rollout_guards(
    console: State<'_, Console>,
) -> Reply<Vec<firebreak_engine::actions::guard::ServiceGuard>> {
    let store = console.store()?;
    let library = console.library();
    Ok(firebreak_engine::actions::guard::service_guards(store, &library.runbooks).await?)
}

/// Sets a service's rollout guard, approved by this console's user with `reason`.
/// Letting the console pause on its own is confirmed in a native dialog first: page
/// script alone cannot grant it.
#[tauri::command]
async fn set_rollout_guard<R: tauri::Runtime>(
    app: tauri::AppHandle<R>,
    window: tauri::WebviewWindow<R>,
    console: State<'_, Console>,
    cluster_id: i64,
    service: String,
    mode: firebreak_store::guards::GuardMode,
    reason: String,
) -> Reply<Vec<firebreak_engine::actions::guard::ServiceGuard>> {
    use firebreak_store::guards::GuardMode;
    let store = console.store()?;
    let before = store.rollout_guard(cluster_id, &service).await?;
    let was = before.map_or(GuardMode::Watch, |g| g.mode);
    if mode == GuardMode::PauseOnFail && was != GuardMode::PauseOnFail {
        let text = format!(
            "Firebreak will pause {service}'s rollouts on its own when their canary verdict \
             fails, approved by {} ({}).\n\nEach pause still goes through the action desk: \
             its grace period can be cancelled, and read-only mode still stops it.",
            console.author(),
            reason.trim()
        );
        if !super::ask_natively(&app, &window, "Approve pause on fail?", text, "_Approve").await {
            return Err(IpcError::new(
                ErrorCode::Refused,
                "not approved in the dialog: the guard was not changed",
            ));
        }
    }
    store
        .set_rollout_guard(cluster_id, &service, mode, &console.author(), &reason)
        .await?;
    let library = console.library();
    Ok(firebreak_engine::actions::guard::service_guards(store, &library.runbooks).await?)
}

/// Every recorded service with its objectives (none: judged by the fixed error-rate rule).
#[tauri::command]
async fn objectives(
    console: State<'_, Console>,
) -> Reply<Vec<firebreak_engine::slo::ServiceObjectives>> {
    Ok(firebreak_engine::slo::service_objectives(console.store()?).await?)
}

/// Sets (or, with none, removes) a service's objectives as this console's user; its
/// incidents then open on burn rates instead of the fixed rule.
#[tauri::command]
async fn set_objective(
    console: State<'_, Console>,
    cluster_id: i64,
    service: String,
    objective: Option<firebreak_store::objectives::Objective>,
) -> Reply<Vec<firebreak_engine::slo::ServiceObjectives>> {
    let store = console.store()?;
    store
        .set_objective(cluster_id, &service, objective, &console.author())
        .await?;
    console.watchlist()?.engine().objectives_changed().await?;
    if let Some(slo) = &console.slo {
        slo.count_budgets(true).await?;
    }
    Ok(firebreak_engine::slo::service_objectives(store).await?)
}

/// What changed on the incident's service from an hour before it opened: rollouts, model
/// versions, actions by anyone, newest first.
#[tauri::command]
async fn incident_changes(
    console: State<'_, Console>,
    incident_id: i64,
) -> Reply<Vec<firebreak_store::changes::Change>> {
    Ok(console.store()?.incident_changes(incident_id).await?)
}

/// The incident's deployment now: the rollout under way and the revisions a rollback can
/// go back to, each with how it served while it was live.
#[tauri::command]
async fn rollout_state(
    console: State<'_, Console>,
    incident_id: i64,
) -> Reply<firebreak_engine::actions::rollout::RolloutState> {
    Ok(console.desk()?.rollout_state(incident_id).await?)
}

/// Proposes silencing the alert of a timeline entry for an hour. The page names the
/// entry; Rust reads the alert from the recorded event and previews what it silences.
#[tauri::command]
async fn propose_silence(
    console: State<'_, Console>,
    incident_id: i64,
    entry_id: i64,
) -> Reply<ActionRecord> {
    let author = console.author();
    Ok(console
        .desk()?
        .propose_silence(incident_id, entry_id, SILENCE_FROM_THE_WINDOW_S, &author)
        .await?)
}

/// "Silence this alert for 1 h".
const SILENCE_FROM_THE_WINDOW_S: u32 = 3600;

#[tauri::command]
async fn incident_actions(
    console: State<'_, Console>,
    incident_id: i64,
) -> Reply<Vec<ActionRecord>> {
    let actions = console.store()?.incident_actions(incident_id).await?;
    Ok(match console.desk() {
        Ok(desk) => desk.with_status(actions),
        Err(_) => actions,
    })
}

/// Confirms a proposed action. The page can only ask: the desk re-checks the action
/// against the cluster, then a native dialog (which page script cannot answer) asks the
/// engineer; only their click there starts the grace period.
#[tauri::command]
async fn confirm_action<R: tauri::Runtime>(
    app: tauri::AppHandle<R>,
    window: tauri::WebviewWindow<R>,
    console: State<'_, Console>,
    id: String,
    reason: String,
    typed_name: Option<String>,
) -> Reply<ActionRecord> {
    let desk = console.desk()?.clone();
    let action = desk.check(&id, &reason, typed_name.as_deref()).await?;
    if action.state != firebreak_store::actions::ActionState::Proposed {
        return Ok(action);
    }
    if !super::confirm_natively(&app, &window, &action, &reason).await {
        return Err(IpcError::new(
            ErrorCode::Refused,
            "not confirmed in the dialog: nothing was sent",
        ));
    }
    let author = console.author();
    Ok(desk
        .confirm(&id, &author, &reason, typed_name.as_deref())
        .await?)
}

#[tauri::command]
async fn cancel_action(console: State<'_, Console>, id: String) -> Reply<ActionRecord> {
    let author = console.author();
    Ok(console.desk()?.cancel(&id, &author).await?)
}

#[tauri::command]
async fn action_settings(console: State<'_, Console>) -> Reply<ActionSettings> {
    Ok(ActionSettings::load(console.store()?).await?)
}

#[tauri::command]
async fn set_action_settings<R: tauri::Runtime>(
    app: tauri::AppHandle<R>,
    window: tauri::WebviewWindow<R>,
    console: State<'_, Console>,
    settings: ActionSettings,
) -> Reply<ActionSettings> {
    let store = console.store()?;
    let loosened = ActionSettings::load(store).await?.weakened_by(&settings);
    if !loosened.is_empty() {
        let text = format!(
            "This loosens the console's guard rails:\n\n- {}\n\nOnly a person at this screen can confirm it.",
            loosened.join("\n- ")
        );
        if !super::ask_natively(&app, &window, "Loosen the guard rails?", text, "_Loosen").await {
            return Err(IpcError::new(
                ErrorCode::Refused,
                "not confirmed in the dialog: the settings were not changed",
            ));
        }
    }
    settings.save(store).await?;
    Ok(settings)
}

impl From<firebreak_engine::runbooks::run::RunError> for IpcError {
    fn from(e: firebreak_engine::runbooks::run::RunError) -> Self {
        use firebreak_engine::runbooks::run::RunError;
        match e {
            RunError::Store(e) => e.into(),
            RunError::Desk(e) => e.into(),
            RunError::Refused(_) => IpcError::new(ErrorCode::Refused, e.to_string()),
        }
    }
}

/// Every runbook loaded and every file's problem (for the diagnostics view).
#[tauri::command]
fn runbook_library(console: State<'_, Console>) -> firebreak_engine::runbooks::Library {
    console.library()
}

/// The runbooks that fit an incident, best first, with why.
#[tauri::command]
async fn matching_runbooks(
    console: State<'_, Console>,
    incident_id: i64,
) -> Reply<Vec<firebreak_engine::runbooks::Match>> {
    let store = console.store()?;
    let incident = store.incident(incident_id).await?;
    let events = store.incident_event_data(incident_id).await?;
    let facts = firebreak_engine::runbooks::IncidentFacts::of(&incident, &events);
    Ok(firebreak_engine::runbooks::matching(
        &console.library(),
        &facts,
    ))
}

/// Starts (or resumes) a runbook on an incident.
#[tauri::command]
async fn start_runbook(
    console: State<'_, Console>,
    incident_id: i64,
    runbook_id: String,
) -> Reply<firebreak_store::runs::RunRecord> {
    let runbook = console.library().get(&runbook_id).cloned().ok_or_else(|| {
        IpcError::new(
            ErrorCode::NotFound,
            format!("no runbook {runbook_id:?} is loaded"),
        )
    })?;
    let author = console.author();
    Ok(console
        .runner()?
        .start(incident_id, &runbook, &author)
        .await?)
}

/// An incident's runbook runs, as stored: reading never writes (runs whose action has
/// settled are moved on by the shell's timer, `desktop::advance_runbook_runs`).
#[tauri::command]
async fn incident_runs(
    console: State<'_, Console>,
    incident_id: i64,
) -> Reply<Vec<firebreak_store::runs::RunRecord>> {
    Ok(console.store()?.incident_runs(incident_id).await?)
}

/// The engineer's answer at a run's current step.
#[tauri::command]
async fn answer_step(
    console: State<'_, Console>,
    run_id: i64,
    step_id: String,
    answer: firebreak_engine::runbooks::run::Answer,
) -> Reply<firebreak_store::runs::RunRecord> {
    let author = console.author();
    let run = console
        .runner()?
        .answer(run_id, &step_id, answer, &author)
        .await?;
    console.timeline_changed(run.incident_id);
    Ok(run)
}

/// The folders runbooks are loaded from: the user's own first, then those added.
#[tauri::command]
fn runbook_folders(console: State<'_, Console>) -> Vec<String> {
    console
        .runbook_folders
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|p| p.display().to_string())
        .collect()
}

/// Sets the added folders (the user's own is always first) and reloads the runbooks.
#[tauri::command]
async fn set_runbook_folders<R: tauri::Runtime>(
    app: tauri::AppHandle<R>,
    window: tauri::WebviewWindow<R>,
    console: State<'_, Console>,
    folders: Vec<String>,
) -> Reply<firebreak_engine::runbooks::Library> {
    let extra: Vec<std::path::PathBuf> = folders
        .iter()
        .map(|f| f.trim())
        .filter(|f| !f.is_empty())
        .map(std::path::PathBuf::from)
        .collect();
    if let Some(relative) = extra.iter().find(|p| !p.is_absolute()) {
        return Err(IpcError::new(
            ErrorCode::Invalid,
            format!("{} is not an absolute path", relative.display()),
        ));
    }
    // A new folder's runbooks can propose actions: adding one needs a person.
    let known = console
        .runbook_folders
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let added: Vec<String> = extra
        .iter()
        .filter(|p| !known.contains(p))
        .map(|p| p.display().to_string())
        .collect();
    if !added.is_empty() {
        let text = format!(
            "Runbooks from these folders will be offered on incidents, and their action steps \
             can propose rollbacks and failovers:\n\n- {}",
            added.join("\n- ")
        );
        if !super::ask_natively(&app, &window, "Add runbook folders?", text, "_Add").await {
            return Err(IpcError::new(
                ErrorCode::Refused,
                "not confirmed in the dialog: no folder was added",
            ));
        }
    }
    let text = serde_json::to_string(&extra).unwrap_or_else(|_| "[]".into());
    console
        .store()?
        .set_setting(firebreak_engine::runbooks::FOLDERS_SETTING, &text)
        .await?;
    let mut all = vec![console.data_dir.runbooks().to_owned()];
    all.extend(extra);
    let library = firebreak_engine::runbooks::Library::load(&all);
    *console
        .runbook_folders
        .write()
        .unwrap_or_else(|e| e.into_inner()) = all;
    *console.runbooks.write().unwrap_or_else(|e| e.into_inner()) = library.clone();
    Ok(library)
}
