//! The rollouts under way as the Kubernetes watcher reads them, for the Prometheus
//! poller's figures by revision: for each service, the new revision and the stable one,
//! with the values their pods' metrics carry (`$revision` in `[services.revisions]`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::config::RevisionValue;

/// One revision of a workload as its ReplicaSet shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    pub number: u32,
    /// The ReplicaSet's pod template hash ("" when it has none).
    pub pod_template_hash: String,
    /// The model version the gateway reads for it ("" when the template does not say).
    pub model_version: String,
    /// The ReplicaSet's pods now.
    pub replicas: u32,
}

impl Revision {
    /// What `$revision` stands for, for this revision.
    pub fn value(&self, what: RevisionValue) -> String {
        match what {
            RevisionValue::Number => self.number.to_string(),
            RevisionValue::PodTemplateHash => self.pod_template_hash.clone(),
            RevisionValue::ModelVersion => self.model_version.clone(),
        }
    }
}

/// A rollout under way: the revision rolling out and the one it started from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnderWay {
    pub canary: Revision,
    pub stable: Revision,
}

/// Every service's rollout under way, by service; none while nothing rolls out.
#[derive(Debug, Clone, Default)]
pub struct Rollouts(Arc<Mutex<BTreeMap<String, UnderWay>>>);

impl Rollouts {
    /// What the watcher read for `service`: a rollout under way, or none.
    pub fn set(&self, service: &str, now: Option<UnderWay>) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match now {
            Some(u) => {
                map.insert(service.to_owned(), u);
            }
            None => {
                map.remove(service);
            }
        }
    }

    pub fn get(&self, service: &str) -> Option<UnderWay> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(service)
            .cloned()
    }
}

/// A ReplicaSet as a [`Revision`], the hash under the label `hash_label`.
pub fn of_replica_set(
    number: u32,
    rs: &k8s_openapi::api::apps::v1::ReplicaSet,
    hash_label: &str,
    model_version: String,
) -> Revision {
    Revision {
        number,
        pod_template_hash: rs
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(hash_label))
            .cloned()
            .unwrap_or_default(),
        model_version,
        replicas: rs
            .status
            .as_ref()
            .and_then(|s| u32::try_from(s.replicas).ok())
            .unwrap_or(0),
    }
}
