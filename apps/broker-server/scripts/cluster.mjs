#!/usr/bin/env node
// Starts a local three-node broker cluster for trying things out:
//   n1 http://127.0.0.1:8086, n2 http://127.0.0.1:8087, n3 http://127.0.0.1:8088,
// data in <repo>/data/cluster/n1..n3, logs (JSON lines) in <repo>/data/cluster/n1..n3.log.
// n2 and n3 join n1 on their first start, with the join token n1 wrote to data/cluster/n1/join-token
// (peers always authenticate their raft RPCs with the secret it carries); later starts resume (same
// data dirs, each node keeps its token).
// Extra arguments are given to every node (e.g. `-- --sync never`).
// Ctrl-C (SIGINT) or SIGTERM is forwarded to each node by its PID; a second one kills them.
// A node removed from the cluster (leave) exits 78 when started again: the script says so and runs the
// others; delete its data dir to start it fresh (it then joins n1 again). Any other start failure stops all.
// Needs the workspace installed (`npm start` or `node scripts/pnpm.mjs install` once).
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const main = join(root, 'apps', 'broker-server', 'src', 'main.ts');
const tsx = join(root, 'node_modules', 'tsx', 'dist', 'esm', 'index.mjs');
const extra = process.argv.slice(2).filter((arg, i) => !(i === 0 && arg === '--'));
const ports = [8086, 8087, 8088];
const base = join(root, 'data', 'cluster');

if (!existsSync(tsx)) {
  console.error(`tsx is not installed: run \`node scripts/pnpm.mjs install\` (or \`npm start\`) in ${root} first.`);
  process.exit(1);
}
const resuming = existsSync(join(base, 'n1', 'raft'));
mkdirSync(base, { recursive: true });

/** @type {{name: string, url: string, child: import('node:child_process').ChildProcess, exited: Promise<number | null>}[]} */
const nodes = [];
let stopping = false;
/** Exit code of a node whose data dir belongs to a node removed from the cluster (see the README's exit codes). */
const EXIT_REMOVED = 78;

class NodeExited extends Error {
  constructor(name, code) {
    super(`${name} exited (${code}) before listening; see ${relative(process.cwd(), join(base, `${name}.log`))}`);
    this.node = name;
    this.code = code;
  }
}

function start(name, port, join_) {
  const url = `http://127.0.0.1:${port}`;
  const args = ['--conditions=@msg/source', '--import', tsx, main, '--data-dir', join(base, name), '--listen', `127.0.0.1:${port}`];
  if (join_) args.push('--join', join_);
  // The token goes in the environment, not the command line (which other users may read in ps).
  const env = join_ && !existsSync(join(base, name, 'join-token')) ? { ...process.env, MSG_JOIN_TOKEN: readFileSync(join(base, 'n1', 'join-token'), 'utf8').trim() } : process.env;
  args.push(...extra);
  const log = createWriteStream(join(base, `${name}.log`), { flags: 'a' });
  const child = spawn(process.execPath, args, { cwd: root, env, stdio: ['ignore', 'inherit', 'pipe'] });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1))));
  const listening = new Promise((resolve, reject) => {
    let buffered = '';
    child.stderr.on('data', (chunk) => {
      log.write(chunk);
      buffered += chunk.toString('utf8');
      for (let at = buffered.indexOf('\n'); at >= 0; at = buffered.indexOf('\n')) {
        const line = buffered.slice(0, at);
        buffered = buffered.slice(at + 1);
        if (line.includes('"msg":"listening"')) resolve(undefined);
        else if (line.includes('"reason":"removed from the cluster"')) node.removed = true;
        else if (!line.startsWith('{')) process.stderr.write(`${name}: ${line}\n`);
      }
    });
    void exited.then((code) => reject(new NodeExited(name, code)));
  });
  child.stderr.once('end', () => log.end());
  const node = { name, url, child, exited, up: false, removed: false };
  nodes.push(node);
  void listening.then(
    () => {
      node.up = true;
      void exited.then((code) => {
        node.up = false;
        if (stopping) return;
        const why = node.removed ? 'was removed from the cluster (leave) and stopped' : `exited (${code})`;
        console.error(`${name} (${url}) ${why}; see ${relative(process.cwd(), join(base, `${name}.log`))}`);
      });
    },
    () => undefined,
  );
  return listening;
}

function stop(signal) {
  if (stopping) {
    for (const { child } of nodes) if (child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
    return;
  }
  stopping = true;
  console.error(`\nstopping the cluster (${signal})...`);
  for (const { child } of nodes) if (child.exitCode === null && child.signalCode === null) process.kill(child.pid, signal);
}
process.on('SIGINT', () => stop('SIGINT'));
process.on('SIGTERM', () => stop('SIGTERM'));

try {
  const first = start('n1', ports[0]);
  // A first start waits for n1's new cluster (and its join token) before the others join it; a restart starts all three at once.
  if (!resuming) await first;
  const results = await Promise.allSettled([first, start('n2', ports[1], `http://127.0.0.1:${ports[0]}`), start('n3', ports[2], `http://127.0.0.1:${ports[0]}`)]);
  const failures = results.flatMap((r) => (r.status === 'rejected' ? [r.reason] : []));
  const removed = failures.filter((f) => f instanceof NodeExited && f.code === EXIT_REMOVED);
  const other = failures.find((f) => !removed.includes(f));
  if (other !== undefined) throw other;
  for (const f of removed) {
    console.error(
      `${f.node} was removed from the cluster (leave) and cannot serve from ${relative(process.cwd(), join(base, f.node))} again; ` +
        `delete that dir and run this script again to start it fresh (it joins n1).`,
    );
  }
  const up = nodes.filter((node) => node.up);
  if (up.length === 0) throw new Error('no node is running');
  console.log(`${up.length === 3 ? 'three-node cluster' : `cluster with ${up.length} of 3 nodes (${removed.map((f) => `${f.node} removed`).join(', ')})`} running (Ctrl-C stops it):`);
  for (const node of up) console.log(`  ${node.name} ${node.url}  data ${relative(process.cwd(), join(base, node.name))}  log ${relative(process.cwd(), join(base, `${node.name}.log`))}`);
} catch (error) {
  console.error(error instanceof Error ? error.message : error);
  stop('SIGTERM');
}
const codes = await Promise.all(nodes.map((node) => node.exited));
// A removed node's 78 is reported above and does not fail a run that served with the others.
process.exit(codes.every((code) => code === 0 || code === EXIT_REMOVED) && !process.exitCode ? 0 : 1);
