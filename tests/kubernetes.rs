//! The gateway's Kubernetes manifests (deploy/kubernetes/): each parses into the
//! Kubernetes API's own types with nothing left over (a misspelt or misplaced field would
//! be dropped by the API server without a word, so it fails here), the kustomization lists
//! every one, and the RBAC grants exactly the calls the gateway makes
//! (`firebreak::gateway::kubernetes::API_CALLS`): no more, no fewer, no wildcards.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use firebreak::gateway::kubernetes::{Scope, API_CALLS};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes")
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
    firebreak::gateway::config::load(&toml).unwrap();
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
        BTreeSet::from(["deployments", "httproutes", "rollouts", "rollouts/status"])
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
    assert_eq!(
        container.args.clone().unwrap()[..2],
        ["gateway", "--config"]
    );
}
