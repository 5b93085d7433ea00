import { describe, expect, it } from '@jest/globals';
import { waitFor } from '@msg/test-utils';
import { Client, type Logger } from '../src/index.js';
import { deadURL } from './fake-broker.js';
import { broker, bytes, defer, fastOptions, openClient } from './helpers.js';

/** A logger as an application writes one: each call is one `JSON.stringify`d line. */
function jsonLogger(): { logger: Logger; lines: { level: string; message: string; fields: Record<string, unknown> }[] } {
  const lines: { level: string; message: string; fields: Record<string, unknown> }[] = [];
  const write = (level: string) => (message: string, fields?: Record<string, unknown>): void => {
    lines.push({ level, message, fields: JSON.parse(JSON.stringify(fields ?? {})) as Record<string, unknown> });
  };
  return { logger: { warn: write('warn'), debug: write('debug') }, lines };
}

describe('the logger a Client is given', () => {
  it('gets fields a plain JSON.stringify can write: topic ids and indexes as decimal strings', async () => {
    const b = await broker({ cutAfter: 1 });
    for (let i = 0; i < 3; i++) b.store.append(1, 9007199254740993n, bytes(`m${i}`));
    const { logger, lines } = jsonLogger();
    const client = await openClient({ urls: [b.url], logger });
    const conn = client.conn(9007199254740993n);
    conn.open(1n);
    const seen: bigint[] = [];
    for await (const message of conn) {
      seen.push(message.index);
      if (seen.length === 3) break;
    }

    expect(seen).toEqual([1n, 2n, 3n]);
    const connected = lines.filter((line) => line.message === 'stream connected');
    expect(connected.map((line) => [line.fields.topicID, line.fields.index])).toEqual([
      ['9007199254740993', '1'],
      ['9007199254740993', '2'],
      ['9007199254740993', '3'],
    ]);
    const reconnecting = lines.find((line) => line.message === 'reconnecting to broker');
    expect(reconnecting?.fields).toMatchObject({ topicID: '9007199254740993', index: '2' });
  });

  it('gets errors as plain objects with name, message, code and stack, bigint details as decimal strings', async () => {
    const reclaimed = { 'x-broker-error': 'segment reclaimed', 'x-broker-error-code': 'SEGMENT_RECLAIMED', 'x-broker-first-index': '5' };
    const b = await broker({ answer: (request) => (request.path === '/messaging/ping' ? { status: 410, headers: reclaimed, body: 'segment reclaimed' } : undefined) });
    const { logger, lines } = jsonLogger();
    await openClient({ urls: [b.url], logger, pingIntervalMs: 5, retries: 0 });
    await waitFor(() => lines.some((line) => line.message === 'ping failed'));

    const error = lines.find((line) => line.message === 'ping failed')!.fields.error as Record<string, unknown>;
    expect(error).toMatchObject({ name: 'BrokerError', message: 'segment reclaimed', code: 'SEGMENT_RECLAIMED', firstIndex: '5' });
    expect(typeof error.stack).toBe('string');
    expect(error.stack).toContain('segment reclaimed');
  });

  it('gets the cause chain of an error, down to the socket error', async () => {
    const { logger, lines } = jsonLogger();
    const client = new Client(fastOptions({ urls: [await deadURL()], logger, pingIntervalMs: 5, retries: 0 }));
    defer(() => client.close());
    await client.open().catch(() => undefined);
    await waitFor(() => lines.some((line) => line.message === 'ping failed'));

    const error = lines.find((line) => line.message === 'ping failed')!.fields.error as Record<string, unknown>;
    const chain: Record<string, unknown>[] = [];
    for (let at: unknown = error; typeof at === 'object' && at !== null; at = (at as Record<string, unknown>).cause) chain.push(at as Record<string, unknown>);
    expect(chain.length).toBeGreaterThan(1);
    expect(chain.every((link) => typeof link.stack === 'string' && typeof link.message === 'string')).toBe(true);
    expect(chain.map((link) => link.code)).toContain('ECONNREFUSED');
  });

  it('keeps the client working when the logger itself throws', async () => {
    const b = await broker({ cutAfter: 1 });
    for (let i = 0; i < 2; i++) b.store.append(1, 4n, bytes(`m${i}`));
    const client = await openClient({
      urls: [b.url],
      logger: {
        warn: () => {
          throw new Error('log sink broken');
        },
        debug: () => {
          throw new Error('log sink broken');
        },
      },
    });
    const conn = client.conn(4n);
    conn.open(1n);
    const seen: bigint[] = [];
    for await (const message of conn) {
      seen.push(message.index);
      if (seen.length === 2) break;
    }
    expect(seen).toEqual([1n, 2n]);
  });
});
