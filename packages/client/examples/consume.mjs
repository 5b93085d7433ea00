import { Client } from '@msg/client';

const [url = 'http://127.0.0.1:8086', topic = '7', from = '1', limit = '100'] = process.argv.slice(2);
const client = new Client({
  urls: [url],
  conn: {
    heartbeatIntervalMs: 1000, // report conn.index to the leader every second
    reconnect: { initialMs: 1000 }, // wait between reconnects (the original's 1 s)
  },
});
await client.open();
// Ctrl-C closes the client, which ends the loop below cleanly.
process.once('SIGINT', () => void client.close());

const conn = client.conn(BigInt(topic));
conn.open(BigInt(from)); // streaming: waits for new messages
let count = 0;
for await (const message of conn) {
  // The loop's pace is the stream's pace: a slow body slows the broker's sending.
  console.log(`${message.index}: ${new TextDecoder().decode(message.data)}`);
  if (++count === Number(limit)) break;
}
if (client.opened) {
  await conn.heartbeat(); // the last index this reader has
  await client.close(); // closes the conn too
}
