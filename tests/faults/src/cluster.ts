import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MessageDecoder } from '@msg/wire';
import { request } from '../../integration/src/http-request.js';
import { BrokerNode } from './broker-node.js';
import type { NodeTopic } from './checker.js';
import { Network, type NetworkOptions } from './network.js';
import { sleep, waitFor } from '@msg/test-utils/wait-for';

/** The fields of a broker's `GET /status` the harness reads. */
export interface NodeStatus {
  isLeader: boolean;
  leaderURL: string | null;
  term: number;
  commitIndex: number;
  appliedIndex: number;
  members: string[];
}

/** Options of {@link FaultCluster.start}. */
export interface ClusterOptions extends NetworkOptions {
  /** `--election-timeout-ms`; default: the broker's default (1000). */
  electionTimeoutMs?: number;
  /** `--heartbeat-interval-ms`; default: the broker's default (100). */
  heartbeatIntervalMs?: number;
}

/**
 * A cluster of broker processes, one per namespace of a {@link Network}:
 * node 1 bootstraps, the others join it with its join token. Owns the
 * network: {@link close} kills every process by PID and removes it all.
 */
export class FaultCluster {
  readonly network: Network;
  readonly nodes: readonly BrokerNode[];
  /** Raft flags every start of every node gets. */
  readonly args: readonly string[];
  readonly electionTimeoutMs: number;

  private constructor(network: Network, options: ClusterOptions) {
    this.network = network;
    this.nodes = network.nodes.map((n) => new BrokerNode(n));
    this.electionTimeoutMs = options.electionTimeoutMs ?? 1000;
    const args: string[] = [];
    if (options.electionTimeoutMs !== undefined) args.push('--election-timeout-ms', String(options.electionTimeoutMs));
    if (options.heartbeatIntervalMs !== undefined) args.push('--heartbeat-interval-ms', String(options.heartbeatIntervalMs));
    this.args = args;
  }

  /** Builds the network, starts every node, and resolves once all are voters under one agreed leader. */
  static async start(options: ClusterOptions): Promise<FaultCluster> {
    const network = await Network.create(options);
    const cluster = new FaultCluster(network, options);
    try {
      const [first, ...rest] = cluster.nodes;
      await first!.start({ args: cluster.args });
      await cluster.waitForLeader(30_000);
      const joinToken = (await readFile(join(first!.net.dataDir, 'join-token'), 'utf8')).trim();
      for (const node of rest) {
        await node.start({ join: first!.url, joinToken, args: cluster.args });
        const want = cluster.nodes.slice(0, node.id).map((n) => n.url);
        await waitFor(
          async () => {
            const status = await cluster.status(first!, 3000);
            return status !== undefined && want.every((url) => status.members.includes(url));
          },
          { message: `node ${node.id} to be a member`, timeoutMs: 60_000, intervalMs: 100 },
        );
      }
      await cluster.waitForLeader(30_000);
      return cluster;
    } catch (error) {
      await cluster.close();
      throw error;
    }
  }

  /** Every node's URL. */
  get urls(): string[] {
    return this.nodes.map((n) => n.url);
  }

  /** The node with id `id` (1-based). */
  node(id: number): BrokerNode {
    const node = this.nodes[id - 1];
    if (!node) throw new RangeError(`no node ${id}`);
    return node;
  }

  /** `GET /status` of `node`, or `undefined` when it does not answer 200 within `timeoutMs` (default 2000). */
  async status(node: BrokerNode, timeoutMs = 2000): Promise<NodeStatus | undefined> {
    if (!node.alive || node.paused) return undefined;
    try {
      const answer = await request(`${node.url}/status`, { timeoutMs });
      return answer.status === 200 ? (JSON.parse(answer.body.toString()) as NodeStatus) : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * The leader as the nodes see it now: the node that says it leads in the
   * highest term any node reports, when every other answering node not cut
   * off from it names it; `undefined` otherwise.
   */
  async leader(): Promise<{ node: BrokerNode; status: NodeStatus } | undefined> {
    const states = await Promise.all(this.nodes.map((n) => this.status(n)));
    let best: { node: BrokerNode; status: NodeStatus } | undefined;
    states.forEach((status, i) => {
      if (status?.isLeader && (!best || status.term > best.status.term)) best = { node: this.nodes[i]!, status };
    });
    if (!best) return undefined;
    const leader = best;
    const cut = new Set(this.network.cuts.flatMap((c) => (c.from === leader.node.id ? [c.to] : c.to === leader.node.id ? [c.from] : [])));
    const agreed = states.every((s, i) => s === undefined || cut.has(i + 1) || s.leaderURL === leader.node.url);
    return agreed ? leader : undefined;
  }

  /** Waits (bounded) for {@link leader}. */
  async waitForLeader(timeoutMs = 30_000): Promise<{ node: BrokerNode; status: NodeStatus }> {
    return waitFor(() => this.leader(), { message: 'an agreed leader', timeoutMs, intervalMs: 100 });
  }

  /** Starts `node` again on its data dir (same address, so the same identity); retried up to 3 times, 1 s apart. */
  async restart(node: BrokerNode): Promise<void> {
    let lastError: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await node.start({ args: this.args });
        return;
      } catch (error) {
        lastError = error;
        await sleep(1000);
      }
    }
    throw lastError;
  }

  /** The topic as `node` serves it (non-streaming GET from index 0). */
  async readTopic(node: BrokerNode, topicID: bigint): Promise<NodeTopic> {
    const answer = await request(`${node.url}/messaging/messages?topicID=${topicID}&index=0`, { timeoutMs: 30_000 });
    if (answer.status !== 200) throw new Error(`GET topic ${topicID} from ${node.url}: ${answer.status} ${answer.body.toString()}`);
    const decoder = new MessageDecoder({ maxDataLength: 1 << 20 });
    const messages = decoder.push(answer.body);
    decoder.end();
    return { node: node.url, bytes: answer.body, messages };
  }

  /** Kills every process by PID and removes the network. */
  async close(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.kill()));
    await this.network.close();
  }
}
