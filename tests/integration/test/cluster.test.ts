import { describe, expect, it } from '@jest/globals';
import { Client } from '@msg/client';
import { waitFor } from '@msg/test-utils';
import type { BrokerProcess } from '../src/broker-process.js';
import { restart, startCluster, waitForLeader } from '../src/cluster.js';
import { readStream, request } from '../src/http-request.js';
import { Publishers } from '../src/publisher.js';
import { readTopic, waitForTopicIndex } from '../src/topic.js';

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

    const client = new Client({ urls: [follower.url], pingIntervalMs: 0 });
    await client.open();
    let last = 0n;
    try {
      for (let i = 0; i < 40; i++) last = await client.publish({ type: 1, topicID: TOPIC, data: Buffer.from(`m-${i}`) });
    } finally {
      await client.close();
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
  });

  it('elects a new leader when the leader is SIGKILLed under load, losing or moving no acknowledged message', async () => {
    const nodes = await startCluster(3);
    const leader = await waitForLeader(nodes);
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
    const reference = await waitForTopicIndex(survivors[0]!.url, TOPIC, last);
    for (const node of survivors) {
      const { bytes, messages } = await waitForTopicIndex(node.url, TOPIC, last);
      publishers.verify(messages, node.url);
      expect(bytes.equals(reference.bytes)).toBe(true);
    }

    // The killed node, restarted with its data dir, catches up to the same bytes.
    const back = await restart(leader);
    const caughtUp = await waitForTopicIndex(back.url, TOPIC, reference.messages.at(-1)!.index);
    publishers.verify(caughtUp.messages, back.url);
    expect(caughtUp.bytes.equals(reference.bytes)).toBe(true);
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
      await waitFor(
        () => leader.logs.some((l) => l.msg === 'raft: snapshot taken' && Number(l.index) > Number(lastSeen) + 1024),
        { timeoutMs: 30_000, message: `a snapshot on the leader past ${lastSeen} + 1024; logs:\n${leader.tail()}` },
      );

      const back = await restart(lagging, { args: snapshotArgs });
      const { messages } = await waitForTopicIndex(back.url, TOPIC, last, 60_000);
      expect(back.logs.some((l) => l.msg === 'raft: snapshot installed')).toBe(true);
      expect(messages.map((m) => Buffer.from(m.data).toString())).toEqual(Array.from({ length: 1850 }, (_v, i) => `s-${i}`));
      const reference = await readTopic(leader.url, TOPIC);
      expect((await readTopic(back.url, TOPIC)).bytes.equals(reference.bytes)).toBe(true);
    } finally {
      await client.close();
    }
  });
});
