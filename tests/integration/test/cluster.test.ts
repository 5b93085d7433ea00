import { describe, expect, it } from '@jest/globals';
import { Client, type Message } from '@msg/client';
import { waitFor } from '@msg/test-utils';
import type { BrokerProcess } from '../src/broker-process.js';
import { pingURLs, restart, startCluster, waitForLeader, waitForLog } from '../src/cluster.js';
import { collectStream, readStream, request } from '../src/http-request.js';
import { Publishers } from '../src/publisher.js';
import { readTopic, waitForSameTopic, waitForTopicIndex } from '../src/topic.js';

const TOPIC = 3n;

function followersOf(nodes: readonly BrokerProcess[], leader: BrokerProcess): BrokerProcess[] {
  return nodes.filter((n) => n !== leader && n.alive);
}

describe('a three-node cluster', () => {
  it('redirects a publish sent to a follower to the leader, and every broker streams the same bytes', async () => {
    const nodes = await startCluster(3);
    const leader = await waitForLeader(nodes);
    const follower = followersOf(nodes, leader)[0]!;

    const path = `/messaging/messages?type=1&topicID=${TOPIC}`;
    const redirected = await request(`${follower.url}${path}`, { method: 'POST', body: 'to-a-follower' });
    expect(redirected.status).toBe(307);
    expect(redirected.headers.location).toBe(`${leader.url}${path}`);
    expect(redirected.body.byteLength).toBe(0);
    const heartbeatPath = `/messaging/heartbeat?topicID=${TOPIC}&index=0`;
    const heartbeat = await request(`${follower.url}${heartbeatPath}`, { method: 'POST' });
    expect({ status: heartbeat.status, location: heartbeat.headers.location }).toEqual({ status: 307, location: `${leader.url}${heartbeatPath}` });
    const ping = await request(`${follower.url}/messaging/ping`, { method: 'POST', body: '' });
    expect({ status: ping.status, location: ping.headers.location }).toEqual({ status: 307, location: `${leader.url}/messaging/ping` });
    expect(String(ping.headers['x-broker-members']).split(',').sort()).toEqual(nodes.map((n) => n.url).sort());
    const batchAnswer = await request(`${follower.url}/messaging/batch`, { method: 'POST', body: Buffer.concat([Buffer.from([0, 1, 0, 0, 0, 0, 0, 0, 0, 3]), Buffer.alloc(8), Buffer.from([0, 0, 0, 1, 0x61])]) });
    expect({ status: batchAnswer.status, location: batchAnswer.headers.location }).toEqual({ status: 307, location: `${leader.url}/messaging/batch` });
    // The query goes along verbatim (order, extra parameters, escapes).
    const oddPath = `/messaging/messages?topicID=${TOPIC}&x=a%20b&type=1`;
    const odd = await request(`${follower.url}${oddPath}`, { method: 'POST', body: 'odd' });
    expect({ status: odd.status, location: odd.headers.location }).toEqual({ status: 307, location: `${leader.url}${oddPath}` });

    // The follower first: its redirect goes to the leader, a member the client was given (redirects are followed
    // only to members).
    const client = new Client({ urls: [follower.url, ...nodes.map((n) => n.url).filter((u) => u !== follower.url)], pingIntervalMs: 0 });
    await client.open();
    let last = 0n;
    try {
      for (let i = 0; i < 40; i++) last = await client.publish({ type: 1, topicID: TOPIC, data: Buffer.from(`m-${i}`) });
    } finally {
      await client.close();
    }

    // A client given only the follower: the follower's redirect names the members, so it reaches the leader.
    const followerOnly = new Client({ urls: [follower.url], pingIntervalMs: 0 });
    await followerOnly.open();
    try {
      const at = await followerOnly.publish({ type: 1, topicID: TOPIC + 1n, data: Buffer.from('through the follower') });
      expect(followerOnly.url?.origin).toBe(leader.url);
      expect((await followerOnly.ping()).map((u) => u.origin).sort()).toEqual(nodes.map((n) => n.url).sort());
      expect((await waitForTopicIndex(leader.url, TOPIC + 1n, at)).messages.map((m) => Buffer.from(m.data).toString())).toEqual(['through the follower']);
    } finally {
      await followerOnly.close();
    }

    const { bytes, messages } = await waitForTopicIndex(leader.url, TOPIC, last);
    expect(messages.map((m) => Buffer.from(m.data).toString())).toEqual(Array.from({ length: 40 }, (_v, i) => `m-${i}`));
    for (const node of nodes) {
      const served = await waitForTopicIndex(node.url, TOPIC, last);
      expect(served.bytes.equals(bytes)).toBe(true);
      const streamed = await readStream(`${node.url}/messaging/messages?topicID=${TOPIC}&index=0&streaming=true`, {
        untilBytes: bytes.byteLength,
      });
      expect(streamed.equals(bytes)).toBe(true);
    }

    // A streaming GET opened on each follower before a publish gets the new message pushed.
    const opened: Promise<void>[] = [];
    const nextFrames = followersOf(nodes, leader).map((node) => {
      let onOpen!: () => void;
      opened.push(new Promise<void>((resolve) => (onOpen = resolve)));
      return readStream(`${node.url}/messaging/messages?topicID=${TOPIC}&index=${last + 1n}&streaming=true`, { untilBytes: 22 + 'pushed'.length, onOpen });
    });
    await Promise.race([Promise.all(opened), Promise.all(nextFrames)]);
    const pushedAt = (await request(`${leader.url}${path}`, { method: 'POST', body: 'pushed' })).headers['x-broker-index'];
    for (const frames of await Promise.all(nextFrames)) {
      expect(frames.readBigUInt64BE(10)).toBe(BigInt(pushedAt as string));
      expect(frames.subarray(22).toString()).toBe('pushed');
    }

    // With both followers gone the last node has no quorum: it steps down
    // (a publish in flight then may fail `unavailable`), and once it knows no
    // leader a publish is answered `not leader` (the original's 500; ours may be 503).
    await Promise.all(followersOf(nodes, leader).map((n) => n.kill()));
    const statuses = new Set<number>();
    const refused = await waitFor(
      async () => {
        const answer = await request(`${leader.url}${path}`, { method: 'POST', body: 'no-quorum', timeoutMs: 3000 }).catch(() => undefined);
        if (answer !== undefined) statuses.add(answer.status);
        return answer?.headers['x-broker-error'] === 'not leader' ? answer : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 100, message: 'a refused publish without quorum' },
    );
    expect(statuses.has(200)).toBe(false);
    expect([500, 503]).toContain(refused.status);
    expect(refused.headers['x-broker-error']).toBe('not leader');
  });

  it('reclaims, on every broker, the segments a heartbeat reported stored (it goes through raft)', async () => {
    const nodes = await startCluster(3, { args: ['--segment-bytes', '1024'] });
    const leader = await waitForLeader(nodes);
    const client = new Client({ urls: [leader.url], pingIntervalMs: 0 });
    await client.open();
    const indexes: bigint[] = [];
    try {
      // 40 messages of 100 bytes, one by one, with 1 KiB segments: several
      // segments (a segment rolls between writes, and a batch is one write).
      for (let i = 0; i < 40; i++) indexes.push(await client.publish({ type: 1, topicID: TOPIC, data: Buffer.from(`${i}`.padStart(100, '-')) }));
    } finally {
      await client.close();
    }
    const heartbeat = await request(`${leader.url}/messaging/heartbeat?topicID=${TOPIC}&index=${indexes[29]}&readerID=it-reader`, { method: 'POST' });
    expect(heartbeat.status).toBe(200);

    const firstIndexes = await Promise.all(
      nodes.map((node) =>
        waitFor(
          async () => {
            const answer = await request(`${node.url}/messaging/messages?topicID=${TOPIC}&index=0`);
            return answer.status === 410 ? (answer.headers['x-broker-first-index'] as string) : undefined;
          },
          { timeoutMs: 15_000, intervalMs: 50, message: `410 from ${node.url}` },
        ),
      ),
    );
    // Segment boundaries are each broker's own (a follower may apply several
    // entries in one write), so each has its own first index in the range.
    for (const [i, node] of nodes.entries()) {
      const firstIndex = BigInt(firstIndexes[i]!);
      expect(firstIndex).toBeGreaterThan(indexes[0]!);
      expect(firstIndex).toBeLessThanOrEqual(indexes[29]! + 1n);
      const { messages } = await readTopic(node.url, TOPIC, firstIndex);
      const kept = indexes.map((index, n) => ({ index, data: `${n}`.padStart(100, '-') })).filter((m) => m.index >= firstIndex);
      expect(messages.map((m) => ({ index: m.index, data: Buffer.from(m.data).toString() }))).toEqual(kept);
    }
  });

  it('elects a new leader when the leader is SIGKILLed under load, losing or moving no acknowledged message', async () => {
    const nodes = await startCluster(3);
    const leader = await waitForLeader(nodes);
    // A stream on a follower, open before the first publish, lives through the leader's death.
    const watched = followersOf(nodes, leader)[0]!;
    const stream = collectStream(`${watched.url}/messaging/messages?topicID=${TOPIC}&index=0&streaming=true`);
    await stream.opened;
    const publishers = new Publishers({ urls: nodes.map((n) => n.url), topicID: TOPIC, workers: 4 });
    publishers.start();
    try {
      await waitFor(() => publishers.acked.size >= 100, { timeoutMs: 30_000, message: '100 acknowledgements' });
      await leader.kill();
      const ackedAtKill = publishers.acked.size;
      const survivors = followersOf(nodes, leader);
      const successor = await waitForLeader(survivors);
      expect(successor).not.toBe(leader);
      await waitFor(() => publishers.acked.size >= ackedAtKill + 100, { timeoutMs: 30_000, message: '100 acknowledgements after the kill' });
    } finally {
      await publishers.stop();
    }
    expect(publishers.failures.length).toBeGreaterThan(0);

    const last = publishers.maxAckedIndex;
    const survivors = followersOf(nodes, leader);
    const served = await waitForSameTopic(survivors.map((n) => n.url), TOPIC, last);
    for (const [i, node] of survivors.entries()) publishers.verify(served[i]!.messages, node.url);
    try {
      const want = served[0]!.bytes;
      await waitFor(() => stream.received >= want.byteLength, { timeoutMs: 20_000, message: `the follower's stream reaching ${want.byteLength} bytes` });
      expect(stream.ended).toBe(false);
      expect(stream.bytes().subarray(0, want.byteLength).equals(want)).toBe(true);
    } finally {
      stream.close();
    }

    // The killed node, restarted with its data dir, catches up to the same bytes.
    const back = await restart(leader);
    const all = await waitForSameTopic([...survivors, back].map((n) => n.url), TOPIC, last);
    publishers.verify(all[2]!.messages, back.url);
  });

  it('lets @msg/client publish and a Conn stream through a SIGKILL of the leader (failover, resume after the last index)', async () => {
    const nodes = await startCluster(3);
    const leader = await waitForLeader(nodes);
    const urls = nodes.map((n) => n.url);
    // The conn streams from the leader, the node that dies.
    const client = new Client({
      urls: [leader.url, ...urls.filter((u) => u !== leader.url)],
      pingIntervalMs: 0,
      retries: 30,
      backoff: { initialMs: 50, maxMs: 200 },
      requestTimeoutMs: 3000,
      conn: { reconnect: { initialMs: 100, maxMs: 100 }, responseTimeoutMs: 3000 },
    });
    await client.open();
    const conn = client.conn(TOPIC);
    conn.open(0n);
    const streamed: Message[] = [];
    let target = 0n;
    const consuming = (async () => {
      for await (const message of conn) {
        streamed.push(message);
        if (target > 0n && message.index >= target) return;
      }
    })();
    const acked = new Map<bigint, string>();
    let stop = false;
    const publishing = Promise.all(
      [0, 1, 2].map(async (w) => {
        for (let i = 0; !stop && i < 100_000; i++) {
          const data = `c${w}-${i}`;
          try {
            acked.set(await client.publish({ type: 1, topicID: TOPIC, data: Buffer.from(data) }), data);
          } catch {
            // Gave up after its retries: this one may or may not be committed.
          }
        }
      }),
    );
    try {
      await waitFor(() => acked.size >= 100, { timeoutMs: 30_000, message: '100 acknowledgements' });
      await leader.kill();
      const ackedAtKill = acked.size;
      await waitFor(() => acked.size >= ackedAtKill + 100, { timeoutMs: 30_000, message: '100 acknowledgements after the kill' });
    } finally {
      stop = true;
      await publishing;
    }

    // At least once: every acknowledged index holds the acknowledged data.
    const survivor = followersOf(nodes, leader)[0]!;
    const last = [...acked.keys()].reduce((a, b) => (a > b ? a : b));
    const { messages } = await waitForTopicIndex(survivor.url, TOPIC, last);
    const byIndex = new Map(messages.map((m) => [m.index, Buffer.from(m.data).toString()]));
    for (const [index, data] of acked) expect(byIndex.get(index)).toBe(data);

    // The conn reconnected elsewhere and resumed after its last index: the
    // whole topic, each index once, in order.
    target = messages.at(-1)!.index;
    try {
      await waitFor(() => (streamed.at(-1)?.index ?? 0n) >= target, { timeoutMs: 30_000, message: `the conn reaching index ${target}` });
    } finally {
      await client.close();
      await consuming;
    }
    // (A publish that timed out may still commit later, after `target`.)
    const upToTarget = streamed.filter((m) => m.index <= target);
    expect(upToTarget.map((m) => m.index)).toEqual(messages.map((m) => m.index));
    expect(upToTarget.map((m) => Buffer.from(m.data).toString())).toEqual(messages.map((m) => Buffer.from(m.data).toString()));
    expect(new Set(streamed.map((m) => m.index)).size).toBe(streamed.length);
  });

  it('hands leadership over when the leader gets SIGTERM under load, exits 0, and loses no acknowledged message', async () => {
    const nodes = await startCluster(3);
    const leader = await waitForLeader(nodes);
    const publishers = new Publishers({ urls: nodes.map((n) => n.url), topicID: TOPIC, workers: 4 });
    publishers.start();
    let successor: BrokerProcess;
    try {
      await waitFor(() => publishers.acked.size >= 100, { timeoutMs: 30_000, message: '100 acknowledgements' });
      expect(await leader.stop('SIGTERM')).toEqual({ code: 0, signal: null });
      const ackedAtStop = publishers.acked.size;
      successor = await waitForLeader(followersOf(nodes, leader));
      expect(successor).not.toBe(leader);
      await waitFor(() => publishers.acked.size >= ackedAtStop + 100, { timeoutMs: 30_000, message: '100 acknowledgements after the stop' });
    } finally {
      await publishers.stop();
    }
    // The leader handed over (no election timeout was needed).
    expect(successor.logs.some((l) => l.msg === 'raft: leadership transfer to this node')).toBe(true);
    // A stopped node is still a member (only `leave` removes one).
    expect((await pingURLs(successor.url))?.sort()).toEqual(nodes.map((n) => n.url).sort());

    const last = publishers.maxAckedIndex;
    for (const node of followersOf(nodes, leader)) {
      const { messages } = await waitForTopicIndex(node.url, TOPIC, last);
      publishers.verify(messages, node.url);
    }
  });

  it('catches a restarted node up through a snapshot once the leader compacted its log past it', async () => {
    const snapshotArgs = ['--snapshot-threshold', '200'];
    const nodes = await startCluster(3, { args: snapshotArgs });
    const leader = await waitForLeader(nodes);
    const lagging = followersOf(nodes, leader)[0]!;

    const client = new Client({ urls: [leader.url], pingIntervalMs: 0 });
    await client.open();
    try {
      const publish = async (from: number, count: number): Promise<bigint[]> =>
        client.publishBatch(Array.from({ length: count }, (_v, i) => ({ type: 1, topicID: TOPIC, data: Buffer.from(`s-${from + i}`) })));
      await publish(0, 50);
      await waitForTopicIndex(lagging.url, TOPIC, 50n);
      const lastSeen = (await readTopic(lagging.url, TOPIC)).messages.at(-1)!.index;
      await lagging.kill();

      // Raft keeps 1024 entries behind a snapshot: write well past that, so
      // the leader's log no longer holds the entries the node needs.
      let last = 0n;
      for (let from = 50; from < 1850; from += 100) last = (await publish(from, 100)).at(-1)!;
      // The broker keeps its state on disk: the leader compacts behind its checkpoint (no copy of the topics) ...
      await waitForLog(leader, (l) => l.msg === 'raft: log compacted behind the state machine checkpoint' && Number(l.index) > Number(lastSeen) + 1024, `a compaction on the leader past ${lastSeen} + 1024`);

      const back = await restart(lagging, { args: snapshotArgs });
      const { messages } = await waitForTopicIndex(back.url, TOPIC, last, 60_000);
      expect(back.logs.some((l) => l.msg === 'raft: snapshot installed')).toBe(true);
      // ... and takes a full snapshot only for the node that needs one.
      expect(leader.logs.some((l) => l.msg === 'raft: a follower needs a snapshot; taking one')).toBe(true);
      expect(leader.logs.some((l) => l.msg === 'raft: snapshot taken')).toBe(true);
      expect(messages.map((m) => Buffer.from(m.data).toString())).toEqual(Array.from({ length: 1850 }, (_v, i) => `s-${i}`));
      const reference = await readTopic(leader.url, TOPIC);
      expect((await readTopic(back.url, TOPIC)).bytes.equals(reference.bytes)).toBe(true);
    } finally {
      await client.close();
    }
  });
});
