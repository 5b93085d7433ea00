import { describe, expect, it } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Message } from '@msg/wire';
import { makeTempDir, waitFor } from '@msg/test-utils';
import { Topic } from '../src/index.js';
import { collect, openTestTopic } from './helpers.js';

const CHILD = join(import.meta.dirname, 'fixtures', 'writer-child.ts');

/** Starts the writer child; `output` collects its stdout. */
function startWriter(dir: string, count: number, mode = ''): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, ['--import', 'tsx', '--conditions=@msg/source', CHILD, dir, String(count), mode], {
    cwd: join(import.meta.dirname, '..'),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => `${out}${err}`, exited };
}

describe('a writer in another process', () => {
  it('is followed by a streaming reader of a read-only topic (polling, across segment rolls), and its lock is taken over once it is killed', async () => {
    const dir = join(await makeTempDir('xproc-'), 'topic');
    const count = 60;
    const writer = startWriter(dir, count);
    try {
      // The folder exists once the writer has opened the topic.
      const view = new Topic(dir, { readOnly: true, pollIntervalMs: 10 });
      await waitFor(() => existsSync(join(dir, '.lock')), { timeoutMs: 20_000, message: `writer started: ${writer.output()}` });
      await view.open();
      const seen: Message[] = [];
      const reader = view.reader(1n, { streaming: true });
      const reading = (async () => {
        for await (const message of reader) {
          seen.push(message);
          if (seen.length === count) break;
        }
      })();
      await waitFor(() => seen.length === count || writer.output().includes('Error'), { timeoutMs: 20_000, message: `all messages read (${seen.length}); child: ${writer.output()}` });
      await reading;
      expect(seen.map((m) => m.index)).toEqual(Array.from({ length: count }, (_, i) => BigInt(i + 1)));
      expect(seen.every((m) => m.topicID === 9n && m.data.byteLength === 40 && m.data[0] === Number(m.index & 0xffn))).toBe(true);
      expect(view.segments().length).toBeGreaterThan(5);
      await waitFor(() => writer.output().includes(`done ${count}`), { message: `child finished: ${writer.output()}` });

      // The writer holds the lock while it lives.
      await expect(new Topic(dir).open()).rejects.toMatchObject({ code: 'TOPIC_ALREADY_OPEN' });
      process.kill(writer.child.pid!, 'SIGKILL');
      await writer.exited;

      // Its lock is stale now: a new writer takes over and continues after its last message.
      const { topic, events } = await openTestTopic({}, dir);
      expect(events).toEqual([]);
      expect(topic.lastIndex).toBe(BigInt(count));
      await topic.append({ type: 1, topicID: 9n, index: BigInt(count + 1), data: new Uint8Array(3) });
      expect((await collect(topic.reader(BigInt(count)))).map((m) => m.index)).toEqual([BigInt(count), BigInt(count + 1)]);
      await topic.close();
      await view.close();
    } finally {
      if (writer.child.exitCode === null && writer.child.signalCode === null) process.kill(writer.child.pid!, 'SIGKILL');
      await writer.exited;
    }
  }, 45_000);

  it('keeps every acknowledged append when killed with SIGKILL while appending, and the topic opens again', async () => {
    const dir = join(await makeTempDir('xproc-'), 'topic');
    let expectedNext = 1n;
    for (let round = 0; round < 3; round++) {
      const writer = startWriter(dir, 100_000, 'until-killed');
      try {
        const acked = (): bigint => {
          const all = [...writer.output().matchAll(/acked (\d+)/g)];
          return all.length === 0 ? 0n : BigInt(all.at(-1)![1]!);
        };
        // Kill it mid-stream, a while after its first acknowledgements.
        await waitFor(() => acked() >= expectedNext + 500n || writer.output().includes('Error'), { timeoutMs: 20_000, message: `writer acked: ${writer.output().slice(-300)}` });
        process.kill(writer.child.pid!, 'SIGKILL');
        await writer.exited;
        const lastAcked = acked();
        const { topic } = await openTestTopic({}, dir);
        expect(topic.lastIndex).toBeGreaterThanOrEqual(lastAcked);
        const indexes = (await collect(topic.reader(0n))).map((m) => m.index);
        expect(indexes.length).toBe(Number(topic.lastIndex));
        expect(indexes.every((index, k) => index === BigInt(k + 1))).toBe(true);
        expectedNext = topic.lastIndex + 1n;
        await topic.close();
      } finally {
        if (writer.child.exitCode === null && writer.child.signalCode === null) process.kill(writer.child.pid!, 'SIGKILL');
        await writer.exited;
      }
    }
  }, 60_000);
});
