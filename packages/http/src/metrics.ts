import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type Metric } from 'prom-client';
import type { AuthStats } from './auth.js';
import type { BrokerMetrics, HistogramSnapshot, RaftCounters, RaftMetrics, TopicMetrics } from './broker.js';

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
  'producers',
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
  /** Per-bucket (not cumulative) counts of {@link LATENCY_BUCKETS_SECONDS}; the last slot is +Inf. */
  buckets: number[];
  count: number;
  sumSeconds: number;
}

/** One sample of a pulled metric: its labels and value. */
type Sample = readonly [labels: Readonly<Record<string, string>>, value: number];

/** A gauge whose samples are read at each scrape (`read`), not set. */
class PulledGauge extends Gauge<string> {
  /** The metric's name. */
  readonly metricName: string;
  readonly #read: () => Iterable<Sample>;
  constructor(name: string, help: string, labelNames: readonly string[], read: () => Iterable<Sample>) {
    super({ name, help, labelNames, registers: [] });
    this.metricName = name;
    this.#read = read;
  }
  override async get(): ReturnType<Gauge<string>['get']> {
    const samples = [...this.#read()]; // read before any await: the snapshot is there only while collecting starts
    const base = await super.get();
    return { ...base, values: samples.map(([labels, value]) => ({ labels: { ...labels }, value })) };
  }
}

/** A counter whose samples (totals kept elsewhere) are read at each scrape. */
class PulledCounter extends Counter<string> {
  /** The metric's name. */
  readonly metricName: string;
  readonly #read: () => Iterable<Sample>;
  constructor(name: string, help: string, labelNames: readonly string[], read: () => Iterable<Sample>) {
    super({ name, help, labelNames, registers: [] });
    this.metricName = name;
    this.#read = read;
  }
  override async get(): ReturnType<Counter<string>['get']> {
    const samples = [...this.#read()]; // read before any await: the snapshot is there only while collecting starts
    const base = await super.get();
    return { ...base, values: samples.map(([labels, value]) => ({ labels: { ...labels }, value })) };
  }
}

/** A histogram whose buckets ({@link HistogramSnapshot}s kept elsewhere, one per label set) are read at each scrape. */
class PulledHistogram extends Histogram<string> {
  /** The metric's name. */
  readonly metricName: string;
  readonly #read: () => Iterable<readonly [Readonly<Record<string, string>>, HistogramSnapshot]>;
  /** A histogram never observed, for the shape of the answer (name, help, type). */
  readonly #shape: Histogram<string>;
  /** `read` gives the snapshots by label set; a plain function of no labels gives one unlabelled snapshot (or none). */
  constructor(name: string, help: string, read: (() => HistogramSnapshot | undefined) | { labelled: () => Iterable<readonly [Readonly<Record<string, string>>, HistogramSnapshot]> }) {
    super({ name, help, registers: [] });
    this.metricName = name;
    this.#read =
      typeof read === 'function'
        ? () => {
            const h = read();
            return h === undefined ? [] : [[{}, h] as const];
          }
        : read.labelled;
    this.#shape = new Histogram({ name, help, registers: [] });
  }
  /** What the registry renders (prom-client prefers it to `get()` for histograms): the same as {@link get}. */
  getForPromString(): ReturnType<Histogram<string>['get']> {
    return this.get();
  }
  override async get(): ReturnType<Histogram<string>['get']> {
    const read = [...this.#read()]; // read before any await: the snapshot is there only while collecting starts
    const base = await this.#shape.get();
    const name = this.metricName;
    return {
      ...base,
      values: read.flatMap(([labels, h]) => [
        ...h.buckets.map((b) => ({ labels: { ...labels, le: b.le }, value: b.count, metricName: `${name}_bucket` })),
        { labels: { ...labels, le: '+Inf' }, value: h.count, metricName: `${name}_bucket` },
        { labels: { ...labels }, value: h.sumSeconds, metricName: `${name}_sum` },
        { labels: { ...labels }, value: h.count, metricName: `${name}_count` },
      ]),
    };
  }
}

/** A metric of this module: prom-client's, with its name at hand. */
type Named = (PulledGauge | PulledCounter | PulledHistogram) & Metric;

/** Raft roles shown by `msg_raft_role` (with 0 when not the current one). */
const ROLES = ['leader', 'follower', 'candidate', 'learner'] as const;

/**
 * The metrics of `GET /metrics`, kept with prom-client in {@link registry}:
 * the handler's own (requests by route and status, request latency, messages
 * and bytes published and streamed, limits, auth), the broker's snapshot
 * given to {@link render} (raft indexes, replication lag, raft log fsync and
 * commit latency, elections, snapshots, per-follower and per-topic numbers,
 * checkpoint fsyncs), and, once {@link collectProcessMetrics} was called, the
 * process's (event-loop delay, heap, GC, open file descriptors). Recording a
 * request is a few map and array operations. Every metric is documented in
 * the repository's `docs/metrics.md`.
 */
export class HandlerMetrics {
  /**
   * The prom-client registry rendered by {@link render}. An embedding server
   * may register more metrics into it (names must not clash).
   */
  readonly registry = new Registry();
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
  /** More metric families from the embedding server (whole `# HELP`/`# TYPE`/sample lines), rendered after the registry's. */
  extra: (() => readonly string[]) | undefined = undefined;
  /** The handler's authorizer's stats; with it, the auth counters are rendered too. */
  auth: AuthStats | undefined = undefined;
  /** Requests refused by the authorizer: no or an unknown credential (401), or a credential without the permission (403). */
  readonly authFailures = { unauthenticated: 0, forbidden: 0 };

  /** The broker's snapshot during a {@link render} (read by the pulled metrics). */
  #broker: BrokerMetrics | undefined;
  readonly #limitMetrics: readonly Named[];
  readonly #authMetrics: readonly Named[];
  #processMetrics = false;

  constructor() {
    for (const name of RouteNames) {
      this.#routes.set(name, { byStatus: new Map(), buckets: new Array<number>(LATENCY_BUCKETS_SECONDS.length + 1).fill(0), count: 0, sumSeconds: 0 });
    }
    const r = this.registry;
    const one = (value: number): Sample[] => [[{}, value]];
    const add = (...metrics: Metric[]): void => {
      for (const m of metrics) r.registerMetric(m);
    };
    add(
      // Recorded in plain maps and arrays (a request's cost), turned into prom-client's form at a scrape.
      new PulledCounter('msg_http_requests_total', 'HTTP requests answered, by route and status code (499: the client left before the answer).', ['route', 'code'], () =>
        [...this.#routes].flatMap(([route, stats]) => [...stats.byStatus].sort((a, b) => a[0] - b[0]).map(([code, n]): Sample => [{ route, code: String(code) }, n])),
      ),
      new PulledHistogram('msg_http_request_duration_seconds', "Time from a request's arrival to the end of its answer (for streams: to the end of the stream), by route.", {
        labelled: () => [...this.#routes].filter(([, stats]) => stats.count > 0).map(([route, stats]) => [{ route }, routeHistogram(stats)] as const),
      }),
      new PulledCounter('msg_http_published_messages_total', 'Messages acknowledged to publishers by this broker (single and batch publishes).', [], () => one(this.publishedMessages)),
      new PulledCounter('msg_http_published_bytes_total', 'Data bytes of messages acknowledged to publishers by this broker.', [], () => one(this.publishedBytes)),
      new PulledCounter('msg_http_streamed_bytes_total', 'Message frame bytes handed to the sockets of stream readers.', [], () => one(this.streamedBytes)),
      new PulledGauge('msg_http_streams_active', 'Stream responses (GET /messaging/messages) open now.', [], () => one(this.activeStreams)),
    );
    this.#limitMetrics = limitMetrics(() => this.limits);
    this.#authMetrics = [
      new PulledCounter('msg_http_auth_failures_total', 'Client requests refused: unauthenticated (401, no or an unknown credential), forbidden (403, without the permission).', ['kind'], () => [
        [{ kind: 'unauthenticated' }, this.authFailures.unauthenticated],
        [{ kind: 'forbidden' }, this.authFailures.forbidden],
      ]),
      new PulledCounter('msg_http_auth_reloads_total', 'Reloads of the identities (the auth file): ok, or failed (the old identities kept).', ['result'], () =>
        this.auth ? [[{ result: 'ok' }, this.auth.reloads(true)], [{ result: 'failed' }, this.auth.reloads(false)]] : [],
      ),
      new PulledGauge('msg_http_auth_identities', 'Client identities known now.', [], () => (this.auth ? one(this.auth.identityCount) : [])),
    ];
    add(...brokerMetrics(() => this.#broker));
  }

  /**
   * Adds the process and runtime metrics of prom-client's
   * `collectDefaultMetrics`, prefixed `msg_` (CPU, resident memory, open file
   * descriptors, event-loop delay, heap, GC durations ...). Once; a second
   * call does nothing. They describe the whole process: call it for one
   * handler per process.
   */
  collectProcessMetrics(): void {
    if (this.#processMetrics) return;
    this.#processMetrics = true;
    collectDefaultMetrics({ register: this.registry, prefix: 'msg_' });
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
   * Renders the registry (these counters, the broker's snapshot `broker`,
   * and whatever else is registered) in the Prometheus text exposition
   * format 0.0.4, then the {@link extra} lines.
   */
  async render(broker: BrokerMetrics | undefined): Promise<string> {
    this.#present(this.#limitMetrics, this.limits !== undefined);
    this.#present(this.#authMetrics, this.auth !== undefined);
    // Every metric reads the snapshot synchronously as the registry starts collecting; later renders set their own.
    this.#broker = broker;
    let text: Promise<string>;
    try {
      text = this.registry.metrics();
    } finally {
      this.#broker = undefined;
    }
    const body = await text;
    const extra = this.extra?.() ?? [];
    return extra.length === 0 ? body : `${body}${extra.join('\n')}\n`;
  }

  /** Registers `metrics` when `present`, else removes them. */
  #present(metrics: readonly Named[], present: boolean): void {
    for (const m of metrics) {
      if (present) {
        if (this.registry.getSingleMetric(m.metricName) !== m) this.registry.registerMetric(m);
      } else {
        this.registry.removeSingleMetric(m.metricName);
      }
    }
  }
}

/** A route's latency as a {@link HistogramSnapshot} (cumulative buckets). */
function routeHistogram(stats: RouteStats): HistogramSnapshot {
  let cumulative = 0;
  const buckets = LATENCY_BUCKETS_SECONDS.map((le, i) => ({ le, count: (cumulative += stats.buckets[i]!) }));
  return { buckets, count: stats.count, sumSeconds: stats.sumSeconds };
}

/** The metrics of the handler's limits (read from `limits()` at each scrape). */
function limitMetrics(limits: () => LimitStats | undefined): Named[] {
  const with_ = (f: (l: LimitStats) => Sample[]) => (): Sample[] => {
    const l = limits();
    return l ? f(l) : [];
  };
  return [
    new PulledGauge('msg_http_limit', 'Configured limits on connections and stream GETs (0: none).', ['limit'], with_((l) => [
      [{ limit: 'connections' }, l.settings.maxConnections],
      [{ limit: 'connections_per_client' }, l.settings.maxConnectionsPerClient],
      [{ limit: 'streams' }, l.settings.maxStreams],
      [{ limit: 'streams_per_client' }, l.settings.maxStreamsPerClient],
    ])),
    new PulledGauge('msg_http_timeout_seconds', 'Configured timeouts against slow clients and stalled streams (0: none).', ['timeout'], with_((l) => [
      [{ timeout: 'headers' }, l.settings.headersTimeoutMs / 1000],
      [{ timeout: 'request' }, l.settings.requestTimeoutMs / 1000],
      [{ timeout: 'stream_stall' }, l.settings.streamStallMs / 1000],
    ])),
    new PulledGauge('msg_http_connections_open', 'Connections open now (those refused past a limit aside).', [], with_((l) => [[{}, l.connectionsOpen]])),
    new PulledCounter('msg_http_connections_refused_total', 'Connections refused past a limit: answered 503 TOO_MANY_CONNECTIONS, or closed without an answer.', ['limit', 'answered'], with_((l) => {
      const out: Sample[] = [];
      for (const limit of ['connections', 'connections_per_client'] as const) {
        for (const answered of [true, false]) out.push([{ limit, answered: String(answered) }, l.connectionsRefused(limit, answered)]);
      }
      return out;
    })),
    new PulledGauge('msg_http_streams_admitted', 'Stream GETs holding a slot of the stream limits now.', [], with_((l) => [[{}, l.streamsAdmitted]])),
    new PulledCounter('msg_http_streams_refused_total', 'Stream GETs answered 503 TOO_MANY_STREAMS, by limit.', ['limit'], with_((l) =>
      (['streams', 'streams_per_client'] as const).map((limit): Sample => [{ limit }, l.streamsRefused(limit)]),
    )),
    new PulledCounter('msg_http_streams_stalled_total', 'Streams ended because their client read nothing while there was data to send.', [], with_((l) => [[{}, l.streamsStalled]])),
    new PulledCounter('msg_http_client_errors_total', 'Connections ended by a client error: timeout (headers or request too slow), headers_too_large, bad_request, reset.', ['kind'], with_((l) =>
      [...l.clientErrors].map(([kind, n]): Sample => [{ kind }, n]),
    )),
  ];
}

/** The metrics read from the broker's snapshot of a scrape (`snapshot()`; none outside a render). */
function brokerMetrics(snapshot: () => BrokerMetrics | undefined): Metric[] {
  const of = (f: (b: BrokerMetrics) => Sample[]) => (): Sample[] => {
    const b = snapshot();
    return b ? f(b) : [];
  };
  const raft = (f: (r: RaftMetrics, b: BrokerMetrics) => Sample[]) => of((b) => (b.raft ? f(b.raft, b) : []));
  const stats = (f: (s: RaftCounters) => number) => raft((r) => (r.stats ? [[{}, f(r.stats)]] : []));
  const followers = (f: (x: RaftMetrics['replication']['followers'][number]) => number | undefined) =>
    raft((r) => r.replication.followers.flatMap((x): Sample[] => {
      const v = f(x);
      return v === undefined ? [] : [[{ follower: x.url }, v]];
    }));
  const topics = (f: (t: TopicMetrics) => number | bigint | undefined) =>
    of((b) => b.topics.flatMap((t): Sample[] => {
      const v = f(t);
      return v === undefined ? [] : [[{ topic_id: String(t.topicID) }, Number(v)]];
    }));
  const snapshots = (f: (s: NonNullable<BrokerMetrics['snapshots']>, kind: 'taken' | 'restored') => number) =>
    of((b) => (b.snapshots ? (['taken', 'restored'] as const).map((kind): Sample => [{ kind }, f(b.snapshots!, kind)]) : []));
  const oneOf = (f: (b: BrokerMetrics) => number | bigint | undefined) => of((b) => {
    const v = f(b);
    return v === undefined ? [] : [[{}, Number(v)]];
  });
  return [
    new PulledGauge('msg_raft_term', 'Current raft term of this node.', [], oneOf((b) => b.term)),
    new PulledGauge('msg_raft_commit_index', 'Highest raft log index this node knows committed (a lagging follower knows less than the leader).', [], oneOf((b) => b.commitIndex)),
    new PulledGauge('msg_raft_applied_index', 'Highest raft log index applied to the topics on this node.', [], oneOf((b) => b.appliedIndex)),
    new PulledGauge('msg_raft_apply_lag_entries', 'Entries this node knows committed but has not applied yet (commit index - applied index).', [], oneOf((b) => Math.max(0, Number(b.commitIndex - b.appliedIndex)))),
    new PulledGauge('msg_raft_role', 'Raft role of this node: 1 for the current role, 0 for the others.', ['role'], raft((r) => {
      const roles: string[] = [...ROLES];
      if (!roles.includes(r.replication.role)) roles.push(r.replication.role);
      return roles.map((role): Sample => [{ role }, role === r.replication.role ? 1 : 0]);
    })),
    new PulledGauge('msg_raft_leader_commit_index', "The leader's commit index: on a follower as last received from the leader, on the leader its own.", [], raft((r) => [[{}, r.replication.leaderCommitIndex]])),
    new PulledGauge('msg_raft_lag_entries', "Entries this node has yet to apply of what the leader committed (leader commit index - applied index).", [], raft((r) => [[{}, r.replication.lagEntries]])),
    new PulledGauge('msg_raft_lag_seconds', "Seconds this node's applied index has been behind the leader's commit index (0 when caught up).", [], raft((r) => [[{}, r.replication.lagSeconds]])),
    new PulledGauge('msg_raft_leader_contact_seconds', 'Seconds since the last message from the leader (0 on the leader; absent before any).', [], raft((r) =>
      r.replication.lastLeaderContactMs === null ? [] : [[{}, r.replication.lastLeaderContactMs / 1000]],
    )),
    new PulledHistogram('msg_raft_log_fsync_duration_seconds', "Latency of the raft log's fsyncs (one per write round of appended entries: the segment, and the directory when files changed).", () => snapshot()?.raft?.stats?.logFsync),
    new PulledHistogram('msg_raft_commit_duration_seconds', 'Leader: time from appending a batch of proposed entries to its commit on a majority.', () => snapshot()?.raft?.stats?.commitLatency),
    new PulledCounter('msg_raft_elections_started_total', 'Elections this node started as a candidate (pre-votes not counted).', [], stats((s) => s.electionsStarted)),
    new PulledCounter('msg_raft_leader_changes_total', 'Times this node learned of a new leader (itself included).', [], stats((s) => s.leaderChanges)),
    new PulledCounter('msg_raft_snapshots_sent_total', 'Leader: snapshots sent in full to followers that lacked the compacted log.', [], stats((s) => s.snapshotsSent)),
    new PulledCounter('msg_raft_snapshot_sent_bytes_total', 'Leader: bytes of the snapshots sent in full to followers.', [], stats((s) => s.snapshotBytesSent)),
    new PulledHistogram('msg_raft_snapshot_send_duration_seconds', 'Leader: time each snapshot sent in full took, from its first to its last acknowledged chunk.', () => snapshot()?.raft?.stats?.snapshotSendDuration),
    new PulledGauge('msg_raft_follower_match_index', 'Leader: highest raft log index known replicated on each follower.', ['follower'], followers((f) => f.matchIndex)),
    new PulledGauge('msg_raft_follower_lag_entries', 'Leader: committed entries each follower lacks (commit index - match index).', ['follower'], followers((f) => f.lagEntries)),
    new PulledGauge('msg_raft_follower_lag_seconds', 'Leader: seconds since the leader committed the first entry each follower lacks (0 when it lacks none).', ['follower'], followers((f) => f.lagSeconds)),
    new PulledGauge('msg_raft_follower_last_contact_seconds', 'Leader: seconds since each follower last answered (absent until it answered).', ['follower'], followers((f) => (f.lastContactMs === null ? undefined : f.lastContactMs / 1000))),
    new PulledGauge('msg_raft_follower_snapshot_sent_bytes', 'Leader: bytes of the snapshot being sent to each follower acknowledged so far (absent when none is sent).', ['follower'], followers((f) => f.snapshot?.sentBytes)),
    new PulledGauge('msg_raft_follower_snapshot_total_bytes', 'Leader: size of the snapshot being sent to each follower (absent when none is sent).', ['follower'], followers((f) => f.snapshot?.totalBytes)),
    new PulledCounter('msg_broker_applied_messages_total', 'Messages applied to topics on this node since it started.', [], oneOf((b) => b.messagesApplied)),
    new PulledCounter('msg_broker_applied_bytes_total', 'Data bytes of the messages applied to topics on this node since it started.', [], oneOf((b) => b.bytesApplied)),
    new PulledGauge('msg_broker_producers', 'Producers the deduplication table holds (exactly-once publish).', [], oneOf((b) => b.producers?.held)),
    new PulledCounter('msg_broker_producer_duplicates_total', 'Produced messages answered with their original index instead of being written again, since this node started.', [], oneOf((b) => b.producers?.duplicates)),
    new PulledCounter('msg_broker_producer_refused_total', 'Produced messages refused for a sequence gap or a sequence older than the window, since this node started.', [], oneOf((b) => b.producers?.refused)),
    new PulledCounter('msg_broker_producers_forgotten_total', 'Producers dropped from the table (the least recent) to stay within its bound, since this node started.', [], oneOf((b) => b.producers?.forgotten)),
    new PulledHistogram('msg_broker_checkpoint_fsync_duration_seconds', "Latency of the broker's checkpoint fsyncs (topic segments, meta, state folders; the raft log's are msg_raft_log_fsync_duration_seconds).", () => {
      const b = snapshot();
      return b?.checkpointFsync ?? b?.fsync;
    }),
    new PulledCounter('msg_broker_snapshots_total', "Snapshots of the broker's state: taken (streamed for raft) or restored (installed from the leader, or on open).", ['kind'], snapshots((s, kind) => s[kind])),
    new PulledCounter('msg_broker_snapshot_bytes_total', 'Bytes of the snapshots taken or restored.', ['kind'], snapshots((s, kind) => s[`${kind}Bytes`])),
    new PulledCounter('msg_broker_snapshot_duration_seconds_total', 'Seconds spent streaming snapshots taken, or restoring snapshots.', ['kind'], snapshots((s, kind) => s[`${kind}Seconds`])),
    new PulledGauge('msg_topic_last_index', 'Index of the last message stored in a topic.', ['topic_id'], topics((t) => t.lastIndex)),
    new PulledGauge('msg_topic_bytes', 'Bytes a topic takes on disk (all its retained segments).', ['topic_id'], topics((t) => t.bytes)),
    new PulledCounter('msg_topic_messages_applied_total', 'Messages applied to a topic on this node since it started (its publish rate: rate() of it).', ['topic_id'], topics((t) => t.messagesApplied)),
    new PulledCounter('msg_topic_bytes_applied_total', 'Data bytes of the messages applied to a topic on this node since it started.', ['topic_id'], topics((t) => t.bytesApplied)),
    new PulledGauge('msg_topic_open_streams', 'Readers of a topic open now on this node (stream GETs and one-shot reads).', ['topic_id'], topics((t) => t.openStreams)),
    new PulledGauge('msg_topic_reader_index', 'Index each reader of a topic last reported (heartbeat); reader="" is the anonymous report.', ['topic_id', 'reader'], of((b) =>
      b.topics.flatMap((t) => (t.readers ?? []).map((r): Sample => [{ topic_id: String(t.topicID), reader: r.id }, Number(r.index)])),
    )),
  ];
}
