import { describe, expect, it } from '@jest/globals';
import { sleep, waitFor } from '@msg/test-utils';
import type { BrokerError, Conn, Message } from '../src/index.js';
import { FakeStore, deadURL } from './fake-broker.js';
import { broker, bytes, expectCode, openClient, text } from './helpers.js';

function fill(store: FakeStore, topicID: bigint, n: number, prefix = 'm'): void {
  for (let i = 0; i < n; i++) store.append(1, topicID, bytes(`${prefix}${i}`));
}

/** Reads `n` messages from an open conn, then closes it. */
async function take(conn: Conn, n: number): Promise<Message[]> {
  const out: Message[] = [];
  for await (const message of conn) {
    out.push(message);
    if (out.length >= n) break;
  }
  return out;
}

describe('Conn', () => {
  it('reads a topic to its current end without streaming', async () => {
    const store = new FakeStore();
    fill(store, 5n, 3);
    fill(store, 6n, 2, 'other');
    const b = await broker({}, store);
    const client = await openClient({ urls: [b.url] });
    const conn = client.conn(5n);
    conn.open(2n, { streaming: false });
    const seen: string[] = [];
    for await (const m of conn) seen.push(`${m.index}:${text(m.data)}`);
    expect(seen).toEqual(['2:m1', '3:m2']);
    expect(conn.index).toBe(3n);
    const query = b.requests[0]!.query;
    expect([query.get('topicID'), query.get('index'), query.get('streaming')]).toEqual(['5', '2', 'false']);
    await conn.close();
  });

  it('streams new messages as they are published and ends cleanly on close', async () => {
    const b = await broker();
    const client = await openClient({ urls: [b.url] });
    b.store.append(1, 1n, bytes('old'));
    const conn = client.conn(1n);
    conn.open(0n);
    const seen: string[] = [];
    const loop = (async () => {
      for await (const m of conn) seen.push(text(m.data));
      return 'ended';
    })();
    await waitFor(() => seen.length === 1);
    await client.publish({ type: 1, topicID: 1n, data: bytes('new') });
    await waitFor(() => seen.length === 2);
    await conn.close();
    await expect(loop).resolves.toBe('ended');
    expect(seen).toEqual(['old', 'new']);
    expect(b.requests.filter((r) => r.method === 'GET')[0]!.query.get('streaming')).toBe('true');
  });

  it('delivers a message with empty data', async () => {
    const b = await broker();
    b.store.append(7, 1n, new Uint8Array(0));
    const client = await openClient({ urls: [b.url] });
    const conn = client.conn(1n);
    conn.open(0n, { streaming: false });
    const [message] = await take(conn, 1);
    expect(message).toEqual({ type: 7, topicID: 1n, index: 1n, data: new Uint8Array(0) });
  });

  it('decodes frames that arrive in one-byte pieces', async () => {
    const b = await broker({ pieceBytes: 1 });
    fill(b.store, 1n, 3);
    const client = await openClient({ urls: [b.url] });
    const conn = client.conn(1n);
    conn.open(1n, { streaming: false });
    const seen: string[] = [];
    for await (const m of conn) seen.push(text(m.data));
    expect(seen).toEqual(['m0', 'm1', 'm2']);
  });

  it('reconnects after a partial frame and resumes after the last delivered index', async () => {
    const b = await broker({ cutAfter: 2 });
    fill(b.store, 1n, 5);
    const client = await openClient({ urls: [b.url] });
    const conn = client.conn(1n);
    conn.open(1n);
    const seen = await take(conn, 5);
    expect(seen.map((m) => m.index)).toEqual([1n, 2n, 3n, 4n, 5n]);
    const starts = b.requests.filter((r) => r.method === 'GET').map((r) => r.query.get('index'));
    expect(starts).toEqual(['1', '3', '5']);
  });

  it('reconnects when a streaming answer ends and when the connection drops', async () => {
    const b = await broker({ endAfter: 2 });
    fill(b.store, 1n, 3);
    const client = await openClient({ urls: [b.url] });
    const conn = client.conn(1n);
    conn.open(0n);
    const seen: bigint[] = [];
    const loop = (async () => {
      for await (const m of conn) seen.push(m.index);
    })();
    await waitFor(() => seen.length === 3);
    b.knobs.endAfter = undefined;
    expect(b.requests).toHaveLength(2);
    b.dropConnections();
    await client.publish({ type: 1, topicID: 1n, data: bytes('after') });
    await waitFor(() => seen.length === 4);
    expect(seen).toEqual([1n, 2n, 3n, 4n]);
    expect(b.requests.filter((r) => r.method === 'GET').map((r) => r.query.get('index'))).toEqual(['0', '3', '4']);
    await conn.close();
    await loop;
  });

  it('fails over to the next URL when its broker is down', async () => {
    const dead = await deadURL();
    const live = await broker();
    fill(live.store, 1n, 2);
    const client = await openClient({ urls: [dead, live.url] });
    client.setURL(dead);
    const conn = client.conn(1n);
    conn.open(0n, { streaming: false });
    expect((await take(conn, 2)).map((m) => m.index)).toEqual([1n, 2n]);
    expect(conn.url?.origin).toBe(live.url);
  });

  it('retries a broker that stalls before answering', async () => {
    const stalled = await broker({ stall: () => true });
    const live = await broker();
    fill(live.store, 1n, 1);
    const client = await openClient({ urls: [stalled.url, live.url], conn: { responseTimeoutMs: 500 } });
    client.setURL(stalled.url);
    const conn = client.conn(1n);
    conn.open(0n, { streaming: false });
    expect((await take(conn, 1)).map((m) => m.index)).toEqual([1n]);
    expect(stalled.requests).toHaveLength(1);
  });

  it('reconnects after idleTimeoutMs when a broker stalls mid-frame, and resumes', async () => {
    const b = await broker({ stallAfter: 1 });
    fill(b.store, 1n, 3);
    const client = await openClient({ urls: [b.url], conn: { idleTimeoutMs: 400 } });
    const conn = client.conn(1n);
    conn.open(0n, { streaming: false });
    const seen: bigint[] = [];
    for await (const message of conn) {
      seen.push(message.index);
      b.knobs.stallAfter = undefined;
    }
    expect(seen).toEqual([1n, 2n, 3n]);
    expect(b.requests.map((r) => r.query.get('index'))).toEqual(['0', '2']);
  });

  it('does not count the time of a slow loop body against idleTimeoutMs', async () => {
    const b = await broker();
    fill(b.store, 1n, 2);
    const client = await openClient({ urls: [b.url], conn: { idleTimeoutMs: 500 } });
    const conn = client.conn(1n);
    conn.open(0n, { streaming: false });
    const seen: bigint[] = [];
    for await (const message of conn) {
      seen.push(message.index);
      await sleep(800);
    }
    expect(seen).toEqual([1n, 2n]);
    expect(b.requests).toHaveLength(1);
  });

  it('ends with the last error after maxReconnects failures', async () => {
    const dead = await deadURL();
    const client = await openClient({ urls: [dead], conn: { maxReconnects: 2 } });
    const conn = client.conn(1n);
    conn.open(0n);
    await expectCode(take(conn, 1), 'BrokerError', 'UNAVAILABLE');
  });

  it('surfaces segment reclaimed as a typed error with the first available index', async () => {
    const b = await broker({ firstIndex: 10n });
    const client = await openClient({ urls: [b.url] });
    const conn = client.conn(1n);
    conn.open(3n);
    const error = (await expectCode(take(conn, 1), 'BrokerError', 'SEGMENT_RECLAIMED')) as BrokerError;
    expect(error.firstIndex).toBe(10n);
    expect(error.message).toBe('segment reclaimed');
    expect(b.requests).toHaveLength(1);
    b.knobs.errorCodes = false;
    const original = client.conn(1n);
    original.open(3n);
    await expectCode(take(original, 1), 'BrokerError', 'SEGMENT_RECLAIMED');
  });

  it('ends with errors that retrying cannot fix', async () => {
    const b = await broker({ fail: () => 'TOPIC_REQUIRED' });
    const client = await openClient({ urls: [b.url] });
    const conn = client.conn(1n);
    conn.open(0n);
    await expectCode(take(conn, 1), 'BrokerError', 'TOPIC_REQUIRED');
    b.knobs.fail = undefined;
    b.store.append(1, 2n, new Uint8Array(2048));
    const small = client.conn(2n, { maxDataLength: 1024 });
    small.open(0n);
    await expectCode(take(small, 1), 'BrokerError', 'FRAME_TOO_LARGE');
  });

  it('reconnects after retriable error answers', async () => {
    let failures = 2;
    const b = await broker({ fail: () => (failures-- > 0 ? 'UNAVAILABLE' : undefined) });
    fill(b.store, 1n, 1);
    const client = await openClient({ urls: [b.url] });
    const conn = client.conn(1n);
    conn.open(0n, { streaming: false });
    expect((await take(conn, 1)).map((m) => m.index)).toEqual([1n]);
    expect(b.requests).toHaveLength(3);
  });

  it('applies backpressure: a slow loop keeps the broker from sending the whole topic', async () => {
    const b = await broker();
    const chunk = new Uint8Array(256 * 1024);
    for (let i = 0; i < 160; i++) b.store.append(1, 1n, chunk);
    const total = 160 * (chunk.byteLength + 22);
    const client = await openClient({ urls: [b.url] });
    const conn = client.conn(1n);
    conn.open(0n, { streaming: false });
    let count = 0;
    for await (const _ of conn) {
      count++;
      if (count === 1) {
        await sleep(300);
        expect(b.streamedBytes).toBeLessThan(total / 2);
      }
    }
    expect(count).toBe(160);
    expect(b.streamedBytes).toBe(total);
  });

  it('ends the loop cleanly when the client closes', async () => {
    const b = await broker();
    const client = await openClient({ urls: [b.url] });
    const conn = client.conn(1n);
    conn.open(0n);
    const loop = (async () => {
      for await (const _ of conn) return 'message';
      return 'ended';
    })();
    await waitFor(() => b.requests.length === 1);
    await client.close();
    await expect(loop).resolves.toBe('ended');
    expect(conn.state).toBe('closed');
  });

  it('rejects the loop with ABORTED when the open signal aborts', async () => {
    const b = await broker();
    const client = await openClient({ urls: [b.url] });
    const conn = client.conn(1n);
    const controller = new AbortController();
    conn.open(0n, { signal: controller.signal });
    const loop = take(conn, 1);
    await waitFor(() => b.requests.length === 1);
    controller.abort(new Error('stop'));
    await expectCode(loop, 'ClientError', 'ABORTED');
  });
});

describe('Conn lifecycle errors', () => {
  it('follows the original: open twice, close twice, reuse after close', async () => {
    const b = await broker();
    const client = await openClient({ urls: [b.url] });
    const conn = client.conn(1n);
    expect(conn.state).toBe('new');
    await expectCode(conn.close(), 'BrokerError', 'CONNECTION_CLOSED');
    await expectCode(() => conn[Symbol.asyncIterator](), 'BrokerError', 'CONNECTION_CLOSED');
    await expectCode(conn.heartbeat(), 'BrokerError', 'CONNECTION_CLOSED');
    await expectCode(() => conn.open(-1n), 'BrokerError', 'INDEX_REQUIRED');
    conn.open(0n);
    const twice = await expectCode(() => conn.open(0n), 'BrokerError', 'CONNECTION_ALREADY_OPEN');
    expect(twice.message).toBe('connection already open');
    conn[Symbol.asyncIterator]();
    await expectCode(() => conn[Symbol.asyncIterator](), 'BrokerError', 'CANNOT_REUSE_CONNECTION');
    await conn.close();
    await expectCode(conn.close(), 'BrokerError', 'CONNECTION_CLOSED');
    const reuse = await expectCode(() => conn.open(0n), 'BrokerError', 'CANNOT_REUSE_CONNECTION');
    expect(reuse.message).toBe('cannot reuse connection');
    await expectCode(() => client.conn(-1n), 'BrokerError', 'TOPIC_REQUIRED');
  });
});

describe('Conn.heartbeat', () => {
  it('reports the last delivered index to the leader, through a redirect', async () => {
    const store = new FakeStore();
    const leader = await broker({}, store);
    const follower = await broker({ role: 'follower', leaderURL: leader.url }, store);
    fill(store, 4n, 3);
    const client = await openClient({ urls: [follower.url, leader.url] });
    const conn = client.conn(4n);
    conn.open(2n, { streaming: false });
    await conn.heartbeat();
    expect(await take(conn, 2)).toHaveLength(2);
    await conn.heartbeat();
    expect(store.heartbeats).toEqual([
      { topicID: 4n, index: 1n },
      { topicID: 4n, index: 3n },
    ]);
    expect(follower.count('/messaging/heartbeat')).toBe(1);
    expect(follower.requests.filter((r) => r.method === 'GET')).toHaveLength(1);
  });

  it('sends periodic heartbeats when configured, and stops on close', async () => {
    const b = await broker();
    const client = await openClient({ urls: [b.url] });
    const conn = client.conn(1n, { heartbeatIntervalMs: 20 });
    conn.open(5n);
    await waitFor(() => b.store.heartbeats.length >= 2);
    expect(b.store.heartbeats[0]).toEqual({ topicID: 1n, index: 4n });
    await conn.close();
    const count = b.store.heartbeats.length;
    await sleep(80);
    expect(b.store.heartbeats.length).toBe(count);
  });

  it('names its reader: a distinct id per conn, the same on every heartbeat, or the one given', async () => {
    const b = await broker();
    fill(b.store, 1n, 3);
    const client = await openClient({ urls: [b.url] });
    const one = client.conn(1n);
    const two = client.conn(1n);
    const named = client.conn(1n, { readerId: 'billing/consumer-7' });
    for (const conn of [one, two, named]) conn.open(0n, { streaming: false });
    await one.heartbeat();
    await two.heartbeat();
    await named.heartbeat();
    expect(await take(one, 3)).toHaveLength(3);
    await one.heartbeat();
    await two.heartbeat();
    const ids = b.requests.filter((r) => r.path === '/messaging/heartbeat').map((r) => r.query.get('readerID'));
    expect(ids).toEqual([one.readerId, two.readerId, 'billing/consumer-7', one.readerId, two.readerId]);
    expect(one.readerId).toMatch(/^[0-9a-f-]{36}$/);
    expect(two.readerId).toMatch(/^[0-9a-f-]{36}$/);
    expect(one.readerId).not.toBe(two.readerId);
    expect(named.readerId).toBe('billing/consumer-7');
    expect(b.store.heartbeats.at(-2)).toEqual({ topicID: 1n, index: 3n });
  });

  it('is cancelled by its AbortSignal', async () => {
    const b = await broker({ stall: (r) => r.path === '/messaging/heartbeat' });
    const client = await openClient({ urls: [b.url] });
    const conn = client.conn(1n);
    conn.open(0n);
    await expectCode(conn.heartbeat({ signal: AbortSignal.timeout(50) }), 'ClientError', 'ABORTED');
  });
});

describe('Conn option and URL errors', () => {
  it('refuses bad conn options with INVALID_OPTIONS and iteration without URLs with NO_URLS', async () => {
    const client = await openClient();
    await expectCode(() => client.conn(1n, { maxReconnects: -1 }), 'ClientError', 'INVALID_OPTIONS');
    await expectCode(() => client.conn(1n, { responseTimeoutMs: 0 }), 'ClientError', 'INVALID_OPTIONS');
    await expectCode(() => client.conn(1n, { heartbeatIntervalMs: Number.NaN }), 'ClientError', 'INVALID_OPTIONS');
    await expectCode(() => client.conn(1n, { reconnect: { jitter: 2 } }), 'ClientError', 'INVALID_OPTIONS');
    await expectCode(() => client.conn(1n, { idleTimeoutMs: Infinity }), 'ClientError', 'INVALID_OPTIONS');
    await expectCode(() => client.conn(1n, { readerId: '' }), 'ClientError', 'INVALID_OPTIONS');
    await expectCode(() => client.conn(1n, { readerId: 'é'.repeat(128) }), 'ClientError', 'INVALID_OPTIONS');
    const conn = client.conn(1n);
    conn.open(0n);
    expect(conn.url).toBeUndefined();
    await expectCode(take(conn, 1), 'ClientError', 'NO_URLS');
  });
});
