import { describe, expect, it } from '@jest/globals';
import { Client } from '@msg/client';
import { startAnswerDropper } from '../src/answer-dropper.js';
import { startCluster, waitForLeader } from '../src/cluster.js';
import { readTopic, text, waitForTopicIndex } from '../src/topic.js';

const TOPIC = 31n;
const isPublish = (url: string | undefined): boolean => url !== undefined && (url.startsWith('/messaging/messages') || url.startsWith('/messaging/batch'));

/** Publishes `count` payloads `prefix-<i>` through `client`, `concurrency` calls at a time; resolves with each payload's index. */
async function publishAll(client: Client, prefix: string, count: number, concurrency: number): Promise<Map<string, bigint>> {
  const ledger = new Map<string, bigint>();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const payload = `${prefix}-${next++}`;
      ledger.set(payload, await client.publish({ type: 1, topicID: TOPIC, data: Buffer.from(payload) }));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return ledger;
}

/** Every payload of `prefix` in the topic, with how many times it is there and where. */
async function stored(url: string, prefix: string): Promise<Map<string, bigint[]>> {
  const found = new Map<string, bigint[]>();
  for (const m of (await readTopic(url, TOPIC)).messages) {
    const payload = text(m);
    if (!payload.startsWith(`${prefix}-`)) continue;
    found.set(payload, [...(found.get(payload) ?? []), m.index]);
  }
  return found;
}

/** The ledger check: every acknowledged payload is in the topic exactly once, at the index its publish resolved with. */
function expectExactlyOnce(ledger: Map<string, bigint>, found: Map<string, bigint[]>): void {
  const wrong: string[] = [];
  for (const [payload, index] of ledger) {
    const at = found.get(payload) ?? [];
    if (at.length !== 1 || at[0] !== index) wrong.push(`${payload}: acknowledged at ${index}, stored at [${at.join(', ')}]`);
  }
  expect(wrong).toEqual([]);
  expect(found.size).toBe(ledger.size);
}

describe('exactly-once publish through @msg/client', () => {
  it('commits every message once when a proxy forwards publishes and drops one answer in five', async () => {
    const [node] = await startCluster(1);
    let n = 0;
    await using proxy = await startAnswerDropper({ upstream: node!.url, onAnswer: (req) => (isPublish(req.url) && n++ % 5 === 2 ? 'drop' : 'relay') });
    // Only the proxy's URL, and no ping (its answer would teach the broker's own URL).
    const client = new Client({ urls: [proxy.url], pingIntervalMs: 0, retries: 20, backoff: { initialMs: 5, maxMs: 50 } });
    await client.open();
    try {
      const ledger = await publishAll(client, 'once', 200, 8);
      expect(proxy.dropped).toBeGreaterThan(5);
      expectExactlyOnce(ledger, await stored(node!.url, 'once'));
    } finally {
      await client.close();
    }

    // The same faults without producer ids (the original's at-least-once) do duplicate: the check can fail.
    n = 0;
    const plain = new Client({ urls: [proxy.url], pingIntervalMs: 0, retries: 20, backoff: { initialMs: 5, maxMs: 50 }, producerId: false });
    await plain.open();
    try {
      const ledger = await publishAll(plain, 'plain', 50, 4);
      const found = await stored(node!.url, 'plain');
      expect([...found.values()].some((at) => at.length > 1)).toBe(true);
      expect(ledger.size).toBe(50);
    } finally {
      await plain.close();
    }
  }, 90_000);

  it('commits a message once when the leader is killed after its commit and before its answer', async () => {
    const nodes = await startCluster(3);
    const leader = await waitForLeader(nodes);
    const others = nodes.filter((node) => node !== leader);
    let published = 0;
    let killedAt: string | undefined;
    await using proxy = await startAnswerDropper({
      upstream: leader.url,
      onAnswer: async (req, statusCode) => {
        if (!isPublish(req.url) || statusCode !== 200 || ++published !== 30) return 'relay';
        // The 30th publish is committed on a majority and applied on the leader: kill it before it answers.
        killedAt = String(req.headers['x-broker-producer-seq']);
        await leader.kill();
        return 'drop';
      },
    });
    // The proxy first (random 0 picks it), then the two others to fail over to.
    const client = new Client({ urls: [proxy.url, ...others.map((node) => node.url)], random: () => 0, pingIntervalMs: 0, retries: 30, backoff: { initialMs: 20, maxMs: 200 }, requestTimeoutMs: 3000 });
    await client.open();
    let ledger: Map<string, bigint>;
    try {
      ledger = await publishAll(client, 'kill', 60, 1);
    } finally {
      await client.close();
    }
    expect(killedAt).toBe('29');
    await waitForLeader(others);
    const last = [...ledger.values()].reduce((a, b) => (a > b ? a : b));
    for (const node of others) {
      await waitForTopicIndex(node.url, TOPIC, last);
      expectExactlyOnce(ledger, await stored(node.url, 'kill'));
    }
  }, 120_000);
});
