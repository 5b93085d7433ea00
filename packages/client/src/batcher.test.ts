import { describe, expect, it } from '@jest/globals';
import { FakeClock } from '@msg/test-utils';
import { Batcher, type BatcherLimits, type PublishOutcome } from './batcher.js';
import type { PublishMessage } from './publish-message.js';

const limits: BatcherLimits = { lingerMs: 0, maxMessages: 1000, maxBytes: 1 << 20, maxInFlight: 1 };

/** A batch handed to the fake sender, answered when the test says so. */
interface Sent {
  messages: PublishMessage[];
  answer(): void;
  fail(error: unknown): void;
}

/** A batcher over a fake clock and a fake sender that records every batch and answers on demand (index = 1 + position overall). */
function setup(overrides: Partial<BatcherLimits> = {}): { batcher: Batcher; add: Batcher['add']; clock: FakeClock; sent: Sent[] } {
  const clock = new FakeClock();
  const sent: Sent[] = [];
  let next = 1n;
  const batcher = new Batcher({ ...limits, ...overrides }, clock, (messages) => {
    return new Promise<PublishOutcome[]>((resolve, reject) => {
      sent.push({
        messages,
        answer: () => resolve(messages.map(() => ({ ok: true, index: next++ }))),
        fail: reject,
      });
    });
  });
  // Every outcome is awaited by the test that cares; the others must not be unhandled rejections.
  const add: Batcher['add'] = (...args) => {
    const outcome = batcher.add(...args);
    outcome.catch(() => undefined);
    return outcome;
  };
  return { batcher, add, clock, sent };
}

const message = (n: number, size = 1): PublishMessage => ({ type: 1, topicID: BigInt(n), data: new Uint8Array(size).fill(n) });
const topics = (batch: Sent | undefined): bigint[] => (batch?.messages ?? []).map((m) => m.topicID);
/** Lets pending promise callbacks (not timers: the clock is fake) run. */
const settle = async (): Promise<void> => {
  for (let i = 0; i < 10; i++) await Promise.resolve();
};

describe('Batcher', () => {
  it('sends a lone message at once, without a timer, when nothing is in flight', async () => {
    const { add, clock, sent } = setup();
    const index = add(message(1), 23);
    expect(clock.pending).toBe(0);
    await settle();
    expect(sent.map(topics)).toEqual([[1n]]);
    sent[0]!.answer();
    expect(await index).toBe(1n);
    expect(clock.pending).toBe(0);
  });

  it('sends the messages added in one synchronous run as one batch', async () => {
    const { add, sent } = setup();
    const indexes = [1, 2, 3].map((n) => add(message(n), 23));
    await settle();
    expect(sent.map(topics)).toEqual([[1n, 2n, 3n]]);
    sent[0]!.answer();
    expect(await Promise.all(indexes)).toEqual([1n, 2n, 3n]);
  });

  it('gathers what is added while a batch is in flight and sends it as one batch when that one returns', async () => {
    const { batcher, add, sent } = setup();
    const first = add(message(1), 23);
    await settle();
    const later = [2, 3, 4].map((n) => add(message(n), 23));
    await settle();
    expect(sent).toHaveLength(1);
    expect(batcher.queued).toBe(3);
    sent[0]!.answer();
    expect(await first).toBe(1n);
    await settle();
    expect(sent.map(topics)).toEqual([[1n], [2n, 3n, 4n]]);
    sent[1]!.answer();
    expect(await Promise.all(later)).toEqual([2n, 3n, 4n]);
  });

  it('sends the next batch when one fails, and fails only the callers of the failed one', async () => {
    const { add, sent } = setup();
    const first = add(message(1), 23);
    await settle();
    const second = add(message(2), 23);
    const failure = new Error('refused');
    sent[0]!.fail(failure);
    await expect(first).rejects.toBe(failure);
    await settle();
    expect(sent.map(topics)).toEqual([[1n], [2n]]);
    sent[1]!.answer();
    expect(await second).toBe(1n);
  });

  it('keeps gathered batches within maxMessages and maxBytes', async () => {
    const { add, sent } = setup({ maxMessages: 3, maxBytes: 100 });
    const first = add(message(0), 10);
    await settle();
    // 7 messages of 10 bytes, then 40-byte ones: at most 3 messages and 100 bytes a batch.
    const small = [1, 2, 3, 4, 5, 6, 7].map((n) => add(message(n), 10));
    const large = [8, 9, 10].map((n) => add(message(n), 40));
    // A message larger than maxBytes still goes, alone.
    const huge = add(message(11), 500);
    sent[0]!.answer();
    await first;
    for (let i = 1; i < 6; i++) {
      await settle();
      expect(sent).toHaveLength(i + 1);
      sent[i]!.answer();
    }
    expect(sent.map(topics)).toEqual([[0n], [1n, 2n, 3n], [4n, 5n, 6n], [7n, 8n, 9n], [10n], [11n]]);
    await Promise.all([...small, ...large, huge]);
  });

  it('sends a full batch at once even while another is in flight when maxInFlight allows it', async () => {
    const { batcher, add, sent } = setup({ maxMessages: 2, maxInFlight: 2 });
    void add(message(1), 1);
    await settle();
    void add(message(2), 1);
    await settle();
    expect(sent.map(topics)).toEqual([[1n], [2n]]);
    void add(message(3), 1);
    void add(message(4), 1);
    void add(message(5), 1);
    await settle();
    expect(sent).toHaveLength(2);
    sent[0]!.answer();
    await settle();
    expect(sent.map(topics)).toEqual([[1n], [2n], [3n, 4n]]);
    for (const s of sent.slice(1)) s.answer();
    await settle();
    expect(sent.map(topics).at(-1)).toEqual([5n]);
    sent.at(-1)!.answer();
    await batcher.close(() => new Error('closed'));
  });

  it('with lingerMs waits for the timer before sending a lone message', async () => {
    const { add, clock, sent } = setup({ lingerMs: 5 });
    const index = add(message(1), 23);
    await settle();
    expect(sent).toHaveLength(0);
    expect(clock.pending).toBe(1);
    void add(message(2), 23);
    clock.advance(4);
    await settle();
    expect(sent).toHaveLength(0);
    clock.advance(1);
    await settle();
    expect(sent.map(topics)).toEqual([[1n, 2n]]);
    sent[0]!.answer();
    expect(await index).toBe(1n);
  });

  it('with lingerMs sends a full batch without waiting for the timer', async () => {
    const { add, clock, sent } = setup({ lingerMs: 1000, maxMessages: 2 });
    void add(message(1), 1);
    void add(message(2), 1);
    await settle();
    expect(sent.map(topics)).toEqual([[1n, 2n]]);
    expect(clock.pending).toBe(0);
    sent[0]!.answer();
  });

  it('close fails what is queued, refuses new messages and waits for the batch in flight', async () => {
    const { batcher, add, sent } = setup();
    const inFlight = add(message(1), 1);
    await settle();
    const queued = add(message(2), 1);
    const closing = batcher.close(() => new Error('closed'));
    await expect(queued).rejects.toThrow('closed');
    await expect(add(message(3), 1)).rejects.toThrow('closed');
    sent[0]!.answer();
    await closing;
    expect(await inFlight).toBe(1n);
    expect(sent).toHaveLength(1);
  });

  it('drops a queued message whose signal aborts before it is sent', async () => {
    const { add, sent } = setup();
    const first = add(message(1), 1);
    await settle();
    const controller = new AbortController();
    const dropped = add(message(2), 1, controller.signal);
    const kept = add(message(3), 1);
    controller.abort();
    await expect(dropped).rejects.toMatchObject({ code: 'ABORTED' });
    sent[0]!.answer();
    await first;
    await settle();
    expect(sent.map(topics)).toEqual([[1n], [3n]]);
    sent[1]!.answer();
    expect(await kept).toBe(2n);
  });
});
