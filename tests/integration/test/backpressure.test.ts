import { describe, expect, it } from '@jest/globals';
import { makeTempDir, sleep, waitFor } from '@msg/test-utils';
import { readFile } from 'node:fs/promises';
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { startBroker } from '../src/broker-process.js';
import { request } from '../src/http-request.js';

const TOPIC = 31n;
const MiB = 1024 * 1024;

/** Resident set size of a process, in bytes (Linux `/proc/<pid>/status`). */
async function rss(pid: number): Promise<number> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(text);
  if (!kb) throw new Error(`no VmRSS for ${pid}`);
  return Number(kb[1]) * 1024;
}

/** A batch body of `count` messages of `size` bytes each. */
function batch(count: number, size: number, seed: number): Buffer {
  const frames: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const header = Buffer.alloc(22);
    header.writeUInt16BE(1, 0);
    header.writeBigUInt64BE(TOPIC, 2);
    header.writeUInt32BE(size, 18);
    frames.push(header, Buffer.alloc(size, (seed + i) % 251));
  }
  return Buffer.concat(frames);
}

describe('streaming backpressure', () => {
  it('does not buffer a topic in memory for consumers that stop reading', async () => {
    const broker = await startBroker({ dataDir: await makeTempDir('msg-it-bp-') });
    // 64 MiB in the topic: 64 batches of 256 messages of 4 KiB.
    for (let b = 0; b < 64; b++) {
      const answer = await request(`${broker.url}/messaging/batch`, { method: 'POST', body: batch(256, 4096, b), timeoutMs: 30_000 });
      expect(answer.status).toBe(200);
    }
    await sleep(500);
    const before = await rss(broker.pid);

    // Four streams from index 0 whose readers read one chunk and then pause.
    const requests: ClientRequest[] = [];
    const received = [0, 0, 0, 0];
    const responses = await Promise.all(
      [0, 1, 2, 3].map(
        (n) =>
          new Promise<IncomingMessage>((resolve, reject) => {
            const req = httpRequest(`${broker.url}/messaging/messages?topicID=${TOPIC}&index=0&streaming=true`, { agent: false });
            requests.push(req);
            req.once('error', reject);
            req.once('response', (res) => {
              res.on('data', (chunk: Buffer) => (received[n]! += chunk.byteLength));
              res.once('data', () => res.pause());
              resolve(res);
            });
            req.end();
          }),
      ),
    );
    try {
      expect(responses.map((r) => r.statusCode)).toEqual([200, 200, 200, 200]);
      // Give a broker that ignores backpressure time to read the topic into memory.
      await sleep(3000);
      const during = await rss(broker.pid);
      // Four unbounded streams would hold 4 x 64 MiB; socket buffers and reader chunks are far less.
      expect(during - before).toBeLessThan(96 * MiB);

      // Reading again resumes each stream where it stopped: the whole topic arrives.
      const want = 64 * 256 * (22 + 4096);
      expect(Math.max(...received)).toBeLessThan(want);
      for (const res of responses) res.resume();
      await waitFor(() => received.every((bytes) => bytes >= want), { timeoutMs: 60_000, intervalMs: 50, message: 'the whole topic on every stream' });
      expect(received).toEqual([want, want, want, want]);
    } finally {
      for (const req of requests) req.destroy();
    }
    await waitFor(async () => (await request(`${broker.url}/health`)).status === 200);
  });
});
