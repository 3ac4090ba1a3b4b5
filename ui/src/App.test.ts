import { cleanup, render, screen, fireEvent, waitFor, within } from '@testing-library/svelte';
import { afterEach, describe, expect, it } from 'vitest';
import App from './App.svelte';
import type { Host } from './host';
import { HostError, toHostError } from './host';
import type { AppInfo } from './bindings/AppInfo';
import type { Incident } from './bindings/Incident';
import type { TimelineEntry } from './bindings/TimelineEntry';
import type { FeedEvent } from './bindings/FeedEvent';
import type { WatchedCluster } from './bindings/WatchedCluster';
import type { ConsoleUpdate } from './bindings/ConsoleUpdate';
import type { ActionRecord } from './bindings/ActionRecord';
import type { RolloutState } from './bindings/RolloutState';
import type { FleetBoard } from './bindings/FleetBoard';
import type { FleetCell } from './bindings/FleetCell';
import type { RunRecord } from './bindings/RunRecord';
import type { Answer } from './bindings/Answer';
import type { ReviewData } from './bindings/ReviewData';
import type { Selection } from './bindings/Selection';
import type { SummitReport } from './bindings/SummitReport';
import type { Baseline } from './bindings/Baseline';
import type { FollowUp } from './bindings/FollowUp';
import type { FollowUpDraft } from './bindings/FollowUpDraft';
import type { TeamStatus } from './bindings/TeamStatus';
import type { ServiceGuard } from './bindings/ServiceGuard';
import type { GuardMode } from './bindings/GuardMode';
import type { Verdict } from './bindings/Verdict';
import type { Objective } from './bindings/Objective';
import type { ServiceObjectives } from './bindings/ServiceObjectives';

afterEach(cleanup);

const info: AppInfo = {
  version: '0.1.0',
  dataDir: '/tmp/fb',
  database: '/tmp/fb/firebreak.db',
  author: 'ana',
  storeError: null,
  benchFramesS: null,
  benchPaint: false,
};

function incident(id: number, over: Partial<Incident> = {}): Incident {
  return {
    id,
    publicId: `p${id}`,
    clusterId: null,
    title: `Incident ${id}`,
    service: 'search-ranking',
    severity: 'major',
    status: 'open',
    commander: null,
    openedMs: Date.now() - 60_000,
    acknowledgedMs: null,
    mitigatedMs: null,
    resolvedMs: null,
    updatedMs: Date.now(),
    entryCount: 1,
    demo: false,
    ...over,
  };
}

/** What the review window gets for an incident: recorded moments, one action, no review yet. */
function reviewData(id: number, over: Partial<ReviewData> = {}): ReviewData {
  const t0 = Date.UTC(2026, 10, 28, 3, 0, 0);
  const iso = (ms: number) => new Date(ms).toISOString();
  return {
    report: {
      schema: 'firebreak.incident-report.v1',
      incident: { id, public_id: `p${id}`, title: `Incident ${id}`, service: 'llm-assistant', severity: 'critical', status: 'resolved', commander: 'ana', demo: false },
      key_moments: [
        { moment: 'impact_began', at: iso(t0), source: 'first sign on the timeline: alert HighErrorRate', recorded_at: iso(t0), edit: null },
        { moment: 'detected', at: iso(t0 + 60_000), source: 'the incident was opened', recorded_at: iso(t0 + 60_000), edit: null },
        { moment: 'acknowledged', at: iso(t0 + 120_000), source: 'status changed to acknowledged', recorded_at: iso(t0 + 120_000), edit: null },
        { moment: 'mitigated', at: iso(t0 + 600_000), source: 'status changed to mitigated', recorded_at: iso(t0 + 600_000), edit: null },
        { moment: 'resolved', at: iso(t0 + 900_000), source: 'status changed to resolved', recorded_at: iso(t0 + 900_000), edit: null },
      ],
      figures: [
        { name: 'time to detect', seconds: 60, definition: 'from impact began to the incident being detected (opened)' },
        { name: 'time to acknowledge', seconds: 60, definition: 'from the incident being detected to it being acknowledged' },
        { name: 'time to mitigate', seconds: 600, definition: 'from impact began to the incident being mitigated' },
        { name: 'time to resolve', seconds: 900, definition: 'from impact began to the incident being resolved' },
      ],
      events_by_type: [['service.metrics', 40], ['alert.firing', 2]],
      alerts: ['HighErrorRate'],
      actions: [{ summary: 'Roll llm-assistant-serving back from 41 to 40', kind: 'rollback', state: 'succeeded', confirmed_by: 'ana', reason: 'bad weights', verification: 'recovered', recovered: true, error: null, at: iso(t0 + 400_000), sent_at: iso(t0 + 300_000) }],
      review: { root_cause: null, contributing_factors: [], follow_ups: [] },
      metrics: [0, 1, 2, 3].map((i) => ({ at: iso(t0 + i * 300_000), error_rate: i === 1 ? 0.3 : 0.01, latency_p99_ms: 900 })),
      timeline: [],
      generated_at: iso(t0 + 1_000_000),
    },
    review: { incidentId: id, rootCause: null, rootCauseBy: null, factors: [], followUps: [], momentEdits: [], annotations: [] },
    facets: { kinds: ['note', 'event'], services: ['llm-assistant'], authors: ['ana'], spanMs: [t0, t0 + 900_000] },
    rootCauses: ['bad model version', 'capacity'],
    knownFactors: [],
    ...over,
  };
}

/** A host that keeps incidents in memory, the way the store would. */
function feedEvent(seq: number, over: Partial<FeedEvent> = {}): FeedEvent {
  return {
    seq,
    cluster: 'demo',
    type: 'dev.firebreak.service.metrics',
    subject: 'service/llm-assistant',
    service: 'llm-assistant',
    severity: null,
    timeMs: Date.now(),
    summary: `metrics ${seq}`,
    ...over,
  };
}

function teamStatus(over: Partial<TeamStatus> = {}): TeamStatus {
  return { state: 'synced', team: 'serving', url: 'https://team.example:7600', you: 'ana', pending: 0, sinceMs: null, reason: null, people: [], ...over };
}

function fakeHost(start: Incident[] = [], overrides: Partial<Host> = {}): Host & { notes: string[] } {
  const incidents = [...start];
  const notes: string[] = [];
  const entries: TimelineEntry[] = [];
  const clusters: WatchedCluster[] = [];
  return {
    notes,
    appInfo: async () => info,
    listClusters: async () => clusters,
    addCluster: async (c, token) => {
      const added = { ...c, caFile: c.caFile ?? null, id: clusters.length + 1, createdMs: Date.now(), demo: false, hasToken: !!token };
      clusters.push(added);
      return added;
    },
    updateCluster: async (id, c) => ({ ...clusters.find((x) => x.id === id)!, ...c }),
    removeCluster: async (id) => {
      clusters.splice(clusters.findIndex((x) => x.id === id), 1);
    },
    eventFeed: async () => ({ events: [], unsearchable: 0 }),
    rawEvent: async (seq) => ({ seq, cluster: 'demo', receivedMs: Date.now(), text: '{}' }),
    proposeAction: async () => {
      throw new HostError('refused', 'no actions in this fake');
    },
    proposeSilence: async () => {
      throw new HostError('refused', 'no actions in this fake');
    },
    incidentActions: async () => [],
    rolloutState: async () => {
      throw new HostError('refused', 'no cluster in this fake');
    },
    fleetBoard: async () => ({ clusters: [] }),
    rolloutVerdicts: async () => null,
    rolloutGuards: async () => [],
    setRolloutGuard: async () => [],
    objectives: async () => [],
    setObjective: async () => [],
    incidentChanges: async () => [],
    benchFrames: async () => {},
    showIncidentInTitle: async () => {},
    confirmAction: async () => {
      throw new HostError('refused', 'no actions in this fake');
    },
    cancelAction: async () => {
      throw new HostError('refused', 'no actions in this fake');
    },
    actionSettings: async () => ({
      readOnly: false, graceS: 5, verifyWindowS: 60, typeToConfirmNodes: 12, maxErrorRate: 0.02, maxLatencyFactor: 1.5,
    }),
    setActionSettings: async (s) => s,
    runbookLibrary: async () => ({ runbooks: [], errors: [] }),
    matchingRunbooks: async () => [],
    startRunbook: async () => {
      throw new HostError('refused', 'no runbooks in this fake');
    },
    incidentRuns: async () => [],
    runbookFolders: async () => ['/home/ana/.config/firebreak/runbooks'],
    setRunbookFolders: async () => ({ runbooks: [], errors: [] }),
    exportReport: async () => '/home/ana/incident-1.html',
    exportSummit: async () => '/home/ana/summit.html',
    summitReport: async () => summitReport(),
    incidentReview: async (id) => reviewData(id),
    reviewTimeline: async (id, filter) => {
      const kept = entries.filter((e) => e.incidentId === id && (filter.kinds.length === 0 || filter.kinds.includes(e.kind)));
      return { entries: kept, total: kept.length };
    },
    setKeyMoment: async () => {},
    annotateEntry: async () => {},
    setRootCause: async () => {},
    addFactor: async () => {},
    removeFactor: async () => {},
    addFollowUp: async () => {
      throw new HostError('invalid', 'no follow-ups in this fake');
    },
    updateFollowUp: async () => {
      throw new HostError('invalid', 'no follow-ups in this fake');
    },
    rootCauses: async () => ['bad model version', 'capacity'],
    setRootCauses: async (list) => list,
    answerStep: async () => {
      throw new HostError('refused', 'no runbooks in this fake');
    },
    diagnostics: async () => ({
      events: 0, quarantined: 0, quarantineArrivals: 0, quarantine: [], gaps: [], unsearchable: 0,
      databaseBytes: 4096, walBytes: 0, databasePath: '/tmp/fb/firebreak.db',
    }),
    listIncidents: async () => incidents,
    getIncident: async (id) => incidents.find((i) => i.id === id)!,
    timeline: async (id, after) => entries.filter((e) => e.incidentId === id && e.id > (after?.id ?? 0)),
    timelineSince: async (id, since) => entries.filter((e) => e.incidentId === id && e.id > since),
    openIncident: async (n) => {
      const i = incident(incidents.length + 1, { title: n.title, severity: n.severity });
      incidents.push(i);
      return i;
    },
    changeStatus: async (id, to) => ({ ...incidents.find((i) => i.id === id)!, status: to }),
    addNote: async (id, text) => {
      notes.push(text);
      const e: TimelineEntry = { id: entries.length + 1, incidentId: id, atMs: Date.now(), kind: 'note', author: 'ana', body: text, amends: null, eventType: null, refused: null, notApplied: false };
      entries.push(e);
      return e;
    },
    subscribe: async () => {},
    changeSeverity: async (id, to) => ({ ...incidents.find((i) => i.id === id)!, severity: to }),
    setCommander: async (id, commander) => ({ ...incidents.find((i) => i.id === id)!, commander }),
    setAuthor: async (name) => name,
    teamSettings: async () => ({ url: null, team: null, caFile: null, enabled: false, status: teamStatus({ state: 'off' }) }),
    linkTeam: async () => {
      throw new HostError('refused', 'no team server in this fake');
    },
    setTeamSync: async () => {
      throw new HostError('refused', 'no team server in this fake');
    },
    teamViewing: async () => {},
    teamActivity: async () => ({ actions: [], runs: [] }),
    redoRefused: async () => {
      throw new HostError('refused', 'no team server in this fake');
    },
    ...overrides,
  };
}

describe('console frame', () => {
  it('explains what to do when there are no incidents', async () => {
    render(App, { host: fakeHost() });
    const empty = await screen.findByTestId('incidents-empty');
    expect(empty.textContent).toContain('No incidents');
    expect(empty.textContent).toContain('cluster');
    expect(screen.getByTestId('no-clusters').textContent).toContain('No cluster connected');
  });

  it('says it is reading the incidents, not that there are none, until the first list arrives', async () => {
    let answer: (list: Incident[]) => void = () => {};
    const pending = new Promise<Incident[]>((done) => (answer = done));
    render(App, { host: fakeHost([], { listIncidents: () => pending }) });
    expect((await screen.findByTestId('incidents-loading')).textContent).toContain('Reading');
    expect(screen.queryByTestId('incidents-empty')).toBeNull();
    answer([]);
    expect((await screen.findByTestId('incidents-empty')).textContent).toContain('No incidents');
    expect(screen.queryByTestId('incidents-loading')).toBeNull();
  });

  it('shows a database it cannot open instead of the console', async () => {
    const host = fakeHost([], {
      appInfo: async () => ({ ...info, storeError: { code: 'store_unavailable', message: 'the database was written by a newer Firebreak' } }),
    });
    render(App, { host });
    const err = await screen.findByTestId('store-error');
    expect(err.textContent).toContain('newer Firebreak');
    expect(screen.queryByTestId('incidents-empty')).toBeNull();
  });

  it('marks incidents recorded from the simulator as demo data', async () => {
    render(App, { host: fakeHost([incident(1, { demo: true, title: 'simulated' }), incident(2, { title: 'real' })]) });
    const rows = await screen.findAllByTestId('incident-row');
    const simulated = rows.find((r) => r.textContent?.includes('simulated'))!;
    const real = rows.find((r) => r.textContent?.includes('real'))!;
    expect(within(simulated).getByTestId('demo-badge').textContent).toBe('demo');
    expect(within(real).queryByTestId('demo-badge')).toBeNull();
  });

  it('lists open incidents before resolved ones', async () => {
    render(App, { host: fakeHost([incident(1, { status: 'resolved', title: 'old' }), incident(2, { title: 'burning' })]) });
    const rows = await screen.findAllByTestId('incident-row');
    // Resolved incidents are collapsed below the open ones.
    expect(rows).toHaveLength(1);
    expect(rows[0].textContent).toContain('burning');
  });

  it('renders recorded text as text, never as markup', async () => {
    const hostile = '<img src=x onerror="window.__pwned=1"><b>bold</b>';
    render(App, { host: fakeHost([incident(1, { title: hostile })]) });
    const row = await screen.findByTestId('incident-row');
    expect(row.textContent).toContain(hostile);
    expect(row.querySelector('img')).toBeNull();
    expect((window as unknown as { __pwned?: number }).__pwned).toBeUndefined();
  });

  it('adds a note with Ctrl+Enter and shows it on the timeline', async () => {
    const host = fakeHost([incident(1)]);
    render(App, { host });
    await fireEvent.click(await screen.findByTestId('incident-row'));
    const box = await screen.findByLabelText('Note');
    await fireEvent.input(box, { target: { value: 'paged the model owner' } });
    await fireEvent.keyDown(box, { key: 'Enter', ctrlKey: true });
    await waitFor(() => expect(host.notes).toEqual(['paged the model owner']));
    expect((await screen.findByTestId('timeline')).textContent).toContain('paged the model owner');
  });

  it('shows the message of a refused change', async () => {
    const host = fakeHost([incident(1)], {
      changeStatus: async () => {
        throw new HostError('invalid', 'incident 1 is resolved: it cannot move to acknowledged');
      },
    });
    render(App, { host });
    await fireEvent.click(await screen.findByTestId('incident-row'));
    await fireEvent.click(await screen.findByTestId('advance-status'));
    expect((await screen.findByRole('alert')).textContent).toContain('cannot move to acknowledged');
  });
});

describe('toHostError', () => {
  it('keeps the code and message of an IPC error', () => {
    const e = toHostError({ code: 'conflict', message: 'a cluster named prod exists' });
    expect(e.code).toBe('conflict');
    expect(e.message).toBe('a cluster named prod exists');
  });
  it('turns anything else into a readable unreachable error', () => {
    expect(toHostError('boom').message).toContain('did not answer');
  });
});

describe('list refresh', () => {
  it('never lets a list fetched before a change hide that change', async () => {
    let release: (v: Incident[]) => void = () => {};
    const slowList = new Promise<Incident[]>((r) => (release = r));
    let calls = 0;
    const host = fakeHost([], {
      // The first list request is answered late, with the state from before the incident existed.
      listIncidents: async () => (calls++ === 0 ? slowList : [incident(1, { title: 'fresh' })]),
    });
    render(App, { host });
    await screen.findByText('ana'); // app info loaded: the console accepts shortcuts
    window.dispatchEvent(new KeyboardEvent('keydown', { key: 'n' }));
    const title = await screen.findByLabelText(/Title/);
    await fireEvent.input(title, { target: { value: 'fresh' } });
    await fireEvent.submit(title.closest('form')!);
    await screen.findByTestId('incident-row');
    release([]);
    await waitFor(() => expect(calls).toBe(2));
    expect((await screen.findByTestId('incident-row')).textContent).toContain('fresh');
  });
});

describe('live updates', () => {
  it('shows each cluster stream state and refreshes the list when an incident opens', async () => {
    let push: (u: import('./bindings/ConsoleUpdate').ConsoleUpdate) => void = () => {};
    let listed: Incident[] = [];
    const host = fakeHost([], {
      listIncidents: async () => listed,
      subscribe: async (on) => {
        push = on;
      },
    });
    render(App, { host });
    await screen.findByText('ana');
    listed = [incident(7, { title: 'llm-assistant error rate above 5%' })];
    push({
      clusters: [{ clusterId: 1, name: 'demo', sinceMs: Date.now(), stream: { state: 'catching_up', behind: 1240 } }],
      opened: [listed[0]],
      updated: [7],
      events: 300,
      quarantined: 0,
      headSeq: 300,
      recordingPaused: null,
      team: null,
    });
    expect((await screen.findByTestId('cluster-status')).textContent).toContain('catching up, 1,240 behind');
    expect((await screen.findByTestId('incident-row')).textContent).toContain('llm-assistant error rate above 5%');
  });

  it('says when recording is paused and why, and clears it when it resumes', async () => {
    let push: (u: ConsoleUpdate) => void = () => {};
    const host = fakeHost([], {
      subscribe: async (on) => {
        push = on;
      },
    });
    render(App, { host });
    await screen.findByText('ana');
    const update = { clusters: [], opened: [], updated: [], events: 0, quarantined: 0, headSeq: 0, team: null };
    push({ ...update, recordingPaused: 'database error: database or disk is full' });
    // The engineer must see that nothing new is being written, and why.
    expect((await screen.findByTestId('recording-paused')).textContent).toContain('disk is full');
    push({ ...update, recordingPaused: null });
    await waitFor(() => expect(screen.queryByTestId('recording-paused')).toBeNull());
  });
});

describe('team', () => {
  const update = { clusters: [], opened: [], updated: [], events: 0, quarantined: 0, headSeq: 0, recordingPaused: null };

  it('shows where sync stands, who is online, and offline with since when and why', async () => {
    let push: (u: ConsoleUpdate) => void = () => {};
    render(App, { host: fakeHost([], { subscribe: async (on) => void (push = on) }) });
    await screen.findByText('ana');
    expect(screen.queryByTestId('team-status')).toBeNull();
    push({
      ...update,
      team: teamStatus({
        state: 'syncing',
        pending: 3,
        people: [
          { name: 'ana', incident: null, thisConsole: true },
          { name: 'ben', incident: null, thisConsole: false },
        ],
      }),
    });
    const bar = await screen.findByTestId('team-status');
    await waitFor(() => expect(bar.textContent).toContain('serving: syncing 3'));
    expect(screen.getByTestId('team-online').textContent).toContain('1 online');
    expect(bar.getAttribute('title')).toContain('Online: ben');
    const since = Date.now() - 125_000;
    push({ ...update, team: teamStatus({ state: 'offline', sinceMs: since, pending: 2, reason: 'connection refused' }) });
    await waitFor(() => expect(screen.getByTestId('team-status').textContent).toMatch(/offline since \d\d:\d\d \(2 min\), 2 queued/));
    expect(screen.getByTestId('team-status').getAttribute('title')).toContain('Why: connection refused');
  });

  it('names who else looks at the incident, tells the view which one this console shows, and redoes a refused change', async () => {
    let push: (u: ConsoleUpdate) => void = () => {};
    const viewing: (number | null)[] = [];
    const redone: number[] = [];
    const shown = incident(1, { publicId: 'p-1', commander: 'ben' });
    const refused: TimelineEntry = {
      id: 9, incidentId: 1, atMs: Date.now(), kind: 'note', author: 'team sync',
      body: 'ben took command 20 s ago; your change (commander → ana) was not applied: redo it on the current state if it still holds',
      amends: null, eventType: null, refused: { field: 'commander', wanted: 'ana', current: 'ben', by: 'ben' }, notApplied: false,
    };
    const mine: TimelineEntry = {
      id: 8, incidentId: 1, atMs: Date.now() - 1_000, kind: 'commander_changed', author: 'ana',
      body: 'ana took command (was nobody)', amends: null, eventType: null, refused: null, notApplied: true,
    };
    const host = fakeHost([shown], {
      subscribe: async (on) => void (push = on),
      timeline: async () => [mine, refused],
      teamViewing: async (id) => void viewing.push(id),
      redoRefused: async (entry) => {
        redone.push(entry);
        return { ...shown, commander: 'ana' };
      },
    });
    render(App, { host });
    await fireEvent.click(await screen.findByTestId('incident-row'));
    push({
      ...update,
      team: teamStatus({
        people: [
          { name: 'ben', incident: 'p-1', thisConsole: false },
          { name: 'cai', incident: 'p-2', thisConsole: false },
          { name: 'ana', incident: 'p-1', thisConsole: true },
        ],
      }),
    });
    expect((await screen.findByTestId('lookers')).textContent).toBe('looking now: ben');
    await waitFor(() => expect(viewing).toContain(1));
    // Her own change that the team refused is marked as not applied.
    expect((await screen.findByTestId('not-applied')).closest('li')?.textContent).toContain('ana took command');
    const redo = await screen.findByTestId('redo-refused');
    expect(redo.textContent).toContain('commander → ana');
    await fireEvent.click(redo);
    await waitFor(() => expect(redone).toEqual([9]));
    await waitFor(() => expect(screen.getByTestId('commander').textContent).toContain('ana'));
  });

  it('shows what teammates\' consoles do on the incident, their text as text', async () => {
    const hostile = '<img src=x onerror="window.__pwned=1">';
    const host = fakeHost([incident(1, { service: 'llm-assistant' })], {
      teamActivity: async () => ({
        actions: [{
          publicId: 'a-1', kind: 'rollback', service: 'llm-assistant', target: hostile, fromValue: '42', toValue: '41',
          state: 'succeeded', proposedBy: 'ben', confirmedBy: 'ben', reason: 'errors', error: null,
          verification: 'recovered', updatedMs: Date.now() - 5 * 60_000 - 10_000, byName: 'ben',
        }],
        runs: [{ runbookTitle: 'Bad model version', currentStep: 'verify', state: 'running', startedBy: 'cai', startedMs: Date.now(), stepsDone: 2, byName: 'cai' }],
      }),
    });
    render(App, { host });
    await fireEvent.click(await screen.findByTestId('incident-row'));
    const action = await screen.findByTestId('team-action');
    expect(action.textContent).toContain(`rollback ${hostile}: 42 → 41`);
    expect(action.textContent).toContain('succeeded, recovered');
    expect(action.textContent).toContain("ben on ben's console, 5 min ago");
    expect(action.querySelector('img')).toBeNull();
    expect((await screen.findByTestId('team-run')).textContent).toContain('running at verify, 2 steps done');
  });

  it('links to a team from Settings and shows the server\'s refusal as it is', async () => {
    const sent: unknown[] = [];
    const host = fakeHost([], {
      linkTeam: async (link) => {
        sent.push(link);
        throw new HostError('refused', 'this token is unknown or was revoked');
      },
    });
    render(App, { host });
    await fireEvent.click(await screen.findByTestId('tab-settings'));
    await fireEvent.input(await screen.findByTestId('team-url'), { target: { value: 'https://team.example:7600 ' } });
    await fireEvent.input(screen.getByTestId('team-name'), { target: { value: 'serving' } });
    await fireEvent.input(screen.getByTestId('team-token'), { target: { value: 'fbt_x' } });
    await fireEvent.submit(screen.getByTestId('team-settings'));
    expect((await screen.findByTestId('team-error')).textContent).toBe('this token is unknown or was revoked');
    expect(sent).toEqual([{ url: 'https://team.example:7600', team: 'serving', token: 'fbt_x', caFile: null }]);
  });
});

describe('command and severity', () => {
  it('takes command as the local author and shows it', async () => {
    const calls: (string | null)[] = [];
    const host = fakeHost([incident(1)], {
      setCommander: async (id, commander) => {
        calls.push(commander);
        return { ...incident(id), commander };
      },
    });
    render(App, { host });
    await fireEvent.click(await screen.findByTestId('incident-row'));
    await fireEvent.click(await screen.findByTestId('take-command'));
    await waitFor(() => expect(screen.getByTestId('commander').textContent).toContain('ana'));
    // The page asks to set the commander to this user's own name, nothing else.
    expect(calls).toEqual(['ana']);
    expect(screen.queryByTestId('take-command')).toBeNull();
  });

  it('changes severity from the header', async () => {
    const host = fakeHost([incident(1, { severity: 'minor' })]);
    render(App, { host });
    await fireEvent.click(await screen.findByTestId('incident-row'));
    const select = (await screen.findByTestId('severity')) as HTMLSelectElement;
    await fireEvent.change(select, { target: { value: 'critical' } });
    await waitFor(() => expect((screen.getByTestId('incident-row').textContent ?? '').toLowerCase()).toContain('critical'));
  });
});

describe('event feed', () => {
  it('renders a screenful of a long list, searches in the store, and shows raw events as text', async () => {
    const all = Array.from({ length: 5_000 }, (_, i) => feedEvent(5_000 - i));
    const hostile = feedEvent(6_000, { summary: '<img src=x onerror="window.pwned=1">' });
    const asked: { text?: string; after?: number; before?: number }[] = [];
    let push: (u: ConsoleUpdate) => void = () => {};
    const host = fakeHost([], {
      subscribe: async (on) => {
        push = on;
      },
      eventFeed: async (filter, page) => {
        asked.push({ text: filter.text, after: page.after, before: page.before });
        if (filter.text) return { events: [hostile], unsearchable: 12 };
        if (page.after) return { events: [feedEvent(5_001)], unsearchable: 0 };
        return { events: all.slice(0, page.limit), unsearchable: 0 };
      },
      rawEvent: async (seq) => ({ seq, cluster: 'demo', receivedMs: Date.now(), text: '{"data": "<script>window.pwned=1</script>"}' }),
    });
    render(App, { host });
    await fireEvent.click(await screen.findByTestId('tab-events'));
    await waitFor(() => expect(screen.getAllByTestId('feed-row').length).toBeGreaterThan(0));
    // 200 rows loaded, a screenful (plus overscan) in the DOM.
    expect(screen.getAllByTestId('feed-row').length).toBeLessThan(60);

    // Live: the store moved on, the feed asks for what is after its newest row.
    push({ clusters: [], opened: [], updated: [], events: 1, quarantined: 0, headSeq: 5_001, recordingPaused: null, team: null });
    await waitFor(() => expect(asked.some((a) => a.after === 5_000)).toBe(true));
    await waitFor(() => expect(screen.getAllByTestId('feed-row')[0].dataset.seq).toBe('5001'));

    // Paused: updates are counted, not fetched.
    await fireEvent.click(screen.getByTestId('feed-pause'));
    const before = asked.length;
    push({ clusters: [], opened: [], updated: [], events: 40, quarantined: 0, headSeq: 5_041, recordingPaused: null, team: null });
    await waitFor(() => expect(screen.getByTestId('feed-state').textContent).toContain('40 new'));
    expect(asked.length).toBe(before);
    await fireEvent.click(screen.getByTestId('feed-pause'));

    // Search goes to the store; hostile text stays text.
    await fireEvent.input(screen.getByTestId('feed-search'), { target: { value: 'onerror' } });
    await waitFor(() => expect(screen.getAllByTestId('feed-row')[0].dataset.seq).toBe('6000'));
    expect(asked.some((a) => a.text === 'onerror')).toBe(true);
    expect(screen.getByTestId('feed-state').textContent).toContain('12 newest not yet searchable');
    const row = screen.getAllByTestId('feed-row')[0];
    expect(row.textContent).toContain('<img src=x onerror=');
    expect(row.querySelector('img')).toBeNull();

    await fireEvent.click(row);
    const raw = await screen.findByTestId('raw-event');
    expect(raw.textContent).toContain('<script>window.pwned=1</script>');
    expect(raw.querySelector('script')).toBeNull();
    expect((window as unknown as { pwned?: number }).pwned).toBeUndefined();
  });
});

describe('clusters', () => {
  it('adds a cluster with its token and never shows the token again', async () => {
    const host = fakeHost();
    const added: [string, string | null][] = [];
    const real = host.addCluster;
    host.addCluster = async (c, token) => {
      added.push([c.name, token]);
      return real(c, token);
    };
    render(App, { host });
    await fireEvent.click(await screen.findByTestId('tab-settings'));
    expect((await screen.findByTestId('clusters-empty')).textContent).toContain('No cluster yet');
    await fireEvent.click(screen.getByTestId('add-cluster'));
    await fireEvent.input(screen.getByTestId('cluster-name'), { target: { value: 'prod-east' } });
    await fireEvent.input(screen.getByTestId('cluster-events-url'), { target: { value: 'wss://east.example/v1/events' } });
    await fireEvent.input(screen.getByTestId('cluster-actions-url'), { target: { value: 'https://east.example/v1' } });
    await fireEvent.input(screen.getByTestId('cluster-token'), { target: { value: 's3cret-token' } });
    await fireEvent.click(screen.getByTestId('cluster-save'));
    const row = await screen.findByTestId('cluster-row');
    expect(added).toEqual([['prod-east', 's3cret-token']]);
    expect(row.textContent).toContain('saved in keychain');
    expect(document.body.innerHTML).not.toContain('s3cret-token');
  });

  it('shows why a cluster could not be saved', async () => {
    const host = fakeHost([], {
      addCluster: async () => {
        throw new HostError('keychain', 'the OS keychain is unavailable (no Secret Service)');
      },
    });
    render(App, { host });
    await fireEvent.click(await screen.findByTestId('tab-settings'));
    await fireEvent.click(await screen.findByTestId('add-cluster'));
    await fireEvent.input(screen.getByTestId('cluster-name'), { target: { value: 'x' } });
    await fireEvent.click(screen.getByTestId('cluster-save'));
    expect((await screen.findByTestId('cluster-error')).textContent).toContain('keychain is unavailable');
    expect(screen.getByTestId('cluster-form')).toBeTruthy();
  });
});

describe('rollout guards', () => {
  const chat = (over: Partial<ServiceGuard> = {}): ServiceGuard => ({
    clusterId: 1, cluster: 'prod-east', service: 'chat', guard: null,
    suggested: { mode: 'pause_on_fail', runbook: 'A new model version makes a service fail (bad-model-version)' }, ...over,
  });

  it('sets a service to pause on fail with a reason, and shows who approved it and the runbook that recommends it', async () => {
    const set: [number, string, GuardMode, string][] = [];
    let guards = [chat()];
    const host = fakeHost([], {
      rolloutGuards: async () => guards,
      setRolloutGuard: async (clusterId, service, mode, reason) => {
        set.push([clusterId, service, mode, reason]);
        guards = [chat({ guard: { clusterId, cluster: 'prod-east', service, mode, approvedBy: 'ana', approvedAtMs: Date.now(), reason } })];
        return guards;
      },
    });
    render(App, { host });
    await fireEvent.click(await screen.findByTestId('tab-settings'));
    const row = await screen.findByTestId('guard-row');
    expect(row.textContent).toContain('chat');
    expect(screen.getByTestId('guard-watch').getAttribute('aria-checked')).toBe('true');
    expect(screen.getByTestId('guard-suggested').textContent).toContain('bad-model-version) recommends pause on fail');
    await fireEvent.click(screen.getByTestId('guard-pause_on_fail'));
    const save = screen.getByTestId('guard-save') as HTMLButtonElement;
    expect(save.disabled).toBe(true);
    expect(save.textContent).toContain('Approve');
    await fireEvent.input(screen.getByTestId('guard-reason'), { target: { value: 'canaries of this model fail fast' } });
    await fireEvent.click(save);
    await waitFor(() => expect(set).toEqual([[1, 'chat', 'pause_on_fail', 'canaries of this model fail fast']]));
    const approval = await screen.findByTestId('guard-approval');
    expect(approval.textContent).toContain('Pause on fail: approved by ana');
    expect(approval.textContent).toContain('canaries of this model fail fast');
    expect(screen.queryByTestId('guard-suggested')).toBeNull();
  });

  it('keeps the guard as it was when the dialog is declined, and says why', async () => {
    const host = fakeHost([], {
      rolloutGuards: async () => [chat({ suggested: null })],
      setRolloutGuard: async () => {
        throw new HostError('refused', 'not approved in the dialog: the guard was not changed');
      },
    });
    render(App, { host });
    await fireEvent.click(await screen.findByTestId('tab-settings'));
    await fireEvent.click(await screen.findByTestId('guard-pause_on_fail'));
    await fireEvent.input(screen.getByTestId('guard-reason'), { target: { value: 'x' } });
    await fireEvent.click(screen.getByTestId('guard-save'));
    expect((await screen.findByTestId('guard-error')).textContent).toContain('not approved in the dialog');
    expect(screen.queryByTestId('guard-approval')).toBeNull();
  });
});

describe('objectives', () => {
  it("sets a service's objectives in percent and shows its burn rates, a firing one marked", async () => {
    const sent: [number, string, Objective | null][] = [];
    let list: ServiceObjectives[] = [{ clusterId: 1, cluster: 'prod-east', service: 'chat', set: null, burns: [] }];
    const host = fakeHost([], {
      objectives: async () => list,
      setObjective: async (clusterId, service, objective) => {
        sent.push([clusterId, service, objective]);
        list = [{
          clusterId, cluster: 'prod-east', service,
          set: { clusterId, cluster: 'prod-east', service, objective: objective!, setBy: 'ana', setAtMs: Date.now() },
          burns: [
            { sli: 'availability', longS: 3600, shortS: 300, factor: 14.4, longBurn: 18.2, shortBurn: 31, firing: true },
            { sli: 'availability', longS: 21600, shortS: 1800, factor: 6, longBurn: 3.1, shortBurn: null, firing: false },
          ],
        }];
        return list;
      },
    });
    render(App, { host });
    await fireEvent.click(await screen.findByTestId('tab-settings'));
    const row = await screen.findByTestId('objective-row');
    expect(row.textContent).toContain('fixed rule');
    await fireEvent.click(screen.getByTestId('objective-edit'));
    await fireEvent.input(screen.getByTestId('objective-availability'), { target: { value: '99.9' } });
    await fireEvent.input(screen.getByTestId('objective-latency'), { target: { value: '2000' } });
    await fireEvent.click(screen.getByTestId('objective-save'));
    await waitFor(() => expect(sent).toHaveLength(1));
    expect(sent[0][0]).toBe(1);
    expect(sent[0][2]!.availability).toBeCloseTo(0.999);
    expect(sent[0][2]!.latencyP99Ms).toBe(2000);
    expect(sent[0][2]!.latencyTarget).toBeCloseTo(0.99);
    expect((await screen.findByTestId('objective-set')).textContent).toContain('99.9 % of requests, p99 ≤ 2000 ms');
    const burns = screen.getAllByTestId('objective-burn');
    expect(burns[0].textContent).toContain('18.2× and 31.0× over 1 h and 5 min — burning');
    expect(burns[0].className).toContain('firing');
    expect(burns[1].textContent).toContain('no data');
  });
});

describe('diagnostics', () => {
  it('lists each distinct quarantined frame once with its reason, as text, and how often it came', async () => {
    const host = fakeHost([], {
      diagnostics: async () => ({
        events: 1200, quarantined: 1, quarantineArrivals: 37, unsearchable: 0, databaseBytes: 2_400_000, walBytes: 4096,
        databasePath: '/tmp/fb/firebreak.db',
        quarantine: [{ id: 1, cluster: 'demo', receivedMs: Date.now(), reason: 'not valid JSON: <b>expected value</b>', rawLen: 12, preview: '<b>bad</b>', times: 37, lastMs: Date.now() }],
        gaps: [{ id: 1, cluster: 'demo', fromSequence: 10, toSequence: 19, detectedMs: Date.now() }],
      }),
    });
    host.runbookLibrary = async () => ({
      runbooks: [],
      errors: [{ source: '/home/ana/runbooks/db.md', line: 7, message: 'unknown variant `chek`' }],
    });
    render(App, { host });
    await fireEvent.keyDown(window, { key: '4' });
    const table = await screen.findByTestId('quarantine');
    expect(screen.getByTestId('runbook-problems').textContent).toContain('/home/ana/runbooks/db.md:7 unknown variant `chek`');
    expect(table.textContent).toContain('not valid JSON: <b>expected value</b>');
    expect(table.querySelector('b')).toBeNull();
    // One distinct frame, replayed 37 times by reconnects: one row, and how often it came.
    expect(screen.getByTestId('diag-quarantined').textContent).toBe('1 (came 37 times)');
    expect(screen.getByTestId('quarantine-times').textContent).toBe('37×');
    expect(screen.getByTestId('gaps').textContent).toContain('10 – 19 (10 events)');
  });
});

/** A canary verdict of revision 42 against 41 at `wave` of 4. */
function verdict(wave: number, outcome: 'fail' | 'inconclusive' | 'pass', sentence: string): Verdict {
  return {
    outcome, sentence, atMs: Date.now(), canaryRevision: 42, stableRevision: 41, windows: 2 * wave, wave, waves: 4,
    alpha: 0.05 / 24, confidence: 1 - 0.1 / 24,
    errors: { canaryRequests: 4800, canaryErrors: 1490, stableRequests: 4800, stableErrors: 19, canaryRate: 0.31, stableRate: 0.004, difference: 0.306, ratio: 77.5, low: 0.29, high: 0.32, pValue: 1e-300 },
    latency: { canaryP99Ms: 2100, stableP99Ms: 600, ratio: 3.5, ratioLow: null, ratioHigh: null, pValue: 0.17, exact: true },
  };
}

function proposed(over: Partial<ActionRecord> = {}): ActionRecord {
  return {
    id: 'a1', incidentId: 1, clusterId: 1, kind: 'rollback', service: 'llm-assistant', target: 'llm-assistant-serving',
    from: '42', to: '41', state: 'proposed', proposedBy: 'ana', confirmedBy: null, reason: null, sendAfterMs: null,
    remoteId: null, error: null, succeededMs: null, verification: null, createdMs: Date.now(), updatedMs: Date.now(), stuck: null,
    preview: {
      summary: 'Roll llm-assistant-serving back from revision 42 to 41',
      fromLabel: 'revision 42 (assistant-13b-2026.11)', toLabel: 'revision 41 (assistant-13b-2026.10)',
      nodes: 16, requestsPerS: 820, trafficShare: 0.31,
      targetHealth: { healthy: true, text: 'revision 41 last served llm-assistant at 03:00:05 UTC: error rate 0.3 %, p99 1800 ms' },
      precondition: 'expected_revision = 42', warnings: ['a rollout to revision 42 is running at wave 2 of 4: the rollback stops it'],
      typeToConfirm: true, graceS: 5, evidence: [],
    },
    ...over,
  };
}

describe('actions', () => {
  it('previews a rollback, needs a reason and the typed name, and offers Cancel in the grace period', async () => {
    let actions: ActionRecord[] = [];
    const confirmed: [string, string, string | null][] = [];
    const cancelled: string[] = [];
    const host = fakeHost([incident(1, { clusterId: 1, service: 'llm-assistant' })], {
      incidentActions: async () => actions,
      proposeAction: async (id, kind) => {
        expect([id, kind]).toEqual([1, 'rollback']);
        actions = [proposed()];
        return actions[0];
      },
      confirmAction: async (id, reason, typed) => {
        confirmed.push([id, reason, typed]);
        actions = [proposed({ state: 'pending', reason, sendAfterMs: Date.now() + 5_000 })];
        return actions[0];
      },
      cancelAction: async (id) => {
        cancelled.push(id);
        actions = [proposed({ state: 'cancelled' })];
        return actions[0];
      },
    });
    render(App, { host });
    await fireEvent.click(await screen.findByTestId('incident-row'));
    await fireEvent.click(await screen.findByTestId('propose-rollback'));
    const preview = await screen.findByTestId('action-preview');
    for (const text of ['revision 42 (assistant-13b-2026.11) → revision 41', '16 nodes', '31 %', 'expected_revision = 42', 'HEALTHY', 'rollout to revision 42']) {
      expect(preview.textContent?.toUpperCase()).toContain(text.toUpperCase());
    }
    const go = screen.getByTestId('action-confirm') as HTMLButtonElement;
    expect(go.disabled).toBe(true);
    await fireEvent.input(screen.getByTestId('action-reason'), { target: { value: 'errors since 42' } });
    await fireEvent.input(screen.getByTestId('action-typed'), { target: { value: 'llm-assistant' } });
    expect(go.disabled).toBe(false);
    await fireEvent.click(go);
    await waitFor(() => expect(confirmed).toEqual([['a1', 'errors since 42', 'llm-assistant']]));
    const pending = await screen.findByTestId('action-pending');
    expect(pending.textContent).toMatch(/Sending in [45] s/);
    await fireEvent.click(screen.getByTestId('action-cancel'));
    await waitFor(() => expect(cancelled).toEqual(['a1']));
    expect((await screen.findByTestId('action-row')).textContent).toContain('cancelled');
  });

  it("shows a rollout guard's proposal with its evidence as text, and who confirmed a pause in its grace period", async () => {
    const evidence = [
      'Canary verdict at wave 1 of 8: Revision 42 fails 31 % of requests against 0.4 % on revision 41 over 6 windows, p < 0.001',
      'Errors: 31 % on revision 42 (<b>412</b> of 1330) against 0.4 % on revision 41',
    ];
    const pause = (over: Partial<ActionRecord>) =>
      proposed({
        kind: 'pause_rollout', proposedBy: 'rollout guard', to: 'paused', nodes: 0,
        preview: { ...proposed().preview, summary: 'Pause the rollout of llm-assistant-serving to revision 42 at wave 1 of 8', typeToConfirm: false, evidence },
        ...over,
      } as Partial<ActionRecord>);
    let actions: ActionRecord[] = [pause({})];
    const host = fakeHost([incident(1, { clusterId: 1, service: 'llm-assistant' })], {
      incidentActions: async () => actions,
    });
    render(App, { host });
    await fireEvent.click(await screen.findByTestId('incident-row'));
    const shown = await screen.findByTestId('action-evidence');
    expect(shown.textContent).toContain('Canary verdict at wave 1 of 8: Revision 42 fails');
    expect(shown.textContent).toContain('<b>412</b>');
    expect(shown.querySelector('b')).toBeNull();
    expect(screen.getByTestId('action-preview').textContent).toContain('Proposed by the service\'s rollout guard');
    actions = [pause({ state: 'pending', confirmedBy: 'rollout guard', reason: 'Revision 42 fails 31 %', sendAfterMs: Date.now() + 5_000 })];
    host.incidentActions = async () => actions;
    cleanup();
    render(App, { host });
    await fireEvent.click(await screen.findByTestId('incident-row'));
    expect((await screen.findByTestId('pending-guard')).textContent).toContain('Confirmed by the rollout guard (pause on fail): Revision 42 fails');
    expect(screen.getByTestId('action-cancel')).toBeTruthy();
  });

  function rolloutState(over: Partial<RolloutState['rollout'] & object> | null, healthy: boolean | null = false): RolloutState {
    return {
      deployment: 'llm-assistant-serving',
      object: null,
      currentRevision: 42,
      rollout: over === null ? null : { toRevision: 42, wave: 1, waves: 4, stalled: false, paused: false, nodesTotal: 16, ...over },
      healthy,
      revisions: [
        { revision: 40, modelVersion: 'assistant-13b-2026.09', createdMs: 1, liveFromMs: null, liveToMs: null, errorRate: null, p99Ms: null, current: false },
        { revision: 41, modelVersion: 'assistant-13b-2026.10', createdMs: 2, liveFromMs: Date.UTC(2026, 10, 30, 3, 0), liveToMs: Date.UTC(2026, 10, 30, 3, 40), errorRate: 0.003, p99Ms: 2310, current: false },
        { revision: 42, modelVersion: 'assistant-13b-2026.11', createdMs: 3, liveFromMs: null, liveToMs: null, errorRate: null, p99Ms: null, current: true },
      ],
    };
  }

  it("shows the rollout's canary verdict in Act and, when it fails, puts Pause first", async () => {
    let judged = verdict(1, 'inconclusive', 'No clear difference yet between revision 42 and revision 41 over 2 windows');
    const host = fakeHost([incident(1, { clusterId: 1, service: 'llm-assistant' })], {
      rolloutState: async () => rolloutState({}),
      rolloutVerdicts: async () => ({
        startedSeq: 90, deployment: 'llm-assistant-serving', fromRevision: 41, toRevision: 42, waves: 4, ended: null, noData: false,
        byWave: [judged], firstFail: judged.outcome === 'fail' ? judged : null,
      }),
    });
    const first = render(App, { host });
    await fireEvent.click(await screen.findByTestId('incident-row'));
    expect((await screen.findByTestId('act-verdict')).textContent).toContain('Not yet');
    expect(screen.getByTestId('propose-pause').className).toContain('secondary');
    first.unmount();
    judged = verdict(1, 'fail', 'Revision 42 fails 31 % of requests against 0.4 % on revision 41 over 2 windows, p < 0.001');
    render(App, { host });
    await fireEvent.click(await screen.findByTestId('incident-row'));
    const shown = await screen.findByTestId('act-verdict');
    expect(shown.textContent).toContain('Fails');
    expect(shown.textContent).toContain('Revision 42 fails 31 %');
    const pause = screen.getByTestId('propose-pause');
    expect(pause.className).toContain('danger');
    expect(pause.closest('.buttons')?.querySelector('button')).toBe(pause);
  });

  it('offers the rollout levers that apply to what the rollout is doing', async () => {
    let state = rolloutState({});
    const asked: [string, unknown][] = [];
    const host = fakeHost([incident(1, { clusterId: 1, service: 'llm-assistant' })], {
      rolloutState: async () => state,
      proposeAction: async (_id, kind, choice) => {
        asked.push([kind, choice]);
        throw new HostError('refused', 'just looking');
      },
    });
    const { unmount } = render(App, { host });
    await fireEvent.click(await screen.findByTestId('incident-row'));
    // Running: pause and abort; no resume or promote.
    expect((await screen.findByTestId('rollout-state')).textContent).toBe('running');
    expect(screen.getByTestId('rollout-waves').textContent).toContain('Wave 1 of 4');
    expect(screen.queryByTestId('propose-resume')).toBeNull();
    expect(screen.queryByTestId('propose-promote')).toBeNull();
    await fireEvent.click(screen.getByTestId('propose-pause'));
    await waitFor(() => expect(asked).toEqual([['pause_rollout', undefined]]));
    unmount();

    // Paused while the service is unhealthy: resume and abort, promote withheld with why.
    state = rolloutState({ paused: true }, false);
    const second = render(App, { host });
    await fireEvent.click(await screen.findByTestId('incident-row'));
    expect((await screen.findByTestId('rollout-state')).textContent).toBe('paused');
    expect(screen.queryByTestId('propose-pause')).toBeNull();
    expect(screen.getByTestId('propose-resume')).toBeTruthy();
    expect(screen.queryByTestId('propose-promote')).toBeNull();
    expect(screen.getByTestId('promote-withheld').textContent).toContain('healthy');
    second.unmount();

    // Paused and healthy: promote, the next wave or all of them.
    state = rolloutState({ paused: true }, true);
    const third = render(App, { host });
    await fireEvent.click(await screen.findByTestId('incident-row'));
    await fireEvent.click(await screen.findByTestId('propose-promote-all'));
    await waitFor(() => expect(asked.at(-1)).toEqual(['promote_rollout', { full: true }]));
    third.unmount();

    // Stalled: neither pause nor promote, only abort (and rollback).
    state = rolloutState({ stalled: true });
    render(App, { host });
    await fireEvent.click(await screen.findByTestId('incident-row'));
    expect((await screen.findByTestId('rollout-state')).textContent).toBe('stalled');
    expect(screen.queryByTestId('propose-pause')).toBeNull();
    expect(screen.getByTestId('propose-abort')).toBeTruthy();
  });

  it('picks a rollback revision from the history with how each one served', async () => {
    const asked: [string, unknown][] = [];
    const host = fakeHost([incident(1, { clusterId: 1, service: 'llm-assistant' })], {
      rolloutState: async () => rolloutState(null),
      proposeAction: async (_id, kind, choice) => {
        asked.push([kind, choice]);
        throw new HostError('refused', 'just looking');
      },
    });
    render(App, { host });
    await fireEvent.click(await screen.findByTestId('incident-row'));
    const picker = (await screen.findByTestId('revision-picker')) as HTMLSelectElement;
    expect(screen.queryByTestId('rollout-state')).toBeNull();
    // Newest first, the current revision left out, each with its record.
    const options = [...picker.options].map((o) => o.textContent ?? '');
    expect(options).toHaveLength(2);
    expect(options[0]).toContain('r41 · assistant-13b-2026.10');
    expect(options[0]).toContain('errors 0.3 %');
    expect(options[0]).toContain('p99 2,310 ms');
    expect(options[1]).toContain('r40');
    expect(options[1]).toContain('not seen serving');
    await fireEvent.change(picker, { target: { value: '40' } });
    expect(screen.getByTestId('revision-record').textContent).toContain('r40 (assistant-13b-2026.09)');
    await fireEvent.click(screen.getByTestId('propose-rollback-to'));
    await waitFor(() => expect(asked).toEqual([['rollback', { toRevision: 40 }]]));
    // The cluster's refusal is shown, not swallowed.
    expect((await screen.findByTestId('action-error')).textContent).toContain('just looking');
  });

  it('says when an action is stuck and why, on its row', async () => {
    const host = fakeHost([incident(1, { clusterId: 1, service: 'llm-assistant' })], {
      incidentActions: async () => [
        proposed({ state: 'sent', reason: 'errors since 42', stuck: 'stuck, retrying: database error: database is locked' }),
      ],
    });
    render(App, { host });
    await fireEvent.click(await screen.findByTestId('incident-row'));
    // An action that cannot move must not look merely quiet: the panel says why it waits.
    expect((await screen.findByTestId('action-stuck')).textContent).toContain('stuck, retrying: database error: database is locked');
  });

  it('read-only mode hides the actions and says so', async () => {
    const host = fakeHost([incident(1, { clusterId: 1, service: 'llm-assistant' })], {
      actionSettings: async () => ({
        readOnly: true, graceS: 5, verifyWindowS: 60, typeToConfirmNodes: 12, maxErrorRate: 0.02, maxLatencyFactor: 1.5,
      }),
    });
    render(App, { host });
    await fireEvent.click(await screen.findByTestId('incident-row'));
    expect((await screen.findByTestId('read-only-note')).textContent).toContain('Read-only');
    expect(screen.queryByTestId('propose-rollback')).toBeNull();
    expect(screen.getByTestId('read-only-badge')).toBeTruthy();
  });
});

describe('silences', () => {
  it('offers Silence 1 h on an alert that fired, and proposes it by entry', async () => {
    const at = Date.now();
    const recorded: TimelineEntry[] = [
      { id: 1, incidentId: 1, atMs: at - 1_000, kind: 'event', author: 'firebreak', body: 'HighErrorRate firing', amends: null, eventType: 'alert.firing', refused: null, notApplied: false },
      { id: 2, incidentId: 1, atMs: at, kind: 'event', author: 'firebreak', body: 'rollout stalled', amends: null, eventType: 'rollout.stalled', refused: null, notApplied: false },
    ];
    const asked: [number, number][] = [];
    let actions: ActionRecord[] = [];
    const host = fakeHost([incident(1, { clusterId: 1, service: 'llm-assistant' })], {
      timeline: async () => recorded,
      incidentActions: async () => actions,
      proposeSilence: async (id, entry) => {
        asked.push([id, entry]);
        actions = [proposed({
          kind: 'silence',
          preview: {
            ...proposed().preview,
            summary: 'Silence HighErrorRate on llm-assistant in us-east for 1 h',
            targetHealth: { healthy: null, text: 'HighErrorRate on llm-assistant is firing in us-east' },
            precondition: 'matchers: alertname="HighErrorRate", service="llm-assistant", region="us-east"',
            typeToConfirm: false,
          },
        })];
        return actions[0];
      },
    });
    render(App, { host });
    await fireEvent.click(await screen.findByTestId('incident-row'));
    const buttons = await screen.findAllByTestId('silence-alert');
    // Only the alert's entry offers it.
    expect(buttons).toHaveLength(1);
    await fireEvent.click(buttons[0]);
    await waitFor(() => expect(asked).toEqual([[1, 1]]));
    // The preview opens in Act with what a silence changes: notifications, not nodes.
    const preview = await screen.findByTestId('action-preview');
    expect(preview.textContent).toContain('Silence HighErrorRate on llm-assistant in us-east for 1 h');
    expect(screen.getByTestId('silence-scope').textContent).toContain('firing in us-east');
    expect(preview.textContent).not.toContain('Blast radius');
  });
});

describe('timeline', () => {
  it('shows a late entry in time order, even when it sorts before entries already shown', async () => {
    const at = Date.now();
    const entry = (id: number, atMs: number, body: string): TimelineEntry => ({
      id, incidentId: 1, atMs, kind: 'event', author: 'firebreak', body, amends: null, eventType: 'rollout.started', refused: null, notApplied: false,
    });
    const recorded = [entry(1, at - 60_000, 'rollout started'), entry(2, at, 'alert firing')];
    let push: (u: ConsoleUpdate) => void = () => {};
    const host = fakeHost([incident(1)], {
      timeline: async (_, after) => recorded.filter((e) => !after || e.atMs > after.atMs || (e.atMs === after.atMs && e.id > after.id)),
      timelineSince: async (_, since) => recorded.filter((e) => e.id > since),
      subscribe: async (on) => {
        push = on;
      },
    });
    render(App, { host });
    await fireEvent.click(await screen.findByTestId('incident-row'));
    await waitFor(() => expect(screen.getByTestId('timeline').textContent).toContain('alert firing'));
    // Recorded now, stamped between the two: a keyset "after the last" would never fetch it.
    recorded.push(entry(3, at - 30_000, 'rollback proposed'));
    push({ clusters: [], opened: [], updated: [1], events: 0, quarantined: 0, headSeq: 0, recordingPaused: null, team: null });
    await waitFor(() => expect(screen.getByTestId('timeline').textContent).toContain('rollback proposed'));
    const order = [...screen.getByTestId('timeline').querySelectorAll('.body')].map((b) => b.textContent);
    expect(order).toEqual(['rollout started', 'rollback proposed', 'alert firing']);
  });
});

describe('runbooks', () => {
  it('lists matching runbooks with why, and walks a check step', async () => {
    const steps = [
      { kind: 'check' as const, id: 'correlate', title: 'Did errors start with the rollout?', detail: 'Compare the times.', finding: true },
      { kind: 'action' as const, id: 'rollback', title: 'Roll back', action: 'rollback' as const, detail: '' },
    ];
    const run = (over: Partial<RunRecord> = {}): RunRecord => ({
      id: 1, incidentId: 1, runbookId: 'bad-model-version', runbookTitle: 'A new model version makes a service fail',
      runbookVersion: '3', steps, currentStep: 'correlate', waitingAction: null, state: 'running', startedBy: 'ana',
      startedMs: Date.now(), results: [], ...over,
    });
    let runs: RunRecord[] = [];
    const answers: [number, string, Answer][] = [];
    const host = fakeHost([incident(1, { clusterId: 1, service: 'llm-assistant' })], {
      matchingRunbooks: async () => [
        { runbookId: 'bad-model-version', title: 'A new model version makes a service fail', score: 7, reasons: ['the incident has rollout.started events', 'its severity is critical'] },
      ],
      incidentRuns: async () => runs,
      startRunbook: async () => {
        runs = [run()];
        return runs[0];
      },
      answerStep: async (id, step, answer) => {
        answers.push([id, step, answer]);
        runs = [run({ currentStep: 'rollback', results: [{ stepId: 'correlate', outcome: 'done', text: 'done. Finding: yes', value: null, series: null, author: 'ana', atMs: Date.now() }] })];
        return runs[0];
      },
    });
    render(App, { host });
    await fireEvent.click(await screen.findByTestId('incident-row'));
    const match = await screen.findByTestId('runbook-match');
    expect(match.textContent).toContain('Matched because the incident has rollout.started events; its severity is critical.');
    await fireEvent.click(screen.getByTestId('runbook-start'));
    await screen.findByTestId('runbook-run');
    const done = screen.getByTestId('runbook-done') as HTMLButtonElement;
    expect(done.disabled).toBe(true);
    await fireEvent.input(screen.getByTestId('runbook-finding'), { target: { value: 'yes, with wave 1' } });
    await fireEvent.click(done);
    await waitFor(() => expect(answers).toEqual([[1, 'correlate', { answer: 'done', finding: 'yes, with wave 1' }]]));
    expect((await screen.findByTestId('runbook-propose')).textContent).toContain('Preview the rollback');
  });
});

describe('reports', () => {
  it('exports through Rust and says where it was saved', async () => {
    const asked: [number, string][] = [];
    const host = fakeHost([incident(1)], {
      exportReport: async (id, format) => {
        asked.push([id, format]);
        return '/home/ana/incident-1.html';
      },
    });
    render(App, { host });
    await fireEvent.click(await screen.findByTestId('incident-row'));
    await fireEvent.click(await screen.findByTestId('export-report'));
    expect((await screen.findByTestId('exported')).textContent).toContain('/home/ana/incident-1.html');
    expect(asked).toEqual([[1, 'html']]);
  });

  it('shows how far a long export has got, then where it was saved', async () => {
    let finish: (path: string) => void = () => {};
    const host = fakeHost([incident(1)], {
      exportReport: (_id, _format, onProgress) => {
        onProgress?.({ done: 40_000, total: 100_000 });
        return new Promise((resolve) => (finish = resolve));
      },
    });
    render(App, { host });
    await fireEvent.click(await screen.findByTestId('incident-row'));
    await fireEvent.keyDown(window, { key: 'e' });
    const progress = await screen.findByTestId('export-progress');
    expect(progress.textContent).toContain('40,000 / 100,000 entries');
    expect((screen.getByTestId('export-report') as HTMLButtonElement).disabled).toBe(true);
    finish('/home/ana/incident-1.html');
    expect((await screen.findByTestId('exported')).textContent).toContain('/home/ana/incident-1.html');
    expect(screen.queryByTestId('export-progress')).toBeNull();
  });
});

describe('review', () => {
  const hostile = '<img src=x onerror="window.__pwned=1"><b>bold</b>';

  it('shows the figures with their definitions, the actions, and annotations as text', async () => {
    const host = fakeHost([incident(1, { status: 'mitigated' })], {
      incidentReview: async (id) =>
        reviewData(id, {
          review: {
            incidentId: id, rootCause: 'capacity', rootCauseBy: 'bo', factors: [hostile], followUps: [], momentEdits: [],
            annotations: [{ id: 1, entryId: 1, body: hostile, author: 'bo', createdMs: Date.now() }],
          },
        }),
    });
    await host.addNote(1, 'first note');
    render(App, { host });
    await fireEvent.click(await screen.findByTestId('incident-row'));
    await fireEvent.click(await screen.findByTestId('review-mode'));
    const figures = await screen.findByTestId('review-figures');
    expect(figures.textContent).toContain('10 min 00 s');
    expect(figures.textContent).toContain('from impact began to the incident being mitigated');
    expect((await screen.findByTestId('review-actions')).textContent).toContain('recovered');
    const note = await screen.findByTestId('annotation');
    expect(note.textContent).toContain(hostile);
    expect(screen.getByTestId('factors').textContent).toContain(hostile);
    expect(document.querySelector('[data-testid="review-view"] img, [data-testid="review-view"] b')).toBeNull();
    expect((screen.getByTestId('root-cause') as HTMLSelectElement).value).toBe('capacity');
    expect(screen.getByTestId('review-chart').querySelectorAll('line.mark').length).toBeGreaterThanOrEqual(6);
    expect(screen.queryByTestId('moments-backwards')).toBeNull();
  });

  it('adds a follow-up, then changes its owner and its status', async () => {
    const followUps: FollowUp[] = [];
    const updates: [number, FollowUpDraft][] = [];
    const host = fakeHost([incident(1)], {
      incidentReview: async (id) => {
        const data = reviewData(id);
        return { ...data, review: { ...data.review, followUps: followUps.map((f) => ({ ...f })) } };
      },
      addFollowUp: async (id, d) => {
        const f: FollowUp = { id: followUps.length + 1, incidentId: id, ...d, createdBy: 'ana', createdMs: 0, updatedBy: 'ana', updatedMs: 0 };
        followUps.push(f);
        return f;
      },
      updateFollowUp: async (fid, d) => {
        updates.push([fid, d]);
        Object.assign(followUps[fid - 1], d);
        return followUps[fid - 1];
      },
    });
    render(App, { host });
    await fireEvent.click(await screen.findByTestId('incident-row'));
    await fireEvent.keyDown(window, { key: 'v' });
    const panel = await screen.findByTestId('review-panel');
    await fireEvent.input(within(panel).getByLabelText('Follow-up'), { target: { value: 'Canary model weights' } });
    await fireEvent.input(within(panel).getByLabelText('Owner'), { target: { value: 'bo' } });
    await fireEvent.input(within(panel).getByLabelText('Due'), { target: { value: '2026-12-01' } });
    await fireEvent.click(within(panel).getByText('Add follow-up'));
    const list = await screen.findByTestId('follow-ups');
    await waitFor(() => expect(list.textContent).toContain('Canary model weights'));
    await fireEvent.click(within(list).getByText('Edit'));
    await fireEvent.input(within(list).getByLabelText('Owner'), { target: { value: 'cy' } });
    await fireEvent.click(within(list).getByText('Save'));
    await waitFor(() => expect(updates).toHaveLength(1));
    expect(updates[0]).toEqual([1, { title: 'Canary model weights', owner: 'cy', due: '2026-12-01', status: 'open' }]);
    await waitFor(() => expect(list.textContent).toContain('cy'));
    await fireEvent.change(within(list).getByLabelText('Status of Canary model weights'), { target: { value: 'done' } });
    await waitFor(() => expect(updates).toHaveLength(2));
    expect(updates[1][1].status).toBe('done');
  });

  it('warns when the moments in force run backwards', async () => {
    const data = reviewData(1);
    const later = new Date(Date.parse(data.report.key_moments[1].at!) + 30_000).toISOString();
    data.report.key_moments[0] = { ...data.report.key_moments[0], at: later, edit: { by: 'bo', reason: 'x', edited_at: later } };
    render(App, { host: fakeHost([incident(1)], { incidentReview: async () => data }) });
    await fireEvent.click(await screen.findByTestId('incident-row'));
    await fireEvent.keyDown(window, { key: 'v' });
    expect((await screen.findByTestId('moments-backwards')).textContent).toContain('impact began is after detected');
  });

  it('moves a key moment only with a reason, and annotates an entry', async () => {
    const moved: [number, string, number | null, string][] = [];
    const notes: [number, number, string][] = [];
    const host = fakeHost([incident(1)], {
      setKeyMoment: async (id, moment, at, reason) => {
        moved.push([id, moment, at, reason]);
      },
      annotateEntry: async (id, entry, text) => {
        notes.push([id, entry, text]);
      },
    });
    await host.addNote(1, 'paged the model owner');
    render(App, { host });
    await fireEvent.click(await screen.findByTestId('incident-row'));
    await fireEvent.keyDown(window, { key: 'v' });
    const impact = await screen.findByTestId('moment-impact_began');
    await fireEvent.click(within(impact).getByText('Edit'));
    const move = within(impact).getByText('Move') as HTMLButtonElement;
    expect(move.disabled).toBe(true);
    await fireEvent.input(within(impact).getByLabelText('Reason'), { target: { value: 'users saw errors first' } });
    expect(move.disabled).toBe(false);
    await fireEvent.click(move);
    await waitFor(() => expect(moved).toHaveLength(1));
    expect(moved[0][1]).toBe('impact_began');
    expect(moved[0][3]).toBe('users saw errors first');
    expect(moved[0][2]).toBe(Date.UTC(2026, 10, 28, 3, 0, 0));

    const list = await screen.findByTestId('review-timeline');
    await fireEvent.click(within(list).getByText('Annotate'));
    await fireEvent.input(within(list).getByLabelText('Annotation'), { target: { value: 'this is where it began' } });
    await fireEvent.click(within(list).getByRole('button', { name: 'Annotate' }));
    await waitFor(() => expect(notes).toEqual([[1, 1, 'this is where it began']]));
  });
});

const EVIL = '<script>window.__pwned=1</script>';

/** A summit as Rust sends it: two weeks, a hostile root cause, a comparison, takeaways. */
function summitReport(): SummitReport {
  const mt = (s: number | null, n: number) => ({ mttd_s: 30, mtta_s: s, mttm_s: s === null ? null : s * 2, mttr_s: null, incidents: n });
  return {
    schema: 'firebreak.summit-report.v1',
    selection: 'incidents opened from 2026-11-16 to 2026-11-29',
    from: '2026-11-16T00:00:00Z',
    to: '2026-11-30T00:00:00Z',
    incidents: [
      { id: 1, title: 'Incident 1', severity: 'critical', service: 'search-ranking', status: 'resolved', root_cause: EVIL, opened: '2026-11-17T10:00:00Z', demo: true },
      { id: 2, title: 'second', severity: 'major', service: 'search-ranking', status: 'resolved', root_cause: 'capacity', opened: '2026-11-25T10:00:00Z', demo: true },
    ],
    by_severity: [['critical', 1], ['major', 1]],
    by_service: [['search-ranking', 2]],
    by_root_cause: [[EVIL, 1], ['capacity', 1]],
    mean_times: mt(300, 2),
    trend: [['2026-W47', mt(420, 1)], ['2026-W48', mt(180, 1)]],
    remediations: [{ kind: 'failover', used: 2, succeeded: 2, verified_recovered: 1, mean_time_to_recovery_s: 70 }],
    top_alerts: [],
    noisiest_sources: [],
    contributing_factors: [],
    open_follow_ups: [],
    demo_incidents: 2,
    weeks: [
      { week: '2026-W47', starts: '2026-11-16', by_severity: [['critical', 1], ['major', 0], ['minor', 0], ['info', 0]], mean_times: mt(420, 1), ids: [1] },
      { week: '2026-W48', starts: '2026-11-23', by_severity: [['critical', 0], ['major', 1], ['minor', 0], ['info', 0]], mean_times: mt(180, 1), ids: [2] },
    ],
    root_causes: [
      { name: EVIL, incidents: 1, minutes: 40, ids: [1] },
      { name: 'capacity', incidents: 1, minutes: 20, ids: [2] },
    ],
    services: [{ name: 'search-ranking', incidents: 2, minutes: 60, ids: [1, 2] }],
    comparison: {
      label: 'the previous 2 weeks',
      from: '2026-11-02T00:00:00Z',
      to: '2026-11-16T00:00:00Z',
      incidents: 4,
      mean_times: mt(600, 4),
      by_severity: [['critical', 4]],
      by_service: [['search-ranking', 4]],
      remediations: [],
      root_causes: [],
      factors: [],
    },
    takeaways: [
      { chart: 'mean_times', text: 'MTTA fell from 7 min to 3 min over the period (first week with incidents to the last).' },
      { chart: 'per_week', text: '2 incidents in 2 weeks (1.0 a week), 1 of them critical; the busiest week was 2026-W47 with 1.' },
      { chart: 'root_causes', text: `${EVIL} caused the most incidents (1 of 2, 40 incident-minutes).` },
      { chart: 'services', text: 'search-ranking had the most incidents (2 of 2, 60 incident-minutes).' },
      { chart: 'remediations', text: 'Verified by the console: failover helped 1 of 2 times (recovery in 1 min on average).' },
    ],
    generated_at: '2026-11-30T09:00:00Z',
  };
}

describe('summit view', () => {
  it('draws the summit Rust built, with hostile labels as text, and opens the incidents behind a bar', async () => {
    const asked: Selection[] = [];
    const host = fakeHost([incident(1), incident(2, { title: 'second' })], {
      summitReport: async (selection) => {
        asked.push(selection);
        return summitReport();
      },
    });
    render(App, { host });
    await screen.findAllByTestId('incident-row');
    await fireEvent.keyDown(window, { key: '6' });
    const view = await screen.findByTestId('summit-view');
    await within(view).findByTestId('summit-summary');
    expect(asked[0].by).toBe('period');
    expect(within(view).getByTestId('summit-demo').textContent).toContain('2 of these 2 incidents are demo data');
    const takeaways = within(view).getAllByTestId('takeaway').map((t) => t.textContent);
    expect(takeaways).toContain('MTTA fell from 7 min to 3 min over the period (first week with incidents to the last).');
    // The hostile root cause is drawn as text: no element was made of it.
    expect(view.querySelector('script')).toBeNull();
    expect(view.textContent).toContain('<script>window.__pwned=1</script>');
    // Mean times beside the period before.
    expect(view.textContent).toContain('▼ 50 %');
    // Picking the hostile root cause's bar lists its incident; opening it shows it.
    const bar = within(view)
      .getAllByTestId('chart-row')
      .find((r) => r.getAttribute('aria-label')?.startsWith(EVIL))!;
    await fireEvent.click(bar);
    const listed = await within(view).findByTestId('summit-picked');
    expect(within(listed).getAllByTestId('summit-picked-incident').map((b) => b.textContent)).toEqual(['#1 Incident 1']);
    // A week's column lists that week's incidents instead.
    await fireEvent.click(within(view).getAllByTestId('chart-column')[1]);
    expect(within(await within(view).findByTestId('summit-picked')).getByText('#2 second')).toBeTruthy();
    await fireEvent.click(within(view).getByTestId('summit-picked-incident'));
    expect(await screen.findByTestId('tab-incidents')).toHaveProperty('ariaCurrent', 'page');
  });

  it('exports what it shows in the format asked, through Rust', async () => {
    const asked: [Selection, string][] = [];
    const host = fakeHost([incident(1)], {
      exportSummit: async (selection, format) => {
        asked.push([selection, format]);
        return '/home/ana/summit.md';
      },
    });
    render(App, { host });
    await screen.findAllByTestId('incident-row');
    await fireEvent.click(screen.getByTestId('tab-summit'));
    const view = await screen.findByTestId('summit-view');
    await fireEvent.input(within(view).getByLabelText('From'), { target: { value: '2026-11-02' } });
    await fireEvent.input(within(view).getByLabelText('To'), { target: { value: '2026-11-29' } });
    await fireEvent.click(within(view).getByTestId('summit-export-md'));
    expect((await within(view).findByTestId('summit-view-saved')).textContent).toContain('/home/ana/summit.md');
    expect(asked).toEqual([[{ by: 'period', from: '2026-11-02T00:00:00Z', to: '2026-11-30T00:00:00.000Z' }, 'md']]);
  });

  it('compares with a baseline the engineer chose', async () => {
    const baselines: (Baseline | null)[] = [];
    const host = fakeHost([incident(1)], {
      summitReport: async (_selection, baseline) => {
        baselines.push(baseline);
        return summitReport();
      },
    });
    render(App, { host });
    await screen.findAllByTestId('incident-row');
    await fireEvent.click(screen.getByTestId('tab-summit'));
    const view = await screen.findByTestId('summit-view');
    await within(view).findByTestId('summit-summary');
    await fireEvent.click(within(view).getByTestId('summit-own-baseline'));
    await fireEvent.input(within(view).getByLabelText('Baseline from'), { target: { value: '2026-09-01' } });
    await fireEvent.input(within(view).getByLabelText('Baseline to'), { target: { value: '2026-09-30' } });
    await fireEvent.click(within(view).getByTestId('summit-show'));
    await waitFor(() => expect(baselines.length).toBe(2));
    expect(baselines).toEqual([null, { from: '2026-09-01T00:00:00Z', to: '2026-10-01T00:00:00.000Z' }]);
  });
});

describe('summit', () => {
  it('exports the chosen incidents through Rust', async () => {
    const asked: [Selection, string][] = [];
    const host = fakeHost([incident(1), incident(2, { title: 'second' })], {
      exportSummit: async (selection, format) => {
        asked.push([selection, format]);
        return '/home/ana/summit.md';
      },
    });
    render(App, { host });
    await screen.findAllByTestId('incident-row');
    await fireEvent.keyDown(window, { key: 's' });
    const dialog = await screen.findByTestId('summit-dialog');
    await fireEvent.click(within(dialog).getByLabelText('Chosen incidents'));
    await fireEvent.click(within(dialog).getByText('#2 second'));
    await fireEvent.change(within(dialog).getByLabelText('Format'), { target: { value: 'md' } });
    await fireEvent.click(screen.getByTestId('summit-export'));
    expect((await screen.findByTestId('summit-saved')).textContent).toContain('/home/ana/summit.md');
    expect(asked).toEqual([[{ by: 'incidents', ids: [2] }, 'md']]);
  });
});

describe('fleet', () => {
  function cell(region: string, over: Partial<FleetCell> = {}): FleetCell {
    return {
      region,
      health: 'healthy',
      reason: 'error rate 0.2 %, p99 2300 ms, no alert firing',
      primary: false,
      revision: 41,
      errorRate: [0.002, 0.003, 0.002],
      p99Ms: [2300, 2310, 2290],
      queueDepth: [0, 0, 0],
      requestsPerS: 190,
      gpuUtilization: 0.6,
      lastMs: Date.now(),
      nodes: [],
      pool: null,
      poolNodesTotal: null,
      anomaly: null,
      alerts: [],
      ...over,
    };
  }

  const hostile = '<img src=x onerror="window.__pwned=1">';
  function board(): FleetBoard {
    return {
      clusters: [
        {
          id: 1,
          name: 'demo',
          regions: ['eu-west', 'us-east'],
          services: [
            {
              name: 'llm-assistant',
              revision: 42,
              modelVersion: 'assistant-13b-2026.11',
              team: 'assistant-platform',
              rollout: {
                deployment: 'llm-assistant-serving', fromRevision: 41, toRevision: 42, modelVersion: 'assistant-13b-2026.11',
                wave: 1, waves: 4, nodesUpdated: 4, nodesTotal: 16, nodesDraining: 4,
                stalled: 'image pull queue saturated', pausedBy: null, waveSinceMs: Date.now() - 90_000,
              },
              cells: [
                cell('eu-west'),
                cell('us-east', {
                  health: 'failing', primary: true, reason: 'critical alert firing: HighErrorRate; error rate 15.2 % over the 5 % SLO',
                  errorRate: [0.01, 0.08, 0.152], revision: 41,
                  nodes: [{ name: 'gpu-us-east-3', state: 'down', fault: 'gpu_error: XID 79' }], pool: 'gpu-a100', poolNodesTotal: 8,
                  alerts: ['HighErrorRate'],
                }),
              ],
              incident: { id: 7, title: 'llm-assistant errors', severity: 'critical', status: 'open', anomaly: false },
              budget: { availabilityLeft: 0.4, latencyLeft: -2.5, fromMs: Date.now() - 86_400_000, toMs: Date.now() },
              guard: 'pause_on_fail',
            },
            {
              name: hostile,
              revision: 18,
              modelVersion: null,
              team: hostile,
              rollout: null,
              cells: [cell('eu-west', { primary: true, anomaly: 'Anomaly: p99 4.1 s, usually 0.4 s' }), cell('us-east', { health: 'unknown', errorRate: [], p99Ms: [], queueDepth: [], requestsPerS: null, gpuUtilization: null, revision: null })],
              incident: null,
              budget: null,
              guard: null,
            },
          ],
        },
      ],
    };
  }

  it('is the first tab and shows each cell, the rollout and the nodes as text', async () => {
    const host = fakeHost([incident(7, { clusterId: 1, service: 'llm-assistant' })], { fleetBoard: async () => board() });
    render(App, { host });
    const tabs = await screen.findAllByRole('button', { name: /Fleet|Incidents|Events|Diagnostics|Settings/ });
    expect(tabs[0].textContent).toBe('Fleet');
    await fireEvent.keyDown(window, { key: '1' });
    const cells = await screen.findAllByTestId('fleet-cell');
    expect(cells.map((c) => c.dataset.health)).toEqual(['healthy', 'failing', 'healthy', 'unknown']);
    expect(cells[1].title).toContain('HighErrorRate');
    expect(cells[1].textContent).toContain('primary');
    // The error budget left, of the service with objectives only; an overspent one marked.
    const budgets = screen.getAllByTestId('fleet-budget');
    expect(budgets).toHaveLength(1);
    expect(budgets[0].textContent).toBe('budget availability 40 % left · latency overspent');
    expect(budgets[0].className).toContain('spent');
    // The armed guard beside the rollout.
    expect(screen.getByTestId('fleet-guard').textContent).toBe('guard: pause on fail');
    expect(cells[1].textContent).toContain('errors 15.2 %');
    expect(cells[1].querySelector('[title^="gpu-us-east-3: down (gpu_error"]')).not.toBeNull();
    expect(cells[1].querySelectorAll('.node').length).toBe(8);
    expect(within(cells[1]).getByTestId('fleet-nodes').textContent).toContain('gpu-a100: 1 down of 8');
    expect(cells[2].textContent).toContain('anomaly');
    const rollout = screen.getByTestId('fleet-rollout');
    expect(rollout.textContent).toContain('r41 → r42: 4 of 16 nodes, 4 drained');
    expect(rollout.textContent).toContain('STALLED');
    expect(rollout.title).toContain('image pull queue saturated');
    // Recorded names are text, never markup.
    expect(document.querySelector('img[src=x]')).toBeNull();
    expect(screen.getAllByTestId('fleet-row')[1].textContent).toContain(hostile);
  });

  it('folds healthy services into a count, puts trouble first and filters on /', async () => {
    const b = board();
    const calm = (name: string) => ({ ...b.clusters[0].services[1], name, cells: [cell('eu-west', { primary: true }), cell('us-east')] });
    b.clusters[0].services = [calm('aa-calm'), ...b.clusters[0].services, calm('zz-calm')];
    const host = fakeHost([incident(7, { clusterId: 1, service: 'llm-assistant' })], { fleetBoard: async () => b });
    render(App, { host });
    await fireEvent.keyDown(window, { key: '1' });
    await screen.findAllByTestId('fleet-row');
    const names = () => screen.getAllByTestId('fleet-row').map((r) => r.querySelector('.name')?.textContent);
    expect(names()).toEqual(['llm-assistant', hostile]);
    const fold = screen.getByTestId('fleet-fold');
    expect(fold.textContent).toContain('2 healthy services folded');
    await fireEvent.click(fold);
    expect(names()).toEqual(['llm-assistant', hostile, 'aa-calm', 'zz-calm']);
    await fireEvent.click(screen.getByTestId('fleet-fold'));
    expect(names()).toHaveLength(2);
    await fireEvent.keyDown(window, { key: '/' });
    const filter = screen.getByTestId('fleet-filter') as HTMLInputElement;
    expect(document.activeElement).toBe(filter);
    await fireEvent.input(filter, { target: { value: 'zz' } });
    expect(names()).toEqual(['zz-calm']);
    await fireEvent.input(filter, { target: { value: 'nothing-like-it' } });
    expect(screen.getByTestId('fleet-none').textContent).toContain('nothing-like-it');
    await fireEvent.keyDown(filter, { key: 'Escape' });
    expect(filter.value).toBe('');
    expect(names()).toHaveLength(2);
  });

  it('opens the service incident from a cell, or its events when it has none', async () => {
    const filters: unknown[] = [];
    const host = fakeHost([incident(7, { clusterId: 1, service: 'llm-assistant' })], {
      fleetBoard: async () => board(),
      eventFeed: async (filter) => {
        filters.push(filter);
        return { events: [], unsearchable: 0 };
      },
    });
    render(App, { host });
    await fireEvent.click(await screen.findByTestId('tab-fleet'));
    await fireEvent.click((await screen.findAllByTestId('fleet-cell'))[1].querySelector('button')!);
    expect(await screen.findByTestId('timeline')).toBeTruthy();
    await fireEvent.click(screen.getByTestId('tab-fleet'));
    await fireEvent.click((await screen.findAllByTestId('fleet-cell'))[2].querySelector('button')!);
    await waitFor(() => expect(filters.at(-1)).toMatchObject({ clusterId: 1, service: hostile }));
  });

  it('pauses a rollout from the board through its incident, whose Act column shows the proposal', async () => {
    const asked: [number, string][] = [];
    const running = board();
    running.clusters[0].services[0].rollout!.stalled = null;
    const host = fakeHost([incident(7, { clusterId: 1, service: 'llm-assistant' })], {
      fleetBoard: async () => running,
      proposeAction: async (id, kind) => {
        asked.push([id, kind]);
        throw new HostError('refused', 'no rollout is under way');
      },
    });
    render(App, { host });
    await fireEvent.click(await screen.findByTestId('tab-fleet'));
    await fireEvent.click(await screen.findByTestId('fleet-pause'));
    await waitFor(() => expect(asked).toEqual([[7, 'pause_rollout']]));
    // Refused: the board says why and stays.
    expect((await screen.findByRole('alert')).textContent).toContain('no rollout is under way');
    expect(screen.getByTestId('fleet')).toBeTruthy();
    // Running: no resume or promote.
    expect(screen.queryByTestId('fleet-resume')).toBeNull();
    expect(screen.queryByTestId('fleet-promote')).toBeNull();
  });

  it("shows a rollout's canary verdict wave by wave, its sentence as text and its evidence on hover", async () => {
    const running = board();
    running.clusters[0].services[0].rollout!.stalled = null;
    const asked: [number, string][] = [];
    const host = fakeHost([incident(7, { clusterId: 1, service: 'llm-assistant' })], {
      fleetBoard: async () => running,
      rolloutVerdicts: async (clusterId, service) => {
        asked.push([clusterId, service]);
        return {
          startedSeq: 90, deployment: 'llm-assistant-serving', fromRevision: 41, toRevision: 42, waves: 4, ended: null, noData: false,
          byWave: [verdict(1, 'fail', `Revision 42 fails 31 % of requests against 0.4 % on revision 41 over 2 windows, p < 0.001 <img src=x onerror=alert(1)>`)],
          firstFail: null,
        };
      },
    });
    render(App, { host });
    await fireEvent.click(await screen.findByTestId('tab-fleet'));
    const shown = await screen.findByTestId('fleet-verdict');
    // Asked only for the service whose rollout runs.
    expect(asked).toEqual([[1, 'llm-assistant']]);
    expect(shown.dataset.outcome).toBe('fail');
    expect(shown.textContent).toContain('fail');
    const sentence = screen.getByTestId('fleet-verdict-sentence');
    expect(sentence.textContent).toContain('Revision 42 fails 31 % of requests against 0.4 % on revision 41');
    expect(sentence.querySelector('img')).toBeNull();
    const title = shown.getAttribute('title') ?? '';
    expect(title).toContain('wave 1 of 4, 2 windows');
    expect(title).toContain('errors: r42 1,490 of 4,800 (31.0 %) against r41 19 of 4,800 (0.4 %)');
    expect(title).toContain('p99: 2,100 ms against 600 ms; 3.50× (too few windows to bound it)');
  });

  it('offers promote on the board only for a paused rollout on a healthy service', async () => {
    const paused = board();
    paused.clusters[0].services[0].rollout!.stalled = null;
    paused.clusters[0].services[0].rollout!.pausedBy = 'ana';
    const host = fakeHost([incident(7, { clusterId: 1, service: 'llm-assistant' })], { fleetBoard: async () => paused });
    const first = render(App, { host });
    await fireEvent.click(await screen.findByTestId('tab-fleet'));
    expect(await screen.findByTestId('fleet-resume')).toBeTruthy();
    expect(screen.queryByTestId('fleet-pause')).toBeNull();
    expect(screen.queryByTestId('fleet-promote')).toBeNull();
    expect(screen.getByTestId('fleet-rollout').textContent).toContain('paused by ana');
    first.unmount();
    paused.clusters[0].services[0].cells[1].health = 'healthy';
    render(App, { host });
    await fireEvent.click(await screen.findByTestId('tab-fleet'));
    expect(await screen.findByTestId('fleet-promote')).toBeTruthy();
  });

  it('reads the board at most once a second however fast updates come', async () => {
    let reads = 0;
    let push: ((u: ConsoleUpdate) => void) | null = null;
    const host = fakeHost([], {
      fleetBoard: async () => {
        reads += 1;
        return board();
      },
      subscribe: async (on) => {
        push = on;
      },
    });
    render(App, { host });
    await fireEvent.click(await screen.findByTestId('tab-fleet'));
    await screen.findAllByTestId('fleet-cell');
    await waitFor(() => expect(push).not.toBeNull());
    const first = reads;
    for (let i = 0; i < 50; i++) {
      push!({ clusters: [], headSeq: i + 1, events: 100, opened: [], updated: [], recordingPaused: null, team: null } as unknown as ConsoleUpdate);
    }
    await new Promise((r) => setTimeout(r, 1_300));
    expect(reads - first).toBeLessThanOrEqual(2);
    expect(reads - first).toBeGreaterThanOrEqual(1);
  });
});

describe('what changed', () => {
  it('lists the changes on the service, newest first, with who, as text, linked to the timeline', async () => {
    const hostile = '<img src=x onerror="window.__pwned=1">';
    const entries: TimelineEntry[] = [
      { id: 11, incidentId: 1, atMs: Date.now() - 60_000, kind: 'event', author: 'firebreak', body: 'Rollout started', amends: null, eventType: 'rollout.started', refused: null, notApplied: false },
    ];
    const host = fakeHost([incident(1, { clusterId: 1, service: 'llm-assistant' })], {
      timeline: async (id, after) => entries.filter((e) => e.incidentId === id && e.id > (after?.id ?? 0)),
      incidentChanges: async () => [
        { atMs: Date.now() - 10_000, kind: 'action', text: `pause rollout 42 → paused succeeded (${hostile})`, who: 'bo', entryId: null, before: false },
        { atMs: Date.now() - 60_000, kind: 'rollout', text: 'Rollout of llm-assistant r41 → r42 began (assistant-13b-2026.11, 4 waves)', who: null, entryId: 11, before: true },
      ],
    });
    const scrolled: Element[] = [];
    Element.prototype.scrollIntoView = function (this: Element) {
      scrolled.push(this);
    };
    render(App, { host });
    await fireEvent.click(await screen.findByTestId('incident-row'));
    const items = await screen.findAllByTestId('change');
    expect(items).toHaveLength(2);
    expect(items[0].textContent).toContain('by bo');
    expect(items[0].textContent).toContain(hostile);
    expect(document.querySelector('img[src=x]')).toBeNull();
    expect(items[1].textContent).toContain('before it opened');
    await fireEvent.click(within(items[1]).getByTestId('change-entry'));
    expect(scrolled.map((e) => e.getAttribute('data-entry-id'))).toEqual(['11']);
  });
});
