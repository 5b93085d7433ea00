// Exactly-once publish: node examples/exactly-once.mjs http://127.0.0.1:8086
import { Client } from '@msg/client';

const [url = 'http://127.0.0.1:8086'] = process.argv.slice(2);

// A stable producer id, for a service that restarts: before its first publish the client asks the
// leader where this producer's sequence stands, and continues from there. Leave producerId out and each
// Client gets a random one; producerId: false sends none (at-least-once, as the original's client).
const client = new Client({ urls: [url], producerId: 'billing-1', batching: { enabled: false } });
await client.open();
try {
  // If the answer is lost (a reset, a timeout, a leader that dies after the commit), the client sends the
  // same request again with the same sequence, and the broker answers with the index it committed first.
  const index = await client.publish({ type: 1, topicID: 9n, data: new TextEncoder().encode('invoice 1001 paid') });
  console.log(`invoice 1001 paid: committed once, at index ${index}`);
} finally {
  await client.close();
}
