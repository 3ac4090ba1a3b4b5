//! The gateway and the Kubernetes API: `watch.rs` keeps reflectors over each service's
//! Deployment or Argo Rollout, its ReplicaSets, pods and Warning events, and its pools'
//! nodes; `rollouts.rs` and `argo.rs` read a snapshot into a rollout that `story.rs`
//! tells as events, `pods.rs`, `warnings.rs` and `nodes.rs` theirs; `act.rs` rolls back,
//! fails over and steers rollouts through the API. Here: the one list of calls the gateway makes to the API: the RBAC manifests in deploy/kubernetes/ grant exactly these, and a
//! test holds them to it. A call added to the code is added here, or it fails in a real
//! cluster with 403 and in the tests first.

pub mod act;
pub mod argo;
pub mod nodes;
pub mod pods;
pub mod rollouts;
pub mod route;
pub mod story;
pub mod warnings;
pub mod watch;

/// Where a resource lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// In the serving namespace (a Role).
    Namespaced,
    /// Cluster-wide (a ClusterRole).
    Cluster,
}

/// One verb on one resource, and why the gateway needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiCall {
    /// The API group ("" for core).
    pub group: &'static str,
    /// The resource, with its subresource after a `/`.
    pub resource: &'static str,
    pub verb: &'static str,
    pub scope: Scope,
    pub why: &'static str,
}

const fn call(
    group: &'static str,
    resource: &'static str,
    verb: &'static str,
    scope: Scope,
    why: &'static str,
) -> ApiCall {
    ApiCall {
        group,
        resource,
        verb,
        scope,
        why,
    }
}

use Scope::{Cluster, Namespaced};

/// Every call the gateway makes to the Kubernetes API.
pub const API_CALLS: &[ApiCall] = &[
    // Watching: a list, then a watch from its resourceVersion; a get to read one object.
    call(
        "apps",
        "deployments",
        "get",
        Namespaced,
        "a rollback's precondition",
    ),
    call(
        "apps",
        "deployments",
        "list",
        Namespaced,
        "watching rollouts",
    ),
    call(
        "apps",
        "deployments",
        "watch",
        Namespaced,
        "watching rollouts",
    ),
    call("apps", "deployments", "patch", Namespaced, "rollback"),
    call(
        "apps",
        "replicasets",
        "get",
        Namespaced,
        "a revision's template",
    ),
    call(
        "apps",
        "replicasets",
        "list",
        Namespaced,
        "revisions and model versions",
    ),
    call(
        "apps",
        "replicasets",
        "watch",
        Namespaced,
        "revisions and model versions",
    ),
    call("", "pods", "get", Namespaced, "a pod's containers"),
    call(
        "",
        "pods",
        "list",
        Namespaced,
        "OOMKilled and crash-looping pods",
    ),
    call(
        "",
        "pods",
        "watch",
        Namespaced,
        "OOMKilled and crash-looping pods",
    ),
    call("", "events", "get", Namespaced, "one Warning event"),
    call(
        "",
        "events",
        "list",
        Namespaced,
        "Warning events of watched objects",
    ),
    call(
        "",
        "events",
        "watch",
        Namespaced,
        "Warning events of watched objects",
    ),
    call("", "nodes", "get", Cluster, "one node"),
    call(
        "",
        "nodes",
        "list",
        Cluster,
        "nodes down, tainted or with GPU faults",
    ),
    call(
        "",
        "nodes",
        "watch",
        Cluster,
        "nodes down, tainted or with GPU faults",
    ),
    call(
        "argoproj.io",
        "rollouts",
        "get",
        Namespaced,
        "an Argo rollout's precondition",
    ),
    call(
        "argoproj.io",
        "rollouts",
        "list",
        Namespaced,
        "watching Argo rollouts",
    ),
    call(
        "argoproj.io",
        "rollouts",
        "watch",
        Namespaced,
        "watching Argo rollouts",
    ),
    call(
        "argoproj.io",
        "rollouts",
        "patch",
        Namespaced,
        "undo to a revision",
    ),
    call(
        "argoproj.io",
        "rollouts/status",
        "patch",
        Namespaced,
        "abort before undo",
    ),
    call(
        "gateway.networking.k8s.io",
        "httproutes",
        "get",
        Namespaced,
        "failover's precondition",
    ),
    call(
        "gateway.networking.k8s.io",
        "httproutes",
        "list",
        Namespaced,
        "the primary region",
    ),
    call(
        "gateway.networking.k8s.io",
        "httproutes",
        "watch",
        Namespaced,
        "the primary region",
    ),
    call(
        "gateway.networking.k8s.io",
        "httproutes",
        "patch",
        Namespaced,
        "failover",
    ),
    call(
        "networking.istio.io",
        "virtualservices",
        "get",
        Namespaced,
        "failover's precondition (Istio)",
    ),
    call(
        "networking.istio.io",
        "virtualservices",
        "list",
        Namespaced,
        "the primary region (Istio)",
    ),
    call(
        "networking.istio.io",
        "virtualservices",
        "watch",
        Namespaced,
        "the primary region (Istio)",
    ),
    call(
        "networking.istio.io",
        "virtualservices",
        "patch",
        Namespaced,
        "failover (Istio)",
    ),
];
