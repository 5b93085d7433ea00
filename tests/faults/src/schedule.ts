import { Rng } from './prng.js';

/** Every kind of fault a schedule mixes. */
export const FaultKinds = ['kill', 'pause', 'restart', 'isolate', 'split', 'one-way', 'bridge', 'moving', 'disk-full'] as const;
/** A fault kind: see {@link FaultKinds} and the README. */
export type FaultKind = (typeof FaultKinds)[number];

/** Which node a fault hits, resolved when it is applied: the leader then, or a follower then (the lowest id). */
export type Role = 'leader' | 'follower';

/** One step of a schedule. */
export interface FaultStep {
  readonly kind: FaultKind;
  /** The node hit (kill, pause, restart, isolate, disk-full), or the sending side of a one-way cut. */
  readonly role?: Role;
  /** One-way: the receiving side (the other role). */
  readonly toRole?: Role;
  /** Split: the minority's node ids. Bridge: `[bridge, ...left]` (the rest is right). Moving: node ids isolated in turn. */
  readonly nodes?: readonly number[];
  /** How long the fault holds before it is healed (moving: per node), in ms. */
  readonly holdMs: number;
  /** Quiet time after the heal, in ms. */
  readonly gapMs: number;
}

/** Options of {@link makeSchedule}. */
export interface ScheduleOptions {
  /** Number of steps. */
  steps: number;
  /** Cluster size (3 or more). */
  nodes: number;
  /** The kinds to draw from. Default: all. */
  kinds?: readonly FaultKind[];
}

/**
 * The schedule of `seed`: the same seed and options always give the same
 * steps (kinds, roles, node ids, durations), on any machine. A schedule
 * draws kinds round-robin from a seeded shuffle, so that even a short one
 * covers many kinds.
 */
export function makeSchedule(seed: number, options: ScheduleOptions): FaultStep[] {
  const rng = new Rng(seed);
  const kinds = options.kinds ?? FaultKinds;
  const ids = Array.from({ length: options.nodes }, (_v, i) => i + 1);
  const role = (): Role => (rng.next() < 0.6 ? 'leader' : 'follower');
  const steps: FaultStep[] = [];
  let order: FaultKind[] = [];
  while (steps.length < options.steps) {
    if (order.length === 0) order = rng.shuffle(kinds);
    const kind = order.shift()!;
    const gapMs = rng.int(300, 1500);
    switch (kind) {
      case 'kill':
        steps.push({ kind, role: role(), holdMs: rng.int(300, 3000), gapMs });
        break;
      case 'pause':
        steps.push({ kind, role: role(), holdMs: rng.int(500, 4000), gapMs });
        break;
      case 'restart':
        steps.push({ kind, role: role(), holdMs: rng.int(0, 1000), gapMs });
        break;
      case 'isolate':
        steps.push({ kind, role: role(), holdMs: rng.int(2000, 5000), gapMs });
        break;
      case 'disk-full':
        steps.push({ kind, role: role(), holdMs: rng.int(1000, 3000), gapMs });
        break;
      case 'one-way': {
        const from = role();
        steps.push({ kind, role: from, toRole: from === 'leader' ? 'follower' : 'leader', holdMs: rng.int(2000, 5000), gapMs });
        break;
      }
      case 'split': {
        const minority = rng.shuffle(ids).slice(0, rng.int(1, Math.floor((options.nodes - 1) / 2)));
        steps.push({ kind, nodes: minority.sort((a, b) => a - b), holdMs: rng.int(2000, 5000), gapMs });
        break;
      }
      case 'bridge': {
        const [bridge, ...rest] = rng.shuffle(ids);
        const left = rest.slice(0, Math.max(1, Math.floor(rest.length / 2)));
        steps.push({ kind, nodes: [bridge!, ...left.sort((a, b) => a - b)], holdMs: rng.int(2000, 5000), gapMs });
        break;
      }
      case 'moving': {
        const count = rng.int(2, 4);
        const seq: number[] = [];
        while (seq.length < count) {
          const next = rng.pick(ids);
          if (next !== seq.at(-1)) seq.push(next);
        }
        steps.push({ kind, nodes: seq, holdMs: rng.int(1500, 3000), gapMs });
        break;
      }
    }
  }
  return steps;
}

/** One line per step, for logs and the README's replay instructions. */
export function describeStep(step: FaultStep): string {
  const parts: string[] = [step.kind];
  if (step.role) parts.push(step.toRole ? `${step.role}->${step.toRole}` : step.role);
  if (step.nodes) parts.push(`nodes=${step.nodes.join(',')}`);
  parts.push(`hold=${step.holdMs}ms`, `gap=${step.gapMs}ms`);
  return parts.join(' ');
}
