import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { NodeDirError } from './node-dir-error.js';
import { writeFileDurably } from './write-file-durably.js';

/** The file of a node's data dir that records who the node is. */
export const NODE_IDENTITY_FILE = 'node.json';

/** Who a data dir's node is: what raft knows it by. */
export interface NodeIdentity {
  /** The node's advertised URL: raft-ts's id of the node in its cluster. */
  readonly url: string;
  /** The cluster it belongs to. */
  readonly clusterId: string;
}

const identityFile = z
  .object({
    version: z.literal(1),
    url: z.string().min(1),
    clusterId: z.string().min(1),
  })
  .strict();

/** The path of the identity file in `dataDir`. */
export function nodeIdentityPath(dataDir: string): string {
  return join(dataDir, NODE_IDENTITY_FILE);
}

/**
 * Reads `<dataDir>/node.json`: `undefined` when there is none (a new node, or
 * a data dir from before identities were recorded).
 * @throws NodeDirError `NODE_IDENTITY_CORRUPT` (naming the file and the field)
 *   when it is not a valid identity, `NODE_IDENTITY_UNREADABLE` when it cannot be read.
 */
export async function readNodeIdentity(dataDir: string): Promise<NodeIdentity | undefined> {
  const path = nodeIdentityPath(dataDir);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new NodeDirError('NODE_IDENTITY_UNREADABLE', dataDir, `cannot read ${path}: ${(error as Error).message}`, { cause: error });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new NodeDirError('NODE_IDENTITY_CORRUPT', dataDir, `${path} is damaged: not JSON (${(error as Error).message})`, { cause: error });
  }
  const parsed = identityFile.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue === undefined || issue.path.length === 0 ? '' : ` at ${issue.path.join('.')}`;
    throw new NodeDirError('NODE_IDENTITY_CORRUPT', dataDir, `${path} is damaged${field}: ${issue?.message ?? 'invalid'}`);
  }
  return { url: parsed.data.url, clusterId: parsed.data.clusterId };
}

/**
 * Refuses a start that would give the node of `dataDir` another URL than the
 * one it recorded: raft knows a node by its URL, so under a new one it is a
 * stranger to its cluster (and would find itself removed). Returns the
 * recorded identity (`undefined` when none is recorded yet). Reads only.
 * @throws NodeDirError `NODE_IDENTITY_CHANGED`, whose message explains the
 *   ways out; and what {@link readNodeIdentity} throws.
 */
export async function checkNodeIdentity(dataDir: string, url: string): Promise<NodeIdentity | undefined> {
  const recorded = await readNodeIdentity(dataDir);
  if (recorded === undefined || recorded.url === url) return recorded;
  throw new NodeDirError(
    'NODE_IDENTITY_CHANGED',
    dataDir,
    `data dir ${dataDir} belongs to node ${recorded.url} of cluster ${recorded.clusterId} (${nodeIdentityPath(dataDir)}), ` +
      `but this start would make it ${url} (from --listen / --advertise-url). Raft knows a node by its URL: under another it is not a member. Either:\n` +
      `  - start it as ${recorded.url} again (that --listen, or --advertise-url ${recorded.url}); or\n` +
      `  - move the node: start a node at ${url} with a new, empty data dir and --join <a member's URL> --join-token <the cluster's token> ` +
      `(it copies the data from the cluster), then remove the old identity with \`broker-server leave --member ${recorded.url} --cluster <a member's URL>\` ` +
      `and delete ${dataDir}; or\n` +
      `  - start a new node (a new cluster, or --join one) with a new, empty data dir.`,
  );
}

/**
 * Records `identity` in `<dataDir>/node.json` atomically and durably (a
 * temporary file written and fsynced, renamed into place, the folder fsynced)
 * unless it is recorded already. A recorded identity of another cluster than
 * the raft log's means a mixed-up data dir.
 * @throws NodeDirError `NODE_IDENTITY_CORRUPT` when `recorded` names another
 *   cluster, `NODE_IDENTITY_WRITE_FAILED` with the errno as `cause`.
 */
export async function keepNodeIdentity(dataDir: string, recorded: NodeIdentity | undefined, identity: NodeIdentity): Promise<void> {
  const path = nodeIdentityPath(dataDir);
  if (recorded !== undefined && recorded.clusterId !== identity.clusterId) {
    throw new NodeDirError(
      'NODE_IDENTITY_CORRUPT',
      dataDir,
      `${path} records cluster ${recorded.clusterId} but the raft log in ${join(dataDir, 'raft')} belongs to cluster ${identity.clusterId}: the data dir is mixed up`,
    );
  }
  if (recorded?.url === identity.url) return;
  try {
    await writeFileDurably(path, `${JSON.stringify({ version: 1, url: identity.url, clusterId: identity.clusterId })}\n`, 0o644);
  } catch (error) {
    throw new NodeDirError('NODE_IDENTITY_WRITE_FAILED', dataDir, `cannot write ${path}: ${(error as Error).message}`, { cause: error });
  }
}
