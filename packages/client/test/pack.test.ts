// The packaging check of issue 5: the packed @msg/client (with the packed
// @msg/wire beside it) installs into an empty folder with npm, and the
// README's quickstart runs there as a plain ESM script against a real broker
// process (apps/broker-server).
import { describe, expect, it } from '@jest/globals';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { makeTempDir } from '@msg/test-utils';
import { codeBlocks, packageDir, repoDir, runScript, type ScriptResult } from './run-script.js';

/**
 * The broker the installed example talks to: a real `apps/broker-server`
 * process (run from source with tsx) on 127.0.0.1, port 0, data in a temp
 * folder. Resolves once it logs its `listening` line; `close()` sends SIGTERM
 * by PID and waits for the exit (SIGKILL after 15 s).
 */
async function startTargetBroker(): Promise<{ url: string; close(): Promise<void> }> {
  const dataDir = await makeTempDir();
  const tsxLoader = pathToFileURL(createRequire(join(repoDir, 'package.json')).resolve('tsx')).href;
  const main = join(repoDir, 'apps', 'broker-server', 'src', 'main.ts');
  const args = ['--conditions=@msg/source', '--import', tsxLoader, main, '--data-dir', dataDir, '--listen', '127.0.0.1:0'];
  const child = spawn(process.execPath, args, { cwd: repoDir, stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const kill = (signal: NodeJS.Signals): void => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) process.kill(child.pid, signal);
  };
  let logs = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`broker did not listen within 30 s:\n${logs}`)), 30_000);
    child.once('exit', (code) => reject(new Error(`broker exited (${String(code)}) before listening:\n${logs}`)));
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      logs += chunk;
      const complete = logs.split('\n').slice(0, -1);
      for (const line of complete) {
        let entry: { msg?: unknown; url?: unknown };
        try {
          entry = JSON.parse(line) as { msg?: unknown; url?: unknown };
        } catch {
          continue;
        }
        if (entry.msg === 'listening' && typeof entry.url === 'string') {
          clearTimeout(timer);
          resolve(entry.url);
        }
      }
    });
  }).catch(async (error: unknown) => {
    kill('SIGKILL');
    await exited;
    throw error;
  });
  return {
    url,
    close: async () => {
      kill('SIGTERM');
      const timer = setTimeout(() => kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Runs a command and fails with its output when it does not exit 0 in time. */
async function mustRun(command: string, args: readonly string[], cwd: string, timeoutMs: number): Promise<ScriptResult> {
  const result = await runScript(command, args, { cwd, timeoutMs });
  if (result.code !== 0 || result.timedOut) {
    throw new Error(`${command} ${args.join(' ')} failed (code ${String(result.code)}, timed out: ${result.timedOut}):\n${result.stdout}\n${result.stderr}`);
  }
  return result;
}

/** Packs the workspace package in `folder` into `destination` and returns the tarball's path. */
async function pack(folder: string, destination: string): Promise<string> {
  const before = new Set(await readdir(destination));
  await mustRun(process.execPath, [join(repoDir, 'scripts', 'pnpm.mjs'), 'pack', '--pack-destination', destination], folder, 30_000);
  const added = (await readdir(destination)).filter((name) => !before.has(name) && name.endsWith('.tgz'));
  expect(added).toHaveLength(1);
  return join(destination, added[0]!);
}

describe('the packed @msg/client', () => {
  it('installs into an empty folder with npm and runs the README quickstart against a broker', async () => {
    await mustRun(join(repoDir, 'node_modules', '.bin', 'tsc'), ['-b', 'packages/client/tsconfig.build.json'], repoDir, 60_000);
    const tarballs = await makeTempDir();
    const wire = await pack(join(repoDir, 'packages', 'wire'), tarballs);
    const client = await pack(packageDir, tarballs);

    const app = join(await makeTempDir(), 'app');
    await mkdir(app);
    await writeFile(join(app, 'package.json'), `${JSON.stringify({ name: 'app', private: true, type: 'module' })}\n`);
    await mustRun('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', wire, client], app, 60_000);

    // What a consumer got: only @msg/wire, got and zod beneath, nothing of the workspace.
    const installed = JSON.parse(await readFile(join(app, 'node_modules', '@msg', 'client', 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
      exports: Record<string, unknown>;
    };
    expect(Object.keys(installed.dependencies).sort()).toEqual(['@msg/wire', 'got', 'zod']);
    expect(JSON.stringify(installed)).not.toContain('workspace:');
    expect(JSON.stringify(installed.exports)).not.toContain('@msg/source');
    const files = await readdir(join(app, 'node_modules', '@msg', 'client', 'dist'));
    expect(files).toContain('index.js');
    expect(files.filter((name) => name.includes('.test.'))).toEqual([]);

    // The quickstart exactly as the packed README shows it.
    const readme = await readFile(join(app, 'node_modules', '@msg', 'client', 'README.md'), 'utf8');
    const quickstart = codeBlocks(readme).find((block) => block.example === 'examples/quickstart.mjs');
    expect(quickstart?.code).toContain("from '@msg/client'");
    await writeFile(join(app, 'quickstart.mjs'), quickstart!.code);

    const broker = await startTargetBroker();
    try {
      const result = await runScript(process.execPath, ['quickstart.mjs', broker.url], { cwd: app, timeoutMs: 20_000 });
      expect(result).toEqual({ code: 0, timedOut: false, stdout: 'read 3 messages: hello brave world\n', stderr: '' });
    } finally {
      await broker.close();
    }
  }, 180_000);
});
