import type { AuthStats } from './auth.js';
import type { BrokerMetrics, HistogramSnapshot } from './broker.js';

/** The routes the handler tells apart in its own metrics. */
export const RouteNames = [
  'publish',
  'batch',
  'stream',
  'heartbeat',
  'ping',
  'raft',
  'health',
  'ready',
  'metrics',
  'status',
  'other',
] as const;

/** One of {@link RouteNames}. */
export type RouteName = (typeof RouteNames)[number];

/** Upper bounds (seconds) of the request latency histogram buckets. */
export const LATENCY_BUCKETS_SECONDS: readonly number[] = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/** The connection limits of `Limits`: in total, and per remote address. */
export type ConnectionLimitName = 'connections' | 'connections_per_client';

/** The stream limits of `Limits`: in total, and per client identity. */
export type StreamLimitName = 'streams' | 'streams_per_client';

/**
 * Kinds of node:http client errors: `timeout` (headers or request not
 * received in time), `headers_too_large`, `reset` (the client reset the
 * connection), `bad_request` (anything else malformed).
 */
export type ClientErrorKind = 'timeout' | 'headers_too_large' | 'bad_request' | 'reset';

/** What {@link HandlerMetrics} shows of the handler's limits (`Limits` implements it). */
export interface LimitStats {
  /** The configured limits (0: none). Durations in milliseconds. */
  readonly settings: {
    readonly maxConnections: number;
    readonly maxConnectionsPerClient: number;
    readonly maxStreams: number;
    readonly maxStreamsPerClient: number;
    readonly streamStallMs: number;
    readonly headersTimeoutMs: number;
    readonly requestTimeoutMs: number;
  };
  /** Connections counted against the limits now. */
  readonly connectionsOpen: number;
  /** Stream GETs holding a slot now. */
  readonly streamsAdmitted: number;
  /** Streams ended because their client did not read. */
  readonly streamsStalled: number;
  /** Client errors so far, by kind. */
  readonly clientErrors: ReadonlyMap<ClientErrorKind, number>;
  /** Connections refused past `limit`, answered 503 or closed without an answer. */
  connectionsRefused(limit: ConnectionLimitName, answered: boolean): number;
  /** Stream GETs refused past `limit`. */
  streamsRefused(limit: StreamLimitName): number;
}

interface RouteStats {
  /** Requests answered, by status code. */
  byStatus: Map<number, number>;
  /** Per-bucket (not cumulative) counts; the last slot is +Inf. */
  buckets: number[];
  count: number;
  sumSeconds: number;
}

/**
 * The handler's own counters: requests by route and status, request latency
 * (time from the request's arrival to the end of the answer; for streams, to
 * the end of the stream), messages and bytes published and streamed. All
 * plain numbers in memory; recording is a few array operations.
 */
export class HandlerMetrics {
  readonly #routes = new Map<RouteName, RouteStats>();
  /** Messages acknowledged (single and batch publishes). */
  publishedMessages = 0;
  /** Data bytes of acknowledged messages. */
  publishedBytes = 0;
  /** Frame bytes handed to stream sockets. */
  streamedBytes = 0;
  /** Stream responses open now. */
  activeStreams = 0;
  /** The handler's limits, rendered with the rest when set. */
  limits: LimitStats | undefined = undefined;
  /** More metric families from the embedding server (whole `# HELP`/`# TYPE`/sample lines), rendered after the handler's own. */
  extra: (() => readonly string[]) | undefined = undefined;
  /** The handler's authorizer's stats; with it, the auth counters are rendered too. */
  auth: AuthStats | undefined = undefined;
  /** Requests refused by the authorizer: no or an unknown credential (401), or a credential without the permission (403). */
  readonly authFailures = { unauthenticated: 0, forbidden: 0 };

  constructor() {
    for (const name of RouteNames) {
      this.#routes.set(name, { byStatus: new Map(), buckets: new Array<number>(LATENCY_BUCKETS_SECONDS.length + 1).fill(0), count: 0, sumSeconds: 0 });
    }
  }

  /** Records one answered request of `route` with `status`, `seconds` after it arrived. */
  observe(route: RouteName, status: number, seconds: number): void {
    const stats = this.#routes.get(route)!;
    stats.byStatus.set(status, (stats.byStatus.get(status) ?? 0) + 1);
    let i = 0;
    while (i < LATENCY_BUCKETS_SECONDS.length && seconds > LATENCY_BUCKETS_SECONDS[i]!) i++;
    stats.buckets[i]!++;
    stats.count++;
    stats.sumSeconds += seconds;
  }

  /** Requests of `route` answered with `status` so far (for tests and status pages). */
  requests(route: RouteName, status?: number): number {
    const stats = this.#routes.get(route)!;
    if (status !== undefined) return stats.byStatus.get(status) ?? 0;
    return stats.count;
  }

  /**
   * Renders these counters and the broker's snapshot in the Prometheus text
   * exposition format 0.0.4.
   */
  render(broker: BrokerMetrics | undefined): string {
    const out: string[] = [];
    const head = (name: string, type: 'counter' | 'gauge' | 'histogram', help: string): void => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    };

    head('msg_http_requests_total', 'counter', 'HTTP requests answered, by route and status code.');
    for (const [route, stats] of this.#routes) {
      for (const [status, n] of [...stats.byStatus].sort((a, b) => a[0] - b[0])) {
        out.push(`msg_http_requests_total{route="${route}",code="${status}"} ${n}`);
      }
    }
    head('msg_http_request_duration_seconds', 'histogram', 'Time from a request\'s arrival to the end of its answer, by route.');
    for (const [route, stats] of this.#routes) {
      if (stats.count === 0) continue;
      let cumulative = 0;
      LATENCY_BUCKETS_SECONDS.forEach((le, i) => {
        cumulative += stats.buckets[i]!;
        out.push(`msg_http_request_duration_seconds_bucket{route="${route}",le="${le}"} ${cumulative}`);
      });
      out.push(`msg_http_request_duration_seconds_bucket{route="${route}",le="+Inf"} ${stats.count}`);
      out.push(`msg_http_request_duration_seconds_sum{route="${route}"} ${stats.sumSeconds}`);
      out.push(`msg_http_request_duration_seconds_count{route="${route}"} ${stats.count}`);
    }
    head('msg_http_published_messages_total', 'counter', 'Messages acknowledged to publishers by this broker.');
    out.push(`msg_http_published_messages_total ${this.publishedMessages}`);
    head('msg_http_published_bytes_total', 'counter', 'Data bytes of messages acknowledged to publishers by this broker.');
    out.push(`msg_http_published_bytes_total ${this.publishedBytes}`);
    head('msg_http_streamed_bytes_total', 'counter', 'Message bytes sent to stream readers.');
    out.push(`msg_http_streamed_bytes_total ${this.streamedBytes}`);
    head('msg_http_streams_active', 'gauge', 'Stream responses open now.');
    out.push(`msg_http_streams_active ${this.activeStreams}`);

    if (this.limits) renderLimits(out, head, this.limits);
    if (this.extra) out.push(...this.extra());
    if (this.auth) {
      head('msg_http_auth_failures_total', 'counter', 'Client requests refused: unauthenticated (401, no or an unknown credential), forbidden (403, without the permission).');
      out.push(`msg_http_auth_failures_total{kind="unauthenticated"} ${this.authFailures.unauthenticated}`);
      out.push(`msg_http_auth_failures_total{kind="forbidden"} ${this.authFailures.forbidden}`);
      head('msg_http_auth_reloads_total', 'counter', 'Reloads of the identities (the auth file): ok, or failed (the old identities kept).');
      out.push(`msg_http_auth_reloads_total{result="ok"} ${this.auth.reloads(true)}`);
      out.push(`msg_http_auth_reloads_total{result="failed"} ${this.auth.reloads(false)}`);
      head('msg_http_auth_identities', 'gauge', 'Client identities known now.');
      out.push(`msg_http_auth_identities ${this.auth.identityCount}`);
    }

    if (broker) {
      head('msg_raft_term', 'gauge', 'Current raft term.');
      out.push(`msg_raft_term ${broker.term}`);
      head('msg_raft_commit_index', 'gauge', 'Highest raft log index known committed.');
      out.push(`msg_raft_commit_index ${broker.commitIndex}`);
      head('msg_raft_applied_index', 'gauge', 'Highest raft log index applied to topics.');
      out.push(`msg_raft_applied_index ${broker.appliedIndex}`);
      if (broker.messagesApplied !== undefined) {
        head('msg_broker_applied_messages_total', 'counter', 'Messages applied to topics.');
        out.push(`msg_broker_applied_messages_total ${broker.messagesApplied}`);
      }
      if (broker.bytesApplied !== undefined) {
        head('msg_broker_applied_bytes_total', 'counter', 'Data bytes applied to topics.');
        out.push(`msg_broker_applied_bytes_total ${broker.bytesApplied}`);
      }
      head('msg_topic_last_index', 'gauge', 'Index of the last message stored in a topic.');
      for (const t of broker.topics) out.push(`msg_topic_last_index{topic_id="${t.topicID}"} ${t.lastIndex}`);
      head('msg_topic_bytes', 'gauge', 'Bytes a topic takes on disk.');
      for (const t of broker.topics) out.push(`msg_topic_bytes{topic_id="${t.topicID}"} ${t.bytes}`);
      if (broker.fsync) renderHistogram(out, head, 'msg_fsync_duration_seconds', 'Latency of log fsyncs.', broker.fsync);
    }
    return `${out.join('\n')}\n`;
  }
}

function renderLimits(out: string[], head: (name: string, type: 'counter' | 'gauge', help: string) => void, limits: LimitStats): void {
  const s = limits.settings;
  head('msg_http_limit', 'gauge', 'Configured limits on connections and stream GETs (0: none).');
  out.push(
    `msg_http_limit{limit="connections"} ${s.maxConnections}`,
    `msg_http_limit{limit="connections_per_client"} ${s.maxConnectionsPerClient}`,
    `msg_http_limit{limit="streams"} ${s.maxStreams}`,
    `msg_http_limit{limit="streams_per_client"} ${s.maxStreamsPerClient}`,
  );
  head('msg_http_timeout_seconds', 'gauge', 'Configured timeouts against slow clients and stalled streams (0: none).');
  out.push(
    `msg_http_timeout_seconds{timeout="headers"} ${s.headersTimeoutMs / 1000}`,
    `msg_http_timeout_seconds{timeout="request"} ${s.requestTimeoutMs / 1000}`,
    `msg_http_timeout_seconds{timeout="stream_stall"} ${s.streamStallMs / 1000}`,
  );
  head('msg_http_connections_open', 'gauge', 'Connections open now (those refused past a limit aside).');
  out.push(`msg_http_connections_open ${limits.connectionsOpen}`);
  head('msg_http_connections_refused_total', 'counter', 'Connections refused past a limit: answered 503 TOO_MANY_CONNECTIONS, or closed without an answer.');
  for (const limit of ['connections', 'connections_per_client'] as const) {
    for (const answered of [true, false]) {
      out.push(`msg_http_connections_refused_total{limit="${limit}",answered="${answered}"} ${limits.connectionsRefused(limit, answered)}`);
    }
  }
  head('msg_http_streams_admitted', 'gauge', 'Stream GETs holding a slot of the stream limits now.');
  out.push(`msg_http_streams_admitted ${limits.streamsAdmitted}`);
  head('msg_http_streams_refused_total', 'counter', 'Stream GETs answered 503 TOO_MANY_STREAMS, by limit.');
  for (const limit of ['streams', 'streams_per_client'] as const) out.push(`msg_http_streams_refused_total{limit="${limit}"} ${limits.streamsRefused(limit)}`);
  head('msg_http_streams_stalled_total', 'counter', 'Streams ended because their client read nothing while there was data to send.');
  out.push(`msg_http_streams_stalled_total ${limits.streamsStalled}`);
  head('msg_http_client_errors_total', 'counter', 'Connections ended by a client error: timeout (headers or request too slow), headers_too_large, bad_request, reset.');
  for (const [kind, n] of limits.clientErrors) out.push(`msg_http_client_errors_total{kind="${kind}"} ${n}`);
}

function renderHistogram(
  out: string[],
  head: (name: string, type: 'histogram', help: string) => void,
  name: string,
  help: string,
  h: HistogramSnapshot,
): void {
  head(name, 'histogram', help);
  for (const b of h.buckets) out.push(`${name}_bucket{le="${b.le}"} ${b.count}`);
  out.push(`${name}_bucket{le="+Inf"} ${h.count}`, `${name}_sum ${h.sumSeconds}`, `${name}_count ${h.count}`);
}
