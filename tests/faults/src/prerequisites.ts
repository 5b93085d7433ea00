import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from './command.js';

/**
 * Why the fault harness cannot run here, in one line, or `undefined` when
 * it can: it needs root, `ip` (iproute2), `nft` (nftables), and the right
 * to make a network namespace and mount a tmpfs (a container without
 * CAP_SYS_ADMIN has neither).
 */
export async function missingPrerequisite(): Promise<string | undefined> {
  if (process.platform !== 'linux') return `not Linux (${process.platform})`;
  if (process.getuid?.() !== 0) return 'not root';
  for (const [tool, args, pkg] of [
    ['ip', ['-V'], 'iproute2'],
    ['nft', ['--version'], 'nftables'],
  ] as const) {
    try {
      await run(tool, args, { timeoutMs: 10_000 });
    } catch {
      return `no \`${tool}\` (apt-get install -y ${pkg})`;
    }
  }
  const probe = `msgf-probe-${process.pid}`;
  try {
    await run('ip', ['netns', 'add', probe]);
    await run('ip', ['netns', 'exec', probe, 'nft', 'list', 'ruleset']);
  } catch (error) {
    return `cannot make a network namespace with nftables in it: ${(error as Error).message.split('\n')[0]}`;
  } finally {
    await run('ip', ['netns', 'del', probe]).catch(() => '');
  }
  const dir = await mkdtemp(join(tmpdir(), 'msgf-probe-'));
  try {
    await run('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir]);
    await run('umount', [dir]);
  } catch (error) {
    return `cannot mount a tmpfs: ${(error as Error).message.split('\n')[0]}`;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return undefined;
}

/** True when `MSG_FAULTS_REQUIRED=1` (CI): a missing prerequisite is then a failure, not a skip. */
export function faultsRequired(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.MSG_FAULTS_REQUIRED === '1' || env.MSG_FAULTS_REQUIRED === 'true';
}
