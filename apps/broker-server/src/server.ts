import { mkdir, readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Broker } from '@msg/broker';
import { certSubjectResolver, createHandler, descriptorsNeeded, fitToFileLimit, Limits, type Handler } from '@msg/http';
import { Headers } from '@msg/wire';
import { createRaftHandler, HttpTransport, isRaftError, PeerAuth, RaftNode } from 'raft-ts';
import { createBrokerAdapter, type BrokerAdapter } from './broker-adapter.js';
import { lockDataDir } from './data-dir-lock.js';
import { checkNodeIdentity, keepNodeIdentity } from './node-identity.js';
import { refuseRemovedNode } from './removed-node.js';
import { clientCertSubject, openClientAuth, streamClientOf, type ClientAuth } from './client-auth.js';
import { urlOf, type ServerConfig } from './config.js';
import type { JsonLogger } from './logger.js';
import { clientListener, peerListener } from './peer-listener.js';
import { openPeerTokens } from './peer-tokens.js';
import { refusalLogger } from './refusal-log.js';
import { watchEventLoop } from './loop-watch.js';
import { ServerError } from './server-error.js';
import { NodeTls } from './tls.js';

/** A running broker node: see {@link startServer}. */
export interface RunningServer {
  /** The node's advertised URL (its identity in the cluster), e.g. `http://127.0.0.1:8086`. */
  readonly url: string;
  /** The port the HTTP server is bound to. */
  readonly port: number;
  /** With `config.peerListen`: the URL peers reach raft at (the peer listener). */
  readonly peerURL: string | undefined;
  /** The broker (topics), for inspection. */
  readonly broker: Broker;
  /** The raft node, for inspection. */
  readonly raft: RaftNode;
  /**
   * Reads the TLS files again and serves the new certificates (SIGHUP):
   * `true` when they are in use (or there is no TLS), `false` when a file
   * was bad (logged; the current ones stay).
   */
  reloadTls(): Promise<boolean>;
  /**
   * Graceful shutdown: stops accepting connections, refuses new writes (503
   * `broker already closed`), ends open streams, waits for the writes in
   * flight (at most `drainMs`), closes raft (a leader first hands leadership
   * over), then the broker and the HTTP server. A second call rejects
   * `ServerError` `ALREADY_CLOSED`.
   */
  close(): Promise<void>;
}

/** Options of {@link startServer} that are not settings of a node. */
export interface StartOptions {
  /** Most milliseconds `close()` waits for writes in flight. Default 10000. */
  drainMs?: number;
  /**
   * Most milliseconds to wait after startup for a leader to be known before
   * logging `listening` anyway. Default 3 election timeouts.
   */
  leaderWaitMs?: number;
}

/** Most entry bytes raft puts in one AppendEntries besides its first entry, and the size of an InstallSnapshot chunk. */
const RAFT_BATCH_BYTES = 1024 * 1024;

/**
 * What a `/raft` body may hold beyond `maxBodyBytes`: an AppendEntries carries
 * up to {@link RAFT_BATCH_BYTES} of entries besides one as large as the
 * largest publish body, plus its framing (21 bytes an entry, at most 1024
 * entries, two strings of at most 64 KiB), so `maxBodyBytes + 2 MiB` always
 * fits what a leader sends.
 */
const RAFT_BODY_ALLOWANCE = 2 * RAFT_BATCH_BYTES;

/** This process's soft limit on open file descriptors (Linux `/proc/self/limits`), `undefined` when unknown or unlimited. */
async function openFileLimit(): Promise<number | undefined> {
  const text = await readFile('/proc/self/limits', 'utf8').catch(() => '');
  const match = /^Max open files\s+(\d+)\s/m.exec(text);
  return match ? Number(match[1]) : undefined;
}

/**
 * The client API's limits from `config`; a total connection or stream limit
 * left unset is the default, lowered to fit `fileLimit`. Warns when the
 * limits let clients take more descriptors than the process may open.
 */
function limitsFor(config: ServerConfig, fileLimit: number | undefined, logger: JsonLogger): Limits {
  const fitted: { maxConnections?: number; maxStreams?: number } = fileLimit === undefined ? {} : fitToFileLimit(fileLimit);
  const limits = new Limits({
    maxConnections: config.maxConnections ?? fitted.maxConnections,
    maxConnectionsPerClient: config.maxConnectionsPerClient,
    maxStreams: config.maxStreams ?? fitted.maxStreams,
    maxStreamsPerClient: config.maxStreamsPerClient,
    streamStallMs: config.streamStallMs,
    headersTimeoutMs: config.headersTimeoutMs,
    requestTimeoutMs: config.requestTimeoutMs,
    identify: streamClientOf,
  });
  const needed = descriptorsNeeded(limits.settings);
  if (fileLimit !== undefined && (needed === undefined || needed > fileLimit)) {
    logger.warn('limits allow more open files than the process may have', {
      fileLimit,
      needed: needed ?? 'unbounded',
      maxConnections: limits.settings.maxConnections,
      maxStreams: limits.settings.maxStreams,
      hint: 'lower --max-connections / --max-streams or raise the fd limit (ulimit -n)',
    });
  }
  return limits;
}

/** Most connections the peer listener holds at once: a few per peer (the transport keeps some alive), far below the client listener's. */
export const PEER_MAX_CONNECTIONS = 256;

/**
 * The peer listener's own limits (its counts are not the client
 * listener's): at most {@link PEER_MAX_CONNECTIONS} connections, and the
 * client listener's headers and request timeouts, so that a slow or idle
 * connection cannot hold the raft port.
 */
function peerLimitsFor(config: ServerConfig): Limits {
  return new Limits({ maxConnections: PEER_MAX_CONNECTIONS, headersTimeoutMs: config.headersTimeoutMs, requestTimeoutMs: config.requestTimeoutMs });
}

/**
 * Starts one broker node from `config`:
 * 0. creates the data dir and takes its lock (`<dataDir>/.lock`, released by
 *    `close()` or a failed start): a second process on it fails with
 *    `DATA_DIR_LOCKED` naming the holder's PID; the URL must be the one the
 *    dir's node recorded in `<dataDir>/node.json` (`NODE_IDENTITY_CHANGED`), and
 *    a node its cluster removed does not start (`NODE_REMOVED`);
 * 1. reads the join token it keeps, and binds the HTTP
 *    server (port 0: the OS picks one; the advertised URL is then
 *    `http://<host>:<port>`), and with `config.peerListen` a peer listener
 *    that alone serves `/raft/*`; requests that arrive before raft is open wait;
 * 2. opens the broker (`<dataDir>/broker`) and the raft node
 *    (`<dataDir>/raft`, the broker as its state machine, HTTP transport);
 * 3. a node with no cluster yet bootstraps a single-node cluster (and writes
 *    its join token to `<dataDir>/join-token`), or, with `config.join`,
 *    joins through the first URL that accepts it (with `config.joinToken`,
 *    which it keeps); a node that already belongs to a cluster resumes its
 *    place (`join` is ignored). Every raft RPC, both ways, is signed with the
 *    cluster secret the token carries; an unsigned one is refused 401;
 * 4. waits (bounded) for a leader to be known and logs
 *    `{"msg":"listening","url":...}`.
 *
 * On failure everything opened so far is closed and the error is rethrown
 * (see `exitCodeFor` for what it means to the process).
 */
export async function startServer(config: ServerConfig, logger: JsonLogger, options: StartOptions = {}): Promise<RunningServer> {
  await mkdir(config.dataDir, { recursive: true });
  // Before anything in the dir is read or written: one process per node dir.
  const lock = await lockDataDir(config.dataDir);
  let running: RunningServer;
  try {
    running = await startLocked(config, logger, options);
  } catch (error) {
    await lock.release().catch(() => undefined);
    throw error;
  }
  let closed: Promise<void> | undefined;
  return {
    ...running,
    close() {
      // Only the first close releases the lock, once everything is closed (a second call rejects ALREADY_CLOSED).
      if (closed !== undefined) return running.close();
      closed = running.close().finally(() => lock.release());
      return closed;
    },
  };
}

/** {@link startServer} once the data dir is locked. */
async function startLocked(config: ServerConfig, logger: JsonLogger, options: StartOptions): Promise<RunningServer> {
  const limits = limitsFor(config, await openFileLimit(), logger);
  // A bad auth file stops the start before anything listens (exit 64, naming the file and the field).
  // With --tls-ca every client has a verified certificate: an identity's certSubject proves it without a token.
  const resolvers = config.tls?.ca === undefined ? [] : [certSubjectResolver(clientCertSubject)];
  const clientAuth: ClientAuth | undefined = config.authFile === undefined ? undefined : await openClientAuth(config.authFile, logger, { resolvers });
  // Bad PEM files stop the start before anything listens (exit 64, naming the flag and the file).
  const tls = await NodeTls.open(config);
  tls.warnExpiring(logger);
  const auth = new PeerAuth();
  const tokens = await openPeerTokens(auth, config.dataDir, config.joinToken, logger);
  let dispatch: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  let waiting: [IncomingMessage, ServerResponse][] = [];
  const serve = (req: IncomingMessage, res: ServerResponse): void => {
    if (dispatch !== undefined) dispatch(req, res);
    else waiting.push([req, res]);
  };
  const peerLimits = config.peerListen === undefined ? undefined : peerLimitsFor(config);
  const peerServer = peerLimits === undefined ? undefined : listenerServer(tls, 'peer', peerLimits.serverOptions, peerListener(serve));
  // Before listening, as the client listener's: every connection is counted.
  if (peerServer !== undefined) peerLimits?.attach(peerServer);
  let peerURL: string | undefined;
  if (peerServer !== undefined && config.peerListen !== undefined) {
    await listenOn(peerServer, config.peerListen.host, config.peerListen.port);
    peerURL = config.peerAdvertiseURL ?? urlOf(config.peerListen.host, (peerServer.address() as AddressInfo).port, tls.scheme('peer'));
  }
  const server = listenerServer(tls, 'client', limits.serverOptions, peerURL === undefined ? serve : clientListener(serve, peerURL));
  // Before listening: every connection is counted, also those that arrive while raft opens.
  limits.attach(server);
  try {
    await listenOn(server, config.listen.host, config.listen.port);
  } catch (error) {
    await closeServer(peerServer);
    clientAuth?.close();
    throw error;
  }
  const port = (server.address() as AddressInfo).port;
  const url = config.advertiseURL ?? urlOf(config.listen.host, port, tls.scheme('client'));

  const broker = new Broker({
    dir: join(config.dataDir, 'broker'),
    logger,
    maxSegmentSize: config.segmentBytes,
    retention: {
      ...(config.retentionBytes > 0 ? { maxBytes: config.retentionBytes } : {}),
      ...(config.retentionMs > 0 ? { maxAgeMs: config.retentionMs } : {}),
    },
    readiness: {
      ...(config.readyMaxLagEntries === undefined ? {} : { maxLagEntries: config.readyMaxLagEntries }),
      ...(config.readyMaxLagSeconds === undefined ? {} : { maxLagSeconds: config.readyMaxLagSeconds }),
      ...(config.readyMaxLeaderSilence === undefined ? {} : { maxLeaderSilenceElectionTimeouts: config.readyMaxLeaderSilence }),
    },
  });
  const transportTls = tls.transportTls();
  const transport = new HttpTransport({ auth, ...(transportTls === undefined ? {} : { tls: transportTls }) });
  tls.trackTransport(transport);
  const raft = new RaftNode({
    dir: join(config.dataDir, 'raft'),
    url,
    stateMachine: broker,
    transport,
    sync: config.sync,
    electionTimeoutMs: config.electionTimeoutMs,
    heartbeatIntervalMs: config.heartbeatIntervalMs,
    snapshotThreshold: config.snapshotThreshold,
    maxAppendBytes: RAFT_BATCH_BYTES,
    snapshotChunkBytes: RAFT_BATCH_BYTES,
    logger,
  });
  broker.attachLog(raft);
  const raftHandler = createRaftHandler(raft, { maxBodyBytes: config.maxBodyBytes + RAFT_BODY_ALLOWANCE, auth, url, errorCodeHeader: Headers.errorCode, onRefused: refusalLogger(logger) });
  const adapter = createBrokerAdapter(broker, raft, raftHandler);
  const handler = createHandler(adapter, {
    maxBodyBytes: config.maxBodyBytes,
    limits,
    ...(clientAuth === undefined ? {} : { authorizer: clientAuth.authorizer }),
    onInternalError: (error, req) => logger.error('internal error', { method: req.method, path: req.url, err: error }),
  });

  handler.metrics.extra = () => tls.metricsLines();
  handler.metrics.collectProcessMetrics();

  let brokerOpen = false;
  let raftOpen = false;
  try {
    const recorded = await checkNodeIdentity(config.dataDir, url);
    await broker.open();
    brokerOpen = true;
    await raft.open();
    raftOpen = true;
    refuseRemovedNode(raft, config.dataDir, logger);
    dispatch = handler.listener;
    for (const [req, res] of waiting) dispatch(req, res);
    waiting = [];

    const clusterId = raft.clusterId();
    if (clusterId === undefined) {
      if (config.join.length === 0) {
        logger.info('bootstrapping a new single-node cluster', { url });
        await raft.initialize();
        await tokens.afterBootstrap(raft.clusterId()!);
      } else {
        const token = await tokens.beforeJoin();
        await joinCluster(raft, config.join, token.clusterId, logger);
      }
    } else {
      const { voters, learners } = raft.config();
      await tokens.onResume(clusterId, voters.length === 1 && voters[0] === url && learners.length === 0);
      if (config.join.length > 0) logger.info('resuming membership; --join ignored', { clusterId, join: config.join });
      else logger.info('resuming membership', { clusterId });
    }
    const member = raft.clusterId();
    if (member !== undefined) await keepNodeIdentity(config.dataDir, recorded, { url, clusterId: member });
    await leaderKnown(raft, options.leaderWaitMs ?? 3 * config.electionTimeoutMs);
  } catch (error) {
    dispatch = undefined;
    for (const [, res] of waiting) res.destroy();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await closeServer(peerServer);
    if (raftOpen) await raft.close().catch((e: unknown) => logger.warn('raft close failed', { err: e }));
    if (brokerOpen) await broker.close().catch((e: unknown) => logger.warn('broker close failed', { err: e }));
    await transport.close().catch(() => undefined);
    clientAuth?.close();
    throw error;
  }

  logger.info('listening', {
    url,
    listen: urlOf(config.listen.host, port, tls.scheme('client')),
    ...(peerURL === undefined ? {} : { peerURL, peerLimits: peerLimits?.settings }),
    dataDir: config.dataDir,
    clusterId: raft.clusterId(),
    leader: raft.leader(),
    members: raft.urls(),
    sync: config.sync,
    limits: limits.settings,
  });

  const stopLoopWatch = watchEventLoop(logger);
  let closing = false;
  return {
    url,
    port,
    peerURL,
    broker,
    raft,
    reloadTls: () => tls.reload(logger),
    async close() {
      if (closing) throw new ServerError('ALREADY_CLOSED', 'server already closed');
      closing = true;
      clientAuth?.close();
      stopLoopWatch();
      await shutdown({ server, peerServer, handler, adapter, broker, raft, transport, logger, drainMs: options.drainMs ?? 10_000 });
    },
  };
}

interface Parts {
  server: Server;
  peerServer: Server | undefined;
  handler: Handler;
  adapter: BrokerAdapter;
  broker: Broker;
  raft: RaftNode;
  transport: HttpTransport;
  logger: JsonLogger;
  drainMs: number;
}

async function shutdown({ server, peerServer, handler, adapter, broker, raft, transport, logger, drainMs }: Parts): Promise<void> {
  logger.info('shutting down', { inFlight: adapter.inFlight, streams: handler.activeStreams });
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  adapter.stop();
  handler.close();
  if (!(await within(adapter.idle(), drainMs))) {
    logger.warn('writes still in flight after the drain timeout', { inFlight: adapter.inFlight, drainMs });
  }
  let failure: unknown;
  await raft.close().catch((error: unknown) => {
    failure ??= error;
  });
  server.closeAllConnections();
  await closed;
  await closeServer(peerServer);
  await broker.close().catch((error: unknown) => {
    failure ??= error;
  });
  await transport.close().catch(() => undefined);
  if (failure !== undefined) throw failure instanceof Error ? failure : new Error('shutdown failed', { cause: failure });
  logger.info('stopped');
}

/** An https server of `listener` when it has TLS (tracked for reloads), else an http one. */
function listenerServer(tls: NodeTls, listener: 'client' | 'peer', options: Limits['serverOptions'], serve: (req: IncomingMessage, res: ServerResponse) => void): Server {
  if (tls.material(listener) === undefined) return createServer(options, serve);
  const server = createHttpsServer({ ...options, ...tls.serverOptions(listener) }, serve);
  tls.track(listener, server);
  return server;
}

/** Closes `server` (when there is one) and every connection it has. */
async function closeServer(server: Server | undefined): Promise<void> {
  if (server === undefined || !server.listening) return;
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  await closed;
}

function listenOn(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => reject(error);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

/**
 * Tries each URL in order; `RaftNode.join` itself retries retriable errors for
 * up to 30 election timeouts. A refused token (`UNAUTHENTICATED`) is not retried.
 */
async function joinCluster(raft: RaftNode, urls: readonly string[], clusterId: string, logger: JsonLogger): Promise<void> {
  let last: unknown;
  for (const target of urls) {
    logger.info('joining cluster', { via: target, url: raft.url });
    try {
      await raft.join(target, { clusterId });
      logger.info('joined cluster', { via: target, clusterId: raft.clusterId() });
      return;
    } catch (error) {
      last = error;
      logger.warn('join failed', { via: target, err: error });
    }
  }
  if (isRaftError(last, 'UNAUTHENTICATED')) {
    throw new ServerError(
      'JOIN_REFUSED',
      `${urls.join(', ')} refused this node's join token (${last.message}): --join-token must be the token of that cluster (\`broker-server --print-join-token\` on a member prints it)`,
      { cause: last },
    );
  }
  throw new ServerError('JOIN_FAILED', `could not join through ${urls.join(', ')}: ${(last as Error | undefined)?.message ?? 'no URL'}`, { cause: last });
}

/** Resolves once the node knows a leader, or after `ms` (a restarted node of a cluster that lost its majority still starts). */
async function leaderKnown(raft: RaftNode, ms: number): Promise<void> {
  if (raft.leader() !== undefined) return;
  let off: (() => void) | undefined;
  const known = new Promise<void>((resolve) => {
    off = raft.onLeaderChange((leader) => {
      if (leader !== undefined) resolve();
    });
  });
  await within(known, ms);
  off?.();
}

/** True when `promise` settles within `ms`, false otherwise. */
async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
