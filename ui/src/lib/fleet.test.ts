import { describe, expect, it } from 'vitest';
import type { FleetCell } from '../bindings/FleetCell';
import type { FleetCluster } from '../bindings/FleetCluster';
import type { FleetService } from '../bindings/FleetService';
import { byTrouble, matches, rows } from './fleet';

function cell(health: FleetCell['health']): FleetCell {
  return {
    region: 'us-east',
    health,
    reason: '',
    primary: true,
    revision: 1,
    errorRate: [],
    p99Ms: [],
    queueDepth: [],
    requestsPerS: null,
    gpuUtilization: null,
    lastMs: null,
    nodes: [],
    pool: null,
    poolNodesTotal: null,
    anomaly: null,
    alerts: [],
  };
}

function service(name: string, health: FleetCell['health'], extra: Partial<FleetService> = {}): FleetService {
  return { name, revision: 1, modelVersion: 'llama-70b', team: null, rollout: null, cells: [cell('healthy'), cell(health)], incident: null, budget: null, guard: null, ...extra };
}

const rollout = {
  deployment: 'd',
  fromRevision: 1,
  toRevision: 2,
  modelVersion: 'm',
  wave: 1,
  waves: 4,
  nodesUpdated: 1,
  nodesTotal: 4,
  nodesDraining: 0,
  stalled: null,
  pausedBy: null,
  waveSinceMs: 0,
};

const cluster: FleetCluster = {
  id: 1,
  name: 'prod-east',
  regions: ['us-east'],
  services: [
    service('alpha', 'healthy', { team: 'search' }),
    service('zeta', 'failing'),
    service('beta', 'healthy', { rollout }),
    service('gamma', 'degraded'),
    service('delta', 'unknown'),
    service('epsilon', 'failing'),
    service('eta', 'healthy', { cells: [{ ...cell('healthy'), anomaly: 'p99 4.1 s, usually 0.4 s' }] }),
  ],
};

describe('the fleet board', () => {
  it('puts failing, then degraded, then rolling services first, the rest by name', () => {
    expect(byTrouble(cluster.services).map((s) => s.name)).toEqual(['epsilon', 'zeta', 'eta', 'gamma', 'beta', 'alpha', 'delta']);
  });

  it('folds the healthy rows into a count, and unfolds them on asking', () => {
    const folded = rows(cluster, '', false);
    expect(folded.shown.map((s) => s.name)).toEqual(['epsilon', 'zeta', 'eta', 'gamma', 'beta']);
    expect(folded.folded).toBe(2);
    const all = rows(cluster, '', true);
    expect(all.shown).toHaveLength(7);
    expect(all.folded).toBe(0);
  });

  it('filters by service, cluster or model, every word, whatever the case, healthy rows included', () => {
    expect(matches('ALPHA', cluster, cluster.services[0])).toBe(true);
    expect(matches('prod-east alpha', cluster, cluster.services[0])).toBe(true);
    expect(matches('prod-west', cluster, cluster.services[0])).toBe(false);
    const r = rows(cluster, 'lpha', false);
    expect(r.shown.map((s) => s.name)).toEqual(['alpha']);
    expect(r.hidden).toBe(6);
    expect(r.folded).toBe(0);
    expect(rows(cluster, 'prod-east', false).shown).toHaveLength(7);
  });

  it("filters by the team the cluster labels a service with, and a service without one matches no team", () => {
    const r = rows(cluster, 'search', false);
    expect(r.shown.map((s) => s.name)).toEqual(['alpha']);
    expect(matches('search alpha', cluster, cluster.services[0])).toBe(true);
    expect(matches('search', cluster, cluster.services[1])).toBe(false);
  });
});
