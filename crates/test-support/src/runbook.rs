//! A runbook that passes every check, for the suites that load, match, check or run one.

/// A valid runbook (`checkout-latency`).
pub const VALID: &str = r#"---
id: checkout-latency
title: Checkout is slow
owner: payments-oncall
version: 2
applies_to:
  event_types: [dev.firebreak.alert.firing]
  services: [checkout]
  labels:
    region: us-east
  severity: [critical]
steps:
  - id: look
    kind: check
    title: Look at the dashboard
    finding: true
  - id: p99
    kind: query
    title: p99 over 10 minutes
    query: latency_p99
    window_min: 10
  - id: pick
    kind: branch
    title: Slow?
    on: p99
    when:
      - if: "> 800"
        goto: move
    otherwise: end
  - id: move
    kind: action
    title: Fail over
    action: failover
---
# Checkout is slow

Context for the engineer.
"#;
