import { describe, expect, it } from '@jest/globals';
import { Client } from '@msg/client';
import { makeTempDir } from '@msg/test-utils';
import { runServerCommand, startBroker } from '../src/broker-process.js';
import { FAST_RAFT_ARGS, readJoinToken, startCluster, status, waitForLeader, waitForLog, waitForMembers } from '../src/cluster.js';
import { readTopic, waitForTopicIndex } from '../src/topic.js';

const TOPIC = 11n;

async function publishTexts(urls: readonly string[], texts: readonly string[]): Promise<bigint> {
  const client = new Client({ urls, pingIntervalMs: 0 });
  await client.open();
  try {
    const indexes = await client.publishBatch(texts.map((t) => ({ type: 1, topicID: TOPIC, data: Buffer.from(t) })));
    return indexes.at(-1)!;
  } finally {
    await client.close();
  }
}

function texts(prefix: string, count: number): string[] {
  return Array.from({ length: count }, (_v, i) => `${prefix}-${i}`);
}

describe('cluster membership', () => {
  it('lets a fourth node join a running cluster; it lists four members and serves every message', async () => {
    const nodes = await startCluster(3);
    const before = await publishTexts(
      nodes.map((n) => n.url),
      texts('before', 30),
    );

    const joinToken = await readJoinToken(nodes[0]!.dataDir);
    const fourth = await startBroker({ dataDir: await makeTempDir('msg-it-n4-'), join: nodes.map((n) => n.url), joinToken, args: FAST_RAFT_ARGS });
    const all = [...nodes, fourth];
    await waitForMembers(all, all.map((n) => n.url));
    const client = new Client({ urls: [nodes[0]!.url], pingIntervalMs: 0 });
    await client.open();
    try {
      expect((await client.ping()).map((u) => u.origin).sort()).toEqual(all.map((n) => n.url).sort());
    } finally {
      await client.close();
    }
    const fourthStatus = await status(fourth.url);
    expect([...fourthStatus.urls].sort()).toEqual(all.map((n) => n.url).sort());
    const leader = await waitForLeader(all);

    const after = await publishTexts([fourth.url, ...nodes.map((n) => n.url)], texts('after', 20));
    expect(after).toBeGreaterThan(before);
    const reference = await waitForTopicIndex(leader.url, TOPIC, after);
    expect(reference.messages.map((m) => Buffer.from(m.data).toString())).toEqual([...texts('before', 30), ...texts('after', 20)]);
    const served = await waitForTopicIndex(fourth.url, TOPIC, after);
    expect(served.bytes.equals(reference.bytes)).toBe(true);

    // Restarted with the same --join (as a script would; no token needed, it kept it), it resumes its place: still four members.
    expect(await fourth.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    const again = await startBroker({ dataDir: fourth.dataDir, port: fourth.port, join: nodes.map((n) => n.url), args: FAST_RAFT_ARGS });
    const members = [...nodes, again];
    await waitForMembers(members, members.map((n) => n.url));
    const more = await publishTexts(members.map((n) => n.url), texts('again', 5));
    const latest = await waitForTopicIndex(again.url, TOPIC, more);
    expect(latest.messages.map((m) => Buffer.from(m.data).toString())).toEqual([...texts('before', 30), ...texts('after', 20), ...texts('again', 5)]);
  });

  it('brings a node that joins after the leader compacted its log up to date through a snapshot', async () => {
    const args = ['--snapshot-threshold', '200'];
    const nodes = await startCluster(3, { args });
    const leader = await waitForLeader(nodes);
    // Raft keeps 1024 entries behind a snapshot: write well past that, in
    // batches of 100 (a snapshot is considered after each applied batch).
    let last = 0n;
    for (let from = 0; from < 1500; from += 100) last = await publishTexts([leader.url], texts('early', 1500).slice(from, from + 100));
    await waitForLog(leader, (l) => l.msg === 'raft: log compacted behind the state machine checkpoint' && Number(l.index) > 1100, 'a compaction past index 1100 on the leader');

    const joinToken = await readJoinToken(nodes[0]!.dataDir);
    const fourth = await startBroker({ dataDir: await makeTempDir('msg-it-n4-'), join: [leader.url], joinToken, args: [...FAST_RAFT_ARGS, ...args] });
    const { bytes, messages } = await waitForTopicIndex(fourth.url, TOPIC, last, 60_000);
    expect(fourth.logs.some((l) => l.msg === 'raft: snapshot installed')).toBe(true);
    expect(leader.logs.some((l) => l.msg === 'raft: a follower needs a snapshot; taking one')).toBe(true);
    expect(messages.map((m) => Buffer.from(m.data).toString())).toEqual(texts('early', 1500));
    expect(bytes.equals((await readTopic(leader.url, TOPIC)).bytes)).toBe(true);
    await waitForMembers([...nodes, fourth], [...nodes, fourth].map((n) => n.url));
  });

  it('removes a node with the leave command; the cluster lists three members and keeps committing', async () => {
    const nodes = await startCluster(4);
    const leader = await waitForLeader(nodes);
    const leaving = nodes.find((n) => n !== leader)!;
    const staying = nodes.filter((n) => n !== leaving);
    await publishTexts([leader.url], texts('before', 10));

    const token = await readJoinToken(nodes[0]!.dataDir);
    const result = await runServerCommand(['leave', '--member', leaving.url, '--cluster', staying[0]!.url, '--join-token', token]);
    expect({ code: result.code, signal: result.signal }).toEqual({ code: 0, signal: null });
    const printed = JSON.parse(result.stdout) as { removed: string; config: { voters: string[] } };
    expect(printed.removed).toBe(leaving.url);
    expect([...printed.config.voters].sort()).toEqual(staying.map((n) => n.url).sort());

    await waitForMembers(staying, staying.map((n) => n.url));
    for (const node of staying) {
      const listed = await status(node.url);
      expect(listed.urls).not.toContain(leaving.url);
    }

    // The removed node notices and shuts itself down gracefully.
    expect(await leaving.exited).toEqual({ code: 0, signal: null });
    expect(leaving.logs).toContainEqual(expect.objectContaining({ msg: 'shutting down', reason: 'removed from the cluster' }));

    // Quorum is now 2 of 3: with the removed node AND one more node down,
    // writes still commit (with 4 voters they could not: 2 of 4 is no quorum).
    const down = staying.find((n) => n !== leader)!;
    await down.kill();
    const up = staying.filter((n) => n !== down);
    const last = await publishTexts(
      up.map((n) => n.url),
      texts('after', 10),
    );
    for (const node of up) {
      const { messages } = await waitForTopicIndex(node.url, TOPIC, last);
      expect(messages.map((m) => Buffer.from(m.data).toString())).toEqual([...texts('before', 10), ...texts('after', 10)]);
    }
  });

  it('lets the leader itself leave: a remaining node takes over and writes commit', async () => {
    const nodes = await startCluster(3);
    const leader = await waitForLeader(nodes);
    const staying = nodes.filter((n) => n !== leader);
    await publishTexts([leader.url], texts('before', 10));

    const token = await readJoinToken(nodes[0]!.dataDir);
    const result = await runServerCommand(['leave', '--member', leader.url, '--cluster', staying[0]!.url, '--join-token', token]);
    expect({ code: result.code, signal: result.signal }).toEqual({ code: 0, signal: null });
    await waitForMembers(staying, staying.map((n) => n.url));
    const successor = await waitForLeader(staying);
    expect(successor).not.toBe(leader);
    expect(await leader.exited).toEqual({ code: 0, signal: null });

    const last = await publishTexts(
      staying.map((n) => n.url),
      texts('after', 10),
    );
    for (const node of staying) {
      const { messages } = await waitForTopicIndex(node.url, TOPIC, last);
      expect(messages.map((m) => Buffer.from(m.data).toString())).toEqual([...texts('before', 10), ...texts('after', 10)]);
    }
  });

  it('refuses to remove a node that is not a member, with exit code 65', async () => {
    const nodes = await startCluster(1);
    const token = await readJoinToken(nodes[0]!.dataDir);
    const result = await runServerCommand(['leave', '--member', 'http://127.0.0.1:9', '--cluster', nodes[0]!.url, '--timeout-ms', '5000', '--join-token', token]);
    // 65: refused (unknown member), as `leave --help` documents.
    expect(result.code).toBe(65);
    expect(result.stderr.length).toBeGreaterThan(0);
  });
});
