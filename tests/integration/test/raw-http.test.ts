// Raw HTTP against a real broker process, written from the protocol spec
// alone (docs/protocol.md at the repository root): no @msg/client, no
// @msg/wire. What a client of the original sees, byte for byte.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBroker, type BrokerProcess } from '../src/broker-process.js';
import { readStream, request, type HttpAnswer } from '../src/http-request.js';
import { frame } from '../src/raw-frame.js';

let broker: BrokerProcess;
let dataDir: string;
let base: string;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'msg-it-raw-'));
  broker = await startBroker({ dataDir, lifetime: 'file' });
  base = broker.url;
}, 60_000);

afterAll(async () => {
  await broker.kill();
  await rm(dataDir, { recursive: true, force: true, maxRetries: 3 });
});

// Every test uses its own topics so that they do not see each other's messages.
let nextTopic = 100n;
function freshTopic(): bigint {
  return nextTopic++;
}

async function publish(type: number | string, topicID: bigint | string, data: string): Promise<HttpAnswer> {
  return request(`${base}/messaging/messages?type=${type}&topicID=${topicID}`, { method: 'POST', body: data });
}

async function publishOK(topicID: bigint, data: string, type = 1): Promise<bigint> {
  const answer = await publish(type, topicID, data);
  if (answer.status !== 200) throw new Error(`publish: ${answer.status} ${answer.body.toString()}`);
  return BigInt(answer.headers['x-broker-index'] as string);
}

/** Expects the spec's error answer: `status`, `X-Broker-Error: text`, and the text as a text/plain body. */
function expectError(answer: HttpAnswer, status: number, text: string): void {
  expect({ status: answer.status, error: answer.headers['x-broker-error'], body: answer.body.toString().trim() }).toEqual({
    status,
    error: text,
    body: text,
  });
  expect(answer.headers['content-type']).toMatch(/^text\/plain/);
}

const MAX_U64 = '18446744073709551615';
const TOO_BIG_U64 = '18446744073709551616';

describe('POST /messaging/messages', () => {
  it('answers 200 with the index in X-Broker-Index and an empty body; indexes increase', async () => {
    const topic = freshTopic();
    const first = await publish(1, topic, 'one');
    expect(first.status).toBe(200);
    expect(first.headers['x-broker-index']).toMatch(/^[1-9][0-9]*$/);
    expect(first.body.byteLength).toBe(0);
    const second = await publishOK(topic, 'two');
    expect(second).toBeGreaterThan(BigInt(first.headers['x-broker-index'] as string));
  });

  it.each([
    ['a missing type', '/messaging/messages?topicID=1', 'data', 'message type required'],
    ['an empty type', '/messaging/messages?type=&topicID=1', 'data', 'message type required'],
    ['a negative type', '/messaging/messages?type=-1&topicID=1', 'data', 'message type required'],
    ['a type over 65535', '/messaging/messages?type=65536&topicID=1', 'data', 'message type required'],
    ['a non-decimal type', '/messaging/messages?type=0x1&topicID=1', 'data', 'message type required'],
    ['a bad type and a bad topic and no body (type is checked first)', '/messaging/messages?type=x&topicID=x', '', 'message type required'],
    ['a missing topicID', '/messaging/messages?type=1', 'data', 'topic required'],
    ['a topicID over 2^64-1', `/messaging/messages?type=1&topicID=${TOO_BIG_U64}`, 'data', 'topic required'],
    ['a signed topicID', '/messaging/messages?type=1&topicID=+1', 'data', 'topic required'],
    ['a bad topicID and no body (topic is checked before the body)', '/messaging/messages?type=1&topicID=abc', '', 'topic required'],
    ['an empty body', '/messaging/messages?type=1&topicID=1', '', 'message data required'],
  ])('answers %s with 400 and its error text', async (_what, path, body, text) => {
    expectError(await request(`${base}${path}`, { method: 'POST', body }), 400, text);
  });

  it('accepts the largest client type (0x7fff: 0x8000 marks internal messages) and the largest topic id', async () => {
    const index = await publishOK(BigInt(MAX_U64), 'edge', 0x7fff);
    const answer = await request(`${base}/messaging/messages?topicID=${MAX_U64}&index=0`);
    expect(answer.body.equals(frame(0x7fff, BigInt(MAX_U64), index, 'edge'))).toBe(true);
  });

  it('survives a client message with the internal 0x8000 type bit and short data, and keeps serving', async () => {
    const answer = await publish(0x8000, 0n, 'short');
    expect([200, 400]).toContain(answer.status);
    const topic = freshTopic();
    const index = await publishOK(topic, 'still-serving');
    const read = await request(`${base}/messaging/messages?topicID=${topic}&index=0`);
    expect(read.body.equals(frame(1, topic, index, 'still-serving'))).toBe(true);
  });
});

describe('GET /messaging/messages', () => {
  it('serves messages as 22-byte big-endian headers followed by their data (the spec example)', async () => {
    const topic = 7n;
    const index = await publishOK(topic, 'hello-0');
    const answer = await request(`${base}/messaging/messages?topicID=7&index=${index}`);
    expect(answer.status).toBe(200);
    const hexIndex = index.toString(16).padStart(16, '0');
    expect(answer.body.toString('hex')).toBe(`0001${'0000000000000007'}${hexIndex}${'00000007'}${Buffer.from('hello-0').toString('hex')}`);
  });

  it('concatenates every message of the topic from the first whose index is >= the requested one', async () => {
    const topic = freshTopic();
    const other = freshTopic();
    const a = await publishOK(topic, 'a');
    await publishOK(other, 'elsewhere');
    const b = await publishOK(topic, 'bb');
    const c = await publishOK(topic, 'ccc');

    const all = await request(`${base}/messaging/messages?topicID=${topic}&index=0`);
    expect(all.status).toBe(200);
    expect(all.body.equals(Buffer.concat([frame(1, topic, a, 'a'), frame(1, topic, b, 'bb'), frame(1, topic, c, 'ccc')]))).toBe(true);

    // a + 1 is the other topic's index: the body starts at b.
    const fromGap = await request(`${base}/messaging/messages?topicID=${topic}&index=${a + 1n}`);
    expect(fromGap.body.equals(Buffer.concat([frame(1, topic, b, 'bb'), frame(1, topic, c, 'ccc')]))).toBe(true);
    const pastEnd = await request(`${base}/messaging/messages?topicID=${topic}&index=${c + 1n}`);
    expect({ status: pastEnd.status, length: pastEnd.body.byteLength }).toEqual({ status: 200, length: 0 });
  });

  it('round-trips a 1 MiB message and binary data byte for byte, in non-streaming and streaming GETs', async () => {
    const topic = freshTopic();
    const big = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31 + (i >> 8)) & 0xff;
    const answer = await request(`${base}/messaging/messages?type=2&topicID=${topic}`, { method: 'POST', body: big, timeoutMs: 30_000 });
    expect(answer.status).toBe(200);
    const index = BigInt(answer.headers['x-broker-index'] as string);
    const header = Buffer.alloc(22);
    header.writeUInt16BE(2, 0);
    header.writeBigUInt64BE(topic, 2);
    header.writeBigUInt64BE(index, 10);
    header.writeUInt32BE(big.length, 18);
    const expected = Buffer.concat([header, big]);

    const read = await request(`${base}/messaging/messages?topicID=${topic}&index=0`, { timeoutMs: 30_000 });
    expect(read.body.equals(expected)).toBe(true);
    const streamed = await readStream(`${base}/messaging/messages?topicID=${topic}&index=0&streaming=true`, { untilBytes: expected.length, timeoutMs: 30_000 });
    expect(streamed.equals(expected)).toBe(true);
  });

  it('answers an unknown topic with 200 and an empty body', async () => {
    const answer = await request(`${base}/messaging/messages?topicID=${freshTopic() + 1000n}&index=0`);
    expect({ status: answer.status, length: answer.body.byteLength }).toEqual({ status: 200, length: 0 });
  });

  it.each(['1', 'TRUE', 'True', 'yes', ''])('ends the body at the end of the topic when streaming=%s (only "true" streams)', async (value) => {
    const topic = freshTopic();
    const index = await publishOK(topic, 'x');
    const answer = await request(`${base}/messaging/messages?topicID=${topic}&index=0&streaming=${value}`, { timeoutMs: 5000 });
    expect(answer.status).toBe(200);
    expect(answer.body.equals(frame(1, topic, index, 'x'))).toBe(true);
  });

  it('keeps a streaming body open, chunked, and pushes messages committed after it opened', async () => {
    const topic = freshTopic();
    const first = await publishOK(topic, 'before');
    let opened!: (headers: Record<string, unknown>) => void;
    const open = new Promise<Record<string, unknown>>((resolve) => (opened = resolve));
    const expectedBytes = 22 * 3 + 'before'.length + 'after-1'.length + 'after-2'.length;
    const streamed = readStream(`${base}/messaging/messages?topicID=${topic}&index=0&streaming=true`, {
      untilBytes: expectedBytes,
      onOpen: (_status, headers) => opened(headers),
    });
    const headers = await open;
    expect(headers['transfer-encoding']).toBe('chunked');
    const second = await publishOK(topic, 'after-1');
    const third = await publishOK(topic, 'after-2');
    const body = await streamed;
    expect(body.equals(Buffer.concat([frame(1, topic, first, 'before'), frame(1, topic, second, 'after-1'), frame(1, topic, third, 'after-2')]))).toBe(
      true,
    );
  });

  it('keeps a streaming body on a topic that does not exist yet open, and pushes its first message', async () => {
    const topic = freshTopic();
    let opened!: () => void;
    const open = new Promise<void>((resolve) => (opened = resolve));
    const streamed = readStream(`${base}/messaging/messages?topicID=${topic}&index=0&streaming=true`, { untilBytes: 22 + 'first'.length, onOpen: () => opened() });
    await Promise.race([open, streamed]);
    const index = await publishOK(topic, 'first');
    expect((await streamed).equals(frame(1, topic, index, 'first'))).toBe(true);
  });

  it.each([
    ['a missing topicID', '/messaging/messages?index=0', 'topic required'],
    ['a bad topicID', '/messaging/messages?topicID=abc&index=0', 'topic required'],
    ['a topicID over 2^64-1', `/messaging/messages?topicID=${TOO_BIG_U64}&index=0`, 'topic required'],
    ['a bad topicID and a bad index (topic is checked first)', '/messaging/messages?topicID=-1&index=-1', 'topic required'],
    ['a missing index', '/messaging/messages?topicID=1', 'index required'],
    ['a bad index', '/messaging/messages?topicID=1&index=1.5', 'index required'],
    ['an index over 2^64-1', `/messaging/messages?topicID=1&index=${TOO_BIG_U64}`, 'index required'],
  ])('answers %s with 400 and its error text', async (_what, path, text) => {
    expectError(await request(`${base}${path}`), 400, text);
  });
});

describe('POST /messaging/heartbeat', () => {
  it('answers 200 with an empty body for a valid report', async () => {
    const topic = freshTopic();
    const index = await publishOK(topic, 'hb');
    const answer = await request(`${base}/messaging/heartbeat?topicID=${topic}&index=${index}`, { method: 'POST' });
    expect({ status: answer.status, length: answer.body.byteLength }).toEqual({ status: 200, length: 0 });
  });

  it.each([
    ['a missing topicID', '/messaging/heartbeat?index=0', 'topic required'],
    ['a bad topicID', `/messaging/heartbeat?topicID=${TOO_BIG_U64}&index=0`, 'topic required'],
    ['a missing index', '/messaging/heartbeat?topicID=1', 'index required'],
    ['a bad index', '/messaging/heartbeat?topicID=1&index=x', 'index required'],
  ])('answers %s with 400 and its error text', async (_what, path, text) => {
    expectError(await request(`${base}${path}`, { method: 'POST' }), 400, text);
  });

  it('survives a report above the topic\'s last index (it crashed the original) and keeps taking writes', async () => {
    const topic = freshTopic();
    await publishOK(topic, 'hb');
    const answer = await request(`${base}/messaging/heartbeat?topicID=${topic}&index=${MAX_U64}`, { method: 'POST' });
    expect(answer.status).toBeLessThan(500);
    const index = await publishOK(topic, 'after');
    const read = await request(`${base}/messaging/messages?topicID=${topic}&index=${index}`);
    expect(read.body.equals(frame(1, topic, index, 'after'))).toBe(true);
  });
});

describe('/messaging/ping', () => {
  it.each(['POST', 'GET', 'PUT'])('answers %s on the leader with the cluster URLs as JSON and a newline', async (method) => {
    const answer = await request(`${base}/messaging/ping`, { method, body: method === 'GET' ? undefined : '' });
    expect(answer.status).toBe(200);
    expect(answer.body.toString()).toBe(`${JSON.stringify({ urls: [base] })}\n`);
  });
});

describe('routing', () => {
  it.each(['/', '/messaging', '/messaging/messages/', '/messaging/Messages', '/messaging/nope', '/MESSAGING/PING'])(
    'answers an unknown path %s with 404',
    async (path) => {
      expect((await request(`${base}${path}`)).status).toBe(404);
    },
  );

  it.each([
    ['DELETE', '/messaging/messages'],
    ['PUT', '/messaging/messages'],
    ['GET', '/messaging/heartbeat'],
  ])('answers %s %s with 405', async (method, path) => {
    expect((await request(`${base}${path}?topicID=1&index=0`, { method })).status).toBe(405);
  });

  it('answers 300 seeded random requests (methods, paths, queries, bodies) below 500, without a crash', async () => {
    let state = 0x5eed;
    const random = (): number => {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      return state / 4294967296;
    };
    const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
    const methods = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'];
    const paths = ['/messaging/messages', '/messaging/heartbeat', '/messaging/ping', '/messaging/batch', '/health', '/ready', '/status', '/metrics', '/raft/append', '/raft/vote', '/x'];
    const values = ['', '0', '1', '7', '-1', '1.5', '0x10', '+3', '65535', '65536', '32768', MAX_U64, TOO_BIG_U64, '9'.repeat(80), '%00', '%F0%9F%92%A9', 'abc'];
    const keys = ['type', 'topicID', 'index', 'streaming', 'x'];
    const seen = new Map<number, number>();
    for (let i = 0; i < 300; i++) {
      const method = pick(methods);
      const query = Array.from({ length: Math.floor(random() * 4) }, () => {
        const key = pick(keys);
        // A streaming GET never ends on its own: keep `streaming` off `true`.
        const value = key === 'streaming' ? pick(['false', '1', '']) : pick(values);
        return `${key}=${value}`;
      }).join('&');
      const bodyLength = method === 'GET' || method === 'HEAD' ? 0 : Math.floor(random() * 300);
      const body = Buffer.from(Array.from({ length: bodyLength }, () => Math.floor(random() * 256)));
      const path = pick(paths);
      const answer = await request(`${base}${path}${query === '' ? '' : `?${query}`}`, { method, body: bodyLength === 0 ? undefined : body });
      if (answer.status >= 500) throw new Error(`${method} ${path}?${query}: ${answer.status} ${answer.body.toString()}`);
      seen.set(answer.status, (seen.get(answer.status) ?? 0) + 1);
    }
    // The mix reached the routes, not only the 404 and 405 answers.
    expect([...seen.keys()]).toEqual(expect.arrayContaining([200, 400, 404, 405]));
  });

  it('still serves after every malformed request above', async () => {
    const topic = freshTopic();
    const index = await publishOK(topic, 'alive');
    const answer = await request(`${base}/messaging/messages?topicID=${topic}&index=0`);
    expect(answer.body.equals(frame(1, topic, index, 'alive'))).toBe(true);
    expect(broker.alive).toBe(true);
  });
});
