import { describe, expect, it } from '@jest/globals';
import { makeTempDir, waitFor } from '@msg/test-utils';
import type { ServerConfig } from './config.js';
import { ExitCodes } from './exit-codes.js';
import { leaveCluster, parseLeaveArgs, runLeave } from './leave.js';
import { createLogger } from './logger.js';
import { startServer, type RunningServer } from './server.js';

function configFor(dataDir: string, join: string[] = []): ServerConfig {
  return {
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

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runLeave(argv, (t) => (out += t), (t) => (err += t));
  return { code, out, err };
}

describe('leave', () => {
  it('parses --member and --cluster as origins and names a missing or bad flag', () => {
    expect(parseLeaveArgs(['--member', 'http://a:1/x', '--cluster', 'http://b:2', '--timeout-ms', '50'])).toEqual({
      member: 'http://a:1',
      cluster: 'http://b:2',
      timeoutMs: 50,
    });
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
      servers.push(await startServer(configFor(await makeTempDir()), quiet));
      const leader = servers[0]!;
      servers.push(await startServer(configFor(await makeTempDir(), [leader.url]), quiet));
      servers.push(await startServer(configFor(await makeTempDir(), [leader.url]), quiet));
      const [, follower, leaving] = servers as [RunningServer, RunningServer, RunningServer];

      const removed = await run(['--member', leaving.url, '--cluster', follower.url]);
      expect(removed.code).toBe(ExitCodes.OK);
      expect(JSON.parse(removed.out)).toEqual({ removed: leaving.url, config: { voters: [leader.url, follower.url], learners: [] } });
      await waitFor(() => !follower.raft.urls().includes(leaving.url), { timeoutMs: 5000 });

      const again = await run(['--member', leaving.url, '--cluster', leader.url]);
      expect(again.code).toBe(ExitCodes.REFUSED);
      expect(again.err).toContain('UNKNOWN_MEMBER');

      const mismatch = await leaveCluster({ member: follower.url, cluster: leader.url, clusterId: 'other', timeoutMs: 1000 }).catch((e: unknown) => e);
      expect(mismatch).toMatchObject({ code: 'CLUSTER_MISMATCH' });
    } finally {
      for (const server of servers.reverse()) await server.close();
    }
  });

  it('prints its usage for --help', async () => {
    const help = await run(['--help']);
    expect(help.code).toBe(ExitCodes.OK);
    expect(help.out).toContain('Usage: broker-server leave --member <url> --cluster <url>');
  });
});
