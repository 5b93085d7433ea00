import { describe, expect, it } from '@jest/globals';
import { makeTempDir, waitFor } from '@msg/test-utils';
import type { ServerConfig } from './config.js';
import { ExitCodes } from './exit-codes.js';
import { newJoinToken, type JoinToken } from './join-token.js';
import { readJoinTokenFile } from './join-token-file.js';
import { leaveCluster, parseLeaveArgs, runLeave } from './leave.js';
import { createLogger } from './logger.js';
import { startServer, type RunningServer } from './server.js';

function configFor(dataDir: string, join: string[] = [], joinToken?: JoinToken): ServerConfig {
  return {
    joinToken,
    dataDir,
    listen: { host: '127.0.0.1', port: 0 },
    advertiseURL: undefined,
    join,
    sync: 'never',
    maxBodyBytes: 1024 * 1024,
    segmentBytes: 64 * 1024,
    retentionBytes: 0,
    retentionMs: 0,
    electionTimeoutMs: 150,
    heartbeatIntervalMs: 30,
    snapshotThreshold: 1000,
    logLevel: 'warn',
  };
}

const quiet = createLogger('error', () => undefined);

async function run(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runLeave(argv, (t) => (out += t), (t) => (err += t), env);
  return { code, out, err };
}

const token = newJoinToken('0123456789abcdef0123456789abcdef');

describe('leave', () => {
  it('parses --member and --cluster as origins, the join token from --join-token or MSG_JOIN_TOKEN, and names a missing or bad flag', () => {
    expect(parseLeaveArgs(['--member', 'http://a:1/x', '--cluster', 'http://b:2', '--timeout-ms', '50', '--join-token', token.text])).toEqual({
      member: 'http://a:1',
      cluster: 'http://b:2',
      token,
      timeoutMs: 50,
    });
    expect(parseLeaveArgs(['--member', 'http://a:1', '--cluster', 'http://b:2'], { MSG_JOIN_TOKEN: token.text })).toMatchObject({ token });
    expect(() => parseLeaveArgs(['--member', 'http://a:1', '--cluster', 'http://b:2'])).toThrow(expect.objectContaining({ setting: '--join-token' }));
    expect(() => parseLeaveArgs(['--member', 'http://a:1', '--cluster', 'http://b:2'], { MSG_JOIN_TOKEN: 'x' })).toThrow(
      expect.objectContaining({ setting: 'MSG_JOIN_TOKEN' }),
    );
    expect(parseLeaveArgs(['--help'])).toBe('help');
    expect(() => parseLeaveArgs(['--cluster', 'http://b:2'])).toThrow(expect.objectContaining({ code: 'INVALID_CONFIG', setting: '--member' }));
    expect(() => parseLeaveArgs(['--member', 'ftp://a', '--cluster', 'http://b:2'])).toThrow(expect.objectContaining({ setting: '--member' }));
    expect(() => parseLeaveArgs(['--member', 'http://a', '--cluster', 'http://b', '--timeout-ms', '0.5'])).toThrow(
      expect.objectContaining({ setting: '--timeout-ms' }),
    );
    expect(() => parseLeaveArgs(['extra'])).toThrow(expect.objectContaining({ setting: 'arguments' }));
  });

  it('removes a member through a follower (forwarded to the leader), then refuses a second removal with 65', async () => {
    const servers: RunningServer[] = [];
    try {
      const first = configFor(await makeTempDir());
      servers.push(await startServer(first, quiet));
      const leader = servers[0]!;
      const cluster = (await readJoinTokenFile(first.dataDir))!.token;
      servers.push(await startServer(configFor(await makeTempDir(), [leader.url], cluster), quiet));
      servers.push(await startServer(configFor(await makeTempDir(), [leader.url], cluster), quiet));
      const [, follower, leaving] = servers as [RunningServer, RunningServer, RunningServer];

      // Another cluster's token: refused by the peers, 77.
      const refused = await run(['--member', leaving.url, '--cluster', follower.url, '--join-token', token.text, '--timeout-ms', '2000']);
      expect({ code: refused.code, err: refused.err }).toMatchObject({ code: ExitCodes.NOPERM, err: expect.stringContaining('UNAUTHENTICATED') as unknown });

      const removed = await run(['--member', leaving.url, '--cluster', follower.url], { MSG_JOIN_TOKEN: cluster.text });
      expect(removed.code).toBe(ExitCodes.OK);
      expect(JSON.parse(removed.out)).toEqual({ removed: leaving.url, config: { voters: [leader.url, follower.url], learners: [] } });
      await waitFor(() => !follower.raft.urls().includes(leaving.url), { timeoutMs: 5000 });

      const again = await run(['--member', leaving.url, '--cluster', leader.url, '--join-token', cluster.text]);
      expect(again.code).toBe(ExitCodes.REFUSED);
      expect(again.err).toContain('UNKNOWN_MEMBER');

      const mismatch = await leaveCluster({ member: follower.url, cluster: leader.url, token: cluster, clusterId: 'other', timeoutMs: 1000 }).catch((e: unknown) => e);
      expect(mismatch).toMatchObject({ code: 'CLUSTER_MISMATCH' });
      expect((mismatch as Error).message).not.toContain(cluster.clusterId);
    } finally {
      for (const server of servers.reverse()) await server.close();
    }
  });

  it('takes --ca, and --cert with --key, for an https peer listener; a file it cannot read is 66, naming flag and file', async () => {
    const base = ['--member', 'https://a:1', '--cluster', 'https://b:2', '--join-token', token.text];
    expect(parseLeaveArgs([...base, '--ca', '/x/ca.pem', '--cert', '/x/c.pem', '--key', '/x/k.pem'])).toMatchObject({ tlsFiles: { ca: '/x/ca.pem', cert: '/x/c.pem', key: '/x/k.pem' } });
    expect(() => parseLeaveArgs([...base, '--cert', '/x/c.pem'])).toThrow(expect.objectContaining({ setting: '--key' }));
    const missing = `${await makeTempDir()}/no-such-ca.pem`;
    const result = await run([...base, '--ca', missing]);
    expect(result.code).toBe(ExitCodes.NO_INPUT);
    expect(result.err).toContain(`cannot read --ca ${missing}`);
  });

  it('prints its usage for --help', async () => {
    const help = await run(['--help']);
    expect(help.code).toBe(ExitCodes.OK);
    expect(help.out).toContain('Usage: broker-server leave --member <url> --cluster <url>');
  });
});
