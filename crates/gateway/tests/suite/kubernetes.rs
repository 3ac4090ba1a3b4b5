//! The gateway's Kubernetes manifests (deploy/kubernetes/): each parses into the
//! Kubernetes API's own types with nothing left over (a misspelt or misplaced field would
//! be dropped by the API server without a word, so it fails here), the kustomization lists
//! every one, and the RBAC grants exactly the calls the gateway makes
//! (`firebreak_gateway::kubernetes::API_CALLS`): no more, no fewer, no wildcards.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use std::collections::BTreeSet;
use std::path::PathBuf;

use firebreak_gateway::kubernetes::{Scope, API_CALLS};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};

fn dir() -> PathBuf {
    firebreak_test_support::workspace_root().join("deploy/kubernetes")
}

/// Every manifest, by file name, as JSON.
fn manifests() -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".yaml") || name == "kustomization.yaml" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let value: serde_json::Value =
            serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{name} is not YAML: {e}"));
        out.push((name, value));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Parses `value` as `T` and checks that nothing was dropped on the way.
fn strict<T: serde::de::DeserializeOwned + serde::Serialize>(
    name: &str,
    value: &serde_json::Value,
) -> T {
    let typed: T = serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("{name} does not read as its kind: {e}"));
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(
        &back, value,
        "{name}: some field is not part of its kind (dropped when read)"
    );
    typed
}

#[test]
fn every_manifest_is_its_kind_exactly_and_the_kustomization_lists_them() {
    let all = manifests();
    let mut kinds = BTreeSet::new();
    for (name, value) in &all {
        let kind = value["kind"].as_str().unwrap_or_default().to_owned();
        match kind.as_str() {
            "Namespace" => drop(strict::<Namespace>(name, value)),
            "ServiceAccount" => drop(strict::<ServiceAccount>(name, value)),
            "ClusterRole" => drop(strict::<ClusterRole>(name, value)),
            "ClusterRoleBinding" => drop(strict::<ClusterRoleBinding>(name, value)),
            "Role" => drop(strict::<Role>(name, value)),
            "RoleBinding" => drop(strict::<RoleBinding>(name, value)),
            "PersistentVolumeClaim" => drop(strict::<PersistentVolumeClaim>(name, value)),
            "Deployment" => drop(strict::<Deployment>(name, value)),
            "Service" => drop(strict::<Service>(name, value)),
            "NetworkPolicy" => drop(strict::<NetworkPolicy>(name, value)),
            other => panic!("{name}: a kind this test does not know: {other:?}"),
        }
        kinds.insert(kind);
    }
    assert_eq!(
        kinds.len(),
        all.len(),
        "one object of each kind, one per file"
    );

    let kustomization: serde_json::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(dir().join("kustomization.yaml")).unwrap(),
    )
    .unwrap();
    let listed: BTreeSet<String> = kustomization["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    let files: BTreeSet<String> = all.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(listed, files, "the kustomization applies every manifest");
    assert!(
        kustomization.get("namespace").is_none(),
        "a kustomization namespace would move the Role out of the serving namespace"
    );

    // The configuration it ships is one the gateway accepts.
    let toml = dir().join("gateway.toml");
    firebreak_gateway::config::load(&toml).unwrap();
}

/// (group, resource, verb, scope) for every verb a rule grants; wildcards refused.
fn grants(
    rules: &[PolicyRule],
    scope: Scope,
    into: &mut BTreeSet<(String, String, String, Scope)>,
) {
    for rule in rules {
        let groups = rule.api_groups.clone().unwrap_or_default();
        let resources = rule.resources.clone().unwrap_or_default();
        assert!(
            rule.resource_names.is_none() && rule.non_resource_urls.is_none(),
            "{rule:?}"
        );
        for g in &groups {
            for r in &resources {
                for v in &rule.verbs {
                    for word in [g, r, v] {
                        assert!(!word.contains('*'), "no wildcards: {rule:?}");
                    }
                    into.insert((g.clone(), r.clone(), v.clone(), scope));
                }
            }
        }
    }
}

#[test]
fn the_rbac_grants_exactly_the_calls_the_gateway_makes() {
    let all = manifests();
    let get = |kind: &str| {
        all.iter()
            .find(|(_, v)| v["kind"] == kind)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let role: Role = serde_json::from_value(get("Role")).unwrap();
    let cluster_role: ClusterRole = serde_json::from_value(get("ClusterRole")).unwrap();
    let mut granted = BTreeSet::new();
    grants(
        &role.rules.unwrap_or_default(),
        Scope::Namespaced,
        &mut granted,
    );
    grants(
        &cluster_role.rules.unwrap_or_default(),
        Scope::Cluster,
        &mut granted,
    );
    let used: BTreeSet<(String, String, String, Scope)> = API_CALLS
        .iter()
        .map(|c| {
            (
                c.group.to_owned(),
                c.resource.to_owned(),
                c.verb.to_owned(),
                c.scope,
            )
        })
        .collect();
    let extra: Vec<_> = granted.difference(&used).collect();
    let missing: Vec<_> = used.difference(&granted).collect();
    assert!(extra.is_empty(), "granted but never used: {extra:?}");
    assert!(missing.is_empty(), "used but not granted: {missing:?}");
    // Writes only where an action writes.
    let writes: BTreeSet<&str> = API_CALLS
        .iter()
        .filter(|c| !matches!(c.verb, "get" | "list" | "watch"))
        .map(|c| c.resource)
        .collect();
    assert_eq!(
        writes,
        BTreeSet::from([
            "deployments",
            "httproutes",
            "rollouts",
            "rollouts/status",
            "virtualservices"
        ])
    );

    // The bindings give the roles to the gateway's service account and to nothing else.
    let binding: RoleBinding = serde_json::from_value(get("RoleBinding")).unwrap();
    let cluster_binding: ClusterRoleBinding =
        serde_json::from_value(get("ClusterRoleBinding")).unwrap();
    let account: ServiceAccount = serde_json::from_value(get("ServiceAccount")).unwrap();
    let name = account.metadata.name.clone().unwrap();
    let namespace = account.metadata.namespace.clone().unwrap();
    for subjects in [binding.subjects.unwrap(), cluster_binding.subjects.unwrap()] {
        assert_eq!(subjects.len(), 1);
        assert_eq!(subjects[0].kind, "ServiceAccount");
        assert_eq!(subjects[0].name, name);
        assert_eq!(subjects[0].namespace.as_deref(), Some(namespace.as_str()));
    }
    assert_eq!(binding.role_ref.name, role.metadata.name.unwrap());
    assert_eq!(
        binding.metadata.namespace, role.metadata.namespace,
        "the RoleBinding is in the Role's namespace"
    );
    assert_eq!(
        cluster_binding.role_ref.name,
        cluster_role.metadata.name.unwrap()
    );

    // The gateway runs as that account, unprivileged, on a read-only root.
    let deployment: Deployment = serde_json::from_value(get("Deployment")).unwrap();
    let pod = deployment.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some(name.as_str()));
    assert_eq!(pod.security_context.unwrap().run_as_non_root, Some(true));
    let container = &pod.containers[0];
    let security = container.security_context.clone().unwrap();
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(
        security.capabilities.unwrap().drop.unwrap(),
        ["ALL".to_owned()]
    );
    // The image runs firebreak-gateway: its arguments are the gateway's own.
    assert_eq!(container.args.clone().unwrap()[..1], ["--config"]);
}

mod watching {
    use std::path::Path;
    use std::sync::Arc;
    use std::time::Duration;

    use firebreak_gateway::journal::{DurableJournal, Read, Retention};
    use serde_json::{json, Value};

    use crate::support::fake_kube::{FakeKube, DEPLOYMENTS, EVENTS, NODES, PODS, REPLICA_SETS};
    use crate::support::rig::wait_for;

    fn deployment(revision: u32, generation: i64, updated: i32, reason: &str) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {
                "name": "llm-assistant", "namespace": "serving", "generation": generation, "uid": "d-1",
                "labels": { "app": "llm-assistant" },
                "annotations": { "deployment.kubernetes.io/revision": revision.to_string() }
            },
            "spec": {
                "replicas": 16,
                "selector": { "matchLabels": { "app": "llm-assistant" } },
                "template": { "metadata": { "labels": { "app": "llm-assistant" } }, "spec": { "containers": [{ "name": "vllm", "image": "vllm:1" }] } }
            },
            "status": {
                "observedGeneration": generation, "replicas": 16, "updatedReplicas": updated,
                "availableReplicas": updated, "readyReplicas": updated,
                "conditions": [{ "type": "Progressing", "status": "True", "reason": reason, "message": reason,
                                 "lastUpdateTime": "2026-11-30T03:20:00Z", "lastTransitionTime": "2026-11-30T03:19:00Z" }]
            }
        })
    }

    fn replica_set(revision: u32, model: &str) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {
                "name": format!("llm-assistant-r{revision}"), "namespace": "serving", "uid": format!("rs-{revision}"),
                "creationTimestamp": "2026-11-30T03:10:00Z",
                "labels": { "app": "llm-assistant", "pod-template-hash": format!("h{revision}") },
                "annotations": { "deployment.kubernetes.io/revision": revision.to_string() },
                "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "Deployment", "name": "llm-assistant", "uid": "d-1", "controller": true }]
            },
            "spec": {
                "selector": { "matchLabels": { "app": "llm-assistant" } },
                "template": { "metadata": { "labels": { "app": "llm-assistant" }, "annotations": { "serving.example.com/model-version": model } },
                              "spec": { "containers": [{ "name": "vllm", "image": "vllm:1" }] } }
            }
        })
    }

    fn node(ready: &str, since: chrono::DateTime<chrono::Utc>) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": { "name": "gpu-1", "uid": "n-1", "labels": { "firebreak.dev/pool": "gpu-a100", "topology.kubernetes.io/region": "us-east" } },
            "status": { "conditions": [{ "type": "Ready", "status": ready, "reason": "KubeletReady",
                                          "lastHeartbeatTime": since.to_rfc3339(), "lastTransitionTime": since.to_rfc3339() }] }
        })
    }

    async fn published(journal: &DurableJournal) -> Vec<String> {
        match journal.read_after(0, 10_000).await.unwrap() {
            Read::Frames { frames, .. } => frames
                .iter()
                .map(|f| {
                    let v: Value = serde_json::from_str(f.as_str()).unwrap();
                    v["type"]
                        .as_str()
                        .unwrap()
                        .trim_start_matches("dev.firebreak.")
                        .to_owned()
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// A rollout watched from the fake API server: its start and waves, then a 410 Gone
    /// that makes the watchers list again (publishing nothing twice), the completion with
    /// the model change, and a node that stops reporting; nothing before the rollout (one
    /// revision, a node healthy for days) is news.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_watched_rollout_and_node_become_events_once_across_a_410_relist() {
        firebreak_common::process::install_tls_provider();
        let fake = FakeKube::start().await;
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = fake.kubeconfig(dir.path());
        let text = format!(
            "cluster = \"prod\"\nlisten = \"127.0.0.1:0\"\n[[tokens]]\nname = \"oncall\"\nenv = \"T\"\n\
             [kubernetes]\nkubeconfig = \"{}\"\nmodel_version = {{ annotation = \"serving.example.com/model-version\" }}\n\
             [[services]]\nname = \"llm-assistant\"\nregions = [\"us-east\"]\n\
             [services.kubernetes]\nnamespace = \"serving\"\npods = \"app=llm-assistant\"\nnode_pool = \"gpu-a100\"\n",
            kubeconfig.display()
        );
        let config = firebreak_gateway::config::parse(Path::new("gateway.toml"), &text).unwrap();
        let journal = Arc::new(
            DurableJournal::open(&dir.path().join("journal.db"), Retention::default())
                .await
                .unwrap(),
        );

        // Before the gateway looks: one revision, complete; a node healthy for days.
        fake.apply(REPLICA_SETS, replica_set(41, "llama-70b-2026-10"));
        fake.apply(DEPLOYMENTS, deployment(41, 1, 16, "NewReplicaSetAvailable"));
        fake.apply(
            NODES,
            node("True", chrono::Utc::now() - chrono::Duration::days(3)),
        );
        let watching = tokio::spawn(firebreak_gateway::kubernetes::watch::run(
            config.kubernetes.clone().unwrap(),
            config.services.clone(),
            config.cluster.clone(),
            journal.clone(),
            firebreak_gateway::revisions::Rollouts::default(),
        ));
        wait_for(
            Duration::from_secs(20),
            "the watchers to list",
            async || fake.lists() >= 5,
        )
        .await;

        // Revision 42 rolls out: half the replicas updated.
        fake.apply(REPLICA_SETS, replica_set(42, "llama-70b-2026-11"));
        fake.apply(DEPLOYMENTS, deployment(42, 2, 8, "ReplicaSetUpdated"));
        wait_for(
            Duration::from_secs(20),
            "the rollout's start and waves",
            async || published(&journal).await.len() >= 3,
        )
        .await;
        assert_eq!(
            published(&journal).await,
            [
                "rollout.started",
                "rollout.wave_progressed",
                "rollout.wave_progressed"
            ]
        );

        // The API server compacts its history and drops the watches: 410 Gone, relist.
        let lists = fake.lists();
        fake.compact();
        fake.drop_watches();
        wait_for(Duration::from_secs(30), "a relist after 410", async || {
            fake.lists() > lists
        })
        .await;

        // Completed; then the node stops reporting, and a pod is OOMKilled.
        fake.apply(DEPLOYMENTS, deployment(42, 2, 16, "NewReplicaSetAvailable"));
        fake.apply(NODES, node("Unknown", chrono::Utc::now()));
        fake.apply(
            PODS,
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": { "name": "llm-assistant-h42-x1", "namespace": "serving", "uid": "p-1", "labels": { "app": "llm-assistant" } },
                "spec": { "nodeName": "gpu-1", "containers": [{ "name": "vllm", "image": "vllm:1" }] },
                "status": { "containerStatuses": [{
                    "name": "vllm", "ready": false, "restartCount": 1, "image": "vllm:1", "imageID": "x",
                    "state": { "running": { "startedAt": "2026-11-30T03:25:00Z" } },
                    "lastState": { "terminated": { "reason": "OOMKilled", "exitCode": 137, "finishedAt": "2026-11-30T03:24:59Z" } }
                }] }
            }),
        );
        // The scheduler warns about it, and about a pod of another service.
        for (name, uid) in [
            ("llm-assistant-h42-x1", "e-1"),
            ("search-ranking-x9", "e-2"),
        ] {
            fake.apply(
                EVENTS,
                json!({
                    "apiVersion": "v1", "kind": "Event",
                    "metadata": { "name": format!("{name}.1"), "namespace": "serving", "uid": uid },
                    "involvedObject": { "kind": "Pod", "name": name, "namespace": "serving" },
                    "reason": "BackOff", "message": "Back-off restarting failed container vllm",
                    "type": "Warning", "count": 2,
                    "firstTimestamp": "2026-11-30T03:25:00Z", "lastTimestamp": "2026-11-30T03:25:30Z"
                }),
            );
        }
        wait_for(
            Duration::from_secs(20),
            "the completion, the node and the pod",
            async || {
                let all = published(&journal).await;
                [
                    "node.down",
                    "model.version_changed",
                    "pod.failing",
                    "cluster.warning",
                ]
                .iter()
                .all(|t| all.contains(&(*t).to_owned()))
            },
        )
        .await;
        let mut all = published(&journal).await;
        all.sort();
        assert_eq!(
            all,
            [
                "cluster.warning",
                "model.version_changed",
                "node.down",
                "pod.failing",
                "rollout.completed",
                "rollout.started",
                "rollout.wave_progressed",
                "rollout.wave_progressed",
                "rollout.wave_progressed",
                "rollout.wave_progressed",
            ],
            "each step once, whatever the relist showed again"
        );
        watching.abort();
    }

    /// A gateway whose kubeconfig cannot be read says so on the stream, once, rather than
    /// watching nothing in silence.
    #[tokio::test(flavor = "multi_thread")]
    async fn an_unreachable_api_is_a_source_degraded_event() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "cluster = \"prod\"\nlisten = \"127.0.0.1:0\"\n[[tokens]]\nname = \"oncall\"\nenv = \"T\"\n\
             [kubernetes]\nkubeconfig = \"{}\"\n\
             [[services]]\nname = \"llm-assistant\"\nregions = [\"us-east\"]\n\
             [services.kubernetes]\nnamespace = \"serving\"\npods = \"app=llm-assistant\"\n",
            dir.path().join("missing-kubeconfig").display()
        );
        let config = firebreak_gateway::config::parse(Path::new("gateway.toml"), &text).unwrap();
        let journal = Arc::new(
            DurableJournal::open(&dir.path().join("journal.db"), Retention::default())
                .await
                .unwrap(),
        );
        let reporting = tokio::spawn(firebreak_gateway::kubernetes::watch::run_reporting(
            config.kubernetes.clone().unwrap(),
            tokio::sync::watch::channel(std::sync::Arc::new(config.services.clone())).1,
            config.cluster.clone(),
            journal.clone(),
            firebreak_gateway::revisions::Rollouts::default(),
        ));
        wait_for(Duration::from_secs(20), "source.degraded", async || {
            !published(&journal).await.is_empty()
        })
        .await;
        let Read::Frames { frames, .. } = journal.read_after(0, 10).await.unwrap() else {
            panic!("published")
        };
        let event: Value = serde_json::from_str(frames[0].as_str()).unwrap();
        assert_eq!(event["type"], "dev.firebreak.source.degraded");
        assert_eq!(event["data"]["source"], "kubernetes");
        assert_eq!(event["data"]["degraded"], true);
        let reason = event["data"]["reason"].as_str().unwrap();
        assert!(
            reason.contains("cannot read") && reason.contains("missing-kubeconfig"),
            "{reason}"
        );
        reporting.abort();
    }
    /// An Argo canary watched through the dynamic API: its start and the weight steps done,
    /// then its promotion, each once.
    #[tokio::test(flavor = "multi_thread")]
    async fn an_argo_canary_is_watched_step_by_step() {
        use crate::support::fake_kube::ROLLOUTS;
        firebreak_common::process::install_tls_provider();
        let fake = FakeKube::start().await;
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "cluster = \"prod\"\nlisten = \"127.0.0.1:0\"\n[[tokens]]\nname = \"oncall\"\nenv = \"T\"\n\
             [kubernetes]\nkubeconfig = \"{}\"\nmodel_version = {{ annotation = \"serving.example.com/model-version\" }}\n\
             [[services]]\nname = \"llm-assistant\"\nregions = [\"us-east\"]\n\
             [services.kubernetes]\nnamespace = \"serving\"\nkind = \"Rollout\"\npods = \"app=llm-assistant\"\n",
            fake.kubeconfig(dir.path()).display()
        );
        let config = firebreak_gateway::config::parse(Path::new("gateway.toml"), &text).unwrap();
        let journal = Arc::new(
            DurableJournal::open(&dir.path().join("journal.db"), Retention::default())
                .await
                .unwrap(),
        );
        let rs = |revision: u32, hash: &str, model: &str| {
            json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {
                    "name": format!("llm-assistant-{hash}"), "namespace": "serving", "uid": format!("rs-{hash}"),
                    "creationTimestamp": "2026-11-30T03:00:00Z",
                    "labels": { "app": "llm-assistant", "rollouts-pod-template-hash": hash },
                    "annotations": { "rollout.argoproj.io/revision": revision.to_string() },
                    "ownerReferences": [{ "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "llm-assistant", "uid": "r-1" }]
                },
                "spec": {
                    "selector": { "matchLabels": { "app": "llm-assistant" } },
                    "template": { "metadata": { "annotations": { "serving.example.com/model-version": model } },
                                  "spec": { "containers": [{ "name": "vllm", "image": "vllm:1" }] } }
                }
            })
        };
        let rollout = |current: &str, stable: &str, step: u64, phase: &str| {
            json!({
                "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                "metadata": { "name": "llm-assistant", "namespace": "serving", "generation": 2, "uid": "r-1" },
                "spec": { "replicas": 10, "strategy": { "canary": { "steps": [
                    { "setWeight": 10 }, { "pause": {} }, { "setWeight": 50 }, { "pause": {} }, { "setWeight": 100 }
                ] } } },
                "status": { "observedGeneration": "2", "currentPodHash": current, "stableRS": stable,
                            "currentStepIndex": step, "phase": phase }
            })
        };
        fake.apply(REPLICA_SETS, rs(6, "aaa", "llama-70b-2026-10"));
        fake.apply(REPLICA_SETS, rs(7, "bbb", "llama-70b-2026-11"));
        fake.apply(ROLLOUTS, rollout("bbb", "aaa", 3, "Paused"));
        let watching = tokio::spawn(firebreak_gateway::kubernetes::watch::run(
            config.kubernetes.clone().unwrap(),
            config.services.clone(),
            config.cluster.clone(),
            journal.clone(),
            firebreak_gateway::revisions::Rollouts::default(),
        ));
        wait_for(
            Duration::from_secs(20),
            "the canary's start and steps",
            async || published(&journal).await.len() >= 3,
        )
        .await;
        fake.apply(ROLLOUTS, rollout("bbb", "bbb", 5, "Healthy"));
        wait_for(Duration::from_secs(20), "the promotion", async || {
            published(&journal)
                .await
                .contains(&"rollout.completed".to_owned())
        })
        .await;
        wait_for(Duration::from_secs(5), "the model change", async || {
            published(&journal)
                .await
                .contains(&"model.version_changed".to_owned())
        })
        .await;
        assert_eq!(
            published(&journal).await,
            [
                "rollout.started",
                "rollout.wave_progressed",
                "rollout.wave_progressed",
                "rollout.wave_progressed",
                "rollout.completed",
                "model.version_changed"
            ]
        );
        watching.abort();
    }

    /// Every watcher says when the API fails it and when it works again, whichever of its
    /// streams failed: here the Argo Rollout's ReplicaSets, refused for a while (as RBAC
    /// without the grant) while the Rollout itself does not change, then a ReplicaSet made.
    #[tokio::test(flavor = "multi_thread")]
    async fn an_argo_replica_set_stream_that_fails_then_works_says_both() {
        use crate::support::fake_kube::ROLLOUTS;
        firebreak_common::process::install_tls_provider();
        let fake = FakeKube::start().await;
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "cluster = \"prod\"\nlisten = \"127.0.0.1:0\"\n[[tokens]]\nname = \"oncall\"\nenv = \"T\"\n\
             [kubernetes]\nkubeconfig = \"{}\"\n\
             [[services]]\nname = \"llm-assistant\"\nregions = [\"us-east\"]\n\
             [services.kubernetes]\nnamespace = \"serving\"\nkind = \"Rollout\"\npods = \"app=llm-assistant\"\n",
            fake.kubeconfig(dir.path()).display()
        );
        let config = firebreak_gateway::config::parse(Path::new("gateway.toml"), &text).unwrap();
        let journal = Arc::new(
            DurableJournal::open(&dir.path().join("journal.db"), Retention::default())
                .await
                .unwrap(),
        );
        fake.apply(
            ROLLOUTS,
            json!({
                "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                "metadata": { "name": "llm-assistant", "namespace": "serving", "generation": 1, "uid": "r-1" },
                "spec": { "replicas": 4 },
                "status": { "observedGeneration": "1", "phase": "Healthy" }
            }),
        );
        let lists = fake.lists();
        let watching = tokio::spawn(firebreak_gateway::kubernetes::watch::run(
            config.kubernetes.clone().unwrap(),
            config.services.clone(),
            config.cluster.clone(),
            journal.clone(),
            firebreak_gateway::revisions::Rollouts::default(),
        ));
        wait_for(Duration::from_secs(20), "both streams listed", async || {
            fake.lists() >= lists + 2
        })
        .await;
        let degraded = async || -> Vec<(bool, String, String)> {
            let Read::Frames { frames, .. } = journal.read_after(0, 10_000).await.unwrap() else {
                return Vec::new();
            };
            frames
                .iter()
                .map(|f| serde_json::from_str::<Value>(f.as_str()).unwrap())
                .filter(|e| e["type"] == "dev.firebreak.source.degraded")
                .map(|e| {
                    let d = &e["data"];
                    (
                        d["degraded"].as_bool().unwrap(),
                        d["what"].as_str().unwrap().to_owned(),
                        d["reason"].as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        };
        assert!(degraded().await.is_empty(), "{:?}", degraded().await);

        fake.refuse(REPLICA_SETS, true);
        fake.drop_watches();
        wait_for(Duration::from_secs(30), "the refusal said", async || {
            !degraded().await.is_empty()
        })
        .await;
        let said = degraded().await;
        assert!(said[0].0, "{said:?}");
        assert_eq!(said[0].1, "Rollout serving/llm-assistant");
        assert!(said[0].2.contains("forbidden"), "{said:?}");

        // A watch that works again says nothing until something changes: the next
        // ReplicaSet the controller makes is what shows the stream works.
        fake.refuse(REPLICA_SETS, false);
        fake.apply(
            REPLICA_SETS,
            json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {
                    "name": "llm-assistant-aaa", "namespace": "serving", "uid": "rs-aaa",
                    "labels": { "app": "llm-assistant", "rollouts-pod-template-hash": "aaa" },
                    "annotations": { "rollout.argoproj.io/revision": "1" },
                    "ownerReferences": [{ "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "llm-assistant", "uid": "r-1" }]
                },
                "spec": { "selector": { "matchLabels": { "app": "llm-assistant" } } }
            }),
        );
        wait_for(Duration::from_secs(60), "the recovery said", async || {
            degraded().await.len() >= 2
        })
        .await;
        let said = degraded().await;
        assert!(!said[1].0, "{said:?}");
        assert!(said[1].2.starts_with("works again (was: "), "{said:?}");
        assert_eq!(said.len(), 2, "each said once: {said:?}");
        watching.abort();
    }
}

/// Rollback and failover through the gateway's action API, carried out on the fake API
/// server as JSON Patches that test the resourceVersion the gateway read.
mod acting {
    use std::path::Path;
    use std::time::Duration;

    use crate::support::rig::wait_for;

    use firebreak_engine::actions::client::{ActionClient, Outcome};
    use firebreak_protocol::actions::{ActionState, FailoverRequest, RollbackRequest};
    use serde_json::{json, Value};

    use crate::support::fake_kube::{FakeKube, DEPLOYMENTS, HTTP_ROUTES, REPLICA_SETS, ROLLOUTS};

    const TOKEN: &str = "console-token-0123456789";

    fn deployment(revision: u32, model: &str) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {
                "name": "llm-assistant", "namespace": "serving", "generation": 3, "uid": "d-1",
                "annotations": { "deployment.kubernetes.io/revision": revision.to_string() }
            },
            "spec": {
                "replicas": 16,
                "selector": { "matchLabels": { "app": "llm-assistant" } },
                "template": { "metadata": { "labels": { "app": "llm-assistant" }, "annotations": { "serving.example.com/model-version": model } },
                              "spec": { "containers": [{ "name": "vllm", "image": "vllm:1" }] } }
            },
            "status": { "observedGeneration": 3, "replicas": 16, "updatedReplicas": 16, "availableReplicas": 16 }
        })
    }

    fn replica_set(revision: u32, model: &str) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {
                "name": format!("llm-assistant-h{revision}"), "namespace": "serving", "uid": format!("rs-{revision}"),
                "creationTimestamp": "2026-11-30T03:10:00Z",
                "labels": { "app": "llm-assistant", "pod-template-hash": format!("h{revision}") },
                "annotations": { "deployment.kubernetes.io/revision": revision.to_string(), "kubernetes.io/change-cause": format!("deploy {model}") },
                "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "Deployment", "name": "llm-assistant", "uid": "d-1", "controller": true }]
            },
            "spec": {
                "selector": { "matchLabels": { "app": "llm-assistant" } },
                "template": {
                    "metadata": { "labels": { "app": "llm-assistant", "pod-template-hash": format!("h{revision}") },
                                  "annotations": { "serving.example.com/model-version": model } },
                    "spec": { "containers": [{ "name": "vllm", "image": "vllm:1" }] }
                }
            }
        })
    }

    fn route() -> Value {
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": { "name": "llm-assistant", "namespace": "serving" },
            "spec": { "rules": [{ "backendRefs": [
                { "name": "llm-assistant-us-east", "port": 8000, "weight": 100 },
                { "name": "llm-assistant-eu-west", "port": 8000, "weight": 0 }
            ] }] }
        })
    }

    /// The weights of serving/llm-assistant's first rule's backends, in order.
    fn route_weights(fake: &FakeKube) -> Vec<i64> {
        fake.object(HTTP_ROUTES, "serving", "llm-assistant")["spec"]["rules"][0]["backendRefs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["weight"].as_i64().unwrap())
            .collect()
    }

    async fn gateway(fake: &FakeKube, dir: &Path) -> firebreak_gateway::serve::RunningGateway {
        gateway_for(fake, dir, "Deployment").await
    }

    async fn gateway_for(
        fake: &FakeKube,
        dir: &Path,
        kind: &str,
    ) -> firebreak_gateway::serve::RunningGateway {
        let route = "[services.kubernetes.route]\nnamespace = \"serving\"\nname = \"llm-assistant\"\n\
             backends = { us-east = \"llm-assistant-us-east\", eu-west = \"llm-assistant-eu-west\" }\n";
        gateway_with(fake, dir, kind, route).await
    }

    async fn gateway_with(
        fake: &FakeKube,
        dir: &Path,
        kind: &str,
        route: &str,
    ) -> firebreak_gateway::serve::RunningGateway {
        let journal = firebreak_gateway::journal::DurableJournal::open(
            &dir.join("journal.db"),
            firebreak_gateway::journal::Retention::default(),
        )
        .await
        .unwrap();
        gateway_on(fake, dir, kind, route, std::sync::Arc::new(journal)).await
    }

    /// [`gateway_with`] on a journal the test reads too.
    async fn gateway_on(
        fake: &FakeKube,
        dir: &Path,
        kind: &str,
        route: &str,
        journal: std::sync::Arc<firebreak_gateway::journal::DurableJournal>,
    ) -> firebreak_gateway::serve::RunningGateway {
        std::fs::write(dir.join("oncall.token"), TOKEN).unwrap();
        let text = format!(
            "cluster = \"prod\"\nlisten = \"127.0.0.1:0\"\n[[tokens]]\nname = \"oncall\"\nfile = \"{}\"\n\
             [kubernetes]\nkubeconfig = \"{}\"\nmodel_version = {{ annotation = \"serving.example.com/model-version\" }}\n\
             [[services]]\nname = \"llm-assistant\"\nregions = [\"us-east\", \"eu-west\"]\n\
             [services.kubernetes]\nkind = \"{kind}\"\nnamespace = \"serving\"\npods = \"app=llm-assistant\"\nnode_pool = \"gpu-a100\"\n\
             {route}",
            dir.join("oncall.token").display(),
            fake.kubeconfig(dir).display()
        );
        let config = firebreak_gateway::config::parse(Path::new("gateway.toml"), &text).unwrap();
        firebreak_gateway::serve::start_on(&config, journal)
            .await
            .unwrap()
    }

    /// A gateway told of no service, finding them in the namespace `serving` by the
    /// `firebreak.dev/service` label every second.
    async fn discovering_gateway(
        fake: &FakeKube,
        dir: &Path,
    ) -> firebreak_gateway::serve::RunningGateway {
        std::fs::write(dir.join("oncall.token"), TOKEN).unwrap();
        let text = format!(
            "cluster = \"prod\"\nlisten = \"127.0.0.1:0\"\n[[tokens]]\nname = \"oncall\"\nfile = \"{}\"\n\
             [kubernetes]\nkubeconfig = \"{}\"\nmodel_version = {{ annotation = \"serving.example.com/model-version\" }}\n\
             [discovery]\ninterval_s = 1\n[discovery.kubernetes]\nnamespaces = [\"serving\"]\nregions = [\"us-east\"]\n",
            dir.join("oncall.token").display(),
            fake.kubeconfig(dir).display()
        );
        let config = firebreak_gateway::config::parse(Path::new("gateway.toml"), &text).unwrap();
        firebreak_gateway::serve::start(&config, &dir.join("journal.db"))
            .await
            .unwrap()
    }

    /// A labelled Deployment appearing is a service within a round, read and rolled back
    /// through the API as a listed one is, without a restart; unlabelled workloads are
    /// not services; a labelled one whose stack names no preset is refused with why; the
    /// Deployment deleted, the service is retired and no longer offered.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_labelled_deployment_becomes_a_service_that_can_be_rolled_back_and_is_retired_when_deleted(
    ) {
        firebreak_common::process::install_tls_provider();
        let fake = FakeKube::start().await;
        fake.apply(REPLICA_SETS, replica_set(41, "llama-70b-2026-10"));
        fake.apply(REPLICA_SETS, replica_set(42, "llama-70b-2026-11"));
        // Not labelled yet: not a service.
        fake.apply(DEPLOYMENTS, deployment(42, "llama-70b-2026-11"));
        let mut odd = deployment(7, "other");
        odd["metadata"]["name"] = json!("embedder");
        odd["metadata"]["labels"] =
            json!({ "firebreak.dev/service": "embedder", "firebreak.dev/stack": "ollama" });
        fake.apply(DEPLOYMENTS, odd);
        let dir = tempfile::tempdir().unwrap();
        let gw = discovering_gateway(&fake, dir.path()).await;
        let c = ActionClient::new(&gw.base_url(), Some(TOKEN.into()), None).unwrap();
        let status = async || crate::support::rig::gateway_status(&gw.base_url(), TOKEN).await;
        wait_for(
            Duration::from_secs(30),
            "a round of discovery",
            async || !status().await["discovery"]["at"].is_null(),
        )
        .await;
        let Outcome::Ok(services) = c.services().await else {
            panic!("readable")
        };
        assert!(
            services.is_empty(),
            "nothing labelled usable yet: {services:?}"
        );
        let refused = status().await["discovery"]["refused"].to_string();
        assert!(
            refused.contains("Deployment serving/embedder") && refused.contains("names no preset"),
            "{refused}"
        );

        // Labelled: a service named by the label, its workload the Deployment.
        // Labelled, with its pool, regions and the route that fails it over (each region's
        // backend named on the workload).
        let labelled = |mut d: Value| {
            d["metadata"]["labels"] =
                json!({ "firebreak.dev/service": "chat", "firebreak.dev/pool": "gpu-a100" });
            let a = &mut d["metadata"]["annotations"];
            a["firebreak.dev/regions"] = json!("us-east,eu-west");
            a["firebreak.dev/route"] = json!("HTTPRoute/llm-assistant");
            a["firebreak.dev/backends"] =
                json!("us-east=llm-assistant-us-east,eu-west=llm-assistant-eu-west");
            d
        };
        fake.apply(HTTP_ROUTES, route());
        fake.apply(DEPLOYMENTS, labelled(deployment(42, "llama-70b-2026-11")));
        let offered = async || match c.services().await {
            Outcome::Ok(s) => s.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
            _ => Vec::new(),
        };
        wait_for(
            Duration::from_secs(30),
            "the labelled Deployment offered as a service",
            async || offered().await == ["chat"],
        )
        .await;
        // Its workload is watched too, from the round it was found: a rollout of revision
        // 43 starts, and the gateway tells it for the discovered service.
        fake.apply(REPLICA_SETS, replica_set(43, "llama-70b-2026-12"));
        let mut rolling = labelled(deployment(43, "llama-70b-2026-12"));
        rolling["metadata"]["generation"] = json!(4);
        rolling["status"] = json!({ "observedGeneration": 4, "replicas": 16, "updatedReplicas": 4, "availableReplicas": 16 });
        fake.apply(DEPLOYMENTS, rolling);
        let journal_types = async || -> Vec<(String, String)> {
            use sqlx::Connection;
            let path = dir.path().join("journal.db");
            let Ok(mut conn) =
                sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=ro", path.display()))
                    .await
            else {
                return Vec::new();
            };
            let rows: Vec<(String,)> = sqlx::query_as("SELECT frame FROM frames ORDER BY seq")
                .fetch_all(&mut conn)
                .await
                .unwrap_or_default();
            rows.iter()
                .filter_map(|(f,)| serde_json::from_str::<Value>(f).ok())
                .map(|f| {
                    (
                        f["type"].as_str().unwrap_or("").to_owned(),
                        f["data"]["service"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        };
        wait_for(
            Duration::from_secs(30),
            "the discovered service's rollout told",
            async || {
                journal_types()
                    .await
                    .iter()
                    .any(|(ty, service)| ty == "dev.firebreak.rollout.started" && service == "chat")
            },
        )
        .await;
        let Outcome::Ok(d) = c.deployment("llm-assistant").await else {
            panic!("its workload is readable")
        };
        assert_eq!(d.current_revision, 43);
        match c
            .rollback("llm-assistant", &rollback(41, 43), "k-found")
            .await
        {
            Outcome::Ok(a) => assert_ne!(a.state, ActionState::Failed, "{a:?}"),
            other => panic!("a discovered service is rolled back as a listed one: {other:?}"),
        }
        wait_for(
            Duration::from_secs(30),
            "the rollback patched",
            async || {
                fake.object(DEPLOYMENTS, "serving", "llm-assistant")["spec"]["template"]["metadata"]
                    ["annotations"]["serving.example.com/model-version"]
                    == "llama-70b-2026-10"
            },
        )
        .await;

        // Failed over through the route its annotations name.
        let Outcome::Ok(moved) = c
            .failover("chat", &failover_to("eu-west", "us-east"), "k-move")
            .await
        else {
            panic!("a discovered service with a route fails over")
        };
        assert_eq!(moved.state, ActionState::Succeeded, "{moved:?}");
        let weights = route_weights(&fake);
        assert_eq!(weights, [0, 100], "eu-west serves now");

        // Deleted: retired, and no longer offered.
        fake.delete(DEPLOYMENTS, "serving", "llm-assistant");
        wait_for(Duration::from_secs(30), "the service retired", async || {
            offered().await.is_empty()
        })
        .await;
        gw.shutdown();
        let frames: Vec<(String,)> = {
            use sqlx::Connection;
            let path = dir.path().join("journal.db");
            let mut conn =
                sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=ro", path.display()))
                    .await
                    .unwrap();
            sqlx::query_as("SELECT frame FROM frames ORDER BY seq")
                .fetch_all(&mut conn)
                .await
                .unwrap()
        };
        let said: Vec<Value> = frames
            .iter()
            .map(|(f,)| serde_json::from_str::<Value>(f).unwrap())
            .filter(|f| {
                f["type"]
                    .as_str()
                    .unwrap()
                    .starts_with("dev.firebreak.service.")
            })
            .collect();
        assert_eq!(said.len(), 2, "announced once, retired once: {said:#?}");
        assert_eq!(said[0]["type"], "dev.firebreak.service.discovered");
        assert_eq!(said[0]["data"]["service"], "chat");
        assert_eq!(said[0]["data"]["regions"], json!(["us-east", "eu-west"]));
        assert_eq!(said[0]["data"]["stack"], "none");
        assert_eq!(said[1]["type"], "dev.firebreak.service.retired");
    }

    /// `gateway init` with a kubeconfig and a namespace: a labelled Deployment is named
    /// with its service, one that runs vLLM unlabelled gets the command that labels it, and
    /// the configuration discovers in that namespace and checks.
    #[tokio::test(flavor = "multi_thread")]
    async fn gateway_init_names_labelled_workloads_and_says_how_to_label_the_others() {
        firebreak_common::process::install_tls_provider();
        let fake = FakeKube::start().await;
        let mut labelled = deployment(42, "llama-70b-2026-11");
        labelled["metadata"]["labels"] = json!({ "firebreak.dev/service": "chat" });
        labelled["metadata"]["annotations"]["firebreak.dev/regions"] = json!("us-east");
        fake.apply(DEPLOYMENTS, labelled);
        let mut plain = deployment(3, "embed-v3");
        plain["metadata"]["name"] = json!("embedder");
        plain["spec"]["template"]["spec"]["containers"][0]["image"] =
            json!("vllm/vllm-openai:v0.9.2");
        fake.apply(DEPLOYMENTS, plain);
        fake.apply(HTTP_ROUTES, route());
        for (name, gpus) in [("gpu-1", "8"), ("gpu-2", "8")] {
            fake.apply(
                crate::support::fake_kube::NODES,
                json!({
                    "apiVersion": "v1", "kind": "Node",
                    "metadata": { "name": name, "labels": { "cloud.google.com/gke-nodepool": "gpu-a100" } },
                    "status": { "capacity": { "nvidia.com/gpu": gpus } }
                }),
            );
        }
        let dir = tempfile::tempdir().unwrap();
        // A Prometheus with nothing to scrape: no stack's metrics.
        let (prometheus, _prometheus) =
            crate::support::prometheus::prometheus_file_sd(dir.path()).await;
        let args = firebreak_gateway::init::InitArgs {
            prometheus,
            kubeconfig: Some(fake.kubeconfig(dir.path())),
            in_cluster: false,
            context: None,
            namespaces: vec!["serving".into()],
            cluster: Some("prod".into()),
            out: None,
        };
        // Prometheus may take a moment to answer after it starts.
        let mut found = None;
        wait_for(Duration::from_secs(30), "init's inspection", async || {
            found = firebreak_gateway::init::inspect(&args).await.ok();
            found.is_some()
        })
        .await;
        let found = found.unwrap();
        assert_eq!(
            found.labelled,
            ["serving/llm-assistant is the service chat"]
        );
        assert_eq!(found.kube_questions.len(), 1, "{:?}", found.kube_questions);
        assert!(
            found.kube_questions[0].contains(
                "kubectl -n serving label deployment embedder firebreak.dev/service=embedder firebreak.dev/stack=vllm"
            ),
            "{:?}",
            found.kube_questions
        );
        assert_eq!(
            found.pools,
            Some((
                "cloud.google.com/gke-nodepool".to_owned(),
                vec!["gpu-a100 (2 nodes, 16 GPUs)".to_owned()]
            ))
        );
        assert_eq!(found.routes.len(), 1, "{:?}", found.routes);
        assert!(
            found.routes[0].starts_with(
                "HTTPRoute serving/llm-assistant splits traffic between llm-assistant-us-east (weight 100), llm-assistant-eu-west (weight 0)"
            ),
            "{:?}",
            found.routes
        );
        let text = firebreak_gateway::init::write(&args, &found);
        let config = firebreak_gateway::config::parse(Path::new("gateway.toml"), &text)
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(
            config.kubernetes.as_ref().unwrap().pool_label,
            "cloud.google.com/gke-nodepool",
            "{text}"
        );
        let k = config.discovery.unwrap().kubernetes.unwrap();
        assert_eq!(k.namespaces, ["serving"]);
        assert_eq!(k.regions, ["us-east"], "the one region the workloads name");
    }

    /// Ana's failover to `to`, believing `expected` is the primary region now.
    fn failover_to(to: &str, expected: &str) -> FailoverRequest {
        FailoverRequest {
            to_region: to.into(),
            expected_primary_region: expected.into(),
            actor: "ana".into(),
            reason: "us-east saturated".into(),
        }
    }

    fn rollback(to: u32, expected: u32) -> RollbackRequest {
        RollbackRequest {
            to_revision: to,
            expected_revision: expected,
            actor: "ana".into(),
            reason: "bad model".into(),
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_rollback_is_one_patch_of_the_old_template_and_a_stale_one_is_refused() {
        firebreak_common::process::install_tls_provider();
        let fake = FakeKube::start().await;
        fake.apply(REPLICA_SETS, replica_set(41, "llama-70b-2026-10"));
        fake.apply(REPLICA_SETS, replica_set(42, "llama-70b-2026-11"));
        fake.apply(DEPLOYMENTS, deployment(42, "llama-70b-2026-11"));
        fake.apply(HTTP_ROUTES, route());
        let dir = tempfile::tempdir().unwrap();
        let gw = gateway(&fake, dir.path()).await;
        let c = ActionClient::new(&gw.base_url(), Some(TOKEN.into()), None).unwrap();

        // What the console reads comes from the API.
        let Outcome::Ok(d) = c.deployment("llm-assistant").await else {
            panic!("readable")
        };
        assert_eq!(d.current_revision, 42);
        assert_eq!(
            d.revisions
                .iter()
                .map(|r| (r.revision, r.model_version.as_str()))
                .collect::<Vec<_>>(),
            [(41, "llama-70b-2026-10"), (42, "llama-70b-2026-11")]
        );
        let Outcome::Ok(services) = c.services().await else {
            panic!("readable")
        };
        assert_eq!(
            services[0].primary_region, "us-east",
            "the backend with the weight"
        );

        // A stale precondition: nothing patched.
        let before = fake.object(DEPLOYMENTS, "serving", "llm-assistant");
        match c
            .rollback("llm-assistant", &rollback(40, 41), "k-stale")
            .await
        {
            Outcome::Refused { status, error } => {
                assert_eq!((status, error.error.as_str()), (409, "precondition_failed"));
                assert_eq!(error.current.unwrap()["revision"], 42);
            }
            other => panic!("expected 409, got {other:?}"),
        }
        assert_eq!(fake.object(DEPLOYMENTS, "serving", "llm-assistant"), before);

        // Someone else changes the Deployment between the gateway's read and its patch:
        // the patch's test of the resourceVersion fails (422), and the console is told
        // it changed, with nothing done.
        fake.meddle_before_next_patch(|d| {
            d["spec"]["replicas"] = json!(12);
        });
        match c
            .rollback("llm-assistant", &rollback(41, 42), "k-race")
            .await
        {
            Outcome::Refused { status, error } => {
                assert_eq!(
                    (status, error.error.as_str()),
                    (409, "precondition_failed"),
                    "{error:?}"
                );
                assert!(
                    error
                        .message
                        .contains("changed while the rollback was sent"),
                    "{}",
                    error.message
                );
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        let meddled = fake.object(DEPLOYMENTS, "serving", "llm-assistant");
        assert_eq!(meddled["spec"]["replicas"], 12);
        assert_eq!(
            meddled["spec"]["template"]["metadata"]["annotations"]
                ["serving.example.com/model-version"],
            "llama-70b-2026-11",
            "the rollback's patch was not applied"
        );

        // The real one: revision 41's template, without its pod-template-hash, its change-cause kept.
        let Outcome::Ok(done) = c.rollback("llm-assistant", &rollback(41, 42), "k-1").await else {
            panic!("accepted")
        };
        assert_eq!(done.state, ActionState::Succeeded);
        assert_eq!(done.actor, "oncall");
        assert!(done
            .output
            .unwrap()
            .contains("patched Deployment serving/llm-assistant"));
        let after = fake.object(DEPLOYMENTS, "serving", "llm-assistant");
        let template = &after["spec"]["template"];
        assert_eq!(
            template["metadata"]["annotations"]["serving.example.com/model-version"],
            "llama-70b-2026-10"
        );
        assert!(template["metadata"]["labels"]
            .get("pod-template-hash")
            .is_none());
        assert_eq!(
            after["metadata"]["annotations"]["kubernetes.io/change-cause"],
            "deploy llama-70b-2026-10"
        );
        assert!(
            after["metadata"]["generation"].as_i64().unwrap()
                > before["metadata"]["generation"].as_i64().unwrap()
        );
        // The same key again: the first answer, no second patch.
        let rv = after["metadata"]["resourceVersion"].clone();
        let Outcome::Ok(again) = c.rollback("llm-assistant", &rollback(41, 42), "k-1").await else {
            panic!("replayed")
        };
        assert_eq!(again.id, done.id);
        assert_eq!(
            fake.object(DEPLOYMENTS, "serving", "llm-assistant")["metadata"]["resourceVersion"],
            rv
        );
        gw.shutdown();
    }

    /// An Argo Rollout at `revision` (canary: 10 %, pause, 50 %, pause), its update from
    /// `stable` stopped at the first pause.
    fn argo_rollout(revision: u32, stable: u32, model: &str) -> Value {
        json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {
                "name": "llm-assistant", "namespace": "serving", "generation": 5, "uid": "ro-1",
                "annotations": { "rollout.argoproj.io/revision": revision.to_string() }
            },
            "spec": {
                "replicas": 10,
                "selector": { "matchLabels": { "app": "llm-assistant" } },
                "strategy": { "canary": { "steps": [
                    { "setWeight": 10 }, { "pause": {} }, { "setWeight": 50 }, { "pause": { "duration": "10m" } }
                ] } },
                "template": { "metadata": { "labels": { "app": "llm-assistant" }, "annotations": { "serving.example.com/model-version": model } },
                              "spec": { "containers": [{ "name": "vllm", "image": "vllm:1" }] } }
            },
            "status": {
                "observedGeneration": "5", "currentPodHash": format!("r{revision}"), "stableRS": format!("r{stable}"),
                "currentStepIndex": 1, "phase": "Paused", "replicas": 11, "updatedReplicas": 1
            }
        })
    }

    fn argo_replica_set(revision: u32, model: &str) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {
                "name": format!("llm-assistant-r{revision}"), "namespace": "serving", "uid": format!("rs-{revision}"),
                "creationTimestamp": "2026-11-30T03:10:00Z",
                "labels": { "app": "llm-assistant", "rollouts-pod-template-hash": format!("r{revision}") },
                "annotations": { "rollout.argoproj.io/revision": revision.to_string() },
                "ownerReferences": [{ "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "llm-assistant", "uid": "ro-1", "controller": true }]
            },
            "spec": {
                "selector": { "matchLabels": { "app": "llm-assistant" } },
                "template": {
                    "metadata": { "labels": { "app": "llm-assistant", "rollouts-pod-template-hash": format!("r{revision}") },
                                  "annotations": { "serving.example.com/model-version": model } },
                    "spec": { "containers": [{ "name": "vllm", "image": "vllm:1" }] }
                }
            }
        })
    }

    fn model_of(rollout: &Value) -> &str {
        rollout["spec"]["template"]["metadata"]["annotations"]["serving.example.com/model-version"]
            .as_str()
            .unwrap()
    }

    /// A canary stopped at its first pause with a bad model: the rollback aborts the
    /// update (status subresource) and then puts revision 7's template back, as
    /// `kubectl argo rollouts abort` and `undo --to-revision 7` would.
    #[tokio::test(flavor = "multi_thread")]
    async fn an_argo_rollback_aborts_the_update_then_undoes_to_the_revision() {
        firebreak_common::process::install_tls_provider();
        let fake = FakeKube::start().await;
        fake.apply(REPLICA_SETS, argo_replica_set(7, "llama-70b-2026-10"));
        fake.apply(REPLICA_SETS, argo_replica_set(8, "llama-70b-2026-11"));
        fake.apply(ROLLOUTS, argo_rollout(8, 7, "llama-70b-2026-11"));
        fake.apply(HTTP_ROUTES, route());
        let dir = tempfile::tempdir().unwrap();
        let gw = gateway_for(&fake, dir.path(), "Rollout").await;
        let c = ActionClient::new(&gw.base_url(), Some(TOKEN.into()), None).unwrap();

        let Outcome::Ok(d) = c.deployment("llm-assistant").await else {
            panic!("readable")
        };
        assert_eq!(d.current_revision, 8);
        assert_eq!(d.object.as_deref(), Some("Rollout serving/llm-assistant"));
        let rollout = d.rollout.expect("an update under way");
        assert_eq!(
            (rollout.wave, rollout.waves),
            (1, 2),
            "one of two setWeight steps passed"
        );

        let Outcome::Ok(done) = c.rollback("llm-assistant", &rollback(7, 8), "k-1").await else {
            panic!("accepted")
        };
        assert_eq!(done.state, ActionState::Succeeded);
        let output = done.output.unwrap();
        assert!(
            output.contains("aborted the update of Rollout serving/llm-assistant"),
            "{output}"
        );
        assert!(
            output.contains("the pod template of revision 7"),
            "{output}"
        );
        let after = fake.object(ROLLOUTS, "serving", "llm-assistant");
        assert_eq!(after["status"]["abort"], true);
        assert_eq!(model_of(&after), "llama-70b-2026-10");
        assert!(after["spec"]["template"]["metadata"]["labels"]
            .get("rollouts-pod-template-hash")
            .is_none());
        assert_eq!(after["metadata"]["generation"], 6, "one spec change");
        gw.shutdown();
    }

    /// Someone changes the Rollout's spec between the abort and the undo: the undo's test
    /// of the generation fails, the console hears that the update stays aborted and the
    /// template was not rolled back; with the update already finished, there is nothing to
    /// abort and the undo is the only patch.
    #[tokio::test(flavor = "multi_thread")]
    async fn an_argo_rollback_is_refused_when_the_spec_changed_after_the_abort() {
        firebreak_common::process::install_tls_provider();
        let fake = FakeKube::start().await;
        fake.apply(REPLICA_SETS, argo_replica_set(7, "llama-70b-2026-10"));
        fake.apply(REPLICA_SETS, argo_replica_set(8, "llama-70b-2026-11"));
        fake.apply(ROLLOUTS, argo_rollout(8, 7, "llama-70b-2026-11"));
        fake.apply(HTTP_ROUTES, route());
        let dir = tempfile::tempdir().unwrap();
        let gw = gateway_for(&fake, dir.path(), "Rollout").await;
        let c = ActionClient::new(&gw.base_url(), Some(TOKEN.into()), None).unwrap();

        // The second patch (the undo) meets a spec someone else just changed.
        fake.meddle_before_patch(2, |r| {
            r["spec"]["replicas"] = json!(12);
            r["metadata"]["generation"] = json!(6);
        });
        match c.rollback("llm-assistant", &rollback(7, 8), "k-race").await {
            Outcome::Refused { status, error } => {
                assert_eq!(
                    (status, error.error.as_str()),
                    (409, "precondition_failed"),
                    "{error:?}"
                );
                assert!(error.message.contains("stays aborted"), "{}", error.message);
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        let meddled = fake.object(ROLLOUTS, "serving", "llm-assistant");
        assert_eq!(meddled["status"]["abort"], true, "the abort went through");
        assert_eq!(model_of(&meddled), "llama-70b-2026-11", "the undo did not");
        assert_eq!(meddled["spec"]["replicas"], 12);

        // The update finished: revision 8 is stable. Rolling back to 7 is one patch, no abort.
        let mut finished = argo_rollout(8, 8, "llama-70b-2026-11");
        finished["status"]["phase"] = json!("Healthy");
        fake.apply(ROLLOUTS, finished);
        let Outcome::Ok(done) = c.rollback("llm-assistant", &rollback(7, 8), "k-2").await else {
            panic!("accepted")
        };
        let output = done.output.unwrap();
        assert!(!output.contains("aborted"), "{output}");
        let after = fake.object(ROLLOUTS, "serving", "llm-assistant");
        assert!(after["status"].get("abort").is_none(), "nothing to abort");
        assert_eq!(model_of(&after), "llama-70b-2026-10");
        gw.shutdown();
    }

    /// The Deployment as its controller would leave it: at `revision`, `updated` of 16
    /// replicas on the new template, its Progressing condition `progressing` for `reason`.
    fn deployment_at(
        revision: u32,
        model: &str,
        generation: i64,
        updated: i32,
        progressing: &str,
        reason: &str,
    ) -> Value {
        let mut d = deployment(revision, model);
        d["metadata"]["generation"] = json!(generation);
        d["status"] = json!({
            "observedGeneration": generation, "replicas": 16, "updatedReplicas": updated,
            "availableReplicas": updated, "readyReplicas": updated,
            "conditions": [{ "type": "Progressing", "status": progressing, "reason": reason,
                             "message": format!("ReplicaSet progress: {reason}"),
                             "lastUpdateTime": "2026-11-30T03:20:00Z", "lastTransitionTime": "2026-11-30T03:19:00Z" }]
        });
        d
    }

    /// The Deployment controller's part after the gateway's rollback to 41, as `kubectl
    /// rollout undo` leaves it: revision 41's ReplicaSet becomes revision 43 (its history
    /// noted), the patched template is the spec, and every replica runs it again.
    fn undo_to_43(fake: &FakeKube) {
        let patched = fake.object(DEPLOYMENTS, "serving", "llm-assistant");
        let mut back = replica_set(41, "llama-70b-2026-10");
        back["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = json!("43");
        back["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] = json!("41");
        fake.apply(REPLICA_SETS, back);
        let mut recovered = deployment_at(
            43,
            "llama-70b-2026-10",
            3,
            16,
            "True",
            "NewReplicaSetAvailable",
        );
        recovered["spec"] = patched["spec"].clone();
        fake.apply(DEPLOYMENTS, recovered);
    }

    fn gpu_node(
        name: &str,
        ready: &str,
        taint: Option<&str>,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": { "name": name, "uid": format!("n-{name}"),
                          "labels": { "firebreak.dev/pool": "gpu-a100", "topology.kubernetes.io/region": "us-east" } },
            "spec": { "taints": taint.map(|key| vec![json!({ "key": key, "effect": "NoExecute", "timeAdded": since.to_rfc3339() })]).unwrap_or_default() },
            "status": { "conditions": [{ "type": "Ready", "status": ready, "reason": "KubeletReady",
                                          "lastHeartbeatTime": since.to_rfc3339(), "lastTransitionTime": since.to_rfc3339() }] }
        })
    }

    /// The story the issue tells, end to end through a gateway watching and acting on the
    /// fake API server, read by a console on the stream: a new model rolls out and stalls
    /// past its progress deadline, a GPU node is tainted after an XID error and another
    /// stops reporting; the console sees the stall in the deployment view, rolls back, and
    /// the script (playing the Deployment controller as `kubectl rollout undo` would leave
    /// it) brings the old ReplicaSet back as revision 43: the stream tells the recovery as
    /// a rollback.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_stalled_rollout_on_failing_nodes_is_seen_and_rolled_back() {
        use crate::support::cluster::connect;
        use crate::support::fake_kube::NODES;
        use std::time::Duration;

        firebreak_common::process::install_tls_provider();
        let fake = FakeKube::start().await;
        let days_ago = chrono::Utc::now() - chrono::Duration::days(3);
        fake.apply(REPLICA_SETS, replica_set(41, "llama-70b-2026-10"));
        fake.apply(
            DEPLOYMENTS,
            deployment_at(
                41,
                "llama-70b-2026-10",
                1,
                16,
                "True",
                "NewReplicaSetAvailable",
            ),
        );
        fake.apply(NODES, gpu_node("gpu-1", "True", None, days_ago));
        fake.apply(NODES, gpu_node("gpu-2", "True", None, days_ago));
        fake.apply(HTTP_ROUTES, route());
        let dir = tempfile::tempdir().unwrap();
        let gw = gateway_for(&fake, dir.path(), "Deployment").await;
        let reader = connect(&gw.events_url(), Some(TOKEN), Some(0))
            .await
            .unwrap();
        let types = |seen: &crate::support::cluster::Seen| -> Vec<String> {
            seen.events
                .iter()
                .map(|e| e.ty.trim_start_matches("dev.firebreak.").to_owned())
                .collect()
        };
        let has = |want: &'static [&'static str]| {
            move |seen: &crate::support::cluster::Seen| {
                let all = types(seen);
                want.iter().all(|w| all.iter().any(|t| t == w))
            }
        };

        // Revision 42 (a new model) rolls out, reaches 4 of 16 and stalls.
        fake.apply(REPLICA_SETS, replica_set(42, "llama-70b-2026-11"));
        fake.apply(
            DEPLOYMENTS,
            deployment_at(42, "llama-70b-2026-11", 2, 4, "True", "ReplicaSetUpdated"),
        );
        reader
            .wait_until(
                Duration::from_secs(20),
                "the rollout's start",
                has(&["rollout.started", "rollout.wave_progressed"]),
            )
            .await;
        fake.apply(
            DEPLOYMENTS,
            deployment_at(
                42,
                "llama-70b-2026-11",
                2,
                4,
                "False",
                "ProgressDeadlineExceeded",
            ),
        );
        let now = chrono::Utc::now();
        fake.apply(NODES, gpu_node("gpu-1", "Unknown", None, now));
        fake.apply(
            NODES,
            gpu_node("gpu-2", "True", Some("nvidia.com/gpu-xid-error"), now),
        );
        reader
            .wait_until(
                Duration::from_secs(20),
                "the stall and the nodes",
                has(&["rollout.stalled", "node.down", "node.degraded"]),
            )
            .await;
        let events = reader.events();
        let of = |ty: &str| {
            events
                .iter()
                .find(|e| e.ty.ends_with(ty))
                .unwrap()
                .data
                .clone()
        };
        assert_eq!(of("rollout.stalled")["to_revision"], 42);
        assert_eq!(of("node.degraded")["node"], "gpu-2");
        assert_eq!(of("node.degraded")["reason"], "gpu_error");
        assert_eq!(of("node.down")["node"], "gpu-1");

        // The console sees the stall and rolls back to 41.
        let c = ActionClient::new(&gw.base_url(), Some(TOKEN.into()), None).unwrap();
        let Outcome::Ok(d) = c.deployment("llm-assistant").await else {
            panic!("readable")
        };
        let rollout = d.rollout.expect("the rollout under way");
        assert!(rollout.stalled);
        assert_eq!(
            (rollout.to_revision, rollout.wave, rollout.waves),
            (42, 1, 4)
        );
        let Outcome::Ok(done) = c.rollback("llm-assistant", &rollback(41, 42), "k-1").await else {
            panic!("accepted")
        };
        assert_eq!(done.state, ActionState::Succeeded);
        let patched = fake.object(DEPLOYMENTS, "serving", "llm-assistant");
        assert_eq!(
            patched["spec"]["template"]["metadata"]["annotations"]
                ["serving.example.com/model-version"],
            "llama-70b-2026-10"
        );

        undo_to_43(&fake);
        reader
            .wait_until(
                Duration::from_secs(20),
                "the recovery",
                has(&[
                    "action.succeeded",
                    "rollout.completed",
                    "model.version_changed",
                ]),
            )
            .await;
        let events = reader.events();
        let changed = events
            .iter()
            .find(|e| e.ty.ends_with("model.version_changed"))
            .unwrap();
        assert_eq!(changed.data["cause"], "rollback");
        assert_eq!(changed.data["to_model"], "llama-70b-2026-10");
        let completed = events
            .iter()
            .find(|e| e.ty.ends_with("rollout.completed"))
            .unwrap();
        assert_eq!(completed.data["revision"], 43);
        let ids: std::collections::HashSet<_> = events.iter().map(|e| e.id.clone()).collect();
        assert_eq!(
            ids.len(),
            events.len(),
            "no event twice: {:?}",
            types(&reader.seen.lock().unwrap())
        );
        reader.abort();
        gw.shutdown();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_failover_moves_the_route_weights_and_a_stale_one_is_refused() {
        firebreak_common::process::install_tls_provider();
        let fake = FakeKube::start().await;
        fake.apply(REPLICA_SETS, replica_set(42, "m"));
        fake.apply(DEPLOYMENTS, deployment(42, "m"));
        fake.apply(HTTP_ROUTES, route());
        let dir = tempfile::tempdir().unwrap();
        let gw = gateway(&fake, dir.path()).await;
        let c = ActionClient::new(&gw.base_url(), Some(TOKEN.into()), None).unwrap();
        let failover = failover_to;
        match c
            .failover("llm-assistant", &failover("us-east", "eu-west"), "k-stale")
            .await
        {
            Outcome::Refused { status, error } => {
                assert_eq!(status, 409);
                assert_eq!(error.current.unwrap()["primary_region"], "us-east");
            }
            other => panic!("expected 409, got {other:?}"),
        }
        let Outcome::Ok(done) = c
            .failover("llm-assistant", &failover("eu-west", "us-east"), "k-1")
            .await
        else {
            panic!("accepted")
        };
        assert_eq!(done.state, ActionState::Succeeded);
        let weights: Vec<(String, i64)> = fake.object(HTTP_ROUTES, "serving", "llm-assistant")
            ["spec"]["rules"][0]["backendRefs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                (
                    b["name"].as_str().unwrap().to_owned(),
                    b["weight"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            weights,
            [
                ("llm-assistant-us-east".to_owned(), 0),
                ("llm-assistant-eu-west".to_owned(), 100)
            ]
        );
        let Outcome::Ok(services) = c.services().await else {
            panic!("readable")
        };
        assert_eq!(services[0].primary_region, "eu-west");
        assert_eq!(services[0].last_changed_by.as_deref(), Some("oncall"));
        gw.shutdown();
    }

    /// A route in its own namespace whose backends are same-named Services in each
    /// region's namespace (cross-namespace references, as a ReferenceGrant allows), beside a
    /// third `chat` in the route's namespace and a second port: each region is found by
    /// namespace and port, the primary is the one with the weight, failover moves exactly
    /// those two weights; when the route loses a configured backend the gateway says which,
    /// once, and again when it is back.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_failover_across_namespaces_finds_each_backend_as_the_gateway_api_does() {
        use firebreak_gateway::journal::{DurableJournal, Read, Retention};

        firebreak_common::process::install_tls_provider();
        let fake = FakeKube::start().await;
        fake.apply(REPLICA_SETS, replica_set(42, "m"));
        fake.apply(DEPLOYMENTS, deployment(42, "m"));
        let route = |refs: Value| {
            json!({
                "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                "metadata": { "name": "chat", "namespace": "gateway" },
                "spec": { "rules": [{ "backendRefs": refs }] }
            })
        };
        let all = json!([
            { "name": "chat", "port": 8000, "weight": 5 },
            { "name": "chat", "namespace": "serving-eu-west", "port": 8000, "weight": 0 },
            { "name": "chat", "namespace": "serving-us-east", "port": 9000, "weight": 0 },
            { "group": "", "kind": "Service", "name": "chat", "namespace": "serving-us-east", "port": 8000, "weight": 95 }
        ]);
        fake.apply(HTTP_ROUTES, route(all.clone()));
        let dir = tempfile::tempdir().unwrap();
        let journal = std::sync::Arc::new(
            DurableJournal::open(&dir.path().join("journal.db"), Retention::default())
                .await
                .unwrap(),
        );
        let config = "[services.kubernetes.route]\nnamespace = \"gateway\"\nname = \"chat\"\n\
             backends = { us-east = { name = \"chat\", namespace = \"serving-us-east\", port = 8000 }, \
                          eu-west = { name = \"chat\", namespace = \"serving-eu-west\" } }\n";
        let gw = gateway_on(&fake, dir.path(), "Deployment", config, journal.clone()).await;
        let c = ActionClient::new(&gw.base_url(), Some(TOKEN.into()), None).unwrap();
        let Outcome::Ok(services) = c.services().await else {
            panic!("readable")
        };
        assert_eq!(
            services[0].primary_region, "us-east",
            "the one with weight 95"
        );
        assert_eq!(
            services[0].traffic.as_deref(),
            Some("HTTPRoute gateway/chat (eu-west 0, us-east 95)")
        );
        let to_eu = failover_to("eu-west", "us-east");
        let Outcome::Ok(done) = c.failover("llm-assistant", &to_eu, "k-1").await else {
            panic!("accepted")
        };
        assert_eq!(done.state, ActionState::Succeeded);
        let weights = |fake: &FakeKube| -> Vec<i64> {
            fake.object(HTTP_ROUTES, "gateway", "chat")["spec"]["rules"][0]["backendRefs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["weight"].as_i64().unwrap())
                .collect()
        };
        assert_eq!(
            weights(&fake),
            [5, 100, 0, 0],
            "the route namespace's chat and the other port untouched"
        );

        // eu-west's backend leaves the route: said once, naming what is missing.
        let degraded = async |journal: &DurableJournal| -> Vec<Value> {
            let Read::Frames { frames, .. } = journal.read_after(0, 10_000).await.unwrap() else {
                return Vec::new();
            };
            frames
                .iter()
                .map(|f| serde_json::from_str::<Value>(f.as_str()).unwrap())
                .filter(|e| e["type"] == "dev.firebreak.source.degraded")
                .map(|e| e["data"].clone())
                .collect()
        };
        let mut without = all.clone();
        without.as_array_mut().unwrap().remove(1);
        fake.apply(HTTP_ROUTES, route(without));
        wait_for(
            Duration::from_secs(20),
            "the missing backend said",
            async || !degraded(&journal).await.is_empty(),
        )
        .await;
        let said = degraded(&journal).await;
        assert_eq!(said.len(), 1, "{said:?}");
        assert_eq!(said[0]["degraded"], true);
        assert_eq!(said[0]["service"], "llm-assistant");
        assert_eq!(said[0]["what"], "HTTPRoute gateway/chat");
        assert_eq!(
            said[0]["reason"],
            "HTTPRoute gateway/chat has no backend for eu-west (Service serving-eu-west/chat)"
        );
        let back = failover_to("eu-west", "us-east");
        fake.apply(HTTP_ROUTES, route(all));
        wait_for(
            Duration::from_secs(20),
            "the route whole again",
            async || degraded(&journal).await.len() == 2,
        )
        .await;
        assert_eq!(degraded(&journal).await[1]["degraded"], false);
        // The route as applied again sends us-east 95: a failover from it is taken.
        let Outcome::Ok(again) = c.failover("llm-assistant", &back, "k-2").await else {
            panic!("accepted")
        };
        assert_eq!(again.state, ActionState::Succeeded);
        gw.shutdown();
    }

    /// A gateway with only the Kubernetes API (no Prometheus): a console's rollback of a
    /// stalled rollout is verified by the rollout it started (the restored template
    /// completing as revision 43, no pod failing after), said plainly; a second rollback
    /// the cluster then tells nothing of is "could not verify", which is not "did not
    /// recover" and proposes no failover.
    #[tokio::test(flavor = "multi_thread")]
    async fn without_metrics_a_rollback_is_verified_by_the_rollout_it_started() {
        use firebreak_engine::actions::ActionSettings;
        use firebreak_protocol::actions::ActionKind;
        use firebreak_store::actions::ActionState as Local;

        firebreak_common::process::install_tls_provider();
        let fake = FakeKube::start().await;
        fake.apply(REPLICA_SETS, replica_set(41, "llama-70b-2026-10"));
        fake.apply(
            DEPLOYMENTS,
            deployment_at(
                41,
                "llama-70b-2026-10",
                1,
                16,
                "True",
                "NewReplicaSetAvailable",
            ),
        );
        fake.apply(HTTP_ROUTES, route());
        let dir = tempfile::tempdir().unwrap();
        let gw = gateway_for(&fake, dir.path(), "Deployment").await;
        let live = crate::support::rig::live_on(
            &dir.path().join("console.db"),
            "prod",
            (&gw.events_url(), &gw.base_url()),
            TOKEN,
            ActionSettings {
                grace_s: 0,
                verify_window_s: 3,
                ..ActionSettings::default()
            },
        )
        .await;
        // Revision 42 rolls out and stalls at 4 of 16.
        fake.apply(REPLICA_SETS, replica_set(42, "llama-70b-2026-11"));
        fake.apply(
            DEPLOYMENTS,
            deployment_at(42, "llama-70b-2026-11", 2, 4, "True", "ReplicaSetUpdated"),
        );
        // The stall comes after the start was seen, as a controller's would.
        wait_for(Duration::from_secs(20), "the rollout's start", async || {
            live.store
                .rollout_state_since(live.cluster, "llm-assistant", 0)
                .await
                .unwrap()
                .iter()
                .any(|(ty, _, _)| ty == "rollout.started")
        })
        .await;
        fake.apply(
            DEPLOYMENTS,
            deployment_at(
                42,
                "llama-70b-2026-11",
                2,
                4,
                "False",
                "ProgressDeadlineExceeded",
            ),
        );
        let incident = crate::support::rig::incident_where(
            &live.store,
            "the stalled rollout's incident",
            |i| i.service.as_deref() == Some("llm-assistant"),
        )
        .await;
        let proposal = live
            .desk
            .propose(incident.id, ActionKind::Rollback, "ana")
            .await
            .unwrap();
        assert_eq!(proposal.to, "41", "{:?}", proposal.preview);
        live.desk
            .confirm(&proposal.id, "ana", "stalled on 42", Some("llm-assistant"))
            .await
            .unwrap();
        let desk = live.desk.clone();
        let id = proposal.id.clone();
        let driving = tokio::spawn(async move { desk.drive(&id).await });
        wait_for(
            Duration::from_secs(30),
            "the rollback to be taken",
            async || live.store.action(&proposal.id).await.unwrap().state == Local::Succeeded,
        )
        .await;
        undo_to_43(&fake);
        let done = driving.await.unwrap().unwrap();
        assert_eq!(done.verification.as_deref(), Some("recovered"), "{done:?}");
        let said = |store: &firebreak_store::Store| {
            let store = store.clone();
            async move {
                store
                    .timeline(incident.id, None, 1000)
                    .await
                    .unwrap()
                    .into_iter()
                    .filter(|e| e.kind == firebreak_store::incident::EntryKind::Verification)
                    .map(|e| e.body)
                    .collect::<Vec<_>>()
            }
        };
        let verified = said(&live.store).await;
        assert!(
            verified[0].starts_with(
                "Recovered, verified by rollout state (no metrics configured): llm-assistant completed revision 43"
            ),
            "{verified:?}"
        );
        assert!(!verified[0].contains("NOT"), "{verified:?}");

        // A second rollback the cluster says nothing about in the window.
        let again = live
            .desk
            .propose_with(
                incident.id,
                ActionKind::Rollback,
                firebreak_engine::actions::Choice {
                    to_revision: Some(42),
                    full: false,
                },
                "ana",
            )
            .await
            .unwrap();
        live.desk
            .confirm(&again.id, "ana", "try 42 again", Some("llm-assistant"))
            .await
            .unwrap();
        let unknown = live.desk.drive(&again.id).await.unwrap();
        assert_eq!(unknown.state, Local::Succeeded);
        assert_eq!(unknown.verification.as_deref(), Some("unverified"));
        let verified = said(&live.store).await;
        assert!(
            verified[1].starts_with("Could not verify: no metrics configured")
                && !verified[1].contains("NOT recovered")
                && !verified[1].contains("Next:"),
            "{verified:?}"
        );
        let proposed_next = live
            .store
            .incident_actions(incident.id)
            .await
            .unwrap()
            .into_iter()
            .any(|a| a.kind == ActionKind::Failover);
        assert!(!proposed_next, "no failover proposed on no evidence");
        live.engine.stop().await;
        gw.shutdown();
    }

    /// A route that has a region's backend twice in one rule (a name alone, two ports)
    /// is refused for failover, naming the region and what to add; nothing is patched.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_failover_is_refused_when_a_backend_is_ambiguous() {
        firebreak_common::process::install_tls_provider();
        let fake = FakeKube::start().await;
        fake.apply(REPLICA_SETS, replica_set(42, "m"));
        fake.apply(DEPLOYMENTS, deployment(42, "m"));
        let mut twice = route();
        twice["spec"]["rules"][0]["backendRefs"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "name": "llm-assistant-eu-west", "port": 9000, "weight": 0 }));
        fake.apply(HTTP_ROUTES, twice);
        let dir = tempfile::tempdir().unwrap();
        let gw = gateway(&fake, dir.path()).await;
        let c = ActionClient::new(&gw.base_url(), Some(TOKEN.into()), None).unwrap();
        let to_eu = failover_to("eu-west", "us-east");
        match c.failover("llm-assistant", &to_eu, "k-1").await {
            Outcome::Refused { status, error } => assert!(
                status == 409
                    && error.error == "route_mismatch"
                    && error.message.contains(
                    "rule 1 has 2 backends that match eu-west's (Service serving/llm-assistant-eu-west)"
                ) && error.message.contains("the port"),
                "{}",
                error.message
            ),
            other => panic!("expected a refusal, got {other:?}"),
        }
        let weights = route_weights(&fake);
        assert_eq!(weights, [100, 0, 0], "nothing moved");
        gw.shutdown();
    }

    /// The same failover when the regions are split by an Istio VirtualService: the
    /// destinations' weights move, found by host, and a concurrent edit of the route is
    /// refused with nothing done.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_failover_through_an_istio_virtual_service() {
        use crate::support::fake_kube::VIRTUAL_SERVICES;

        firebreak_common::process::install_tls_provider();
        let fake = FakeKube::start().await;
        fake.apply(REPLICA_SETS, replica_set(42, "m"));
        fake.apply(DEPLOYMENTS, deployment(42, "m"));
        let east = "llm-assistant.us-east.svc.cluster.local";
        let west = "llm-assistant.eu-west.svc.cluster.local";
        fake.apply(
            VIRTUAL_SERVICES,
            json!({
                "apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
                "metadata": { "name": "llm-assistant", "namespace": "serving" },
                "spec": {
                    "hosts": ["llm-assistant.example.com"],
                    "http": [{ "route": [
                        { "destination": { "host": east, "port": { "number": 8000 } }, "weight": 100 },
                        { "destination": { "host": west, "port": { "number": 8000 } }, "weight": 0 }
                    ] }]
                }
            }),
        );
        let dir = tempfile::tempdir().unwrap();
        let route = format!(
            "[services.kubernetes.route]\nkind = \"VirtualService\"\nnamespace = \"serving\"\nname = \"llm-assistant\"\n\
             backends = {{ us-east = \"{east}\", eu-west = \"{west}\" }}\n"
        );
        let gw = gateway_with(&fake, dir.path(), "Deployment", &route).await;
        let c = ActionClient::new(&gw.base_url(), Some(TOKEN.into()), None).unwrap();
        let Outcome::Ok(services) = c.services().await else {
            panic!("readable")
        };
        assert_eq!(services[0].primary_region, "us-east");
        assert_eq!(
            services[0].traffic.as_deref(),
            Some("VirtualService serving/llm-assistant (us-east 100, eu-west 0)")
        );
        let failover = failover_to("eu-west", "us-east");

        // Someone edits the route between the gateway's read and its patch.
        fake.meddle_before_next_patch(|vs| {
            vs["spec"]["http"][0]["timeout"] = json!("5s");
        });
        match c.failover("llm-assistant", &failover, "k-race").await {
            Outcome::Refused { status, error } => {
                assert_eq!((status, error.error.as_str()), (409, "precondition_failed"));
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        let weights = |fake: &FakeKube| -> Vec<i64> {
            fake.object(VIRTUAL_SERVICES, "serving", "llm-assistant")["spec"]["http"][0]["route"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["weight"].as_i64().unwrap())
                .collect()
        };
        assert_eq!(weights(&fake), [100, 0], "nothing moved");

        let Outcome::Ok(done) = c.failover("llm-assistant", &failover, "k-1").await else {
            panic!("accepted")
        };
        assert_eq!(done.state, ActionState::Succeeded);
        assert!(done
            .output
            .unwrap()
            .contains("patched VirtualService serving/llm-assistant"));
        assert_eq!(weights(&fake), [0, 100]);
        gw.shutdown();
    }

    fn lever(expected: u32, full: bool) -> firebreak_protocol::actions::RolloutRequest {
        firebreak_protocol::actions::RolloutRequest {
            expected_revision: expected,
            full,
            actor: "ana".into(),
            reason: "errors climb with each wave".into(),
        }
    }

    /// A Deployment mid-rollout is paused and resumed through spec.paused; it has no abort
    /// or promotion (501, roll it back); a pause of a rollout that is not the one under way
    /// is refused with nothing patched.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_deployment_rollout_is_paused_and_resumed_through_spec_paused() {
        use firebreak_protocol::actions::RolloutLever;

        firebreak_common::process::install_tls_provider();
        let fake = FakeKube::start().await;
        fake.apply(REPLICA_SETS, replica_set(41, "llama-70b-2026-10"));
        fake.apply(REPLICA_SETS, replica_set(42, "llama-70b-2026-11"));
        let mut rolling = deployment(42, "llama-70b-2026-11");
        rolling["status"]["updatedReplicas"] = json!(4);
        fake.apply(DEPLOYMENTS, rolling);
        fake.apply(HTTP_ROUTES, route());
        let dir = tempfile::tempdir().unwrap();
        let gw = gateway(&fake, dir.path()).await;
        let c = ActionClient::new(&gw.base_url(), Some(TOKEN.into()), None).unwrap();

        match c
            .rollout(
                "llm-assistant",
                RolloutLever::Pause,
                &lever(41, false),
                "k-stale",
            )
            .await
        {
            Outcome::Refused { status, error } => {
                assert_eq!((status, error.error.as_str()), (409, "precondition_failed"));
                assert_eq!(error.current.unwrap()["rollout"], "running");
            }
            other => panic!("expected 409, got {other:?}"),
        }
        assert!(fake.object(DEPLOYMENTS, "serving", "llm-assistant")["spec"]
            .get("paused")
            .is_none());

        let Outcome::Ok(paused) = c
            .rollout(
                "llm-assistant",
                RolloutLever::Pause,
                &lever(42, false),
                "k-1",
            )
            .await
        else {
            panic!("accepted")
        };
        assert_eq!(
            (paused.kind.as_str(), paused.to.as_str()),
            ("pause_rollout", "paused")
        );
        assert!(paused.output.unwrap().contains("spec.paused set"));
        assert_eq!(
            fake.object(DEPLOYMENTS, "serving", "llm-assistant")["spec"]["paused"],
            true
        );
        let Outcome::Ok(d) = c.deployment("llm-assistant").await else {
            panic!("readable")
        };
        assert!(d.rollout.unwrap().paused);
        match c
            .rollout(
                "llm-assistant",
                RolloutLever::Pause,
                &lever(42, false),
                "k-2",
            )
            .await
        {
            Outcome::Refused { status, error } => {
                assert_eq!(status, 409);
                assert!(
                    error.message.contains("already paused"),
                    "{}",
                    error.message
                );
            }
            other => panic!("expected 409, got {other:?}"),
        }
        for no in [RolloutLever::Abort, RolloutLever::Promote] {
            match c
                .rollout(
                    "llm-assistant",
                    no,
                    &lever(42, false),
                    &format!("k-{}", no.as_str()),
                )
                .await
            {
                Outcome::Refused { status, error } => {
                    assert_eq!(status, 501);
                    assert!(
                        error
                            .message
                            .contains("roll Deployment serving/llm-assistant back"),
                        "{}",
                        error.message
                    );
                }
                other => panic!("expected 501, got {other:?}"),
            }
        }
        let Outcome::Ok(resumed) = c
            .rollout(
                "llm-assistant",
                RolloutLever::Resume,
                &lever(42, false),
                "k-3",
            )
            .await
        else {
            panic!("accepted")
        };
        assert_eq!(resumed.to, "running");
        assert_eq!(
            fake.object(DEPLOYMENTS, "serving", "llm-assistant")["spec"]["paused"],
            false
        );
        gw.shutdown();
    }

    /// An Argo canary held at its pause step: promote moves it past the step (as `kubectl
    /// argo rollouts promote` does), promote --full asks for every step, and abort sets
    /// status.abort, all through the status subresource.
    #[tokio::test(flavor = "multi_thread")]
    async fn an_argo_rollout_is_promoted_and_aborted_through_its_status() {
        use firebreak_protocol::actions::RolloutLever;

        firebreak_common::process::install_tls_provider();
        let fake = FakeKube::start().await;
        fake.apply(REPLICA_SETS, argo_replica_set(7, "llama-70b-2026-10"));
        fake.apply(REPLICA_SETS, argo_replica_set(8, "llama-70b-2026-11"));
        let mut held = argo_rollout(8, 7, "llama-70b-2026-11");
        held["status"]["pauseConditions"] =
            json!([{ "reason": "CanaryPauseStep", "startTime": "2026-11-30T03:20:00Z" }]);
        fake.apply(ROLLOUTS, held);
        fake.apply(HTTP_ROUTES, route());
        let dir = tempfile::tempdir().unwrap();
        let gw = gateway_for(&fake, dir.path(), "Rollout").await;
        let c = ActionClient::new(&gw.base_url(), Some(TOKEN.into()), None).unwrap();
        let Outcome::Ok(d) = c.deployment("llm-assistant").await else {
            panic!("readable")
        };
        assert!(d.rollout.unwrap().paused, "a pause step holds it");

        let Outcome::Ok(next) = c
            .rollout(
                "llm-assistant",
                RolloutLever::Promote,
                &lever(8, false),
                "k-1",
            )
            .await
        else {
            panic!("accepted")
        };
        assert_eq!(next.to, "next wave");
        let after = fake.object(ROLLOUTS, "serving", "llm-assistant");
        assert!(after["status"]["pauseConditions"].is_null());
        assert_eq!(after["status"]["currentStepIndex"], 2);
        assert_eq!(
            after["metadata"]["generation"], 5,
            "a status patch leaves the spec alone"
        );

        let Outcome::Ok(full) = c
            .rollout(
                "llm-assistant",
                RolloutLever::Promote,
                &lever(8, true),
                "k-2",
            )
            .await
        else {
            panic!("accepted")
        };
        assert_eq!(full.to, "all waves");
        assert_eq!(
            fake.object(ROLLOUTS, "serving", "llm-assistant")["status"]["promoteFull"],
            true
        );

        let Outcome::Ok(abort) = c
            .rollout(
                "llm-assistant",
                RolloutLever::Abort,
                &lever(8, false),
                "k-3",
            )
            .await
        else {
            panic!("accepted")
        };
        assert_eq!(abort.to, "7", "back to the stable revision");
        assert_eq!(
            fake.object(ROLLOUTS, "serving", "llm-assistant")["status"]["abort"],
            true
        );
        match c
            .rollout(
                "llm-assistant",
                RolloutLever::Abort,
                &lever(8, false),
                "k-4",
            )
            .await
        {
            Outcome::Refused { status, .. } => assert_eq!(status, 409, "aborted once"),
            other => panic!("expected 409, got {other:?}"),
        }
        gw.shutdown();
    }

    /// The console's preview, against a gateway that acts on Kubernetes, names the object
    /// the action will patch and takes its blast radius from the real replica count.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_console_preview_names_the_object_it_will_patch() {
        use firebreak_engine::actions::{ActionDesk, Tokens};
        use firebreak_engine::ingest::sink::{ConsoleSink, Recorder, StatusBoard};
        use firebreak_protocol::actions::ActionKind;
        use firebreak_store::incident::{NewIncident, Severity};
        use firebreak_store::{NewCluster, Store};
        use std::sync::Arc;

        firebreak_common::process::install_tls_provider();
        let fake = FakeKube::start().await;
        fake.apply(REPLICA_SETS, replica_set(41, "llama-70b-2026-10"));
        fake.apply(REPLICA_SETS, replica_set(42, "llama-70b-2026-11"));
        fake.apply(DEPLOYMENTS, deployment(42, "llama-70b-2026-11"));
        fake.apply(HTTP_ROUTES, route());
        let dir = tempfile::tempdir().unwrap();
        let gw = gateway(&fake, dir.path()).await;
        let store = Store::open(&dir.path().join("console.db")).await.unwrap();
        let cluster = store
            .ensure_cluster(&NewCluster {
                name: "prod".into(),
                events_url: gw.events_url(),
                actions_url: gw.base_url(),
                ca_file: None,
            })
            .await
            .unwrap()
            .id;
        let incident = store
            .open_incident(
                &NewIncident {
                    title: "llm-assistant errors".into(),
                    severity: Severity::Critical,
                    service: Some("llm-assistant".into()),
                    cluster_id: Some(cluster),
                },
                "ana",
            )
            .await
            .unwrap();
        let tokens = Tokens::default();
        tokens.set(cluster, TOKEN);
        let sink: Arc<dyn ConsoleSink> = Arc::new(Recorder::default());
        let desk = ActionDesk::new(store, tokens, Arc::new(StatusBoard::default()), sink);

        let rollback = desk
            .propose(incident.id, ActionKind::Rollback, "ana")
            .await
            .unwrap();
        assert_eq!(
            rollback.preview.summary,
            "Roll llm-assistant back from revision 42 to 41 (Deployment serving/llm-assistant)"
        );
        assert_eq!(rollback.preview.nodes, 16, "the Deployment's replicas");
        assert!(rollback
            .preview
            .precondition
            .contains("patches Deployment serving/llm-assistant"));
        let failover = desk
            .propose(incident.id, ActionKind::Failover, "ana")
            .await
            .unwrap();
        assert_eq!(
            failover.preview.summary,
            "Fail llm-assistant over from us-east to eu-west (HTTPRoute serving/llm-assistant)"
        );
        assert!(
            failover
                .preview
                .precondition
                .contains("HTTPRoute serving/llm-assistant (us-east 100, eu-west 0)"),
            "{}",
            failover.preview.precondition
        );
        gw.shutdown();
    }
}
