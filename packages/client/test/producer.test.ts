import { describe, expect, it } from '@jest/globals';
import { Headers, Paths } from '@msg/wire';
import { Client } from '../src/index.js';
import type { SeenRequest } from './fake-broker.js';
import { broker, bytes, expectCode, openClient } from './helpers.js';

const message = { type: 1, topicID: 1n, data: bytes('x') };

/** The producer headers of the publish requests `b` saw, as `[id, seq]`. */
function sequences(requests: SeenRequest[]): [unknown, unknown][] {
  return requests.filter((r) => r.method === 'POST').map((r) => [r.headers[Headers.producerId], r.headers[Headers.producerSeq]]);
}

describe('Client producer ids (exactly-once publish)', () => {
  it('sends a producer id and consecutive sequences by default, one per message of a batch', async () => {
    const b = await broker();
    const client = await openClient({ urls: [b.url] });
    await client.publish(message);
    await client.publishBatch([message, message, message]);
    await client.publish(message);
    const seen = sequences(b.requests);
    const id = seen[0]![0];
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(seen).toEqual([
      [id, '0'],
      [id, '1'],
      [id, '4'],
    ]);
    // Another client is another producer.
    const other = await openClient({ urls: [b.url] });
    await other.publish(message);
    expect(sequences(b.requests).at(-1)).toEqual([expect.not.stringMatching(String(id)), '0']);
  });

  it('retries a request whose answer was lost with the same sequence', async () => {
    let drops = 1;
    const b = await broker({ drop: (r) => r.method === 'POST' && drops-- > 0 });
    const client = await openClient({ urls: [b.url], batching: { enabled: false } });
    expect(await client.publish(message)).toBe(1n);
    const seen = sequences(b.requests);
    expect(seen).toHaveLength(2);
    expect(seen[1]).toEqual(seen[0]);
    expect(await client.publish(message)).toBe(2n);
    expect(sequences(b.requests)[2]![1]).toBe('1');
  });

  it('renumbers from the broker’s next sequence after SEQUENCE_GAP, once', async () => {
    let gaps = 1;
    const b = await broker({
      answer: (r) =>
        r.method === 'POST' && gaps-- > 0
          ? { status: 409, headers: { 'X-Broker-Error-Code': 'SEQUENCE_GAP', 'X-Broker-Error': 'producer sequence gap', 'X-Broker-Producer-Next': '7' } }
          : undefined,
    });
    const client = await openClient({ urls: [b.url], producerId: 'fixed', batching: { enabled: false } });
    await client.publish(message);
    await client.publish(message);
    expect(sequences(b.requests)).toEqual([
      ['fixed', '0'],
      ['fixed', '7'],
      ['fixed', '8'],
    ]);
    // The given id was looked up first (the fake has no such route: 404, so it started at 0).
    expect(b.count(Paths.producers, 'GET')).toBe(1);
    expect(b.requests[0]!.query.get('producerID')).toBe('fixed');
  });

  it('continues a given producer id from the sequence the leader reports', async () => {
    const b = await broker({ answer: (r) => (r.path === Paths.producers ? { status: 200, headers: { 'content-type': 'application/json' }, body: '{"producerID":"orders-1","next":"41"}' } : undefined) });
    const client = await openClient({ urls: [b.url], producerId: 'orders-1' });
    await client.publish(message);
    await client.publish(message);
    expect(sequences(b.requests)).toEqual([
      ['orders-1', '41'],
      ['orders-1', '42'],
    ]);
    expect(b.count(Paths.producers, 'GET')).toBe(1);
  });

  it('gives the sequences of a request refused with a 4xx back', async () => {
    let refusals = 1;
    const b = await broker({ fail: (r) => (r.method === 'POST' && refusals-- > 0 ? 'INVALID_MESSAGE' : undefined) });
    const client = await openClient({ urls: [b.url], batching: { enabled: false } });
    await expectCode(client.publish(message), 'BrokerError', 'INVALID_MESSAGE');
    await client.publish(message);
    expect(sequences(b.requests).map(([, seq]) => seq)).toEqual(['0', '0']);
  });

  it('maps X-Broker-Indexes runs to each message, and refuses runs that do not fit the batch', async () => {
    let runs = '5-6,9';
    const b = await broker({ answer: (r) => (r.path === Paths.batch ? { status: 200, headers: { 'X-Broker-Index': '5', 'X-Broker-Last-Index': '9', 'X-Broker-Indexes': runs } } : undefined) });
    const client = await openClient({ urls: [b.url] });
    expect(await client.publishBatch([message, message, message])).toEqual([5n, 6n, 9n]);
    runs = '5-9';
    await expectCode(client.publishBatch([message, message, message]), 'ClientError', 'BAD_RESPONSE');
  });

  it('sends no producer headers with producerId false, and refuses a malformed id', async () => {
    const b = await broker();
    const client = await openClient({ urls: [b.url], producerId: false });
    await client.publish(message);
    expect(sequences(b.requests)).toEqual([[undefined, undefined]]);
    expect(() => new Client({ urls: [b.url], producerId: 'no spaces' })).toThrow(expect.objectContaining({ code: 'INVALID_OPTIONS' }));
    expect(() => new Client({ urls: [b.url], producerId: 'x'.repeat(65) })).toThrow(expect.objectContaining({ code: 'INVALID_OPTIONS' }));
  });
});
