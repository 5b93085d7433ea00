import { describe, expect, it } from '@jest/globals';
import { rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTempDir, waitFor } from '@msg/test-utils';
import { ExitCodes, exitCodeFor } from './exit-codes.js';
import { newJoinToken } from './join-token.js';
import { readJoinTokenFile } from './join-token-file.js';
import { createLogger } from './logger.js';
import { startServer, type RunningServer } from './server.js';
import { configFor, memoryLogger } from '../test/server-config.js';

const quiet = createLogger('error', () => undefined);

describe('startServer: peers', () => {
  it('writes a join token (0600) when it bootstraps, logs where, never what, and keeps it across restarts', async () => {
    const dir = await makeTempDir();
    const { logger, lines } = memoryLogger();
    let server = await startServer(configFor(dir), logger);
    const kept = await readJoinTokenFile(dir);
    try {
      expect(kept?.token.clusterId).toBe(server.raft.clusterId());
      expect((await stat(join(dir, 'join-token'))).mode & 0o777).toBe(0o600);
      expect(lines.find((l) => String(l.msg).startsWith('join token written'))).toMatchObject({ path: join(dir, 'join-token') });
      expect(JSON.stringify(lines)).not.toContain(kept!.token.text.split('.')[2]);
      const port = server.port;
      await server.close();
      server = await startServer(configFor(dir, { listen: { host: '127.0.0.1', port } }), quiet);
      expect((await readJoinTokenFile(dir))?.token).toEqual(kept?.token);
    } finally {
      await server.close();
    }
  });

  it('refuses to join without a token (64), with another cluster\'s token (77, JOIN_REFUSED), and adds no member', async () => {
    const dir = await makeTempDir();
    const leader = await startServer(configFor(dir), quiet);
    try {
      const none = await startServer(configFor(await makeTempDir(), { join: [leader.url] }), quiet).catch((e: unknown) => e);
      expect(none).toMatchObject({ code: 'INVALID_CONFIG', setting: '--join-token' });
      expect(exitCodeFor(none)).toBe(ExitCodes.USAGE);

      const other = newJoinToken(leader.raft.clusterId()!);
      const { logger, lines } = memoryLogger();
      const refused = await startServer(configFor(await makeTempDir(), { join: [leader.url], joinToken: other }), logger).catch((e: unknown) => e);
      expect(refused).toMatchObject({ name: 'ServerError', code: 'JOIN_REFUSED' });
      expect((refused as Error).message).toMatch(/refused this node's join token/);
      expect(exitCodeFor(refused)).toBe(ExitCodes.NOPERM);
      expect(JSON.stringify(lines)).not.toContain(other.text);
      expect(leader.raft.config()).toEqual({ voters: [leader.url], learners: [] });
    } finally {
      await leader.close();
    }
  });

  it('lets a node that failed to join with a wrong token join with the right one; a resumed node refuses a different token', async () => {
    const leaderDir = await makeTempDir();
    const leader = await startServer(configFor(leaderDir), quiet);
    let follower: RunningServer | undefined;
    try {
      const right = (await readJoinTokenFile(leaderDir))!.token;
      const dir = await makeTempDir();
      await startServer(configFor(dir, { join: [leader.url], joinToken: newJoinToken(right.clusterId) }), quiet).catch(() => undefined);
      follower = await startServer(configFor(dir, { join: [leader.url], joinToken: right }), quiet);
      expect(leader.raft.config().voters).toEqual([leader.url, follower.url]);
      expect((await readJoinTokenFile(dir))?.token).toEqual(right);
      const port = follower.port;
      await follower.close();
      follower = undefined;
      const different = await startServer(configFor(dir, { listen: { host: '127.0.0.1', port }, joinToken: newJoinToken(right.clusterId) }), quiet).catch(
        (e: unknown) => e,
      );
      expect(different).toMatchObject({ code: 'INVALID_CONFIG', setting: '--join-token' });
      // Without its token file, a node with peers cannot authenticate: it says what to do.
      await rm(join(dir, 'join-token'));
      const lost = await startServer(configFor(dir, { listen: { host: '127.0.0.1', port } }), quiet).catch((e: unknown) => e);
      expect(lost).toMatchObject({ code: 'INVALID_CONFIG', setting: '--join-token' });
      expect((lost as Error).message).toMatch(/keeps no join token/);
      follower = await startServer(configFor(dir, { listen: { host: '127.0.0.1', port }, joinToken: right }), quiet);
      await waitFor(() => follower!.raft.leader() === leader.url, { timeoutMs: 5000 });
    } finally {
      await follower?.close();
      await leader.close();
    }
  });

  it('makes a token for a single-node cluster that has none, and refuses a damaged token file with JOIN_TOKEN_CORRUPT (74)', async () => {
    const dir = await makeTempDir();
    const first = await startServer(configFor(dir), quiet);
    const port = first.port;
    await first.close();
    await rm(join(dir, 'join-token'));
    const again = await startServer(configFor(dir, { listen: { host: '127.0.0.1', port } }), quiet);
    await again.close();
    const made = await readJoinTokenFile(dir);
    expect(made?.token.clusterId).toBe(again.raft.clusterId());
    await writeFile(join(dir, 'join-token'), 'msgjt1.broken\n');
    const damaged = await startServer(configFor(dir, { listen: { host: '127.0.0.1', port } }), quiet).catch((e: unknown) => e);
    expect(damaged).toMatchObject({ code: 'JOIN_TOKEN_CORRUPT' });
    expect((damaged as Error).message).toContain(join(dir, 'join-token'));
    expect(exitCodeFor(damaged)).toBe(ExitCodes.IO);
  });

  it('serves raft only on the peer listener with peerListen; the client listener answers /raft/* 404 naming it; two such nodes form a cluster', async () => {
    const firstDir = await makeTempDir();
    const first = await startServer(configFor(firstDir, { peerListen: { host: '127.0.0.1', port: 0 } }), quiet);
    let second: RunningServer | undefined;
    try {
      expect(first.peerURL).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(first.peerURL).not.toBe(first.url);
      const onClient = await fetch(`${first.url}/raft/vote`, { method: 'POST', body: '{}' });
      expect(onClient.status).toBe(404);
      expect(onClient.headers.get('x-raft-peer-url')).toBe(first.peerURL);
      expect((await fetch(`${first.peerURL}/status`)).status).toBe(404);
      const unsigned = await fetch(`${first.peerURL}/raft/vote`, { method: 'POST', body: '{}' });
      expect({ status: unsigned.status, code: unsigned.headers.get('x-broker-error-code') }).toEqual({ status: 401, code: 'UNAUTHENTICATED' });
      expect((await fetch(`${first.url}/status`)).status).toBe(200);
      const metrics = await (await fetch(`${first.url}/metrics`)).text();
      expect(metrics).toMatch(/msg_http_requests_total\{route="raft",code="401"\} 1/);

      // A second node joins through the first one's client URL: its transport follows the 404 to the peer listener.
      const joinToken = (await readJoinTokenFile(firstDir))!.token;
      second = await startServer(configFor(await makeTempDir(), { join: [first.url], joinToken, peerListen: { host: '127.0.0.1', port: 0 } }), quiet);
      expect(first.raft.config().voters).toEqual([first.url, second.url]);
      await waitFor(() => second!.raft.leader() === first.url, { timeoutMs: 5000 });
      // Clients are still told (and redirected to) the client URLs.
      const redirect = await fetch(`${second.url}/messaging/messages?type=1&topicID=1`, { method: 'POST', body: 'x', redirect: 'manual' });
      expect(redirect.status).toBe(307);
      expect(redirect.headers.get('location')).toBe(`${first.url}/messaging/messages?type=1&topicID=1`);
    } finally {
      await second?.close();
      await first.close();
    }
  });
});
