//! The console's sync loop: pushes the outbox, applies the team's stream after the
//! store's cursor, and says where it stands (the status bar's "synced", "syncing N",
//! "offline since …"). Local work never waits on it: the store takes every change and
//! the outbox keeps it until the server has answered.

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};
use ts_rs::TS;
use uuid::Uuid;

use super::client::{Subscription, SyncError, TeamClient, TeamLink};
use firebreak_protocol::team::{self as wire, Frame, Outcome, Shared};
use firebreak_store::team::{Applied, Pending};
use firebreak_store::Store;

/// Where sync stands, for the status bar and Settings → Team.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct TeamStatus {
    pub state: SyncState,
    pub team: Option<String>,
    pub url: Option<String>,
    /// Who the server says the token is.
    pub you: Option<String>,
    /// Records made here the server has not answered yet.
    pub pending: i64,
    /// Since when (Unix ms) it has been offline or refused.
    pub since_ms: Option<i64>,
    pub reason: Option<String>,
    /// Who else has a console on this team, and which incident each shows.
    pub people: Vec<TeamPerson>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "lowercase")]
pub enum SyncState {
    /// Not linked to a team, or switched off.
    Off,
    /// Connecting, or reading the team's stream up to its head.
    Connecting,
    Synced,
    Syncing,
    /// The server cannot be reached: changes queue here.
    Offline,
    /// The server refused this console (token, membership, schema): it will not retry
    /// until the settings change.
    Refused,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct TeamPerson {
    pub name: String,
    /// The incident's public id, when the console shows one.
    pub incident: Option<String>,
    pub this_console: bool,
}

impl TeamStatus {
    /// Not linked, or switched off.
    pub fn off() -> Self {
        Self {
            state: SyncState::Off,
            team: None,
            url: None,
            you: None,
            pending: 0,
            since_ms: None,
            reason: None,
            people: Vec::new(),
        }
    }
}

/// The team link as Settings shows it (never the token).
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct TeamSettings {
    pub url: Option<String>,
    pub team: Option<String>,
    pub ca_file: Option<String>,
    pub enabled: bool,
    pub status: TeamStatus,
}

#[derive(Debug, Clone, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct TeamLinkRequest {
    pub url: String,
    pub team: String,
    /// The token `team-server user add` printed; empty keeps the one in the keychain.
    pub token: String,
    pub ca_file: Option<String>,
}

/// What linking to `url` (trusting `ca_file`) changes against the current link, for the
/// guard rails of Settings → Team: a token saved for one server is never handed to another
/// (it must be pasted again in the same change), and pointing the console at another
/// server or CA is confirmed by a person in a native dialog (page script alone could
/// otherwise send the saved token, and the team's records, anywhere).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkChange {
    /// The saved token may be used for this link (same server, same CA file).
    pub keeps_saved_token: bool,
    /// What a person must confirm, in words; empty when nothing about where the console
    /// connects changes.
    pub to_confirm: Vec<String>,
}

pub fn link_change(
    current: Option<(&str, Option<&str>)>,
    url: &str,
    ca_file: Option<&str>,
) -> LinkChange {
    let url = url.trim().trim_end_matches('/');
    let ca_file = ca_file.map(str::trim).filter(|c| !c.is_empty());
    let mut to_confirm = Vec::new();
    let same = match current {
        Some((was, was_ca)) => {
            let was = was.trim_end_matches('/');
            if !crate::secrets::same_server(was, url) || was != url {
                to_confirm.push(format!("the team server changes from {was} to {url}"));
            }
            if was_ca != ca_file {
                to_confirm.push(match ca_file {
                    Some(ca) => format!("the team server is trusted through the CA in {ca}"),
                    None => "the team server is trusted through this machine's CAs".into(),
                });
            }
            to_confirm.is_empty()
        }
        None => {
            to_confirm.push(format!("this console links to the team server at {url}"));
            if let Some(ca) = ca_file {
                to_confirm.push(format!("the team server is trusted through the CA in {ca}"));
            }
            false
        }
    };
    LinkChange {
        keeps_saved_token: same,
        to_confirm,
    }
}

/// Called with what each applied batch changed (the window refreshes those incidents).
pub type OnApplied = Arc<dyn Fn(&Applied) + Send + Sync>;

/// A running sync loop; stops when dropped.
pub struct TeamSync {
    status: watch::Receiver<TeamStatus>,
    viewing: watch::Sender<Option<Uuid>>,
    wake: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TeamSync {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TeamSync {
    /// Starts syncing the store's team link with `token`.
    pub fn start(store: Store, token: String, on_applied: OnApplied) -> Self {
        let (status_tx, status) = watch::channel(TeamStatus::off());
        let (viewing, viewing_rx) = watch::channel(None);
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(run(
            store,
            token,
            status_tx,
            viewing_rx,
            wake.clone(),
            on_applied,
        ));
        Self {
            status,
            viewing,
            wake,
            task,
        }
    }

    pub fn status(&self) -> TeamStatus {
        self.status.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<TeamStatus> {
        self.status.clone()
    }

    /// The incident this console shows now (its public id), for the team's presence.
    pub fn view(&self, incident: Option<Uuid>) {
        self.viewing.send_replace(incident);
    }

    /// Something was written: push now rather than at the next tick.
    pub fn poke(&self) {
        self.wake.notify_one();
    }
}

/// How often the outbox is looked at besides when the store says something was queued
/// (another process writing to the same store does not tell this one).
const PUSH_EVERY: Duration = Duration::from_secs(1);

/// Records applied in one transaction at most.
const APPLY_BATCH: usize = 2000;

async fn run(
    store: Store,
    token: String,
    status: watch::Sender<TeamStatus>,
    mut viewing: watch::Receiver<Option<Uuid>>,
    wake: Arc<Notify>,
    on_applied: OnApplied,
) {
    let backoff = crate::ingest::backoff::Backoff::default();
    let mut attempt: u32 = 0;
    let mut down_since: Option<i64> = None;
    loop {
        let link = match store.team_link().await {
            Ok(Some(link)) if link.enabled => link,
            Ok(_) => {
                status.send_replace(TeamStatus::off());
                wake.notified().await;
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the team link");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut base = TeamStatus {
            state: SyncState::Connecting,
            team: Some(link.team.clone()),
            url: Some(link.url.clone()),
            pending: store.team_pending_count().await.unwrap_or(0),
            since_ms: down_since,
            ..TeamStatus::off()
        };
        status.send_replace(base.clone());
        let client = TeamClient::new(TeamLink {
            url: link.url.clone(),
            team: link.team.clone(),
            token: token.clone(),
            console: link.console,
            ca_file: link.ca_file.clone().map(Into::into),
        });
        let ended = match client {
            Ok(client) => {
                session(
                    &store,
                    &client,
                    &link,
                    &status,
                    &mut base,
                    &mut viewing,
                    &wake,
                    &on_applied,
                    &mut attempt,
                    &mut down_since,
                )
                .await
            }
            Err(e) => e,
        };
        let now = firebreak_common::clock::now_ms();
        let since = *down_since.get_or_insert(now);
        base.since_ms = Some(since);
        base.reason = Some(ended.to_string());
        base.people.clear();
        base.pending = store.team_pending_count().await.unwrap_or(base.pending);
        match ended {
            SyncError::Refused { .. } => {
                base.state = SyncState::Refused;
                status.send_replace(base);
                tracing::warn!(error = %ended, "the team server refused this console");
                // Until the settings change (they poke), or a while.
                let _ = tokio::time::timeout(Duration::from_secs(300), wake.notified()).await;
            }
            SyncError::Unreachable(_) => {
                base.state = SyncState::Offline;
                status.send_replace(base);
                let unit = (Uuid::new_v4().as_u128() % 1_000_000) as f64 / 1_000_000.0;
                let delay = backoff.delay(attempt, unit).max(Duration::from_millis(100));
                attempt = attempt.saturating_add(1);
                tracing::info!(error = %ended, ?delay, "team sync offline; retrying");
                let _ = tokio::time::timeout(delay, wake.notified()).await;
            }
        }
    }
}

/// The team's database was restored from an older copy: reads the team again from the
/// start and sends this console's records again (`Store::team_rewind`); the next
/// connection does it.
async fn rewind(store: &Store, why: &str) -> SyncError {
    match store.team_rewind(why).await {
        Ok(requeued) => {
            tracing::warn!(why, requeued, "reading the team again from the start");
            SyncError::Unreachable(format!(
                "{why}; this console reads the team again from the start and sends its \
                 {requeued} records again"
            ))
        }
        Err(e) => SyncError::Unreachable(format!("{why}; reading the team again failed: {e}")),
    }
}

/// One connection: pull and push until something breaks; returns why it ended.
#[allow(clippy::too_many_arguments)]
async fn session(
    store: &Store,
    client: &TeamClient,
    link: &firebreak_store::team::Link,
    status: &watch::Sender<TeamStatus>,
    base: &mut TeamStatus,
    viewing: &mut watch::Receiver<Option<Uuid>>,
    wake: &Notify,
    on_applied: &OnApplied,
    attempt: &mut u32,
    down_since: &mut Option<i64>,
) -> SyncError {
    let mut sub = match client.subscribe(link.cursor).await {
        Ok(s) => s,
        Err(e) => return e,
    };
    let console = client.link().console;
    let shown = *viewing.borrow_and_update();
    if let Err(e) = sub.viewing(shown).await {
        return e;
    }
    let mut caught_up = false;
    let mut tick = tokio::time::interval(PUSH_EVERY);
    let queued = store.outbox_queued();
    let silence = wire_silence();
    let mut last_heard = tokio::time::Instant::now();
    loop {
        let frame = tokio::select! {
            frame = sub.next() => Some(frame),
            _ = tick.tick() => None,
            _ = wake.notified() => None,
            _ = queued.notified() => {
                if let Err(e) = store.writes_done().await {
                    return SyncError::Unreachable(format!("cannot read the outbox: {e}"));
                }
                None
            }
            changed = viewing.changed() => {
                if changed.is_ok() {
                    let shown = *viewing.borrow_and_update();
                    if let Err(e) = sub.viewing(shown).await {
                        return e;
                    }
                }
                None
            }
        };
        match frame {
            None => {
                if last_heard.elapsed() > silence {
                    return SyncError::Unreachable(format!(
                        "no word from the team server for {} s",
                        silence.as_secs()
                    ));
                }
            }
            Some(None) => {
                return SyncError::Unreachable("the team server closed the stream".into())
            }
            Some(Some(Err(e))) => return e,
            Some(Some(Ok(frame))) => {
                last_heard = tokio::time::Instant::now();
                match frame {
                    Frame::Hello { you, at_cursor, .. } => {
                        if let (Some(read), Some(there)) = (link.cursor_record, at_cursor) {
                            if link.cursor > 0 && read != there {
                                return rewind(
                                    store,
                                    &format!(
                                        "the team's record {} is not the one this console read: \
                                         the team database was restored from an older copy",
                                        link.cursor
                                    ),
                                )
                                .await;
                            }
                        }
                        base.you = Some(you);
                        *attempt = 0;
                        *down_since = None;
                        base.since_ms = None;
                        base.reason = None;
                    }
                    Frame::Record(first) => {
                        // Take what else has already arrived, and apply it in one go.
                        let (batch, after) = match more_records(&mut sub, *first) {
                            Ok(taken) => taken,
                            Err(e) => return e,
                        };
                        match store.apply_team(&batch).await {
                            Ok(applied) => {
                                if !applied.incidents.is_empty() {
                                    on_applied(&applied);
                                }
                            }
                            Err(e) => {
                                return SyncError::Unreachable(format!(
                                    "cannot record what the team sent: {e}"
                                ))
                            }
                        }
                        if let Some(Frame::CaughtUp { .. }) = after {
                            caught_up = true;
                        }
                        if let Some(Frame::Presence { people }) = after {
                            base.people = people_of(people, console);
                        }
                    }
                    Frame::CaughtUp { .. } => caught_up = true,
                    Frame::Presence { people } => base.people = people_of(people, console),
                    Frame::Heartbeat { .. } => {}
                    Frame::Error { code, message } => {
                        return match code.as_str() {
                            "cursor_ahead" => rewind(store, &message).await,
                            // The stream ended because the team no longer takes this
                            // console: retrying would only be refused again.
                            "unauthorized" | "not_a_member" => SyncError::Refused { code, message },
                            _ => SyncError::Unreachable(message),
                        };
                    }
                }
            }
        }
        // Push what waits, oldest first, once the server has said who this token is (the
        // name entries go out under).
        let Some(you) = base.you.clone() else {
            continue;
        };
        if let Err(e) = push_pending(store, client, &you, on_applied).await {
            return e;
        }
        base.pending = store.team_pending_count().await.unwrap_or(0);
        base.state = if !caught_up {
            SyncState::Connecting
        } else if base.pending > 0 {
            SyncState::Syncing
        } else {
            SyncState::Synced
        };
        status.send_if_modified(|s| {
            if s != base {
                *s = base.clone();
                true
            } else {
                false
            }
        });
    }
}

/// Pushes what waits in the outbox, oldest first, under the name the server gave this
/// token, until nothing waits. A record too large for any server is answered here, as
/// the server would, and noted on its incident.
async fn push_pending(
    store: &Store,
    client: &TeamClient,
    you: &str,
    on_applied: &OnApplied,
) -> Result<(), SyncError> {
    loop {
        let pending = match store.team_pending(wire::MAX_PUSH_RECORDS as i64).await {
            Ok(p) => p,
            Err(e) => {
                return Err(SyncError::Unreachable(format!(
                    "cannot read the outbox: {e}"
                )))
            }
        };
        if pending.is_empty() {
            break;
        }
        let (pending, too_large) = split_push(pending);
        if !too_large.is_empty() {
            // No server takes them, and sent they could stop the push they ride in:
            // answered here as the server would, each noted on its incident.
            let outcomes: Vec<Outcome> = too_large
                .iter()
                .map(|(p, size)| Outcome::Invalid {
                    id: p.record.id,
                    message: format!(
                        "it is {size} bytes and a team record holds at most {}, so it was not sent",
                        wire::MAX_BODY_BYTES
                    ),
                })
                .collect();
            let too_large: Vec<Pending> = too_large.into_iter().map(|(p, _)| p).collect();
            answered(store, &too_large, &outcomes, on_applied).await?;
        }
        if pending.is_empty() {
            continue;
        }
        let records = pending
            .iter()
            .map(|p| p.record.clone().as_person(you))
            .collect();
        let answer = client.push(records).await?;
        answered(store, &pending, &answer.outcomes, on_applied).await?;
    }
    Ok(())
}

/// The records that have already arrived behind `first` (up to a batch), and the first
/// frame that is not a record, if one came.
fn more_records(
    sub: &mut Subscription,
    first: Shared,
) -> Result<(Vec<Shared>, Option<Frame>), SyncError> {
    let mut batch = vec![first];
    while batch.len() < APPLY_BATCH {
        match sub.next().now_or_never() {
            Some(Some(Ok(Frame::Record(r)))) => batch.push(*r),
            Some(Some(Ok(other))) => return Ok((batch, Some(other))),
            Some(Some(Err(e))) => return Err(e),
            Some(None) => {
                return Err(SyncError::Unreachable(
                    "the team server closed the stream".into(),
                ))
            }
            None => break,
        }
    }
    Ok((batch, None))
}

/// Keeps the answers to pushed records (the server's, or this console's own for a record
/// it did not send) and tells the window which incidents got a note from them.
async fn answered(
    store: &Store,
    pushed: &[Pending],
    outcomes: &[Outcome],
    on_applied: &OnApplied,
) -> Result<(), SyncError> {
    let noted = store
        .team_answered(pushed, outcomes)
        .await
        .map_err(|e| SyncError::Unreachable(format!("cannot record the server's answer: {e}")))?;
    if !noted.is_empty() {
        on_applied(&Applied {
            incidents: noted,
            ..Applied::default()
        });
    }
    Ok(())
}

/// The oldest records that fit in one push (half the server's limit on a push's size, at
/// least one record), and the records among them too large for any server to take, with
/// their size. What does not fit waits for the next push.
fn split_push(pending: Vec<Pending>) -> (Vec<Pending>, Vec<(Pending, usize)>) {
    let mut push = Vec::new();
    let mut too_large = Vec::new();
    let mut bytes = 0;
    for p in pending {
        let body = serde_json::to_vec(&p.record.body).map_or(usize::MAX, |b| b.len());
        if body > wire::MAX_BODY_BYTES {
            too_large.push((p, body));
            continue;
        }
        // The body and the record's id, incident and time around it.
        let size = body + 200;
        if !push.is_empty() && bytes + size > wire::MAX_PUSH_BYTES / 2 {
            break;
        }
        bytes += size;
        push.push(p);
    }
    (push, too_large)
}

/// Three heartbeats without a word and the link is taken as dead.
fn wire_silence() -> Duration {
    firebreak_protocol::team::HEARTBEAT * 3
}

fn people_of(people: Vec<wire::Presence>, console: Uuid) -> Vec<TeamPerson> {
    people
        .into_iter()
        .map(|p| TeamPerson {
            this_console: p.console == console,
            name: p.name,
            incident: p.incident.map(|i| i.to_string()),
        })
        .collect()
}

#[cfg(test)]
mod link_change_tests {
    use super::link_change;

    #[test]
    fn the_saved_token_stays_with_its_server_and_a_new_server_needs_a_person() {
        let now = Some(("https://team.example", None));
        // The same link (a team renamed, sync switched back on): nothing to confirm.
        let same = link_change(now, "https://team.example/", None);
        assert!(
            same.keeps_saved_token && same.to_confirm.is_empty(),
            "{same:?}"
        );
        // Another host, another path on the same host, another CA: the saved token is not
        // handed over, and a person confirms where the console now connects.
        for (url, ca) in [
            ("https://evil.example", None),
            ("https://team.example/elsewhere", None),
            ("https://team.example", Some("/tmp/ca.pem")),
        ] {
            let c = link_change(now, url, ca);
            assert!(!c.keeps_saved_token, "{url} {ca:?}: {c:?}");
            assert!(!c.to_confirm.is_empty(), "{url} {ca:?}: {c:?}");
        }
        let first = link_change(None, "https://team.example", None);
        assert!(!first.keeps_saved_token);
        assert!(
            first.to_confirm[0].contains("https://team.example"),
            "{first:?}"
        );
    }
}
