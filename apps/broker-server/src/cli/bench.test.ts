import { describe, expect, it } from '@jest/globals';
import { formatBench, percentile } from './bench.js';

describe('percentile', () => {
  it('is the nearest-rank percentile of a sorted list', () => {
    const values = Array.from({ length: 100 }, (_v, i) => i + 1);
    expect(percentile(values, 50)).toBe(50);
    expect(percentile(values, 99)).toBe(99);
    expect(percentile(values, 100)).toBe(100);
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([1, 2, 3], 0)).toBe(1);
    expect(percentile([], 50)).toBeUndefined();
  });
});

describe('formatBench', () => {
  it('prints msg/s and latency p50/p99', () => {
    const text = formatBench({
      messages: 1000,
      size: 100,
      concurrency: 8,
      publish: { seconds: 0.5, perSecond: 2000, p50Ms: 1.234, p99Ms: 9.5, maxMs: 12 },
      consume: { seconds: 0.1, perSecond: 10000 },
    });
    expect(text).toContain('publish      2000 msg/s (0.50 s)');
    expect(text).toContain('latency      p50 1.23 ms  p99 9.50 ms  max 12.00 ms');
    expect(text).toContain('consume      10000 msg/s');
  });
});
