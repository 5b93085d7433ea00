import { describe, expect, it } from '@jest/globals';
import { BrokerError, Client, type Message } from '@msg/client';
import { makeTempDir, waitFor } from '@msg/test-utils';
import { encodeMessages } from '@msg/wire';
import { get as httpGet } from 'node:http';
import { startBroker } from '../src/broker-process.js';
import { readStream, request } from '../src/http-request.js';
import { readTopic, text, waitForTopicIndex } from '../src/topic.js';

const TOPIC = 7n;

function payloads(from: number, count: number): string[] {
  return Array.from({ length: count }, (_v, i) => `message-${from + i}`);
}

async function publishAll(url: string, texts: readonly string[]): Promise<bigint[]> {
  const client = new Client({ urls: [url], pingIntervalMs: 0 });
  await client.open();
  try {
    const indexes: bigint[] = [];
    for (const t of texts) indexes.push(await client.publish({ type: 1, topicID: TOPIC, data: Buffer.from(t) }));
    return indexes;
  } finally {
    await client.close();
  }
}

describe('a single broker process', () => {
  it('serves published messages in a non-streaming GET, byte for byte as published', async () => {
    const broker = await startBroker({ dataDir: await makeTempDir('msg-it-single-') });
    const texts = payloads(0, 20);
    const indexes = await publishAll(broker.url, texts);

    expect(new Set(indexes).size).toBe(texts.length);
    expect([...indexes].sort((a, b) => (a < b ? -1 : 1))).toEqual(indexes);
    const expected = encodeMessages(texts.map((t, i) => ({ type: 1, topicID: TOPIC, index: indexes[i]!, data: Buffer.from(t) })));
    const { bytes } = await readTopic(broker.url, TOPIC);
    expect(bytes.equals(Buffer.from(expected))).toBe(true);
  });

  it('pushes messages published after a streaming GET opened, to a raw stream and to a client Conn', async () => {
    const broker = await startBroker({ dataDir: await makeTempDir('msg-it-single-') });
    const before = await publishAll(broker.url, payloads(0, 5));

    // A raw streaming GET from index 0 sees the five existing messages, then the new ones.
    let opened!: () => void;
    const open = new Promise<void>((resolve) => (opened = resolve));
    const later = payloads(5, 5);
    const expectedBytes = 10 * 22 + [...payloads(0, 5), ...later].reduce((n, t) => n + t.length, 0);
    const raw = readStream(`${broker.url}/messaging/messages?topicID=${TOPIC}&index=0&streaming=true`, {
      untilBytes: expectedBytes,
      timeoutMs: 20_000,
      onOpen: opened,
    });

    const client = new Client({ urls: [broker.url], pingIntervalMs: 0 });
    await client.open();
    try {
      const conn = client.conn(TOPIC);
      conn.open(before[3]!);
      const iterator = conn[Symbol.asyncIterator]();
      const first = await iterator.next();
      expect(first.done).toBe(false);
      expect(text(first.value as Message)).toBe('message-3');

      await open;
      const indexes = await publishAll(broker.url, later);
      const received: Message[] = [];
      while (received.length < 6) {
        const next = await iterator.next();
        if (next.done === true) throw new Error('the conn ended');
        received.push(next.value);
      }
      expect(received.map(text)).toEqual(['message-4', ...later]);
      expect(received.slice(1).map((m) => m.index)).toEqual(indexes);
      await conn.close();

      const streamed = await raw;
      expect(streamed.byteLength).toBe(expectedBytes);
      const { bytes } = await readTopic(broker.url, TOPIC);
      expect(streamed.equals(bytes)).toBe(true);
    } finally {
      await client.close();
    }
  });

  it('exits 0 on SIGTERM and, restarted with the same data dir, serves everything it acknowledged', async () => {
    const dataDir = await makeTempDir('msg-it-single-');
    const broker = await startBroker({ dataDir });
    const texts = payloads(0, 30);
    const indexes = await publishAll(broker.url, texts);
    const { bytes: before } = await readTopic(broker.url, TOPIC);

    expect(await broker.stop('SIGTERM')).toEqual({ code: 0, signal: null });

    const again = await startBroker({ dataDir, port: broker.port });
    expect(again.url).toBe(broker.url);
    const { bytes: after, messages } = await readTopic(again.url, TOPIC);
    expect(after.equals(before)).toBe(true);
    expect(messages.map((m) => m.index)).toEqual(indexes);

    // It still takes writes, after the restored ones.
    const [next] = await publishAll(again.url, ['after-restart']);
    expect(next).toBeGreaterThan(indexes.at(-1)!);
    const answer = await request(`${again.url}/messaging/messages?topicID=${TOPIC}&index=${next}`);
    expect(answer.body.subarray(22).toString()).toBe('after-restart');
  });

  it('ends a client Conn below reclaimed segments with SEGMENT_RECLAIMED and the first index still available', async () => {
    const broker = await startBroker({ dataDir: await makeTempDir('msg-it-single-'), args: ['--segment-bytes', '1024'] });
    const texts = Array.from({ length: 40 }, (_v, i) => `${i}`.padStart(100, '.'));
    const indexes = await publishAll(broker.url, texts);
    const client = new Client({ urls: [broker.url], pingIntervalMs: 0 });
    await client.open();
    try {
      const reporter = client.conn(TOPIC);
      reporter.open(indexes[29]!, { streaming: false });
      for await (const message of reporter) expect(message.index).toBeGreaterThanOrEqual(indexes[29]!);
      // The conn reports the last index it delivered: the reader has stored the topic up to there.
      await reporter.heartbeat();
      await reporter.close();

      const error = await waitFor(
        async () => {
          const conn = client.conn(TOPIC);
          conn.open(0n, { streaming: false });
          try {
            for await (const _message of conn) {
              // Reading from 0 works until the segments are reclaimed.
            }
            return undefined;
          } catch (caught) {
            return caught;
          } finally {
            await conn.close();
          }
        },
        { timeoutMs: 10_000, intervalMs: 100, message: 'SEGMENT_RECLAIMED below the reclaimed segments' },
      );
      expect(error).toBeInstanceOf(BrokerError);
      const reclaimed = error as BrokerError;
      expect({ code: reclaimed.code, message: reclaimed.message }).toEqual({ code: 'SEGMENT_RECLAIMED', message: 'segment reclaimed' });
      expect(reclaimed.firstIndex).toBeGreaterThan(indexes[0]!);
      expect(reclaimed.firstIndex).toBeLessThanOrEqual(indexes.at(-1)! + 1n);
    } finally {
      await client.close();
    }
  });

  it('ends open streams cleanly and exits 0 on SIGTERM', async () => {
    const broker = await startBroker({ dataDir: await makeTempDir('msg-it-single-') });
    const [index] = await publishAll(broker.url, ['streamed']);
    const ended = new Promise<{ bytes: number; clean: boolean }>((resolve, reject) => {
      const req = httpGet(`${broker.url}/messaging/messages?topicID=${TOPIC}&index=0&streaming=true`, { agent: false }, (res) => {
        let bytes = 0;
        res.on('data', (chunk: Buffer) => {
          bytes += chunk.byteLength;
          if (bytes === 22 + 'streamed'.length) process.kill(broker.pid, 'SIGTERM');
        });
        res.once('end', () => resolve({ bytes, clean: true }));
        res.once('error', () => resolve({ bytes, clean: false }));
      });
      req.once('error', reject);
    });
    expect(await ended).toEqual({ bytes: 22 + 'streamed'.length, clean: true });
    expect(await broker.exited).toEqual({ code: 0, signal: null });
    expect(index).toBeGreaterThan(0n);
  });

  it('keeps every acknowledged message across a SIGKILL', async () => {
    const dataDir = await makeTempDir('msg-it-single-');
    const broker = await startBroker({ dataDir });
    const indexes = await publishAll(broker.url, payloads(0, 30));
    await broker.kill();

    const again = await startBroker({ dataDir, port: broker.port });
    // The broker re-applies what raft committed before the crash (it may serve
    // a shorter topic for a moment after it listens): wait for the last index.
    const { messages } = await waitForTopicIndex(again.url, TOPIC, indexes.at(-1)!);
    expect(messages.map(text)).toEqual(payloads(0, 30));
    expect(messages.map((m) => m.index)).toEqual(indexes);
  });
});
