import { describe, expect, it } from '@jest/globals';
import { ConfigHistory, decodeConfig, encodeConfig, members } from './config-history.js';
import { isRaftError } from './errors.js';
import { EntryType, type ClusterConfig, type LogEntry } from './types.js';

const A = 'http://a';
const B = 'http://b';
const C = 'http://c';

function entry(index: number, config: ClusterConfig | string): LogEntry {
  const data = typeof config === 'string' ? new TextEncoder().encode(config) : encodeConfig(config);
  return { index, term: 1, type: EntryType.Config, data };
}

/** A history whose snapshot holds {A} and whose log holds {A, B} at 5 and {A, B, C} at 9. */
function threeSteps(): ConfigHistory {
  const h = new ConfigHistory();
  h.setBase({ voters: [A], learners: [] });
  h.add(5, { voters: [A, B], learners: [] });
  h.add(9, { voters: [A, B, C], learners: [] });
  return h;
}

describe('ConfigHistory', () => {
  it('is empty before any configuration is known', () => {
    const h = new ConfigHistory();
    expect(h.latest()).toEqual({ voters: [], learners: [] });
    expect(h.latestIndex).toBe(0);
    expect(h.at(100)).toEqual({ voters: [], learners: [] });
  });

  it('answers the configuration in effect at an index: the last entry at or before it, else the snapshot’s', () => {
    const h = threeSteps();
    expect(h.at(4).voters).toEqual([A]);
    expect(h.at(5).voters).toEqual([A, B]);
    expect(h.at(8).voters).toEqual([A, B]);
    expect(h.at(9).voters).toEqual([A, B, C]);
    expect(h.latest().voters).toEqual([A, B, C]);
    expect(h.latestIndex).toBe(9);
  });

  it('forgets the entries a truncation removes and says whether there were any', () => {
    const h = threeSteps();
    expect(h.truncateFrom(10)).toBe(false);
    expect(h.truncateFrom(9)).toBe(true);
    expect(h.latest().voters).toEqual([A, B]);
    expect(h.truncateFrom(1)).toBe(true);
    expect(h.latest().voters).toEqual([A]);
    expect(h.latestIndex).toBe(0);
  });

  it('drops the entries a snapshot covers and takes its configuration as the base', () => {
    const h = threeSteps();
    h.compactTo(6, { voters: [A, B], learners: [] });
    expect(h.at(1).voters).toEqual([A, B]);
    expect(h.latestIndex).toBe(9);
    h.compactTo(9, { voters: [A, B, C], learners: [] });
    expect(h.latestIndex).toBe(0);
    expect(h.latest().voters).toEqual([A, B, C]);
  });

  it('rebuilds from the config entries after the snapshot, naming the file and offset of one that does not decode', () => {
    const h = new ConfigHistory();
    h.rebuild([entry(2, { voters: [A], learners: [] }), entry(4, { voters: [A, B], learners: [] })], 2, () => undefined);
    expect(h.latestIndex).toBe(4);
    expect(h.at(3)).toEqual({ voters: [], learners: [] });
    let err: unknown;
    try {
      h.rebuild([entry(7, '{"voters":'), entry(8, { voters: [A], learners: [] })], 0, (index) => ({ path: '/d/log-1.seg', offset: index * 10 }));
    } catch (e) {
      err = e;
    }
    expect(isRaftError(err, 'CORRUPT')).toBe(true);
    expect((err as Error).message).toMatch(/^\/d\/log-1\.seg: log entry 7 \(a configuration\) does not decode at offset 70/);
  });

  it('names the entry that does not decode when it is not on disk yet', () => {
    expect(() => decodeConfig(new TextEncoder().encode('[]'), 3)).toThrow(/^log entry 3 \(a configuration\) does not decode/);
    expect(decodeConfig(encodeConfig({ voters: [A], learners: [B] }), 1)).toEqual({ voters: [A], learners: [B] });
    expect(members({ voters: [A], learners: [B] })).toEqual([A, B]);
  });

  describe('the membership change rule', () => {
    it('allows no change before the leader committed an entry of its term', () => {
      const h = threeSteps();
      expect(h.changeBlocker(11, 12)).toBe('the leader has not yet committed an entry of its term');
      expect(h.changeBlocker(12, 12)).toBeUndefined();
    });

    it('allows no change while another one is uncommitted', () => {
      const h = threeSteps();
      expect(h.changeBlocker(8, 0)).toBe('a membership change is in progress');
      expect(h.changeBlocker(9, 0)).toBeUndefined();
    });
  });

  it('lets a voter removed by an uncommitted change still campaign, and no one else', () => {
    const h = new ConfigHistory();
    h.add(1, { voters: [A, B, C], learners: [] });
    h.add(4, { voters: [A, B], learners: [] });
    expect(h.electable(A, 3)).toBe(true);
    expect(h.electable(C, 3)).toBe(true);
    expect(h.removedByPending(C, 3)).toBe(true);
    expect(h.electable(C, 4)).toBe(false);
    expect(h.removedByPending(C, 4)).toBe(false);
    expect(h.electable('http://stranger', 3)).toBe(false);
  });
});
