// Benchmark of raft-ts's memory with large entries (not a jest test): a single-node RaftNode in a temp
// dir, a state machine that keeps nothing, applies at least 2 GiB of 16 MiB entries (a few in flight at
// a time); prints the peak RSS, then the time to open that log again (a fresh node on the same dir) and
// the peak RSS while it opens and re-applies. The log keeps only a bounded cache of entry data in
// memory, so the peak must stay under a bound that does not grow with the log:
//   baseline RSS + log cache + 3 x (entries in flight x entry size) + 128 MiB of slack (GC, buffers),
// the factor 3 for an entry's own buffer, its encoded record and its read back by the apply loop.
// Exits 1 when a peak exceeds the bound.
//
// Usage: pnpm --filter raft-ts bench:log-memory [--gib G] [--entry-mib M] [--inflight N] [--sync never] [--dir PATH]
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { HttpTransport, PeerAuth, RaftNode, type LogEntry, type StateMachine } from '../src/index.js';

const args = process.argv.slice(2);
function flag(name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}
const MiB = 1 << 20;
const totalBytes = Number(flag('--gib') ?? 2) * 1024 * MiB;
const entryBytes = Number(flag('--entry-mib') ?? 16) * MiB;
const inflight = Number(flag('--inflight') ?? 4);
const sync = flag('--sync') === 'never' ? 'never' : 'always';
const CACHE = 64 * MiB; // RaftNodeOptions.logCacheBytes' default

/** Keeps nothing but the applied index (in memory: a fresh one re-applies the log after the snapshot). */
class NothingStateMachine implements StateMachine {
  #upTo = 0;
  async apply(_entries: readonly LogEntry[], upTo: number): Promise<void> {
    this.#upTo = upTo;
  }
  appliedIndex(): number {
    return this.#upTo;
  }
  async snapshot(): Promise<AsyncIterable<Uint8Array>> {
    return (async function* () {
      yield new Uint8Array(1);
    })();
  }
  async restore(snapshot: AsyncIterable<Uint8Array>, index: number): Promise<void> {
    for await (const _ of snapshot) void _;
    this.#upTo = index;
  }
}

/** Samples the RSS every 20 ms until stopped; returns the peak. */
function sampler(): { stop: () => number } {
  let peak = process.memoryUsage.rss();
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 20);
  return {
    stop: () => {
      clearInterval(timer);
      return Math.max(peak, process.memoryUsage.rss());
    },
  };
}

const mib = (n: number): string => `${(n / MiB).toFixed(0)} MiB`;

// A single-node cluster sends no RPC; the transport is there because a node needs one.
const transport = new HttpTransport({ auth: new PeerAuth({ secret: Buffer.alloc(32, 1) }) });

async function open(dir: string): Promise<{ node: RaftNode; ms: number }> {
  const node = new RaftNode({ dir, url: 'http://127.0.0.1:1', stateMachine: new NothingStateMachine(), transport, electionTimeoutMs: 100, sync, logCacheBytes: CACHE });
  const start = performance.now();
  await node.open();
  return { node, ms: performance.now() - start };
}

async function until(check: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('bench: timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function main(): Promise<void> {
  const own = flag('--dir') === undefined;
  const dir = flag('--dir') ?? (await mkdtemp(join(tmpdir(), 'raft-log-memory-')));
  try {
    const first = await open(dir);
    await first.node.initialize();
    await until(() => first.node.isLeader(), 10_000);
    const baseline = process.memoryUsage.rss();
    const bound = baseline + CACHE + 3 * inflight * entryBytes + 128 * MiB;
    const count = Math.ceil(totalBytes / entryBytes);
    const run = sampler();
    const start = performance.now();
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < count) {
        next++;
        await first.node.apply(new Uint8Array(entryBytes).fill(next & 0xff));
      }
    };
    await Promise.all(Array.from({ length: inflight }, worker));
    const seconds = (performance.now() - start) / 1000;
    const peak = run.stop();
    const last = first.node.lastIndex;
    await first.node.close();

    const reopen = sampler();
    const second = await open(dir);
    await until(() => second.node.isLeader() && second.node.appliedIndex >= last, 120_000);
    const reopenPeak = reopen.stop();
    await second.node.close();
    await transport.close();

    const maxRSS = process.resourceUsage().maxRSS * 1024;
    console.log(`${count} entries of ${mib(entryBytes)} (${mib(count * entryBytes)}), ${inflight} in flight, sync ${sync}: ${seconds.toFixed(1)} s`);
    console.log(`baseline RSS ${mib(baseline)}; bound = baseline + cache ${mib(CACHE)} + 3 x ${inflight} x ${mib(entryBytes)} + 128 MiB = ${mib(bound)}`);
    console.log(`peak RSS while applying: ${mib(peak)} (process maxRSS ${mib(maxRSS)})`);
    console.log(`open again: ${second.ms.toFixed(0)} ms; peak RSS while opening and re-applying: ${mib(reopenPeak)}`);
    if (peak > bound || reopenPeak > bound) {
      console.error(`FAIL: peak RSS above the bound of ${mib(bound)}`);
      process.exitCode = 1;
    }
  } finally {
    if (own) await rm(dir, { recursive: true, force: true });
  }
}

await main();
