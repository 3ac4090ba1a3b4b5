import { cleanup, render, screen, fireEvent, waitFor } from '@testing-library/svelte';
import { afterEach, describe, expect, it } from 'vitest';
import App from './App.svelte';
import type { Host } from './host';
import { HostError, toHostError } from './host';
import type { AppInfo } from './bindings/AppInfo';
import type { Incident } from './bindings/Incident';
import type { TimelineEntry } from './bindings/TimelineEntry';

afterEach(cleanup);

const info: AppInfo = {
  version: '0.1.0',
  dataDir: '/tmp/fb',
  database: '/tmp/fb/firebreak.db',
  author: 'ana',
  storeError: null,
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
    ...over,
  };
}

/** A host that keeps incidents in memory, the way the store would. */
function fakeHost(start: Incident[] = [], overrides: Partial<Host> = {}): Host & { notes: string[] } {
  const incidents = [...start];
  const notes: string[] = [];
  const entries: TimelineEntry[] = [];
  return {
    notes,
    appInfo: async () => info,
    listClusters: async () => [],
    listIncidents: async () => incidents,
    getIncident: async (id) => incidents.find((i) => i.id === id)!,
    timeline: async (id, after) => entries.filter((e) => e.incidentId === id && e.id > (after?.id ?? 0)),
    openIncident: async (n) => {
      const i = incident(incidents.length + 1, { title: n.title, severity: n.severity });
      incidents.push(i);
      return i;
    },
    changeStatus: async (id, to) => ({ ...incidents.find((i) => i.id === id)!, status: to }),
    addNote: async (id, text) => {
      notes.push(text);
      const e: TimelineEntry = { id: entries.length + 1, incidentId: id, atMs: Date.now(), kind: 'note', author: 'ana', body: text, amends: null };
      entries.push(e);
      return e;
    },
    subscribe: async () => {},
    changeSeverity: async (id, to) => ({ ...incidents.find((i) => i.id === id)!, severity: to }),
    setCommander: async (id, commander) => ({ ...incidents.find((i) => i.id === id)!, commander }),
    setAuthor: async (name) => name,
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

  it('shows a database it cannot open instead of the console', async () => {
    const host = fakeHost([], {
      appInfo: async () => ({ ...info, storeError: { code: 'store_unavailable', message: 'the database was written by a newer Firebreak' } }),
    });
    render(App, { host });
    const err = await screen.findByTestId('store-error');
    expect(err.textContent).toContain('newer Firebreak');
    expect(screen.queryByTestId('incidents-empty')).toBeNull();
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
    });
    expect((await screen.findByTestId('cluster-status')).textContent).toContain('catching up, 1,240 behind');
    expect((await screen.findByTestId('incident-row')).textContent).toContain('llm-assistant error rate above 5%');
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
