import { describe, expect, it } from '@jest/globals';
import { backoffDelay, resolveBackoff, type Backoff } from './backoff.js';
import { ClientError } from './errors.js';

const defaults: Backoff = { initialMs: 50, maxMs: 1000, multiplier: 2, jitter: 0.2 };

describe('resolveBackoff', () => {
  it('completes options over the defaults', () => {
    expect(resolveBackoff({ initialMs: 10, jitter: undefined }, defaults, 'backoff')).toEqual({ ...defaults, initialMs: 10 });
    expect(resolveBackoff(undefined, defaults, 'backoff')).toEqual(defaults);
  });

  it('raises the default maxMs to a larger initialMs, but not an explicit one', () => {
    expect(resolveBackoff({ initialMs: 5000 }, defaults, 'backoff').maxMs).toBe(5000);
    expect(() => resolveBackoff({ initialMs: 5000, maxMs: 1000 }, defaults, 'backoff')).toThrow(ClientError);
  });

  it('refuses out-of-range values with INVALID_OPTIONS naming the option', () => {
    for (const bad of [{ initialMs: -1 }, { initialMs: Infinity }, { multiplier: 0.5 }, { jitter: 1.5 }, { jitter: -0.1 }, { maxMs: NaN }]) {
      let error: unknown;
      try {
        resolveBackoff(bad, defaults, 'reconnect');
      } catch (caught) {
        error = caught;
      }
      expect({ code: (error as ClientError).code, named: (error as Error).message.includes('reconnect') }).toEqual({ code: 'INVALID_OPTIONS', named: true });
    }
  });
});

describe('backoffDelay', () => {
  it('grows by the multiplier up to maxMs', () => {
    const b: Backoff = { initialMs: 100, maxMs: 500, multiplier: 2, jitter: 0 };
    expect([1, 2, 3, 4, 5].map((attempt) => backoffDelay(b, attempt, () => 0))).toEqual([100, 200, 400, 500, 500]);
  });

  it('takes up to the jitter fraction off, as the random source says', () => {
    const b: Backoff = { initialMs: 100, maxMs: 100, multiplier: 1, jitter: 0.5 };
    expect([0, 0.5, 0.999].map((r) => backoffDelay(b, 1, () => r))).toEqual([100, 75, 50]);
  });
});
