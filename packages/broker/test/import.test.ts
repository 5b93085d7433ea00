import { describe, expect, it } from '@jest/globals';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeMessages } from '@msg/wire';
import { concat, openTestBroker, readAll, text } from './helpers.js';
import type { Broker } from '../src/broker.js';

const VECTORS = join(import.meta.dirname, '..', '..', '..', 'fixtures', 'original');
const ORIGINAL: Record<string, string[]> = { '20': ['2', '14', '23'], '21': ['3', '15', '24'], '22': ['4', '16', '25'] };

async function expectOriginalData(broker: Broker): Promise<void> {
  expect(broker.topicIDs()).toEqual([20n, 21n, 22n]);
  let highest = 0n;
  for (const [id, files] of Object.entries(ORIGINAL)) {
    const raw = Buffer.concat(await Promise.all(files.map((f) => readFile(join(VECTORS, 'broker-dir', id, f)))));
    // Raw frames served are byte for byte the original's files, in order.
    expect((await concat(await broker.openTopicReader(BigInt(id), 0n))).equals(raw)).toBe(true);
    const expected = [];
    for await (const m of decodeMessages([raw])) expected.push([m.index, Buffer.from(m.data).toString()]);
    expect(expected).toHaveLength(10);
    expect(await readAll((await broker.openTopicReader(BigInt(id), 0n)).messages())).toEqual(expected);
    if (broker.lastIndex(BigInt(id)) > highest) highest = broker.lastIndex(BigInt(id));
  }
  expect(highest).toBe(31n);
}

describe('import of the original broker data', () => {
  it('imports its topic folders and reads every message back', async () => {
    await using t = await openTestBroker();
    expect(await t.broker.importOriginalDir(join(VECTORS, 'broker-dir'))).toBe(31);
    expect(t.broker.appliedIndex()).toBe(31);
    await expectOriginalData(t.broker);
    // The log continues above the imported index.
    t.log.base = 31;
    expect(await t.broker.publish(text(20n, 'new'))).toBe(32n);
    expect((await readAll((await t.broker.openTopicReader(20n, 31n)).messages())).map(([i]) => i)).toEqual([32n]);
  });

  it('imports its snapshot format', async () => {
    await using t = await openTestBroker();
    expect(await t.broker.importSnapshot(createReadStream(join(VECTORS, 'snapshot.bin')))).toBe(31);
    await expectOriginalData(t.broker);
  });

  it('keeps imported data across a restart and in its own snapshots', async () => {
    const t = await openTestBroker();
    await t.broker.importSnapshot(createReadStream(join(VECTORS, 'snapshot.bin')));
    await t.broker.close();
    await using again = await openTestBroker({ dir: t.dir });
    expect(again.broker.appliedIndex()).toBe(31);
    await expectOriginalData(again.broker);
    await using copy = await openTestBroker();
    await copy.broker.restore(await again.broker.snapshot(), 31);
    await expectOriginalData(copy.broker);
  });

  it('skips, with a log line, log messages at or below an imported topic last index', async () => {
    await using t = await openTestBroker();
    // A state restored at index 10 whose topics already reach 31 (a log that does not continue above the import).
    await t.broker.restore(createReadStream(join(VECTORS, 'snapshot.bin')), 10);
    t.log.base = 10;
    expect(await t.broker.publish(text(20n, 'stale'))).toBe(11n);
    expect(t.logger.lines.some((l) => l.msg === 'ignored a message at or below its topic last index')).toBe(true);
    await expectOriginalData(t.broker);
  });
});
