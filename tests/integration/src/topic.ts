import { MessageDecoder, type Message } from '@msg/wire';
import { waitFor } from '@msg/test-utils';
import { request } from './http-request.js';

/** A topic as one broker serves it. */
export interface TopicContents {
  /** The body bytes of the non-streaming GET. */
  bytes: Buffer;
  /** Those bytes decoded. */
  messages: Message[];
}

/** Reads `topicID` from `url` with a non-streaming `GET /messaging/messages` from index `from` (default 0). */
export async function readTopic(url: string, topicID: bigint, from = 0n): Promise<TopicContents> {
  const answer = await request(`${url}/messaging/messages?topicID=${topicID}&index=${from}`, { timeoutMs: 20_000 });
  if (answer.status !== 200) throw new Error(`GET topic ${topicID} from ${url}: ${answer.status} ${answer.body.toString()}`);
  const decoder = new MessageDecoder();
  const messages = decoder.push(answer.body);
  decoder.end();
  return { bytes: answer.body, messages };
}

/** Waits until the broker at `url` serves `topicID` up to at least `index`; resolves with the contents then. */
export async function waitForTopicIndex(url: string, topicID: bigint, index: bigint, timeoutMs = 30_000): Promise<TopicContents> {
  return waitFor(
    async () => {
      const contents = await readTopic(url, topicID);
      const last = contents.messages.at(-1)?.index ?? 0n;
      return last >= index ? contents : undefined;
    },
    { timeoutMs, intervalMs: 100, message: `${url} serving topic ${topicID} up to index ${index}` },
  );
}

/** The message data as text. */
export function text(message: Message): string {
  return Buffer.from(message.data).toString();
}

/**
 * Waits until every broker in `urls` serves `topicID` up to at least `index`
 * and all of them serve the very same bytes (a message committed after
 * `index` may still be on its way to some), then resolves with those
 * contents, in the order of `urls`.
 */
export async function waitForSameTopic(urls: readonly string[], topicID: bigint, index: bigint, timeoutMs = 30_000): Promise<TopicContents[]> {
  return waitFor(
    async () => {
      const all = await Promise.all(urls.map((url) => readTopic(url, topicID)));
      if (all.some((c) => (c.messages.at(-1)?.index ?? 0n) < index)) return undefined;
      return all.every((c) => c.bytes.equals(all[0]!.bytes)) ? all : undefined;
    },
    { timeoutMs, intervalMs: 100, message: `the same topic ${topicID} up to index ${index} on ${urls.join(' ')}` },
  );
}
