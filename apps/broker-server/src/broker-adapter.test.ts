import { describe, expect, it } from '@jest/globals';
import { BrokerError, isBrokerError } from '@msg/wire';
import { createBrokerAdapter, type AdapterBroker, type AdapterRaft } from './broker-adapter.js';

function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

const raft: AdapterRaft & { clusterId: () => string } = { clusterId: () => 'c1', config: () => ({ voters: ['http://a'], learners: [] }), state: 'leader' };

/** A broker whose publish waits for the test to release it. */
function fakeBroker() {
  const pending: ((index: bigint) => void)[] = [];
  const heartbeats: unknown[][] = [];
  const broker = {
    isLeader: () => true,
    leaderURL: () => 'http://a',
    urls: () => ['http://a'],
    publish: () => {
      const d = deferred<bigint>();
      pending.push(d.resolve);
      return d.promise;
    },
    publishBatch: () => Promise.resolve({ firstIndex: 5n, lastIndex: 6n }),
    heartbeat: (...args: unknown[]) => {
      heartbeats.push(args);
      return Promise.resolve();
    },
    status: () => ({ term: 3 }),
  };
  return { broker: broker as unknown as AdapterBroker, pending, heartbeats };
}

describe('createBrokerAdapter', () => {
  it('passes publishes through and reports them in flight until they settle', async () => {
    const { broker, pending } = fakeBroker();
    const adapter = createBrokerAdapter(broker, raft);
    const first = adapter.publish({ type: 1, topicID: 7n, data: new Uint8Array([1]) });
    expect(adapter.inFlight).toBe(1);
    let idle = false;
    const waiting = adapter.idle().then(() => (idle = true));
    await Promise.resolve();
    expect(idle).toBe(false);
    pending[0]!(42n);
    await expect(first).resolves.toBe(42n);
    await waiting;
    expect(adapter.inFlight).toBe(0);
  });

  it('refuses new writes with BROKER_CLOSED after stop() and lets writes in flight finish', async () => {
    const { broker, pending } = fakeBroker();
    const adapter = createBrokerAdapter(broker, raft);
    const inFlight = adapter.publish({ type: 1, topicID: 7n, data: new Uint8Array([1]) });
    adapter.stop();
    for (const write of [
      adapter.publish({ type: 1, topicID: 7n, data: new Uint8Array([1]) }),
      adapter.publishBatch([{ type: 1, topicID: 7n, data: new Uint8Array([1]) }]),
      adapter.heartbeat(7n, 1n),
    ]) {
      const error: unknown = await write.catch((e: unknown) => e);
      expect(isBrokerError(error, 'BROKER_CLOSED')).toBe(true);
    }
    pending[0]!(9n);
    await expect(inFlight).resolves.toBe(9n);
    await adapter.idle();
  });

  it('settles idle() even when a write in flight fails', async () => {
    const broker = { publish: () => Promise.reject(new BrokerError('NO_LEADER')) } as unknown as AdapterBroker;
    const adapter = createBrokerAdapter(broker, raft);
    await expect(adapter.publish({ type: 1, topicID: 1n, data: new Uint8Array([1]) })).rejects.toMatchObject({ code: 'NO_LEADER' });
    expect(adapter.inFlight).toBe(0);
    await adapter.idle();
  });

  it('passes a heartbeat\'s abort signal and reader id on to the broker', async () => {
    const { broker, heartbeats } = fakeBroker();
    const adapter = createBrokerAdapter(broker, raft);
    const signal = new AbortController().signal;
    await adapter.heartbeat(7n, 3n, signal, 'reader-a');
    await adapter.heartbeat(7n, 4n);
    expect(heartbeats).toEqual([
      [7n, 3n, signal, 'reader-a'],
      [7n, 4n, undefined, undefined],
    ]);
  });

  it('adds the raft state and configuration to the status, never the cluster id', () => {
    const { broker } = fakeBroker();
    const status = createBrokerAdapter(broker, raft).status();
    expect(status).toEqual({
      term: 3,
      raftState: 'leader',
      config: { voters: ['http://a'], learners: [] },
    });
    expect(JSON.stringify(status)).not.toContain('c1');
  });

  it('mounts the raft listener only when one is given', () => {
    const { broker } = fakeBroker();
    const listener = (): void => undefined;
    expect(createBrokerAdapter(broker, raft).raftHandler).toBeUndefined();
    expect(createBrokerAdapter(broker, raft, listener).raftHandler).toBe(listener);
  });
});
