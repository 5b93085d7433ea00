// Raw HTTP against a real broker process for what this project adds to the
// original protocol: batch publish, size limits, error codes, reclamation
// driven by heartbeats, and the admin routes.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { waitFor } from '@msg/test-utils';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBroker, type BrokerProcess } from '../src/broker-process.js';
import { request, type HttpAnswer } from '../src/http-request.js';
import { frame } from '../src/raw-frame.js';

const MAX_BODY_BYTES = 4096;
let broker: BrokerProcess;
let dataDir: string;
let base: string;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'msg-it-ext-'));
  broker = await startBroker({
    dataDir,
    lifetime: 'file',
    args: ['--segment-bytes', '1024', '--max-body-bytes', String(MAX_BODY_BYTES)],
  });
  base = broker.url;
}, 60_000);

afterAll(async () => {
  await broker.kill();
  await rm(dataDir, { recursive: true, force: true, maxRetries: 3 });
});

let nextTopic = 500n;
function freshTopic(): bigint {
  return nextTopic++;
}

async function publishOK(topicID: bigint, data: string): Promise<bigint> {
  const answer = await request(`${base}/messaging/messages?type=1&topicID=${topicID}`, { method: 'POST', body: data });
  if (answer.status !== 200) throw new Error(`publish: ${answer.status} ${answer.body.toString()}`);
  return BigInt(answer.headers['x-broker-index'] as string);
}

function errorOf(answer: HttpAnswer): { status: number; code: unknown; text: unknown } {
  return { status: answer.status, code: answer.headers['x-broker-error-code'], text: answer.headers['x-broker-error'] };
}

describe('POST /messaging/batch', () => {
  it('publishes the frames of the body at consecutive indexes, ignoring their index fields', async () => {
    const a = freshTopic();
    const b = freshTopic();
    const body = Buffer.concat([frame(1, a, 999n, 'first'), frame(2, b, 0n, 'second'), frame(1, a, 5n, 'third')]);
    const answer = await request(`${base}/messaging/batch`, { method: 'POST', body });
    expect(answer.status).toBe(200);
    const first = BigInt(answer.headers['x-broker-index'] as string);
    expect(answer.headers['x-broker-last-index']).toBe(String(first + 2n));

    const topicA = await request(`${base}/messaging/messages?topicID=${a}&index=0`);
    expect(topicA.body.equals(Buffer.concat([frame(1, a, first, 'first'), frame(1, a, first + 2n, 'third')]))).toBe(true);
    const topicB = await request(`${base}/messaging/messages?topicID=${b}&index=0`);
    expect(topicB.body.equals(frame(2, b, first + 1n, 'second'))).toBe(true);
  });

  it.each([
    ['an empty body', Buffer.alloc(0), 'INVALID_BATCH'],
    ['a truncated frame', frame(1, 1n, 0n, 'truncated').subarray(0, 25), 'INVALID_BATCH'],
    ['a frame without data', Buffer.concat([frame(1, 1n, 0n, 'ok'), frame(1, 1n, 0n, '')]), 'MESSAGE_DATA_REQUIRED'],
  ])('refuses %s with 400 and publishes nothing', async (_what, body, code) => {
    const commitIndex = async (): Promise<unknown> => (JSON.parse((await request(`${base}/status`)).body.toString()) as { commitIndex: unknown }).commitIndex;
    const before = await commitIndex();
    expect(typeof before).toBe('number');
    const answer = await request(`${base}/messaging/batch`, { method: 'POST', body });
    expect(errorOf(answer)).toMatchObject({ status: 400, code });
    expect(await commitIndex()).toBe(before);
  });

  it('answers GET with 405', async () => {
    expect((await request(`${base}/messaging/batch`)).status).toBe(405);
  });
});

describe('limits and error codes', () => {
  it('answers a body over --max-body-bytes with 413 and keeps serving', async () => {
    const answer = await request(`${base}/messaging/messages?type=1&topicID=1`, { method: 'POST', body: Buffer.alloc(MAX_BODY_BYTES + 1, 1) });
    expect(errorOf(answer)).toMatchObject({ status: 413, code: 'BODY_TOO_LARGE' });
    const topic = freshTopic();
    const index = await publishOK(topic, 'x'.repeat(MAX_BODY_BYTES));
    expect((await request(`${base}/messaging/messages?topicID=${topic}&index=${index}`)).body.byteLength).toBe(22 + MAX_BODY_BYTES);
  });

  it('names every error with a machine-readable code next to the original text', async () => {
    expect(errorOf(await request(`${base}/messaging/messages?index=0`))).toEqual({ status: 400, code: 'TOPIC_REQUIRED', text: 'topic required' });
    expect(errorOf(await request(`${base}/messaging/messages?topicID=1`))).toEqual({ status: 400, code: 'INDEX_REQUIRED', text: 'index required' });
    expect(errorOf(await request(`${base}/nope`))).toMatchObject({ status: 404, code: 'NOT_FOUND' });
    const wrongMethod = await request(`${base}/messaging/heartbeat`);
    expect(errorOf(wrongMethod)).toMatchObject({ status: 405, code: 'METHOD_NOT_ALLOWED' });
    expect(wrongMethod.headers.allow).toContain('POST');
  });
});

describe('reclamation driven by heartbeats', () => {
  it('reclaims segments the reader reported stored; a read below answers 410 segment reclaimed with the first index', async () => {
    const topic = freshTopic();
    const indexes: bigint[] = [];
    // 40 messages of ~122 bytes with 1 KiB segments: several segments.
    for (let i = 0; i < 40; i++) indexes.push(await publishOK(topic, `${String(i).padStart(3, '0')}-${'r'.repeat(96)}`));
    const reported = indexes[29]!;
    // A named reader (ours): an anonymous heartbeat, as the original's, never reclaims.
    const heartbeat = await request(`${base}/messaging/heartbeat?topicID=${topic}&index=${reported}&readerID=it-reader`, { method: 'POST' });
    expect(heartbeat.status).toBe(200);

    const reclaimed = await waitFor(
      async () => {
        const answer = await request(`${base}/messaging/messages?topicID=${topic}&index=0`);
        return answer.status === 410 ? answer : undefined;
      },
      { timeoutMs: 10_000, message: 'a 410 below the reclaimed segments' },
    );
    expect(reclaimed.headers['x-broker-error']).toBe('segment reclaimed');
    const firstIndex = BigInt(reclaimed.headers['x-broker-first-index'] as string);
    expect(firstIndex).toBeGreaterThan(indexes[0]!);
    expect(firstIndex).toBeLessThanOrEqual(reported + 1n);

    // Everything from the first index on is still served.
    const rest = await request(`${base}/messaging/messages?topicID=${topic}&index=${firstIndex}`);
    expect(rest.status).toBe(200);
    const expected = indexes.filter((i) => i >= firstIndex);
    expect(rest.body.byteLength).toBe(expected.length * (22 + 100));
    expect(rest.body.readBigUInt64BE(10)).toBe(expected[0]);
    expect(rest.body.readBigUInt64BE(rest.body.byteLength - 122 + 10)).toBe(indexes.at(-1));
  });
});

describe('the raft routes', () => {
  it.each(['vote', 'append', 'snapshot', 'timeout-now', 'join', 'leave'])(
    'answers garbage posted to /raft/%s with a 4xx, and the node stays leader in the same term',
    async (rpc) => {
      const before = JSON.parse((await request(`${base}/status`)).body.toString()) as { isLeader: boolean; term: number };
      for (const body of [Buffer.from('{"term":'), Buffer.from([0xff, 0x00, 0x13, 0x37, 0x42]), Buffer.from('{}'), Buffer.alloc(0)]) {
        const answer = await request(`${base}/raft/${rpc}`, { method: 'POST', body });
        expect(answer.status).toBeGreaterThanOrEqual(400);
        expect(answer.status).toBeLessThan(500);
      }
      const after = JSON.parse((await request(`${base}/status`)).body.toString()) as { isLeader: boolean; term: number };
      expect({ isLeader: after.isLeader, term: after.term }).toEqual({ isLeader: true, term: before.term });
    },
  );
});

describe('admin routes', () => {
  it('answers /health, /ready and /status with JSON about this single-node cluster', async () => {
    const health = await request(`${base}/health`);
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body.toString())).toEqual({ status: 'ok' });
    const ready = await request(`${base}/ready`);
    expect({ status: ready.status, body: JSON.parse(ready.body.toString()) as unknown }).toEqual({ status: 200, body: { ready: true } });
    const status = JSON.parse((await request(`${base}/status`)).body.toString()) as { isLeader: boolean; leaderURL: string; urls: string[] };
    expect(status).toMatchObject({ isLeader: true, leaderURL: base, urls: [base] });
  });

  it('answers /metrics in the Prometheus text format', async () => {
    await publishOK(freshTopic(), 'metrics');
    const answer = await request(`${base}/metrics`);
    expect(answer.status).toBe(200);
    expect(answer.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = answer.body.toString();
    expect(text).toMatch(/^# (HELP|TYPE) /m);
    for (const line of text.split('\n').filter((l) => l !== '' && !l.startsWith('#'))) {
      expect(line).toMatch(/^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? (-?[0-9.e+-]+|NaN|[+-]Inf)( -?[0-9]+)?$/);
    }
  });
});
