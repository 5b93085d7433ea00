// The broker bench of issue 14: every figure against real broker processes
// (`src/main.ts` under tsx, `--sync always`, loopback, temp data folders, default
// snapshot and checkpoint thresholds), each next to a ceiling measured in the
// same run and the server CPU it cost per message. 100-byte messages unless
// noted. The load generator (@msg/test-utils' load-generator.ts) and the
// latency probe (stream-latency.ts) each run in their own process; every child
// is killed by its PID and every data folder removed.
//
// Sections (BENCH_ONLY=<comma list> runs some of them; `tls` is section 8, TLS against plain):
//   ceiling     bare node:http under the same load generator; the disk's fsync rate
//   publish     single-message publish, 1 node, 1/16/64 publishers, ratio to the bare ceiling
//   cluster     the same on 3 nodes, ratio to the 1-node figure of this run
//   batch       batches of 100 messages, 1 and 3 nodes
//   latency     publish-to-stream latency at a paced 1,000 msg/s (open loop), 1 and 3 nodes
//   replay      GET of a 500k-message topic from index 0, median of 3
//   size        cost model: 100 B, 1 KiB, 64 KiB messages, 16 publishers
//   publishers  cost model: 1, 4, 16, 64, 256 publishers
//   topics      cost model: 1, 100, 10,000 topics written at once, 64 publishers
//   dedup       exactly-once publish: single publishes with and without producer ids, 1 node, same broker
// Knobs: BENCH_QUICK=1 (short windows, a smoke run), BENCH_ONLY, BENCH_SECONDS
// (measured window per throughput case, default 4), BENCH_LATENCY_SECONDS
// (default 60).
//
// Server CPU: utime + stime of each broker from /proc/<pid>/stat, sampled when
// the load generator announces that its measured window opens (after its
// warm-up) and closes, divided by the messages acknowledged in that window.
// For the latency probe the window runs from the first scheduled publish to
// the last arrival. /proc counts in 10 ms ticks: over a 4 s window that is
// well under 1% of what a busy broker uses.
import { readdirSync, readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { loadGeneratorPath, type LoadResult } from '@msg/test-utils/load-generator';
import { encodeMessages, encodedLength } from '@msg/wire';
import { activity, brokerProblems, closeAgent, httpRequest, settle, startBroker, startCluster, status, stopBroker, type Broker, type BrokerStatusView } from './brokers.js';
import { makeTestPki } from '@msg/test-utils/pki';
import { measureFsync, startBareServer } from './ceilings.js';
import { cleanUp, cpuMs, kill, rssBytes, runScript, tempDir } from './processes.js';
import type { ProbeResult } from './stream-latency.js';
import { fmt, ratio, render, table, target, type Table } from './table.js';

const QUICK = process.env.BENCH_QUICK === '1';
const WARMUP_MS = QUICK ? 300 : 1000;
const DURATION_MS = QUICK ? 1000 : Math.round(Number(process.env.BENCH_SECONDS ?? 4) * 1000);
const LATENCY_MS = Math.round(Number(process.env.BENCH_LATENCY_SECONDS ?? (QUICK ? 5 : 60)) * 1000);
const LATENCY_RATE = 1000;
const REPLAY_MESSAGES = QUICK ? 50_000 : 500_000;
const BODY_BYTES = 100;
const BATCH = 100;
const CEILING_CONNECTIONS = [1, 4, 16, 64, 256];
const PUBLISH_CONNECTIONS = [1, 16, 64];
const PUBLISH_PATH = '/messaging/messages?type=1&topicID=1';

const SECTIONS = ['ceiling', 'publish', 'cluster', 'batch', 'latency', 'replay', 'size', 'publishers', 'topics', 'tls', 'dedup'] as const;
type Section = (typeof SECTIONS)[number];
const only = (process.env.BENCH_ONLY ?? '')
  .split(',')
  .map((s) => s.trim())
  .filter((s) => s !== '');
for (const name of only) if (!(SECTIONS as readonly string[]).includes(name)) throw new Error(`BENCH_ONLY: unknown section ${name}; known: ${SECTIONS.join(', ')}`);
const want = (section: Section): boolean => only.length === 0 || only.includes(section);

const probePath = join(import.meta.dirname, 'stream-latency.ts');
const progress = (text: string): void => {
  activity.now = text;
  process.stderr.write(`  · ${text}\n`);
};
const sum = (values: number[]): number => values.reduce((a, b) => a + b, 0);

/** Figures later sections compare with: bare ceiling req/s and 1-node publish msg/s, by connection count. */
const ceilingRps = new Map<number, number>();
const oneNodeRps = new Map<number, number>();
const tables: Table[] = [];
const failures: string[] = [];

/** One load-generator run and the CPU the watched servers spent in its measured window. */
interface Measured {
  load: LoadResult;
  /** Server CPU over the measured window, summed over the watched processes, ms. */
  cpuMs: number;
  /** Answers 200 in the window. */
  ok: number;
}

async function measure(pids: readonly number[], options: Record<string, unknown>): Promise<Measured> {
  const full = { mode: 'post', warmupMs: WARMUP_MS, durationMs: DURATION_MS, progress: true, ...options };
  let before: number[] = [];
  let after: number[] = [];
  const load = await runScript<LoadResult>(loadGeneratorPath, full, Number(full.warmupMs) + Number(full.durationMs) + 30_000, (event) => {
    if (event === 'measuring') before = pids.map(cpuMs);
    else if (event === 'measured') after = pids.map(cpuMs);
  });
  const used = before.length === pids.length && after.length === pids.length ? sum(after.map((a, i) => a - before[i]!)) : NaN;
  return { load, cpuMs: used, ok: Math.max(0, load.requests - load.errors) };
}

/** Server CPU per message, µs. */
const cpuPer = (m: Measured, messagesPerRequest = 1): number => (m.cpuMs * 1000) / (m.ok * messagesPerRequest);
/** msg/s of acknowledged messages. */
const okRate = (m: Measured, messagesPerRequest = 1): number => (m.ok * messagesPerRequest) / m.load.seconds;
/** The load generator's own CPU, as a share of one core. */
const genNote = (m: Measured): string => `gen ${fmt((m.load.ownCpuMs / (m.load.seconds * 1000)) * 100)}% core`;
const errorNote = (m: Measured): string => `${m.load.errors > 0 ? `, ${m.load.errors} errors` : ''}${m.load.requests === 0 ? ', NO ANSWER within the window' : ''}`;

// ---- 1. ceilings -------------------------------------------------------------------------------

async function ceilings(): Promise<void> {
  const t = table('1. Ceilings (same load generator, same run)', ['ceiling', 'conns', 'req/s', 'p50 ms', 'p99 ms', 'CPU µs/req', 'note']);
  const bare = await startBareServer();
  try {
    for (const conns of CEILING_CONNECTIONS) {
      progress(`bare node:http, ${conns} connections`);
      const m = await measure([bare.pid], { port: bare.port, connections: conns, bodyBytes: BODY_BYTES, path: '/' });
      ceilingRps.set(conns, okRate(m));
      t.rows.push(['bare node:http, 200 to a 100-byte POST', String(conns), fmt(okRate(m)), fmt(m.load.p50Ms, 2), fmt(m.load.p99Ms, 2), fmt(cpuPer(m), 1), genNote(m) + errorNote(m)]);
    }
  } finally {
    await kill(bare.child);
  }
  progress('disk fsync rate');
  const f = measureFsync(await tempDir(), QUICK ? 1000 : 2000, BODY_BYTES);
  t.rows.push(['disk: append 100 B + fdatasync, loop', '1', fmt(f.perSecond), fmt(f.p50Ms, 3), fmt(f.p99Ms, 3), '-', `fsyncs/s; max ${fmt(f.maxMs, 2)} ms over ${fmt(f.count)} fsyncs`]);
  t.notes.push(`req/s of the fsync row is fsyncs/s; a broker that fsyncs once per message cannot pass it (group commit can).`);
  tables.push(t);
}

// ---- 2, 3, 4. publish throughput ---------------------------------------------------------------

const PUBLISH_COLUMNS = ['case', 'conns', 'msg/s', 'p50 ms', 'p99 ms', 'CPU µs/msg', 'ceiling', 'ratio', 'target', 'note'];

async function publishSingle(nodes: readonly Broker[], label: string, t: Table, compare: 'bare' | 'one-node'): Promise<void> {
  const pids = nodes.map((n) => n.pid);
  for (const conns of PUBLISH_CONNECTIONS) {
    progress(`${label}: single publish, ${conns} publishers`);
    const m = await measure(pids, { port: nodes[0]!.port, connections: conns, bodyBytes: BODY_BYTES, path: PUBLISH_PATH });
    const rate = okRate(m);
    let ceiling: number | undefined;
    let verdict = '';
    if (compare === 'bare') {
      oneNodeRps.set(conns, rate);
      ceiling = ceilingRps.get(conns);
      if (conns === 64) verdict = target('≥ 0.6x bare', ceiling === undefined ? undefined : rate >= 0.6 * ceiling);
    } else {
      ceiling = oneNodeRps.get(conns);
      if (conns === 16) verdict = target('≥ 0.5x 1 node', ceiling === undefined ? undefined : rate >= 0.5 * ceiling);
    }
    t.rows.push([`${label}, 1 msg/request`, String(conns), fmt(rate), fmt(m.load.p50Ms, 2), fmt(m.load.p99Ms, 2), fmt(cpuPer(m), 0), fmt(ceiling), ratio(ceiling === undefined ? undefined : rate / ceiling), verdict, genNote(m) + errorNote(m)]);
  }
}

const batchBody = Buffer.from(
  encodeMessages(Array.from({ length: BATCH }, (_, i) => ({ type: 1, topicID: 2n, index: 0n, data: new Uint8Array(BODY_BYTES).fill(97 + (i % 26)) }))),
).toString('base64');

async function publishBatches(nodes: readonly Broker[], label: string, t: Table): Promise<void> {
  const pids = nodes.map((n) => n.pid);
  for (const conns of PUBLISH_CONNECTIONS) {
    progress(`${label}: batch of ${BATCH}, ${conns} publishers`);
    const m = await measure(pids, { port: nodes[0]!.port, connections: conns, bodyBase64: batchBody, path: '/messaging/batch' });
    t.rows.push([`${label}, batch of ${BATCH}`, String(conns), fmt(okRate(m, BATCH)), fmt(m.load.p50Ms, 2), fmt(m.load.p99Ms, 2), fmt(cpuPer(m, BATCH), 1), '-', '-', '', `${fmt(okRate(m))} req/s, ${genNote(m)}${errorNote(m)}`]);
  }
}

async function oneNode(batchTable: Table): Promise<void> {
  const [node] = await startCluster(1);
  try {
    if (want('publish')) {
      const t = table('2. Single-message publish, 1 node (ratio: to the bare node:http ceiling at the same connection count)', PUBLISH_COLUMNS);
      await publishSingle([node!], '1 node', t, 'bare');
      t.notes.push('CPU µs/msg: the broker process over the measured window. gen: the load generator\'s own CPU (it shares the 2 cores).');
      tables.push(t);
    }
    if (want('batch')) await publishBatches([node!], '1 node', batchTable);
  } finally {
    await stopBroker(node!);
  }
}

async function threeNodes(batchTable: Table): Promise<void> {
  progress('starting a 3-node cluster');
  const nodes = await startCluster(3);
  try {
    if (want('cluster')) {
      const t = table('3. Single-message publish, 3 nodes, to the leader (ratio: to the 1-node figure of this run)', PUBLISH_COLUMNS);
      await publishSingle(nodes, '3 nodes', t, 'one-node');
      t.notes.push('CPU µs/msg: the three brokers together, per message acknowledged.');
      if (oneNodeRps.size === 0) t.notes.push('The 1-node section did not run (BENCH_ONLY): no ratio.');
      tables.push(t);
    }
    if (want('batch')) await publishBatches(nodes, '3 nodes', batchTable);
  } finally {
    for (const node of nodes) await stopBroker(node);
  }
}

// ---- 5. publish-to-stream latency --------------------------------------------------------------

const LATENCY_COLUMNS = ['case', 'measure', 'p50 ms', 'p99 ms', 'p999 ms', 'max ms', 'CPU µs/msg', 'target', 'note'];

async function latencyCase(label: string, nodes: readonly Broker[], publishTo: Broker, streamFrom: Broker, targetMs: number, t: Table): Promise<void> {
  progress(`${label}: ${LATENCY_RATE} msg/s for ${LATENCY_MS / 1000} s`);
  // Checkpoint counters and CPU are read when the schedule starts (after the probe's warm-up) and once it is done.
  let checkpointsBefore: Promise<BrokerStatusView[]> | undefined;
  let before: number[] = [];
  let after: number[] = [];
  const checkpointsNow = (): Promise<BrokerStatusView[]> => Promise.all(nodes.map(status));
  const r = await runScript<ProbeResult>(
    probePath,
    { publishPort: publishTo.port, streamPort: streamFrom.port, topicID: '77', rate: LATENCY_RATE, durationMs: LATENCY_MS, bodyBytes: BODY_BYTES, maxInFlight: 256, warmupMs: QUICK ? 500 : 2000, warmupTopicID: '78' },
    LATENCY_MS + 90_000,
    (event) => {
      if (event === 'measuring') {
        before = nodes.map((n) => cpuMs(n.pid));
        checkpointsBefore = checkpointsNow();
      } else if (event === 'measured') after = nodes.map((n) => cpuMs(n.pid));
    },
  );
  const cpu = before.length === nodes.length && after.length === nodes.length ? (sum(after.map((a, i) => a - before[i]!)) * 1000) / r.sent : NaN;
  const startViews = checkpointsBefore ? await checkpointsBefore : undefined;
  const endViews = await checkpointsNow();
  const checkpoints = endViews.map((v, i) => v.counters.checkpoints - (startViews?.[i]?.counters.checkpoints ?? NaN));
  const fsyncs = endViews.map((v, i) => v.fsync.count - (startViews?.[i]?.fsync.count ?? NaN));
  const windowEnd = r.t0EpochMs + LATENCY_MS + 1000;
  const inWindow = (e: { atMs: number }): boolean => e.atMs >= r.t0EpochMs && e.atMs <= windowEnd;
  const snapshotEvents = nodes.flatMap((n) => n.snapshots.filter(inWindow).map((e) => ({ node: n, e })));
  const taken = nodes.map((n) => n.snapshots.filter((e) => inWindow(e) && e.msg === 'raft: snapshot taken').length);
  const compactions = nodes.map((n) => n.snapshots.filter((e) => inWindow(e) && e.msg.startsWith('raft: log compacted behind')).length);
  const lost = r.sent - r.seen;
  t.rows.push([
    label,
    'publish to stream',
    fmt(r.endToEnd.p50, 2),
    fmt(r.endToEnd.p99, 2),
    fmt(r.endToEnd.p999, 2),
    fmt(r.endToEnd.max, 1),
    fmt(cpu, 0),
    target(`p99 < ${targetMs} ms`, r.endToEnd.p99 < targetMs && lost === 0),
    `${fmt(r.seen)}/${fmt(r.sent)} seen${r.errors ? `, ${r.errors} publish errors (${Object.entries(r.errorKinds).map(([kind, n]) => `${n} ${kind}`).join(', ')})` : ''}`,
  ]);
  t.rows.push([label, 'publish ack', fmt(r.ack.p50, 2), fmt(r.ack.p99, 2), fmt(r.ack.p999, 2), fmt(r.ack.max, 1), '', '', `${fmt(r.acked)} acked`]);
  t.rows.push([label, 'probe timer lag', fmt(r.sendLag.p50, 2), fmt(r.sendLag.p99, 2), fmt(r.sendLag.p999, 2), fmt(r.sendLag.max, 1), '', '', 'due time to the probe issuing the POST (its own lateness)']);
  const names = nodes.map(
    (n, i) =>
      `${n.name}${n === publishTo ? ' (publish)' : ''}${n === streamFrom && n !== publishTo ? ' (stream)' : ''}: ${compactions[i]} log compactions behind a checkpoint, ${taken[i]} full snapshots, ${checkpoints[i]} checkpoints, ${fmt(fsyncs[i])} broker fsyncs (slowest since start ${fmt(endViews[i]!.fsync.maxMs, 1)} ms)`,
  );
  t.notes.push(`${label} during the window: ${names.join('; ')}`);
  const stalls = r.worst.map((w) => {
    const at = r.t0EpochMs + w.atMs;
    const near = snapshotEvents.filter(({ e }) => Math.abs(e.atMs - at) <= 1500).map(({ node, e }) => `${e.msg.replace('raft: ', '')} on ${node.name} at ${e.atMs - at >= 0 ? '+' : ''}${fmt(e.atMs - at)} ms`);
    return `${fmt(w.ms, 1)} ms at t=${fmt(w.atMs / 1000, 1)} s${near.length > 0 ? ` (${near.join(', ')})` : ''}`;
  });
  t.notes.push(`${label} worst stalls: ${stalls.join('; ')}`);
}

async function latency(): Promise<void> {
  const t = table(`5. Publish-to-stream latency, open loop at ${fmt(LATENCY_RATE)} msg/s for ${fmt(LATENCY_MS / 1000)} s (timed from each message's due time)`, LATENCY_COLUMNS);
  {
    const [node] = await startCluster(1);
    try {
      await latencyCase('1 node', [node!], node!, node!, 5, t);
    } finally {
      await stopBroker(node!);
    }
  }
  {
    progress('starting a 3-node cluster');
    const nodes = await startCluster(3);
    try {
      await latencyCase('3 nodes, leader to follower', nodes, nodes[0]!, nodes[1]!, 10, t);
    } finally {
      for (const node of nodes) await stopBroker(node);
    }
  }
  t.notes.push('Default snapshot (10,000 entries: the log is compacted behind the broker checkpoint; a full snapshot only for a follower that needs one) and checkpoint (1 s) thresholds. CPU µs/msg: all brokers, first due time to last arrival.');
  tables.push(t);
}

// ---- 6. replay ---------------------------------------------------------------------------------

/** Publishes `count` messages of `bytes` to `topicID` through /messaging/batch, 1000 per request, 4 in flight. */
async function fill(broker: Broker, topicID: bigint, count: number, bytes: number): Promise<number> {
  const perRequest = 1000;
  const body = encodeMessages(Array.from({ length: perRequest }, () => ({ type: 1, topicID, index: 0n, data: new Uint8Array(bytes).fill(120) })));
  const requests = Math.ceil(count / perRequest);
  let next = 0;
  const start = performance.now();
  const worker = async (): Promise<void> => {
    while (next < requests) {
      next++;
      const res = await httpRequest(`${broker.url}/messaging/batch`, 'POST', body);
      if (res.status !== 200) throw new Error(`fill: batch answered ${res.status}: ${res.body.toString('utf8').slice(0, 200)}`);
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
  return (performance.now() - start) / 1000;
}

async function replay(): Promise<void> {
  const t = table('6. Replay over HTTP: GET from index 0, non-streaming, one reader', ['case', 'messages', 'msg/s', 'MB/s', 'read s', 'CPU µs/msg', 'target', 'note']);
  const [node] = await startCluster(1);
  try {
    progress(`replay: publishing ${fmt(REPLAY_MESSAGES)} messages`);
    const fillSeconds = await fill(node!, 9n, REPLAY_MESSAGES, BODY_BYTES);
    await settle([node!]);
    progress('replay: 3 reads');
    const m = await measure([node!.pid], { mode: 'get', port: node!.port, connections: 1, warmupMs: 0, durationMs: 120_000, maxRequests: 3, path: '/messaging/messages?topicID=9&index=0' });
    const frame = encodedLength({ type: 1, topicID: 9n, index: 0n, data: new Uint8Array(BODY_BYTES) });
    const perRead = m.load.bytes / Math.max(1, m.load.requests);
    const seconds = m.load.p50Ms / 1000;
    const rate = REPLAY_MESSAGES / seconds;
    const complete = perRead === REPLAY_MESSAGES * frame;
    t.rows.push([
      `1 node, ${BODY_BYTES}-byte messages, median of ${m.load.requests}`,
      fmt(REPLAY_MESSAGES),
      fmt(rate),
      fmt(perRead / 1e6 / seconds, 0),
      fmt(seconds, 3),
      fmt((m.cpuMs * 1000) / (REPLAY_MESSAGES * m.load.requests), 2),
      target('≥ 2M msg/s', rate >= 2_000_000 && complete),
      `${complete ? '' : `read ${fmt(perRead)} bytes, expected ${fmt(REPLAY_MESSAGES * frame)}; `}reads ${fmt(m.load.p50Ms, 0)} ms median, ${fmt(m.load.maxMs, 0)} ms max; filled in ${fmt(fillSeconds, 1)} s (${fmt(REPLAY_MESSAGES / fillSeconds)} msg/s by batches of 1000)${errorNote(m)}`,
    ]);
    t.notes.push('MB/s counts frame bytes (22-byte header + data). CPU: the broker over the three reads.');
  } finally {
    await stopBroker(node!);
  }
  tables.push(t);
}

// ---- 7. cost models ----------------------------------------------------------------------------

async function sizes(): Promise<void> {
  const t = table('7a. Cost model: message size, 16 publishers, 1 node', ['size', 'msg/s', 'MB/s', 'p50 ms', 'p99 ms', 'CPU µs/msg', 'CPU ns/byte', 'vs 100 B', 'note']);
  let base: number | undefined;
  for (const size of [100, 1024, 64 * 1024]) {
    const [node] = await startCluster(1);
    try {
      progress(`size ${size} B, 16 publishers`);
      const m = await measure([node!.pid], { port: node!.port, connections: 16, bodyBytes: size, path: '/messaging/messages?type=1&topicID=3' });
      const cpu = cpuPer(m);
      base ??= cpu;
      t.rows.push([`${fmt(size)} B`, fmt(okRate(m)), fmt((okRate(m) * size) / 1e6, 1), fmt(m.load.p50Ms, 2), fmt(m.load.p99Ms, 2), fmt(cpu, 0), fmt((cpu * 1000) / size, 1), ratio(cpu / base), `RSS ${fmt(rssBytes(node!.pid) / 1e6)} MB, ${genNote(m)}${errorNote(m)}`]);
    } finally {
      await stopBroker(node!);
    }
  }
  t.notes.push('A fresh broker per size. vs 100 B: CPU per message against the 100-byte case.');
  tables.push(t);
}

async function publishers(): Promise<void> {
  const t = table('7b. Cost model: publisher count, 1 node, 100-byte messages', ['publishers', 'msg/s', 'p50 ms', 'p99 ms', 'CPU µs/msg', 'ceiling', 'ratio', 'note']);
  for (const conns of [1, 4, 16, 64, 256]) {
    const [node] = await startCluster(1);
    try {
      progress(`${conns} publishers`);
      const m = await measure([node!.pid], { port: node!.port, connections: conns, bodyBytes: BODY_BYTES, path: PUBLISH_PATH });
      const ceiling = ceilingRps.get(conns);
      t.rows.push([String(conns), fmt(okRate(m)), fmt(m.load.p50Ms, 2), fmt(m.load.p99Ms, 2), fmt(cpuPer(m), 0), fmt(ceiling), ratio(ceiling === undefined ? undefined : okRate(m) / ceiling), genNote(m) + errorNote(m)]);
    } finally {
      await stopBroker(node!);
    }
  }
  t.notes.push('A fresh broker per count. ceiling: bare node:http at the same connection count (section 1).');
  tables.push(t);
}

// ---- 9. cost of deduplication ------------------------------------------------------------------

async function dedup(): Promise<void> {
  const t = table('9. Cost of exactly-once publish: producer ids on every publish, 1 node, 100-byte messages', ['publishers', 'producer ids', 'msg/s', 'p50 ms', 'p99 ms', 'CPU µs/msg', 'ratio', 'note']);
  const [node] = await startCluster(1);
  try {
    for (const conns of [1, 16, 64]) {
      // Alternating runs on the same broker, twice each; the better of each pair is compared.
      const runs: Record<'off' | 'on', Measured[]> = { off: [], on: [] };
      for (let round = 0; round < 2; round++) {
        for (const mode of ['off', 'on'] as const) {
          progress(`${conns} publishers, producer ids ${mode}, round ${round + 1}`);
          runs[mode].push(await measure([node!.pid], { port: node!.port, connections: conns, bodyBytes: BODY_BYTES, path: PUBLISH_PATH, producers: mode === 'on' }));
        }
      }
      const median = (ms: Measured[]): Measured => [...ms].sort((a, b) => okRate(a) - okRate(b))[Math.floor(ms.length / 2)]!;
      const off = median(runs.off);
      const on = median(runs.on);
      for (const [mode, m] of [['no', off], ['yes', on]] as const) {
        t.rows.push([String(conns), mode, fmt(okRate(m)), fmt(m.load.p50Ms, 2), fmt(m.load.p99Ms, 2), fmt(cpuPer(m), 0), mode === 'yes' ? ratio(okRate(on) / okRate(off)) : '', genNote(m) + errorNote(m)]);
      }
    }
  } finally {
    await stopBroker(node!);
  }
  t.notes.push('Each connection is one producer with its own sequence (X-Broker-Producer-Id/-Seq). ratio: msg/s with producer ids against without, the higher of two alternating runs each on the same broker.');
  tables.push(t);
}

/** Creates topics 1..n with one message each, through batches of up to 1000 (one topic per message). */
async function createTopics(broker: Broker, n: number): Promise<number> {
  const start = performance.now();
  for (let first = 1; first <= n; first += 1000) {
    const last = Math.min(n, first + 999);
    const body = encodeMessages(Array.from({ length: last - first + 1 }, (_, i) => ({ type: 1, topicID: BigInt(first + i), index: 0n, data: new Uint8Array(BODY_BYTES).fill(116) })));
    const res = await httpRequest(`${broker.url}/messaging/batch`, 'POST', body);
    if (res.status !== 200) throw new Error(`creating topics ${first}..${last}: ${res.status} ${res.body.toString('utf8').slice(0, 200)}`);
  }
  return (performance.now() - start) / 1000;
}

const openFds = (pid: number): number => {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return NaN;
  }
};

/** The soft limit on open files of a process (`Max open files` of /proc/<pid>/limits). */
const fdLimit = (pid: number): string => {
  try {
    return /^Max open files\s+(\S+)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'))?.[1] ?? '?';
  } catch {
    return '?';
  }
};

async function topics(): Promise<void> {
  const t = table('7c. Cost model: topics written at once, 64 publishers, round-robin over the topics, 1 node', ['topics', 'msg/s', 'p50 ms', 'p99 ms', 'CPU µs/msg', 'vs 1 topic', 'RSS MB', 'fds', 'note']);
  let base: number | undefined;
  let limit = '?';
  for (const n of [1, 100, 10_000]) {
    const [node] = await startCluster(1);
    limit = fdLimit(node!.pid);
    try {
      progress(`${fmt(n)} topics: creating`);
      const created = await createTopics(node!, n);
      progress(`${fmt(n)} topics, 64 publishers`);
      const s0 = await status(node!);
      const m = await measure([node!.pid], { port: node!.port, connections: 64, bodyBytes: BODY_BYTES, path: '/messaging/messages?type=1&topicID={n}', pathVariants: n });
      const s1 = await status(node!);
      const cpu = cpuPer(m);
      base ??= cpu;
      const checkpoints = `${s1.counters.checkpoints - s0.counters.checkpoints} checkpoints, ${fmt(s1.fsync.count - s0.fsync.count)} broker fsyncs taking ${fmt(s1.fsync.totalMs - s0.fsync.totalMs)} ms`;
      t.rows.push([fmt(n), fmt(okRate(m)), fmt(m.load.p50Ms, 2), fmt(m.load.p99Ms, 2), fmt(cpu, 0), ratio(cpu / base), fmt(rssBytes(node!.pid) / 1e6), fmt(openFds(node!.pid)), `created in ${fmt(created, 1)} s; ${checkpoints}; ${genNote(m)}${errorNote(m)}`]);
    } finally {
      await stopBroker(node!);
    }
  }
  t.notes.push('A fresh broker per count; the topics are created (one message each) before the load, so the window measures writes, not creation. RSS and open fds: the broker at the end. Checkpoints and broker fsyncs (from /status): over the whole load run, warm-up included.');
  t.notes.push(`The brokers' open-file limit: ${limit}.`);
  tables.push(t);
}

// ---- 8. TLS ---------------------------------------------------------------------------------------

/** Waits until a broker answers `/ready` 200 through the load generator (plain or TLS), at most 30 s. */
async function ready(broker: Broker, tlsCa: string | undefined): Promise<void> {
  for (let i = 0; i < 60; i++) {
    const m = await measure([broker.pid], { mode: 'get', port: broker.port, connections: 1, warmupMs: 0, durationMs: 2000, maxRequests: 1, path: '/ready', progress: false, ...(tlsCa ? { tlsCa } : {}) });
    if (m.ok > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  throw new Error(`broker ${broker.url} not ready within 30 s`);
}

async function tlsCost(): Promise<void> {
  const t = table('8. TLS against plain HTTP, 1 node, same run', ['case', 'plain', 'TLS', 'TLS / plain', 'CPU µs/msg plain', 'CPU µs/msg TLS', 'note']);
  const pkiDir = await tempDir();
  const pki = makeTestPki(pkiDir, 'bench');
  const server = pki.issue('broker', 30);
  const ca = readFileSync(pki.ca, 'utf8');
  const messages = QUICK ? 20_000 : 200_000;
  // 500 per request: the body travels base64 on the load generator's command line (at most 128 KiB an argument).
  const batch = Buffer.from(encodeMessages(Array.from({ length: 500 }, () => ({ type: 1, topicID: 9n, index: 0n, data: new Uint8Array(BODY_BYTES).fill(120) })))).toString('base64');
  const results: Record<'plain' | 'tls', { publish: Measured; replay: Measured }> = {} as never;
  for (const mode of ['plain', 'tls'] as const) {
    const broker = await startBroker(undefined, mode === 'tls' ? ['--tls-cert', server.cert, '--tls-key', server.key] : []);
    const tls = mode === 'tls' ? { tlsCa: ca } : {};
    try {
      await ready(broker, mode === 'tls' ? ca : undefined);
      progress(`${mode}: single publish, 64 publishers`);
      const publish = await measure([broker.pid], { port: broker.port, connections: 64, bodyBytes: BODY_BYTES, path: PUBLISH_PATH, ...tls });
      progress(`${mode}: filling ${fmt(messages)} messages`);
      await measure([broker.pid], { port: broker.port, connections: 4, warmupMs: 0, durationMs: 120_000, maxRequests: messages / 500, bodyBase64: batch, path: '/messaging/batch', progress: false, ...tls });
      progress(`${mode}: 3 reads`);
      const replay = await measure([broker.pid], { mode: 'get', port: broker.port, connections: 1, warmupMs: 0, durationMs: 120_000, maxRequests: 3, path: '/messaging/messages?topicID=9&index=0', ...tls });
      results[mode] = { publish, replay };
    } finally {
      await stopBroker(broker);
    }
  }
  const { plain, tls } = results;
  const mbps = (m: Measured): number => m.load.bytes / Math.max(1, m.load.requests) / 1e6 / (m.load.p50Ms / 1000);
  t.rows.push(['single publish, 64 publishers, msg/s', fmt(okRate(plain.publish)), fmt(okRate(tls.publish)), ratio(okRate(tls.publish) / okRate(plain.publish)), fmt(cpuPer(plain.publish), 0), fmt(cpuPer(tls.publish), 0), `p50 ${fmt(plain.publish.load.p50Ms, 2)} / ${fmt(tls.publish.load.p50Ms, 2)} ms${errorNote(tls.publish)}`]);
  t.rows.push([`replay of ${fmt(messages)} messages, stream MB/s`, fmt(mbps(plain.replay)), fmt(mbps(tls.replay)), ratio(mbps(tls.replay) / mbps(plain.replay)), fmt((plain.replay.cpuMs * 1000) / (messages * plain.replay.load.requests), 2), fmt((tls.replay.cpuMs * 1000) / (messages * tls.replay.load.requests), 2), `median of 3 reads${errorNote(tls.replay)}`]);
  t.notes.push('TLS: the client listener with an EC P-256 certificate (TLS 1.3, keep-alive connections: one handshake per connection). Peer traffic is not part of this case.');
  tables.push(t);
}

// ---- main --------------------------------------------------------------------------------------

async function section(name: string, run: () => Promise<void>): Promise<void> {
  process.stderr.write(`[bench] ${name}\n`);
  const printed = tables.length;
  try {
    await run();
  } catch (error) {
    failures.push(`${name}: ${(error as Error).stack ?? String(error)}`);
    process.stderr.write(`[bench] ${name} FAILED: ${(error as Error).message}\n`);
  }
  for (const t of tables.slice(printed)) console.log(render(t));
}

async function main(): Promise<void> {
  const started = performance.now();
  const load0 = loadavg();
  console.log(
    `@msg/broker-server bench: node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? '?'}, load average ${load0.map((l) => l.toFixed(2)).join(' ')}` +
      `\nfsync on (--sync always), loopback, ${WARMUP_MS / 1000} s warm-up + ${DURATION_MS / 1000} s measured per throughput case, ${BODY_BYTES}-byte messages unless noted${QUICK ? ' (BENCH_QUICK)' : ''}`,
  );
  if (want('ceiling')) await section('ceiling', ceilings);
  const batchTable = table(`4. Batch publish, ${BATCH} messages per request`, PUBLISH_COLUMNS);
  if (want('publish') || want('batch')) await section('publish (1 node)', () => oneNode(batchTable));
  if (want('cluster') || want('batch')) await section('cluster (3 nodes)', () => threeNodes(batchTable));
  if (want('batch')) {
    batchTable.notes.push('CPU µs/msg: every broker of the case, per message acknowledged.');
    console.log(render(batchTable));
  }
  if (want('latency')) await section('latency', latency);
  if (want('replay')) await section('replay', replay);
  if (want('size')) await section('size', sizes);
  if (want('publishers')) await section('publishers', publishers);
  if (want('topics')) await section('topics', topics);
  if (want('tls')) await section('tls', tlsCost);
  if (want('dedup')) await section('dedup', dedup);

  if (brokerProblems.length > 0) {
    const byMsg = new Map<string, { n: number; first: string }>();
    for (const { broker, during, event } of brokerProblems) {
      const key = `${event.level} ${event.msg}`;
      const seen = byMsg.get(key);
      if (seen) seen.n++;
      else byMsg.set(key, { n: 1, first: `${broker.name} during "${during}": ${event.line.slice(0, 400)}` });
    }
    console.log(`\nBroker warnings and errors (${brokerProblems.length} lines):`);
    for (const [key, { n, first }] of byMsg) console.log(`  ${n} × ${key}\n      first: ${first}`);
  } else console.log('\nNo broker logged a warning or an error.');
  for (const failure of failures) console.log(`\nSECTION FAILED: ${failure}`);
  console.log(`\ntotal ${fmt((performance.now() - started) / 1000)} s; load average now ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
}

try {
  await main();
} finally {
  closeAgent();
  await cleanUp();
}
if (failures.length > 0) process.exitCode = 1;
