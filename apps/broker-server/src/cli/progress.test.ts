import { describe, expect, it } from '@jest/globals';
import { createProgress } from './progress.js';

function fakeStream(isTTY: boolean) {
  const writes: string[] = [];
  return { writes, stream: { isTTY, columns: 200, write: (text: string) => void writes.push(text) } };
}

describe('createProgress', () => {
  it('draws a bar in place on a TTY, at most every redrawMs, and ends its line', () => {
    let now = 0;
    const { writes, stream } = fakeStream(true);
    const progress = createProgress({ label: 'import', total: 200, unit: 'messages', stream, now: () => now, redrawMs: 100 });
    progress.update(50);
    now = 10;
    progress.update(60); // too soon: not drawn
    now = 200;
    progress.update(100);
    progress.finish();
    expect(writes).toEqual([
      `\rimport [${'#'.repeat(8)}${'.'.repeat(22)}]  25% 50/200 messages\x1b[K`,
      `\rimport [${'#'.repeat(15)}${'.'.repeat(15)}]  50% 100/200 messages\x1b[K`,
      `\rimport [${'#'.repeat(15)}${'.'.repeat(15)}]  50% 100/200 messages\x1b[K`,
      '\n',
    ]);
  });

  it('writes plain lines elsewhere: at each 25% step or after lineMs, and a last line', () => {
    let now = 0;
    const { writes, stream } = fakeStream(false);
    const progress = createProgress({ label: 'bench', total: 100, unit: 'messages', stream, now: () => now, lineMs: 1000 });
    for (let done = 1; done <= 60; done++) progress.update(done);
    now = 5000;
    progress.update(61);
    progress.finish('61 messages in 5.00 s');
    progress.update(99); // after finish: nothing
    expect(writes).toEqual([
      'bench: 1/100 messages (1%)\n',
      'bench: 25/100 messages (25%)\n',
      'bench: 50/100 messages (50%)\n',
      'bench: 61/100 messages (61%)\n',
      'bench: 61 messages in 5.00 s\n',
    ]);
  });

  it('shows counts without a bar when the total is unknown', () => {
    const { writes, stream } = fakeStream(true);
    const progress = createProgress({ label: 'wait', stream, now: () => 0 });
    progress.update(3);
    progress.finish('done');
    expect(writes).toEqual(['\rwait 3 items\x1b[K', '\r\x1b[Kwait: done\n']);
  });
});
