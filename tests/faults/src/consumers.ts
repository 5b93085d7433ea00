import { Client } from '@msg/client';

/** One message as a consumer saw it. */
export interface Seen {
  readonly index: bigint;
  readonly data: Buffer;
}

/** Options of {@link Consumer}. */
export interface ConsumerOptions {
  urls: readonly string[];
  topicID: bigint;
  /** Its name in reports. */
  name: string;
}

/**
 * A `Conn` consumer, the way an application uses one: a streaming conn from
 * index 0 that reconnects on its own (to the next URL, resuming after the
 * last index it delivered) and records everything it is given.
 */
export class Consumer {
  readonly name: string;
  readonly topicID: bigint;
  readonly seen: Seen[] = [];
  /** The error that ended the loop, if one did. */
  error: unknown;
  readonly #client: Client;
  #loop: Promise<void> | undefined;

  constructor(options: ConsumerOptions) {
    this.name = options.name;
    this.topicID = options.topicID;
    this.#client = new Client({
      urls: [...options.urls],
      pingIntervalMs: 0,
      requestTimeoutMs: 5000,
      // A stream from a paused or cut-off node sends nothing: move on after 3 s.
      conn: { reconnect: { initialMs: 200, maxMs: 1000 }, idleTimeoutMs: 3000, responseTimeoutMs: 5000 },
    });
  }

  /** The last index seen (-1n before the first). */
  get lastIndex(): bigint {
    return this.seen.at(-1)?.index ?? -1n;
  }

  /** Opens the client and starts streaming the topic from index 0. */
  async start(): Promise<void> {
    await this.#client.open();
    const conn = this.#client.conn(this.topicID);
    conn.open(0n, { streaming: true });
    this.#loop = (async () => {
      try {
        for await (const message of conn) this.seen.push({ index: message.index, data: Buffer.from(message.data) });
      } catch (error) {
        this.error = error;
      }
    })();
  }

  /** Closes the conn (ends the loop cleanly) and the client. Safe to call twice. */
  async stop(): Promise<void> {
    if (this.#client.opened) await this.#client.close();
    await this.#loop;
  }
}
