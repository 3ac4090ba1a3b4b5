// The Fleet board's order and filter, kept apart from the view so they are tested alone:
// troubled services first (failing, then degraded, then a rollout under way), the rest by
// name; a filter by service, team, cluster or model; healthy rows folded into a count.
import type { FleetCluster } from '../bindings/FleetCluster';
import type { FleetService } from '../bindings/FleetService';

/**
 * 0 failing, 1 degraded (or an anomaly or alert on a cell), 2 a rollout under way (or an
 * open incident), 3 the rest.
 */
export function trouble(s: FleetService): number {
  if (s.cells.some((c) => c.health === 'failing')) return 0;
  if (s.cells.some((c) => c.health === 'degraded' || c.anomaly || c.alerts.length > 0)) return 1;
  if (s.rollout || (s.incident && s.incident.status !== 'resolved')) return 2;
  return 3;
}

export function byTrouble(services: FleetService[]): FleetService[] {
  return [...services].sort((a, b) => trouble(a) - trouble(b) || a.name.localeCompare(b.name));
}

/** Every word of the filter must appear in the service's name, its team, its cluster's or its model. */
export function matches(filter: string, cluster: FleetCluster, s: FleetService): boolean {
  const words = filter.toLowerCase().split(/\s+/).filter(Boolean);
  if (words.length === 0) return true;
  const hay = `${s.name} ${s.team ?? ''} ${cluster.name} ${s.modelVersion ?? ''}`.toLowerCase();
  return words.every((w) => hay.includes(w));
}

export interface ClusterRows {
  cluster: FleetCluster;
  /** The rows shown, troubled first. */
  shown: FleetService[];
  /** Healthy rows folded away (none when unfolded or filtering). */
  folded: number;
  /** Rows the filter left out. */
  hidden: number;
}

/** What one cluster's board shows for `filter`, with healthy rows folded unless `unfolded`. */
export function rows(cluster: FleetCluster, filter: string, unfolded: boolean): ClusterRows {
  const matching = byTrouble(cluster.services.filter((s) => matches(filter, cluster, s)));
  const hidden = cluster.services.length - matching.length;
  // A filter names what the person wants to see: it is shown whatever its health.
  if (unfolded || filter.trim() !== '') return { cluster, shown: matching, folded: 0, hidden };
  const shown = matching.filter((s) => trouble(s) < 3);
  return { cluster, shown, folded: matching.length - shown.length, hidden };
}
