import { describe, expect, it } from '@jest/globals';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeMessages } from '@msg/wire';
import { makeTempDir } from '@msg/test-utils';
import { newJoinToken } from '../src/join-token.js';
import { runMain } from './server-process.js';

const FAST = ['--election-timeout-ms', '200', '--heartbeat-interval-ms', '40'];

async function indexesOf(url: string, topicID: bigint): Promise<bigint[]> {
  const res = await fetch(`${url}/messaging/messages?topicID=${topicID}&index=0`);
  const indexes: bigint[] = [];
  for await (const message of decodeMessages([new Uint8Array(await res.arrayBuffer())])) indexes.push(message.index);
  return indexes;
}

describe('main.ts (the broker process)', () => {
  it('prints usage with the exit codes for --help and exits 0', async () => {
    const proc = runMain(['--help']);
    expect(await proc.exited).toBe(0);
    expect(proc.output.stdout).toContain('--data-dir');
    expect(proc.output.stdout).toContain('74 I/O error');
    expect(proc.output.stdout).toContain('leave --member');
  });

  it('exits 64 naming the bad flag, variable or config file key', async () => {
    const dir = await makeTempDir();
    const config = join(dir, 'broker.json');
    await writeFile(config, JSON.stringify({ segmentBytes: 'big' }));
    const cases = [
      { proc: runMain(['--data-dir', dir, '--sync', 'sometimes']), setting: '--sync' },
      { proc: runMain(['--data-dir', dir], { MSG_LISTEN: 'nowhere' }), setting: 'MSG_LISTEN' },
      { proc: runMain(['--data-dir', dir, '--config', config]), setting: `${config}: segmentBytes` },
      { proc: runMain(['--data-dir', dir, '--no-such-flag']), setting: 'arguments' },
    ];
    for (const { proc, setting } of cases) {
      expect(await proc.exited).toBe(64);
      expect(proc.output.stderr).toContain(`invalid ${setting}:`);
    }
  });

  it('exits 74 naming the file when its data is corrupt', async () => {
    const dir = await makeTempDir();
    const first = runMain(['--data-dir', dir, '--listen', '127.0.0.1:0', ...FAST]);
    const url = await first.listening();
    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    await writeFile(join(dir, 'broker', 'meta'), 'not a meta file');
    // The same address: under another one the node would be refused first (64, another identity).
    const again = runMain(['--data-dir', dir, '--listen', new URL(url).host, ...FAST]);
    expect(await again.exited).toBe(74);
    expect(again.output.stderr).toContain(join(dir, 'broker', 'meta'));
  });

  it('shuts down on SIGTERM with exit 0 while publishers run, and a restart has every acknowledged message', async () => {
    const dir = await makeTempDir();
    const proc = runMain(['--data-dir', dir, '--listen', '127.0.0.1:0', '--sync', 'always', ...FAST]);
    const url = await proc.listening();
    const acknowledged: bigint[] = [];
    let stop = false;
    const publisher = async (): Promise<void> => {
      for (let i = 0; i < 2000 && !stop; i++) {
        try {
          const res = await fetch(`${url}/messaging/messages?type=1&topicID=4`, { method: 'POST', body: `m${i}` });
          if (res.status === 200) acknowledged.push(BigInt(res.headers.get('x-broker-index')!));
          else stop = true;
        } catch {
          stop = true; // the server closed the connection: it is shutting down
        }
      }
    };
    const publishers = Array.from({ length: 8 }, publisher);
    for (let i = 0; i < 500 && acknowledged.length < 50; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    proc.child.kill('SIGTERM');
    expect(await proc.exited).toBe(0);
    stop = true;
    await Promise.all(publishers);
    expect(acknowledged.length).toBeGreaterThanOrEqual(50);
    expect(proc.logs.some((l) => l.msg === 'stopped')).toBe(true);

    const port = new URL(url).port;
    const again = runMain(['--data-dir', dir, '--listen', `127.0.0.1:${port}`, ...FAST]);
    const url2 = await again.listening();
    expect(url2).toBe(url);
    const stored = new Set(await indexesOf(url2, 4n));
    expect(acknowledged.filter((index) => !stored.has(index))).toEqual([]);
    again.child.kill('SIGINT');
    expect(await again.exited).toBe(0);
  });

  it('exits promptly when signalled twice, even with a stream open', async () => {
    const dir = await makeTempDir();
    const proc = runMain(['--data-dir', dir, '--listen', '127.0.0.1:0', ...FAST]);
    const url = await proc.listening();
    // A stream held open keeps nothing from closing; two signals in a row still end the process.
    const stream = await fetch(`${url}/messaging/messages?topicID=1&index=0&streaming=true`);
    expect(stream.status).toBe(200);
    proc.child.kill('SIGTERM');
    proc.child.kill('SIGTERM');
    const code = await proc.exited;
    expect([0, 70]).toContain(code);
    await stream.body?.cancel();
  });

  it('leave: exits 64 without --member or --join-token, 69 when the cluster is unreachable', async () => {
    const usage = runMain(['leave', '--cluster', 'http://127.0.0.1:1']);
    expect(await usage.exited).toBe(64);
    expect(usage.output.stderr).toContain('--member');
    const token = newJoinToken('0123456789abcdef0123456789abcdef').text;
    const noToken = runMain(['leave', '--member', 'http://127.0.0.1:2', '--cluster', 'http://127.0.0.1:1']);
    expect(await noToken.exited).toBe(64);
    expect(noToken.output.stderr).toContain('--join-token');
    const down = runMain(['leave', '--member', 'http://127.0.0.1:2', '--cluster', 'http://127.0.0.1:1', '--timeout-ms', '500', '--join-token', token]);
    expect(await down.exited).toBe(69);
  });
});
