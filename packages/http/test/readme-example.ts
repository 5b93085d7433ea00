import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeMessages, encodeMessage, type Message } from '@msg/wire';
import { createHandler, type HandlerBroker } from '@msg/http';

/** Serves an in-memory, single-node "broker", publishes two messages and reads them back. */
export async function example(): Promise<{ indexes: string[]; messages: Message[]; ping: string }> {
  const log: Message[] = [];
  const broker: HandlerBroker = {
    isLeader: () => true,
    leaderURL: () => undefined,
    urls: () => ['http://127.0.0.1:8086'],
    publish: async (m) => {
      log.push({ ...m, index: BigInt(log.length + 1) });
      return BigInt(log.length);
    },
    publishBatch: async (ms) => {
      const firstIndex = BigInt(log.length + 1);
      for (const m of ms) log.push({ ...m, index: BigInt(log.length + 1) });
      return { firstIndex, lastIndex: BigInt(log.length) };
    },
    heartbeat: async () => undefined,
    openTopicReader: (topicID, fromIndex) => ({
      async *[Symbol.asyncIterator]() {
        for (const m of log) if (m.topicID === topicID && m.index >= fromIndex) yield encodeMessage(m);
      },
      close: () => undefined,
    }),
    ready: () => ({ ready: true }),
    status: () => ({}),
    metrics: () => ({ term: 1n, commitIndex: BigInt(log.length), appliedIndex: BigInt(log.length), topics: [] }),
  };

  const handler = createHandler(broker);
  const server = createServer(handler.listener);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    const indexes: string[] = [];
    for (const text of ['hello', 'world']) {
      const res = await fetch(`${base}/messaging/messages?type=1&topicID=7`, { method: 'POST', body: text });
      indexes.push(res.headers.get('X-Broker-Index') ?? '');
    }
    const stream = await fetch(`${base}/messaging/messages?topicID=7&index=0`);
    const messages: Message[] = [];
    for await (const m of decodeMessages([new Uint8Array(await stream.arrayBuffer())])) messages.push(m);
    const ping = await (await fetch(`${base}/messaging/ping`, { method: 'POST' })).text();
    return { indexes, messages, ping };
  } finally {
    handler.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
