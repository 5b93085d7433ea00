import { describe, expect, it } from '@jest/globals';
import { waitFor } from '@msg/test-utils';
import type { BrokerProcess } from '../src/broker-process.js';
import { restart, startCluster, status, waitForLeader } from '../src/cluster.js';
import { Publishers } from '../src/publisher.js';
import { waitForTopicIndex } from '../src/topic.js';

const TOPIC = 21n;

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
    let reference: Buffer | undefined;
    for (const node of back) {
      const { bytes, messages } = await waitForTopicIndex(node.url, TOPIC, last);
      publishers.verify(messages, node.url);
      reference ??= bytes;
      expect(bytes.equals(reference)).toBe(true);
    }
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
    let reference: Buffer | undefined;
    for (const node of nodes) {
      const { bytes, messages } = await waitForTopicIndex(node.url, TOPIC, last);
      publishers.verify(messages, node.url);
      reference ??= bytes;
      expect(bytes.equals(reference)).toBe(true);
    }
  });
});
