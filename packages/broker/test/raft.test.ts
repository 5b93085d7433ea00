import { describe, expect, it } from '@jest/globals';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { HttpTransport, PeerAuth, RaftNode, createRaftHandler } from 'raft-ts';
import { makeTempDir, waitFor } from '@msg/test-utils';
import { Broker } from '../src/broker.js';
import { readAll, text } from './helpers.js';

/** The secret the nodes of these clusters sign their RPCs with. */
const CLUSTER_SECRET = Buffer.alloc(32, 2);

interface Node {
  broker: Broker;
  raft: RaftNode;
  transport: HttpTransport;
  url: string;
  close(): Promise<void>;
}

/** A broker on a real raft-ts node served over loopback HTTP (handler under /raft). */
async function startNode(dir: string, options: { snapshotThreshold?: number; trailingEntries?: number; port?: number } = {}): Promise<Node> {
  const { port = 0, ...raftOptions } = options;
  const route: { handler?: (req: IncomingMessage, res: ServerResponse) => void } = {};
  const server = createServer((req, res) => {
    if (route.handler && req.url?.startsWith('/raft/')) {
      req.url = req.url.slice('/raft'.length);
      route.handler(req, res);
    } else {
      res.statusCode = 404;
      res.end();
    }
  });
  // A restarted node must keep its URL (its identity in the cluster): listen on the same port.
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const broker = new Broker({ dir: join(dir, 'broker') });
  const auth = new PeerAuth({ secret: CLUSTER_SECRET });
  const transport = new HttpTransport({ auth });
  const raft = new RaftNode({
    dir: join(dir, 'raft'),
    url,
    stateMachine: broker,
    transport,
    electionTimeoutMs: 150,
    sync: 'always',
    ...raftOptions,
  });
  broker.attachLog(raft);
  route.handler = createRaftHandler(raft, { auth, url });
  await broker.open();
  await raft.open();
  return {
    broker,
    raft,
    transport,
    url,
    close: async () => {
      await raft.close();
      await broker.close();
      await transport.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('Broker on a real raft-ts node', () => {
  it('publishes through a single-node cluster, and resumes at its applied index after a restart', async () => {
    const dir = await makeTempDir();
    const a = await startNode(dir);
    await a.raft.initialize();
    await waitFor(() => a.raft.isLeader(), { timeoutMs: 10_000 });
    const indexes = await Promise.all(Array.from({ length: 50 }, (_, i) => a.broker.publish(text(BigInt(1 + (i % 2)), `m${i}`))));
    expect(new Set(indexes).size).toBe(50);
    const { firstIndex, lastIndex } = await a.broker.publishBatch([text(1n, 'b0'), text(1n, 'b1'), text(1n, 'b2')]);
    expect(lastIndex - firstIndex).toBe(2n);
    const before = await readAll((await a.broker.openTopicReader(1n, 0n)).messages());
    expect(before).toHaveLength(28);
    await a.close();

    const b = await startNode(dir, { port: Number(new URL(a.url).port) });
    try {
      await waitFor(() => b.raft.isLeader(), { timeoutMs: 10_000 });
      expect(await readAll((await b.broker.openTopicReader(1n, 0n)).messages())).toEqual(before);
      const next = await b.broker.publish(text(1n, 'after restart'));
      expect(next).toBeGreaterThan(lastIndex);
      expect((await readAll((await b.broker.openTopicReader(1n, next)).messages()))).toEqual([[next, 'after restart']]);
    } finally {
      await b.close();
    }
  });

  it('catches a new member up through a snapshot of the broker', async () => {
    const a = await startNode(await makeTempDir(), { snapshotThreshold: 20, trailingEntries: 2 });
    let b: Node | undefined;
    try {
      await a.raft.initialize();
      await waitFor(() => a.raft.isLeader(), { timeoutMs: 10_000 });
      for (let i = 0; i < 60; i++) await a.broker.publish(text(BigInt(1 + (i % 3)), `m${i}`));
      await waitFor(() => a.raft.snapshotIndex >= 40, { timeoutMs: 10_000 });
      b = await startNode(await makeTempDir(), { snapshotThreshold: 20, trailingEntries: 2 });
      await b.raft.join(a.url);
      const last = a.raft.commitIndex;
      const follower = b;
      await waitFor(() => follower.broker.status().appliedIndex >= last, { timeoutMs: 15_000 });
      for (const id of [1n, 2n, 3n]) {
        expect(await readAll((await follower.broker.openTopicReader(id, 0n)).messages())).toEqual(await readAll((await a.broker.openTopicReader(id, 0n)).messages()));
      }
    } finally {
      await b?.close();
      await a.close();
    }
  });
});
