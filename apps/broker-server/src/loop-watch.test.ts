import { describe, expect, it } from '@jest/globals';
import { sleep } from '@msg/test-utils';
import { watchEventLoop } from './loop-watch.js';

function block(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // busy: the loop is held
  }
}

describe('watchEventLoop', () => {
  it('warns once of a loop held for 150 ms, with how long, and not of a free loop', async () => {
    const warned: { msg: string; fields: Record<string, unknown> | undefined }[] = [];
    const stop = watchEventLoop({ warn: (msg, fields) => warned.push({ msg, fields }) });
    try {
      await sleep(100);
      expect(warned).toEqual([]);
      block(150);
      await sleep(60);
      block(150); // within the same second: not logged again
      await sleep(60);
      expect(warned).toEqual([{ msg: 'event loop blocked', fields: { blockedMs: expect.any(Number) } }]);
      expect(warned[0]!.fields!.blockedMs).toBeGreaterThanOrEqual(100);
    } finally {
      stop();
    }
  });
});
