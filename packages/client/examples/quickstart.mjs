import { Client } from '@msg/client';

const url = process.argv[2] ?? 'http://127.0.0.1:8086';
const topicID = 7n;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

const client = new Client({ urls: [url] });
await client.open();
try {
  // Publish: each call resolves with the index the broker committed it at.
  const first = await client.publish({ type: 1, topicID, data: encoder.encode('hello') });
  // A batch: one request, consecutive indexes, in order.
  const [, last] = await client.publishBatch([
    { type: 1, topicID, data: encoder.encode('brave') },
    { type: 1, topicID, data: encoder.encode('world') },
  ]);

  // Consume: stream the topic from `first`, in index order.
  const conn = client.conn(topicID);
  conn.open(first, { streaming: true });
  const words = [];
  for await (const message of conn) {
    words.push(decoder.decode(message.data));
    if (message.index === last) break;
  }
  // Heartbeat: tell the broker this reader has everything up to conn.index.
  await conn.heartbeat();
  await conn.close();
  console.log(`read ${words.length} messages: ${words.join(' ')}`);
} finally {
  await client.close();
}
