import { afterEach, describe, expect, it } from '@jest/globals';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BrokerError, Client, isClientError } from '../src/index.js';

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(
    servers.splice(0).map((server) => {
      const closed = new Promise((resolve) => server.close(resolve));
      server.closeAllConnections();
      return closed;
    }),
  );
});

/** A server that records each request's Authorization header and answers with `answer`. */
async function serve(answer: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string; seen: (string | undefined)[] }> {
  const seen: (string | undefined)[] = [];
  const server = createServer((req, res) => {
    seen.push(req.headers.authorization);
    req.resume();
    req.on('end', () => answer(req, res));
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

const ok = (_req: IncomingMessage, res: ServerResponse): void => {
  res.writeHead(200, { 'X-Broker-Index': '7', 'Content-Length': '0' });
  res.end();
};

describe('Client token', () => {
  it('sends Authorization: Bearer with every request; a function is called per request (rotation)', async () => {
    const { url, seen } = await serve(ok);
    let n = 0;
    const client = new Client({ urls: [url], pingIntervalMs: 0, batching: { enabled: false }, token: async () => `tok-${++n}` });
    await client.open();
    try {
      await client.publish({ type: 1, topicID: 1n, data: Buffer.from('a') });
      await client.publish({ type: 1, topicID: 1n, data: Buffer.from('b') });
    } finally {
      await client.close();
    }
    expect(seen).toEqual(['Bearer tok-1', 'Bearer tok-2']);

    const fixed = new Client({ urls: [url], pingIntervalMs: 0, batching: { enabled: false }, token: 'static' });
    await fixed.open();
    await fixed.publish({ type: 1, topicID: 1n, data: Buffer.from('c') });
    await fixed.close();
    expect(seen.at(-1)).toBe('Bearer static');
  });

  it('sends the token with stream GETs too', async () => {
    const { url, seen } = await serve((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': '0' });
      res.end();
    });
    const client = new Client({ urls: [url], pingIntervalMs: 0, token: () => 'stream-token' });
    await client.open();
    try {
      const conn = client.conn(1n);
      conn.open(0n, { streaming: false });
      for await (const _message of conn) break;
      await conn.close();
    } finally {
      await client.close();
    }
    expect(seen).toEqual(['Bearer stream-token']);
  });

  it.each([
    [401, 'UNAUTHENTICATED'],
    [403, 'FORBIDDEN'],
  ] as const)('turns %i into a typed, non-retriable %s (without the code header too), sent once', async (status, code) => {
    const { url, seen } = await serve((_req, res) => {
      res.writeHead(status, { 'Content-Length': '0' });
      res.end();
    });
    const client = new Client({ urls: [url], pingIntervalMs: 0, batching: { enabled: false }, token: 'x', retries: 5 });
    await client.open();
    try {
      const error = await client.publish({ type: 1, topicID: 1n, data: Buffer.from('a') }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(BrokerError);
      expect(error).toMatchObject({ code, status, retriable: false });
    } finally {
      await client.close();
    }
    expect(seen).toHaveLength(1);
  });

  it('refuses a token that cannot be a header value, without echoing it', async () => {
    for (const token of ['', 'two words', 'line\nbreak']) {
      let error: unknown;
      try {
        new Client({ urls: ['http://127.0.0.1:1'], token });
      } catch (e) {
        error = e;
      }
      expect(isClientError(error, 'INVALID_OPTIONS')).toBe(true);
      if (token !== '') expect((error as Error).message).not.toContain(token);
    }
    const { url } = await serve(ok);
    const client = new Client({ urls: [url], pingIntervalMs: 0, batching: { enabled: false }, token: () => 'bad token' });
    await client.open();
    const error = await client.publish({ type: 1, topicID: 1n, data: Buffer.from('a') }).catch((e: unknown) => e);
    await client.close();
    expect(isClientError(error, 'INVALID_OPTIONS')).toBe(true);
    expect((error as Error).message).not.toContain('bad token');
  });

  it('never shows the token in what it logs (a stream reconnecting after a transport error)', async () => {
    const { url } = await serve(ok);
    servers.splice(0).forEach((server) => {
      server.close();
      server.closeAllConnections();
    });
    const lines: string[] = [];
    // Serializes everything it is given, as a structured logger would (cycles cut).
    const seen = new WeakSet<object>();
    const stringify = (value: unknown): string =>
      JSON.stringify(value, (_key, v: unknown) => {
        if (typeof v === 'bigint') return v.toString();
        if (typeof v === 'object' && v !== null) {
          if (seen.has(v)) return '[cycle]';
          seen.add(v);
        }
        return v;
      });
    const logger = { warn: (message: string, fields?: Record<string, unknown>) => void lines.push(message + stringify(fields)) };
    const client = new Client({ urls: [url], pingIntervalMs: 0, token: 'very-secret-token', logger, conn: { reconnect: { initialMs: 1, maxMs: 1 }, maxReconnects: 1 } });
    await client.open();
    const conn = client.conn(1n);
    conn.open(0n);
    const failed = await conn[Symbol.asyncIterator]().next().catch((e: unknown) => e);
    expect(failed).toMatchObject({ code: 'UNAVAILABLE' });
    await conn.close();
    await client.close();
    expect(lines.map((l) => l.slice(0, 40))).toContainEqual(expect.stringMatching(/^reconnecting/));
    expect(lines.join('\n')).not.toContain('very-secret-token');
  });
});
