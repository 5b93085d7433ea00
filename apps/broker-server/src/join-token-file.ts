import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseJoinToken, type JoinToken } from './join-token.js';
import { ServerError } from './server-error.js';
import { writeFileDurably } from './write-file-durably.js';

/** The file of a node's data dir that keeps its cluster's join token (and so its secret). */
export const JOIN_TOKEN_FILE = 'join-token';

/** The path of the join token file in `dataDir`. */
export function joinTokenPath(dataDir: string): string {
  return join(dataDir, JOIN_TOKEN_FILE);
}

/** What {@link readJoinTokenFile} found. */
export interface StoredJoinToken {
  readonly token: JoinToken;
  /** True when group or others may read the file (it should be 0600). */
  readonly readableByOthers: boolean;
}

/**
 * Reads `<dataDir>/join-token`: `undefined` when there is none.
 * @throws ServerError `JOIN_TOKEN_CORRUPT` (naming the file) when it does not
 *   hold a valid token, `JOIN_TOKEN_UNREADABLE` (with the errno as `cause`) when
 *   it cannot be read.
 */
export async function readJoinTokenFile(dataDir: string): Promise<StoredJoinToken | undefined> {
  const path = joinTokenPath(dataDir);
  let text: string;
  let mode: number;
  try {
    text = await readFile(path, 'utf8');
    mode = (await stat(path)).mode;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ServerError('JOIN_TOKEN_UNREADABLE', `cannot read ${path}: ${(error as Error).message}`, { cause: error });
  }
  const token = parseJoinToken(text);
  if (typeof token === 'string') throw new ServerError('JOIN_TOKEN_CORRUPT', `${path} at offset 0: ${token}`);
  return { token, readableByOthers: (mode & 0o077) !== 0 };
}

/**
 * Writes `token` to `<dataDir>/join-token` atomically and durably: a
 * temporary file (mode 0600) written and fsynced, renamed over the old one,
 * and the folder fsynced. Any failure throws (the caller must not go on as if
 * the token were kept).
 * @throws ServerError `JOIN_TOKEN_WRITE_FAILED` with the errno as `cause`.
 */
export async function writeJoinTokenFile(dataDir: string, token: JoinToken): Promise<void> {
  const path = joinTokenPath(dataDir);
  try {
    await writeFileDurably(path, `${token.text}\n`, 0o600, true);
  } catch (error) {
    throw new ServerError('JOIN_TOKEN_WRITE_FAILED', `cannot write ${path}: ${(error as Error).message}`, { cause: error });
  }
}
