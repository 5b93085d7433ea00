import { join } from 'node:path';
import { Topic, type RecoveryEvent } from '../src/index.js';

/**
 * An embedded append-log: an order journal in `dir`. Appends five events,
 * tails them with a streaming reader and replays the log from the start.
 */
export async function journal(dir: string): Promise<{ replay: string[]; tailed: bigint[]; recovered: RecoveryEvent[] }> {
  const recovered: RecoveryEvent[] = [];
  const topic = new Topic(join(dir, 'orders'), {
    maxSegmentSize: 1024 * 1024, // roll at 1 MiB (default 10 MiB)
    sync: 'always', // append() resolves once the data is fsynced (the default)
    onRecovery: (event) => recovered.push(event), // a torn tail truncated on open, ...
  });
  await topic.open();
  const encoder = new TextEncoder();
  const event = (index: bigint, text: string) => ({ type: 1, topicID: 1n, index, data: encoder.encode(text) });

  // Tail the journal: a streaming reader is woken by each append, at once.
  const tail = topic.reader(topic.lastIndex + 1n, { streaming: true });
  const tailed: bigint[] = [];
  const tailing = (async () => {
    for await (const message of tail) tailed.push(message.index);
  })();

  // Indexes must increase. Concurrent appends share one write and one fsync.
  let next = topic.lastIndex;
  await Promise.all(['created', 'paid', 'packed'].map((text) => topic.append(event(++next, text))));
  await topic.appendBatch([event(++next, 'shipped'), event(++next, 'delivered')]);

  // Replay from the start (a non-streaming reader ends at the current end).
  const decoder = new TextDecoder();
  const replay: string[] = [];
  for await (const message of topic.reader(0n)) replay.push(`${message.index}:${decoder.decode(message.data)}`);

  // Keep the journal under 100 MiB and 30 days: whole old segments are deleted.
  await topic.enforceRetention({ maxBytes: 100 * 1024 * 1024, maxAgeMs: 30 * 24 * 3600 * 1000 });

  await topic.close(); // also ends the tail reader
  await tailing;
  return { replay, tailed, recovered };
}
