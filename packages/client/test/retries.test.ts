import { describe, expect, it } from '@jest/globals';
import { FakeClock, sleep, waitFor } from '@msg/test-utils';
import { Paths } from '@msg/wire';
import { Client } from '../src/index.js';
import { deadURL } from './fake-broker.js';
import { broker, bytes, expectCode, fastOptions, openClient } from './helpers.js';

const message = { type: 1, topicID: 1n, data: bytes('x') };

describe('Client retries', () => {
  it('waits the configured backoff between retries on the injected clock, then gives up', async () => {
    const clock = new FakeClock();
    const b = await broker({ fail: () => 'UNAVAILABLE' });
    const client = await openClient({
      urls: [b.url],
      clock,
      retries: 3,
      backoff: { initialMs: 100, maxMs: 300, multiplier: 2, jitter: 0 },
      batching: { enabled: false },
    });
    const outcome = expectCode(client.publish(message), 'BrokerError', 'UNAVAILABLE');
    // Delays: 100, 200, then 400 capped at maxMs 300.
    for (const [attempt, wait] of [[1, 100], [2, 200], [3, 300]] as const) {
      await waitFor(() => b.requests.length === attempt && clock.pending === 1);
      clock.advance(wait - 1);
      await sleep(20);
      expect(b.requests).toHaveLength(attempt);
      clock.advance(1);
    }
    await outcome;
    expect(b.requests).toHaveLength(4);
    expect(clock.pending).toBe(0);
  });

  it('draws the jitter from the injected random source', async () => {
    const clock = new FakeClock();
    const b = await broker({ fail: () => 'UNAVAILABLE' });
    const client = await openClient({ urls: [b.url], clock, random: () => 0.5, retries: 1, backoff: { initialMs: 100, jitter: 0.5 }, batching: { enabled: false } });
    const outcome = expectCode(client.publish(message), 'BrokerError', 'UNAVAILABLE');
    await waitFor(() => b.requests.length === 1 && clock.pending === 1);
    clock.advance(74);
    await sleep(20);
    expect(b.requests).toHaveLength(1);
    clock.advance(1);
    await outcome;
    expect(b.requests).toHaveLength(2);
  });

  it('ends a redirect loop between followers with NO_LEADER after bounded requests', async () => {
    const a = await broker({ role: 'follower' });
    const b = await broker({ role: 'follower', leaderURL: a.url });
    a.knobs.leaderURL = b.url;
    const client = await openClient({ urls: [a.url, b.url], retries: 1, batching: { enabled: false } });
    await expectCode(client.publish(message), 'BrokerError', 'NO_LEADER');
    expect(a.requests.length + b.requests.length).toBe(18);
  });

  it('retries nothing with retries 0', async () => {
    const b = await broker({ role: 'follower' });
    const client = await openClient({ urls: [b.url], retries: 0, batching: { enabled: false } });
    await expectCode(client.publish(message), 'BrokerError', 'NO_LEADER');
    expect(b.requests).toHaveLength(1);
  });
});

describe('Conn.heartbeat errors', () => {
  it('come back as BrokerErrors with their codes, after the same failover as a publish', async () => {
    const b = await broker({ fail: (r) => (r.path === Paths.heartbeat ? 'INDEX_REQUIRED' : undefined) });
    const client = await openClient({ urls: [b.url], retries: 2 });
    const conn = client.conn(1n);
    conn.open(0n);
    await expectCode(conn.heartbeat(), 'BrokerError', 'INDEX_REQUIRED');
    expect(b.count(Paths.heartbeat)).toBe(1);
    b.knobs.fail = undefined;
    b.knobs.role = 'follower';
    await expectCode(conn.heartbeat(), 'BrokerError', 'NO_LEADER');
    expect(b.count(Paths.heartbeat)).toBe(4);
    const dead = await openClient({ urls: [await deadURL()], retries: 1 });
    const lonely = dead.conn(1n);
    lonely.open(0n);
    await expectCode(lonely.heartbeat(), 'BrokerError', 'UNAVAILABLE');
  });

  it('of a conn whose client closed are CONNECTION_CLOSED', async () => {
    const b = await broker();
    const client = new Client(fastOptions({ urls: [b.url] }));
    await client.open();
    const conn = client.conn(1n);
    conn.open(0n);
    const unopened = client.conn(2n);
    await client.close();
    expect(conn.state).toBe('closed');
    await expectCode(conn.heartbeat(), 'BrokerError', 'CONNECTION_CLOSED');
    await expectCode(() => unopened.open(0n), 'BrokerError', 'CLIENT_CLOSED');
    expect(b.requests).toHaveLength(0);
  });
});

describe('Client calls with an AbortSignal', () => {
  it('cancel publishBatch and ping during the request', async () => {
    const b = await broker({ stall: () => true });
    const client = await openClient({ urls: [b.url] });
    await expectCode(client.publishBatch([message], { signal: AbortSignal.timeout(50) }), 'ClientError', 'ABORTED');
    await expectCode(client.ping({ signal: AbortSignal.timeout(50) }), 'ClientError', 'ABORTED');
    await expectCode(client.publishBatch([message], { signal: AbortSignal.abort() }), 'ClientError', 'ABORTED');
    expect(b.requests.map((r) => r.path)).toEqual([Paths.batch, Paths.ping]);
  });

  it('publishBatch of no messages resolves with no indexes and sends nothing', async () => {
    const b = await broker();
    const client = await openClient({ urls: [b.url] });
    expect(await client.publishBatch([])).toEqual([]);
    expect(b.requests).toHaveLength(0);
  });
});
