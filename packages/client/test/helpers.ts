// Package-local test helpers: fake brokers and clients that are closed after
// each test, with fast retries so failure paths run in milliseconds.
import { afterEach, expect } from '@jest/globals';
import { Client, type ClientOptions } from '../src/index.js';
import { startFakeBroker, type FakeBroker, type FakeBrokerKnobs, type FakeStore } from './fake-broker.js';

const cleanups: (() => Promise<unknown>)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

/** Runs `fn` after the current test. */
export function defer(fn: () => Promise<unknown>): void {
  cleanups.push(fn);
}

/** A fake broker closed after the test. */
export async function broker(knobs: Partial<FakeBrokerKnobs> = {}, store?: FakeStore): Promise<FakeBroker> {
  const b = await startFakeBroker(knobs, store);
  defer(() => b.close());
  return b;
}

/** Options that make retries and reconnects fast and the ping loop off. */
export function fastOptions(options: ClientOptions = {}): ClientOptions {
  return {
    pingIntervalMs: 0,
    retries: 3,
    backoff: { initialMs: 1, maxMs: 10, jitter: 0 },
    requestTimeoutMs: 5000,
    random: () => 0,
    ...options,
    conn: { reconnect: { initialMs: 5, maxMs: 20, multiplier: 2, jitter: 0 }, ...options.conn },
  };
}

/** An opened client, closed after the test. */
export async function openClient(options: ClientOptions = {}): Promise<Client> {
  const client = new Client(fastOptions(options));
  await client.open();
  defer(() => client[Symbol.asyncDispose]());
  return client;
}

/** Asserts that `promise` rejects with an error of the given class name and code. */
export async function expectCode(promise: Promise<unknown> | (() => unknown), name: 'BrokerError' | 'ClientError', code: string): Promise<Error> {
  let error: unknown;
  try {
    await (typeof promise === 'function' ? promise() : promise);
  } catch (caught) {
    error = caught;
  }
  expect(error).toBeInstanceOf(Error);
  expect({ name: (error as Error).name, code: (error as { code?: string }).code }).toEqual({ name, code });
  return error as Error;
}

/** UTF-8 bytes of `text`. */
export function bytes(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

/** `text` of UTF-8 bytes. */
export function text(data: Uint8Array): string {
  return new TextDecoder().decode(data);
}
