import { describe, expect, it } from '@jest/globals';
import type { AdminReader, JsonAnswer } from './connect.js';
import { LEADER_STATUS } from '../../test/cli-fixtures.js';
import { allReady, formatStatus, gatherStatus, statusJSON } from './status.js';

const FOLLOWER_STATUS = {
  isLeader: false,
  leaderURL: 'http://127.0.0.1:8086',
  term: 3,
  commitIndex: 120,
  appliedIndex: 120,
  raftState: 'follower',
  config: LEADER_STATUS.config,
  replication: { role: 'follower', leaderCommitIndex: 120, lagEntries: 0, lastLeaderContactMs: 30, followers: [] },
  topics: [],
};

/** Answers by URL+path from a table; a URL missing from it is refused like a dead broker. */
function fakeReader(answers: Record<string, JsonAnswer>): AdminReader & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    async get(url, path) {
      asked.push(`${url.origin}${path}`);
      const answer = answers[`${url.origin}${path}`];
      if (answer === undefined) throw Object.assign(new Error(`connect ECONNREFUSED ${url.host}`), { code: 'ECONNREFUSED' });
      return answer;
    },
  };
}

const u = (port: number) => `http://127.0.0.1:${port}`;

describe('gatherStatus', () => {
  it('reads every member of the configuration, its /status and /ready, from one URL', async () => {
    const reader = fakeReader({
      [`${u(8087)}/status`]: { status: 200, body: FOLLOWER_STATUS },
      [`${u(8087)}/ready`]: { status: 200, body: { ready: true } },
      [`${u(8086)}/status`]: { status: 200, body: LEADER_STATUS },
      [`${u(8086)}/ready`]: { status: 200, body: { ready: true } },
      [`${u(8088)}/ready`]: { status: 503, body: { ready: false, reason: 'catching up' } },
    });
    const view = await gatherStatus(reader, [new URL(u(8087))]);
    expect(view.leader).toBe(u(8086));
    expect(view.members.map((m) => [m.url, m.kind, m.reachable, m.ready])).toEqual([
      [u(8086), 'voter', true, true],
      [u(8087), 'voter', true, true],
      [u(8088), 'learner', false, false],
    ]);
    expect(view.members[2]!.readyReason).toBe('catching up');
    expect(allReady(view)).toBe(false);

    const text = formatStatus(view);
    expect(text).toContain('leader http://127.0.0.1:8086, term 3, 3 members');
    expect(text).toMatch(/http:\/\/127\.0\.0\.1:8086 +voter +leader +3 +120 +119 +0 +- +yes/);
    expect(text).toMatch(/http:\/\/127\.0\.0\.1:8087 +voter +follower +3 +120 +120 +0 +30ms +yes/);
    expect(text).toMatch(/http:\/\/127\.0\.0\.1:8088 +learner +unreachable .*no \(connect ECONNREFUSED/);
    expect(text).toContain('replication (as the leader sees it, commit 120):');
    expect(text).toMatch(/http:\/\/127\.0\.0\.1:8088 +20 +100 +4\.5 +40ms +1024\/4096 bytes/);

    const json = statusJSON(view) as { leader: string; members: Record<string, unknown>[] };
    expect(json.leader).toBe(u(8086));
    expect(json.members[2]).toMatchObject({ url: u(8088), reachable: false, ready: false, readyReason: 'catching up', role: null });
    expect(json.members[0]!.replication).toEqual(LEADER_STATUS.replication);
  });

  it('shows "-" for what brokers without replication fields do not report', async () => {
    const old = { isLeader: true, leaderURL: u(9000), members: [u(9000)], term: 2, commitIndex: 4, appliedIndex: 4, topics: [] };
    const view = await gatherStatus(fakeReader({ [`${u(9000)}/status`]: { status: 200, body: old }, [`${u(9000)}/ready`]: { status: 200, body: { ready: true } } }), [
      new URL(u(9000)),
    ]);
    expect(allReady(view)).toBe(true);
    const text = formatStatus(view);
    expect(text).toMatch(/http:\/\/127\.0\.0\.1:9000 +- +leader +2 +4 +4 +0 +- +yes/);
    expect(text).not.toContain('replication');
  });

  it('tries the URLs in turn and fails UNAVAILABLE naming each when none answers', async () => {
    await expect(gatherStatus(fakeReader({}), [new URL(u(1)), new URL(u(2))])).rejects.toMatchObject({
      code: 'UNAVAILABLE',
      exitCode: 69,
      message: expect.stringMatching(/127\.0\.0\.1:1: connect ECONNREFUSED.*127\.0\.0\.1:2: connect ECONNREFUSED/),
    });
  });

  it('fails UNAUTHENTICATED at once when a broker refuses the credentials', async () => {
    await expect(gatherStatus(fakeReader({ [`${u(1)}/status`]: { status: 401, body: {} } }), [new URL(u(1)), new URL(u(2))])).rejects.toMatchObject({
      code: 'UNAUTHENTICATED',
    });
  });
});
