#!/usr/bin/env node
// Runs the pnpm version pinned in package.json's "packageManager" field.
//
// Corepack cannot download pnpm on the machines this project runs on, so the
// pinned pnpm is installed from the npm registry with npm itself, once, into
// .tools/pnpm-<version>/, and every later call reuses it. Arguments are passed
// through unchanged; the exit code is pnpm's.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const match = /^pnpm@(\d+\.\d+\.\d+)$/.exec(manifest.packageManager ?? '');
if (!match) {
  console.error('package.json: "packageManager" must pin pnpm as pnpm@<major.minor.patch>');
  process.exit(2);
}
const version = match[1];
const prefix = join(root, '.tools', `pnpm-${version}`);
const bin = join(prefix, 'node_modules', 'pnpm', 'bin', 'pnpm.cjs');

if (!existsSync(bin)) {
  console.error(`Installing pnpm ${version} into ${prefix} (once) ...`);
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const install = spawnSync(
    npm,
    ['install', '--prefix', prefix, '--no-save', '--no-package-lock', '--no-audit', '--no-fund', '--loglevel=error', `pnpm@${version}`],
    { stdio: 'inherit', cwd: root },
  );
  if (install.status !== 0 || !existsSync(bin)) {
    console.error(`Could not install pnpm ${version} with npm (exit ${install.status}).`);
    process.exit(install.status || 1);
  }
}

// Put this pnpm first on PATH so that tools which look for it (turbo) find it.
const binDir = join(prefix, 'node_modules', '.bin');
const env = {
  ...process.env,
  PATH: `${binDir}${delimiter}${process.env.PATH ?? ''}`,
  TURBO_TELEMETRY_DISABLED: '1',
  DO_NOT_TRACK: '1',
  COREPACK_ENABLE_STRICT: '0',
};
const run = spawnSync(process.execPath, [bin, ...process.argv.slice(2)], { stdio: 'inherit', env });
if (run.error) {
  console.error(run.error.message);
  process.exit(1);
}
process.exit(run.status ?? (run.signal ? 128 : 1));
