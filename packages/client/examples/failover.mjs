import { Client } from '@msg/client';

// Every broker of the cluster you know of: the client finds the leader itself.
const urls = process.argv.slice(2);
const client = new Client({
  urls,
  // Read by open() (created from `urls` if missing); rewritten atomically
  // (temp file + rename) whenever the leader's ping reports other URLs.
  configPath: 'msg-client.json',
  retries: 5, // per call: after a refused connection, a timeout, `not leader` or a 5xx
  backoff: { initialMs: 50, maxMs: 1000, multiplier: 2, jitter: 0.2 },
  requestTimeoutMs: 5000, // per HTTP request
  pingIntervalMs: 1000, // the background ping that learns the cluster's URLs
});
await client.open();
try {
  const index = await client.publish({ type: 1, topicID: 1n, data: new TextEncoder().encode('failover') });
  console.log(`published at index ${index} on the leader ${client.url?.origin}`);
  const cluster = await client.ping();
  console.log(`cluster: ${cluster.map((url) => url.origin).join(' ')}`);
} finally {
  await client.close();
}
