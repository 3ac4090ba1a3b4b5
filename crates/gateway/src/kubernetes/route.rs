//! Reading a service's route (a Gateway API HTTPRoute or an Istio VirtualService): which
//! of its backends serves which configured region, with what weight, and what in the
//! configuration the route does not bear out. Failover (`act.rs`) patches what this finds;
//! the route's watcher (`watch.rs`) says on the stream what it cannot find.

use serde_json::Value;

use crate::config::{Backend, Route, RouteKind};

/// `HTTPRoute serving/llm-assistant`.
pub fn route_name(route: &Route) -> String {
    format!("{} {}/{}", route.kind.as_str(), route.namespace, route.name)
}

/// Where a route keeps its rules and each rule's backends: `spec.rules[].backendRefs[]`
/// (HTTPRoute), `spec.http[].route[]` (VirtualService). Both keep a backend's share in its
/// `weight`.
pub fn layout(kind: RouteKind) -> (&'static str, &'static str) {
    match kind {
        RouteKind::HttpRoute => ("rules", "backendRefs"),
        RouteKind::VirtualService => ("http", "route"),
    }
}

/// A configured region's backend where the route has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub region: String,
    /// The rule's index, and the backend's within the rule.
    pub rule: usize,
    pub index: usize,
    pub weight: i64,
}

/// What the route says of the configured regions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reading {
    pub found: Vec<Found>,
    /// Each configured backend the route does not have, or has more than once in one rule,
    /// in words: `no backend for us-east (Service serving-us-east/chat port 8000)`.
    pub problems: Vec<String>,
}

impl Reading {
    /// The region the route sends most weight to, if any gets some.
    pub fn primary(&self) -> Option<&str> {
        self.found
            .iter()
            .filter(|f| f.weight > 0)
            .max_by_key(|f| f.weight)
            .map(|f| f.region.as_str())
    }
}

/// Whether `backend` (one entry of a rule) is the configured `wanted`.
fn is(wanted: &Backend, route: &Route, backend: &Value) -> bool {
    let port_ok = |want: &Option<u16>, have: Option<i64>| match want {
        None => true,
        Some(p) => have == Some(i64::from(*p)),
    };
    match wanted {
        Backend::Ref(r) => {
            backend["group"].as_str().unwrap_or("") == r.group
                && backend["kind"].as_str().unwrap_or("Service") == r.kind
                && backend["namespace"].as_str().unwrap_or(&route.namespace) == r.namespace
                && backend["name"].as_str() == Some(r.name.as_str())
                && port_ok(&r.port, backend["port"].as_i64())
        }
        Backend::Destination(d) => {
            let dest = &backend["destination"];
            dest["host"].as_str() == Some(d.host.as_str())
                && d.subset
                    .as_ref()
                    .is_none_or(|s| dest["subset"].as_str() == Some(s.as_str()))
                && port_ok(&d.port, dest["port"]["number"].as_i64())
        }
    }
}

/// Reads the route object as the configuration names its backends.
pub fn read(route: &Route, object: &Value) -> Reading {
    let (rules_key, backends_key) = layout(route.kind);
    let rules = object["spec"][rules_key]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut reading = Reading::default();
    let mut ambiguous = std::collections::BTreeSet::new();
    let name = route_name(route);
    for (i, rule) in rules.iter().enumerate() {
        let backends = rule[backends_key].as_array().cloned().unwrap_or_default();
        // An Istio route with one destination and no weight sends it everything.
        let unset = match route.kind {
            RouteKind::VirtualService if backends.len() == 1 => 100,
            RouteKind::VirtualService => 0,
            // The Gateway API's default weight is 1.
            RouteKind::HttpRoute => 1,
        };
        for (region, wanted) in &route.backends {
            let matching: Vec<usize> = backends
                .iter()
                .enumerate()
                .filter(|(_, b)| is(wanted, route, b))
                .map(|(j, _)| j)
                .collect();
            match matching.as_slice() {
                [] => {}
                [j] => reading.found.push(Found {
                    region: region.clone(),
                    rule: i,
                    index: *j,
                    weight: backends[*j]["weight"].as_i64().unwrap_or(unset),
                }),
                more => {
                    ambiguous.insert(region.clone());
                    reading.problems.push(format!(
                    "{name} rule {} has {} backends that match {region}'s ({wanted}): name what tells them apart (the port{})",
                    i + 1,
                    more.len(),
                    match route.kind {
                        RouteKind::HttpRoute => " or the namespace",
                        RouteKind::VirtualService => " or the subset",
                    }
                ));
                }
            }
        }
    }
    for (region, wanted) in &route.backends {
        if !ambiguous.contains(region) && !reading.found.iter().any(|f| &f.region == region) {
            reading
                .problems
                .push(format!("{name} has no backend for {region} ({wanted})"));
        }
    }
    reading.found.sort_by_key(|f| (f.rule, f.index));
    reading
}
