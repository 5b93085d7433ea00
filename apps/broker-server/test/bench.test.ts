// `npm run bench` runs bench/broker.bench.ts outside jest: everything it imports must load there (a helper that
// registers jest hooks does not). An unknown BENCH_ONLY section stops it right after its imports loaded.
import { describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { join } from 'node:path';

const app = join(import.meta.dirname, '..');
const tsx = join(app, '..', '..', 'node_modules', 'tsx', 'dist', 'esm', 'index.mjs');

describe('the broker bench', () => {
  it('loads outside jest, and names an unknown BENCH_ONLY section', async () => {
    const child = spawn(process.execPath, ['--conditions=@msg/source', '--import', tsx, join(app, 'bench', 'broker.bench.ts')], {
      cwd: app,
      env: { ...process.env, BENCH_ONLY: 'no-such-section' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    const timer = setTimeout(() => process.kill(child.pid!, 'SIGKILL'), 60_000);
    try {
      const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
      expect(stderr).toContain('BENCH_ONLY: unknown section no-such-section; known: ceiling, publish');
      expect(code).not.toBe(0);
    } finally {
      clearTimeout(timer);
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGKILL');
    }
  }, 90_000);
});
