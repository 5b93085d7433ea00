// /status, /ready and /metrics of real in-process nodes: replication lag,
// per-topic numbers, and metrics that say what they measure.
import { describe, expect, it } from '@jest/globals';
import { makeTempDir, parsePrometheusText, sampleValue, waitFor } from '@msg/test-utils';
import { readJoinTokenFile } from './join-token-file.js';
import { createLogger } from './logger.js';
import { startServer, type RunningServer } from './server.js';
import { configFor } from '../test/server-config.js';

const quiet = createLogger('error', () => undefined);

async function publish(url: string, topicID: bigint, data: string): Promise<void> {
  const res = await fetch(`${url}/messaging/messages?type=1&topicID=${topicID}`, { method: 'POST', body: data });
  expect(res.status).toBe(200);
}

interface Replication {
  role: string;
  leaderCommitIndex: number;
  lagEntries: number;
  lastLeaderContactMs: number | null;
  followers: { url: string; matchIndex: number; lagEntries: number; lagSeconds: number; lastContactMs: number | null; snapshot: null | { sentBytes: number; totalBytes: number } }[];
}

async function status(url: string): Promise<{ replication: Replication; topics: Record<string, unknown>[]; ready: { ready: boolean } }> {
  return (await (await fetch(`${url}/status`)).json()) as { replication: Replication; topics: Record<string, unknown>[]; ready: { ready: boolean } };
}

describe('startServer: status and metrics', () => {
  it('shows a single node’s replication, topic numbers and honest metrics', async () => {
    const server = await startServer(configFor(await makeTempDir(), { sync: 'always' }), quiet);
    try {
      for (let i = 0; i < 5; i++) await publish(server.url, 9n, `m${i}`);
      const s = await status(server.url);
      expect(s.ready).toEqual({ ready: true });
      expect(s.replication).toEqual({ role: 'leader', leaderCommitIndex: server.raft.commitIndex, lagEntries: 0, lagSeconds: 0, lastLeaderContactMs: 0, followers: [] });
      expect(s.topics).toEqual([expect.objectContaining({ id: '9', messages: 5, openStreams: 0, publishRate: 0.5 })]);
      expect((await fetch(`${server.url}/ready`)).status).toBe(200);

      const res = await fetch(`${server.url}/metrics`);
      expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
      const families = parsePrometheusText(await res.text());
      const v = (name: string, labels: Record<string, string> = {}) => sampleValue(families, name, labels);
      expect(families.get('msg_raft_log_fsync_duration_seconds')?.type).toBe('histogram');
      expect(v('msg_raft_log_fsync_duration_seconds_count')).toBeGreaterThan(0);
      expect(v('msg_raft_commit_duration_seconds_count')).toBeGreaterThanOrEqual(5);
      expect(families.get('msg_broker_checkpoint_fsync_duration_seconds')?.type).toBe('histogram');
      expect(families.has('msg_fsync_duration_seconds')).toBe(false);
      expect(v('msg_raft_role', { role: 'leader' })).toBe(1);
      expect(v('msg_raft_apply_lag_entries')).toBe(0);
      expect(v('msg_raft_elections_started_total')).toBe(1);
      expect(v('msg_raft_leader_changes_total')).toBe(1);
      expect(v('msg_topic_messages_applied_total', { topic_id: '9' })).toBe(5);
      expect(v('msg_topic_open_streams', { topic_id: '9' })).toBe(0);
      expect(v('msg_http_requests_total', { route: 'publish', code: '200' })).toBe(5);
      for (const name of ['msg_nodejs_eventloop_lag_seconds', 'msg_nodejs_heap_size_used_bytes', 'msg_nodejs_gc_duration_seconds']) expect(families.has(name)).toBe(true);
      if (process.platform === 'linux') expect(v('msg_process_open_fds')).toBeGreaterThan(0);
    } finally {
      await server.close();
    }
  });

  it('shows on the leader each follower’s match index and lag, growing for a follower that is down', async () => {
    const firstDir = await makeTempDir();
    const first = await startServer(configFor(firstDir), quiet);
    const others: RunningServer[] = [];
    try {
      const joinToken = (await readJoinTokenFile(firstDir))!.token;
      for (let i = 0; i < 2; i++) others.push(await startServer(configFor(await makeTempDir(), { join: [first.url], joinToken }), quiet));
      const [second, third] = others as [RunningServer, RunningServer];
      await waitFor(() => first.raft.config().voters.length === 3, { timeoutMs: 10_000 });
      await publish(first.url, 1n, 'a');
      await waitFor(async () => (await status(first.url)).replication.followers.every((f) => f.lagEntries === 0 && f.lastContactMs !== null), { timeoutMs: 5000 });
      let s = await status(first.url);
      expect(s.replication.role).toBe('leader');
      expect(s.replication.followers.map((f) => f.url).sort()).toEqual([second.url, third.url].sort());
      for (const f of s.replication.followers) expect(f).toMatchObject({ matchIndex: first.raft.commitIndex, lagEntries: 0, lagSeconds: 0, snapshot: null });
      // A follower's own view: caught up with the leader's commit index, and ready.
      await waitFor(async () => (await status(second.url)).ready.ready, { timeoutMs: 5000 });
      expect((await status(second.url)).replication).toMatchObject({ role: 'follower', lagEntries: 0, followers: [] });

      // The third node goes down; the leader commits on with the second.
      await third.close();
      others.pop();
      for (let i = 0; i < 5; i++) await publish(first.url, 1n, `b${i}`);
      await new Promise((r) => setTimeout(r, 50));
      s = await status(first.url);
      const down = s.replication.followers.find((f) => f.url === third.url)!;
      const up = s.replication.followers.find((f) => f.url === second.url)!;
      expect(down.lagEntries).toBeGreaterThanOrEqual(5);
      expect(down.lagSeconds).toBeGreaterThan(0);
      expect(down.lastContactMs).toBeGreaterThanOrEqual(50);
      await waitFor(async () => (await status(first.url)).replication.followers.find((f) => f.url === second.url)!.lagEntries === 0, { timeoutMs: 5000 });
      expect(up.matchIndex).toBeGreaterThan(down.matchIndex);
      const families = parsePrometheusText(await (await fetch(`${first.url}/metrics`)).text());
      expect(sampleValue(families, 'msg_raft_follower_lag_entries', { follower: third.url })).toBeGreaterThanOrEqual(5);
      expect(sampleValue(families, 'msg_raft_follower_match_index', { follower: second.url })).toBe(first.raft.commitIndex);
      expect(sampleValue(families, 'msg_raft_follower_lag_seconds', { follower: third.url })).toBeGreaterThan(0);
    } finally {
      for (const o of others.reverse()) await o.close();
      await first.close();
    }
  });
});
