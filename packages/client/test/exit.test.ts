import { describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { broker } from './helpers.js';

const here = dirname(fileURLToPath(import.meta.url));
const tsx = join(here, '..', '..', '..', 'node_modules', '.bin', 'tsx');

describe('Client.close', () => {
  it('leaves no timer or socket that keeps the process alive', async () => {
    const b = await broker();
    const child = spawn(tsx, ['--conditions=@msg/source', join(here, 'fixtures', 'exit-child.ts'), b.url], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const result = await new Promise<{ code: number | null; killed: boolean }>((resolve) => {
      const timer = setTimeout(() => {
        if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
        resolve({ code: null, killed: true });
      }, 30_000);
      child.once('exit', (code) => {
        clearTimeout(timer);
        resolve({ code, killed: false });
      });
    });
    expect({ ...result, output }).toEqual({ code: 0, killed: false, output: 'closed after 3 messages, streaming loop saw 3\n' });
    expect(b.count('/messaging/ping')).toBeGreaterThan(0);
    expect(b.store.heartbeats.length).toBeGreaterThan(0);
  }, 60_000);
});
