import { describe, expect, it } from '@jest/globals';
import { connect } from 'node:net';
import { parsePrometheusText, sampleValue } from '@msg/test-utils';
import { BrokerError, decodeMessages, encodeMessage, encodeMessages, Headers, type Message } from '@msg/wire';
import { createHandler, type TopicFrames } from '../src/index.js';
import { fail, fakeBroker, startServer } from './fake-broker.js';
import { request } from './http-client.js';

const data = (text: string): Uint8Array => new TextEncoder().encode(text);

async function collect(body: Buffer): Promise<Message[]> {
  const out: Message[] = [];
  for await (const m of decodeMessages([body])) out.push(m);
  return out;
}

function expectError(answer: { status: number; headers: Record<string, unknown>; body: Buffer }, status: number, code: string, text: string): void {
  expect(answer.status).toBe(status);
  expect(answer.headers[Headers.errorCode]).toBe(code);
  expect(answer.headers[Headers.error]).toBe(text);
  expect(answer.headers['content-type']).toBe('text/plain; charset=utf-8');
  expect(answer.body.toString()).toBe(`${text}\n`);
}

describe.each([
  ['the fast path', true],
  ['express only', false],
])('the handler through %s', (_name, fastPath) => {
  describe('POST /messaging/messages', () => {
    it('publishes the body and answers 200 with X-Broker-Index once the broker resolves', async () => {
      const s = await startServer(fakeBroker(), { fastPath });
      const a = await request(`${s.url}/messaging/messages?type=3&topicID=18446744073709551615`, { method: 'POST', body: 'hello' });
      expect(a.status).toBe(200);
      expect(a.headers[Headers.index]).toBe('1');
      expect(a.body.byteLength).toBe(0);
      expect(s.broker.log).toHaveLength(1);
      expect(s.broker.log[0]!.message.type).toBe(3);
      expect(s.broker.log[0]!.message.topicID).toBe(18446744073709551615n);
      expect(Buffer.from(s.broker.log[0]!.message.data).toString()).toBe('hello');
    });

    it('answers every publish of a pipelined keep-alive connection (a request read before the previous answer went out)', async () => {
      // As @msg/broker does: a publish whose signal is already aborted (the client is gone) is not made.
      const broker = fakeBroker();
      const append = broker.publish;
      broker.publish = async (message, signal) => {
        signal?.throwIfAborted();
        await new Promise((resolve) => setTimeout(resolve, 10)); // a commit takes a while: the next requests are read meanwhile
        signal?.throwIfAborted();
        return append(message, signal);
      };
      const s = await startServer(broker, { fastPath });
      const { port } = new URL(s.url);
      const socket = connect(Number(port), '127.0.0.1');
      const one = (text: string): string => `POST /messaging/messages?type=1&topicID=1 HTTP/1.1\r\nHost: x\r\nContent-Length: ${text.length}\r\n\r\n${text}`;
      let received = '';
      const statuses = await new Promise<string[]>((resolve) => {
        const timer = setTimeout(() => resolve(received.match(/HTTP\/1\.1 \d+/g) ?? []), 3000);
        socket.on('data', (chunk: Buffer) => {
          received += chunk.toString('latin1');
          const seen = received.match(/HTTP\/1\.1 \d+/g) ?? [];
          if (seen.length === 3) {
            clearTimeout(timer);
            resolve(seen);
          }
        });
        socket.write(one('a') + one('b') + one('c'));
      });
      socket.destroy();
      expect(statuses).toEqual(['HTTP/1.1 200', 'HTTP/1.1 200', 'HTTP/1.1 200']);
      expect(s.broker.log.map((e) => Buffer.from(e.message.data).toString())).toEqual(['a', 'b', 'c']);
    });

    it('hands the broker the message encoded once as a frame with index field 0', async () => {
      const s = await startServer(fakeBroker(), { fastPath });
      const a = await request(`${s.url}/messaging/messages?type=3&topicID=18446744073709551615`, { method: 'POST', body: 'hello' });
      expect(a.status).toBe(200);
      const frame = s.broker.log[0]!.message.frame!;
      expect(Buffer.from(frame).equals(Buffer.from(encodeMessage({ type: 3, topicID: 18446744073709551615n, index: 0n, data: data('hello') })))).toBe(true);
    });

    it('waits for the broker before answering', async () => {
      let release!: (index: bigint) => void;
      const s = await startServer(fakeBroker({ publish: () => new Promise<bigint>((resolve) => (release = resolve)) }), { fastPath });
      let answered = false;
      const pending = request(`${s.url}/messaging/messages?type=1&topicID=1`, { method: 'POST', body: 'x' }).then((a) => {
        answered = true;
        return a;
      });
      await new Promise((r) => setTimeout(r, 50));
      expect(answered).toBe(false);
      release(42n);
      expect((await pending).headers[Headers.index]).toBe('42');
    });

    it.each([
      ['missing type', '?topicID=1', 'MESSAGE_TYPE_REQUIRED', 'message type required'],
      ['type above u16', '?type=65536&topicID=1', 'MESSAGE_TYPE_REQUIRED', 'message type required'],
      ['negative type', '?type=-1&topicID=1', 'MESSAGE_TYPE_REQUIRED', 'message type required'],
      ['bad type and bad topic (type first)', '?type=x&topicID=y', 'MESSAGE_TYPE_REQUIRED', 'message type required'],
      ['missing topicID', '?type=1', 'TOPIC_REQUIRED', 'topic required'],
      ['topicID above u64', '?type=1&topicID=18446744073709551616', 'TOPIC_REQUIRED', 'topic required'],
      ['hex topicID', '?type=1&topicID=0x10', 'TOPIC_REQUIRED', 'topic required'],
    ])('answers 400 for %s', async (_case, query, code, text) => {
      const s = await startServer(fakeBroker(), { fastPath });
      expectError(await request(`${s.url}/messaging/messages${query}`, { method: 'POST', body: 'x' }), 400, code, text);
      expect(s.broker.log).toHaveLength(0);
    });

    it('answers 400 message data required for an empty body, after checking the query', async () => {
      const s = await startServer(fakeBroker(), { fastPath });
      expectError(await request(`${s.url}/messaging/messages?type=1&topicID=2`, { method: 'POST' }), 400, 'MESSAGE_DATA_REQUIRED', 'message data required');
      expectError(await request(`${s.url}/messaging/messages?type=1`, { method: 'POST' }), 400, 'TOPIC_REQUIRED', 'topic required');
    });

    it('redirects a non-leader with 307 to the leader, keeping path and query', async () => {
      const broker = fakeBroker();
      broker.leader = false;
      broker.leader_ = 'https://leader.example:9000/ignored/path';
      const s = await startServer(broker, { fastPath });
      const a = await request(`${s.url}/messaging/messages?type=1&topicID=2&x=%20y`, { method: 'POST', body: 'x' });
      expect(a.status).toBe(307);
      expect(a.headers.location).toBe('https://leader.example:9000/messaging/messages?type=1&topicID=2&x=%20y');
      expect(broker.log).toHaveLength(0);
    });

    it('answers 503 not leader when no leader is known', async () => {
      const broker = fakeBroker();
      broker.leader = false;
      broker.leader_ = undefined;
      const s = await startServer(broker, { fastPath });
      expectError(await request(`${s.url}/messaging/messages?type=1&topicID=2`, { method: 'POST', body: 'x' }), 503, 'NOT_LEADER', 'not leader');
    });

    it('redirects when the broker rejects with NOT_LEADER, preferring the leader the error names', async () => {
      const s = await startServer(fakeBroker({ publish: () => Promise.reject(fail('NOT_LEADER', { leaderURL: 'http://other:1' })) }), { fastPath });
      const a = await request(`${s.url}/messaging/messages?type=1&topicID=2`, { method: 'POST', body: 'x' });
      expect(a.status).toBe(307);
      expect(a.headers.location).toBe('http://other:1/messaging/messages?type=1&topicID=2');
    });

    it('answers a broker error with its status, text and code', async () => {
      const s = await startServer(fakeBroker({ publish: () => Promise.reject(fail('BROKER_CLOSED')) }), { fastPath });
      expectError(await request(`${s.url}/messaging/messages?type=1&topicID=2`, { method: 'POST', body: 'x' }), 503, 'BROKER_CLOSED', 'broker already closed');
    });

    it('answers any other failure 500 internal error without leaking it, and reports it', async () => {
      const s = await startServer(fakeBroker({ publish: () => Promise.reject(new Error('secret stack')) }), { fastPath });
      const a = await request(`${s.url}/messaging/messages?type=1&topicID=2`, { method: 'POST', body: 'x' });
      expectError(a, 500, 'INTERNAL', 'internal error');
      expect(a.body.toString()).not.toContain('secret');
      expect(s.errors).toHaveLength(1);
    });

    it('answers 413 for a declared body over the limit without reading it, and closes the connection', async () => {
      const s = await startServer(fakeBroker(), { fastPath, maxBodyBytes: 1024 });
      const a = await request(`${s.url}/messaging/messages?type=1&topicID=2`, { method: 'POST', body: Buffer.alloc(2048) });
      expectError(a, 413, 'BODY_TOO_LARGE', 'body too large: the limit is 1024 bytes');
      expect(a.headers.connection).toBe('close');
      expect(s.broker.log).toHaveLength(0);
    });

    it('accepts a body of exactly the limit', async () => {
      const s = await startServer(fakeBroker(), { fastPath, maxBodyBytes: 1024 });
      const a = await request(`${s.url}/messaging/messages?type=1&topicID=2`, { method: 'POST', body: Buffer.alloc(1024, 1) });
      expect(a.status).toBe(200);
      expect(s.broker.log[0]!.message.data.byteLength).toBe(1024);
    });
  });

  describe('POST /messaging/batch', () => {
    const batch = (...messages: Omit<Message, 'index'>[]): Uint8Array => encodeMessages(messages.map((m) => ({ ...m, index: 0n })));

    it('publishes every message at consecutive indexes and answers the range', async () => {
      const s = await startServer(fakeBroker(), { fastPath });
      s.broker.append({ type: 1, topicID: 9n, data: data('before') });
      const body = batch({ type: 1, topicID: 5n, data: data('a') }, { type: 2, topicID: 6n, data: data('bb') }, { type: 3, topicID: 5n, data: data('ccc') });
      const a = await request(`${s.url}/messaging/batch`, { method: 'POST', body });
      expect(a.status).toBe(200);
      expect(a.headers[Headers.index]).toBe('2');
      expect(a.headers[Headers.lastIndex]).toBe('4');
      expect(s.broker.log.slice(1).map((e) => [e.index, e.message.type, e.message.topicID, Buffer.from(e.message.data).toString()])).toEqual([
        [2n, 1, 5n, 'a'],
        [3n, 2, 6n, 'bb'],
        [4n, 3, 5n, 'ccc'],
      ]);
    });

    it.each([
      ['an empty body', new Uint8Array(0)],
      ['a truncated header', new Uint8Array(10)],
      ['a truncated body', encodeMessage({ type: 1, topicID: 1n, index: 0n, data: data('hello') }).subarray(0, 25)],
    ])('answers 400 invalid batch for %s', async (_case, body) => {
      const s = await startServer(fakeBroker(), { fastPath });
      const a = await request(`${s.url}/messaging/batch`, { method: 'POST', body });
      expect(a.status).toBe(400);
      expect(a.headers[Headers.errorCode]).toBe('INVALID_BATCH');
      expect(String(a.headers[Headers.error])).toMatch(/^invalid batch/);
      expect(s.broker.log).toHaveLength(0);
    });

    it('answers 400 for a frame whose length exceeds the body limit', async () => {
      const s = await startServer(fakeBroker(), { fastPath, maxBodyBytes: 100 });
      const header = encodeMessage({ type: 1, topicID: 1n, index: 0n, data: new Uint8Array(0) });
      new DataView(header.buffer).setUint32(18, 0xffffffff);
      const a = await request(`${s.url}/messaging/batch`, { method: 'POST', body: header });
      expect(a.status).toBe(400);
      expect(a.headers[Headers.errorCode]).toBe('INVALID_BATCH');
    });

    it('answers 400 message data required when a message of the batch is empty', async () => {
      const s = await startServer(fakeBroker(), { fastPath });
      const a = await request(`${s.url}/messaging/batch`, { method: 'POST', body: batch({ type: 1, topicID: 1n, data: data('a') }, { type: 1, topicID: 1n, data: new Uint8Array(0) }) });
      expectError(a, 400, 'MESSAGE_DATA_REQUIRED', 'message data required');
      expect(s.broker.log).toHaveLength(0);
    });

    it('hands the broker each posted frame as it is (a view of the body, index field 0), validated once', async () => {
      const s = await startServer(fakeBroker(), { fastPath });
      const messages = [
        { type: 1, topicID: 5n, index: 0n, data: data('a') },
        { type: 0x7fff, topicID: 2n ** 64n - 1n, index: 123n, data: new Uint8Array(3000).fill(7) },
        { type: 3, topicID: 2n ** 33n, index: 2n ** 63n, data: data('ccc') },
      ];
      const body = encodeMessages(messages);
      const a = await request(`${s.url}/messaging/batch`, { method: 'POST', body });
      expect(a.status).toBe(200);
      const frames = s.broker.log.map((e) => e.message.frame);
      expect(frames.every((f) => f !== undefined)).toBe(true);
      // Byte for byte what was posted, but for the ignored index field, which is 0.
      expect(Buffer.concat(frames.map((f) => f!)).equals(Buffer.from(encodeMessages(messages.map((m) => ({ ...m, index: 0n })))))).toBe(true);
      expect(s.broker.log.map((e) => [e.message.type, e.message.topicID, Buffer.from(e.message.data).equals(Buffer.from(e.message.frame!.subarray(22)))])).toEqual(
        messages.map((m) => [m.type, m.topicID, true]),
      );
    });

    it.each([
      ['a truncated frame after whole ones', [data('a'), data('bb')], (body: Uint8Array) => body.subarray(0, body.byteLength - 1), 'INVALID_BATCH'],
      ['a frame over the data limit after whole ones', [data('a'), data('bb')], (body: Uint8Array) => {
        const out = Buffer.from(body);
        out.writeUInt32BE(0xffff_fff0, 23 + 18);
        return out;
      }, 'INVALID_BATCH'],
      ['an empty message before a truncated frame', [new Uint8Array(0), data('bb')], (body: Uint8Array) => body.subarray(0, body.byteLength - 1), 'INVALID_BATCH'],
      ['an empty message among whole frames', [data('a'), new Uint8Array(0), data('bb')], (body: Uint8Array) => body, 'MESSAGE_DATA_REQUIRED'],
    ])('answers 400 with the same code for %s and publishes nothing of the batch', async (_case, datas, mangle, code) => {
      const s = await startServer(fakeBroker(), { fastPath });
      const body = mangle(encodeMessages(datas.map((d) => ({ type: 1, topicID: 1n, index: 0n, data: d }))));
      const a = await request(`${s.url}/messaging/batch`, { method: 'POST', body });
      expect(a.status).toBe(400);
      expect(a.headers[Headers.errorCode]).toBe(code);
      expect(s.broker.log).toHaveLength(0);
    });

    it('redirects a non-leader with 307', async () => {
      const broker = fakeBroker();
      broker.leader = false;
      const s = await startServer(broker, { fastPath });
      const a = await request(`${s.url}/messaging/batch`, { method: 'POST', body: batch({ type: 1, topicID: 1n, data: data('a') }) });
      expect(a.status).toBe(307);
      expect(a.headers.location).toBe('http://leader.example:8086/messaging/batch');
    });

    it('answers 413 for a body over the limit', async () => {
      const s = await startServer(fakeBroker(), { fastPath, maxBodyBytes: 64 });
      const a = await request(`${s.url}/messaging/batch`, { method: 'POST', body: batch({ type: 1, topicID: 1n, data: new Uint8Array(100) }) });
      expect(a.status).toBe(413);
      expect(a.headers[Headers.errorCode]).toBe('BODY_TOO_LARGE');
    });
  });

  describe('GET /messaging/messages', () => {
    it('streams the topic from the first index at or above the one asked, then ends', async () => {
      const s = await startServer(fakeBroker(), { fastPath });
      for (let i = 0; i < 5; i++) s.broker.append({ type: 1, topicID: i % 2 === 0 ? 7n : 8n, data: data(`m${i}`) });
      const a = await request(`${s.url}/messaging/messages?topicID=7&index=2`);
      expect(a.status).toBe(200);
      expect(a.headers['content-type']).toBe('application/octet-stream');
      expect(a.headers['transfer-encoding']).toBe('chunked');
      const messages = await collect(a.body);
      expect(messages.map((m) => [m.index, Buffer.from(m.data).toString()])).toEqual([
        [3n, 'm2'],
        [5n, 'm4'],
      ]);
      expect(s.broker.closed).toBe(s.broker.opened);
    });

    it('answers 200 with an empty body for an unknown topic', async () => {
      const s = await startServer(fakeBroker(), { fastPath });
      const a = await request(`${s.url}/messaging/messages?topicID=99&index=0`);
      expect(a.status).toBe(200);
      expect(a.body.byteLength).toBe(0);
    });

    it.each([
      ['missing topicID', '?index=0', 'TOPIC_REQUIRED', 'topic required'],
      ['bad topicID and bad index (topic first)', '?topicID=a&index=b', 'TOPIC_REQUIRED', 'topic required'],
      ['missing index', '?topicID=1', 'INDEX_REQUIRED', 'index required'],
      ['index above u64', '?topicID=1&index=99999999999999999999', 'INDEX_REQUIRED', 'index required'],
    ])('answers 400 for %s', async (_case, query, code, text) => {
      const s = await startServer(fakeBroker(), { fastPath });
      expectError(await request(`${s.url}/messaging/messages${query}`), 400, code, text);
      expect(s.broker.opened).toBe(0);
    });

    it('answers 410 segment reclaimed with the first index still available', async () => {
      const s = await startServer(fakeBroker({ openTopicReader: () => Promise.reject(fail('SEGMENT_RECLAIMED', { firstIndex: 1000n })) }), { fastPath });
      const a = await request(`${s.url}/messaging/messages?topicID=1&index=5`);
      expectError(a, 410, 'SEGMENT_RECLAIMED', 'segment reclaimed');
      expect(a.headers[Headers.firstIndex]).toBe('1000');
    });

    it('answers a reader that fails synchronously the same way', async () => {
      const s = await startServer(
        fakeBroker({
          openTopicReader: () => {
            throw fail('SEGMENT_RECLAIMED', { firstIndex: 7n });
          },
        }),
        { fastPath },
      );
      const a = await request(`${s.url}/messaging/messages?topicID=1&index=5`);
      expect(a.status).toBe(410);
      expect(a.headers[Headers.firstIndex]).toBe('7');
    });

    it('breaks the body (never a clean end) when the reader fails mid-stream, and closes the reader', async () => {
      let closed = 0;
      const frames: TopicFrames = {
        async *[Symbol.asyncIterator]() {
          yield encodeMessage({ type: 1, topicID: 1n, index: 1n, data: data('one') });
          await new Promise((r) => setTimeout(r, 10));
          throw new Error('disk on fire');
        },
        close: () => {
          closed++;
        },
      };
      const s = await startServer(fakeBroker({ openTopicReader: () => frames }), { fastPath });
      await expect(request(`${s.url}/messaging/messages?topicID=1&index=0`)).rejects.toThrow();
      expect(closed).toBe(1);
      expect(s.errors).toHaveLength(1);
    });

    it('reports a reader whose close fails without harming the answer', async () => {
      const frames: TopicFrames = {
        async *[Symbol.asyncIterator]() {
          yield encodeMessage({ type: 1, topicID: 1n, index: 1n, data: data('kept') });
        },
        close: () => Promise.reject(new Error('close failed')),
      };
      const s = await startServer(fakeBroker({ openTopicReader: () => frames }), { fastPath });
      const a = await request(`${s.url}/messaging/messages?topicID=1&index=0`);
      expect(a.status).toBe(200);
      expect((await collect(a.body)).map((m) => Buffer.from(m.data).toString())).toEqual(['kept']);
      expect(s.errors).toHaveLength(1);
    });

    it('serves followers too', async () => {
      const broker = fakeBroker();
      broker.leader = false;
      broker.append({ type: 1, topicID: 1n, data: data('x') });
      const s = await startServer(broker, { fastPath });
      const a = await request(`${s.url}/messaging/messages?topicID=1&index=0`);
      expect(a.status).toBe(200);
      expect(await collect(a.body)).toHaveLength(1);
    });
  });

  describe('POST /messaging/heartbeat', () => {
    it('records the heartbeat and answers 200 with an empty body', async () => {
      const s = await startServer(fakeBroker(), { fastPath });
      const a = await request(`${s.url}/messaging/heartbeat?topicID=3&index=18446744073709551615`, { method: 'POST' });
      expect(a.status).toBe(200);
      expect(a.body.byteLength).toBe(0);
      expect(s.broker.heartbeats).toEqual([{ topicID: 3n, index: 18446744073709551615n }]);
      expect(s.broker.heartbeats[0]).not.toHaveProperty('readerId');
    });

    it('passes the optional readerID query parameter on to the broker', async () => {
      const s = await startServer(fakeBroker(), { fastPath });
      const a = await request(`${s.url}/messaging/heartbeat?topicID=3&index=4&readerID=node%20b`, { method: 'POST' });
      expect(a.status).toBe(200);
      expect(s.broker.heartbeats).toEqual([{ topicID: 3n, index: 4n, readerId: 'node b' }]);
    });

    it("answers the broker's rejection of a reader id with its status", async () => {
      const s = await startServer(fakeBroker({ heartbeat: () => Promise.reject(fail('INVALID_MESSAGE')) }), { fastPath });
      const a = await request(`${s.url}/messaging/heartbeat?topicID=3&index=4&readerID=${'x'.repeat(300)}`, { method: 'POST' });
      expectError(a, 400, 'INVALID_MESSAGE', 'invalid message');
    });

    it.each([
      ['missing topicID', '?index=1', 'TOPIC_REQUIRED', 'topic required'],
      ['missing index', '?topicID=1', 'INDEX_REQUIRED', 'index required'],
      ['empty index', '?topicID=1&index=', 'INDEX_REQUIRED', 'index required'],
    ])('answers 400 for %s', async (_case, query, code, text) => {
      const s = await startServer(fakeBroker(), { fastPath });
      expectError(await request(`${s.url}/messaging/heartbeat${query}`, { method: 'POST' }), 400, code, text);
    });

    it('redirects a non-leader with 307', async () => {
      const broker = fakeBroker();
      broker.leader = false;
      const s = await startServer(broker, { fastPath });
      const a = await request(`${s.url}/messaging/heartbeat?topicID=3&index=4`, { method: 'POST' });
      expect(a.status).toBe(307);
      expect(a.headers.location).toBe('http://leader.example:8086/messaging/heartbeat?topicID=3&index=4');
    });

    it('answers a broker error with its code', async () => {
      const s = await startServer(fakeBroker({ heartbeat: () => Promise.reject(fail('STALE_WRITE')) }), { fastPath });
      expectError(await request(`${s.url}/messaging/heartbeat?topicID=3&index=4`, { method: 'POST' }), 409, 'STALE_WRITE', 'stale write');
    });
  });

  describe('/messaging/ping', () => {
    it.each(['POST', 'GET', 'PUT', 'DELETE'])('answers %s on the leader with the cluster URLs and a newline', async (method) => {
      const s = await startServer(fakeBroker(), { fastPath });
      const a = await request(`${s.url}/messaging/ping`, { method, body: method === 'POST' || method === 'PUT' ? '' : undefined });
      expect(a.status).toBe(200);
      expect(a.body.toString()).toBe('{"urls":["http://127.0.0.1:1","http://127.0.0.1:2"]}\n');
    });

    it('redirects on a follower and answers 503 without a leader', async () => {
      const broker = fakeBroker();
      broker.leader = false;
      const s = await startServer(broker, { fastPath });
      const a = await request(`${s.url}/messaging/ping`, { method: 'POST' });
      expect(a.status).toBe(307);
      expect(a.headers.location).toBe('http://leader.example:8086/messaging/ping');
      broker.leader_ = 'not a url';
      expectError(await request(`${s.url}/messaging/ping`, { method: 'POST' }), 503, 'NOT_LEADER', 'not leader');
    });
  });

  describe('routing', () => {
    it.each([
      ['PUT', '/messaging/messages', 'GET, POST'],
      ['DELETE', '/messaging/messages', 'GET, POST'],
      ['HEAD', '/messaging/messages', 'GET, POST'],
      ['GET', '/messaging/heartbeat', 'POST'],
      ['GET', '/messaging/batch', 'POST'],
      ['POST', '/health', 'GET, HEAD'],
      ['DELETE', '/metrics', 'GET, HEAD'],
    ])('answers %s %s with 405 and Allow', async (method, path, allow) => {
      const s = await startServer(fakeBroker(), { fastPath });
      const a = await request(`${s.url}${path}`, { method });
      expect(a.status).toBe(405);
      expect(a.headers.allow).toBe(allow);
      expect(a.headers[Headers.errorCode]).toBe('METHOD_NOT_ALLOWED');
    });

    it.each(['/', '/messaging', '/messaging/messages/', '/Messaging/Messages', '/messaging/messagesx', '/raft/append', '/favicon.ico'])(
      'answers 404 for %s',
      async (path) => {
        const s = await startServer(fakeBroker(), { fastPath });
        const a = await request(`${s.url}${path}?topicID=1&index=0`);
        expectError(a, 404, 'NOT_FOUND', 'not found');
      },
    );

    it('mounts the raft handler under /raft with the path relative to the mount', async () => {
      const seen: string[] = [];
      const s = await startServer(
        fakeBroker({
          raftHandler: (req, res) => {
            seen.push(`${req.method} ${req.url}`);
            res.writeHead(200, { 'Content-Type': 'text/plain' }).end('raft ok');
          },
        }),
        { fastPath },
      );
      const a = await request(`${s.url}/raft/append?x=1`, { method: 'POST', body: 'entries' });
      expect(a.status).toBe(200);
      expect(a.body.toString()).toBe('raft ok');
      expect(seen).toEqual(['POST /append?x=1']);
      expect(s.handler.metrics.requests('raft', 200)).toBe(1);
    });

    it('mounts the raft handler of the options in preference to the broker one', async () => {
      const s = await startServer(
        fakeBroker({
          raftHandler: (_req, res) => {
            res.writeHead(200).end('broker raft');
          },
        }),
        {
          fastPath,
          raftHandler: (req, res) => {
            res.writeHead(200).end(`options raft ${req.url}`);
          },
        },
      );
      const a = await request(`${s.url}/raft/vote`, { method: 'POST' });
      expect(a.status).toBe(200);
      expect(a.body.toString()).toBe('options raft /vote');
    });

    it('answers 500 when an async raft handler rejects', async () => {
      // An async listener where a void one is declared: a mistake the handler survives.
      const asyncListener = (): Promise<void> => Promise.reject(new Error('async raft bug'));
      const s = await startServer(fakeBroker({ raftHandler: asyncListener as unknown as () => void }), { fastPath });
      expectError(await request(`${s.url}/raft/x`, { method: 'POST' }), 500, 'INTERNAL', 'internal error');
      expect(s.errors).toHaveLength(1);
    });

    it('answers 413 to a declared oversized body on a route that ignores bodies', async () => {
      const s = await startServer(fakeBroker(), { fastPath, maxBodyBytes: 10 });
      const a = await request(`${s.url}/messaging/ping`, { method: 'POST', body: 'more than ten bytes' });
      expect(a.status).toBe(413);
      expect(a.headers[Headers.errorCode]).toBe('BODY_TOO_LARGE');
    });

    it('answers 500 when the raft handler throws, and keeps serving', async () => {
      const s = await startServer(
        fakeBroker({
          raftHandler: () => {
            throw new Error('raft bug');
          },
        }),
        { fastPath },
      );
      expectError(await request(`${s.url}/raft/x`, { method: 'POST' }), 500, 'INTERNAL', 'internal error');
      expect(s.errors).toHaveLength(1);
      expect((await request(`${s.url}/health`)).status).toBe(200);
    });
  });

  describe('admin routes', () => {
    it('answers GET /health with 200', async () => {
      const s = await startServer(fakeBroker(), { fastPath });
      const a = await request(`${s.url}/health`);
      expect(a.status).toBe(200);
      expect(JSON.parse(a.body.toString())).toEqual({ status: 'ok' });
    });

    it('answers GET /ready with 200 when ready and 503 with the reason otherwise', async () => {
      let readiness: { ready: boolean; reason?: string } = { ready: true };
      const s = await startServer(fakeBroker({ ready: () => readiness }), { fastPath });
      expect((await request(`${s.url}/ready`)).status).toBe(200);
      readiness = { ready: false, reason: 'no leader' };
      const a = await request(`${s.url}/ready`);
      expect(a.status).toBe(503);
      expect(JSON.parse(a.body.toString())).toEqual({ ready: false, reason: 'no leader' });
    });

    it('answers GET /status with leadership, URLs and the broker status, bigints as strings', async () => {
      const s = await startServer(fakeBroker(), { fastPath });
      const a = await request(`${s.url}/status`);
      expect(a.status).toBe(200);
      expect(JSON.parse(a.body.toString())).toEqual({
        isLeader: true,
        leaderURL: 'http://leader.example:8086',
        urls: ['http://127.0.0.1:1', 'http://127.0.0.1:2'],
        ready: { ready: true },
        streams: 0,
        members: [{ id: '1', url: 'http://127.0.0.1:1' }],
        topics: [],
      });
    });

    it('answers GET /metrics in the Prometheus text format with the broker and handler numbers', async () => {
      const s = await startServer(fakeBroker(), { fastPath });
      await request(`${s.url}/messaging/messages?type=1&topicID=12`, { method: 'POST', body: 'abc' });
      await request(`${s.url}/messaging/messages?type=1`, { method: 'POST', body: 'abc' });
      await request(`${s.url}/messaging/messages?topicID=12&index=0`);
      const a = await request(`${s.url}/metrics`);
      expect(a.status).toBe(200);
      expect(a.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
      const text = a.body.toString();
      for (const line of [
        'msg_http_requests_total{route="publish",code="200"} 1',
        'msg_http_requests_total{route="publish",code="400"} 1',
        'msg_http_requests_total{route="stream",code="200"} 1',
        'msg_http_request_duration_seconds_count{route="publish"} 2',
        'msg_http_published_messages_total 1',
        'msg_http_published_bytes_total 3',
        'msg_http_streamed_bytes_total 25',
        'msg_raft_term 3',
        'msg_raft_commit_index 1',
        'msg_raft_applied_index 1',
        'msg_topic_last_index{topic_id="12"} 1',
        'msg_topic_bytes{topic_id="12"} 25',
        'msg_broker_checkpoint_fsync_duration_seconds_bucket{le="0.001"} 2',
        'msg_broker_checkpoint_fsync_duration_seconds_bucket{le="+Inf"} 3',
        'msg_broker_checkpoint_fsync_duration_seconds_count 3',
        '# TYPE msg_http_requests_total counter',
        '# TYPE msg_raft_term gauge',
        '# TYPE msg_broker_checkpoint_fsync_duration_seconds histogram',
      ]) {
        expect(text.split('\n')).toContain(line);
      }
      // The checkpoint fsyncs are no longer shown as "log fsyncs".
      expect(text).not.toContain('msg_fsync_duration_seconds');
      // Valid text exposition: every family with HELP and TYPE, well-formed samples, cumulative histograms.
      const families = parsePrometheusText(text);
      expect(families.get('msg_broker_checkpoint_fsync_duration_seconds')?.help).toMatch(/checkpoint fsyncs/);
      expect(sampleValue(families, 'msg_http_request_duration_seconds_count', { route: 'publish' })).toBe(2);
    });

    it('shows replication lag, raft counters and per-topic numbers the broker reports', async () => {
      const histogram = (count: number) => ({ buckets: [{ le: 0.001, count }, { le: 0.01, count }], count, sumSeconds: count * 0.0005 });
      const s = await startServer(
        fakeBroker({
          metrics: () => ({
            term: 4n,
            commitIndex: 90n,
            appliedIndex: 80n,
            topics: [{ topicID: 12n, lastIndex: 70n, bytes: 100, messagesApplied: 5, bytesApplied: 50, openStreams: 2, readers: [{ id: 'r1', index: 60n }, { id: '', index: 65n }] }],
            snapshots: { taken: 1, takenBytes: 300, takenSeconds: 0.5, restored: 0, restoredBytes: 0, restoredSeconds: 0 },
            raft: {
              replication: {
                role: 'leader',
                leaderCommitIndex: 90,
                lagEntries: 10,
                lagSeconds: 0.25,
                lastLeaderContactMs: 0,
                followers: [
                  { url: 'http://f1', matchIndex: 90, lagEntries: 0, lagSeconds: 0, lastContactMs: 5, snapshot: null },
                  { url: 'http://f2', matchIndex: 3, lagEntries: 87, lagSeconds: 12.5, lastContactMs: null, snapshot: { sentBytes: 10, totalBytes: 40 } },
                ],
              },
              stats: { logFsync: histogram(7), commitLatency: histogram(4), snapshotSendDuration: histogram(1), electionsStarted: 2, leaderChanges: 3, snapshotsSent: 1, snapshotBytesSent: 40 },
            },
          }),
        }),
        { fastPath },
      );
      const text = (await request(`${s.url}/metrics`)).body.toString();
      const families = parsePrometheusText(text);
      const v = (name: string, labels: Record<string, string> = {}) => sampleValue(families, name, labels);
      expect(families.get('msg_raft_log_fsync_duration_seconds')?.type).toBe('histogram');
      expect(v('msg_raft_log_fsync_duration_seconds_count')).toBe(7);
      expect(v('msg_raft_log_fsync_duration_seconds_bucket', { le: '0.001' })).toBe(7);
      expect(v('msg_raft_commit_duration_seconds_count')).toBe(4);
      expect(v('msg_raft_snapshot_send_duration_seconds_count')).toBe(1);
      expect(v('msg_raft_apply_lag_entries')).toBe(10);
      expect(v('msg_raft_lag_entries')).toBe(10);
      expect(v('msg_raft_lag_seconds')).toBe(0.25);
      expect(v('msg_raft_leader_commit_index')).toBe(90);
      expect(v('msg_raft_leader_contact_seconds')).toBe(0);
      expect(v('msg_raft_role', { role: 'leader' })).toBe(1);
      expect(v('msg_raft_role', { role: 'follower' })).toBe(0);
      expect(v('msg_raft_elections_started_total')).toBe(2);
      expect(v('msg_raft_leader_changes_total')).toBe(3);
      expect(v('msg_raft_snapshots_sent_total')).toBe(1);
      expect(v('msg_raft_snapshot_sent_bytes_total')).toBe(40);
      expect(v('msg_raft_follower_match_index', { follower: 'http://f2' })).toBe(3);
      expect(v('msg_raft_follower_lag_entries', { follower: 'http://f2' })).toBe(87);
      expect(v('msg_raft_follower_lag_seconds', { follower: 'http://f2' })).toBe(12.5);
      expect(v('msg_raft_follower_last_contact_seconds', { follower: 'http://f1' })).toBe(0.005);
      expect(v('msg_raft_follower_last_contact_seconds', { follower: 'http://f2' })).toBeUndefined();
      expect(v('msg_raft_follower_snapshot_sent_bytes', { follower: 'http://f2' })).toBe(10);
      expect(v('msg_raft_follower_snapshot_total_bytes', { follower: 'http://f2' })).toBe(40);
      expect(v('msg_raft_follower_snapshot_total_bytes', { follower: 'http://f1' })).toBeUndefined();
      expect(v('msg_topic_messages_applied_total', { topic_id: '12' })).toBe(5);
      expect(v('msg_topic_bytes_applied_total', { topic_id: '12' })).toBe(50);
      expect(v('msg_topic_open_streams', { topic_id: '12' })).toBe(2);
      expect(v('msg_topic_reader_index', { topic_id: '12', reader: 'r1' })).toBe(60);
      expect(v('msg_topic_reader_index', { topic_id: '12', reader: '' })).toBe(65);
      expect(v('msg_broker_snapshots_total', { kind: 'taken' })).toBe(1);
      expect(v('msg_broker_snapshot_bytes_total', { kind: 'taken' })).toBe(300);
      // No process metrics unless the embedding server asks for them.
      expect(families.has('msg_process_open_fds')).toBe(false);
      s.handler.metrics.collectProcessMetrics();
      const withProcess = parsePrometheusText((await request(`${s.url}/metrics`)).body.toString());
      for (const name of ['msg_nodejs_eventloop_lag_seconds', 'msg_nodejs_heap_size_used_bytes', 'msg_nodejs_gc_duration_seconds', 'msg_process_resident_memory_bytes']) {
        expect(withProcess.has(name)).toBe(true);
      }
      if (process.platform === 'linux') expect(withProcess.has('msg_process_open_fds')).toBe(true);
    });

    it('renders the deprecated fsync field under the checkpoint fsync name', async () => {
      const s = await startServer(
        fakeBroker({ metrics: () => ({ term: 1n, commitIndex: 0n, appliedIndex: 0n, topics: [], fsync: { buckets: [{ le: 0.01, count: 1 }], count: 1, sumSeconds: 0.002 } }) }),
        { fastPath },
      );
      const families = parsePrometheusText((await request(`${s.url}/metrics`)).body.toString());
      expect(sampleValue(families, 'msg_broker_checkpoint_fsync_duration_seconds_count')).toBe(1);
      // Without replication numbers, no raft lag metric has a sample.
      expect(families.get('msg_raft_lag_entries')?.samples).toEqual([]);
    });

    it('answers 500 when the broker fails to report metrics', async () => {
      const s = await startServer(
        fakeBroker({
          metrics: () => {
            throw new Error('boom');
          },
        }),
        { fastPath },
      );
      expectError(await request(`${s.url}/metrics`), 500, 'INTERNAL', 'internal error');
    });
  });
});

describe('createHandler', () => {
  it('rejects a body limit that is not a positive integer', () => {
    expect(() => createHandler(fakeBroker(), { maxBodyBytes: 0 })).toThrow(RangeError);
    expect(() => createHandler(fakeBroker(), { maxBodyBytes: 1.5 })).toThrow(RangeError);
  });

  it('does no I/O when built: nothing listens and no broker method is called', () => {
    const calls: string[] = [];
    const broker = fakeBroker();
    const spy = new Proxy(broker, {
      get(target, key, receiver) {
        const value: unknown = Reflect.get(target, key, receiver);
        if (typeof value === 'function') calls.push(String(key));
        return value;
      },
    });
    createHandler(spy);
    expect(calls.filter((c) => c !== 'raftHandler')).toEqual([]);
  });

  it('answers stream requests with 503 broker already closed after close()', async () => {
    const s = await startServer(fakeBroker());
    s.handler.close();
    s.handler.close();
    expect((await request(`${s.url}/messaging/messages?topicID=1&index=0`)).headers[Headers.errorCode]).toBe('BROKER_CLOSED');
    expect((await request(`${s.url}/health`)).status).toBe(200);
  });
});

describe('a thrown BrokerError with a detailed message', () => {
  it('keeps the original text for the original codes and the detail for ours', async () => {
    const s = await startServer(
      fakeBroker({
        publish: () => Promise.reject(new BrokerError('NO_LEADER', { message: 'no leader: election in progress' })),
        heartbeat: () => Promise.reject(new BrokerError('TIMEOUT', { message: 'timeout: commit took over 5000 ms\nsecond line' })),
      }),
    );
    const a = await request(`${s.url}/messaging/messages?type=1&topicID=1`, { method: 'POST', body: 'x' });
    expect(a.headers[Headers.error]).toBe('no leader');
    const b = await request(`${s.url}/messaging/heartbeat?topicID=1&index=1`, { method: 'POST' });
    expect(b.status).toBe(504);
    expect(b.headers[Headers.error]).toBe('timeout: commit took over 5000 ms second line');
  });
});
