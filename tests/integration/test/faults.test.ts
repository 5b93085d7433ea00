import { describe, expect, it } from '@jest/globals';
import { makeTempDir } from '@msg/test-utils';
import { open, readdir, stat, truncate } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { BrokerExitedError, startBroker, type BrokerProcess } from '../src/broker-process.js';
import { request } from '../src/http-request.js';
import { waitForTopicIndex } from '../src/topic.js';

const TOPIC = 9n;
/** Exit code of an I/O error or corrupt data on open (the app's README). */
const EXIT_IO = 74;

/** Every file under `dir`, recursively. */
async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.push(join(entry.parentPath, entry.name));
  }
  return out;
}

/** The segment files of `topicID` in a broker's data dir (a folder named by the decimal topic id, under `broker/`). */
async function topicSegments(dataDir: string, topicID: bigint): Promise<string[]> {
  const files = await filesUnder(join(dataDir, 'broker'));
  return files.filter((f) => f.split('/').at(-2) === topicID.toString()).sort();
}

/** Publishes `count` messages, stops the broker with SIGTERM; resolves with the last index. */
async function publishAndStop(broker: BrokerProcess, count: number): Promise<bigint> {
  let last = 0n;
  for (let i = 0; i < count; i++) {
    const answer = await request(`${broker.url}/messaging/messages?type=1&topicID=${TOPIC}`, { method: 'POST', body: `fault-${i}` });
    expect(answer.status).toBe(200);
    last = BigInt(answer.headers['x-broker-index'] as string);
  }
  expect(await broker.stop('SIGTERM')).toEqual({ code: 0, signal: null });
  return last;
}

/** Starts the broker and expects it to exit before listening; resolves with that exit. */
async function expectExit(options: Parameters<typeof startBroker>[0]): Promise<BrokerExitedError> {
  try {
    await startBroker(options);
  } catch (error) {
    if (error instanceof BrokerExitedError) return error;
    throw error;
  }
  throw new Error('the broker started');
}

function stderrText(error: BrokerExitedError): string {
  return error.logs.map((l) => JSON.stringify(l)).join('\n');
}

describe('a broker on damaged data', () => {
  it('refuses to start on a topic segment with a corrupt record: exit 74, naming the file', async () => {
    const dataDir = await makeTempDir('msg-it-fault-');
    const broker = await startBroker({ dataDir });
    await publishAndStop(broker, 30);
    const [segment] = await topicSegments(dataDir, TOPIC);
    expect(segment).toBeDefined();

    // Flip the bits of a byte in the middle of the file: inside a record, not at its tail.
    const size = (await stat(segment!)).size;
    const handle = await open(segment!, 'r+');
    try {
      const byte = Buffer.alloc(1);
      await handle.read(byte, 0, 1, Math.floor(size / 2));
      byte[0] = byte[0]! ^ 0xff;
      await handle.write(byte, 0, 1, Math.floor(size / 2));
    } finally {
      await handle.close();
    }

    const exited = await expectExit({ dataDir, port: broker.port });
    expect(exited.status.code).toBe(EXIT_IO);
    expect(stderrText(exited)).toContain(segment!);
  });

  it('never serves fewer messages than it acknowledged when a segment lost its tail: it recovers them or refuses to start, naming the topic', async () => {
    const dataDir = await makeTempDir('msg-it-fault-');
    const broker = await startBroker({ dataDir });
    const last = await publishAndStop(broker, 30);
    const segments = await topicSegments(dataDir, TOPIC);
    const lastSegment = segments.at(-1)!;
    await truncate(lastSegment, (await stat(lastSegment)).size - 5);

    let again: BrokerProcess;
    try {
      again = await startBroker({ dataDir, port: broker.port });
    } catch (error) {
      if (!(error instanceof BrokerExitedError)) throw error;
      // Refusing is safe: exit 74, and the message names the damaged topic folder.
      expect(error.status.code).toBe(EXIT_IO);
      expect(stderrText(error)).toContain(dirname(lastSegment));
      return;
    }
    const { messages } = await waitForTopicIndex(again.url, TOPIC, last, 15_000);
    expect(messages.map((m) => Buffer.from(m.data).toString())).toEqual(Array.from({ length: 30 }, (_v, i) => `fault-${i}`));
  });

  it('exits 64 naming the setting on a bad flag, before touching the data dir', async () => {
    const dataDir = await makeTempDir('msg-it-fault-');
    const exited = await expectExit({ dataDir, args: ['--sync', 'sometimes'] });
    expect(exited.status.code).toBe(64);
    expect(stderrText(exited)).toContain('sync');
    expect(await readdir(dataDir)).toEqual([]);
  });
});
