// The release check: every published package, packed as `pnpm publish` packs
// it (workspace: ranges rewritten, publishConfig applied), installs with npm
// into an empty folder, imports there as plain ESM, and carries what a
// published package owes its users: LICENSE, README, a repository field, no
// tests, and source maps whose sources are in the tarball.
import { describe, expect, it } from '@jest/globals';
import { makeTempDir } from '@msg/test-utils';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';

const root = join(import.meta.dirname, '..', '..', '..');

/** Folder and npm name of every published package. */
const PUBLISHED = [
  ['packages/wire', '@msg/wire'],
  ['packages/segments', '@msg/segments'],
  ['packages/raft-ts', 'raft-ts'],
  ['packages/broker', '@msg/broker'],
  ['packages/http', '@msg/http'],
  ['packages/client', '@msg/client'],
] as const;

interface Manifest {
  name: string;
  private?: boolean;
  license?: string;
  repository?: { type: string; url: string; directory: string };
  exports?: unknown;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
}

/** Runs `command args` in `cwd`; rejects with its output unless it exits 0 within `timeoutMs` (killed by PID then). */
function run(command: string, args: readonly string[], cwd: string, timeoutMs: number): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => {
      if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    }, timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolvePromise(output);
      else reject(new Error(`${command} ${args.join(' ')} in ${cwd}: ${signal ?? `exit ${String(code)}`}\n${output}`));
    });
  });
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath, entry.name));
}

describe('the published packages', () => {
  it('pack, install together into an empty folder, import, and ship LICENSE, README, repository and resolvable source maps', async () => {
    await run(join(root, 'node_modules', '.bin', 'tsc'), ['-b', ...PUBLISHED.map(([folder]) => `${folder}/tsconfig.build.json`)], root, 120_000);

    const tarballs = await makeTempDir('msg-it-pack-');
    const packed: string[] = [];
    for (const [folder] of PUBLISHED) {
      const before = new Set(await readdir(tarballs));
      await run(process.execPath, [join(root, 'scripts', 'pnpm.mjs'), 'pack', '--pack-destination', tarballs], join(root, folder), 60_000);
      const added = (await readdir(tarballs)).filter((name) => !before.has(name) && name.endsWith('.tgz'));
      expect({ folder, added: added.length }).toEqual({ folder, added: 1 });
      packed.push(join(tarballs, added[0]!));
    }

    const app = join(await makeTempDir('msg-it-pack-app-'), 'app');
    await mkdir(app);
    await writeFile(join(app, 'package.json'), `${JSON.stringify({ name: 'app', private: true, type: 'module' })}\n`);
    // Third-party dependencies (got, zod, express as @msg/http's peer) come from npm's cache or the registry.
    await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', ...packed], app, 120_000);

    const problems: string[] = [];
    for (const [folder, name] of PUBLISHED) {
      const source = JSON.parse(await readFile(join(root, folder, 'package.json'), 'utf8')) as Manifest;
      const dir = join(app, 'node_modules', ...name.split('/'));
      const text = await readFile(join(dir, 'package.json'), 'utf8');
      const manifest = JSON.parse(text) as Manifest;
      const files = (await filesUnder(dir)).map((file) => relative(dir, file));

      if (text.includes('workspace:')) problems.push(`${name}: a workspace: range was not rewritten`);
      if (JSON.stringify(manifest.exports).includes('@msg/source')) problems.push(`${name}: exports still name the @msg/source condition`);
      if (manifest.license !== 'MIT' || !files.includes('LICENSE')) problems.push(`${name}: no MIT LICENSE file`);
      if (!(await readFile(join(dir, 'LICENSE'), 'utf8').catch(() => '')).includes('the msg authors')) problems.push(`${name}: LICENSE names no copyright holder`);
      if (!files.includes('README.md')) problems.push(`${name}: no README.md`);
      if (manifest.repository?.directory !== folder || !manifest.repository.url.endsWith('.git')) problems.push(`${name}: repository field missing or wrong`);
      if (!files.includes('dist/index.js') || !files.includes('dist/index.d.ts')) problems.push(`${name}: no dist/index.js or dist/index.d.ts`);
      for (const file of files) {
        if (/\.test\./.test(file) || file.startsWith('test/')) problems.push(`${name}: ships a test file ${file}`);
      }
      // Every source a map names (JavaScript and declaration maps) is in the package.
      for (const map of files.filter((file) => file.endsWith('.map'))) {
        const parsed = JSON.parse(await readFile(join(dir, map), 'utf8')) as { sources: string[]; sourceRoot?: string };
        for (const entry of parsed.sources) {
          const target = resolve(dirname(join(dir, map)), parsed.sourceRoot ?? '', entry);
          if (!target.startsWith(dir + '/') || !existsSync(target)) problems.push(`${name}: ${map} names ${entry}, not in the package`);
        }
      }
      // Dependencies as the source declares them, with versions instead of workspace ranges.
      expect({ name, dependencies: Object.keys(manifest.dependencies ?? {}).sort() }).toEqual({ name, dependencies: Object.keys(source.dependencies ?? {}).sort() });
    }
    expect(problems).toEqual([]);

    // Each entry point loads in plain Node from the installed folder (its runtime dependencies are declared).
    const script = PUBLISHED.map(([, name]) => `Object.keys(await import(${JSON.stringify(name)})).length`).join(', ');
    const output = await run(process.execPath, ['--input-type=module', '-e', `console.log(JSON.stringify([${script}]))`], app, 30_000);
    const counts = JSON.parse(output.trim().split('\n').at(-1)!) as number[];
    expect(counts).toHaveLength(PUBLISHED.length);
    expect(counts.every((count) => count > 0)).toBe(true);
  }, 300_000);
});
