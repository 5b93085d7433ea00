import { describe, expect, it } from '@jest/globals';
import { Agent, request as httpRequest } from 'node:http';
import fc from 'fast-check';
import { encodeMessages, Headers } from '@msg/wire';
import { fakeBroker, startServer, type TestServer } from './fake-broker.js';
import { parseRaw, rawExchange, request, type Answer } from './http-client.js';

const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'] as const;
const PATHS = [
  '/messaging/messages',
  '/messaging/batch',
  '/messaging/heartbeat',
  '/messaging/ping',
  '/health',
  '/ready',
  '/metrics',
  '/status',
  '/raft/append',
  '/raft',
  '/',
  '/messaging/',
  '/messaging/messages/',
  '/MESSAGING/messages',
  '/messaging/messages%2F',
  '/%ff%fe',
  '/messaging/../messaging/messages',
];
const NAMES = ['type', 'topicID', 'index', 'streaming', 'x', 'topicid', ''];
const VALUES = fc.oneof(
  fc.constantFrom('0', '1', '7', '65535', '65536', '18446744073709551615', '18446744073709551616', '-1', '+1', '1e3', '0x10', '%201', '+', '', 'true', '%00', '%ZZ', '99999999999999999999999999999999999999999999999999999999999999999'),
  fc.bigInt({ min: 0n, max: (1n << 70n) }).map(String),
  fc.string({ maxLength: 12 }).map(encodeURIComponent),
);
const BODY = fc.oneof(
  fc.constant(new Uint8Array(0)),
  fc.uint8Array({ maxLength: 300 }),
  fc
    .array(fc.record({ type: fc.integer({ min: 0, max: 0xffff }), topicID: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), data: fc.uint8Array({ maxLength: 40 }) }), {
      maxLength: 5,
    })
    .map((messages) => encodeMessages(messages.map((m) => ({ ...m, index: 0n })))),
);

const REQUEST = fc.record({
  method: fc.constantFrom(...METHODS),
  path: fc.oneof(fc.constantFrom(...PATHS), fc.stringMatching(/^\/[a-zA-Z0-9/_.~%-]{0,30}$/)),
  query: fc.array(fc.tuple(fc.constantFrom(...NAMES), VALUES), { maxLength: 4 }),
  body: BODY,
});

function send(agent: Agent, s: TestServer, r: { method: string; path: string; query: [string, string][]; body: Uint8Array }): Promise<Answer> {
  const query = r.query.map(([k, v]) => `${k}=${v}`).join('&');
  const path = query ? `${r.path}?${query}` : r.path;
  return new Promise<Answer>((resolve, reject) => {
    const withBody = !(r.method === 'GET' || r.method === 'HEAD' || r.method === 'OPTIONS');
    // An explicit length: node's client would send a DELETE body with no framing at all.
    const headers = withBody ? { 'Content-Length': String(r.body.byteLength) } : {};
    const req = httpRequest({ host: '127.0.0.1', port: s.port, method: r.method, path, agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) });
      });
    });
    const timer = setTimeout(() => req.destroy(new Error(`no answer to ${r.method} ${path} within 5 s`)), 5000);
    req.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    if (withBody) req.end(r.body);
    else req.end();
  });
}

describe('fuzzing the handler', () => {
  it.each([
    ['the fast path', true],
    ['express only', false],
  ])('answers random requests through %s with well-formed 2xx/4xx, never 5xx nor a hang, and keeps serving', async (_name, fastPath) => {
    const broker = fakeBroker({
      raftHandler: (_req, res) => {
        res.writeHead(204).end();
      },
    });
    // Streams would stay open forever; the fuzzer reads every answer to its end.
    const open = broker.openTopicReader;
    broker.openTopicReader = (topicID, index) => open(topicID, index, { streaming: false });
    for (let i = 0; i < 3; i++) broker.append({ type: 1, topicID: BigInt(i), data: new Uint8Array([i]) });
    const s = await startServer(broker, { fastPath, maxBodyBytes: 256 });
    const agent = new Agent({ keepAlive: true, maxSockets: 4 });
    const statuses = new Set<number>();
    try {
      await fc.assert(
        fc.asyncProperty(REQUEST, async (r) => {
          const answer = await send(agent, s, r);
          statuses.add(answer.status);
          expect(answer.status).toBeGreaterThanOrEqual(200);
          expect(answer.status).toBeLessThan(500);
          if (answer.status >= 400) {
            expect(answer.headers[Headers.errorCode]).toMatch(/^[A-Z_]+$/);
            if (r.method !== 'HEAD') expect(answer.body.toString()).toBe(`${String(answer.headers[Headers.error])}\n`);
          }
        }),
        { numRuns: 300, seed: 20261124, interruptAfterTimeLimit: 20_000 },
      );
      expect(s.errors).toEqual([]);
      // The generator reaches the routes, not only their error paths.
      for (const status of [200, 400, 404, 405]) expect(statuses).toContain(status);
      expect((await request(`${s.url}/health`)).status).toBe(200);
      expect((await request(`${s.url}/messaging/messages?type=1&topicID=1`, { method: 'POST', body: 'still here' })).status).toBe(200);
    } finally {
      agent.destroy();
    }
  });

  it('keeps serving after random bytes on raw connections', async () => {
    const s = await startServer();
    const garbage = fc.oneof(
      fc.uint8Array({ minLength: 1, maxLength: 200 }),
      fc.string({ maxLength: 120 }).map((t) => `${t}\r\n\r\n`),
      fc.constantFrom(
        'GET /messaging/messages?topicID=1&index=0 HTTP/1.1\r\nHost: b\r\nContent-Length: -1\r\n\r\n',
        'POST /messaging/messages?type=1&topicID=1 HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
        'POST /messaging/batch HTTP/1.1\r\nHost: b\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n12345',
        'GET /messaging/messages?topicID=1&index=0 HTTP/9.9\r\n\r\n',
        'GET http://evil/messaging/ping HTTP/1.1\r\nHost: b\r\n\r\n',
        'GET /\x00 HTTP/1.1\r\n\r\n',
      ),
    );
    await fc.assert(
      fc.asyncProperty(garbage, async (bytes) => {
        // End our side so the server sees the end of a partial request; the
        // server either answers (4xx) or closes; it must not hang or crash.
        const raw = await rawExchange(s.port, bytes, 5000, true).catch((error: NodeJS.ErrnoException) => {
          if (error.code === 'ECONNRESET' || error.code === 'EPIPE') return Buffer.alloc(0);
          throw error;
        });
        const statusLine = raw.toString('latin1').split('\r\n')[0] ?? '';
        if (statusLine.startsWith('HTTP/1.1 ')) expect(statusLine).not.toMatch(/^HTTP\/1\.1 5/);
      }),
      { numRuns: 150, seed: 7, interruptAfterTimeLimit: 20_000 },
    );
    expect(s.errors).toEqual([]);
    expect(parseRaw(await rawExchange(s.port, 'GET /health HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n')).statusLine).toBe('HTTP/1.1 200 OK');
  });
});
