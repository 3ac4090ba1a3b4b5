import type { IncidentStatus } from '../bindings/IncidentStatus';
import type { Severity } from '../bindings/Severity';
import type { StreamState } from '../bindings/StreamState';
import type { TeamStatus } from '../bindings/TeamStatus';

/** "45 s", "12 min", "3 h 05 min", "2 d 4 h": an age that reads at a glance. */
export function age(fromMs: number, nowMs: number): string {
  const s = Math.max(0, Math.floor((nowMs - fromMs) / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h} h ${String(m % 60).padStart(2, '0')} min`;
  const d = Math.floor(h / 24);
  return `${d} d ${h % 24} h`;
}

/** Local wall-clock time with seconds, as the timeline shows it. */
export function clock(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export const SEVERITIES: Severity[] = ['critical', 'major', 'minor', 'info'];

const STATUS_FLOW: IncidentStatus[] = ['open', 'acknowledged', 'mitigated', 'resolved'];

/** The status the incident header offers as its next step. */
export function nextStatus(s: IncidentStatus): IncidentStatus | null {
  const i = STATUS_FLOW.indexOf(s);
  return i >= 0 && i < STATUS_FLOW.length - 1 ? STATUS_FLOW[i + 1] : null;
}

/** The verb on the button that moves an incident to `s`. */
export function statusVerb(s: IncidentStatus): string {
  switch (s) {
    case 'acknowledged':
      return 'Acknowledge';
    case 'mitigated':
      return 'Mark mitigated';
    case 'resolved':
      return 'Resolve';
    default:
      return 'Reopen';
  }
}

/** The status bar's words for a cluster stream. */
export function streamText(s: StreamState, nowMs: number): string {
  switch (s.state) {
    case 'connecting':
      return 'connecting';
    case 'live':
      return 'live';
    case 'catching_up':
      return `catching up, ${s.behind.toLocaleString('en-US')} behind`;
    case 'reconnecting': {
      const secs = Math.max(0, Math.ceil((s.retryAtMs - nowMs) / 1000));
      return `reconnecting in ${secs} s (attempt ${s.attempt}): ${s.reason}`;
    }
    case 'failed':
      return `failed: ${s.reason}`;
  }
}

/** The dot's class: green live, amber catching up or connecting, red failing. */
export function streamTone(s: StreamState): 'live' | 'busy' | 'down' {
  switch (s.state) {
    case 'live':
      return 'live';
    case 'connecting':
    case 'catching_up':
      return 'busy';
    default:
      return 'down';
  }
}

/** Every event type of protocol v1 (PROTOCOL.md), for the feed's type filter. */
export const EVENT_TYPES: string[] = [
  'rollout.started',
  'rollout.wave_progressed',
  'rollout.stalled',
  'rollout.completed',
  'rollout.failed',
  'model.version_changed',
  'node.up',
  'node.down',
  'node.degraded',
  'service.metrics',
  'alert.firing',
  'alert.resolved',
  'region.status',
  'action.accepted',
  'action.running',
  'action.succeeded',
  'action.failed',
  'pod.failing',
  'cluster.warning',
  'source.degraded',
  'synthetic.load',
].map((t) => `dev.firebreak.${t}`);

/** Bytes as a person reads them: 1.4 MB, 820 kB. */
export function bytes(n: number): string {
  if (n < 1_000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = -1;
  do {
    v /= 1_000;
    u += 1;
  } while (v >= 1_000 && u < units.length - 1);
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
}

/** Local time of day with milliseconds, for dense lists: 14:03:27.120. */
export function timeOfDay(ms: number): string {
  const d = new Date(ms);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

/** A duration as the reports write it: "45 s", "12 min 05 s", "3 h 20 min", "—" when unknown. */
export function duration(seconds: number | null): string {
  if (seconds === null) return '—';
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${String(seconds % 60).padStart(2, '0')} s`;
  return `${Math.floor(seconds / 3600)} h ${String(Math.floor((seconds % 3600) / 60)).padStart(2, '0')} min`;
}

/**
 * A local time typed as `clock` writes it ("2026-11-28 04:05:41", seconds optional) or as
 * a `datetime-local` input holds it, as ms; null when empty or not a time.
 */
export function fromLocalInput(value: string): number | null {
  const m = /^\s*(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2}))?\s*$/.exec(value);
  if (!m) return null;
  const [y, mo, d, h, mi, s] = m.slice(1).map((v) => Number(v ?? 0));
  const t = new Date(y, mo - 1, d, h, mi, s);
  return t.getMonth() === mo - 1 && t.getDate() === d ? t.getTime() : null;
}

/** Ticks from 0 to at least `max`, 1, 2 or 5 times a power of ten apart (as the reports' charts). */
export function ticks(max: number): number[] {
  if (!(Number.isFinite(max) && max > 0)) return [0, 1];
  const pow = 10 ** Math.floor(Math.log10(max / 5));
  const step = [1, 2, 5, 10].map((m) => m * pow).find((s) => max / s <= 5) ?? 10 * pow;
  const n = Math.ceil(max / step - 1e-9);
  return Array.from({ length: n + 1 }, (_, i) => Math.round(i * step * 1e6) / 1e6);
}

/** The status bar's words for team sync: "synced", "syncing 3", "offline since 14:02 (5 min)". */
export function teamText(s: TeamStatus, nowMs: number): string {
  const since = s.sinceMs === null ? '' : ` since ${clock(s.sinceMs).slice(11, 16)} (${age(s.sinceMs, nowMs)})`;
  const queued = s.pending > 0 ? `, ${s.pending} queued` : '';
  switch (s.state) {
    case 'off':
      return 'off';
    case 'connecting':
      return `connecting${queued}`;
    case 'synced':
      return 'synced';
    case 'syncing':
      return `syncing ${s.pending}`;
    case 'offline':
      return `offline${since}${queued}`;
    case 'refused':
      return `refused${since}${queued}`;
  }
}

export function teamTone(s: TeamStatus): 'live' | 'busy' | 'down' | 'idle' {
  switch (s.state) {
    case 'synced':
      return 'live';
    case 'syncing':
    case 'connecting':
      return 'busy';
    case 'offline':
    case 'refused':
      return 'down';
    default:
      return 'idle';
  }
}
