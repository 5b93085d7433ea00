// Readers at different speeds on one topic, through a real broker process:
// reclamation removes only what every identified reader has passed; the
// original's anonymous heartbeat is shown in /status and removes nothing.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Client, type Message } from '@msg/client';
import { makeTempDir, waitFor } from '@msg/test-utils';
import { startBroker, type BrokerProcess } from '../src/broker-process.js';
import { request } from '../src/http-request.js';

interface TopicStatusJson {
  id: string;
  firstIndex: string;
  lastIndex: string;
  segments: number;
  readers: { id: string; index: string }[];
  anonymous?: { index: string; atMs?: number };
}

let broker: BrokerProcess;
let nextTopic = 100n;

beforeAll(async () => {
  broker = await startBroker({ dataDir: await makeTempDir('msg-it-readers-'), lifetime: 'file', args: ['--segment-bytes', '1024'] });
}, 60_000);

afterAll(async () => {
  await broker.kill();
});

async function topicStatus(topicID: bigint): Promise<TopicStatusJson> {
  const answer = await request(`${broker.url}/status`);
  expect(answer.status).toBe(200);
  const status = JSON.parse(answer.body.toString()) as { topics: TopicStatusJson[] };
  const topic = status.topics.find((t) => t.id === String(topicID));
  if (!topic) throw new Error(`topic ${topicID} not in /status`);
  return topic;
}

/** 40 messages of 100 bytes with 1 KiB segments: several segments. */
async function publish40(client: Client, topicID: bigint): Promise<bigint[]> {
  const indexes: bigint[] = [];
  for (let i = 0; i < 40; i++) indexes.push(await client.publish({ type: 1, topicID, data: Buffer.from(`${i}`.padStart(100, '.')) }));
  return indexes;
}

async function readAll(conn: AsyncIterable<Message>): Promise<bigint[]> {
  const seen: bigint[] = [];
  for await (const message of conn) seen.push(message.index);
  return seen;
}

describe('readers of one topic at different speeds', () => {
  it('never reclaims what a slow Conn has not read because a fast Conn reported far ahead; once both passed, it goes', async () => {
    const topicID = nextTopic++;
    const client = new Client({ urls: [broker.url], pingIntervalMs: 0 });
    await client.open();
    try {
      const indexes = await publish40(client, topicID);
      const last = indexes.at(-1)!;
      expect((await topicStatus(topicID)).segments).toBeGreaterThan(3);

      // Both conns heartbeat every 20 ms; the slow one has read nothing yet.
      const slow = client.conn(topicID, { heartbeatIntervalMs: 20 });
      const fast = client.conn(topicID, { heartbeatIntervalMs: 20 });
      slow.open(indexes[0]!, { streaming: false });
      fast.open(indexes[0]!, { streaming: false });
      await slow.heartbeat();
      expect(await readAll(fast)).toEqual(indexes);
      await fast.heartbeat();
      await waitFor(async () => (await topicStatus(topicID)).readers.some((r) => r.index === String(last)), {
        timeoutMs: 10_000,
        message: 'the fast reader at the last index in /status',
      });
      await new Promise((resolve) => setTimeout(resolve, 100)); // a few more heartbeats of both

      // The slow conn now reads it all: no SEGMENT_RECLAIMED.
      expect(await readAll(slow)).toEqual(indexes);
      await slow.heartbeat();
      expect(slow.readerId).not.toBe(fast.readerId);
      expect((await topicStatus(topicID)).readers).toEqual(
        expect.arrayContaining([
          { id: slow.readerId, index: String(last) },
          { id: fast.readerId, index: String(last) },
        ]),
      );
      const after = await waitFor(
        async () => {
          const status = await topicStatus(topicID);
          return BigInt(status.firstIndex) > indexes[0]! ? status : undefined;
        },
        { timeoutMs: 10_000, message: 'reclamation once both readers passed' },
      );
      expect(BigInt(after.firstIndex)).toBeLessThanOrEqual(last);
      await Promise.all([slow.close(), fast.close()]);
    } finally {
      await client.close();
    }
  });

  it('shows the anonymous heartbeat of the original protocol in /status and reclaims nothing for it', async () => {
    const topicID = nextTopic++;
    const client = new Client({ urls: [broker.url], pingIntervalMs: 0 });
    await client.open();
    try {
      const indexes = await publish40(client, topicID);
      const before = Date.now();
      const heartbeat = await request(`${broker.url}/messaging/heartbeat?topicID=${topicID}&index=${indexes[35]}`, { method: 'POST' });
      expect(heartbeat.status).toBe(200);
      const status = await topicStatus(topicID);
      expect(status).toMatchObject({ firstIndex: String(indexes[0]), readers: [], anonymous: { index: String(indexes[35]) } });
      expect(status.anonymous?.atMs).toBeGreaterThanOrEqual(before - 1000);
      expect(status.anonymous?.atMs).toBeLessThanOrEqual(Date.now() + 1000);
      const all = await request(`${broker.url}/messaging/messages?topicID=${topicID}&index=0`);
      expect(all.status).toBe(200);
      expect(all.body.byteLength).toBe(40 * (22 + 100));
    } finally {
      await client.close();
    }
  });
});
