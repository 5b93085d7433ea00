import type { PeerAuth } from 'raft-ts';
import { ConfigError } from './config.js';
import { newJoinToken, type JoinToken } from './join-token.js';
import { joinTokenPath, readJoinTokenFile, writeJoinTokenFile, type StoredJoinToken } from './join-token-file.js';
import type { JsonLogger } from './logger.js';
import { ServerError } from './server-error.js';

/**
 * The cluster secret of one node as startup settles it: the join token kept
 * in its data dir and the one it was given (`--join-token`), and the
 * `PeerAuth` that signs and verifies its peers' RPCs with it. Made by
 * {@link openPeerTokens} before raft opens; then exactly one of
 * {@link PeerTokens.afterBootstrap}, {@link PeerTokens.beforeJoin} or
 * {@link PeerTokens.onResume} runs.
 */
export class PeerTokens {
  readonly #auth: PeerAuth;
  readonly #dataDir: string;
  readonly #given: JoinToken | undefined;
  #stored: JoinToken | undefined;
  readonly #logger: JsonLogger;

  /** Use {@link openPeerTokens}. */
  constructor(auth: PeerAuth, dataDir: string, given: JoinToken | undefined, stored: JoinToken | undefined, logger: JsonLogger) {
    this.#auth = auth;
    this.#dataDir = dataDir;
    this.#given = given;
    this.#stored = stored;
    this.#logger = logger;
  }

  /** The token in force once startup settled it (`undefined` before). */
  get token(): JoinToken | undefined {
    return this.#stored;
  }

  /** A new cluster: makes its secret and token, keeps it (durably) and logs where (never the token). */
  async afterBootstrap(clusterId: string): Promise<JoinToken> {
    if (this.#given !== undefined) this.#logger.warn('--join-token ignored: a new cluster makes its own join token', {});
    const token = newJoinToken(clusterId);
    await this.#keep(token);
    this.#logger.info('join token written; other nodes join with it (--print-join-token prints it)', { path: joinTokenPath(this.#dataDir) });
    return token;
  }

  /**
   * Joining a cluster: the given token (kept first, so a restart during the
   * join still has it), or the one kept by an earlier attempt.
   * @throws ConfigError `--join-token` when there is none.
   */
  async beforeJoin(): Promise<JoinToken> {
    const token = this.#given ?? this.#stored;
    if (token === undefined) {
      throw new ConfigError('--join-token', 'joining a cluster needs its join token (print it on a member with `broker-server --print-join-token --data-dir <its data dir>`)');
    }
    if (this.#stored?.text !== token.text) await this.#keep(token);
    else this.#auth.setSecret(token.secret);
    return token;
  }

  /**
   * A node that already belongs to cluster `clusterId`: the kept token. A
   * given one must be the same (or, with none kept, of this cluster: it is
   * kept then). A node alone in its cluster that keeps none (made before
   * join tokens existed, or stopped between bootstrap and writing it) makes one.
   * @throws ConfigError `--join-token` when the given token differs, or when a
   *   node with peers keeps none and was given none; ServerError
   *   `JOIN_TOKEN_CORRUPT` when the kept token is of another cluster.
   */
  async onResume(clusterId: string, alone: boolean): Promise<JoinToken> {
    const stored = this.#stored;
    const given = this.#given;
    const path = joinTokenPath(this.#dataDir);
    if (stored !== undefined) {
      if (stored.clusterId !== clusterId) throw new ServerError('JOIN_TOKEN_CORRUPT', `${path} holds the token of another cluster than this node's`);
      if (given !== undefined && given.text !== stored.text) {
        throw new ConfigError('--join-token', `differs from the join token this node keeps in ${path} (leave it out: a restart needs none)`);
      }
      this.#auth.setSecret(stored.secret);
      return stored;
    }
    if (given !== undefined) {
      if (given.clusterId !== clusterId) throw new ConfigError('--join-token', 'is the token of another cluster than the one this node belongs to');
      await this.#keep(given);
      return given;
    }
    if (alone) return this.afterBootstrap(clusterId);
    throw new ConfigError('--join-token', `this node belongs to a cluster but keeps no join token (${path}): start it once with the cluster's --join-token`);
  }

  async #keep(token: JoinToken): Promise<void> {
    await writeJoinTokenFile(this.#dataDir, token);
    this.#stored = token;
    this.#auth.setSecret(token.secret);
  }
}

/**
 * Reads the join token kept in `dataDir` (warning when others may read the
 * file) and gives `auth` the secret known so far (the kept one, else the
 * given one), so that a resuming node authenticates from its first RPC.
 * @throws ServerError `JOIN_TOKEN_CORRUPT` or `JOIN_TOKEN_UNREADABLE`.
 */
export async function openPeerTokens(auth: PeerAuth, dataDir: string, given: JoinToken | undefined, logger: JsonLogger): Promise<PeerTokens> {
  const stored: StoredJoinToken | undefined = await readJoinTokenFile(dataDir);
  if (stored?.readableByOthers) logger.warn('the join token file may be read by other users: chmod 600 it', { path: joinTokenPath(dataDir) });
  const known = stored?.token ?? given;
  if (known !== undefined) auth.setSecret(known.secret);
  return new PeerTokens(auth, dataDir, given, stored?.token, logger);
}
