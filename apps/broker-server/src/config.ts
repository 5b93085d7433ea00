import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { parseJoinToken, type JoinToken } from './join-token.js';
import { exposureProblem } from './safe-defaults.js';

/** Every setting of a broker node, after defaults, config file, environment and flags are merged. */
export interface ServerConfig {
  /** Folder holding the node's raft log and topics. */
  dataDir: string;
  /** Address the HTTP server binds. */
  listen: { host: string; port: number };
  /**
   * The URL other nodes and clients use to reach this node (its identity in
   * the cluster). `undefined` only when listening on port 0 without one: it
   * is then `http://<host>:<bound port>`, known once the server listens.
   */
  advertiseURL: string | undefined;
  /** URLs of running cluster members to join on first start. Empty: bootstrap a new cluster (or resume). */
  join: string[];
  /** `always`: fsync before acknowledging (default). `never`: unsafe, for benchmarks and tests. */
  sync: 'always' | 'never';
  /** Largest request body in bytes; `/raft` requests may be 2 MiB larger (an AppendEntries carries a batch besides its largest entry). */
  maxBodyBytes: number;
  /** Most connections open at once (0: none). `undefined`: 10000, lowered to fit the process's fd limit. */
  maxConnections?: number | undefined;
  /** Most connections open at once from one remote address (0: none). Default 0. */
  maxConnectionsPerClient?: number;
  /** Most stream GETs served at once (0: none). `undefined`: 5000, lowered to fit the process's fd limit. */
  maxStreams?: number | undefined;
  /** Most stream GETs served at once to one client (its remote address until tokens exist; 0: none). Default 1000. */
  maxStreamsPerClient?: number;
  /** Milliseconds a stream may go without draining while there is data to send, before it is ended (0: never). Default 60000. */
  streamStallMs?: number;
  /** Milliseconds a client has to send a request's headers (0: none). Default 10000. */
  headersTimeoutMs?: number;
  /** Milliseconds a client has to send a whole request, body included (0: none); a stream's answer is not bounded by it. Default 60000. */
  requestTimeoutMs?: number;
  /** Segment roll size in bytes. */
  segmentBytes: number;
  /** Per-topic retention by size in bytes (0: unlimited). */
  retentionBytes: number;
  /** Per-topic retention by age in milliseconds (0: unlimited). */
  retentionMs: number;
  /** Raft election timeout base in milliseconds (randomized in [t, 2t)). */
  electionTimeoutMs: number;
  /** Raft heartbeat interval in milliseconds. */
  heartbeatIntervalMs: number;
  /** Entries applied since the last snapshot that trigger a new one. */
  snapshotThreshold: number;
  /** `/ready`: most entries the applied index may be behind the leader's commit index (as last learned). Default 1000. */
  readyMaxLagEntries?: number;
  /** `/ready`: most seconds the applied index may have been behind the leader's commit index. Default 5. */
  readyMaxLagSeconds?: number;
  /** `/ready`: most election timeouts without leader contact (a follower) or majority contact (the leader). Default 3. */
  readyMaxLeaderSilence?: number;
  /** Minimum level of log lines written to stderr. */
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  /**
   * The cluster's join token (`--join-token`): needed to join (it carries
   * the cluster secret that peers sign their RPCs with); the node keeps it in
   * `<dataDir>/join-token`, so a restart needs it no more.
   */
  joinToken?: JoinToken | undefined;
  /** Where peer traffic (`/raft/*`) is served instead of `listen` (`--peer-listen`); the client listener then answers `/raft/*` 404. */
  peerListen?: { host: string; port: number } | undefined;
  /** The URL peers reach the peer listener at. Default `http://<peerListen>` (`undefined` with port 0: known once bound). */
  peerAdvertiseURL?: string | undefined;
  /** The client listener's certificate, key and (mutual TLS) client CA files (`--tls-cert`, `--tls-key`, `--tls-ca`); `undefined`: plain HTTP. */
  tls?: TlsFiles | undefined;
  /**
   * What secures raft traffic: on the peer listener the `--peer-tls-*` files
   * (which need `--peer-listen`), else the client listener's; the transport
   * presents this certificate to peers and verifies theirs against its CA.
   */
  peerTls?: TlsFiles | undefined;
  /** `--insecure`: serve a non-loopback address without TLS or client authentication. Default false. */
  insecure?: boolean;
  /**
   * The auth file (`--auth-file`, absolute): the client identities (bearer
   * token hashes, certificate subjects) and their permissions; reloaded on
   * SIGHUP. `undefined`: the client API is open.
   */
  authFile?: string | undefined;
}

/** PEM files of one listener (absolute paths). With `ca`, clients must present a certificate signed by it (mutual TLS). */
export interface TlsFiles {
  cert: string;
  key: string;
  ca: string | undefined;
}

/** A setting that failed validation; `setting` names it as the user wrote it (flag, variable or file key). */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code = 'INVALID_CONFIG';
  /** The setting as the user wrote it: `--listen`, `MSG_LISTEN`, `<file>: listen` or `arguments`. */
  readonly setting: string;
  constructor(setting: string, message: string) {
    super(`${setting}: ${message}`);
    this.setting = setting;
  }
}

const HOST_PORT = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:/[\]]+)):(\d{1,5})$/;

function hostPort(text: string, ctx: z.RefinementCtx): { host: string; port: number } {
  const match = HOST_PORT.exec(text);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) {
    ctx.addIssue({ code: 'custom', message: `expected host:port (for example 127.0.0.1:8086), got ${JSON.stringify(text)}` });
    return z.NEVER;
  }
  return { host: match[1] ?? match[2] ?? '', port };
}

const httpURL = z
  .string()
  .trim()
  .refine((value) => URL.canParse(value) && /^https?:$/.test(new URL(value).protocol), { message: 'expected an http:// or https:// URL' })
  .transform((value) => new URL(value).origin);

const int = (min: number, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max);

/** The schema of every source; flags, variables and file keys are all mapped onto these names. */
const Schema = z
  .object({
    dataDir: z.string().trim().min(1).default('./data'),
    listen: z.string().trim().default('127.0.0.1:8086').transform(hostPort),
    advertiseURL: httpURL.optional(),
    join: z.array(httpURL).default([]),
    sync: z.enum(['always', 'never']).default('always'),
    maxBodyBytes: int(1).default(16 * 1024 * 1024),
    maxConnections: int(0).optional(),
    maxConnectionsPerClient: int(0).default(0),
    maxStreams: int(0).optional(),
    maxStreamsPerClient: int(0).default(1000),
    streamStallMs: int(0).default(60_000),
    headersTimeoutMs: int(0).default(10_000),
    requestTimeoutMs: int(0).default(60_000),
    segmentBytes: int(1024).default(10 * 1024 * 1024),
    retentionBytes: int(0).default(0),
    retentionMs: int(0).default(0),
    electionTimeoutMs: int(10).default(1000),
    heartbeatIntervalMs: int(1).default(100),
    snapshotThreshold: int(1).default(10_000),
    readyMaxLagEntries: int(0).default(1000),
    readyMaxLagSeconds: z.coerce.number().min(0).max(86_400).default(5),
    readyMaxLeaderSilence: z.coerce.number().min(1).max(1000).default(3),
    logLevel: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
    joinToken: z
      .string()
      .transform((text, ctx) => {
        // The message never echoes the value: it is a secret.
        const token = parseJoinToken(text);
        if (typeof token === 'string') {
          ctx.addIssue({ code: 'custom', message: token });
          return z.NEVER;
        }
        return token;
      })
      .optional(),
    peerListen: z.string().trim().transform(hostPort).optional(),
    peerAdvertiseURL: httpURL.optional(),
    tlsCert: z.string().trim().min(1).optional(),
    tlsKey: z.string().trim().min(1).optional(),
    tlsCa: z.string().trim().min(1).optional(),
    peerTlsCert: z.string().trim().min(1).optional(),
    peerTlsKey: z.string().trim().min(1).optional(),
    peerTlsCa: z.string().trim().min(1).optional(),
    insecure: z
      .union([z.boolean(), z.enum(['true', 'false', '1', '0', ''])])
      .transform((v) => v === true || v === 'true' || v === '1')
      .default(false),
    authFile: z.string().trim().min(1).optional(),
  })
  .strict();

type Key = keyof z.input<typeof Schema>;

/** Flags (`--data-dir`), environment variables (`MSG_DATA_DIR`) and config-file keys (`dataDir`) of each setting. */
export const SETTINGS: Record<Key, { flag: string; env: string; help: string; multiple?: boolean; boolean?: boolean }> = {
  dataDir: { flag: 'data-dir', env: 'MSG_DATA_DIR', help: 'data folder (default ./data)' },
  listen: { flag: 'listen', env: 'MSG_LISTEN', help: 'host:port to bind (default 127.0.0.1:8086)' },
  advertiseURL: { flag: 'advertise-url', env: 'MSG_ADVERTISE_URL', help: 'URL peers and clients use (default http://<listen>)' },
  join: { flag: 'join', env: 'MSG_JOIN', help: 'URL of a running member to join; repeatable (env: comma-separated)', multiple: true },
  sync: { flag: 'sync', env: 'MSG_SYNC', help: 'always (fsync before acknowledging, default) or never (unsafe)' },
  maxBodyBytes: { flag: 'max-body-bytes', env: 'MSG_MAX_BODY_BYTES', help: 'largest request body; /raft: 2 MiB more (default 16777216)' },
  maxConnections: { flag: 'max-connections', env: 'MSG_MAX_CONNECTIONS', help: 'most open connections, 0 = none (default 10000, fitted to ulimit -n)' },
  maxConnectionsPerClient: { flag: 'max-connections-per-client', env: 'MSG_MAX_CONNECTIONS_PER_CLIENT', help: 'most open connections per remote address, 0 = none (default 0)' },
  maxStreams: { flag: 'max-streams', env: 'MSG_MAX_STREAMS', help: 'most concurrent stream GETs, 0 = none (default 5000, fitted to ulimit -n)' },
  maxStreamsPerClient: { flag: 'max-streams-per-client', env: 'MSG_MAX_STREAMS_PER_CLIENT', help: 'most concurrent stream GETs per client, 0 = none (default 1000)' },
  streamStallMs: { flag: 'stream-stall-ms', env: 'MSG_STREAM_STALL_MS', help: 'end a stream whose client reads nothing for this long, 0 = never (default 60000)' },
  headersTimeoutMs: { flag: 'headers-timeout-ms', env: 'MSG_HEADERS_TIMEOUT_MS', help: 'time to send request headers, 0 = none (default 10000)' },
  requestTimeoutMs: { flag: 'request-timeout-ms', env: 'MSG_REQUEST_TIMEOUT_MS', help: 'time to send a whole request, 0 = none (default 60000)' },
  segmentBytes: { flag: 'segment-bytes', env: 'MSG_SEGMENT_BYTES', help: 'segment roll size (default 10485760)' },
  retentionBytes: { flag: 'retention-bytes', env: 'MSG_RETENTION_BYTES', help: 'per-topic size limit, 0 = none (default 0)' },
  retentionMs: { flag: 'retention-ms', env: 'MSG_RETENTION_MS', help: 'per-topic age limit in ms, 0 = none (default 0)' },
  electionTimeoutMs: { flag: 'election-timeout-ms', env: 'MSG_ELECTION_TIMEOUT_MS', help: 'raft election timeout (default 1000)' },
  heartbeatIntervalMs: { flag: 'heartbeat-interval-ms', env: 'MSG_HEARTBEAT_INTERVAL_MS', help: 'raft heartbeat interval (default 100)' },
  snapshotThreshold: { flag: 'snapshot-threshold', env: 'MSG_SNAPSHOT_THRESHOLD', help: 'entries between snapshots (default 10000)' },
  readyMaxLagEntries: { flag: 'ready-max-lag-entries', env: 'MSG_READY_MAX_LAG_ENTRIES', help: "/ready: most entries behind the leader's commit index (default 1000)" },
  readyMaxLagSeconds: { flag: 'ready-max-lag-seconds', env: 'MSG_READY_MAX_LAG_SECONDS', help: "/ready: most seconds behind the leader's commit index (default 5)" },
  readyMaxLeaderSilence: { flag: 'ready-max-leader-silence', env: 'MSG_READY_MAX_LEADER_SILENCE', help: '/ready: most election timeouts without leader (or, on the leader, majority) contact (default 3)' },
  logLevel: { flag: 'log-level', env: 'MSG_LOG_LEVEL', help: 'debug, info, warn or error (default info)' },
  joinToken: { flag: 'join-token', env: 'MSG_JOIN_TOKEN', help: 'the join token of the cluster to --join (printed by --print-join-token on a member)' },
  peerListen: { flag: 'peer-listen', env: 'MSG_PEER_LISTEN', help: 'host:port serving /raft/* apart from the client API (default: on --listen)' },
  peerAdvertiseURL: { flag: 'peer-advertise-url', env: 'MSG_PEER_ADVERTISE_URL', help: 'URL peers reach --peer-listen at (default http://<peer-listen>)' },
  tlsCert: { flag: 'tls-cert', env: 'MSG_TLS_CERT', help: 'PEM certificate (chain) file: serve the client API over HTTPS (with --tls-key)' },
  tlsKey: { flag: 'tls-key', env: 'MSG_TLS_KEY', help: 'PEM private key file of --tls-cert' },
  tlsCa: { flag: 'tls-ca', env: 'MSG_TLS_CA', help: 'PEM CA file: clients must present a certificate it signed (mutual TLS)' },
  peerTlsCert: { flag: 'peer-tls-cert', env: 'MSG_PEER_TLS_CERT', help: 'PEM certificate file of the peer listener and of this node to peers (default: --tls-cert)' },
  peerTlsKey: { flag: 'peer-tls-key', env: 'MSG_PEER_TLS_KEY', help: 'PEM private key file of --peer-tls-cert' },
  peerTlsCa: { flag: 'peer-tls-ca', env: 'MSG_PEER_TLS_CA', help: 'PEM CA file of the cluster: peers must present a certificate it signed (default: --tls-ca)' },
  authFile: { flag: 'auth-file', env: 'MSG_AUTH_FILE', help: 'JSON file of client identities and permissions: every client request needs a token (reloaded on SIGHUP)' },
  insecure: { flag: 'insecure', env: 'MSG_INSECURE', help: 'serve a non-loopback address without TLS or client authentication (flag without value)', boolean: true },
};

const keys = Object.keys(SETTINGS) as Key[];

/** The base URL of `host:port` (IPv6 hosts bracketed), `http:` unless `scheme` says `https`. */
export function urlOf(host: string, port: number, scheme: 'http' | 'https' = 'http'): string {
  return `${scheme}://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/**
 * What `loadConfig` returns: a config to run with, a request for help, one
 * to print the join token kept in `dataDir`, or one to print the SHA-256 of
 * a client token (`--hash-token`, for an auth file's `tokenSha256`).
 */
export type LoadResult =
  | { kind: 'run'; config: ServerConfig }
  | { kind: 'help'; text: string }
  | { kind: 'print-join-token'; dataDir: string }
  | { kind: 'hash-token'; token: string };

/** The usage text printed by `--help`. */
export function usage(): string {
  const lines = ['Usage: broker-server [options]', '', 'Options (each also from an environment variable or the config file key):'];
  lines.push(`  ${'--config <file>'.padEnd(30)} JSON config file (env MSG_CONFIG)`);
  for (const key of keys) {
    const s = SETTINGS[key];
    lines.push(`  ${`--${s.flag}${s.boolean ? '' : ' <value>'}`.padEnd(30)} ${s.help} (env ${s.env}, key ${key})`);
  }
  lines.push(`  ${'--print-join-token'.padEnd(30)} print the join token kept in --data-dir and exit`);
  lines.push(`  ${'--hash-token <token>'.padEnd(30)} print the SHA-256 hex of a client token (an auth file's tokenSha256) and exit`);
  lines.push(`  ${'--help'.padEnd(30)} print this text`);
  return lines.join('\n');
}

/**
 * Merges defaults < config file < environment < flags, validates everything
 * with zod, and throws {@link ConfigError} naming the first bad setting the
 * way the user wrote it (`--listen`, `MSG_LISTEN` or `config.json: listen`).
 */
export async function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv = {}, cwd = process.cwd()): Promise<LoadResult> {
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> = {
    config: { type: 'string' },
    help: { type: 'boolean' },
    'print-join-token': { type: 'boolean' },
    'hash-token': { type: 'string' },
  };
  for (const key of keys) options[SETTINGS[key].flag] = { type: SETTINGS[key].boolean ? 'boolean' : 'string', ...(SETTINGS[key].multiple ? { multiple: true } : {}) };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false });
  } catch (error) {
    throw new ConfigError('arguments', (error as Error).message);
  }
  if (parsed.values.help === true) return { kind: 'help', text: usage() };
  const hashToken = parsed.values['hash-token'];
  if (typeof hashToken === 'string') {
    // Nothing else is read or checked: no node starts. The message never shows the token.
    if (hashToken.trim() === '') throw new ConfigError('--hash-token', 'needs a token (it is empty)');
    return { kind: 'hash-token', token: hashToken };
  }

  const sourceOf = new Map<Key, string>();
  const merged: Record<string, unknown> = {};

  const configPath = (parsed.values.config as string | undefined) ?? env.MSG_CONFIG;
  if (configPath !== undefined) {
    const label = parsed.values.config !== undefined ? '--config' : 'MSG_CONFIG';
    const path = resolve(cwd, configPath);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      throw new ConfigError(label, `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
    let file: unknown;
    try {
      file = JSON.parse(text);
    } catch (error) {
      throw new ConfigError(path, `not valid JSON: ${(error as Error).message}`);
    }
    if (typeof file !== 'object' || file === null || Array.isArray(file)) throw new ConfigError(path, 'expected a JSON object');
    for (const [key, value] of Object.entries(file)) {
      if (!(keys as string[]).includes(key)) throw new ConfigError(`${path}: ${key}`, `unknown setting (known: ${keys.join(', ')})`);
      merged[key] = value;
      sourceOf.set(key as Key, `${path}: ${key}`);
    }
  }
  for (const key of keys) {
    const value = env[SETTINGS[key].env];
    if (value === undefined || value === '') continue;
    merged[key] = SETTINGS[key].multiple ? value.split(',').map((v) => v.trim()).filter(Boolean) : value;
    sourceOf.set(key, SETTINGS[key].env);
  }
  for (const key of keys) {
    const value = parsed.values[SETTINGS[key].flag];
    if (value === undefined) continue;
    merged[key] = value;
    sourceOf.set(key, `--${SETTINGS[key].flag}`);
  }

  const result = Schema.safeParse(merged);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const key = issue.path[0] as Key | undefined;
    const setting = key === undefined ? 'config' : (sourceOf.get(key) ?? key);
    throw new ConfigError(setting, issue.message);
  }
  const value = result.data;
  if (value.headersTimeoutMs > 0 && value.requestTimeoutMs > 0 && value.headersTimeoutMs > value.requestTimeoutMs) {
    throw new ConfigError(
      sourceOf.get('headersTimeoutMs') ?? 'headersTimeoutMs',
      `${value.headersTimeoutMs} ms is longer than the request timeout (${value.requestTimeoutMs} ms), which covers the headers too`,
    );
  }
  const { host, port } = value.listen;
  if (value.advertiseURL === undefined && (host === '0.0.0.0' || host === '::')) {
    throw new ConfigError(sourceOf.get('listen') ?? 'listen', 'binding a wildcard address needs --advertise-url');
  }
  const { tls, peerTls } = tlsFiles(value, sourceOf, cwd);
  const advertiseURL = value.advertiseURL ?? (port === 0 ? undefined : urlOf(host, port, tls ? 'https' : 'http'));
  const dataDir = resolve(cwd, value.dataDir);
  if (parsed.values['print-join-token'] === true) return { kind: 'print-join-token', dataDir };
  const peer = value.peerListen;
  if (peer !== undefined && value.peerAdvertiseURL === undefined && (peer.host === '0.0.0.0' || peer.host === '::')) {
    throw new ConfigError(sourceOf.get('peerListen') ?? 'peerListen', 'binding a wildcard address needs --peer-advertise-url');
  }
  if (peer === undefined && value.peerAdvertiseURL !== undefined) {
    throw new ConfigError(sourceOf.get('peerAdvertiseURL') ?? 'peerAdvertiseURL', 'needs --peer-listen');
  }
  const peerAdvertiseURL = value.peerAdvertiseURL ?? (peer === undefined || peer.port === 0 ? undefined : urlOf(peer.host, peer.port, peerTls ? 'https' : 'http'));
  const auth = value.authFile !== undefined;
  const exposed = exposureProblem('client', { host, tls: tls !== undefined, auth, insecure: value.insecure });
  if (exposed !== undefined) throw new ConfigError(sourceOf.get('listen') ?? 'listen', exposed);
  const peerExposed = peer && exposureProblem('peer', { host: peer.host, tls: peerTls !== undefined, auth, insecure: value.insecure });
  if (peerExposed) throw new ConfigError(sourceOf.get('peerListen') ?? 'peerListen', peerExposed);
  const { tlsCert: _c, tlsKey: _k, tlsCa: _a, peerTlsCert: _pc, peerTlsKey: _pk, peerTlsCa: _pa, ...rest } = value;
  return {
    kind: 'run',
    config: { ...rest, authFile: value.authFile === undefined ? undefined : resolve(cwd, value.authFile), dataDir, advertiseURL, peerAdvertiseURL, tls, peerTls, join: value.join.filter((url) => url !== advertiseURL) },
  };
}

/**
 * The TLS files of the client listener and of peer traffic: a certificate
 * needs its key and the other way round, a CA needs both, the `--peer-tls-*`
 * files need `--peer-listen`; peer traffic falls back to the client files.
 */
function tlsFiles(
  value: { tlsCert?: string | undefined; tlsKey?: string | undefined; tlsCa?: string | undefined; peerTlsCert?: string | undefined; peerTlsKey?: string | undefined; peerTlsCa?: string | undefined; peerListen?: unknown },
  sourceOf: ReadonlyMap<Key, string>,
  cwd: string,
): { tls: TlsFiles | undefined; peerTls: TlsFiles | undefined } {
  const pair = (cert: string | undefined, key: string | undefined, ca: string | undefined, keys: [Key, Key, Key], flags: string): TlsFiles | undefined => {
    if (cert === undefined && key === undefined && ca === undefined) return undefined;
    if (cert === undefined || key === undefined) {
      const given = keys.find((k) => sourceOf.has(k)) ?? keys[0];
      throw new ConfigError(sourceOf.get(given) ?? given, `TLS needs both ${flags} (a certificate and its private key)`);
    }
    return { cert: resolve(cwd, cert), key: resolve(cwd, key), ca: ca === undefined ? undefined : resolve(cwd, ca) };
  };
  const tls = pair(value.tlsCert, value.tlsKey, value.tlsCa, ['tlsCert', 'tlsKey', 'tlsCa'], '--tls-cert and --tls-key');
  const own = pair(value.peerTlsCert, value.peerTlsKey, value.peerTlsCa, ['peerTlsCert', 'peerTlsKey', 'peerTlsCa'], '--peer-tls-cert and --peer-tls-key');
  if (own !== undefined && value.peerListen === undefined) {
    const given = (['peerTlsCert', 'peerTlsKey', 'peerTlsCa'] as const).find((k) => sourceOf.has(k)) ?? 'peerTlsCert';
    throw new ConfigError(sourceOf.get(given) ?? given, 'needs --peer-listen (without it raft shares the client listener and its --tls-* files)');
  }
  return { tls, peerTls: own ?? tls };
}
