// Cluster members in one process, each behind its own node:http server on
// 127.0.0.1 (raft handler mounted under /raft), talking through an
// HttpTransport per member, with real timers and real fsyncs in temp dirs.
import { createServer } from 'node:http';
import { listen, makeTempDir, waitFor } from '@msg/test-utils';
import { RaftError } from '../src/errors.js';
import { HttpTransport, PeerAuth, createRaftHandler } from '../src/http/index.js';
import { RaftNode, type RaftNodeOptions } from '../src/raft-node.js';
import type { RpcHandler } from '../src/transport.js';
import { MemStateMachine } from './harness.js';

/** The secret every member of these clusters signs its RPCs with. */
const CLUSTER_SECRET = Buffer.alloc(32, 5);

const encoder = new TextEncoder();

/** One cluster member: a server that outlives the node behind it, so the node can be closed and reopened at the same URL. */
export interface Member<SM extends MemStateMachine = MemStateMachine> {
  url: string;
  dir: string;
  node: RaftNode | undefined;
  sm: SM;
  /** Log messages of the current incarnation. */
  messages: string[];
  /** How every incarnation of the member's node reaches its peers. */
  transport: HttpTransport;
  /** The state machine of each new incarnation (it may load what the last one made durable in `dir`). */
  newStateMachine: (dir: string) => Promise<SM>;
  close(): Promise<void>;
}

/** Starts a member's server (no node yet: see {@link openNode}); each incarnation gets a fresh in-memory state machine unless `newStateMachine` says otherwise. */
export async function startMember(): Promise<Member>;
export async function startMember<SM extends MemStateMachine>(newStateMachine: (dir: string) => Promise<SM>): Promise<Member<SM>>;
export async function startMember(newStateMachine: (dir: string) => Promise<MemStateMachine> = async () => new MemStateMachine()): Promise<Member> {
  const ref: { member?: Member } = {};
  const closedNode = (): never => {
    throw new RaftError('CLOSED', 'node is down');
  };
  // While the node is down its URL answers 503 CLOSED, as a mounted but closed node does.
  const rpc: RpcHandler = {
    handleRequestVote: (r) => (ref.member?.node ? ref.member.node.handleRequestVote(r) : closedNode()),
    handleAppendEntries: (r) => (ref.member?.node ? ref.member.node.handleAppendEntries(r) : closedNode()),
    handleInstallSnapshot: (r) => (ref.member?.node ? ref.member.node.handleInstallSnapshot(r) : closedNode()),
    handleTimeoutNow: (r) => (ref.member?.node ? ref.member.node.handleTimeoutNow(r) : closedNode()),
    handleJoin: (r) => (ref.member?.node ? ref.member.node.handleJoin(r) : closedNode()),
    handleLeave: (r) => (ref.member?.node ? ref.member.node.handleLeave(r) : closedNode()),
  };
  const auth = new PeerAuth({ secret: CLUSTER_SECRET });
  const server = createServer(createRaftHandler(rpc, { auth }));
  const { url, close } = await listen(server);
  const transport = new HttpTransport({ auth });
  const stop = async (): Promise<void> => {
    await close();
    await transport.close();
  };
  const dir = await makeTempDir('raft-cluster-');
  const member: Member = { url, dir, node: undefined, sm: new MemStateMachine(), messages: [], transport, newStateMachine, close: stop };
  ref.member = member;
  return member;
}

/** Opens a new incarnation of the member's node (a new state machine, the same directory). */
export async function openNode<SM extends MemStateMachine>(m: Member<SM>, overrides: Partial<RaftNodeOptions> = {}): Promise<RaftNode> {
  m.sm = await m.newStateMachine(m.dir);
  m.messages = [];
  const note = (message: string): void => {
    m.messages.push(message);
  };
  const node = new RaftNode({
    dir: `${m.dir}/raft`,
    url: m.url,
    stateMachine: m.sm,
    transport: m.transport,
    electionTimeoutMs: 300,
    heartbeatIntervalMs: 30,
    snapshotThreshold: 40,
    trailingEntries: 5,
    logger: { debug: () => undefined, info: note, warn: note, error: note },
    ...overrides,
  });
  await node.open();
  m.node = node;
  return node;
}

/** Closes the member's node (its server stays up and answers 503 CLOSED). */
export async function closeNode(m: Member<MemStateMachine>): Promise<void> {
  const node = m.node!;
  await node.close();
  m.node = undefined;
}

/** Waits for a member that leads. */
export function leaderOf<SM extends MemStateMachine>(members: Member<SM>[]): Promise<Member<SM>> {
  return waitFor(() => members.find((m) => m.node?.isLeader() === true), { timeoutMs: 10_000, message: 'a leader' });
}

/** Applies every text on the leader at once; resolves with the highest index. */
export async function applyAll(leader: Member<MemStateMachine>, texts: string[]): Promise<number> {
  const indexes = await Promise.all(texts.map((t) => leader.node!.apply(encoder.encode(t))));
  return Math.max(...indexes);
}

/**
 * Forms a cluster of `members`: the first initializes it, then each next one joins through the member
 * before it (`via: 'previous'`: a follower forwards the join to the leader) or through the first; resolves
 * once every member knows all of them as voters.
 */
export async function formCluster<SM extends MemStateMachine>(members: Member<SM>[], via: 'first' | 'previous' = 'first'): Promise<void> {
  const [first, ...rest] = members;
  await openNode(first!);
  await first!.node!.initialize();
  await leaderOf([first!]);
  for (const [i, m] of rest.entries()) {
    await openNode(m);
    await m.node!.join(via === 'first' ? first!.url : members[i]!.url);
  }
  // The last joiner knows it is a voter once its promotion reached it; the others learn of it at their next AppendEntries.
  await waitFor(() => members.every((m) => m.node!.config().voters.length === members.length), { timeoutMs: 10_000, message: 'every member a voter' });
}
