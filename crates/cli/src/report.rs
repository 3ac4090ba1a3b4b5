//! Plain-text and JSON views of the store for the command line.

use anyhow::Result;

use firebreak_store::incident::Incident;
use firebreak_store::Store;

pub async fn print_incidents(store: &Store, json: bool) -> Result<()> {
    let incidents = store.incidents().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&incidents)?);
        return Ok(());
    }
    if incidents.is_empty() {
        println!("No incidents recorded.");
        return Ok(());
    }
    println!(
        "{:>5}  {:<8}  {:<12}  {:<16}  {:<20}  TITLE",
        "ID", "SEVERITY", "STATUS", "SERVICE", "OPENED (UTC)"
    );
    for i in &incidents {
        println!("{}", incident_line(i));
    }
    Ok(())
}

fn incident_line(i: &Incident) -> String {
    format!(
        "{:>5}  {:<8}  {:<12}  {:<16}  {:<20}  {}",
        i.id,
        i.severity.as_str(),
        i.status.as_str(),
        i.service.as_deref().unwrap_or("-"),
        format_ms(i.opened_ms),
        i.title
    )
}

pub async fn print_timeline(store: &Store, incident: i64, json: bool) -> Result<()> {
    let head = store.incident(incident).await?;
    let mut entries = Vec::new();
    let mut after = None;
    loop {
        let page = store.timeline(incident, after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = Some((last.at_ms, last.id));
        entries.extend(page);
    }
    if json {
        let out = serde_json::json!({ "incident": head, "entries": entries });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("{}", incident_line(&head));
    for e in &entries {
        let amends = e
            .amends
            .map(|a| format!(" (corrects #{a})"))
            .unwrap_or_default();
        println!(
            "  {}  {:<18} {:<12} {}{amends}",
            format_ms(e.at_ms),
            e.kind.as_str(),
            e.author,
            e.body
        );
    }
    Ok(())
}

fn format_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| ms.to_string())
}
