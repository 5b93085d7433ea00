import { describe, expect, it } from '@jest/globals';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { decodeMessages, type Message } from '@msg/wire';
import { makeTempDir, waitFor } from '@msg/test-utils';
import { ExitCodes, exitCodeFor } from './exit-codes.js';
import { newJoinToken } from './join-token.js';
import { readJoinTokenFile } from './join-token-file.js';
import { startServer, type RunningServer } from './server.js';
import { configFor, memoryLogger } from '../test/server-config.js';

async function decodeAll(bytes: Uint8Array): Promise<Message[]> {
  const messages: Message[] = [];
  for await (const message of decodeMessages([bytes])) messages.push(message);
  return messages;
}

async function publish(url: string, topicID: bigint, data: string): Promise<bigint> {
  const res = await fetch(`${url}/messaging/messages?type=1&topicID=${topicID}`, { method: 'POST', body: data });
  expect(res.status).toBe(200);
  return BigInt(res.headers.get('x-broker-index')!);
}

async function read(url: string, topicID: bigint): Promise<{ index: bigint; data: string }[]> {
  const res = await fetch(`${url}/messaging/messages?topicID=${topicID}&index=0`);
  expect(res.status).toBe(200);
  return (await decodeAll(new Uint8Array(await res.arrayBuffer()))).map((m) => ({ index: m.index, data: Buffer.from(m.data).toString() }));
}

describe('startServer', () => {
  it('serves publishes and reads over HTTP and logs one listening line with its URL', async () => {
    const { logger, lines } = memoryLogger();
    const server = await startServer(configFor(await makeTempDir()), logger);
    try {
      expect(server.url).toBe(`http://127.0.0.1:${server.port}`);
      expect(lines.filter((l) => l.msg === 'listening')).toEqual([expect.objectContaining({ level: 'info', url: server.url, leader: server.url })]);
      const a = await publish(server.url, 7n, 'hello-0');
      const b = await publish(server.url, 7n, 'hello-1');
      expect(b).toBeGreaterThan(a);
      expect(await read(server.url, 7n)).toEqual([
        { index: a, data: 'hello-0' },
        { index: b, data: 'hello-1' },
      ]);
      const status = (await (await fetch(`${server.url}/status`)).json()) as Record<string, unknown>;
      expect(status).toMatchObject({ isLeader: true, raftState: 'leader', config: { voters: [server.url], learners: [] } });
      // The cluster id is in no public answer.
      expect(JSON.stringify(status)).not.toContain(server.raft.clusterId()!);
    } finally {
      await server.close();
    }
  });

  it('resumes its place and its data when restarted on the same data dir', async () => {
    const dir = await makeTempDir();
    const first = await startServer(configFor(dir), memoryLogger().logger);
    const clusterId = first.raft.clusterId();
    const indexes: bigint[] = [];
    try {
      for (let i = 0; i < 20; i++) indexes.push(await publish(first.url, 3n, `m${i}`));
    } finally {
      await first.close();
    }
    const { logger, lines } = memoryLogger();
    const again = await startServer(configFor(dir, { listen: { host: '127.0.0.1', port: first.port } }), logger);
    try {
      expect(again.url).toBe(first.url);
      expect(again.raft.clusterId()).toBe(clusterId);
      expect(lines.some((l) => l.msg === 'resuming membership')).toBe(true);
      await waitFor(() => again.raft.isLeader(), { timeoutMs: 10_000 });
      expect((await read(again.url, 3n)).map((m) => m.index)).toEqual(indexes);
      const next = await publish(again.url, 3n, 'after restart');
      expect(next).toBeGreaterThan(indexes.at(-1)!);
    } finally {
      await again.close();
    }
  });

  it('joins a running node: the new member reads what the leader publishes, redirects publishes, and resumes after a restart', async () => {
    const leaderDir = await makeTempDir();
    const leader = await startServer(configFor(leaderDir), memoryLogger().logger);
    let follower: RunningServer | undefined;
    try {
      const joinToken = (await readJoinTokenFile(leaderDir))!.token;
      const followerConfig = configFor(await makeTempDir(), { join: [leader.url], joinToken });
      follower = await startServer(followerConfig, memoryLogger().logger);
      expect(follower.raft.config().voters).toEqual([leader.url, follower.url]);
      const index = await publish(leader.url, 1n, 'replicated');
      await waitFor(async () => (await read(follower!.url, 1n)).length === 1, { timeoutMs: 10_000 });
      expect(await read(follower.url, 1n)).toEqual([{ index, data: 'replicated' }]);
      const redirect = await fetch(`${follower.url}/messaging/messages?type=1&topicID=1`, { method: 'POST', body: 'x', redirect: 'manual' });
      expect(redirect.status).toBe(307);
      expect(redirect.headers.get('location')).toBe(`${leader.url}/messaging/messages?type=1&topicID=1`);

      // Restarted with the same data dir (and --join still given), it resumes as the same member.
      const { dataDir } = followerConfig;
      await follower.close();
      const { logger, lines } = memoryLogger();
      follower = await startServer(configFor(dataDir, { join: [leader.url], listen: { host: '127.0.0.1', port: follower.port } }), logger);
      expect(lines.some((l) => l.msg === 'resuming membership; --join ignored')).toBe(true);
      expect(follower.raft.config().voters).toEqual([leader.url, follower.url]);
      const later = await publish(leader.url, 1n, 'after restart');
      await waitFor(async () => (await read(follower!.url, 1n)).length === 2, { timeoutMs: 10_000 });
      expect((await read(follower.url, 1n)).map((m) => m.index)).toEqual([index, later]);
    } finally {
      await follower?.close();
      await leader.close();
    }
  });

  it('fails with JOIN_FAILED when no --join URL answers, and closes what it opened', async () => {
    const { logger, lines } = memoryLogger();
    const dir = await makeTempDir();
    // A port nobody listens on: bind one, then free it.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as { port: number }).port;
    await new Promise((resolve) => probe.close(resolve));
    const joinToken = newJoinToken('0123456789abcdef0123456789abcdef');
    const error: unknown = await startServer(configFor(dir, { join: [`http://127.0.0.1:${port}`], joinToken, electionTimeoutMs: 20, heartbeatIntervalMs: 5 }), logger).catch(
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ name: 'ServerError', code: 'JOIN_FAILED' });
    expect(exitCodeFor(error)).toBe(ExitCodes.UNAVAILABLE);
    expect(lines.some((l) => l.msg === 'join failed')).toBe(true);
    expect(lines.some((l) => l.msg === 'listening')).toBe(false);
    // Everything was closed: the same data dir opens again.
    const server = await startServer(configFor(dir), memoryLogger().logger);
    await server.close();
  });

  it('fails with an I/O exit code naming the file when the broker metadata is corrupt', async () => {
    const dir = await makeTempDir();
    const first = await startServer(configFor(dir), memoryLogger().logger);
    await publish(first.url, 1n, 'x');
    await first.close();
    await writeFile(join(dir, 'broker', 'meta'), 'garbage');
    const error: unknown = await startServer(configFor(dir, { listen: { host: '127.0.0.1', port: first.port } }), memoryLogger().logger).catch((e: unknown) => e);
    expect(exitCodeFor(error)).toBe(ExitCodes.IO);
    expect((error as Error).message).toContain(join(dir, 'broker', 'meta'));
  });

  it('fails with exit code 69 when the listen port is taken', async () => {
    const running = await startServer(configFor(await makeTempDir()), memoryLogger().logger);
    try {
      const error: unknown = await startServer(configFor(await makeTempDir(), { listen: { host: '127.0.0.1', port: running.port } }), memoryLogger().logger).catch(
        (e: unknown) => e,
      );
      expect(error).toMatchObject({ code: 'EADDRINUSE' });
      expect(exitCodeFor(error)).toBe(ExitCodes.UNAVAILABLE);
    } finally {
      await running.close();
    }
  });

  it('ends open streams on close and rejects a second close with ALREADY_CLOSED', async () => {
    const server = await startServer(configFor(await makeTempDir()), memoryLogger().logger);
    const stream = await fetch(`${server.url}/messaging/messages?topicID=5&index=0&streaming=true`);
    expect(stream.status).toBe(200);
    const reader = (stream.body as ReadableStream<Uint8Array>).getReader();
    await publish(server.url, 5n, 'live');
    const chunks: Uint8Array[] = [];
    const first = await reader.read();
    if (first.value) chunks.push(first.value);
    await server.close();
    for (let i = 0; i < 100; i++) {
      const next = await reader.read();
      if (next.done) break;
      chunks.push(next.value);
    }
    expect((await decodeAll(Buffer.concat(chunks))).map((m) => Buffer.from(m.data).toString())).toEqual(['live']);
    await expect(server.close()).rejects.toMatchObject({ name: 'ServerError', code: 'ALREADY_CLOSED' });
  });
});
