import type { Broker } from '@msg/broker';
import type { HandlerBroker, IndexRange, PublishMessage, RaftListener, TopicFrames } from '@msg/http';
import { BrokerError } from '@msg/wire';

/** The part of `@msg/broker`'s `Broker` the adapter serves (a `Broker` satisfies it). */
export type AdapterBroker = Pick<
  Broker,
  'isLeader' | 'leaderURL' | 'urls' | 'publish' | 'publishBatch' | 'heartbeat' | 'openTopicReader' | 'ready' | 'status' | 'metrics' | 'producerNext'
>;

/** What the adapter needs of the raft node besides what the broker already reads through its log. */
export interface AdapterRaft {
  /** Voters and learners of the latest configuration. */
  config(): { voters: readonly string[]; learners: readonly string[] };
  /** What the node is doing (`leader`, `follower`, ...). */
  readonly state: string;
}

/**
 * @msg/http's `HandlerBroker` served by a `Broker`, plus what a graceful
 * shutdown needs: {@link BrokerAdapter.stop} refuses new writes with
 * `BROKER_CLOSED` (503), {@link BrokerAdapter.idle} waits for the writes in
 * flight (publish, batch, heartbeat) to settle.
 */
export interface BrokerAdapter extends HandlerBroker {
  /** Writes (publishes, batches, heartbeats) accepted and not yet settled. */
  readonly inFlight: number;
  /** From now on, new writes reject with `BROKER_CLOSED`; writes in flight go on. Idempotent. */
  stop(): void;
  /** Resolves once no write is in flight (at once when none is). */
  idle(): Promise<void>;
}

/**
 * Maps a `Broker` (and its raft node) onto @msg/http's `HandlerBroker`: the
 * broker's methods as they are (abort signals and the optional reader id of
 * heartbeats passed on), except `status` (adds the raft state and the
 * configuration; never the cluster id, which is in no public answer).
 */
export function createBrokerAdapter(broker: AdapterBroker, raft: AdapterRaft, raftHandler?: RaftListener): BrokerAdapter {
  let stopped = false;
  let inFlight = 0;
  let waiters: (() => void)[] = [];

  const track = async <T>(write: () => Promise<T>): Promise<T> => {
    if (stopped) throw new BrokerError('BROKER_CLOSED');
    inFlight++;
    try {
      return await write();
    } finally {
      inFlight--;
      if (inFlight === 0) {
        const done = waiters;
        waiters = [];
        for (const resolve of done) resolve();
      }
    }
  };

  return {
    get inFlight() {
      return inFlight;
    },
    stop() {
      stopped = true;
    },
    idle() {
      return inFlight === 0 ? Promise.resolve() : new Promise<void>((resolve) => waiters.push(resolve));
    },
    isLeader: () => broker.isLeader(),
    leaderURL: () => broker.leaderURL(),
    urls: () => broker.urls(),
    publish: (message: PublishMessage, signal?: AbortSignal) => track(() => broker.publish(message, signal)),
    publishBatch: (messages: readonly PublishMessage[], signal?: AbortSignal): Promise<IndexRange> => track(() => broker.publishBatch(messages, signal)),
    heartbeat: (topicID: bigint, index: bigint, signal?: AbortSignal, readerId?: string) =>
      track(() => broker.heartbeat(topicID, index, signal, readerId)),
    openTopicReader: (topicID: bigint, fromIndex: bigint, options: { streaming: boolean }): Promise<TopicFrames> =>
      broker.openTopicReader(topicID, fromIndex, options),
    ready: () => broker.ready(),
    producerNext: (id: string) => broker.producerNext(id),
    status: () => ({
      ...broker.status(),
      raftState: raft.state,
      config: raft.config(),
    }),
    metrics: () => broker.metrics(),
    ...(raftHandler === undefined ? {} : { raftHandler }),
  };
}
