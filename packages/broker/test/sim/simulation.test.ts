import { describe, expect, it } from '@jest/globals';
import { runSimulation } from 'raft-ts/simulation';
import { brokerApp } from './broker-app.js';

const SEEDS = 25;

describe('the simulation with the real broker on faulty disks', () => {
  it(`finds no violation in ${SEEDS} seeds, and the faults reached the broker's durability path`, async () => {
    const failures: string[] = [];
    const faults: Record<string, number> = {};
    let acked = 0;
    for (let seed = 1; seed <= SEEDS; seed++) {
      const result = await runSimulation(seed, { app: brokerApp });
      acked += result.stats.acked;
      for (const [k, v] of Object.entries(result.stats.faults)) faults[k] = (faults[k] ?? 0) + v;
      if (result.violations.length > 0) failures.push(`seed ${seed} (replay: pnpm --filter @msg/broker sim --seed ${seed}):\n  ${result.violations.join('\n  ')}`);
    }
    expect(failures).toEqual([]);
    expect(acked).toBeGreaterThan(SEEDS * 50);
    // Each kind of disk fault happened, and every disk failure stopped its node.
    for (const kind of ['crash', 'power-loss', 'torn-write', 'hole', 'lost-dir-entry', 'io-error EIO', 'io-error ENOSPC', 'bit-flip', 'bit-flip detected', 'stopped after disk error']) {
      expect([kind, faults[kind] ?? 0]).toEqual([kind, expect.any(Number)]);
      expect(faults[kind] ?? 0).toBeGreaterThan(0);
    }
  }, 240_000);
});
