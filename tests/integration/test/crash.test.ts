import { describe, expect, it } from '@jest/globals';
import { waitFor } from '@msg/test-utils';
import type { BrokerProcess } from '../src/broker-process.js';
import { restart, startCluster, status, waitForLeader } from '../src/cluster.js';
import { Publishers } from '../src/publisher.js';
import { waitForSameTopic } from '../src/topic.js';

const TOPIC = 21n;

/** A small seeded PRNG (mulberry32): uniform numbers in [0, 1). */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const FAULTS = ['SIGKILL', 'SIGTERM', 'SIGSTOP'] as const;

describe('crashes and pauses of a three-node cluster', () => {
  it('serves every acknowledged message after all three nodes are SIGKILLed at once and restarted', async () => {
    const nodes = await startCluster(3);
    const publishers = new Publishers({ urls: nodes.map((n) => n.url), topicID: TOPIC, workers: 4 });
    publishers.start();
    try {
      await waitFor(() => publishers.acked.size >= 200, { timeoutMs: 30_000, message: '200 acknowledgements' });
      await Promise.all(nodes.map((n) => n.kill()));
    } finally {
      await publishers.stop();
    }

    const back: BrokerProcess[] = [];
    for (const node of nodes) back.push(await restart(node));
    await waitForLeader(back);
    const last = publishers.maxAckedIndex;
    const served = await waitForSameTopic(back.map((n) => n.url), TOPIC, last);
    for (const [i, node] of back.entries()) publishers.verify(served[i]!.messages, node.url);
  });

  it('deposes a paused leader (SIGSTOP); resumed, it follows the new leader and nothing acknowledged is lost or moved', async () => {
    const nodes = await startCluster(3);
    const leader = await waitForLeader(nodes);
    const others = nodes.filter((n) => n !== leader);
    const publishers = new Publishers({ urls: nodes.map((n) => n.url), topicID: TOPIC, workers: 4, requestTimeoutMs: 2000 });
    publishers.start();
    let resumed = false;
    try {
      await waitFor(() => publishers.acked.size >= 100, { timeoutMs: 30_000, message: '100 acknowledgements' });
      process.kill(leader.pid, 'SIGSTOP');
      const ackedAtPause = publishers.acked.size;
      // The two others elect a leader among themselves and keep committing.
      const successor = await waitFor(
        async () => {
          const states = await Promise.all(others.map((n) => status(n.url)));
          const at = states.findIndex((s) => s.isLeader);
          return at >= 0 ? others[at] : undefined;
        },
        { timeoutMs: 20_000, intervalMs: 50, message: 'a leader among the unpaused nodes' },
      );
      await waitFor(() => publishers.acked.size >= ackedAtPause + 100, { timeoutMs: 30_000, message: '100 acknowledgements during the pause' });

      process.kill(leader.pid, 'SIGCONT');
      resumed = true;
      // The old leader learns of the newer term and names the new leader.
      await waitFor(async () => (await status(leader.url)).leaderURL === successor.url && !(await status(leader.url)).isLeader, {
        timeoutMs: 20_000,
        intervalMs: 50,
        message: `the resumed node following ${successor.url}`,
      });
      const ackedAtResume = publishers.acked.size;
      await waitFor(() => publishers.acked.size >= ackedAtResume + 50, { timeoutMs: 30_000, message: '50 acknowledgements after the resume' });
    } finally {
      if (!resumed) process.kill(leader.pid, 'SIGCONT');
      await publishers.stop();
    }

    const last = publishers.maxAckedIndex;
    const served = await waitForSameTopic(nodes.map((n) => n.url), TOPIC, last);
    for (const [i, node] of nodes.entries()) publishers.verify(served[i]!.messages, node.url);
  });

  it('loses or moves no acknowledged message through rounds of random crashes, stops and pauses (seeded)', async () => {
    const seed = 20261124;
    const random = seeded(seed);
    const nodes = await startCluster(3);
    const publishers = new Publishers({ urls: nodes.map((n) => n.url), topicID: TOPIC, workers: 4, requestTimeoutMs: 2000 });
    const history: string[] = [];
    publishers.start();
    try {
      for (let round = 0; round < 4; round++) {
        const at = Math.floor(random() * nodes.length);
        const fault = FAULTS[Math.floor(random() * FAULTS.length)]!;
        const node = nodes[at]!;
        const acked = publishers.acked.size;
        history.push(`round ${round}: ${fault} node ${at + 1} (${node.url}) at ${acked} acknowledgements`);
        if (fault === 'SIGSTOP') {
          process.kill(node.pid, 'SIGSTOP');
          await waitFor(() => publishers.acked.size >= acked + 30, { timeoutMs: 30_000, message: `progress with node ${at + 1} paused` });
          process.kill(node.pid, 'SIGCONT');
        } else {
          if (fault === 'SIGKILL') await node.kill();
          else expect(await node.stop('SIGTERM')).toEqual({ code: 0, signal: null });
          await waitFor(() => publishers.acked.size >= acked + 30, { timeoutMs: 30_000, message: `progress with node ${at + 1} down` });
          nodes[at] = await restart(node);
        }
        await waitForLeader(nodes);
        const now = publishers.acked.size;
        await waitFor(() => publishers.acked.size >= now + 30, { timeoutMs: 30_000, message: 'progress after the round' });
      }
    } catch (error) {
      throw new Error(`seed ${seed}; ${history.join('; ')}`, { cause: error });
    } finally {
      for (const node of nodes) if (node.alive) process.kill(node.pid, 'SIGCONT');
      await publishers.stop();
    }

    const last = publishers.maxAckedIndex;
    try {
      const served = await waitForSameTopic(nodes.map((n) => n.url), TOPIC, last);
      for (const [i, node] of nodes.entries()) publishers.verify(served[i]!.messages, node.url);
    } catch (error) {
      throw new Error(`seed ${seed}; ${history.join('; ')}`, { cause: error });
    }
    expect(publishers.acked.size).toBeGreaterThan(240);
  });
});
