//! Alertmanager's webhook (payload version 4) as protocol v1 events: a firing alert is
//! `alert.firing`, a resolved one `alert.resolved`. The alert's fingerprint is its stable
//! key: the event id is made from (fingerprint, status, startsAt), so a notification that
//! Alertmanager sends again (every group_interval, after a restart) is the same event, and
//! the gateway publishes it once.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

use super::config::Alertmanager as Labels;
use firebreak_protocol::events::{AlertFiring, AlertResolved, AlertSeverity, EventType};

/// The webhook's body, as Alertmanager 0.25 sends it (fields Firebreak does not use are
/// accepted and ignored).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub version: String,
    #[serde(default)]
    pub group_key: String,
    #[serde(default)]
    pub truncated_alerts: u64,
    pub alerts: Vec<Alert>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub status: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub starts_at: DateTime<Utc>,
    #[serde(default)]
    pub ends_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub generator_url: String,
    #[serde(default)]
    pub fingerprint: String,
}

/// One event to publish: its stable id, type, time, subject and data.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    pub id: String,
    pub ty: EventType,
    pub time: DateTime<Utc>,
    pub subject: String,
    pub data: serde_json::Value,
    /// Said to the gateway's log and status: what could not be mapped as it was.
    pub note: Option<String>,
}

/// Why a notification was refused as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("not an Alertmanager webhook payload: {0}")]
    Body(String),
    #[error("webhook payload version {0:?}: this gateway reads version 4")]
    Version(String),
}

/// Reads a webhook body.
pub fn parse(body: &[u8]) -> Result<Notification, Refused> {
    let n: Notification = serde_json::from_slice(body).map_err(|e| Refused::Body(e.to_string()))?;
    if n.version != "4" {
        return Err(Refused::Version(n.version));
    }
    Ok(n)
}

/// The severity an alert's label names, in the console's four words; an unknown one is
/// taken as major (better a page too many than a missed one) and said so.
pub fn severity(label: Option<&str>) -> (AlertSeverity, Option<String>) {
    let Some(raw) = label else {
        return (
            AlertSeverity::Major,
            Some("no severity label: taken as major".into()),
        );
    };
    let s = match raw.trim().to_ascii_lowercase().as_str() {
        "critical" | "page" | "emergency" | "p1" | "sev1" => AlertSeverity::Critical,
        "major" | "error" | "high" | "p2" | "sev2" => AlertSeverity::Major,
        "minor" | "warning" | "warn" | "medium" | "p3" | "sev3" => AlertSeverity::Minor,
        "info" | "informational" | "low" | "none" | "p4" | "p5" | "sev4" => AlertSeverity::Info,
        _ => {
            return (
                AlertSeverity::Major,
                Some(format!("unknown severity {raw:?}: taken as major")),
            )
        }
    };
    (s, None)
}

/// A number an annotation carries (`value`, `threshold`), if it carries one.
fn figure(annotations: &BTreeMap<String, String>, key: &str) -> Option<f64> {
    annotations
        .get(key)
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite())
}

/// The stable event id of one notification of one alert: a UUIDv7 whose time is the
/// alert's start and whose other bits come from (fingerprint, status, startsAt).
pub fn event_id(alert: &Alert) -> String {
    let key = if alert.fingerprint.is_empty() {
        // Alertmanager always sends one; without it, the labels identify the alert.
        serde_json::to_string(&alert.labels).unwrap_or_default()
    } else {
        alert.fingerprint.clone()
    };
    let digest = Sha256::digest(format!(
        "{key}\u{0}{}\u{0}{}",
        alert.status,
        alert.starts_at.timestamp_millis()
    ));
    let mut random = [0u8; 10];
    random.copy_from_slice(&digest[..10]);
    let millis = u64::try_from(alert.starts_at.timestamp_millis()).unwrap_or(0);
    uuid::Builder::from_unix_timestamp_millis(millis, &random)
        .into_uuid()
        .to_string()
}

/// Maps one alert of a notification; None (with why) when it cannot be one of ours: in an
/// Alertmanager shared by several clusters (`cluster_label`), an alert labelled with
/// another cluster is that cluster's gateway's.
pub fn map(alert: &Alert, labels: &Labels, cluster: &str) -> Result<Mapped, String> {
    let name = alert
        .labels
        .get("alertname")
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .ok_or("the alert has no alertname label")?;
    if let Some(label) = &labels.cluster_label {
        if let Some(theirs) = alert.labels.get(label).filter(|v| *v != cluster) {
            return Err(format!(
                "alert {name} is labelled {label}={theirs:?}: another cluster's, not {cluster:?}"
            ));
        }
    }
    let service = alert
        .labels
        .get(&labels.service_label)
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            format!(
                "alert {name} has no {:?} label: the console keys incidents by service",
                labels.service_label
            )
        })?;
    let region = alert
        .labels
        .get(&labels.region_label)
        .cloned()
        .unwrap_or_default();
    let value = figure(&alert.annotations, "value");
    let threshold = figure(&alert.annotations, "threshold");
    let (ty, time, data, note) = match alert.status.as_str() {
        "firing" => {
            let (severity, note) =
                severity(alert.labels.get(&labels.severity_label).map(String::as_str));
            let summary = alert
                .annotations
                .get("summary")
                .or_else(|| alert.annotations.get("description"))
                .cloned()
                .unwrap_or_default();
            let data = serde_json::to_value(AlertFiring {
                alert: name,
                service: service.clone(),
                region,
                severity,
                summary,
                value,
                threshold,
            })
            .map_err(|e| e.to_string())?;
            (EventType::AlertFiring, alert.starts_at, data, note)
        }
        "resolved" => {
            let data = serde_json::to_value(AlertResolved {
                alert: name,
                service: service.clone(),
                region,
                value,
                threshold,
            })
            .map_err(|e| e.to_string())?;
            let at = alert.ends_at.filter(|e| *e > alert.starts_at);
            (
                EventType::AlertResolved,
                at.unwrap_or_else(Utc::now),
                data,
                None,
            )
        }
        other => {
            return Err(format!(
                "alert {name} has status {other:?}, not firing or resolved"
            ))
        }
    };
    Ok(Mapped {
        id: event_id(alert),
        ty,
        time,
        subject: format!("service/{service}"),
        data,
        note,
    })
}

/// An alert as Alertmanager's API v2 lists it (`GET /api/v2/alerts`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Gettable {
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    starts_at: DateTime<Utc>,
    #[serde(default)]
    generator_url: String,
    fingerprint: String,
    status: GettableStatus,
}

#[derive(Debug, Clone, Deserialize)]
struct GettableStatus {
    /// `active`, `suppressed` (silenced or inhibited) or `unprocessed`.
    state: String,
}

/// What a catch-up found: the alerts Alertmanager holds now, as webhook alerts (status
/// `firing`), and the fingerprints of every one it holds in any state.
#[derive(Debug, Default)]
pub struct Held {
    /// Active: what a notification would have carried.
    pub active: Vec<Alert>,
    /// Every fingerprint Alertmanager still holds (active, silenced, inhibited): an alert
    /// the gateway saw firing and that is not among these has resolved.
    pub all: BTreeSet<String>,
}

/// Reads what Alertmanager holds now.
pub async fn held(http: &reqwest::Client, url: &str) -> Result<Held, String> {
    let response = http
        .get(format!("{url}/api/v2/alerts"))
        .timeout(std::time::Duration::from_secs(15))
        .send()
        .await
        .map_err(|e| format!("Alertmanager at {url} did not answer: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("Alertmanager at {url} answered {status}"));
    }
    let listed: Vec<Gettable> = response
        .json()
        .await
        .map_err(|e| format!("Alertmanager's alert list is not what API v2 gives: {e}"))?;
    let mut out = Held::default();
    for g in listed {
        out.all.insert(g.fingerprint.clone());
        if g.status.state == "active" {
            out.active.push(Alert {
                status: "firing".into(),
                labels: g.labels,
                annotations: g.annotations,
                starts_at: g.starts_at,
                ends_at: None,
                generator_url: g.generator_url,
                fingerprint: g.fingerprint,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Labels {
        Labels {
            url: "http://127.0.0.1:9093".into(),
            webhook_token: super::super::config::Secret::Env("X".into()),
            service_label: "service".into(),
            region_label: "region".into(),
            severity_label: "severity".into(),
            cluster_label: None,
            allow_pattern_silences: false,
        }
    }

    /// A notification as Alertmanager 0.25 posts it (captured shape, values ours).
    const PAYLOAD: &str = r#"{
      "receiver": "firebreak", "status": "firing", "version": "4",
      "groupKey": "{}:{alertname=\"HighErrorRate\"}", "truncatedAlerts": 0,
      "groupLabels": {"alertname": "HighErrorRate"}, "commonLabels": {}, "commonAnnotations": {},
      "externalURL": "http://am:9093",
      "alerts": [{
        "status": "firing",
        "labels": {"alertname": "HighErrorRate", "service": "llm-assistant", "region": "us-east", "severity": "critical"},
        "annotations": {"summary": "llm-assistant error rate 9.1 % in us-east", "value": "0.091", "threshold": "0.05"},
        "startsAt": "2026-11-30T03:01:21.5Z", "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prom:9090/graph", "fingerprint": "5b2a1f4c9e0d7a31"
      }]
    }"#;

    #[test]
    fn a_firing_alert_maps_to_alert_firing_with_a_stable_id() {
        let n = parse(PAYLOAD.as_bytes()).unwrap();
        let m = map(&n.alerts[0], &labels(), "prod").unwrap();
        assert_eq!(m.ty, EventType::AlertFiring);
        assert_eq!(m.subject, "service/llm-assistant");
        assert_eq!(m.data["severity"], "critical");
        assert_eq!(m.data["value"], 0.091);
        // The data must be what the protocol's own decoder accepts.
        EventType::AlertFiring.check_data(&m.data).unwrap();
        // Sent again (Alertmanager repeats notifications): the same event.
        let again = map(
            &parse(PAYLOAD.as_bytes()).unwrap().alerts[0],
            &labels(),
            "prod",
        )
        .unwrap();
        assert_eq!(again.id, m.id);
        // Resolved: another event of the same alert.
        let resolved = PAYLOAD
            .replace(
                "\"status\": \"firing\",\n        \"labels\"",
                "\"status\": \"resolved\",\n        \"labels\"",
            )
            .replace("0001-01-01T00:00:00Z", "2026-11-30T03:09:00Z");
        let r = map(
            &parse(resolved.as_bytes()).unwrap().alerts[0],
            &labels(),
            "prod",
        )
        .unwrap();
        assert_eq!(r.ty, EventType::AlertResolved);
        assert_ne!(r.id, m.id);
        EventType::AlertResolved.check_data(&r.data).unwrap();
    }

    #[test]
    fn severities_are_mapped_and_unknown_ones_are_said() {
        assert_eq!(severity(Some("page")).0, AlertSeverity::Critical);
        assert_eq!(severity(Some("Warning")).0, AlertSeverity::Minor);
        let (s, note) = severity(Some("sev-ish"));
        assert_eq!(s, AlertSeverity::Major);
        assert!(note.unwrap().contains("unknown severity \"sev-ish\""));
        assert!(severity(None).1.is_some());
    }

    #[test]
    fn what_cannot_be_ours_is_refused_with_why() {
        assert!(matches!(
            parse(b"{\"version\":\"3\",\"alerts\":[]}"),
            Err(Refused::Version(_))
        ));
        assert!(matches!(parse(b"not json"), Err(Refused::Body(_))));
        let n = parse(
            PAYLOAD
                .replace("\"service\": \"llm-assistant\", ", "")
                .as_bytes(),
        )
        .unwrap();
        let why = map(&n.alerts[0], &labels(), "prod").unwrap_err();
        assert!(why.contains("no \"service\" label"), "{why}");

        // A shared Alertmanager: another cluster's alert is not this gateway's.
        let shared = Labels {
            cluster_label: Some("cluster".into()),
            ..labels()
        };
        let mut alert = parse(PAYLOAD.as_bytes()).unwrap().alerts.remove(0);
        alert.labels.insert("cluster".into(), "prod-west".into());
        let why = map(&alert, &shared, "prod").unwrap_err();
        assert!(why.contains("another cluster's"), "{why}");
        alert.labels.insert("cluster".into(), "prod".into());
        assert!(map(&alert, &shared, "prod").is_ok());
    }
}
