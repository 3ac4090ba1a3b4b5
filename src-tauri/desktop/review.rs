//! The review window's commands: the incident as reviewed, its filtered timeline, every
//! review edit, and the reports (one incident, or a summit) written through a native save
//! dialog with progress. Each is listed in `src-tauri/build.rs` and granted in
//! `capabilities/main.json`, like the rest.

use tauri::ipc::Channel;
use tauri::State;

use super::Console;
use crate::ipc::{ErrorCode, IpcError};
use firebreak_reports::summit::{Baseline, Selection};
use firebreak_reports::{Format, Progress, ReviewData};
use firebreak_store::review::{FilteredPage, FollowUp, FollowUpDraft, TimelineFilter};

type Reply<T> = Result<T, IpcError>;

#[tauri::command]
pub async fn incident_review(console: State<'_, Console>, id: i64) -> Reply<ReviewData> {
    Ok(firebreak_reports::review_data(console.store()?, id).await?)
}

#[tauri::command]
pub async fn review_timeline(
    console: State<'_, Console>,
    id: i64,
    filter: TimelineFilter,
    after_at: Option<i64>,
    after_id: Option<i64>,
    limit: i64,
) -> Reply<FilteredPage> {
    let store = console.store()?;
    let after = after_at.zip(after_id);
    Ok(FilteredPage {
        entries: store.filtered_timeline(id, &filter, after, limit).await?,
        total: match after {
            None => Some(store.filtered_timeline_count(id, &filter).await?),
            Some(_) => None,
        },
    })
}

/// Moves a key moment (`at_ms` null: back to the recorded time), with a reason.
#[tauri::command]
pub async fn set_key_moment(
    console: State<'_, Console>,
    id: i64,
    moment: String,
    at_ms: Option<i64>,
    reason: String,
) -> Reply<()> {
    let author = console.author();
    console
        .store()?
        .set_moment(id, &moment, at_ms, &reason, &author)
        .await?;
    Ok(())
}

#[tauri::command]
pub async fn annotate_entry(
    console: State<'_, Console>,
    id: i64,
    entry_id: i64,
    text: String,
) -> Reply<()> {
    let author = console.author();
    console
        .store()?
        .annotate(id, entry_id, &text, &author)
        .await?;
    Ok(())
}

#[tauri::command]
pub async fn set_root_cause(
    console: State<'_, Console>,
    id: i64,
    category: Option<String>,
) -> Reply<()> {
    let author = console.author();
    console
        .store()?
        .set_root_cause(id, category.as_deref(), &author)
        .await?;
    Ok(())
}

#[tauri::command]
pub async fn add_factor(console: State<'_, Console>, id: i64, factor: String) -> Reply<()> {
    let author = console.author();
    console.store()?.add_factor(id, &factor, &author).await?;
    Ok(())
}

#[tauri::command]
pub async fn remove_factor(console: State<'_, Console>, id: i64, factor: String) -> Reply<()> {
    console.store()?.remove_factor(id, &factor).await?;
    Ok(())
}

#[tauri::command]
pub async fn add_follow_up(
    console: State<'_, Console>,
    id: i64,
    draft: FollowUpDraft,
) -> Reply<FollowUp> {
    let author = console.author();
    Ok(console.store()?.add_follow_up(id, &draft, &author).await?)
}

#[tauri::command]
pub async fn update_follow_up(
    console: State<'_, Console>,
    follow_up_id: i64,
    draft: FollowUpDraft,
) -> Reply<FollowUp> {
    let author = console.author();
    Ok(console
        .store()?
        .update_follow_up(follow_up_id, &draft, &author)
        .await?)
}

#[tauri::command]
pub async fn root_causes(console: State<'_, Console>) -> Reply<Vec<String>> {
    Ok(console.store()?.root_causes().await?)
}

#[tauri::command]
pub async fn set_root_causes(console: State<'_, Console>, list: Vec<String>) -> Reply<Vec<String>> {
    Ok(console.store()?.set_root_causes(&list).await?)
}

fn format_of(format: &str) -> Reply<(Format, &'static str, &'static str)> {
    match format {
        "md" => Ok((Format::Markdown, "md", "Markdown")),
        "html" => Ok((Format::Html, "html", "HTML")),
        "json" => Ok((Format::Json, "json", "JSON")),
        _ => Err(IpcError::new(
            ErrorCode::Invalid,
            "the format is md, html or json",
        )),
    }
}

/// Asks for a path in a native save dialog, then writes what `make` produces there, and
/// nowhere else, atomically. Returns the path written, or None when the engineer cancelled
/// (then nothing is made).
async fn export_to_chosen_file<R: tauri::Runtime>(
    app: &tauri::AppHandle<R>,
    window: &tauri::WebviewWindow<R>,
    title: &str,
    file_name: String,
    (ext, label): (&'static str, &'static str),
    make: impl std::future::Future<Output = Reply<String>>,
) -> Reply<Option<String>> {
    use tauri_plugin_dialog::DialogExt;
    let (tx, rx) = tokio::sync::oneshot::channel();
    app.dialog()
        .file()
        .set_parent(window)
        .set_title(title)
        .set_file_name(file_name)
        .add_filter(label, &[ext])
        .save_file(move |path| {
            let _ = tx.send(path);
        });
    let Some(path) = rx.await.ok().flatten() else {
        return Ok(None);
    };
    let path = path
        .into_path()
        .map_err(|e| IpcError::new(ErrorCode::Invalid, e.to_string()))?;
    let text = make.await?;
    firebreak_reports::write_atomically(&path, &text).map_err(|e| {
        IpcError::new(
            ErrorCode::Internal,
            format!("cannot write {}: {e}", path.display()),
        )
    })?;
    Ok(Some(path.display().to_string()))
}

/// Exports an incident's report to a file the engineer picks in a native save dialog, and
/// to nothing else: the page names the incident and the format, never a path. `progress`
/// hears how many timeline entries have been read. Returns the path written, or null when
/// the dialog was cancelled.
#[tauri::command]
pub async fn export_report<R: tauri::Runtime>(
    app: tauri::AppHandle<R>,
    window: tauri::WebviewWindow<R>,
    console: State<'_, Console>,
    incident_id: i64,
    format: String,
    progress: Channel<Progress>,
) -> Reply<Option<String>> {
    let (fmt, ext, label) = format_of(&format)?;
    let store = console.store()?;
    store.incident(incident_id).await?;
    let make = async {
        // At most one message per 1% (or per page): the page's progress bar, not a flood.
        let mut last = None;
        let report = firebreak_reports::build_with(store, incident_id, true, &mut |p: Progress| {
            let step = p.done * 100 / p.total.max(1);
            if last != Some(step) {
                last = Some(step);
                let _ = progress.send(p);
            }
        })
        .await?;
        Ok(firebreak_reports::render(&report, fmt))
    };
    let name = format!("incident-{incident_id}.{ext}");
    export_to_chosen_file(
        &app,
        &window,
        "Export incident report",
        name,
        (ext, label),
        make,
    )
    .await
}

/// The summit report of a period or of chosen incidents, for the Summit view to draw.
/// `progress` hears how many incidents have been read.
#[tauri::command]
pub async fn summit_report(
    console: State<'_, Console>,
    selection: Selection,
    baseline: Option<Baseline>,
    progress: Channel<Progress>,
) -> Reply<firebreak_reports::summit::SummitReport> {
    let store = console.store()?;
    let baseline = baseline.map(|b| (b.from, b.to));
    firebreak_reports::summit::summit_with(store, &selection, baseline, &mut |done, total| {
        let _ = progress.send(Progress { done, total });
    })
    .await
    .map_err(|e| IpcError::new(ErrorCode::Invalid, format!("{e:#}")))
}

/// The summit report of a period or of chosen incidents, to a file picked in a native
/// save dialog. `progress` hears how many incidents have been read.
#[tauri::command]
pub async fn export_summit<R: tauri::Runtime>(
    app: tauri::AppHandle<R>,
    window: tauri::WebviewWindow<R>,
    console: State<'_, Console>,
    selection: Selection,
    baseline: Option<Baseline>,
    format: String,
    progress: Channel<Progress>,
) -> Reply<Option<String>> {
    let (fmt, ext, label) = format_of(&format)?;
    let store = console.store()?;
    let baseline = baseline.map(|b| (b.from, b.to));
    let make = async {
        let report = firebreak_reports::summit::summit_with(
            store,
            &selection,
            baseline,
            &mut |done, total| {
                let _ = progress.send(Progress { done, total });
            },
        )
        .await?;
        Ok(firebreak_reports::summit::render(&report, fmt))
    };
    let name = format!("summit.{ext}");
    export_to_chosen_file(
        &app,
        &window,
        "Export summit report",
        name,
        (ext, label),
        make,
    )
    .await
}
