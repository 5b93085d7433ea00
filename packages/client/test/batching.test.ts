import { describe, expect, it } from '@jest/globals';
import { FakeClock, sleep, waitFor } from '@msg/test-utils';
import type { BrokerError } from '../src/index.js';
import type { SeenRequest } from './fake-broker.js';
import { broker, bytes, expectCode, openClient, text } from './helpers.js';

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** A `hold` knob that keeps the first request matching `which` unanswered until `release()`. */
function holdFirst(which: (request: SeenRequest) => boolean = () => true): { hold: (request: SeenRequest) => Promise<void> | undefined; release(): void } {
  let release = (): void => undefined;
  let used = false;
  return {
    hold: (request) => {
      if (used || !which(request)) return undefined;
      used = true;
      return new Promise<void>((resolve) => (release = resolve));
    },
    release: () => release(),
  };
}
const route = (r: SeenRequest): string => (r.path === '/messaging/batch' ? `batch:${r.batchSize ?? '?'}` : 'single');

describe('Client.publish coalescing', () => {
  it('sends a lone publish at once, without waiting for any timer', async () => {
    const b = await broker();
    // A fake clock that never moves: a publish that waited for a timer would never be sent.
    const clock = new FakeClock();
    const client = await openClient({ urls: [b.url], clock });
    const index = client.publish({ type: 1, topicID: 1n, data: bytes('x') });
    expect(clock.pending).toBe(0);
    expect(await index).toBe(1n);
    expect(b.requests.map(route)).toEqual(['single']);
    expect(clock.pending).toBe(0);
  });

  it('gathers the publishes made while a request is in flight into one batch, sent when it returns', async () => {
    const held = holdFirst();
    const b = await broker({ hold: held.hold });
    const client = await openClient({ urls: [b.url], clock: new FakeClock() });
    const first = client.publish({ type: 1, topicID: 1n, data: bytes('first') });
    await waitFor(() => b.requests.length === 1);
    const later = range(5).map((i) => client.publish({ type: 1, topicID: 1n, data: bytes(`later${i}`) }));
    await sleep(20);
    expect(b.requests).toHaveLength(1);
    held.release();
    expect(await first).toBe(1n);
    expect(await Promise.all(later)).toEqual([2n, 3n, 4n, 5n, 6n]);
    expect(b.requests.map(route)).toEqual(['single', 'batch:5']);
    expect(b.store.from(1n, 0n).map((m) => text(m.data))).toEqual(['first', ...range(5).map((i) => `later${i}`)]);
  });

  it('keeps what gathers in flight within maxMessages and maxBytes', async () => {
    const held = holdFirst();
    const b = await broker({ hold: held.hold });
    const client = await openClient({ urls: [b.url], batching: { maxMessages: 10, maxBytes: 4 * (22 + 100) } });
    const first = client.publish({ type: 1, topicID: 1n, data: bytes('first') });
    await waitFor(() => b.requests.length === 1);
    const small = range(25).map(() => client.publish({ type: 1, topicID: 1n, data: bytes('s') }));
    const large = range(6).map(() => client.publish({ type: 1, topicID: 2n, data: new Uint8Array(100).fill(1) }));
    held.release();
    await first;
    const indexes = await Promise.all([...small, ...large]);
    expect(new Set(indexes).size).toBe(31);
    // 10 + 10 small ones, then 5 small and 3 large (5*23 + 3*122 = 481 <= 488 bytes; a fourth large one would not fit), then the rest.
    expect(b.requests.map(route)).toEqual(['single', 'batch:10', 'batch:10', 'batch:8', 'batch:3']);
  });

  it('with lingerMs, waits for the linger timer before sending even when nothing is in flight', async () => {
    const b = await broker();
    const clock = new FakeClock();
    const client = await openClient({ urls: [b.url], clock, batching: { lingerMs: 5 } });
    const one = client.publish({ type: 1, topicID: 1n, data: bytes('a') });
    const two = client.publish({ type: 1, topicID: 1n, data: bytes('b') });
    await sleep(20);
    expect(b.requests).toHaveLength(0);
    clock.advance(4);
    await sleep(20);
    expect(b.requests).toHaveLength(0);
    clock.advance(1);
    expect(await Promise.all([one, two])).toEqual([1n, 2n]);
    expect(b.requests.map(route)).toEqual(['batch:2']);
  });

  it('falls back to single requests for what gathered in flight against an original broker (404 on the batch route)', async () => {
    const held = holdFirst();
    const b = await broker({ batchRoute: false, errorCodes: false, hold: held.hold });
    const client = await openClient({ urls: [b.url] });
    const first = client.publish({ type: 1, topicID: 1n, data: bytes('first') });
    await waitFor(() => b.requests.length === 1);
    const later = range(3).map((i) => client.publish({ type: 1, topicID: 1n, data: bytes(`l${i}`) }));
    held.release();
    expect(await first).toBe(1n);
    expect(new Set(await Promise.all(later)).size).toBe(3);
    expect(b.requests.map((r) => r.path)).toEqual(['/messaging/messages', '/messaging/batch', ...range(3).map(() => '/messaging/messages')]);
    // Remembered: the next gathered publishes go one by one without trying the batch route again.
    await Promise.all(range(4).map(() => client.publish({ type: 1, topicID: 1n, data: bytes('x') })));
    expect(b.count('/messaging/batch')).toBe(1);
    expect(b.count('/messaging/messages')).toBe(8);
  });

  it('coalesces concurrent publishes into one batch request, each caller getting its own index', async () => {
    const b = await broker();
    const client = await openClient({ urls: [b.url] });
    const indexes = await Promise.all(range(50).map((i) => client.publish({ type: 1, topicID: 3n, data: bytes(`m${i}`) })));
    expect(b.count('/messaging/batch')).toBe(1);
    expect(b.count('/messaging/messages')).toBe(0);
    expect(b.requests[0]!.batchSize).toBe(50);
    expect(indexes).toEqual(range(50).map((i) => BigInt(i + 1)));
    const stored = b.store.from(3n, 0n);
    expect(stored.map((m) => [m.index, text(m.data)])).toEqual(range(50).map((i) => [BigInt(i + 1), `m${i}`]));
  });

  it('splits batches at maxMessages and maxBytes, one request in flight at a time', async () => {
    const b = await broker();
    const client = await openClient({ urls: [b.url], batching: { maxMessages: 10, maxBytes: 1 << 20 } });
    const indexes = await Promise.all(range(45).map(() => client.publish({ type: 1, topicID: 1n, data: bytes('x') })));
    expect(new Set(indexes).size).toBe(45);
    const sizes = b.requests.map((r) => r.batchSize);
    expect(sizes).toEqual([10, 10, 10, 10, 5]);
    const bySize = await openClient({ urls: [b.url], batching: { maxBytes: 3 * (22 + 100) } });
    await Promise.all(range(7).map(() => bySize.publish({ type: 1, topicID: 1n, data: new Uint8Array(100).fill(1) })));
    expect(b.requests.slice(5).map((r) => r.batchSize ?? 1)).toEqual([3, 3, 1]);
  });

  it('sends a lone message with the single-message route', async () => {
    const b = await broker();
    const client = await openClient({ urls: [b.url] });
    expect(await client.publish({ type: 1, topicID: 1n, data: bytes('x') })).toBe(1n);
    expect(b.requests.map((r) => r.path)).toEqual(['/messaging/messages']);
  });

  it('falls back to single requests against an original broker and remembers it for that URL', async () => {
    const b = await broker({ batchRoute: false, errorCodes: false });
    const client = await openClient({ urls: [b.url] });
    const first = await Promise.all(range(20).map((i) => client.publish({ type: 1, topicID: 1n, data: bytes(`a${i}`) })));
    expect(new Set(first).size).toBe(20);
    expect(b.count('/messaging/batch')).toBe(1);
    expect(b.count('/messaging/messages')).toBe(20);
    const second = await Promise.all(range(20).map(() => client.publish({ type: 1, topicID: 1n, data: bytes('b') })));
    expect(new Set([...first, ...second]).size).toBe(40);
    expect(b.count('/messaging/batch')).toBe(1);
    expect(b.count('/messaging/messages')).toBe(40);
  });

  it('gives each caller its own error when a batch is refused as a whole', async () => {
    const b = await broker({
      fail: (r) => (r.path === '/messaging/batch' ? 'INVALID_BATCH' : r.query.get('topicID') === '13' ? 'TOPIC_REQUIRED' : undefined),
    });
    const client = await openClient({ urls: [b.url] });
    const results = await Promise.allSettled(range(6).map((i) => client.publish({ type: 1, topicID: i % 2 === 0 ? 13n : 14n, data: bytes('x') })));
    expect(results.map((r) => r.status)).toEqual(['rejected', 'fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled']);
    for (const r of results) {
      if (r.status === 'rejected') expect((r.reason as BrokerError).code).toBe('TOPIC_REQUIRED');
    }
    expect(b.count('/messaging/batch')).toBe(1);
  });

  it('gives every caller of a batch the error when the cluster has no leader', async () => {
    const b = await broker({ role: 'follower' });
    const client = await openClient({ urls: [b.url], retries: 1 });
    const results = await Promise.allSettled(range(3).map(() => client.publish({ type: 1, topicID: 1n, data: bytes('x') })));
    expect(results.map((r) => r.status === 'rejected' && (r.reason as BrokerError).code)).toEqual(['NO_LEADER', 'NO_LEADER', 'NO_LEADER']);
    expect(b.count('/messaging/batch')).toBe(2);
  });

  it('lets one caller abort while the others of the batch are published', async () => {
    const b = await broker();
    const client = await openClient({ urls: [b.url], batching: { lingerMs: 50 } });
    const controller = new AbortController();
    const kept = client.publish({ type: 1, topicID: 1n, data: bytes('kept') });
    const dropped = client.publish({ type: 1, topicID: 1n, data: bytes('dropped') }, { signal: controller.signal });
    controller.abort();
    await expectCode(dropped, 'ClientError', 'ABORTED');
    expect(await kept).toBe(1n);
    expect(b.store.from(1n, 0n).map((m) => text(m.data))).toEqual(['kept']);
  });

  it('fails queued publishes with CLIENT_CLOSED on close', async () => {
    const b = await broker();
    const client = await openClient({ urls: [b.url], batching: { lingerMs: 10_000 } });
    const pending = client.publish({ type: 1, topicID: 1n, data: bytes('x') });
    await client.close();
    await expectCode(pending, 'BrokerError', 'CLIENT_CLOSED');
    expect(b.requests).toHaveLength(0);
  });
});

describe('Client.publishBatch', () => {
  it('publishes through the batch route and returns consecutive indexes in order', async () => {
    const b = await broker();
    const client = await openClient({ urls: [b.url] });
    await client.publish({ type: 1, topicID: 9n, data: bytes('first') });
    const indexes = await client.publishBatch(range(5).map((i) => ({ type: 2, topicID: BigInt(i), data: bytes(`b${i}`) })));
    expect(indexes).toEqual([2n, 3n, 4n, 5n, 6n]);
    expect(b.requests.at(-1)!.batchSize).toBe(5);
    expect(b.store.from(4n, 0n).map((m) => [m.type, text(m.data)])).toEqual([[2, 'b4']]);
  });

  it('sends lists beyond the limits as several requests', async () => {
    const b = await broker();
    const client = await openClient({ urls: [b.url], batching: { maxMessages: 3 } });
    const indexes = await client.publishBatch(range(7).map(() => ({ type: 1, topicID: 1n, data: bytes('x') })));
    expect(indexes).toEqual(range(7).map((i) => BigInt(i + 1)));
    expect(b.requests.map((r) => r.batchSize)).toEqual([3, 3, 1]);
  });

  it('falls back to one request per message, in order, against an original broker', async () => {
    const b = await broker({ batchRoute: false });
    const client = await openClient({ urls: [b.url] });
    expect(await client.publishBatch(range(4).map((i) => ({ type: 1, topicID: 1n, data: bytes(`o${i}`) })))).toEqual([1n, 2n, 3n, 4n]);
    expect(b.requests.map((r) => r.path)).toEqual(['/messaging/batch', ...range(4).map(() => '/messaging/messages')]);
    expect(b.store.from(1n, 0n).map((m) => text(m.data))).toEqual(['o0', 'o1', 'o2', 'o3']);
  });

  it('follows a redirect to the leader for a batch', async () => {
    const leader = await broker();
    const follower = await broker({ role: 'follower', leaderURL: leader.url });
    const client = await openClient({ urls: [follower.url, leader.url] });
    expect(await client.publishBatch([{ type: 1, topicID: 1n, data: bytes('x') }, { type: 1, topicID: 1n, data: bytes('y') }])).toEqual([1n, 2n]);
    expect(leader.count('/messaging/batch')).toBe(1);
  });

  it('rejects an invalid message before sending anything', async () => {
    const b = await broker();
    const client = await openClient({ urls: [b.url] });
    await expectCode(client.publishBatch([{ type: 1, topicID: 1n, data: bytes('x') }, { type: 1, topicID: 1n, data: new Uint8Array(0) }]), 'BrokerError', 'MESSAGE_DATA_REQUIRED');
    expect(b.requests).toHaveLength(0);
  });
});
