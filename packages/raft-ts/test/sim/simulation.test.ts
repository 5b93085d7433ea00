import { describe, expect, it } from '@jest/globals';
import { parseSimArgs } from './cli.js';
import { runSimulation } from './simulation.js';

const SEEDS = 80;

describe('the deterministic simulation', () => {
  it(`finds no violation in ${SEEDS} seeds of crashes, disk faults, partitions, pauses, lossy links and membership churn`, async () => {
    const failures: string[] = [];
    const faults: Record<string, number> = {};
    let acked = 0;
    let installs = 0;
    let compactions = 0;
    let onDemand = 0;
    let leaves = 0;
    let transfers = 0;
    for (let seed = 1; seed <= SEEDS; seed++) {
      const result = await runSimulation(seed);
      acked += result.stats.acked;
      installs += result.stats.snapshotsInstalled;
      compactions += result.stats.compactions;
      onDemand += result.stats.snapshotsOnDemand;
      leaves += result.stats.leaves;
      transfers += result.stats.transfers;
      for (const [k, v] of Object.entries(result.stats.faults)) faults[k] = (faults[k] ?? 0) + v;
      if (result.violations.length > 0) failures.push(`seed ${seed} (replay: pnpm --filter raft-ts sim --seed ${seed}):\n  ${result.violations.join('\n  ')}`);
    }
    expect(failures).toEqual([]);
    // The runs did real work: entries were acknowledged, snapshots streamed to followers,
    // members left and leaders handed over on close.
    expect(acked).toBeGreaterThan(SEEDS * 50);
    expect(installs).toBeGreaterThan(SEEDS);
    // Nodes compacted behind their state machine's checkpoints too (and sent full snapshots taken on demand).
    expect(compactions).toBeGreaterThan(SEEDS);
    expect(onDemand).toBeGreaterThan(SEEDS / 4);
    expect(leaves + (faults.remove ?? 0)).toBeGreaterThan(SEEDS / 8);
    expect(transfers).toBeGreaterThan(SEEDS / 4);
    // Every kind of fault was injected, and every disk failure stopped its node.
    const kinds = ['crash', 'power-loss', 'restart', 'close', 'partition', 'one-way', 'pause', 'join', 'leave', 'remove', 'transfer'];
    for (const kind of [...kinds, 'torn-write', 'hole', 'lost-dir-entry', 'io-error EIO', 'io-error ENOSPC', 'bit-flip', 'bit-flip detected', 'stopped after disk error']) {
      expect([kind, (faults[kind] ?? 0) > 0]).toEqual([kind, true]);
    }
  }, 120_000);

  it('replays a seed exactly', async () => {
    const a = await runSimulation(7, { durationMs: 2000 });
    const b = await runSimulation(7, { durationMs: 2000 });
    expect(b).toEqual(a);
  });

  it('weights fault kinds: weight 0 turns one off', async () => {
    let flips = 0;
    for (let seed = 1; seed <= 10; seed++) flips += (await runSimulation(seed, { weights: { 'bit-flip': 0 } })).stats.faults['bit-flip'] ?? 0;
    expect(flips).toBe(0);
  });

  it('rejects bad flags with the usage text', () => {
    expect(() => parseSimArgs(['--weights', 'nonsense=1'])).toThrow(/usage: sim/);
    expect(() => parseSimArgs(['--shard', '2/2'])).toThrow(/usage: sim/);
    expect(parseSimArgs(['--seeds', '5', '--seed', '3', '--weights', 'crash=2,pause=0', '--shard', '1/2'])).toEqual({
      first: 3,
      seeds: 5,
      durationMs: 6000,
      trace: false,
      weights: { crash: 2, pause: 0 },
      shard: 1,
      shards: 2,
      untilFailure: false,
    });
  });
});
