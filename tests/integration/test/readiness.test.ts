// Readiness and replication lag of real broker processes: a paused follower
// shows on the leader as lagging, and a follower cut off from its leader stops
// saying it is ready.
import { describe, expect, it } from '@jest/globals';
import { parsePrometheusText, sampleValue, waitFor } from '@msg/test-utils';
import { startCluster, waitForLeader } from '../src/cluster.js';
import { request } from '../src/http-request.js';

const TOPIC = 31n;

interface Follower {
  url: string;
  matchIndex: number;
  lagEntries: number;
  lagSeconds: number;
  lastContactMs: number | null;
}

interface Status {
  commitIndex: number;
  replication: { role: string; leaderCommitIndex: number; lagEntries: number; lastLeaderContactMs: number | null; followers: Follower[] };
}

async function statusOf(url: string): Promise<Status> {
  const answer = await request(`${url}/status`, { timeoutMs: 5000 });
  expect(answer.status).toBe(200);
  return JSON.parse(answer.body.toString()) as Status;
}

async function ready(url: string): Promise<{ status: number; body: { ready: boolean; reason?: string } }> {
  const answer = await request(`${url}/ready`, { timeoutMs: 5000 });
  return { status: answer.status, body: JSON.parse(answer.body.toString()) as { ready: boolean; reason?: string } };
}

async function publish(url: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const answer = await request(`${url}/messaging/messages?type=1&topicID=${TOPIC}`, { method: 'POST', body: `m${i}`, timeoutMs: 5000 });
    expect(answer.status).toBe(200);
  }
}

describe('readiness and lag of a three-node cluster', () => {
  it('shows a paused follower lagging on the leader, and a follower cut off from the leader as not ready', async () => {
    const nodes = await startCluster(3);
    const leader = await waitForLeader(nodes);
    const [near, far] = nodes.filter((n) => n !== leader) as [(typeof nodes)[number], (typeof nodes)[number]];
    await publish(leader.url, 10);
    await waitFor(async () => (await Promise.all(nodes.map((n) => ready(n.url)))).every((r) => r.status === 200), { timeoutMs: 10_000, message: 'every node ready' });

    let paused = [far];
    process.kill(far.pid, 'SIGSTOP');
    try {
      // The leader commits on with the other follower; the paused one falls behind.
      await publish(leader.url, 30);
      await new Promise((r) => setTimeout(r, 200));
      const s = await statusOf(leader.url);
      expect(s.replication.role).toBe('leader');
      const lagging = s.replication.followers.find((f) => f.url === far.url)!;
      const current = s.replication.followers.find((f) => f.url === near.url)!;
      expect(lagging.lagEntries).toBeGreaterThanOrEqual(30);
      expect(lagging.lagSeconds).toBeGreaterThan(0);
      expect(lagging.lastContactMs).toBeGreaterThanOrEqual(200);
      expect(current.matchIndex).toBeGreaterThan(lagging.matchIndex);
      const metrics = (await request(`${leader.url}/metrics`, { timeoutMs: 5000 })).body.toString();
      const families = parsePrometheusText(metrics);
      expect(sampleValue(families, 'msg_raft_follower_lag_entries', { follower: far.url })).toBeGreaterThanOrEqual(30);
      expect(sampleValue(families, 'msg_raft_log_fsync_duration_seconds_count')).toBeGreaterThan(0);
      expect(sampleValue(families, 'msg_raft_commit_duration_seconds_count')).toBeGreaterThan(0);

      // Now the leader is paused too: the remaining follower hears from nobody, cannot be elected
      // (no majority), keeps the leader it knew, and after 3 election timeouts (900 ms) is not ready.
      process.kill(leader.pid, 'SIGSTOP');
      paused = [far, leader];
      const cutOff = await waitFor(
        async () => {
          const r = await ready(near.url);
          return r.status === 503 ? r : undefined;
        },
        { timeoutMs: 10_000, intervalMs: 100, message: 'the cut-off follower not ready' },
      );
      expect(cutOff.body.ready).toBe(false);
      expect(cutOff.body.reason).toMatch(/^no message from the leader for \d+ ms \(bound 900 ms: 3 election timeouts of 300 ms\)$/);
      expect((await statusOf(near.url)).replication.lastLeaderContactMs).toBeGreaterThan(900);
    } finally {
      for (const node of paused) process.kill(node.pid, 'SIGCONT');
    }
    // Resumed, the cluster serves again and every node catches up and is ready.
    await waitFor(async () => (await Promise.all(nodes.map((n) => ready(n.url)))).every((r) => r.status === 200), { timeoutMs: 20_000, intervalMs: 100, message: 'every node ready again' });
    const now = await waitForLeader(nodes);
    await waitFor(async () => (await statusOf(now.url)).replication.followers.every((f) => f.lagEntries === 0), { timeoutMs: 10_000, message: 'no follower lagging' });
  });
});
