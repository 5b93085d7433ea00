import { describe, expect, it } from '@jest/globals';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { type BrokerError, MessageType, decodeMessages, encodeFrame, encodeMessage, encodeMessages, encodeSetTopicMaxIndex, frameTopicID, frameType, isBrokerError, splitFrames } from '@msg/wire';
import { EntryType, RaftError } from 'raft-ts';
import { sleep } from '@msg/test-utils';
import { Broker } from './broker.js';
import { isBrokerStateError } from './errors.js';
import { concat, openTestBroker, readAll, text } from '../test/helpers.js';

async function failure(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a failure');
}

describe('Broker', () => {
  it('publishes a message at the index of its log entry and reads it back', async () => {
    await using t = await openTestBroker();
    const { broker } = t;
    expect(await broker.publish(text(7n, 'hello-0'))).toBe(1n);
    expect(await broker.publish(text(7n, 'hello-1'))).toBe(2n);
    expect(await broker.publish(text(8n, 'other'))).toBe(3n);
    expect(await readAll((await broker.openTopicReader(7n, 0n)).messages())).toEqual([
      [1n, 'hello-0'],
      [2n, 'hello-1'],
    ]);
    expect(await readAll((await broker.openTopicReader(7n, 2n)).messages())).toEqual([[2n, 'hello-1']]);
    expect(broker.lastIndex(7n)).toBe(2n);
    expect(broker.topicIDs()).toEqual([7n, 8n]);
    expect(broker.appliedIndex()).toBeLessThanOrEqual(3);
    expect(broker.status().appliedIndex).toBe(3);
  });

  it('serves raw frames in the original encoding', async () => {
    await using t = await openTestBroker();
    await t.broker.publish({ type: 1, topicID: 7n, data: new TextEncoder().encode('hello-0') });
    const bytes = await concat(await t.broker.openTopicReader(7n, 0n));
    expect(bytes.toString('hex')).toBe('0001' + '0000000000000007' + '0000000000000001' + '00000007' + Buffer.from('hello-0').toString('hex'));
  });

  it('keeps topics in folders named by decimal topic id', async () => {
    await using t = await openTestBroker();
    await t.broker.publish(text(2n ** 64n - 1n, 'big'));
    const states = (await readdir(t.dir)).filter((n) => n.startsWith('state-'));
    expect(states).toHaveLength(1);
    expect(await readdir(join(t.dir, states[0]!))).toEqual(['18446744073709551615']);
  });

  it('publishes a batch at consecutive indexes through one log call', async () => {
    await using t = await openTestBroker();
    await t.broker.publish(text(1n, 'first'));
    const range = await t.broker.publishBatch([text(1n, 'a'), text(2n, 'b'), text(1n, 'c')]);
    expect(range).toEqual({ firstIndex: 2n, lastIndex: 4n, duplicates: 0 });
    expect(await readAll((await t.broker.openTopicReader(1n, 0n)).messages())).toEqual([
      [1n, 'first'],
      [2n, 'a'],
      [4n, 'c'],
    ]);
    expect(t.log.entries).toHaveLength(4);
    expect(await failure(t.broker.publishBatch([]))).toMatchObject({ code: 'INVALID_BATCH' });
  });

  it('turns NOT_LEADER into a BrokerError carrying the leader URL, and NO_LEADER when none is known', async () => {
    await using t = await openTestBroker();
    t.log.leading = false;
    const error = await failure(t.broker.publish(text(1n, 'x')));
    expect(isBrokerError(error, 'NOT_LEADER')).toBe(true);
    expect((error as BrokerError).leaderURL).toBe('http://127.0.0.1:9001');
    expect(isBrokerError(await failure(t.broker.publishBatch([text(1n, 'x')])), 'NOT_LEADER')).toBe(true);
    expect(isBrokerError(await failure(t.broker.heartbeat(1n, 0n)), 'NOT_LEADER')).toBe(true);
    // A follower's log may lag: any index is redirected, never refused as invalid.
    expect(isBrokerError(await failure(t.broker.heartbeat(1n, 1000n)), 'NOT_LEADER')).toBe(true);
    t.log.leaderURL = undefined;
    expect(isBrokerError(await failure(t.broker.publish(text(1n, 'x'))), 'NO_LEADER')).toBe(true);
  });

  it('maps the other raft errors to BrokerErrors, and passes I/O errors through', async () => {
    await using t = await openTestBroker();
    const cases: [RaftError, string][] = [
      [new RaftError('NO_LEADER', 'no leader'), 'NO_LEADER'],
      [new RaftError('CLOSED', 'closed'), 'BROKER_CLOSED'],
      // The entry is in the log and may still commit: not "unavailable" (which says nothing was written).
      [new RaftError('LEADERSHIP_LOST', 'leadership lost before the entry was applied: it may still commit'), 'OUTCOME_UNKNOWN'],
      [new RaftError('UNREACHABLE', 'peer down'), 'UNAVAILABLE'],
      [new RaftError('APPLY_FAILED', 'disk'), 'INTERNAL'],
    ];
    for (const [raftError, code] of cases) {
      t.log.apply = () => Promise.reject(raftError);
      t.log.applyBatch = () => Promise.reject(raftError);
      for (const call of [t.broker.publish(text(1n, 'x')), t.broker.publishBatch([text(1n, 'x')]), t.broker.heartbeat(1n, 0n)]) {
        const error = await failure(call);
        expect(error).toMatchObject({ code, cause: raftError });
      }
    }
    const io = Object.assign(new Error('EIO'), { code: 'EIO' });
    t.log.apply = () => Promise.reject(io);
    expect(await failure(t.broker.publish(text(1n, 'x')))).toBe(io);
  });

  it('rejects with the reason of an already aborted signal before anything is appended', async () => {
    await using t = await openTestBroker();
    const reason = new Error('client gone');
    const aborted = AbortSignal.abort(reason);
    expect(await failure(t.broker.publish(text(1n, 'x'), aborted))).toBe(reason);
    expect(await failure(t.broker.publishBatch([text(1n, 'x')], aborted))).toBe(reason);
    expect(await failure(t.broker.heartbeat(1n, 0n, aborted))).toBe(reason);
    expect(t.log.entries).toHaveLength(0);
    const live = new AbortController();
    expect(await t.broker.publish(text(1n, 'y'), live.signal)).toBe(1n);
    expect(await t.broker.publishBatch([text(1n, 'z')], live.signal)).toEqual({ firstIndex: 2n, lastIndex: 2n, duplicates: 0 });
    await t.broker.heartbeat(1n, 1n, live.signal, 'reader-a');
    expect(t.broker.status().topics[0]?.readers).toEqual([{ id: 'reader-a', index: 1n }]);
  });

  it('rejects a client message with the 0x8000 bit with a log line, and keeps accepting writes', async () => {
    await using t = await openTestBroker();
    for (const type of [0x8000, 0x8001, 0xffff]) {
      const error = await failure(t.broker.publish({ type, topicID: 0n, data: new Uint8Array(3) }));
      expect(isBrokerError(error, 'INVALID_MESSAGE')).toBe(true);
    }
    expect(await failure(t.broker.publishBatch([text(1n, 'ok'), { type: 0x8000, topicID: 1n, data: new Uint8Array(0) }]))).toMatchObject({ code: 'INVALID_MESSAGE' });
    expect(t.logger.lines.filter((l) => l.level === 'warn' && l.msg.includes('broker type bit'))).toHaveLength(4);
    expect(t.log.entries).toHaveLength(0);
    expect(await t.broker.publish(text(1n, 'after'))).toBe(1n);
  });

  it('puts a given frame into the log as it is and stores those bytes in the topic, with the index set (single and batch)', async () => {
    await using t = await openTestBroker();
    const single = encodeFrame({ type: 3, topicID: 7n, data: new TextEncoder().encode('single') });
    expect(await t.broker.publish({ type: 3, topicID: 7n, data: single.subarray(22), frame: single })).toBe(1n);
    // A batch body as @msg/http splits it: the frames are views of the body.
    const posted = encodeMessages([
      { type: 1, topicID: 7n, index: 0n, data: new Uint8Array(5000).fill(1) },
      { type: 2, topicID: 2n ** 64n - 1n, index: 0n, data: new TextEncoder().encode('other topic') },
      { type: 0x7fff, topicID: 7n, index: 0n, data: new TextEncoder().encode('c') },
    ]);
    const frames = splitFrames(posted);
    const range = await t.broker.publishBatch(frames.map((frame) => ({ type: frameType(frame), topicID: frameTopicID(frame), data: frame.subarray(22), frame })));
    expect(range).toEqual({ firstIndex: 2n, lastIndex: 4n, duplicates: 0 });
    // The log entries are the very frames handed in.
    expect(t.log.entries.map((e) => e.data)).toEqual([single, ...frames]);
    expect(t.log.entries[1]!.data).toBe(frames[0]);
    // The topic holds the posted bytes, byte for byte, but for the index field the log assigned.
    const withIndex = (frame: Uint8Array, index: bigint): Buffer => {
      const out = Buffer.from(frame);
      out.writeBigUInt64BE(index, 10);
      return out;
    };
    expect((await concat(await t.broker.openTopicReader(7n, 0n))).equals(Buffer.concat([withIndex(single, 1n), withIndex(frames[0]!, 2n), withIndex(frames[2]!, 4n)]))).toBe(true);
    expect((await concat(await t.broker.openTopicReader(2n ** 64n - 1n, 0n))).equals(withIndex(frames[1]!, 3n))).toBe(true);
    // The frames handed in are not modified.
    expect(Buffer.concat(frames).equals(Buffer.from(posted))).toBe(true);
    expect(t.broker.metrics().bytesApplied).toBe(BigInt(6 + 5000 + 11 + 1));
  });

  it('checks the broker type bit on the frame it is given, the bytes that would enter the log', async () => {
    await using t = await openTestBroker();
    const frame = encodeFrame({ type: 0x8000, topicID: 0n, data: new Uint8Array(16) });
    expect(await failure(t.broker.publish({ type: 1, topicID: 0n, data: new Uint8Array(16), frame }))).toMatchObject({ code: 'INVALID_MESSAGE' });
    expect(await failure(t.broker.publishBatch([{ ...text(1n, 'ok'), frame: encodeFrame(text(1n, 'ok')) }, { type: 1, topicID: 0n, data: new Uint8Array(16), frame }]))).toMatchObject({
      code: 'INVALID_MESSAGE',
    });
    expect(t.log.entries).toHaveLength(0);
  });

  it('rejects messages whose fields do not fit the wire format', async () => {
    await using t = await openTestBroker();
    expect(await failure(t.broker.publish({ type: 70000, topicID: 1n, data: new Uint8Array(0) }))).toMatchObject({ code: 'INVALID_MESSAGE' });
    expect(await failure(t.broker.publish({ type: 1, topicID: -1n, data: new Uint8Array(0) }))).toMatchObject({ code: 'INVALID_MESSAGE' });
  });

  it('ignores committed entries that are not messages with a log line, and applies later ones', async () => {
    await using t = await openTestBroker();
    await t.log.appendRaw(Uint8Array.from([1, 2, 3]));
    const truncated = encodeMessage({ type: 1, topicID: 1n, index: 0n, data: new Uint8Array(10) }).subarray(0, 25);
    await t.log.appendRaw(truncated);
    expect(await t.broker.publish(text(1n, 'fine'))).toBe(3n);
    expect(await readAll((await t.broker.openTopicReader(1n, 0n)).messages())).toEqual([[3n, 'fine']]);
    expect(t.logger.lines.filter((l) => l.msg === 'ignored a log entry that is not a message')).toHaveLength(2);
    expect(t.broker.status().counters.ignored).toBe(2);
    expect(t.broker.status().appliedIndex).toBe(3);
  });

  it('ignores SetTopicMaxIndex messages with a malformed body with a log line (the original crashed)', async () => {
    await using t = await openTestBroker();
    await t.broker.publish(text(1n, 'a'));
    for (const size of [0, 8, 15]) {
      await t.log.appendRaw(encodeMessage({ type: MessageType.SetTopicMaxIndex, topicID: 0n, index: 0n, data: new Uint8Array(size) }));
    }
    await t.log.appendRaw(encodeMessage({ type: 0x8123, topicID: 0n, index: 0n, data: new Uint8Array(16) }));
    expect(await t.broker.publish(text(1n, 'b'))).toBe(6n);
    expect(t.logger.lines.filter((l) => l.msg === 'ignored a SetTopicMaxIndex message with a malformed body')).toHaveLength(3);
    expect(t.logger.lines.filter((l) => l.msg === 'ignored an internal message of unknown type')).toHaveLength(1);
    expect(await readAll((await t.broker.openTopicReader(1n, 0n)).messages())).toEqual([
      [1n, 'a'],
      [6n, 'b'],
    ]);
  });

  it('ignores a reader report above the topic last index with a log line', async () => {
    await using t = await openTestBroker();
    await t.broker.publish(text(5n, 'a'));
    await t.log.appendRaw(encodeMessage({ type: MessageType.SetTopicMaxIndex, topicID: 0n, index: 0n, data: encodeSetTopicMaxIndex({ topicID: 5n, index: 1000n }) }));
    await t.log.appendRaw(encodeMessage({ type: MessageType.SetTopicMaxIndex, topicID: 0n, index: 0n, data: encodeSetTopicMaxIndex({ topicID: 99n, index: 1n }) }));
    expect(t.logger.lines.filter((l) => l.msg === 'ignored a reader report above the topic last index')).toHaveLength(2);
    expect(t.broker.status().topics[0]?.readers).toEqual([]);
    expect(await t.broker.publish(text(5n, 'b'))).toBe(4n);
  });

  it('accepts on a leader a heartbeat above its lagging commit index but within its log, then ignores it when applied above the topic', async () => {
    await using t = await openTestBroker();
    await t.broker.publish(text(5n, 'a'));
    t.log.uncommitted = 5; // a new leader: entries of the previous term not yet known committed
    expect(await failure(t.broker.heartbeat(5n, 7n))).toMatchObject({ code: 'INVALID_MESSAGE' });
    await t.broker.heartbeat(5n, 4n);
    expect(t.log.entries).toHaveLength(2);
    expect(t.logger.lines.filter((l) => l.msg === 'ignored a reader report above the topic last index')).toHaveLength(1);
    expect(t.logger.lines.filter((l) => l.msg === 'rejected a heartbeat above the last log index')).toHaveLength(1);
  });

  it('rejects a heartbeat above the last log index before it reaches the log', async () => {
    await using t = await openTestBroker();
    await t.broker.publish(text(5n, 'a'));
    expect(await failure(t.broker.heartbeat(5n, 2n))).toMatchObject({ code: 'INVALID_MESSAGE' });
    expect(await failure(t.broker.heartbeat(5n, 1n, undefined, 'x'.repeat(300)))).toMatchObject({ code: 'INVALID_MESSAGE' });
    expect(await failure(t.broker.heartbeat(-1n, 1n))).toMatchObject({ code: 'TOPIC_REQUIRED' });
    expect(await failure(t.broker.heartbeat(1n, 2n ** 64n))).toMatchObject({ code: 'INDEX_REQUIRED' });
    expect(t.log.entries).toHaveLength(1);
    await t.broker.heartbeat(5n, 1n);
    await t.broker.heartbeat(5n, 1n, undefined, 'node-b');
    expect(t.broker.status().topics[0]).toMatchObject({ readers: [{ id: 'node-b', index: 1n }], anonymous: { index: 1n } });
  });

  it('skips Noop and Config entries but records progress past them', async () => {
    await using t = await openTestBroker();
    await t.log.appendRaw(new Uint8Array(0), EntryType.Noop);
    await t.log.appendRaw(new TextEncoder().encode('{}'), EntryType.Config);
    expect(t.broker.status().appliedIndex).toBe(2);
    expect(await t.broker.publish(text(1n, 'x'))).toBe(3n);
  });

  it('reads nothing from an unknown topic when not streaming', async () => {
    await using t = await openTestBroker();
    expect(await readAll((await t.broker.openTopicReader(42n, 0n)).messages())).toEqual([]);
    expect((await concat(await t.broker.openTopicReader(42n, 0n))).byteLength).toBe(0);
  });

  it('wakes a streaming reader of a topic that does not exist yet when its first message is applied', async () => {
    await using t = await openTestBroker();
    const reader = await t.broker.openTopicReader(42n, 0n, { streaming: true });
    const seen: bigint[] = [];
    const done = (async () => {
      for await (const m of reader.messages()) {
        seen.push(m.index);
        if (seen.length === 2) break;
      }
    })();
    await sleep(20);
    expect(reader.attached).toBe(false);
    await t.broker.publish(text(1n, 'elsewhere'));
    await t.broker.publish(text(42n, 'first'));
    await t.broker.publish(text(42n, 'second'));
    await done;
    expect(seen).toEqual([2n, 3n]);
    await reader.close();
  });

  it('ends a streaming reader waiting for a missing topic when it is closed, or when the broker closes', async () => {
    const t = await openTestBroker();
    const a = await t.broker.openTopicReader(42n, 0n, { streaming: true });
    const b = await t.broker.openTopicReader(43n, 0n, { streaming: true });
    const drainA = readAll(a.messages());
    const drainB = concat(b);
    await sleep(10);
    await a.close();
    expect(await drainA).toEqual([]);
    await t.broker.close();
    expect((await drainB).byteLength).toBe(0);
  });

  it('streams messages as they are applied', async () => {
    await using t = await openTestBroker();
    await t.broker.publish(text(3n, 'm1'));
    const reader = await t.broker.openTopicReader(3n, 0n, { streaming: true });
    const frames: Uint8Array[] = [];
    const done = (async () => {
      for await (const chunk of reader) {
        frames.push(chunk);
        const got = [];
        for await (const m of decodeMessages([Buffer.concat(frames)])) got.push(m);
        if (got.length >= 3) break;
      }
    })();
    await t.broker.publish(text(3n, 'm2'));
    await t.broker.publish(text(3n, 'm3'));
    await done;
    await reader.close();
    const got = [];
    for await (const m of decodeMessages([Buffer.concat(frames)])) got.push(m.index);
    expect(got).toEqual([1n, 2n, 3n]);
  });

  it('has an explicit lifecycle with typed errors', async () => {
    const t = await openTestBroker();
    expect(isBrokerStateError(await failure(t.broker.open()), 'ALREADY_OPEN')).toBe(true);
    await t.broker.close();
    expect(isBrokerError(await failure(t.broker.close()), 'BROKER_CLOSED')).toBe(true);
    expect(isBrokerError(await failure(t.broker.publish(text(1n, 'x'))), 'BROKER_CLOSED')).toBe(true);
    expect(isBrokerError(await failure(t.broker.openTopicReader(1n, 0n)), 'BROKER_CLOSED')).toBe(true);
    expect(isBrokerError(await failure(t.broker.open()), 'BROKER_CLOSED')).toBe(true);
    const fresh = new Broker({ dir: t.dir });
    expect(isBrokerStateError(await failure(fresh.publish(text(1n, 'x'))), 'NOT_OPEN')).toBe(true);
    await fresh.open();
    expect(isBrokerStateError(await failure(fresh.publish(text(1n, 'x'))), 'NO_LOG')).toBe(true);
    await fresh.close();
  });

  it('reports status and metrics for the HTTP layer', async () => {
    await using t = await openTestBroker();
    await t.broker.publishBatch([text(1n, 'abc'), text(1n, 'de'), text(2n, 'f')]);
    await t.broker.heartbeat(1n, 1n, undefined, 'r');
    const status = t.broker.status();
    expect(status).toMatchObject({
      isLeader: true,
      leader: 'http://127.0.0.1:9001',
      members: ['http://127.0.0.1:9001', 'http://127.0.0.1:9002'],
      term: 1,
      commitIndex: 4,
      appliedIndex: 4,
    });
    expect(status.counters).toMatchObject({ messagesPublished: 3, bytesPublished: 6, messagesApplied: 3, bytesApplied: 6, readerReports: 1 });
    expect(status.topics.map((s) => [s.id, s.firstIndex, s.lastIndex, s.segments])).toEqual([
      [1n, 1n, 2n, 1],
      [2n, 3n, 3n, 1],
    ]);
    expect(status.topics[0]!.bytes).toBeGreaterThan(0);
    const metrics = t.broker.metrics();
    expect(metrics).toMatchObject({ term: 1n, commitIndex: 4n, appliedIndex: 4n, messagesApplied: 3n, bytesApplied: 6n });
    expect(metrics.topics.map((m) => m.topicID)).toEqual([1n, 2n]);
    expect(t.broker.isLeader()).toBe(true);
    expect(t.broker.leaderURL()).toBe('http://127.0.0.1:9001');
    expect(t.broker.ready()).toEqual({ ready: true });
    t.log.leaderURL = undefined;
    expect(t.broker.ready().ready).toBe(false);
  });

  it('measures checkpoint fsync latency', async () => {
    await using t = await openTestBroker({ checkpointIntervalMs: 0 });
    await t.broker.publish(text(1n, 'x'));
    const { fsync } = t.broker.status();
    expect(fsync.count).toBeGreaterThan(0);
    expect(fsync.totalMs).toBeGreaterThan(0);
    expect(t.broker.metrics().checkpointFsync.count).toBe(fsync.count);
  });
});
