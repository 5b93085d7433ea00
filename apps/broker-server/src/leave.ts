import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { HttpTransport, isRaftError, PeerAuth, type LeaveResponse, type TransportTls } from 'raft-ts';
import { ConfigError } from './config.js';
import { ExitCodes, type ExitCode } from './exit-codes.js';
import { parseJoinToken, type JoinToken } from './join-token.js';

/** What `broker-server leave` takes. */
export interface LeaveOptions {
  /** URL of the node to remove (as it was advertised). */
  member: string;
  /** URL of any member of the cluster; the request is forwarded to the leader. */
  cluster: string;
  /** The cluster's join token: Leave is a peer RPC, signed with the secret it carries. */
  token: JoinToken;
  /** Cluster id; default: the token's. */
  clusterId?: string;
  /** Most milliseconds to keep retrying (no leader, a change in progress, unreachable). Default 30000. */
  timeoutMs?: number;
  /**
   * For an `https:` peer listener: files of the CA that signs the peers' certificates (`--ca`), and of a
   * certificate and key to show a listener that asks for one (`--cert`, `--key`: mutual TLS, `--peer-tls-ca`).
   */
  tlsFiles?: { ca?: string; cert?: string; key?: string };
}

/** The usage text of `broker-server leave`. */
export function leaveUsage(): string {
  return [
    'Usage: broker-server leave --member <url> --cluster <url> --join-token <token> [--cluster-id <id>] [--timeout-ms <ms>]',
    '                           [--ca <file>] [--cert <file> --key <file>]',
    '',
    'Removes the node <member> from the cluster that <cluster> (any member) belongs to.',
    'Both are raft (peer) URLs, as the members advertise them (with --peer-listen, its https:// URL):',
    '--ca verifies that listener, --cert and --key answer one that asks for a client certificate (--peer-tls-ca).',
    'The join token (or env MSG_JOIN_TOKEN) is the cluster\'s: `broker-server --print-join-token`',
    'on a member prints it. Prints the new configuration as JSON on stdout.',
    'Exit codes: 0 removed, 64 usage error, 65 refused (unknown member, last voter,',
    'other cluster), 66 a --ca/--cert/--key file cannot be read, 69 cluster unreachable',
    'or no answer in time, 70 internal error, 77 the cluster refused the join token.',
  ].join('\n');
}

/**
 * Parses the arguments after `leave` (the join token from `--join-token`, else
 * `env.MSG_JOIN_TOKEN`); throws `ConfigError` (`INVALID_CONFIG`) naming the bad flag.
 */
export function parseLeaveArgs(argv: readonly string[], env: NodeJS.ProcessEnv = {}): LeaveOptions | 'help' {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args: [...argv],
      options: {
        member: { type: 'string' },
        cluster: { type: 'string' },
        'cluster-id': { type: 'string' },
        'join-token': { type: 'string' },
        'timeout-ms': { type: 'string' },
        ca: { type: 'string' },
        cert: { type: 'string' },
        key: { type: 'string' },
        help: { type: 'boolean' },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (error) {
    throw new ConfigError('arguments', (error as Error).message);
  }
  if (values.help === true) return 'help';
  const url = (flag: string): string => {
    const value = values[flag];
    if (typeof value !== 'string') throw new ConfigError(`--${flag}`, 'required');
    if (!URL.canParse(value) || !/^https?:$/.test(new URL(value).protocol)) throw new ConfigError(`--${flag}`, 'expected an http:// URL');
    return new URL(value).origin;
  };
  const member = url('member');
  const cluster = url('cluster');
  const timeout = values['timeout-ms'];
  const ms = typeof timeout === 'string' ? Number(timeout) : undefined;
  if (ms !== undefined && (!Number.isSafeInteger(ms) || ms < 1)) throw new ConfigError('--timeout-ms', 'expected a positive integer');
  const flag = values['join-token'];
  const setting = typeof flag === 'string' ? '--join-token' : 'MSG_JOIN_TOKEN';
  const text = typeof flag === 'string' ? flag : env.MSG_JOIN_TOKEN;
  if (text === undefined || text === '') throw new ConfigError('--join-token', 'required (the cluster\'s join token; or env MSG_JOIN_TOKEN)');
  const token = parseJoinToken(text);
  if (typeof token === 'string') throw new ConfigError(setting, token);
  const options: LeaveOptions = { member, cluster, token };
  const clusterId = values['cluster-id'];
  if (typeof clusterId === 'string') options.clusterId = clusterId;
  if (ms !== undefined) options.timeoutMs = ms;
  const [ca, cert, key] = (['ca', 'cert', 'key'] as const).map((name) => values[name]);
  if ((typeof cert === 'string') !== (typeof key === 'string')) throw new ConfigError(typeof cert === 'string' ? '--key' : '--cert', 'required with --cert and --key together');
  if (typeof ca === 'string' || typeof cert === 'string') {
    options.tlsFiles = {
      ...(typeof ca === 'string' ? { ca } : {}),
      ...(typeof cert === 'string' && typeof key === 'string' ? { cert, key } : {}),
    };
  }
  return options;
}

/** An unreadable `--ca`, `--cert` or `--key` file (exit 66). */
export class LeaveFileError extends Error {
  override readonly name = 'LeaveFileError';
}

/** Reads the TLS files `leave` was given, naming the flag and file of one that cannot be read. */
async function transportTls(files: NonNullable<LeaveOptions['tlsFiles']>): Promise<TransportTls> {
  const read = async (flag: string, path: string | undefined): Promise<Buffer | undefined> => {
    if (path === undefined) return undefined;
    try {
      return await readFile(path);
    } catch (error) {
      throw new LeaveFileError(`cannot read --${flag} ${path}: ${(error as Error).message}`, { cause: error });
    }
  };
  const [ca, cert, key] = [await read('ca', files.ca), await read('cert', files.cert), await read('key', files.key)];
  return { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) };
}

/**
 * Removes `options.member` from the cluster: sends raft-ts's Leave RPC,
 * signed with the token's secret and naming the token's cluster (unless
 * `clusterId` is given), to `options.cluster`, which forwards it to the leader. Retries retriable
 * errors (`NO_LEADER`, `CONFIG_CHANGE_IN_PROGRESS`, `UNREACHABLE`, and
 * `NOT_LEADER` at the named leader) until `timeoutMs`. Resolves with the
 * configuration after the removal; rejects with the raft-ts `RaftError`
 * otherwise (`UNKNOWN_MEMBER`, `BAD_REQUEST` for the last voter,
 * `CLUSTER_MISMATCH`, `UNAUTHENTICATED` for a token of another cluster, ...).
 * A given `transport` must sign with the same secret.
 */
export async function leaveCluster(
  options: LeaveOptions,
  transport = new HttpTransport({ auth: new PeerAuth({ secret: options.token.secret }) }),
): Promise<LeaveResponse> {
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  const clusterId = options.clusterId ?? options.token.clusterId;
  let target = options.cluster;
  for (let attempt = 0; ; attempt++) {
    try {
      return await transport.leave(target, { url: options.member, clusterId });
    } catch (error) {
      if (!isRaftError(error) || !error.retriable || Date.now() >= deadline || attempt >= 1000) throw error;
      if (error.code === 'NOT_LEADER' && error.leaderURL !== undefined && error.leaderURL !== target) {
        target = error.leaderURL;
        continue;
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}

/** The exit code of a failed `leave`. */
export function leaveExitCode(error: unknown): ExitCode {
  if (error instanceof ConfigError) return ExitCodes.USAGE;
  if (error instanceof LeaveFileError) return ExitCodes.NO_INPUT;
  if (isRaftError(error)) {
    if (error.code === 'UNAUTHENTICATED') return ExitCodes.NOPERM;
    if (error.code === 'UNKNOWN_MEMBER' || error.code === 'BAD_REQUEST' || error.code === 'CLUSTER_MISMATCH') return ExitCodes.REFUSED;
    if (error.retriable) return ExitCodes.UNAVAILABLE;
    return ExitCodes.INTERNAL;
  }
  if (error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError' || error.message === 'fetch failed')) {
    return ExitCodes.UNAVAILABLE;
  }
  return ExitCodes.INTERNAL;
}

/**
 * Runs `broker-server leave ...`: prints the new configuration (JSON) on
 * `out` or the error on `err`, and returns the exit code.
 */
export async function runLeave(
  argv: readonly string[],
  out: (text: string) => void,
  err: (text: string) => void,
  env: NodeJS.ProcessEnv = process.env,
): Promise<ExitCode> {
  try {
    const options = parseLeaveArgs(argv, env);
    if (options === 'help') {
      out(`${leaveUsage()}\n`);
      return ExitCodes.OK;
    }
    const tls = options.tlsFiles === undefined ? undefined : await transportTls(options.tlsFiles);
    const transport = new HttpTransport({ auth: new PeerAuth({ secret: options.token.secret }), ...(tls === undefined ? {} : { tls }) });
    try {
      const result = await leaveCluster(options, transport);
      out(`${JSON.stringify({ removed: options.member, config: result.config })}\n`);
      return ExitCodes.OK;
    } finally {
      await transport.close();
    }
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    err(`broker-server leave: ${(error as Error).message}${typeof code === 'string' ? ` (${code})` : ''}\n`);
    return leaveExitCode(error);
  }
}
