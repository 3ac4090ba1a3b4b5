// The one seam between the page and the Rust side: only this folder imports
// @tauri-apps/*. Components get a `Host` and never know whether it is the real
// app or a test's fake.
import { Channel, invoke } from '@tauri-apps/api/core';
import type { ActionRecord } from '../bindings/ActionRecord';
import type { ActionSettings } from '../bindings/ActionSettings';
import type { AppInfo } from '../bindings/AppInfo';
import type { Answer } from '../bindings/Answer';
import type { Library } from '../bindings/Library';
import type { Match } from '../bindings/Match';
import type { RunRecord } from '../bindings/RunRecord';
import type { RolloutState } from '../bindings/RolloutState';
import type { FleetBoard } from '../bindings/FleetBoard';
import type { RolloutVerdicts } from '../bindings/RolloutVerdicts';
import type { ServiceGuard } from '../bindings/ServiceGuard';
import type { GuardMode } from '../bindings/GuardMode';
import type { ServiceObjectives } from '../bindings/ServiceObjectives';
import type { Objective } from '../bindings/Objective';
import type { Change } from '../bindings/Change';
import type { ConsoleUpdate } from '../bindings/ConsoleUpdate';
import type { Diagnostics } from '../bindings/Diagnostics';
import type { FeedFilter } from '../bindings/FeedFilter';
import type { FeedPage } from '../bindings/FeedPage';
import type { FeedPageRequest } from '../bindings/FeedPageRequest';
import type { NewCluster } from '../bindings/NewCluster';
import type { RawEvent } from '../bindings/RawEvent';
import type { TokenChange } from '../bindings/TokenChange';
import type { WatchedCluster } from '../bindings/WatchedCluster';
import type { ErrorCode } from '../bindings/ErrorCode';
import type { Incident } from '../bindings/Incident';
import type { IncidentStatus } from '../bindings/IncidentStatus';
import type { IpcError } from '../bindings/IpcError';
import type { NewIncident } from '../bindings/NewIncident';
import type { Severity } from '../bindings/Severity';
import type { TimelineEntry } from '../bindings/TimelineEntry';
import type { FilteredPage } from '../bindings/FilteredPage';
import type { FollowUp } from '../bindings/FollowUp';
import type { FollowUpDraft } from '../bindings/FollowUpDraft';
import type { Progress } from '../bindings/Progress';
import type { ReviewData } from '../bindings/ReviewData';
import type { Selection } from '../bindings/Selection';
import type { SummitReport } from '../bindings/SummitReport';
import type { Baseline } from '../bindings/Baseline';
import type { TimelineFilter } from '../bindings/TimelineFilter';
import type { TeamSettings } from '../bindings/TeamSettings';
import type { TeamLinkRequest } from '../bindings/TeamLinkRequest';
import type { TeamActivity } from '../bindings/TeamActivity';

export type ReportFormat = 'md' | 'html' | 'json';
/** The actions proposed from the Act column (a silence is proposed from its alert's entry). */
export type ProposedKind = Exclude<ActionRecord['kind'], 'silence'>;
/** What the person chose beyond the kind: a rollback's revision, a promotion of every wave. */
export type Choice = { toRevision?: number; full?: boolean };
export type KeyMomentName = 'impact_began' | 'detected' | 'acknowledged' | 'mitigated' | 'resolved';

export interface Host {
  appInfo(): Promise<AppInfo>;
  listClusters(): Promise<WatchedCluster[]>;
  /** Adds a cluster and starts watching it; the token goes to the OS keychain. */
  addCluster(cluster: NewCluster, token: string | null): Promise<WatchedCluster>;
  updateCluster(id: number, cluster: NewCluster, token: TokenChange): Promise<WatchedCluster>;
  /** Stops watching; what was recorded stays. */
  removeCluster(id: number): Promise<void>;
  /** A page of recorded events, newest first, by key. */
  eventFeed(filter: FeedFilter, page: FeedPageRequest): Promise<FeedPage>;
  rawEvent(seq: number): Promise<RawEvent>;
  diagnostics(): Promise<Diagnostics>;
  /**
   * Rust resolves what the action does; the page names the incident, the kind and at most a
   * revision to roll back to or that a promotion runs every remaining wave.
   */
  proposeAction(incidentId: number, kind: ProposedKind, choice?: Choice): Promise<ActionRecord>;
  /** The incident's deployment now: the rollout under way and the revisions with their record. */
  rolloutState(incidentId: number): Promise<RolloutState>;
  /** Every watched cluster's services × regions, as the store recorded them. */
  fleetBoard(): Promise<FleetBoard>;
  /** The canary verdicts of a service's newest rollout, wave by wave (none: it never rolled out). */
  rolloutVerdicts(clusterId: number, service: string): Promise<RolloutVerdicts | null>;
  /** Every recorded service's rollout guard, with what a runbook recommends for it. */
  rolloutGuards(): Promise<ServiceGuard[]>;
  /**
   * Sets a service's guard, approved by this user for `reason`; pause on fail is confirmed
   * in a native dialog first. Resolves to every service's guard as it now stands.
   */
  setRolloutGuard(clusterId: number, service: string, mode: GuardMode, reason: string): Promise<ServiceGuard[]>;
  /** Every recorded service with its objectives and their burn rates now. */
  objectives(): Promise<ServiceObjectives[]>;
  /** Sets (null: removes) a service's objectives; resolves to every service's as they now stand. */
  setObjective(clusterId: number, service: string, objective: Objective | null): Promise<ServiceObjectives[]>;
  /** Rollouts, model changes and actions on the incident's service, newest first. */
  incidentChanges(incidentId: number): Promise<Change[]>;
  /** Names the incident (or none) in the window's title; Rust reads its title. */
  showIncidentInTitle(incidentId: number | null): Promise<void>;
  /** `firebreak bench frames` only: the measured frame times (ms); the window then closes. */
  benchFrames(frames: number[]): Promise<void>;
  /** Proposes silencing the alert of a timeline entry for 1 h (Rust reads the alert). */
  proposeSilence(incidentId: number, entryId: number): Promise<ActionRecord>;
  incidentActions(incidentId: number): Promise<ActionRecord[]>;
  /** Rust re-checks, then asks in a native dialog; resolves once the engineer answered. */
  confirmAction(id: string, reason: string, typedName: string | null): Promise<ActionRecord>;
  cancelAction(id: string): Promise<ActionRecord>;
  actionSettings(): Promise<ActionSettings>;
  /** Every runbook loaded, and every runbook file's problem. */
  runbookLibrary(): Promise<Library>;
  matchingRunbooks(incidentId: number): Promise<Match[]>;
  /** Starts a runbook on an incident, or resumes the run under way. */
  startRunbook(incidentId: number, runbookId: string): Promise<RunRecord>;
  incidentRuns(incidentId: number): Promise<RunRecord[]>;
  answerStep(runId: number, stepId: string, answer: Answer): Promise<RunRecord>;
  /** The runbook folders: the user's own first, then those added in settings. */
  runbookFolders(): Promise<string[]>;
  /** Sets the added folders and reloads the runbooks. */
  setRunbookFolders(folders: string[]): Promise<Library>;
  /**
   * Rust asks where to save in a native dialog, then builds and writes the report, telling
   * `onProgress` how many timeline entries it has read; resolves to the path written, or null.
   */
  exportReport(incidentId: number, format: ReportFormat, onProgress?: (p: Progress) => void): Promise<string | null>;
  /** The summit of a period or chosen incidents, for the Summit view to draw, with progress. */
  summitReport(selection: Selection, baseline: Baseline | null, onProgress?: (p: Progress) => void): Promise<SummitReport>;
  /**
   * The summit of a period or chosen incidents, compared with `baseline` (null: the period
   * before), through a native save dialog, with progress.
   */
  exportSummit(selection: Selection, format: ReportFormat, onProgress?: (p: Progress) => void, baseline?: Baseline | null): Promise<string | null>;
  /** The incident as reviewed: its report without the timeline, the review and its choices. */
  incidentReview(id: number): Promise<ReviewData>;
  /** A page of the filtered timeline in time order, after the entry `after` (keyset). */
  reviewTimeline(id: number, filter: TimelineFilter, after: TimelineEntry | null, limit: number): Promise<FilteredPage>;
  /** Moves a key moment (null: back to the recorded time); a reason is required. */
  setKeyMoment(id: number, moment: KeyMomentName, atMs: number | null, reason: string): Promise<void>;
  annotateEntry(id: number, entryId: number, text: string): Promise<void>;
  setRootCause(id: number, category: string | null): Promise<void>;
  addFactor(id: number, factor: string): Promise<void>;
  removeFactor(id: number, factor: string): Promise<void>;
  addFollowUp(id: number, draft: FollowUpDraft): Promise<FollowUp>;
  updateFollowUp(followUpId: number, draft: FollowUpDraft): Promise<FollowUp>;
  rootCauses(): Promise<string[]>;
  setRootCauses(list: string[]): Promise<string[]>;
  setActionSettings(settings: ActionSettings): Promise<ActionSettings>;
  listIncidents(): Promise<Incident[]>;
  getIncident(id: number): Promise<Incident>;
  /** A page of the timeline in time order, after the entry `after` (keyset). */
  timeline(id: number, after: TimelineEntry | null, limit: number): Promise<TimelineEntry[]>;
  /** Entries recorded after entry `sinceId`, in recording order (the live refresh). */
  timelineSince(id: number, sinceId: number, limit: number): Promise<TimelineEntry[]>;
  openIncident(incident: NewIncident): Promise<Incident>;
  changeStatus(id: number, to: IncidentStatus): Promise<Incident>;
  addNote(id: number, text: string): Promise<TimelineEntry>;
  changeSeverity(id: number, to: Severity): Promise<Incident>;
  /** `commander`: who takes command (the user's own name to take it), null to step down. */
  setCommander(id: number, commander: string | null): Promise<Incident>;
  setAuthor(name: string): Promise<string>;
  /** The team link (never the token) and where sync stands. */
  teamSettings(): Promise<TeamSettings>;
  /** Checks the token with the server, keeps it in the OS keychain, links and syncs. */
  linkTeam(link: TeamLinkRequest): Promise<TeamSettings>;
  setTeamSync(enabled: boolean): Promise<TeamSettings>;
  /** The incident this console shows, for the team's presence. */
  teamViewing(incident: number | null): Promise<void>;
  /** Makes a change the team refused again, on the incident as it is now. */
  redoRefused(entry: number): Promise<Incident>;
  /** Teammates' actions and runbook runs on an incident. */
  teamActivity(incident: number): Promise<TeamActivity>;
  /** Live updates (cluster states, incident changes), a few per second at most. */
  subscribe(onUpdate: (update: ConsoleUpdate) => void): Promise<void>;
}

/** An error from the Rust side, with the code the UI branches on. */
export class HostError extends Error {
  constructor(
    readonly code: ErrorCode | 'unreachable',
    message: string,
  ) {
    super(message);
  }
}

function isIpcError(e: unknown): e is IpcError {
  return typeof e === 'object' && e !== null && 'code' in e && 'message' in e;
}

/** Turns whatever a command rejected with into a HostError with a readable message. */
export function toHostError(e: unknown): HostError {
  if (e instanceof HostError) return e;
  if (isIpcError(e)) return new HostError(e.code, e.message);
  const text = e instanceof Error ? e.message : String(e);
  return new HostError('unreachable', `The console's backend did not answer: ${text}`);
}

async function call<T>(command: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(command, args);
  } catch (e) {
    throw toHostError(e);
  }
}

function progressChannel(onProgress?: (p: Progress) => void): Channel<Progress> {
  const channel = new Channel<Progress>();
  channel.onmessage = (p) => onProgress?.(p);
  return channel;
}

export const tauriHost: Host = {
  appInfo: () => call('app_info'),
  listClusters: () => call('list_clusters'),
  addCluster: (cluster, token) => call('add_cluster', { cluster, token }),
  updateCluster: (id, cluster, token) => call('update_cluster', { id, cluster, token }),
  removeCluster: (id) => call('remove_cluster', { id }),
  eventFeed: (filter, page) => call('event_feed', { filter, page }),
  rawEvent: (seq) => call('raw_event', { seq }),
  diagnostics: () => call('diagnostics'),
  proposeAction: (incidentId, kind, choice) =>
    call('propose_action', { incidentId, kind, toRevision: choice?.toRevision ?? null, full: choice?.full ?? null }),
  rolloutState: (incidentId) => call('rollout_state', { incidentId }),
  fleetBoard: () => call('fleet_board'),
  rolloutVerdicts: (clusterId, service) => call('rollout_verdicts', { clusterId, service }),
  rolloutGuards: () => call('rollout_guards'),
  setRolloutGuard: (clusterId, service, mode, reason) => call('set_rollout_guard', { clusterId, service, mode, reason }),
  objectives: () => call('objectives'),
  setObjective: (clusterId, service, objective) => call('set_objective', { clusterId, service, objective }),
  incidentChanges: (incidentId) => call('incident_changes', { incidentId }),
  benchFrames: (frames) => call('bench_frames', { frames }),
  showIncidentInTitle: (incidentId) => call('show_incident_in_title', { incidentId }),
  proposeSilence: (incidentId, entryId) => call('propose_silence', { incidentId, entryId }),
  incidentActions: (incidentId) => call('incident_actions', { incidentId }),
  confirmAction: (id, reason, typedName) => call('confirm_action', { id, reason, typedName }),
  cancelAction: (id) => call('cancel_action', { id }),
  actionSettings: () => call('action_settings'),
  runbookLibrary: () => call('runbook_library'),
  matchingRunbooks: (incidentId) => call('matching_runbooks', { incidentId }),
  startRunbook: (incidentId, runbookId) => call('start_runbook', { incidentId, runbookId }),
  incidentRuns: (incidentId) => call('incident_runs', { incidentId }),
  answerStep: (runId, stepId, answer) => call('answer_step', { runId, stepId, answer }),
  runbookFolders: () => call('runbook_folders'),
  setRunbookFolders: (folders) => call('set_runbook_folders', { folders }),
  exportReport: (incidentId, format, onProgress) =>
    call('export_report', { incidentId, format, progress: progressChannel(onProgress) }),
  summitReport: (selection, baseline, onProgress) =>
    call('summit_report', { selection, baseline, progress: progressChannel(onProgress) }),
  exportSummit: (selection, format, onProgress, baseline) =>
    call('export_summit', { selection, baseline: baseline ?? null, format, progress: progressChannel(onProgress) }),
  incidentReview: (id) => call('incident_review', { id }),
  reviewTimeline: (id, filter, after, limit) =>
    call('review_timeline', { id, filter, afterAt: after?.atMs ?? null, afterId: after?.id ?? null, limit }),
  setKeyMoment: (id, moment, atMs, reason) => call('set_key_moment', { id, moment, atMs, reason }),
  annotateEntry: (id, entryId, text) => call('annotate_entry', { id, entryId, text }),
  setRootCause: (id, category) => call('set_root_cause', { id, category }),
  addFactor: (id, factor) => call('add_factor', { id, factor }),
  removeFactor: (id, factor) => call('remove_factor', { id, factor }),
  addFollowUp: (id, draft) => call('add_follow_up', { id, draft }),
  updateFollowUp: (followUpId, draft) => call('update_follow_up', { followUpId, draft }),
  rootCauses: () => call('root_causes'),
  setRootCauses: (list) => call('set_root_causes', { list }),
  setActionSettings: (settings) => call('set_action_settings', { settings }),
  listIncidents: () => call('list_incidents'),
  getIncident: (id) => call('get_incident', { id }),
  timeline: (id, after, limit) =>
    call('incident_timeline', { id, afterAt: after?.atMs ?? null, afterId: after?.id ?? null, limit }),
  timelineSince: (id, sinceId, limit) => call('timeline_since', { id, sinceId, limit }),
  openIncident: (incident) => call('open_incident', { incident }),
  changeStatus: (id, to) => call('change_incident_status', { id, to }),
  addNote: (id, text) => call('add_note', { id, text }),
  changeSeverity: (id, to) => call('change_incident_severity', { id, to }),
  setCommander: (id, commander) => call('set_commander', { id, commander }),
  setAuthor: (name) => call('set_author', { name }),
  teamSettings: () => call('team_settings'),
  linkTeam: (link) => call('link_team', { link }),
  setTeamSync: (enabled) => call('set_team_sync', { enabled }),
  teamViewing: (incident) => call('team_viewing', { incident }),
  redoRefused: (entry) => call('redo_refused', { entry }),
  teamActivity: (incident) => call('team_activity', { incident }),
  subscribe: (onUpdate) => {
    const channel = new Channel<ConsoleUpdate>();
    channel.onmessage = onUpdate;
    return call('subscribe', { channel });
  },
};
