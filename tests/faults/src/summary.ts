import { FaultKinds, type FaultKind } from './schedule.js';
import type { RunReport } from './run-schedule.js';

/** The soak's totals over every run. */
export interface Summary {
  readonly runs: number;
  readonly seeds: readonly number[];
  readonly faults: Record<FaultKind, number>;
  readonly leaderKills: number;
  readonly partitions: number;
  readonly acked: number;
  readonly lost: number;
  readonly duplicated: number;
  readonly violations: number;
  readonly leaderChanges: number;
  /** Fault on the leader → another node leads. */
  readonly failoverMs: Quantiles;
  /** Fault on the leader → first acknowledged publish sent after it. */
  readonly recoveryMs: Quantiles;
  readonly longestUnavailableMs: number;
  readonly durationMs: number;
}

/** p50, p99 and max of some durations, in ms. */
export interface Quantiles {
  readonly count: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

function quantiles(values: readonly number[]): Quantiles {
  return { count: values.length, p50: quantile(values, 0.5), p99: quantile(values, 0.99), max: values.length ? Math.max(...values) : 0 };
}

/** The `q` quantile (0..1) of `values` (nearest rank); 0 for none. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** Adds up `reports`. */
export function summarize(reports: readonly RunReport[]): Summary {
  const faults = Object.fromEntries(FaultKinds.map((k) => [k, 0])) as Record<FaultKind, number>;
  for (const r of reports) for (const k of FaultKinds) faults[k] += r.faults[k];
  const sum = (f: (r: RunReport) => number): number => reports.reduce((s, r) => s + f(r), 0);
  return {
    runs: reports.length,
    seeds: reports.map((r) => r.seed),
    faults,
    leaderKills: sum((r) => r.leaderKills),
    partitions: sum((r) => r.partitions),
    acked: sum((r) => r.result.acked),
    lost: sum((r) => r.result.lost),
    duplicated: sum((r) => r.result.duplicated),
    violations: sum((r) => r.result.violations.length),
    leaderChanges: sum((r) => r.leaderChanges),
    failoverMs: quantiles(reports.flatMap((r) => r.failoversMs)),
    recoveryMs: quantiles(reports.flatMap((r) => r.recoveriesMs)),
    longestUnavailableMs: reports.reduce((m, r) => Math.max(m, r.longestUnavailableMs), 0),
    durationMs: sum((r) => r.durationMs),
  };
}

/** The summary as a two-column text table. */
export function formatSummary(s: Summary): string {
  const rows: [string, string][] = [
    ['runs (seeds)', `${s.runs} (${s.seeds.join(', ')})`],
    ['duration', `${(s.durationMs / 60_000).toFixed(1)} min`],
    ...FaultKinds.map((k): [string, string] => [`faults: ${k}`, String(s.faults[k])]),
    ['faults: total', String(FaultKinds.reduce((t, k) => t + s.faults[k], 0))],
    ['  of which leader SIGKILLs', String(s.leaderKills)],
    ['  of which partitions', String(s.partitions)],
    ['publishes acknowledged', String(s.acked)],
    ['messages lost (must be 0)', String(s.lost)],
    ['messages duplicated', String(s.duplicated)],
    ['violations', String(s.violations)],
    ['leader changes', String(s.leaderChanges)],
    ['failover p50 / p99 / max', `${s.failoverMs.p50} / ${s.failoverMs.p99} / ${s.failoverMs.max} ms (fault on the leader -> another node leads; ${s.failoverMs.count} failovers)`],
    ['first ack after a leader fault', `${s.recoveryMs.p50} / ${s.recoveryMs.p99} / ${s.recoveryMs.max} ms (p50 / p99 / max, as the clients saw it; ${s.recoveryMs.count} leader faults)`],
    ['longest unavailability', `${s.longestUnavailableMs} ms`],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  const line = `+${'-'.repeat(width + 2)}+${'-'.repeat(Math.max(...rows.map(([, v]) => v.length)) + 2)}+`;
  return [line, ...rows.map(([k, v]) => `| ${k.padEnd(width)} | ${v.padEnd(line.length - width - 7)} |`), line].join('\n');
}
