import { describe, expect, it } from '@jest/globals';
import { SnapshotReceiver, type SnapshotReceiverHost } from './snapshot-receiver.js';
import type { SnapshotMeta, SnapshotWriter } from './snapshot-store.js';
import type { ClusterConfig, InstallSnapshotRequest } from './types.js';

const config: ClusterConfig = { voters: ['http://a'], learners: [] };

/** A host whose snapshot writers keep their bytes in memory; `failWrite` makes writes reject. */
function memoryHost(): SnapshotReceiverHost & { writers: { index: number; bytes: number[]; aborted: boolean }[]; failures: unknown[]; failWrite: boolean } {
  const host = {
    writers: [] as { index: number; bytes: number[]; aborted: boolean }[],
    failures: [] as unknown[],
    failWrite: false,
    localSnapshot: () => undefined,
    fail: (err: unknown) => void host.failures.push(err),
    async create(index: number, term: number, cfg: ClusterConfig): Promise<SnapshotWriter> {
      const w = { index, bytes: [] as number[], aborted: false };
      host.writers.push(w);
      return {
        get size() {
          return w.bytes.length;
        },
        write: async (chunk) => {
          if (host.failWrite) throw new Error('EIO');
          w.bytes.push(...chunk);
        },
        finish: async (): Promise<SnapshotMeta> => ({ index, term, config: cfg, size: w.bytes.length }),
        abort: async () => {
          w.aborted = true;
        },
      };
    },
  };
  return host;
}

function chunk(index: number, offset: number, bytes: number[], done = false, term = 2): InstallSnapshotRequest {
  return { term, from: 'http://a', clusterId: 'c', lastIncludedIndex: index, lastIncludedTerm: 1, config, offset, data: new Uint8Array(bytes), done };
}

describe('SnapshotReceiver', () => {
  it('assembles the chunks in order and hands over the finished snapshot with the last one', async () => {
    const host = memoryHost();
    const r = new SnapshotReceiver(host);
    expect(await r.receive(chunk(10, 0, [1, 2]))).toEqual({ received: 2 });
    expect(r.receiving).toBe(true);
    const last = await r.receive(chunk(10, 2, [3], true));
    expect(last).toEqual({ received: 3, meta: { index: 10, term: 1, config, size: 3 } });
    expect(r.receiving).toBe(false);
    expect(host.writers[0]!.bytes).toEqual([1, 2, 3]);
  });

  it('answers a chunk at an unexpected offset with what it received, so the leader resumes there', async () => {
    const r = new SnapshotReceiver(memoryHost());
    await r.receive(chunk(10, 0, [1, 2]));
    expect(await r.receive(chunk(10, 5, [9]))).toEqual({ received: 2 });
    expect(await r.receive(chunk(11, 2, [9]))).toEqual({ received: 0 }); // another snapshot, not from its start
  });

  it('drops a partial snapshot of an earlier term\'s leader (it would hold local snapshots back for good), and only that', async () => {
    const host = memoryHost();
    const r = new SnapshotReceiver(host);
    await r.receive(chunk(10, 0, [1, 2], false, 2));
    await r.dropOlderThan(2);
    expect(r.receiving).toBe(true); // the leader of term 2 may still send the rest
    await r.dropOlderThan(3);
    expect(r.receiving).toBe(false);
    expect(host.writers[0]!.aborted).toBe(true);
    expect(host.failures).toEqual([]);
  });

  it('starts over, dropping the partial file, when another snapshot or another term begins', async () => {
    const host = memoryHost();
    const r = new SnapshotReceiver(host);
    await r.receive(chunk(10, 0, [1]));
    await r.receive(chunk(12, 0, [7]));
    await r.receive(chunk(12, 0, [8], false, 3));
    expect(host.writers.map((w) => [w.index, w.aborted])).toEqual([[10, true], [12, true], [12, false]]);
    await r.abort();
    expect(host.writers[2]!.aborted).toBe(true);
    expect(r.receiving).toBe(false);
  });

  it('fails the node when a chunk cannot be written', async () => {
    const host = memoryHost();
    const r = new SnapshotReceiver(host);
    host.failWrite = true;
    await expect(r.receive(chunk(10, 0, [1]))).rejects.toThrow('EIO');
    expect(host.failures).toHaveLength(1);
  });

  it('runs one task at a time, in the order they came, a rejected one not stopping the next', async () => {
    const r = new SnapshotReceiver(memoryHost());
    const order: string[] = [];
    let release!: () => void;
    const first = r.inTurn(async () => {
      await new Promise<void>((resolve) => (release = resolve));
      order.push('first');
      throw new Error('boom');
    });
    const second = r.inTurn(async () => void order.push('second'));
    await new Promise((resolve) => setImmediate(resolve));
    release();
    await expect(first).rejects.toThrow('boom');
    await second;
    expect(order).toEqual(['first', 'second']);
  });
});
