import { describe, expect, it } from '@jest/globals';
import { FakeClock } from './fake-clock.js';

describe('FakeClock', () => {
  it('runs due timers in time order when advanced', () => {
    const clock = new FakeClock(100);
    const seen: string[] = [];
    clock.setTimeout(() => seen.push(`b@${clock.now()}`), 20);
    clock.setTimeout(() => seen.push(`a@${clock.now()}`), 10);
    const c = clock.setTimeout(() => seen.push('c'), 15);
    clock.clearTimeout(c);
    clock.advance(15);
    expect(seen).toEqual(['a@110']);
    clock.advance(5);
    expect(seen).toEqual(['a@110', 'b@120']);
    expect(clock.now()).toBe(120);
    expect(clock.pending).toBe(0);
  });

  it('runs timers set by timers when they fall inside the advance', () => {
    const clock = new FakeClock();
    const seen: number[] = [];
    clock.setTimeout(() => {
      seen.push(clock.now());
      clock.setTimeout(() => seen.push(clock.now()), 5);
    }, 5);
    clock.advance(10);
    expect(seen).toEqual([5, 10]);
  });
});
