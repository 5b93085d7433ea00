import { afterEach } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import { listen } from '@msg/test-utils';
import { BrokerError, encodeMessage } from '@msg/wire';
import { createHandler, type Handler, type HandlerBroker, type HandlerOptions, type PublishMessage, type TopicFrames } from '../src/index.js';

/** A plain-object broker: an in-memory log with topics, push notification and reader accounting. */
export interface FakeBroker extends HandlerBroker {
  leader: boolean;
  leader_: string | undefined;
  /** Every message published, with its index. */
  log: { index: bigint; message: PublishMessage }[];
  heartbeats: { topicID: bigint; index: bigint; readerId?: string }[];
  /** Readers opened / closed so far. */
  opened: number;
  closed: number;
  /** Topic frames by topic id (encoded, index order). */
  topics: Map<bigint, { index: bigint; frame: Uint8Array }[]>;
  /** Appends a message directly (as if committed through raft) and wakes streaming readers. */
  append(message: PublishMessage): bigint;
}

/** Builds a fake broker; `overrides` replace any method. */
export function fakeBroker(overrides: Partial<HandlerBroker> = {}): FakeBroker {
  let nextIndex = 1n;
  const waiters = new Set<() => void>();
  const broker: FakeBroker = {
    leader: true,
    leader_: 'http://leader.example:8086',
    log: [],
    heartbeats: [],
    opened: 0,
    closed: 0,
    topics: new Map(),
    append(message) {
      const index = nextIndex++;
      broker.log.push({ index, message });
      const frames = broker.topics.get(message.topicID) ?? [];
      frames.push({ index, frame: encodeMessage({ ...message, index }) });
      broker.topics.set(message.topicID, frames);
      for (const wake of [...waiters]) wake();
      return index;
    },
    isLeader: () => broker.leader,
    leaderURL: () => broker.leader_,
    urls: () => ['http://127.0.0.1:1', 'http://127.0.0.1:2'],
    publish: async (message) => broker.append(message),
    publishBatch: async (messages) => {
      const first = nextIndex;
      for (const m of messages) broker.append(m);
      return { firstIndex: first, lastIndex: nextIndex - 1n };
    },
    heartbeat: async (topicID, index, _signal, readerId) => {
      broker.heartbeats.push(readerId === undefined ? { topicID, index } : { topicID, index, readerId });
    },
    openTopicReader: (topicID, fromIndex, { streaming }) => {
      broker.opened++;
      let done = false;
      let wake: (() => void) | undefined;
      const frames: TopicFrames = {
        async *[Symbol.asyncIterator]() {
          let position = 0;
          while (!done) {
            const list = broker.topics.get(topicID) ?? [];
            while (position < list.length && list[position]!.index < fromIndex) position++;
            if (position < list.length) {
              yield list[position++]!.frame;
              continue;
            }
            if (!streaming) return;
            await new Promise<void>((resolve) => {
              wake = resolve;
              waiters.add(resolve);
            });
            if (wake) waiters.delete(wake);
          }
        },
        close: () => {
          if (done) throw new Error('reader closed twice');
          done = true;
          broker.closed++;
          wake?.();
        },
      };
      return frames;
    },
    ready: () => ({ ready: true }),
    status: () => ({ members: [{ id: 1n, url: 'http://127.0.0.1:1' }], topics: [...broker.topics.keys()] }),
    metrics: () => ({
      term: 3n,
      commitIndex: nextIndex - 1n,
      appliedIndex: nextIndex - 1n,
      topics: [...broker.topics].map(([topicID, list]) => ({
        topicID,
        lastIndex: list.at(-1)?.index ?? 0n,
        bytes: list.reduce((n, f) => n + f.frame.byteLength, 0),
      })),
      checkpointFsync: { buckets: [{ le: 0.001, count: 2 }, { le: 0.01, count: 3 }], count: 3, sumSeconds: 0.012 },
    }),
    ...overrides,
  };
  return broker;
}

/** A handler on a real loopback server; `close()` stops both. */
export interface TestServer {
  url: string;
  port: number;
  server: Server;
  handler: Handler;
  broker: FakeBroker;
  errors: unknown[];
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

const running = new Set<TestServer>();
// Importing this module from a test file stops its servers after each test.
afterEach(async () => {
  const servers = [...running];
  running.clear();
  await Promise.all(servers.map((s) => s.close()));
});

/** Starts `createHandler(broker, options)` on 127.0.0.1 port 0. */
export async function startServer(broker: FakeBroker = fakeBroker(), options: HandlerOptions = {}): Promise<TestServer> {
  const errors: unknown[] = [];
  const handler = createHandler(broker, { onInternalError: (error) => errors.push(error), ...options });
  // As a broker-server does: the handler's limits give the server its timeouts and count its connections.
  const server = createServer(handler.limits.serverOptions, handler.listener);
  handler.limits.attach(server);
  const { url, port, close } = await listen(server);
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    handler.close();
    await close();
  };
  const started: TestServer = { url, port, server, handler, broker, errors, close: stop, [Symbol.asyncDispose]: stop };
  running.add(started);
  return started;
}

/** A BrokerError for overrides. */
export function fail(code: ConstructorParameters<typeof BrokerError>[0], details?: { firstIndex?: bigint; leaderURL?: string }): BrokerError {
  return new BrokerError(code, details ? { details } : {});
}
