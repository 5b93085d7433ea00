import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTempDir, waitFor } from '@msg/test-utils';
import { request, type RequestTls } from './http-request.js';
import { startBroker, type BrokerProcess, type Lifetime } from './broker-process.js';

/**
 * Raft timings for tests: elections in [300, 600) ms, heartbeats every 50 ms,
 * so a new leader is elected within about a second of a crash.
 */
export const FAST_RAFT_ARGS: readonly string[] = ['--election-timeout-ms', '300', '--heartbeat-interval-ms', '50'];

/** What a broker's `GET /status` answers (the fields these tests read). */
export interface BrokerStatus {
  isLeader: boolean;
  leaderURL: string | null;
  /** Every member's URL. */
  urls: string[];
}

/** `GET /status` of the broker at `url`. Rejects on a non-200 answer or a connection error. */
export async function status(url: string, tls?: RequestTls): Promise<BrokerStatus> {
  const answer = await request(`${url}/status`, { timeoutMs: 5000, ...(tls ? { tls } : {}) });
  if (answer.status !== 200) throw new Error(`GET ${url}/status: ${answer.status} ${answer.body.toString()}`);
  return JSON.parse(answer.body.toString()) as BrokerStatus;
}

/** The cluster's URLs as the leader at `url` answers `POST /messaging/ping`; `undefined` when it is not the leader. */
export async function pingURLs(url: string, tls?: RequestTls): Promise<string[] | undefined> {
  const answer = await request(`${url}/messaging/ping`, { method: 'POST', body: '', timeoutMs: 5000, ...(tls ? { tls } : {}) });
  if (answer.status !== 200) return undefined;
  return (JSON.parse(answer.body.toString()) as { urls: string[] }).urls;
}

/**
 * Waits until exactly one of the running `nodes` says it is the leader and
 * every other running node names it as leader; resolves with it.
 */
export async function waitForLeader(nodes: readonly BrokerProcess[], timeoutMs = 20_000, tls?: RequestTls): Promise<BrokerProcess> {
  return waitFor(
    async () => {
      const alive = nodes.filter((n) => n.alive);
      const states = await Promise.all(alive.map((n) => status(n.url, tls)));
      const leaders = alive.filter((_n, i) => states[i]!.isLeader);
      if (leaders.length !== 1) return undefined;
      const leader = leaders[0]!;
      return states.every((s) => s.leaderURL === leader.url) ? leader : undefined;
    },
    { timeoutMs, intervalMs: 50, message: 'no agreed leader' },
  );
}

/** Waits until the leader's `/messaging/ping` lists exactly `urls` (in any order). */
export async function waitForMembers(nodes: readonly BrokerProcess[], urls: readonly string[], timeoutMs = 20_000, tls?: RequestTls): Promise<void> {
  const want = [...urls].sort();
  await waitFor(
    async () => {
      for (const node of nodes.filter((n) => n.alive)) {
        const listed = await pingURLs(node.url, tls).catch(() => undefined);
        if (listed !== undefined) return JSON.stringify([...listed].sort()) === JSON.stringify(want);
      }
      return false;
    },
    { timeoutMs, intervalMs: 50, message: `members ${want.join(' ')}` },
  );
}

/** Options of {@link startCluster}. */
export interface ClusterOptions {
  /** Extra flags of every node (after {@link FAST_RAFT_ARGS}). */
  args?: readonly string[];
  lifetime?: Lifetime;
  /** The CA (and client certificate) the harness's own requests use, for nodes serving https. */
  tls?: RequestTls;
  /** Extra flags of node `i` (1-based), after `args`: a certificate of its own, say. */
  nodeArgs?: (i: number) => readonly string[];
}

/**
 * The join token a node that bootstrapped its cluster keeps in
 * `<dataDir>/join-token` (what `--print-join-token` prints): give it to a
 * node that joins (`--join-token`) and to `leave`.
 */
export async function readJoinToken(dataDir: string): Promise<string> {
  return (await readFile(join(dataDir, 'join-token'), 'utf8')).trim();
}

/**
 * Starts `size` brokers in fresh temp dirs: node 1 initializes a cluster, the
 * others `--join` it one after another with its join token. Resolves once
 * the leader lists every node and every node agrees on the leader.
 */
export async function startCluster(size: number, options: ClusterOptions = {}): Promise<BrokerProcess[]> {
  const args = (i: number): string[] => [...FAST_RAFT_ARGS, ...(options.args ?? []), ...(options.nodeArgs?.(i) ?? [])];
  const { tls } = options;
  const first = await startBroker({ dataDir: await makeTempDir('msg-it-n1-'), args: args(1), lifetime: options.lifetime });
  const nodes = [first];
  await waitForLeader(nodes, undefined, tls);
  const joinToken = size > 1 ? await readJoinToken(first.dataDir) : undefined;
  for (let i = 2; i <= size; i++) {
    nodes.push(await startBroker({ dataDir: await makeTempDir(`msg-it-n${i}-`), join: [first.url], joinToken, args: args(i), lifetime: options.lifetime }));
    await waitForMembers(nodes, nodes.map((n) => n.url), undefined, tls);
  }
  await waitForLeader(nodes, undefined, tls);
  return nodes;
}

/** Restarts a stopped node with its data dir and port (so its URL, its identity, is the same), without `--join`. */
export async function restart(node: BrokerProcess, options: ClusterOptions = {}): Promise<BrokerProcess> {
  return startBroker({ dataDir: node.dataDir, port: node.port, args: [...FAST_RAFT_ARGS, ...(options.args ?? [])], lifetime: options.lifetime });
}

/**
 * Waits until `node` has written a log line for which `match` is true, and
 * resolves with it; the timeout error shows the node's last log lines.
 */
export async function waitForLog(
  node: BrokerProcess,
  match: (line: Record<string, unknown>) => boolean,
  what: string,
  timeoutMs = 30_000,
): Promise<Record<string, unknown>> {
  try {
    return await waitFor(() => node.logs.find(match), { timeoutMs, intervalMs: 50, message: what });
  } catch (error) {
    throw new Error(`${(error as Error).message}; last log lines of ${node.url}:\n${node.tail()}`, { cause: error });
  }
}
