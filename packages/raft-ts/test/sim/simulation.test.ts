import { describe, expect, it } from '@jest/globals';
import { runSimulation } from './simulation.js';

const SEEDS = 60;

describe('the deterministic simulation', () => {
  it(`finds no violation in ${SEEDS} seeds of crashes, partitions, lossy links, joins and leaves`, async () => {
    const failures: string[] = [];
    let acked = 0;
    let installs = 0;
    for (let seed = 1; seed <= SEEDS; seed++) {
      const result = await runSimulation(seed);
      acked += result.stats.acked;
      installs += result.stats.snapshotsInstalled;
      if (result.violations.length > 0) failures.push(`seed ${seed} (replay: pnpm --filter raft-ts sim --seed ${seed}):\n  ${result.violations.join('\n  ')}`);
    }
    expect(failures).toEqual([]);
    // The runs did real work: entries were acknowledged and snapshots streamed to followers.
    expect(acked).toBeGreaterThan(SEEDS * 50);
    expect(installs).toBeGreaterThan(SEEDS);
  }, 60_000);

  it('replays a seed exactly', async () => {
    const a = await runSimulation(7, { durationMs: 2000 });
    const b = await runSimulation(7, { durationMs: 2000 });
    expect(b).toEqual(a);
  });
});
