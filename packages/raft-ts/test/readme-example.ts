import { randomBytes } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HttpTransport, PeerAuth, RaftNode, createRaftHandler, type LogEntry, type StateMachine } from 'raft-ts';

/** A replicated key-value map: each command is the text `key=value`. */
export class KeyValueMachine implements StateMachine {
  readonly map = new Map<string, string>();
  #applied = 0;

  async apply(entries: readonly LogEntry[], upTo: number): Promise<void> {
    for (const e of entries) {
      const [key, value] = new TextDecoder().decode(e.data).split('=', 2);
      if (key && value !== undefined) this.map.set(key, value); // bad data is ignored, never thrown
    }
    this.#applied = upTo;
  }
  appliedIndex(): number {
    return this.#applied; // in memory only: after a restart raft restores the snapshot and re-applies the log
  }
  async snapshot(): Promise<AsyncIterable<Uint8Array>> {
    const bytes = new TextEncoder().encode(JSON.stringify([...this.map]));
    return (async function* () {
      yield bytes;
    })();
  }
  async restore(snapshot: AsyncIterable<Uint8Array>, index: number): Promise<void> {
    const chunks: Uint8Array[] = [];
    for await (const chunk of snapshot) chunks.push(chunk);
    this.map.clear();
    for (const [k, v] of JSON.parse(Buffer.concat(chunks).toString()) as [string, string][]) this.map.set(k, v);
    this.#applied = index;
  }
}

/** Starts a node whose RPCs are served under /raft by a loopback HTTP server. */
async function startNode(dir: string, transport: HttpTransport, auth: PeerAuth): Promise<{ node: RaftNode; kv: KeyValueMachine; server: Server }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`; // the node's identity
  const kv = new KeyValueMachine();
  const node = new RaftNode({ dir, url, stateMachine: kv, transport, electionTimeoutMs: 300 });
  server.on('request', createRaftHandler(node, { auth, url })); // RaftNode is the RpcHandler; only signed RPCs get through
  await node.open();
  return { node, kv, server };
}

/** Bootstraps a cluster on one node, lets a second join, and replicates two commands to both. */
export async function example(): Promise<{ index: number; leader: string | undefined; maps: Map<string, string>[]; dir: string }> {
  const base = await mkdtemp(join(tmpdir(), 'raft-example-'));
  const auth = new PeerAuth({ secret: randomBytes(32) }); // the cluster secret: every node of the cluster has it
  const transport = new HttpTransport({ auth }); // how the nodes reach their peers (one process here: one transport)
  const a = await startNode(join(base, 'a'), transport, auth);
  const b = await startNode(join(base, 'b'), transport, auth);
  try {
    await a.node.initialize(); // a new single-node cluster: a elects itself
    while (!a.node.isLeader()) await new Promise((r) => setTimeout(r, 10));
    await b.node.join(a.node.url); // b catches up as a learner, then becomes a voter

    await a.node.apply(new TextEncoder().encode('color=blue'));
    const index = await a.node.apply(new TextEncoder().encode('shape=round')); // committed and applied on a
    for (let i = 0; i < 500 && b.node.appliedIndex < index; i++) await new Promise((r) => setTimeout(r, 10));
    return { index, leader: b.node.leader(), maps: [a.kv.map, b.kv.map], dir: base };
  } finally {
    for (const { node, server } of [b, a]) {
      await node.close(); // a leader hands leadership over first
      server.closeAllConnections();
      server.close();
    }
    await transport.close(); // a node never closes its transport: its creator does
  }
}
