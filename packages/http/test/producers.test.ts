import { describe, expect, it } from '@jest/globals';
import { BrokerError, encodeMessages, Headers } from '@msg/wire';
import { hashToken, IdentityAuthorizer, TopicSet, type Identity, type PublishMessage } from '../src/index.js';
import { fakeBroker, startServer } from './fake-broker.js';
import { request } from './http-client.js';

const producer = (id: string, seq: string | bigint): Record<string, string> => ({ 'X-Broker-Producer-Id': id, 'X-Broker-Producer-Seq': String(seq) });
const batch = (n: number): Uint8Array => encodeMessages(Array.from({ length: n }, (_, i) => ({ type: 1, topicID: 1n, index: 0n, data: new TextEncoder().encode(`m${i}`) })));

for (const fastPath of [false, true]) {
  describe(`producer headers (${fastPath ? 'node:http fast path' : 'express'})`, () => {
    it('passes a single publish’s producer and sequence to the broker, and a batch’s as consecutive sequences', async () => {
      const seen: PublishMessage[] = [];
      const broker = fakeBroker();
      const { publish, publishBatch } = broker;
      broker.publish = (m, s) => (seen.push(m), publish(m, s));
      broker.publishBatch = (ms, s) => (seen.push(...ms), publishBatch(ms, s));
      await using server = await startServer(broker, { fastPath });
      const one = await request(`${server.url}/messaging/messages?type=1&topicID=1`, { method: 'POST', body: 'x', headers: producer('p-1', 41n) });
      expect(one.status).toBe(200);
      const many = await request(`${server.url}/messaging/batch`, { method: 'POST', body: batch(3), headers: producer('p-1', 42n) });
      expect(many.status).toBe(200);
      expect(many.headers[Headers.duplicates]).toBe('0');
      expect(seen.map((m) => m.producer)).toEqual([41n, 42n, 43n, 44n].map((seq) => ({ id: 'p-1', seq })));
      // Without the headers nothing changes.
      await request(`${server.url}/messaging/messages?type=1&topicID=1`, { method: 'POST', body: 'x' });
      expect(seen.at(-1)!.producer).toBeUndefined();
    });

    it('answers 400 INVALID_PRODUCER for a header without its pair, a malformed id or sequence; nothing is published', async () => {
      const broker = fakeBroker();
      await using server = await startServer(broker, { fastPath });
      const cases: Record<string, string>[] = [
        { 'X-Broker-Producer-Id': 'p' },
        { 'X-Broker-Producer-Seq': '1' },
        producer('has space', 1n),
        producer('x'.repeat(65), 1n),
        producer('a/b', 1n),
        producer('p', '-1'),
        producer('p', '18446744073709551616'),
      ];
      for (const headers of cases) {
        const answer = await request(`${server.url}/messaging/messages?type=1&topicID=1`, { method: 'POST', body: 'x', headers });
        expect([answer.status, answer.headers[Headers.errorCode]]).toEqual([400, 'INVALID_PRODUCER']);
      }
      const past = await request(`${server.url}/messaging/batch`, { method: 'POST', body: batch(2), headers: producer('p', 2n ** 64n - 1n) });
      expect([past.status, past.headers[Headers.errorCode]]).toEqual([400, 'INVALID_PRODUCER']);
      expect(broker.log).toEqual([]);
    });

    it('sends a sequence refusal with the next sequence, and non-consecutive batch indexes as runs', async () => {
      const broker = fakeBroker();
      broker.publish = async () => {
        throw new BrokerError('SEQUENCE_GAP', { details: { producerNext: 9n } });
      };
      broker.publishBatch = async () => ({ firstIndex: 3n, lastIndex: 12n, duplicates: 2, indexes: [3n, 4n, 10n, 12n] });
      await using server = await startServer(broker, { fastPath });
      const gap = await request(`${server.url}/messaging/messages?type=1&topicID=1`, { method: 'POST', body: 'x', headers: producer('p', 11n) });
      expect([gap.status, gap.headers[Headers.errorCode], gap.headers[Headers.producerNext]]).toEqual([409, 'SEQUENCE_GAP', '9']);
      const runs = await request(`${server.url}/messaging/batch`, { method: 'POST', body: batch(4), headers: producer('p', 0n) });
      expect([runs.headers[Headers.index], runs.headers[Headers.lastIndex], runs.headers[Headers.indexes], runs.headers[Headers.duplicates]]).toEqual(['3', '12', '3-4,10,12', '2']);
    });

    it('answers GET /messaging/producers from the broker, 404 for a producer it does not hold, and redirects on a follower', async () => {
      const broker = fakeBroker({ producerNext: (id) => (id === 'known' ? 17n : undefined) });
      await using server = await startServer(broker, { fastPath });
      const known = await request(`${server.url}/messaging/producers?producerID=known`);
      expect([known.status, JSON.parse(known.body.toString())]).toEqual([200, { producerID: 'known', next: '17' }]);
      expect((await request(`${server.url}/messaging/producers?producerID=other`)).status).toBe(404);
      const bad = await request(`${server.url}/messaging/producers?producerID=a%20b`);
      expect([bad.status, bad.headers[Headers.errorCode]]).toEqual([400, 'INVALID_PRODUCER']);
      broker.leader = false;
      expect((await request(`${server.url}/messaging/producers?producerID=known`)).status).toBe(307);
    });
  });
}

describe('producer ids with an authorizer', () => {
  const A = 'token-a-0123456789abcdef0123456789ab';
  const B = 'token-b-0123456789abcdef0123456789ab';
  const identities: Identity[] = ['a', 'b'].map((name, i) => ({
    name,
    tokenSha256: hashToken([A, B][i]!),
    permissions: { publish: TopicSet.ALL, subscribe: TopicSet.NONE, admin: false },
  }));

  it('keys a producer by the authenticated identity, so that no identity can claim another’s sequences', async () => {
    const keys: string[] = [];
    const broker = fakeBroker({ producerNext: (id) => (keys.push(id), undefined) });
    const { publish } = broker;
    broker.publish = (m, s) => (keys.push(m.producer!.id), publish(m, s));
    await using server = await startServer(broker, { authorizer: new IdentityAuthorizer(identities) });
    for (const token of [A, B]) {
      const answer = await request(`${server.url}/messaging/messages?type=1&topicID=1`, { method: 'POST', body: 'x', headers: { ...producer('shared', 0n), Authorization: `Bearer ${token}` } });
      expect(answer.status).toBe(200);
    }
    await request(`${server.url}/messaging/producers?producerID=shared`, { headers: { Authorization: `Bearer ${A}` } });
    expect(keys).toEqual(['a/shared', 'b/shared', 'a/shared']);
    expect((await request(`${server.url}/messaging/producers?producerID=shared`)).status).toBe(401);
  });
});
