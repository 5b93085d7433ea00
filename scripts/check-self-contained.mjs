// Fails when a tracked test, source file or document needs something outside
// this repository: a path that climbs above the repository root (markdown
// links, `join(import.meta.dirname, ...)`, `new URL(..., import.meta.url)`), a
// markdown link to a file that does not exist, or a mention of the design
// folder that lived beside the repository once (its vectors and spec are now
// `fixtures/original/` and `docs/protocol.md`).
// Usage: node scripts/check-self-contained.mjs [repository root] (default: this repository).
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';

const root = resolve(process.argv[2] ?? join(import.meta.dirname, '..'));

/** Text files worth reading; everything else (binaries, lockfile) is skipped. */
const TEXT = /\.(?:[cm]?[jt]s|json|md|ya?ml|sh)$|(?:^|\/)(?:run|\.npmrc|\.gitignore)$/;

/** Mentions of the old sibling folder, however they are spelled. */
const SIBLING = [
  /(?:\.\.[/\\])+shared[/\\]/,
  /(?:^|[^\w-])shared[/\\](?:vectors|spec|design|hooks)\b/,
  /['"]shared['"]\s*,\s*['"](?:vectors|spec|design)['"]/,
];

const files = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '-z'], { cwd: root, encoding: 'utf8' })
  .split('\0')
  .filter((file) => file !== '' && TEXT.test(file) && file !== 'pnpm-lock.yaml' && existsSync(join(root, file)));

/** @type {string[]} */
const problems = [];

/** True when `target` is the root or lies below it. */
function inside(target) {
  const rel = relative(root, target);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

for (const file of files) {
  const text = readFileSync(join(root, file), 'utf8');
  const lines = text.split('\n');
  const here = dirname(join(root, file));
  const report = (line, what) => problems.push(`${file}:${line + 1}: ${what}`);

  lines.forEach((line, n) => {
    if (SIBLING.some((pattern) => pattern.test(line))) report(n, `points at a folder outside the repository: ${line.trim()}`);
  });

  if (file.endsWith('.md')) {
    // [text](target) and [text](target "title"); skip URLs, mail and in-page anchors.
    for (const [n, line] of lines.entries()) {
      for (const match of line.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
        const target = match[1].split('#')[0];
        if (target === '' || /^[a-z][a-z0-9+.-]*:/i.test(target)) continue;
        const path = resolve(here, decodeURIComponent(target));
        if (!inside(path)) report(n, `links outside the repository: ${match[1]}`);
        else if (!existsSync(path)) report(n, `links to a missing file: ${match[1]}`);
      }
    }
  } else if (/\.[cm]?[jt]s$/.test(file)) {
    lines.forEach((line, n) => {
      for (const match of line.matchAll(/join\(\s*import\.meta\.dirname((?:\s*,\s*'[^']*')+)\s*\)/g)) {
        const parts = [...match[1].matchAll(/'([^']*)'/g)].map((m) => m[1]);
        if (!inside(resolve(here, ...parts))) report(n, `reads outside the repository: ${match[0]}`);
      }
      for (const match of line.matchAll(/new URL\(\s*'([^']+)'\s*,\s*import\.meta\.url\s*\)/g)) {
        if (/^[a-z][a-z0-9+.-]*:/i.test(match[1])) continue;
        if (!inside(resolve(here, match[1]))) report(n, `reads outside the repository: ${match[0]}`);
      }
    });
  }
}

if (problems.length > 0) {
  for (const problem of problems) console.log(problem.split(sep).join('/'));
  console.log(`${problems.length} reference(s) outside the repository or to missing files`);
  process.exitCode = 1;
}
