import { Client, isBrokerError, isClientError } from '@msg/client';

const url = process.argv[2] ?? 'http://127.0.0.1:8086';
const topicID = 9n;
const client = new Client({ urls: [url] });
await client.open();
try {
  // Every error has a stable `code`: branch on it, never on the message.
  try {
    await client.publish({ type: 1, topicID, data: new Uint8Array(0) });
  } catch (error) {
    if (!isBrokerError(error, 'MESSAGE_DATA_REQUIRED')) throw error;
    console.log(`refused: ${error.code} (${error.message})`);
  }

  // A call can be cancelled: it rejects with ClientError ABORTED.
  try {
    await client.publish({ type: 1, topicID, data: new Uint8Array([1]) }, { signal: AbortSignal.abort() });
  } catch (error) {
    if (!isClientError(error, 'ABORTED')) throw error;
    console.log(`cancelled: ${error.code}`);
  }

  // A reader that fell behind retention gets SEGMENT_RECLAIMED with the first
  // index still stored; here it skips ahead, another application might stop.
  let from = 0n;
  for (let attempt = 0; attempt < 3; attempt++) {
    const conn = client.conn(topicID);
    conn.open(from, { streaming: false });
    try {
      for await (const message of conn) console.log(`read index ${message.index}`);
      break;
    } catch (error) {
      if (!isBrokerError(error, 'SEGMENT_RECLAIMED') || error.firstIndex === undefined) throw error;
      console.log(`reclaimed: resuming at index ${error.firstIndex}`);
      from = error.firstIndex;
    } finally {
      await conn.close();
    }
  }
} finally {
  await client.close();
}

// After close() every call is refused with BrokerError CLIENT_CLOSED.
try {
  await client.publish({ type: 1, topicID, data: new Uint8Array([1]) });
} catch (error) {
  if (!isBrokerError(error, 'CLIENT_CLOSED')) throw error;
  console.log(`after close: ${error.code}`);
}
