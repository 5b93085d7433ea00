// Benchmark of raft-ts (not a jest test): committed entries per second and
// apply latency p50/p99 for 100-byte entries, on 1 and 3 nodes in one process
// over loopback HTTP, on the real disk with fsync on, with 1 and 256 concurrent
// callers; next to the disk's fsync rate measured in the same run.
//
// Usage: pnpm --filter raft-ts bench [--seconds S] [--dir PATH]
//   --seconds  length of each measured run (default 3)
//   --dir      where the data goes (default: a new dir under the OS temp dir, removed at the end)
import { mkdtemp, open, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { HttpTransport, PeerAuth, RaftError, RaftNode, createRaftHandler, type LogEntry, type RpcHandler, type StateMachine } from '../src/index.js';

const args = process.argv.slice(2);
function flag(name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}
const seconds = Number(flag('--seconds') ?? 3);
const ENTRY_BYTES = 100;

/** A state machine that only counts what it applies (the cost measured is raft's). */
class CountingStateMachine implements StateMachine {
  count = 0;
  #upTo = 0;
  async apply(entries: readonly LogEntry[], upTo: number): Promise<void> {
    this.count += entries.length;
    this.#upTo = upTo;
  }
  appliedIndex(): number {
    return this.#upTo;
  }
  async snapshot(): Promise<AsyncIterable<Uint8Array>> {
    const bytes = new TextEncoder().encode(String(this.count));
    return (async function* () {
      yield bytes;
    })();
  }
  async restore(snapshot: AsyncIterable<Uint8Array>, index: number): Promise<void> {
    const chunks: Uint8Array[] = [];
    for await (const c of snapshot) chunks.push(c);
    this.count = Number(Buffer.concat(chunks).toString());
    this.#upTo = index;
  }
}

/** Small write + fdatasync loop on one file: the disk's sequential fsync rate, in syncs/s. */
async function fsyncRate(dir: string, ms: number): Promise<number> {
  const fh = await open(join(dir, 'fsync-probe'), 'w');
  const buf = Buffer.alloc(ENTRY_BYTES, 1);
  let n = 0;
  const start = performance.now();
  try {
    while (performance.now() - start < ms && n < 1_000_000) {
      await fh.write(buf);
      await fh.datasync();
      n++;
    }
  } finally {
    await fh.close();
  }
  return n / ((performance.now() - start) / 1000);
}

interface Member {
  node: RaftNode;
  server: Server;
  transport: HttpTransport;
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Starts `size` nodes (HTTP servers on loopback, each with its own HttpTransport, fsync on) and returns them with the leader first. */
async function startCluster(size: number, dir: string): Promise<Member[]> {
  const members: Member[] = [];
  const secret = Buffer.alloc(32, 1); // the cluster secret (each node its own PeerAuth with it, as separate processes have)
  for (let i = 0; i < size; i++) {
    const auth = new PeerAuth({ secret });
    const ref: { node?: RaftNode } = {};
    const node = (): RaftNode => {
      if (!ref.node) throw new RaftError('CLOSED', 'not started');
      return ref.node;
    };
    const rpc: RpcHandler = {
      handleRequestVote: (r) => node().handleRequestVote(r),
      handleAppendEntries: (r) => node().handleAppendEntries(r),
      handleInstallSnapshot: (r) => node().handleInstallSnapshot(r),
      handleTimeoutNow: (r) => node().handleTimeoutNow(r),
      handleJoin: (r) => node().handleJoin(r),
      handleLeave: (r) => node().handleLeave(r),
    };
    const server = createServer(createRaftHandler(rpc, { auth }));
    const url = await listen(server);
    const transport = new HttpTransport({ auth });
    ref.node = new RaftNode({ dir: join(dir, `node-${i}`), url, stateMachine: new CountingStateMachine(), transport, electionTimeoutMs: 1000 });
    await ref.node.open();
    members.push({ node: ref.node, server, transport });
  }
  const first = members[0]!.node;
  await first.initialize();
  await until(() => first.isLeader(), 10_000);
  for (const m of members.slice(1)) await m.node.join(first.url);
  return members;
}

async function stopCluster(members: Member[]): Promise<void> {
  for (const m of members) {
    await m.node.close().catch(() => undefined);
    await m.transport.close();
    m.server.closeAllConnections();
    await new Promise((resolve) => m.server.close(resolve));
  }
}

async function until(cond: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('bench: timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
}

interface Result {
  nodes: number;
  callers: number;
  entries: number;
  perSecond: number;
  p50: number;
  p99: number;
}

/** `callers` loops each applying one 100-byte entry at a time for `ms`. Latencies in ms. */
async function measure(nodes: number, callers: number, dir: string, ms: number): Promise<Result> {
  const members = await startCluster(nodes, join(dir, `run-${nodes}-${callers}`));
  try {
    const leader = members.find((m) => m.node.isLeader())!.node;
    const data = new Uint8Array(ENTRY_BYTES).fill(7);
    // Warm up connections and the JIT.
    await Promise.all(Array.from({ length: Math.min(callers, 64) }, () => leader.apply(data)));
    const latencies: number[] = [];
    const start = performance.now();
    const end = start + ms;
    await Promise.all(
      Array.from({ length: callers }, async () => {
        while (performance.now() < end) {
          const t0 = performance.now();
          await leader.apply(data);
          latencies.push(performance.now() - t0);
        }
      }),
    );
    const elapsed = (performance.now() - start) / 1000;
    latencies.sort((a, b) => a - b);
    const at = (q: number): number => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
    return { nodes, callers, entries: latencies.length, perSecond: latencies.length / elapsed, p50: at(0.5), p99: at(0.99) };
  } finally {
    await stopCluster(members);
  }
}

const given = flag('--dir');
const dir = given ?? (await mkdtemp(join(tmpdir(), 'raft-bench-')));
try {
  const rate = await fsyncRate(dir, 2000);
  console.log(`disk: ${rate.toFixed(0)} fsyncs/s (${ENTRY_BYTES}-byte write + fdatasync loop, ${dir})`);
  console.log(`each run ${seconds} s, ${ENTRY_BYTES}-byte entries, fsync on, loopback HTTP`);
  console.log('nodes  callers  entries  committed/s  x fsync rate  p50 ms  p99 ms');
  for (const nodes of [1, 3]) {
    for (const callers of [1, 256]) {
      const r = await measure(nodes, callers, dir, seconds * 1000);
      console.log(
        `${String(r.nodes).padStart(5)}  ${String(r.callers).padStart(7)}  ${String(r.entries).padStart(7)}  ${r.perSecond.toFixed(0).padStart(11)}  ${(r.perSecond / rate).toFixed(1).padStart(12)}  ${r.p50.toFixed(2).padStart(6)}  ${r.p99.toFixed(2).padStart(6)}`,
      );
    }
  }
} finally {
  if (given === undefined) await rm(dir, { recursive: true, force: true });
}
