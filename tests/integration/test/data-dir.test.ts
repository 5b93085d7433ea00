import { describe, expect, it } from '@jest/globals';
import { Client } from '@msg/client';
import { makeTempDir } from '@msg/test-utils';
import { spawn } from 'node:child_process';
import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BrokerExitedError, runServerCommand, startBroker, type BrokerProcess } from '../src/broker-process.js';
import { FAST_RAFT_ARGS, readJoinToken, startCluster, waitForLeader, waitForMembers } from '../src/cluster.js';
import { readTopic, text } from '../src/topic.js';

const TOPIC = 31n;

async function publishTexts(url: string, texts: readonly string[]): Promise<void> {
  const client = new Client({ urls: [url], pingIntervalMs: 0 });
  await client.open();
  try {
    for (const t of texts) await client.publish({ type: 1, topicID: TOPIC, data: Buffer.from(t) });
  } finally {
    await client.close();
  }
}

/** Starts a broker that is expected to exit before listening; resolves with its exit error. */
async function startRefused(options: Parameters<typeof startBroker>[0]): Promise<BrokerExitedError> {
  const error = await startBroker(options).then(
    async (node: BrokerProcess) => {
      await node.kill();
      return new Error(`expected the broker to refuse to start, but it listened at ${node.url}`);
    },
    (e: unknown) => e,
  );
  if (!(error instanceof BrokerExitedError)) throw error;
  return error;
}

/** Everything a broker wrote, as text (JSON lines and raw lines alike). */
function allOutput(error: BrokerExitedError): string {
  return error.logs.map((l) => JSON.stringify(l)).join('\n');
}

/** The names and sizes of every file under `dir`, for "untouched" checks. */
async function snapshotTree(dir: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const name of await readdir(dir, { recursive: true })) {
    const info = await stat(join(dir, name));
    if (info.isFile()) out[name] = info.size;
  }
  return out;
}

/** The PID of a process that has exited (so is not running now). */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return child.pid!;
}

describe('a node data dir', () => {
  it('is locked: a second process on it exits 75 naming the dir and the holder; the first keeps serving, its data intact', async () => {
    const dataDir = await makeTempDir('msg-it-lock-');
    const first = await startBroker({ dataDir });
    await publishTexts(first.url, ['one', 'two']);

    const second = await startRefused({ dataDir, args: ['--advertise-url', first.url] });
    expect(second.status).toEqual({ code: 75, signal: null });
    expect(allOutput(second)).toContain(dataDir);
    expect(allOutput(second)).toContain(`process ${first.pid}`);

    await publishTexts(first.url, ['three']);
    expect(await first.stop()).toEqual({ code: 0, signal: null });
    const again = await startBroker({ dataDir, port: first.port });
    expect((await readTopic(again.url, TOPIC)).messages.map(text)).toEqual(['one', 'two', 'three']);
  });

  it('takes over a stale lock left by a process that is gone', async () => {
    const dataDir = await makeTempDir('msg-it-stale-');
    const dead = await deadPid();
    await writeFile(join(dataDir, '.lock'), `${dead} 1 left-behind\n`);
    const node = await startBroker({ dataDir });
    expect((await readFile(join(dataDir, '.lock'), 'utf8')).split(' ')[0]).toBe(String(node.pid));
    await publishTexts(node.url, ['after takeover']);
    expect((await readTopic(node.url, TOPIC)).messages.map(text)).toEqual(['after takeover']);
  });

  it('keeps its identity: another --listen or --advertise-url exits 64 explaining the options, and nothing in the dir changes', async () => {
    const dataDir = await makeTempDir('msg-it-identity-');
    const first = await startBroker({ dataDir });
    await publishTexts(first.url, ['kept']);
    await first.stop();
    const before = await snapshotTree(dataDir);

    const moved = await startRefused({ dataDir });
    expect(moved.status).toEqual({ code: 64, signal: null });
    const output = allOutput(moved);
    expect(output).toContain(first.url);
    expect(output).toContain('new, empty data dir');
    expect(output).toContain('leave');

    const advertised = await startRefused({ dataDir, port: first.port, args: ['--advertise-url', 'http://other.example:9000'] });
    expect(advertised.status).toEqual({ code: 64, signal: null });
    expect(allOutput(advertised)).toContain('http://other.example:9000');

    expect(await snapshotTree(dataDir)).toEqual(before);
    const again = await startBroker({ dataDir, port: first.port });
    expect((await readTopic(again.url, TOPIC)).messages.map(text)).toEqual(['kept']);
  });

  it('adopts the current identity on a data dir from before identities were recorded', async () => {
    const dataDir = await makeTempDir('msg-it-legacy-');
    const first = await startBroker({ dataDir });
    await first.stop();
    await rm(join(dataDir, 'node.json'));
    const again = await startBroker({ dataDir, port: first.port });
    expect(JSON.parse(await readFile(join(dataDir, 'node.json'), 'utf8'))).toEqual(expect.objectContaining({ url: first.url }));
    await again.stop();
    expect((await startRefused({ dataDir })).status).toEqual({ code: 64, signal: null });
  });

  it('of a removed node: restarted, it says it was removed from the cluster and exits 78', async () => {
    const nodes = await startCluster(3);
    const leader = await waitForLeader(nodes);
    const leaving = nodes.find((n) => n !== leader)!;
    const staying = nodes.filter((n) => n !== leaving);
    const token = await readJoinToken(nodes[0]!.dataDir);
    const result = await runServerCommand(['leave', '--member', leaving.url, '--cluster', leader.url, '--join-token', token]);
    expect(result.code).toBe(0);
    await waitForMembers(staying, staying.map((n) => n.url));
    await leaving.exited;

    const back = await startRefused({ dataDir: leaving.dataDir, port: leaving.port, args: FAST_RAFT_ARGS });
    expect(back.status).toEqual({ code: 78, signal: null });
    expect(back.logs).toContainEqual(expect.objectContaining({ msg: 'removed from the cluster', url: leaving.url }));
    expect(allOutput(back)).toContain(`${leaving.url} was removed from the cluster`);
  });
});
