// scripts/check-self-contained.mjs (run by `npm test`): a test or document that
// needs a file outside the repository fails the build, so a clone alone passes.
import { describe, expect, it } from '@jest/globals';
import { makeTempDir } from '@msg/test-utils';
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const root = join(import.meta.dirname, '..', '..', '..');
const script = join(root, 'scripts', 'check-self-contained.mjs');
const exec = promisify(execFile);

async function check(repo: string): Promise<{ code: number; stdout: string }> {
  try {
    const { stdout } = await exec(process.execPath, [script, repo], { timeout: 30_000 });
    return { code: 0, stdout };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string };
    return { code: failed.code ?? -1, stdout: failed.stdout ?? '' };
  }
}

describe('check-self-contained', () => {
  it('passes on this repository', async () => {
    expect(await check(root)).toEqual({ code: 0, stdout: '' });
  });

  it('fails on each way a file can reach outside its repository', async () => {
    const repo = await makeTempDir('msg-it-self-contained-');
    await exec('git', ['init', '-q', repo]);
    await mkdir(join(repo, 'pkg', 'test'), { recursive: true });
    await writeFile(join(repo, 'README.md'), 'See [the spec](../spec/protocol.md), [a lost page](docs/gone.md) and [ours](pkg/test/a.ts).\n');
    // Spelled in pieces, so that this file does not trip the check itself.
    const up = '..';
    const sibling = 'shared' + '/spec';
    const comment = `// written from ${up}/${sibling}/original-protocol.md`;
    const escapingURL = `new URL('${`${up}/`.repeat(4)}elsewhere/', import.meta.url)`;
    await writeFile(
      join(repo, 'pkg', 'test', 'a.ts'),
      [
        comment,
        "const dir = join(import.meta.dirname, '..', '..', '..', 'vectors');",
        `const url = ${escapingURL};`,
        "const inside = join(import.meta.dirname, '..', 'fixtures');",
        '',
      ].join('\n'),
    );

    const { code, stdout } = await check(repo);
    expect(code).toBe(1);
    const lines = stdout.trim().split('\n');
    expect(lines).toEqual([
      'README.md:1: links outside the repository: ../spec/protocol.md',
      'README.md:1: links to a missing file: docs/gone.md',
      `pkg/test/a.ts:1: points at a folder outside the repository: ${comment}`,
      "pkg/test/a.ts:2: reads outside the repository: join(import.meta.dirname, '..', '..', '..', 'vectors')",
      `pkg/test/a.ts:3: reads outside the repository: ${escapingURL}`,
      '5 reference(s) outside the repository or to missing files',
    ]);
  });
});
