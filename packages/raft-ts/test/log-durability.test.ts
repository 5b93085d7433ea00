// RaftNode and its durable log: the durable point it opens the log with, entries read back from disk,
// and snapshots triggered by the size of the log.
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { waitFor } from '@msg/test-utils';
import type { Logger } from '../src/clock.js';
import { isRaftError } from '../src/errors.js';
import { RaftNode } from '../src/raft-node.js';
import { MemStateMachine, openHarness, type Harness } from './harness.js';

const encoder = new TextEncoder();

/** A harness node that bootstrapped its own single-node cluster and leads it. */
async function single(overrides: Parameters<typeof openHarness>[0] = {}, dir?: string): Promise<Harness> {
  const h = await openHarness(overrides, dir);
  if (h.node.clusterId() === undefined) await h.node.initialize();
  else h.clock.advance(150);
  await waitFor(() => h.node.isLeader());
  return h;
}

/** A state machine that claims to have applied (durably) up to `index`. */
function appliedUpTo(index: number): MemStateMachine {
  const sm = new MemStateMachine();
  sm.upTo = index;
  return sm;
}

async function lastSegment(dir: string): Promise<string> {
  const names = (await readdir(dir)).filter((n) => n.startsWith('log-')).sort();
  return join(dir, names[names.length - 1]!);
}

describe('RaftNode durable log', () => {
  it('fails the open with CORRUPT when the state machine applied beyond the end of the log and no snapshot covers it', async () => {
    const h = await single();
    for (const t of ['a', 'b', 'c']) await h.node.apply(encoder.encode(t));
    expect(h.node.lastIndex).toBe(5);
    await h.node.close();
    const node = new RaftNode({ ...h.options, stateMachine: appliedUpTo(10) });
    const err = await node.open().catch((e: unknown) => e);
    expect(isRaftError(err, 'CORRUPT')).toBe(true);
    expect((err as Error).message).toContain(h.dir);
    expect((err as Error).message).toMatch(/at offset \d+$/);
    expect(node.state).toBe('closed');
  });

  it('opens the log with the applied index as its durable point: a torn entry the state machine applied is CORRUPT, one it did not is recovered and logged', async () => {
    const h = await single();
    for (const t of ['a', 'b', 'c']) await h.node.apply(encoder.encode(t));
    await h.node.close();
    const path = await lastSegment(h.dir);
    const bytes = await readFile(path);
    await writeFile(path, bytes.subarray(0, bytes.length - 1)); // entry 5 torn, as by a crash
    const applied = new RaftNode({ ...h.options, stateMachine: appliedUpTo(5) });
    const err = await applied.open().catch((e: unknown) => e);
    expect(isRaftError(err, 'CORRUPT')).toBe(true);
    expect((err as Error).message).toContain(path);

    const warned: unknown[] = [];
    const logger: Logger = { debug: () => undefined, info: () => undefined, error: () => undefined, warn: (m, f) => warned.push({ m, ...f }) };
    const again = new RaftNode({ ...h.options, stateMachine: appliedUpTo(4), logger });
    await again.open();
    expect(again.lastIndex).toBe(4);
    expect(warned).toEqual([expect.objectContaining({ file: path, firstDropped: 5 })]);
    await again.close();
  });

  it('reads entries back from disk after a restart (readLogEntry)', async () => {
    const h = await single({ logCacheBytes: 0 });
    await h.node.apply(encoder.encode('hello'));
    await h.node.close();
    const again = await single({ logCacheBytes: 0 }, h.dir);
    const e = await again.node.readLogEntry(3);
    expect([e!.index, new TextDecoder().decode(e!.data)]).toEqual([3, 'hello']);
    expect(await again.node.readLogEntry(99)).toBeUndefined();
    await again.node.close();
  });

  it('takes a snapshot once the entries since the last one reach snapshotThresholdBytes', async () => {
    const h = await single({ snapshotThresholdBytes: 64 << 10 });
    for (let i = 0; i < 20; i++) await h.node.apply(new Uint8Array(4 << 10).fill(i));
    await waitFor(() => h.node.snapshotIndex > 0);
    expect(h.node.snapshotIndex).toBeGreaterThanOrEqual(16);
    await h.node.close();
  });
});
