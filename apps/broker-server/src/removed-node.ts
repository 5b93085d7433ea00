import type { JsonLogger } from './logger.js';
import { NodeDirError } from './node-dir-error.js';

/** What {@link refuseRemovedNode} reads of a raft node (raft-ts's `RaftNode`). */
export interface MembershipView {
  readonly url: string;
  readonly state: string;
  clusterId(): string | undefined;
  urls(): string[];
}

/**
 * Refuses to serve from a data dir whose node its cluster removed (raft's
 * state `removed` right after opening: its log holds the configuration
 * without it, e.g. after `leave`): logs `removed from the cluster` with the
 * node's URL and throws. Does nothing for a member or a node with no cluster yet.
 * @throws NodeDirError `NODE_REMOVED`, whose message says so plainly.
 */
export function refuseRemovedNode(raft: MembershipView, dataDir: string, logger: Pick<JsonLogger, 'error'>): void {
  if (raft.state !== 'removed') return;
  const clusterId = raft.clusterId();
  const members = raft.urls();
  logger.error('removed from the cluster', { url: raft.url, clusterId, members, dataDir });
  throw new NodeDirError(
    'NODE_REMOVED',
    dataDir,
    `${raft.url} was removed from the cluster ${clusterId ?? ''} (or this data dir's node had another address; members now: ${members.join(', ') || 'none known'}); ` +
      `its data dir ${dataDir} cannot serve again. To bring this machine back, start it with a new, empty data dir and --join <a member's URL> --join-token <the cluster's token>.`,
  );
}
