import { describe, expect, it } from '@jest/globals';
import { FaultLog } from '../src/fault-log.js';
import { formatFailure, type RunReport } from '../src/run-schedule.js';
import { FaultKinds, type FaultKind } from '../src/schedule.js';

function report(log: FaultLog, at: number): RunReport {
  return {
    seed: 77,
    schedule: [],
    log,
    faults: Object.fromEntries(FaultKinds.map((k) => [k, 0])) as Record<FaultKind, number>,
    leaderKills: 0,
    partitions: 0,
    result: { violations: [{ check: 'acked-present', message: 'payload s77-w0-5 acknowledged at 12 is missing', indexes: [12n], at }], acked: 1, lost: 1, duplicated: 0 },
    leaderChanges: 0,
    failoversMs: [],
    recoveriesMs: [],
    longestUnavailableMs: 0,
    durationMs: 0,
  };
}

describe('formatFailure', () => {
  it('names the seed and the replay command, the violation with its indexes, and the fault log around it', () => {
    const log = new FaultLog();
    log.record('kill', 'SIGKILL node 1 pid 123 (leader)');
    const text = formatFailure(report(log, Date.now()), 9);
    expect(text).toContain('seed 77 FAILED');
    expect(text).toContain('npm run soak -- --seed 77 --steps 9 --rounds 1');
    expect(text).toContain('[acked-present] payload s77-w0-5 acknowledged at 12 is missing (indexes 12)');
    expect(text).toMatch(/\+0\.\d{3}s kill SIGKILL node 1 pid 123 \(leader\)/);
  });

  it('leaves out log lines far from the violation', () => {
    const log = new FaultLog();
    log.record('kill', 'long before');
    const text = formatFailure(report(log, Date.now() + 60_000), 9);
    expect(text).not.toContain('long before');
  });
});
