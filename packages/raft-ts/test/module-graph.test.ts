// The core (RaftNode and what it imports) does not reach the HTTP transport: a
// node is built with any Transport, and an application with another transport
// never loads src/http.
import { readFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { describe, expect, it } from '@jest/globals';

const src = join(import.meta.dirname, '..', 'src');

/** Every source file `file` reaches through relative imports (type-only ones included), as paths relative to src. */
async function reachable(file: string): Promise<string[]> {
  const seen = new Set<string>();
  const visit = async (path: string): Promise<void> => {
    if (seen.has(path)) return;
    seen.add(path);
    const text = await readFile(path, 'utf8');
    for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^;]*?\bfrom\s+'(\.[^']+)'/g)) {
      await visit(join(dirname(path), m[1]!.replace(/\.js$/, '.ts')));
    }
  };
  await visit(join(src, file));
  return [...seen].map((p) => relative(src, p)).sort();
}

describe('the core module graph', () => {
  it('reaches no module of the HTTP transport from RaftNode', async () => {
    const files = await reachable('raft-node.ts');
    expect(files).toContain('transport.ts');
    expect(files).toContain('config-history.ts');
    expect(files.filter((f) => f.startsWith('http'))).toEqual([]);
  });

  it('sees the HTTP transport from the package entry (the check can fail)', async () => {
    expect((await reachable('index.ts')).filter((f) => f.startsWith('http'))).toContain('http/http-transport.ts');
  });
});
