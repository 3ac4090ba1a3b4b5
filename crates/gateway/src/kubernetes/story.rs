//! The story a rollout tells on the stream, whatever drives it: `rollouts.rs` reads a
//! Deployment and `argo.rs` an Argo Rollout into the same [`Rollout`] facts, and [`tell`]
//! turns those into protocol v1 events (started, each wave done, then stalled, failed or
//! completed with the model change), each under a stable id made from what it describes
//! (workload, revision, step) and the rollout's start, never from when it was seen. The
//! journal publishes by those ids, so observing the same state again (a resync, a relist
//! after 410 Gone, a gateway restart) publishes nothing twice.

use chrono::{DateTime, Utc};
use firebreak_protocol::events::{
    ChangeCause, EventType, ModelVersionChanged, RolloutCompleted, RolloutFailed, RolloutStalled,
    RolloutStarted, RolloutWaveProgressed,
};

/// One event to publish under a stable id.
#[derive(Debug, Clone, PartialEq)]
pub struct Emit {
    pub id: String,
    pub ty: EventType,
    pub time: DateTime<Utc>,
    pub subject: String,
    pub data: serde_json::Value,
}

/// What a snapshot says, beside its events.
#[derive(Debug, Clone, PartialEq)]
pub struct Story {
    pub events: Vec<Emit>,
    /// The revision the workload is at (0 when it names none yet).
    pub revision: u32,
    /// Whether the status is about the current spec (observedGeneration caught up). When
    /// it is not, `events` is empty: wait for the controller.
    pub current: bool,
    /// The rollout to `revision` is done (or there was none): nothing is moving.
    pub settled: bool,
    /// While a rollout runs (or stalls): its new and stable revisions, for the figures
    /// by revision.
    pub under_way: Option<crate::revisions::UnderWay>,
}

impl Story {
    /// Nothing to tell yet: the controller has not caught up, or made the new ReplicaSet.
    pub(super) fn waiting(revision: u32, current: bool) -> Story {
        Story {
            events: Vec::new(),
            revision,
            current,
            settled: false,
            under_way: None,
        }
    }

    /// Nothing has rolled out since the workload was made: one revision only.
    pub(super) fn quiet(revision: u32) -> Story {
        Story {
            events: Vec::new(),
            revision,
            current: true,
            settled: true,
            under_way: None,
        }
    }
}

/// A rollout from one revision to the next, as the workload's snapshot shows it.
pub(super) struct Rollout<'a> {
    pub service: &'a str,
    /// The workload's name (the protocol's `deployment`).
    pub workload: String,
    /// Where the stable ids come from: `k8s/{namespace}/{resource}/{name}/revision/{to}`.
    pub key: String,
    /// `deployment/NAME` or `rollout/NAME`.
    pub subject: String,
    /// When the new revision's ReplicaSet was made: the time of `rollout.started` and of
    /// every id.
    pub started_at: DateTime<Utc>,
    pub from: u32,
    pub to: u32,
    pub from_model: String,
    pub to_model: String,
    pub waves: u32,
    pub replicas: u32,
}

/// One wave done so far.
pub(super) struct Wave {
    /// From 1.
    pub wave: u32,
    pub nodes_updated: u32,
    /// The canary's traffic weight, where the controller shifts traffic.
    pub traffic_weight: Option<u32>,
}

/// Where the rollout stands after its waves.
pub(super) enum Ending {
    /// Still moving.
    Running,
    /// No progress before the deadline (a Deployment's `ProgressDeadlineExceeded`).
    Stalled {
        at: DateTime<Utc>,
        wave: u32,
        reason: String,
        nodes_draining: u32,
    },
    /// Degraded or aborted (an Argo Rollout).
    Failed { reason: String },
    /// Every replica on the new revision and available.
    Completed {
        at: DateTime<Utc>,
        cause: ChangeCause,
    },
}

/// The story of `rollout`: started, `waves` done (stamped `now`: Kubernetes does not
/// record when a wave finished), then how it ended.
pub(super) fn tell(rollout: Rollout, waves: &[Wave], ending: Ending, now: DateTime<Utc>) -> Story {
    let Rollout {
        service,
        workload,
        key,
        subject,
        started_at,
        from,
        to,
        from_model,
        to_model,
        waves: total,
        replicas,
    } = rollout;
    let mut events = Vec::new();
    // Every step's id takes its time bits from the rollout's start: the same step is the
    // same id whenever it is observed.
    let mut emit = |step: &str, ty: EventType, time: DateTime<Utc>, data: serde_json::Value| {
        events.push(Emit {
            id: stable_id(&format!("{key}/{step}"), started_at),
            ty,
            time,
            subject: subject.clone(),
            data,
        });
    };
    emit(
        "started",
        EventType::RolloutStarted,
        started_at,
        data(&RolloutStarted {
            deployment: workload.clone(),
            service: service.to_owned(),
            from_revision: from,
            to_revision: to,
            model_version: to_model.clone(),
            waves: total,
            nodes_total: replicas,
        }),
    );
    for w in waves {
        emit(
            &format!("wave/{}", w.wave),
            EventType::RolloutWaveProgressed,
            now,
            data(&RolloutWaveProgressed {
                deployment: workload.clone(),
                service: service.to_owned(),
                to_revision: to,
                wave: w.wave,
                waves: total,
                nodes_updated: w.nodes_updated,
                nodes_total: replicas,
                traffic_weight: w.traffic_weight,
            }),
        );
    }
    let settled = match ending {
        Ending::Running => false,
        Ending::Stalled {
            at,
            wave,
            reason,
            nodes_draining,
        } => {
            emit(
                "stalled",
                EventType::RolloutStalled,
                at,
                data(&RolloutStalled {
                    deployment: workload.clone(),
                    service: service.to_owned(),
                    to_revision: to,
                    wave,
                    waves: total,
                    reason,
                    nodes_draining,
                }),
            );
            false
        }
        Ending::Failed { reason } => {
            emit(
                "failed",
                EventType::RolloutFailed,
                now,
                data(&RolloutFailed {
                    deployment: workload.clone(),
                    service: service.to_owned(),
                    to_revision: to,
                    reason,
                }),
            );
            false
        }
        Ending::Completed { at, cause } => {
            emit(
                "completed",
                EventType::RolloutCompleted,
                at,
                data(&RolloutCompleted {
                    deployment: workload.clone(),
                    service: service.to_owned(),
                    revision: to,
                }),
            );
            if from_model != to_model {
                emit(
                    "model",
                    EventType::ModelVersionChanged,
                    at,
                    data(&ModelVersionChanged {
                        deployment: workload.clone(),
                        service: service.to_owned(),
                        revision: to,
                        from_model,
                        to_model,
                        cause,
                    }),
                );
            }
            true
        }
    };
    Story {
        events,
        revision: to,
        current: true,
        settled,
        under_way: None,
    }
}

/// A UUIDv7 whose time is `time` (the rollout's start) and whose other bits come from
/// `key`: the same step of the same rollout is always the same event.
pub(super) fn stable_id(key: &str, time: DateTime<Utc>) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(key.as_bytes());
    let mut random = [0u8; 10];
    random.copy_from_slice(&digest[..10]);
    let millis = u64::try_from(time.timestamp_millis()).unwrap_or(0);
    uuid::Builder::from_unix_timestamp_millis(millis, &random)
        .into_uuid()
        .to_string()
}

/// Event data as JSON.
pub(super) fn data<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or_default()
}
