import { Client, isBrokerError, isClientError } from '@msg/client';
import { ErrorCodes, isErrorCode } from '@msg/wire';
import { request } from '../../integration/src/http-request.js';
import type { BrokerNode } from './broker-node.js';
import { check, type CheckResult, type Probe, type Violation } from './checker.js';
import { FaultCluster } from './cluster.js';
import { Consumer } from './consumers.js';
import { FaultLog } from './fault-log.js';
import type { Cut } from './network.js';
import { ClientPublishers, RawPublishers, type Ack } from './publishers.js';
import { describeStep, FaultKinds, makeSchedule, type FaultKind, type FaultStep, type Role } from './schedule.js';
import { sleep, waitFor } from '@msg/test-utils/wait-for';

/** Options of {@link runSchedule}. */
export interface RunOptions {
  /** Replays the schedule: same seed, same steps. */
  seed: number;
  /** Number of fault steps. */
  steps: number;
  /** Cluster size. Default 3. */
  nodes?: number;
  /** Kinds to draw from. Default: all. */
  kinds?: readonly FaultKind[];
  /** Broker `--election-timeout-ms`. Default: the broker's (1000). */
  electionTimeoutMs?: number;
  /** Raw HTTP publish loops (topic 1). Default 3. */
  rawWorkers?: number;
  /** `@msg/client` publish loops (topic 2). Default 2. */
  clientWorkers?: number;
  /** Each node's tmpfs, in bytes. Default 64 MiB. */
  diskBytes?: number;
  /** Called with every fault log line as it happens. */
  echo?: (line: string) => void;
}

/** What one run did and found. */
export interface RunReport {
  readonly seed: number;
  readonly schedule: readonly FaultStep[];
  readonly log: FaultLog;
  /** Faults applied, by kind (the schedule's, as applied). */
  readonly faults: Record<FaultKind, number>;
  /** Of those: faults that hit the leader of the moment with SIGKILL. */
  readonly leaderKills: number;
  /** Partitions applied (isolate, split, one-way, bridge, and each step of a moving one). */
  readonly partitions: number;
  readonly result: CheckResult;
  /** Distinct leader terms the monitor saw, minus one. */
  readonly leaderChanges: number;
  /** For each fault that hit the leader and was followed by a new leader: ms from the fault until a node other than the old leader said it leads (polled every 100 ms). */
  readonly failoversMs: readonly number[];
  /** For each fault that hit the leader: ms from the fault to the first acknowledged publish sent after it, as the clients saw it (their request timeouts included). */
  readonly recoveriesMs: readonly number[];
  /** Longest time without any acknowledged publish while faults ran, in ms. */
  readonly longestUnavailableMs: number;
  readonly durationMs: number;
}

const RAW_TOPIC = 1n;
const CLIENT_TOPIC = 2n;

/** Sees leader terms while the run goes on (every 100 ms): when each term's leader was first seen. */
class LeaderMonitor {
  readonly terms = new Map<number, { url: string; at: number }>();
  #stopped = false;
  #loop: Promise<void> | undefined;
  readonly #cluster: FaultCluster;

  constructor(cluster: FaultCluster) {
    this.#cluster = cluster;
  }

  start(): void {
    this.#loop = (async () => {
      while (!this.#stopped) {
        const cluster = this.#cluster;
        const states = await Promise.all(cluster.nodes.map((n) => cluster.status(n, 1000)));
        states.forEach((s, i) => {
          if (s?.isLeader && !this.terms.has(s.term)) this.terms.set(s.term, { url: cluster.nodes[i]!.url, at: Date.now() });
        });
        await sleep(100);
      }
    })();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#loop;
  }
}

/**
 * Runs one seeded schedule against a fresh cluster in network namespaces:
 * starts publishers (raw HTTP on topic 1, `@msg/client` on topic 2) and a
 * `Conn` consumer per topic, applies every step (logging each fault and heal
 * with a timestamp), heals everything, waits for convergence, and checks.
 * Always removes the cluster. Rejects only when the harness itself cannot
 * run (no free subnet, a node that never starts); broken promises of the
 * broker are `report.result.violations`.
 */
export async function runSchedule(options: RunOptions): Promise<RunReport> {
  const started = Date.now();
  const nodes = options.nodes ?? 3;
  const schedule = makeSchedule(options.seed, { steps: options.steps, nodes, ...(options.kinds ? { kinds: options.kinds } : {}) });
  const log = new FaultLog(options.echo);
  log.record('seed', `${options.seed} steps=${options.steps} nodes=${nodes}`);
  const faults = Object.fromEntries(FaultKinds.map((k) => [k, 0])) as Record<FaultKind, number>;
  const probes: Probe[] = [];
  const harness: Violation[] = [];
  /** When a fault hit the leader of the moment, and its URL. */
  const leaderFaults: { at: number; url: string }[] = [];
  const leaderFault = (node: BrokerNode): void => {
    leaderFaults.push({ at: Date.now(), url: node.url });
  };
  let leaderKills = 0;
  let partitions = 0;

  const cluster = await FaultCluster.start({ nodes, ...(options.electionTimeoutMs ? { electionTimeoutMs: options.electionTimeoutMs } : {}), ...(options.diskBytes ? { diskBytes: options.diskBytes } : {}) });
  const { network } = cluster;
  log.record('cluster', `${cluster.urls.join(' ')} on ${network.prefix}.0/24 (driver ${network.driverAddress})`);
  const tag = `s${options.seed}`;
  const raw = new RawPublishers({ urls: cluster.urls, topicID: RAW_TOPIC, workers: options.rawWorkers ?? 3, tag });
  const client = new ClientPublishers({ urls: cluster.urls, topicID: CLIENT_TOPIC, workers: options.clientWorkers ?? 2, tag });
  const consumers = [new Consumer({ urls: cluster.urls, topicID: RAW_TOPIC, name: 'conn-raw' }), new Consumer({ urls: cluster.urls, topicID: CLIENT_TOPIC, name: 'conn-client' })];
  const monitor = new LeaderMonitor(cluster);
  const boundMs = Math.max(8000, 8 * cluster.electionTimeoutMs);
  let probeCount = 0;

  const resolve = async (role: Role): Promise<BrokerNode> => {
    const leader = await cluster.waitForLeader(20_000).catch(() => undefined);
    if (role === 'leader') {
      if (leader) return leader.node;
      log.record('note', 'no agreed leader: the fault hits node 1');
      return cluster.node(1);
    }
    return cluster.nodes.find((n) => n.alive && n !== leader?.node) ?? cluster.node(1);
  };
  const isLeader = async (node: BrokerNode): Promise<boolean> => (await cluster.status(node))?.isLeader === true;
  const ensureRunning = async (node: BrokerNode): Promise<void> => {
    if (node.alive) return;
    const exit = node.lastExit;
    log.record('restart', `node ${node.id} (it had exited ${exit?.code ?? exit?.signal})`);
    try {
      await cluster.restart(node);
    } catch (error) {
      harness.push({ check: 'restart', message: `node ${node.id} does not start again on its data dir: ${(error as Error).message}`, indexes: [], at: Date.now() });
      log.record('restart-failed', `node ${node.id}`);
    }
  };
  const isolate = (ids: readonly number[]): Cut[] =>
    ids.flatMap((id) => cluster.nodes.filter((n) => !ids.includes(n.id)).flatMap((n) => [{ from: id, to: n.id }, { from: n.id, to: id }]));
  const catchUp = async (targets: readonly BrokerNode[]): Promise<void> => {
    const leader = await cluster.waitForLeader(30_000).catch(() => undefined);
    if (!leader) return;
    const goal = leader.status.commitIndex;
    for (const node of targets) {
      const t0 = Date.now();
      const ok = await waitFor(async () => ((await cluster.status(node))?.appliedIndex ?? -1) >= goal, { message: `node ${node.id} to apply ${goal}`, timeoutMs: 30_000, intervalMs: 100 }).then(
        () => true,
        () => false,
      );
      probes.push({ check: 'catch-up', ok, detail: `node ${node.id} ${ok ? 'applied' : 'did not apply'} the leader's commit index ${goal} within ${ok ? Date.now() - t0 : 30_000} ms of the heal`, at: Date.now() });
      log.record('catch-up', `node ${node.id} ${ok ? `reached ${goal} in ${Date.now() - t0} ms` : `NOT at ${goal} after 30 s`}`);
    }
  };
  /** A publish straight into an isolated (minority) node must fail, retriably, within the bound; both as raw HTTP and through @msg/client. */
  const probeMinority = async (node: BrokerNode): Promise<void> => {
    const n = probeCount++;
    const rawPayload = `${tag}-probe-raw-${n}`;
    const clientPayload = `${tag}-probe-client-${n}`;
    raw.sent.add(rawPayload);
    client.sent.add(clientPayload);
    const t0 = Date.now();
    const rawProbe = (async (): Promise<Probe> => {
      try {
        const answer = await request(`${node.url}/messaging/messages?type=1&topicID=${RAW_TOPIC}`, { method: 'POST', body: rawPayload, timeoutMs: boundMs * 3 });
        const ms = Date.now() - t0;
        const code = String(answer.headers['x-broker-error-code'] ?? '');
        const index = answer.headers['x-broker-index'];
        if (answer.status === 200 && typeof index === 'string') {
          raw.acked.set(rawPayload, { payload: rawPayload, index: BigInt(index), startedAt: t0, endedAt: Date.now() });
          return { check: 'minority-publish', ok: false, detail: `raw publish to isolated node ${node.id} was acknowledged at ${index} after ${ms} ms`, at: t0 };
        }
        const retriable = answer.status === 307 || (isErrorCode(code) && ErrorCodes[code].retriable);
        const ok = retriable && ms <= boundMs;
        return { check: 'minority-publish', ok, detail: `raw publish to isolated node ${node.id}: ${answer.status} ${code || '(no code)'} after ${ms} ms (bound ${boundMs} ms, retriable: ${retriable})`, at: t0 };
      } catch (error) {
        return { check: 'minority-publish', ok: false, detail: `raw publish to isolated node ${node.id} got no answer in ${Date.now() - t0} ms: ${(error as Error).message}`, at: t0 };
      }
    })();
    const clientProbe = (async (): Promise<Probe> => {
      const probe = new Client({ urls: [node.url], retries: 2, requestTimeoutMs: 3000, pingIntervalMs: 0, backoff: { initialMs: 100, maxMs: 200 } });
      const clientBound = boundMs + 3 * 3000;
      await probe.open();
      try {
        const index = await probe.publish({ type: 1, topicID: CLIENT_TOPIC, data: Buffer.from(clientPayload) }, { signal: AbortSignal.timeout(clientBound * 2) });
        client.acked.set(clientPayload, { payload: clientPayload, index, startedAt: t0, endedAt: Date.now() });
        return { check: 'minority-publish', ok: false, detail: `@msg/client publish to isolated node ${node.id} resolved with index ${index}`, at: t0 };
      } catch (error) {
        const ms = Date.now() - t0;
        const typed = isBrokerError(error) || isClientError(error);
        const ok = typed && error.retriable && error.code !== 'ABORTED' && ms <= clientBound;
        const what = typed ? `${error.code} (retriable: ${error.retriable})` : (error as Error).message;
        return { check: 'minority-publish', ok, detail: `@msg/client publish to isolated node ${node.id} failed with ${what} after ${ms} ms (bound ${clientBound} ms)`, at: t0 };
      } finally {
        await probe.close();
      }
    })();
    for (const probe of await Promise.all([rawProbe, clientProbe])) {
      probes.push(probe);
      log.record('probe', `${probe.ok ? 'ok' : 'FAILED'}: ${probe.detail}`);
    }
  };

  const applyStep = async (step: FaultStep): Promise<void> => {
    faults[step.kind]++;
    const hold = (): Promise<void> => sleep(step.holdMs);
    switch (step.kind) {
      case 'kill': {
        const node = await resolve(step.role!);
        const leading = await isLeader(node);
        leaderKills += leading ? 1 : 0;
        if (leading) leaderFault(node);
        log.record('kill', `SIGKILL node ${node.id} pid ${node.pid}${leading ? ' (leader)' : ''}`);
        await node.kill();
        await hold();
        await ensureRunning(node);
        await catchUp([node]);
        break;
      }
      case 'pause': {
        const node = await resolve(step.role!);
        const leading = await isLeader(node);
        if (leading) leaderFault(node);
        log.record('pause', `SIGSTOP node ${node.id} pid ${node.pid}${leading ? ' (leader)' : ''} for ${step.holdMs} ms`);
        node.pause();
        await hold();
        node.resume();
        log.record('heal', `SIGCONT node ${node.id}`);
        await catchUp([node]);
        break;
      }
      case 'restart': {
        const node = await resolve(step.role!);
        const leading = await isLeader(node);
        if (leading) leaderFault(node);
        log.record('restart', `SIGTERM node ${node.id} pid ${node.pid}${leading ? ' (leader)' : ''}`);
        const exit = await node.stop();
        if (exit.code !== 0) harness.push({ check: 'graceful-stop', message: `node ${node.id} exited ${exit.code ?? exit.signal} on SIGTERM (want 0)`, indexes: [], at: Date.now() });
        await hold();
        await ensureRunning(node);
        await catchUp([node]);
        break;
      }
      case 'isolate': {
        const node = await resolve(step.role!);
        const leading = await isLeader(node);
        if (leading) leaderFault(node);
        partitions++;
        await network.partition(isolate([node.id]));
        log.record('isolate', `node ${node.id}${leading ? ' (leader)' : ''} cut off from every peer, both ways, for ${step.holdMs} ms`);
        const probe = leading ? probeMinority(node) : Promise.resolve();
        await Promise.all([probe, hold()]);
        await network.heal();
        log.record('heal', 'all cuts removed');
        await catchUp([node]);
        break;
      }
      case 'split': {
        const minority = step.nodes!;
        const leader = await cluster.leader();
        const leading = leader !== undefined && minority.includes(leader.node.id);
        if (leading) leaderFault(leader.node);
        partitions++;
        await network.partition(isolate(minority));
        log.record('split', `minority {${minority.join(',')}} | majority {${cluster.nodes.filter((n) => !minority.includes(n.id)).map((n) => n.id).join(',')}}${leading ? ` (leader ${leader.node.id} in the minority)` : ''} for ${step.holdMs} ms`);
        const probe = leading ? probeMinority(leader.node) : Promise.resolve();
        await Promise.all([probe, hold()]);
        await network.heal();
        log.record('heal', 'all cuts removed');
        await catchUp(minority.map((id) => cluster.node(id)));
        break;
      }
      case 'one-way': {
        const from = await resolve(step.role!);
        let to = await resolve(step.toRole!);
        if (to === from) to = cluster.nodes.find((n) => n !== from)!;
        partitions++;
        await network.partition([{ from: from.id, to: to.id }]);
        log.record('one-way', `node ${from.id} (${step.role}) -> node ${to.id} (${step.toRole}) dropped, the other way open, for ${step.holdMs} ms`);
        await hold();
        await network.heal();
        log.record('heal', 'all cuts removed');
        await catchUp([from, to]);
        break;
      }
      case 'bridge': {
        const [bridge, ...left] = step.nodes!;
        const right = cluster.nodes.map((n) => n.id).filter((id) => id !== bridge && !left.includes(id));
        partitions++;
        await network.partition(left.flatMap((l) => right.flatMap((r) => [{ from: l, to: r }, { from: r, to: l }])));
        log.record('bridge', `{${left.join(',')}} x {${right.join(',')}} cut, node ${bridge} sees both, for ${step.holdMs} ms`);
        await hold();
        await network.heal();
        log.record('heal', 'all cuts removed');
        await catchUp(cluster.nodes);
        break;
      }
      case 'moving': {
        for (const id of step.nodes!) {
          partitions++;
          if (await isLeader(cluster.node(id))) leaderFault(cluster.node(id));
          await network.partition(isolate([id]));
          log.record('moving', `node ${id} cut off from every peer for ${step.holdMs} ms`);
          await hold();
        }
        await network.heal();
        log.record('heal', 'all cuts removed');
        await catchUp([...new Set(step.nodes)].map((id) => cluster.node(id)));
        break;
      }
      case 'disk-full': {
        const node = await resolve(step.role!);
        const leading = await isLeader(node);
        if (leading) leaderFault(node);
        const bytes = await network.fillDisk(node.id);
        log.record('disk-full', `node ${node.id}${leading ? ' (leader)' : ''}: filler of ${bytes} bytes, writes now fail with ENOSPC, for ${step.holdMs} ms`);
        await hold();
        await network.freeDisk(node.id);
        log.record('heal', `node ${node.id}: filler removed (node ${node.alive ? 'still running' : `exited ${node.lastExit?.code ?? node.lastExit?.signal}`})`);
        await ensureRunning(node);
        await catchUp([node]);
        break;
      }
    }
  };

  let faultsStart = Date.now();
  let faultsEnd = Date.now();
  try {
    monitor.start();
    raw.start();
    await client.start();
    for (const consumer of consumers) await consumer.start();
    await sleep(500);
    faultsStart = Date.now();
    for (const [i, step] of schedule.entries()) {
      log.record('step', `${i + 1}/${schedule.length} ${describeStep(step)}`);
      try {
        await applyStep(step);
      } catch (error) {
        // The harness could not apply or heal the step (a command failed): report it with the log, heal, go on.
        harness.push({ check: 'harness', message: `step ${i + 1} (${describeStep(step)}) failed: ${(error as Error).message}`, indexes: [], at: Date.now() });
        log.record('error', `step ${i + 1}: ${(error as Error).message}`);
        await network.heal().catch(() => undefined);
        for (const node of cluster.nodes) node.resume();
      }
      await sleep(step.gapMs);
    }
    faultsEnd = Date.now();

    // Heal everything, whatever a step left behind.
    await network.heal();
    for (const node of cluster.nodes) {
      node.resume();
      await network.freeDisk(node.id);
      await ensureRunning(node);
    }
    log.record('heal', 'everything: cuts removed, processes resumed, disks freed, nodes running');
    await cluster.waitForLeader(60_000).catch(() => harness.push({ check: 'convergence', message: 'no agreed leader within 60 s of the final heal', indexes: [], at: Date.now() }));
    // A little more traffic after the heal, then stop the publishers.
    await sleep(1000);
    await raw.stop();
    await client.stop();
    log.record('publishers', `stopped: raw ${raw.acked.size} acked / ${raw.failed} failed; client ${client.acked.size} acked / ${client.failed} failed (${[...client.errors].map(([c, k]) => `${c}: ${k}`).join(', ')})`);

    // Convergence: every node serves the same bytes, up to the last acknowledged index.
    const maxAcked = (acks: Iterable<Ack>): bigint => [...acks].reduce((m, a) => (a.index > m ? a.index : m), 0n);
    const goals = [
      { topicID: RAW_TOPIC, index: maxAcked(raw.acked.values()) },
      { topicID: CLIENT_TOPIC, index: maxAcked(client.acked.values()) },
    ];
    for (const goal of goals) {
      await waitFor(
        async () => {
          const all = await Promise.all(cluster.nodes.map((n) => cluster.readTopic(n, goal.topicID)));
          return all.every((t) => (t.messages.at(-1)?.index ?? 0n) >= goal.index && t.bytes.equals(all[0]!.bytes));
        },
        { message: `every node to serve topic ${goal.topicID} identically up to ${goal.index}`, timeoutMs: 60_000, intervalMs: 250 },
      ).catch(() => log.record('convergence', `topic ${goal.topicID}: nodes still differ after 60 s (the checker shows how)`));
    }
    const topics = await Promise.all(
      [RAW_TOPIC, CLIENT_TOPIC].map(async (topicID) => ({ topicID, nodes: await Promise.all(cluster.nodes.map((n) => cluster.readTopic(n, topicID))) })),
    );
    for (const [i, consumer] of consumers.entries()) {
      const last = topics[i]!.nodes[0]!.messages.at(-1)?.index ?? -1n;
      await waitFor(() => consumer.lastIndex >= last, { message: `${consumer.name} to reach ${last}`, timeoutMs: 30_000, intervalMs: 100 }).catch(() =>
        log.record('consumer', `${consumer.name} at ${consumer.lastIndex}, not at ${last} after 30 s${consumer.error ? ` (${(consumer.error as Error).message})` : ''}`),
      );
      await consumer.stop();
    }
    await monitor.stop();

    const result = check({
      topics: topics.map((t, i) => ({
        ...t,
        ledgers: [i === 0 ? raw : client],
        consumers: [{ name: consumers[i]!.name, seen: consumers[i]!.seen }],
      })),
      probes,
    });
    for (const [i, consumer] of consumers.entries()) {
      const last = topics[i]!.nodes[0]!.messages.at(-1)?.index ?? -1n;
      if (consumer.lastIndex < last) result.violations.push({ check: 'consumer-order', message: `${consumer.name} stopped at ${consumer.lastIndex}, the topic goes to ${last}`, indexes: [consumer.lastIndex, last] });
    }
    result.violations.unshift(...harness);

    const acks = [...raw.acked.values(), ...client.acked.values()];
    const recoveriesMs = leaderFaults.flatMap(({ at }) => {
      const first = acks.filter((a) => a.startedAt >= at).reduce((m, a) => Math.min(m, a.endedAt), Infinity);
      return Number.isFinite(first) ? [first - at] : [];
    });
    const elected = [...monitor.terms.values()];
    const failoversMs = leaderFaults.flatMap(({ at, url }) => {
      const next = elected.filter((e) => e.at >= at && e.url !== url).reduce((m, e) => Math.min(m, e.at), Infinity);
      // A new leader seen only after a later fault is not this fault's failover.
      return Number.isFinite(next) && !leaderFaults.some((f) => f.at > at && f.at < next) ? [next - at] : [];
    });
    const times = acks.map((a) => a.endedAt).filter((t) => t >= faultsStart && t <= faultsEnd).sort((a, b) => a - b);
    let longest = 0;
    let previous = faultsStart;
    for (const t of [...times, faultsEnd]) {
      longest = Math.max(longest, t - previous);
      previous = t;
    }
    log.record('done', `${result.violations.length} violations, ${result.acked} acked, ${result.lost} lost, ${result.duplicated} duplicated`);
    return { seed: options.seed, schedule, log, faults, leaderKills, partitions, result, leaderChanges: Math.max(0, monitor.terms.size - 1), failoversMs, recoveriesMs, longestUnavailableMs: longest, durationMs: Date.now() - started };
  } finally {
    await Promise.allSettled([raw.stop(), client.stop(), ...consumers.map((c) => c.stop()), monitor.stop()]);
    await cluster.close();
  }
}

/** The failure report: the seed (and how to replay it), the first violations with their indexes, and the fault log around the first. */
export function formatFailure(report: RunReport, steps: number): string {
  const { violations } = report.result;
  const first = violations[0];
  const lines = [
    `fault schedule seed ${report.seed} FAILED: ${violations.length} violation(s); replay: npm run soak -- --seed ${report.seed} --steps ${steps} --rounds 1`,
    ...violations.slice(0, 10).map((v) => `  [${v.check}] ${v.message}${v.indexes.length ? ` (indexes ${v.indexes.join(', ')})` : ''}`),
    violations.length > 10 ? `  … and ${violations.length - 10} more` : '',
    `fault log around the first violation:`,
    report.log.around(first?.at === undefined ? undefined : report.log.relative(first.at), 15_000),
  ];
  return lines.filter((l) => l !== '').join('\n');
}
