import { describe, expect, it } from '@jest/globals';
import { Rng } from '../src/prng.js';
import { FaultKinds, describeStep, makeSchedule } from '../src/schedule.js';

describe('makeSchedule', () => {
  it('gives the same steps for the same seed, and other steps for another seed', () => {
    const a = makeSchedule(42, { steps: 30, nodes: 3 });
    expect(makeSchedule(42, { steps: 30, nodes: 3 })).toEqual(a);
    expect(makeSchedule(43, { steps: 30, nodes: 3 })).not.toEqual(a);
    expect(a).toHaveLength(30);
  });

  it('covers every kind within one round of kinds', () => {
    const steps = makeSchedule(7, { steps: FaultKinds.length, nodes: 3 });
    expect(new Set(steps.map((s) => s.kind))).toEqual(new Set(FaultKinds));
  });

  it('draws only the kinds asked for, with valid nodes and bounded durations', () => {
    for (let seed = 0; seed < 50; seed++) {
      for (const step of makeSchedule(seed, { steps: 20, nodes: 5, kinds: ['split', 'bridge', 'moving', 'one-way'] })) {
        expect(['split', 'bridge', 'moving', 'one-way']).toContain(step.kind);
        expect(step.holdMs).toBeGreaterThanOrEqual(1500);
        expect(step.holdMs).toBeLessThanOrEqual(5000);
        for (const id of step.nodes ?? []) expect(id >= 1 && id <= 5).toBe(true);
        if (step.kind === 'split') expect(step.nodes!.length).toBeLessThanOrEqual(2);
        if (step.kind === 'one-way') expect(step.toRole).not.toBe(step.role);
        if (step.kind === 'bridge') expect(new Set(step.nodes).size).toBe(step.nodes!.length);
        if (step.kind === 'moving') step.nodes!.slice(1).forEach((id, i) => expect(id).not.toBe(step.nodes![i]));
      }
    }
  });

  it('describes a step on one line', () => {
    expect(describeStep({ kind: 'one-way', role: 'leader', toRole: 'follower', holdMs: 2000, gapMs: 500 })).toBe('one-way leader->follower hold=2000ms gap=500ms');
  });
});

describe('Rng', () => {
  it('is deterministic and uniform enough over a small range', () => {
    const a = new Rng(1);
    const b = new Rng(1);
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 4000; i++) {
      const x = a.int(0, 3);
      expect(b.int(0, 3)).toBe(x);
      counts[x]!++;
    }
    for (const c of counts) expect(c).toBeGreaterThan(850);
  });

  it('refuses to pick from an empty list', () => {
    expect(() => new Rng(1).pick([])).toThrow(RangeError);
  });
});
