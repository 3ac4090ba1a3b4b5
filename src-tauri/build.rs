fn main() {
    // The window's build: embeds tauri.conf.json and the capabilities, and gives every
    // command below an `allow-…` permission. A command missing here cannot be granted.
    #[cfg(feature = "desktop")]
    {
        let manifest = tauri_build::AppManifest::new().commands(&[
            "app_info",
            "team_settings",
            "link_team",
            "set_team_sync",
            "team_viewing",
            "redo_refused",
            "team_activity",
            "list_clusters",
            "add_cluster",
            "update_cluster",
            "remove_cluster",
            "event_feed",
            "raw_event",
            "diagnostics",
            "propose_action",
            "propose_silence",
            "rollout_state",
            "fleet_board",
            "incident_changes",
            "bench_frames",
            "show_incident_in_title",
            "incident_actions",
            "confirm_action",
            "cancel_action",
            "action_settings",
            "set_action_settings",
            "runbook_library",
            "matching_runbooks",
            "start_runbook",
            "incident_runs",
            "answer_step",
            "runbook_folders",
            "set_runbook_folders",
            "incident_review",
            "review_timeline",
            "set_key_moment",
            "annotate_entry",
            "set_root_cause",
            "add_factor",
            "remove_factor",
            "add_follow_up",
            "update_follow_up",
            "root_causes",
            "set_root_causes",
            "export_report",
            "export_summit",
            "summit_report",
            "list_incidents",
            "get_incident",
            "incident_timeline",
            "timeline_since",
            "open_incident",
            "change_incident_status",
            "add_note",
            "change_incident_severity",
            "set_commander",
            "set_author",
            "subscribe",
        ]);
        let attributes = tauri_build::Attributes::new()
            .capabilities_path_pattern("./src-tauri/capabilities/**/*")
            .app_manifest(manifest);
        tauri_build::try_build(attributes).expect("tauri build step failed");
    }
    println!("cargo:rerun-if-changed=migrations");
}
