import { afterEach, describe, expect, it } from '@jest/globals';
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import { sleep, waitFor } from '@msg/test-utils';
import { Headers, MessageDecoder, type Message } from '@msg/wire';
import { DEFAULT_LIMITS, descriptorsNeeded, fitToFileLimit, Limits, REFUSED_BACKLOG, RESERVED_DESCRIPTORS, type LimitOptions, type TopicFrames } from '../src/index.js';
import { fakeBroker, startServer, type FakeBroker, type TestServer } from './fake-broker.js';
import { request } from './http-client.js';

const data = (text: string): Uint8Array => new TextEncoder().encode(text);
const STREAM = '/messaging/messages?topicID=1&index=0&streaming=true';

/** Everything a test opened, destroyed after it. */
const opened: { destroy(): void }[] = [];
afterEach(() => {
  for (const o of opened.splice(0)) o.destroy();
});

/** A handler with `limits` on a loopback server (connection limits and timeouts attached). */
function serve(limits: LimitOptions, broker: FakeBroker = fakeBroker(), fastPath = true): Promise<TestServer> {
  return startServer(broker, { limits: new Limits(limits), fastPath });
}

interface Opened {
  req: ClientRequest;
  res: IncomingMessage;
}

/** Sends a GET (fresh connection, optionally from another loopback address) and resolves once the answer's headers are in. */
function open(url: string, options: { localAddress?: string; headers?: Record<string, string> } = {}): Promise<Opened> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { agent: false, ...options });
    opened.push(req);
    req.once('error', reject);
    req.once('response', (res) => resolve({ req, res }));
    req.end();
  });
}

/** A raw TCP connection to the server, destroyed after the test. */
function rawConnect(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => resolve(socket));
    opened.push(socket);
    socket.once('error', reject);
  });
}

/** Everything `socket` receives until the server closes it; rejects after `timeoutMs`. */
function untilClosed(socket: Socket, timeoutMs: number): Promise<{ bytes: Buffer; afterMs: number }> {
  const start = performance.now();
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`still open after ${timeoutMs} ms; got ${JSON.stringify(Buffer.concat(chunks).toString('latin1'))}`)), timeoutMs);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve({ bytes: Buffer.concat(chunks), afterMs: performance.now() - start });
    });
  });
}

/** The value of one sample of `/metrics`, e.g. `msg_http_streams_refused_total{limit="streams"}`. */
async function metric(s: TestServer, sample: string): Promise<number | undefined> {
  const text = (await request(`${s.url}/metrics`)).body.toString();
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  return line === undefined ? undefined : Number(line.slice(sample.length + 1));
}

function expectRefused(res: IncomingMessage, code: string): void {
  expect(res.statusCode).toBe(503);
  expect(res.headers[Headers.errorCode]).toBe(code);
  expect(res.headers['retry-after']).toBe('1');
  expect(res.headers.connection).toBe('close');
  res.resume();
}

/** A streaming reader that yields `chunkBytes` chunks forever; counts closes. */
function endlessFrames(chunkBytes: number): { frames: TopicFrames; closed: () => number } {
  let closed = 0;
  const chunk = new Uint8Array(chunkBytes);
  const frames: TopicFrames = {
    async *[Symbol.asyncIterator]() {
      for (let i = 0; i < 10_000_000 && closed === 0; i++) yield chunk;
    },
    close: () => {
      closed++;
    },
  };
  return { frames, closed: () => closed };
}

describe('Limits', () => {
  it('has documented defaults', () => {
    expect(new Limits().settings).toEqual({
      maxConnections: 10_000,
      maxConnectionsPerClient: 0,
      maxStreams: 5_000,
      maxStreamsPerClient: 1_000,
      streamStallMs: 60_000,
      headersTimeoutMs: 10_000,
      requestTimeoutMs: 60_000,
      retryAfterSeconds: 1,
    });
    expect(new Limits().serverOptions).toEqual({ headersTimeout: 10_000, requestTimeout: 60_000, connectionsCheckingInterval: 1000 });
  });

  it.each([
    [{ maxStreams: -1 }],
    [{ maxConnections: 1.5 }],
    [{ streamStallMs: Number.NaN }],
    [{ retryAfterSeconds: 0 }],
    [{ headersTimeoutMs: 2000, requestTimeoutMs: 1000 }],
  ])('refuses %p with a RangeError', (options) => {
    expect(() => new Limits(options)).toThrow(RangeError);
  });

  it('checks the timeouts at a quarter of the shorter one, between 10 ms and 1 s', () => {
    expect(new Limits({ headersTimeoutMs: 200, requestTimeoutMs: 1000 }).serverOptions.connectionsCheckingInterval).toBe(50);
    expect(new Limits({ headersTimeoutMs: 0, requestTimeoutMs: 0 }).serverOptions.connectionsCheckingInterval).toBe(1000);
    expect(new Limits({ headersTimeoutMs: 20, requestTimeoutMs: 20 }).serverOptions.connectionsCheckingInterval).toBe(10);
  });
});

describe('fitToFileLimit', () => {
  it('keeps the defaults when the file limit has room for them', () => {
    expect(fitToFileLimit(1_048_576)).toEqual({ maxConnections: 10_000, maxStreams: 5_000 });
    expect(descriptorsNeeded(new Limits().settings)).toBe(10_000 + 5_000 + REFUSED_BACKLOG + RESERVED_DESCRIPTORS);
  });

  it('lowers them so that connections, stream readers, the refused backlog and the reserve fit under a small limit', () => {
    const fitted = fitToFileLimit(1024);
    expect(fitted).toEqual({ maxConnections: 470, maxStreams: 234 });
    expect(descriptorsNeeded(new Limits(fitted).settings)).toBeLessThanOrEqual(1024);
    expect(fitToFileLimit(100)).toEqual({ maxConnections: 1, maxStreams: 1 });
  });

  it('cannot bound the descriptors of a limit turned off', () => {
    expect(descriptorsNeeded({ ...DEFAULT_LIMITS, maxConnections: 0 })).toBeUndefined();
    expect(descriptorsNeeded({ ...DEFAULT_LIMITS, maxStreams: 0 })).toBeUndefined();
  });
});

describe.each([
  ['the fast path', true],
  ['express only', false],
])('the stream limit through %s', (_name, fastPath) => {
  it('answers 503 TOO_MANY_STREAMS with Retry-After past maxStreams, and admits again once a stream ends', async () => {
    const s = await serve({ maxStreams: 2 }, fakeBroker(), fastPath);
    const a = await open(`${s.url}${STREAM}`);
    const b = await open(`${s.url}${STREAM}`);
    expect([a.res.statusCode, b.res.statusCode]).toEqual([200, 200]);
    const refused = await open(`${s.url}${STREAM}`);
    expectRefused(refused.res, 'TOO_MANY_STREAMS');
    expect(s.broker.opened).toBe(2);
    expect(await metric(s, 'msg_http_streams_refused_total{limit="streams"}')).toBe(1);
    expect(await metric(s, 'msg_http_streams_admitted')).toBe(2);

    a.req.destroy();
    await waitFor(async () => (await metric(s, 'msg_http_streams_admitted')) === 1);
    const c = await open(`${s.url}${STREAM}`);
    expect(c.res.statusCode).toBe(200);
  });
});

describe('the per-client stream limit', () => {
  it('counts streams by remote address by default', async () => {
    const s = await serve({ maxStreams: 10, maxStreamsPerClient: 1 });
    expect((await open(`${s.url}${STREAM}`)).res.statusCode).toBe(200);
    expectRefused((await open(`${s.url}${STREAM}`)).res, 'TOO_MANY_STREAMS');
    // Another address of the loopback network is another client.
    expect((await open(`${s.url}${STREAM}`, { localAddress: '127.0.0.2' })).res.statusCode).toBe(200);
    expect(await metric(s, 'msg_http_streams_refused_total{limit="streams_per_client"}')).toBe(1);
    expect(await metric(s, 'msg_http_streams_refused_total{limit="streams"}')).toBe(0);
  });

  it('takes the identity from a pluggable function', async () => {
    const s = await serve({ maxStreamsPerClient: 1, identify: (req) => String(req.headers['x-client'] ?? 'anonymous') });
    expect((await open(`${s.url}${STREAM}`, { headers: { 'x-client': 'alice' } })).res.statusCode).toBe(200);
    expectRefused((await open(`${s.url}${STREAM}`, { headers: { 'x-client': 'alice' } })).res, 'TOO_MANY_STREAMS');
    expect((await open(`${s.url}${STREAM}`, { headers: { 'x-client': 'bob' } })).res.statusCode).toBe(200);
  });

  it('leaves publishes alone', async () => {
    const s = await serve({ maxStreams: 1 });
    expect((await open(`${s.url}${STREAM}`)).res.statusCode).toBe(200);
    const a = await request(`${s.url}/messaging/messages?type=1&topicID=1`, { method: 'POST', body: 'x' });
    expect(a.status).toBe(200);
  });
});

describe('the connection limit', () => {
  it('answers 503 TOO_MANY_CONNECTIONS on a connection past maxConnections and closes it; a freed slot is reused', async () => {
    const s = await serve({ maxConnections: 2 });
    const held = [await rawConnect(s.port), await rawConnect(s.port)];
    await waitFor(async () => (await new Promise<number>((r) => s.server.getConnections((_e, n) => r(n)))) === 2);
    const refused = await open(`${s.url}/health`);
    expectRefused(refused.res, 'TOO_MANY_CONNECTIONS');
    await new Promise((resolve) => refused.res.socket.once('close', resolve));

    held[0]!.destroy();
    await sleep(50);
    const a = await request(`${s.url}/health`);
    expect(a.status).toBe(200);
    held[1]!.destroy();
    expect(await metric(s, 'msg_http_connections_refused_total{limit="connections",answered="true"}')).toBe(1);
  });

  it('quotes the limit of the listener that refused the connection, not the handler\'s (a peer listener has its own)', async () => {
    const s = await serve({ maxConnections: 100 });
    new Limits({ maxConnections: 1 }).attach(s.server); // another listener's limits, on the same handler
    const held = await rawConnect(s.port);
    await waitFor(async () => (await new Promise<number>((r) => s.server.getConnections((_e, n) => r(n)))) === 1);
    const refused = await open(`${s.url}/health`);
    expectRefused(refused.res, 'TOO_MANY_CONNECTIONS');
    expect(refused.res.headers[Headers.error]).toBe('too many connections: the broker holds at most 1 in all');
    held.destroy();
  });

  it('limits connections per remote address when asked to', async () => {
    const s = await serve({ maxConnections: 10, maxConnectionsPerClient: 1 });
    await rawConnect(s.port);
    await sleep(20);
    expectRefused((await open(`${s.url}/health`)).res, 'TOO_MANY_CONNECTIONS');
    expect((await open(`${s.url}/health`, { localAddress: '127.0.0.2' })).res.statusCode).toBe(200);
  });

  it('closes a refused connection that sends nothing within a second', async () => {
    const s = await serve({ maxConnections: 1 });
    await rawConnect(s.port);
    await sleep(20);
    const idle = await rawConnect(s.port);
    const { bytes, afterMs } = await untilClosed(idle, 3000);
    expect(bytes.byteLength).toBe(0);
    expect(afterMs).toBeLessThan(2000);
  });

  it('keeps at most 64 refused connections waiting for their request, closing the others at once', async () => {
    const s = await serve({ maxConnections: 1 });
    const held = await rawConnect(s.port);
    await sleep(20);
    const extra = await Promise.all(Array.from({ length: 100 }, () => rawConnect(s.port)));
    await sleep(100);
    const connections = (): Promise<number> => new Promise<number>((r) => s.server.getConnections((_e, n) => r(n)));
    expect(await connections()).toBeLessThanOrEqual(1 + 64);
    for (const socket of [held, ...extra]) socket.destroy();
    await waitFor(async () => (await connections()) === 0);
    expect(await metric(s, 'msg_http_connections_refused_total{limit="connections",answered="false"}')).toBe(100 - 64);
  });
});

describe('slow clients', () => {
  it('answers 408 and closes a connection whose headers do not complete within headersTimeoutMs', async () => {
    const s = await serve({ headersTimeoutMs: 300, requestTimeoutMs: 5000 });
    const socket = await rawConnect(s.port);
    socket.write('GET /health HTTP/1.1\r\nHost: x\r\n');
    const { bytes, afterMs } = await untilClosed(socket, 3000);
    expect(bytes.toString('latin1')).toMatch(/^HTTP\/1\.1 408 /);
    expect(afterMs).toBeGreaterThanOrEqual(250);
    expect(await metric(s, 'msg_http_client_errors_total{kind="timeout"}')).toBe(1);
  });

  it('closes a request whose body does not arrive within requestTimeoutMs', async () => {
    const s = await serve({ headersTimeoutMs: 200, requestTimeoutMs: 400 });
    const socket = await rawConnect(s.port);
    socket.write('POST /messaging/messages?type=1&topicID=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhalf');
    const { bytes, afterMs } = await untilClosed(socket, 3000);
    expect(bytes.toString('latin1')).toMatch(/^HTTP\/1\.1 408 /);
    expect(afterMs).toBeGreaterThanOrEqual(350);
    expect(s.broker.log).toHaveLength(0);
  });

  it('answers garbage 400 and oversized headers 431, as node:http does by default', async () => {
    const s = await serve({});
    const garbage = await rawConnect(s.port);
    garbage.write('NOT HTTP\r\n\r\n');
    expect((await untilClosed(garbage, 3000)).bytes.toString('latin1')).toBe('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    const big = await rawConnect(s.port);
    big.write(`GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    expect((await untilClosed(big, 3000)).bytes.toString('latin1')).toBe('HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n');
    expect(await metric(s, 'msg_http_client_errors_total{kind="bad_request"}')).toBe(1);
    expect(await metric(s, 'msg_http_client_errors_total{kind="headers_too_large"}')).toBe(1);
  });

  it('keeps a streaming GET open well beyond both timeouts, delivering what comes later', async () => {
    const s = await serve({ headersTimeoutMs: 100, requestTimeoutMs: 200 });
    const { res } = await open(`${s.url}${STREAM}`);
    expect(res.statusCode).toBe(200);
    const decoder = new MessageDecoder();
    const messages: Message[] = [];
    let ended = false;
    res.on('data', (chunk: Buffer) => messages.push(...decoder.push(chunk)));
    res.once('close', () => (ended = true));
    await sleep(1200);
    expect(ended).toBe(false);
    s.broker.append({ type: 1, topicID: 1n, data: data('late') });
    await waitFor(() => messages.length === 1);
    expect(Buffer.from(messages[0]!.data).toString()).toBe('late');
  });
});

describe('stalled streams', () => {
  it('ends a stream whose client reads nothing while there is data to send, after streamStallMs', async () => {
    const endless = endlessFrames(64 * 1024);
    const s = await serve({ streamStallMs: 300 }, fakeBroker({ openTopicReader: () => endless.frames }));
    const socket = await rawConnect(s.port);
    socket.write(`GET ${STREAM} HTTP/1.1\r\nHost: x\r\n\r\n`);
    await new Promise((resolve) => socket.once('data', resolve));
    socket.pause();
    const start = performance.now();
    await waitFor(() => endless.closed() === 1, { timeoutMs: 20_000, message: 'the stalled stream to end' });
    // The stall starts once the socket buffers are full: a little after the client stopped reading.
    expect(performance.now() - start).toBeGreaterThanOrEqual(300);
    expect(await metric(s, 'msg_http_streams_stalled_total')).toBe(1);
    expect(await metric(s, 'msg_http_streams_admitted')).toBe(0);
  });

  it('never ends a stream that waits for new messages, however long', async () => {
    const s = await serve({ streamStallMs: 100 });
    const { res } = await open(`${s.url}${STREAM}`);
    let ended = false;
    res.once('close', () => (ended = true));
    const decoder = new MessageDecoder();
    const messages: Message[] = [];
    res.on('data', (chunk: Buffer) => messages.push(...decoder.push(chunk)));
    await sleep(800);
    expect(ended).toBe(false);
    s.broker.append({ type: 1, topicID: 1n, data: data('later') });
    await waitFor(() => messages.length === 1);
    expect(await metric(s, 'msg_http_streams_stalled_total')).toBe(0);
  });

  it('does not end a slow client that keeps reading', async () => {
    const endless = endlessFrames(16 * 1024);
    const s = await serve({ streamStallMs: 600 }, fakeBroker({ openTopicReader: () => endless.frames }));
    const socket = await rawConnect(s.port);
    socket.write(`GET ${STREAM} HTTP/1.1\r\nHost: x\r\n\r\n`);
    // Read in bursts: 50 ms of reading every 150 ms, for 3 s: slower than the server could send, never stuck.
    let closed = false;
    socket.once('close', () => (closed = true));
    socket.on('data', () => undefined);
    for (let i = 0; i < 20; i++) {
      socket.pause();
      await sleep(100);
      socket.resume();
      await sleep(50);
    }
    expect(closed).toBe(false);
    expect(endless.closed()).toBe(0);
    expect(await metric(s, 'msg_http_streams_stalled_total')).toBe(0);
  });
});

describe('/metrics', () => {
  it('shows every limit, the open connections and the admitted streams', async () => {
    const s = await serve({ maxConnections: 7, maxConnectionsPerClient: 5, maxStreams: 6, maxStreamsPerClient: 3, streamStallMs: 4000, headersTimeoutMs: 2000, requestTimeoutMs: 3000 });
    await open(`${s.url}${STREAM}`);
    const text = (await request(`${s.url}/metrics`)).body.toString();
    for (const line of [
      'msg_http_limit{limit="connections"} 7',
      'msg_http_limit{limit="connections_per_client"} 5',
      'msg_http_limit{limit="streams"} 6',
      'msg_http_limit{limit="streams_per_client"} 3',
      'msg_http_timeout_seconds{timeout="headers"} 2',
      'msg_http_timeout_seconds{timeout="request"} 3',
      'msg_http_timeout_seconds{timeout="stream_stall"} 4',
      'msg_http_connections_open 2',
      'msg_http_streams_admitted 1',
      'msg_http_streams_stalled_total 0',
    ]) {
      expect(text.split('\n')).toContain(line);
    }
    expect(text).toContain('# TYPE msg_http_connections_refused_total counter');
    expect(text).toContain('# TYPE msg_http_client_errors_total counter');
  });
});
