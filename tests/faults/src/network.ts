import { mkdir, open, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, runSync, CommandError } from './command.js';
import { onExit } from './cleanup.js';

/** The /24 networks tried in turn (the first one free is used): `10.213.7.0/24` … `10.213.38.0/24`. */
export const DEFAULT_SUBNETS: readonly string[] = Array.from({ length: 32 }, (_v, i) => `10.213.${7 + i}.0/24`);

/** Root of the harness's mount points and data dirs: `<tmpdir>/msg-faults/<tag>/n<i>`. */
export const RUN_ROOT = join(tmpdir(), 'msg-faults');

/** Marks the harness's bridges (its alias) with the PID of the process that owns them. */
const OWNER = 'msg-faults pid=';
const TABLE = 'msgfaults';

/** One node's place in the network. */
export interface NetNode {
  /** 1-based. */
  readonly id: number;
  /** Its network namespace (`msgf<tag>-n<id>`). */
  readonly namespace: string;
  /** Its address on the bridge (`<subnet>.<10 + id>`). */
  readonly address: string;
  /** The size-limited filesystem (tmpfs) its data dir is on. */
  readonly diskDir: string;
  /** Its data dir, on {@link diskDir}. */
  readonly dataDir: string;
}

/** A directed cut: packets from node `from` to node `to` are dropped (ids, 1-based). */
export interface Cut {
  readonly from: number;
  readonly to: number;
}

/** Options of {@link Network.create}. */
export interface NetworkOptions {
  /** Number of nodes. */
  nodes: number;
  /**
   * Candidate /24 networks (`a.b.c.0/24`), tried in order; the first one no
   * interface of this machine uses and no other harness run claimed is taken.
   * Default: `MSG_FAULTS_SUBNET` (comma-separated) or {@link DEFAULT_SUBNETS}.
   */
  subnets?: readonly string[];
  /** Size of each node's tmpfs in bytes. Default 64 MiB. */
  diskBytes?: number;
}

/** The /24s to try: `MSG_FAULTS_SUBNET` (comma-separated `a.b.c.0/24`) or the defaults. */
export function configuredSubnets(env: NodeJS.ProcessEnv = process.env): readonly string[] {
  const value = env.MSG_FAULTS_SUBNET?.trim();
  return value ? value.split(',').map((s) => s.trim()) : DEFAULT_SUBNETS;
}

/** `a.b.c.0/24` → `a.b.c`; throws a RangeError on anything else. */
export function subnetPrefix(subnet: string): string {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.0\/24$/.exec(subnet);
  if (!match || match.slice(1).some((o) => Number(o) > 255)) throw new RangeError(`not an a.b.c.0/24 network: ${subnet}`);
  return `${match[1]}.${match[2]}.${match[3]}`;
}

function tagOf(prefix: string): string {
  const [, b, c] = prefix.split('.');
  return `${b}-${c}`;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The nftables ruleset of one namespace for `drops` (inbound sources, outbound destinations); `''` heals it. */
export function nftRuleset(dropFrom: readonly string[], dropTo: readonly string[]): string {
  const lines = [`table inet ${TABLE}`, `delete table inet ${TABLE}`];
  if (dropFrom.length === 0 && dropTo.length === 0) return `${lines.join('\n')}\n`;
  lines.push(`table inet ${TABLE} {`);
  lines.push('  chain input {', '    type filter hook input priority 0; policy accept;');
  if (dropFrom.length > 0) lines.push(`    ip saddr { ${dropFrom.join(', ')} } drop`);
  lines.push('  }', '  chain output {', '    type filter hook output priority 0; policy accept;');
  if (dropTo.length > 0) lines.push(`    ip daddr { ${dropTo.join(', ')} } drop`);
  lines.push('  }', '}');
  return `${lines.join('\n')}\n`;
}

/**
 * One bridge, one namespace and veth pair per node, a private /24, and a
 * tmpfs per node for its data dir: everything created by {@link create} and
 * removed by {@link close} (also, synchronously, if the process exits or is
 * signalled first; and, for a run that was SIGKILLed, by
 * {@link removeLeftovers} at the next start). The driver (this process, in
 * the root namespace) is `<subnet>.1` on the bridge.
 */
export class Network {
  /** `a.b.c` of the /24. */
  readonly prefix: string;
  /** The bridge's name (`mf<tag>`). */
  readonly bridge: string;
  /** This process's address on the bridge. */
  readonly driverAddress: string;
  readonly nodes: readonly NetNode[];
  readonly #runDir: string;
  readonly #diskBytes: number;
  #cuts: Cut[] = [];
  #closed = false;
  #unregister: () => void = () => {};

  private constructor(prefix: string, nodes: number, diskBytes: number) {
    const tag = tagOf(prefix);
    this.prefix = prefix;
    this.bridge = `mf${tag}`;
    this.driverAddress = `${prefix}.1`;
    this.#runDir = join(RUN_ROOT, tag);
    this.#diskBytes = diskBytes;
    this.nodes = Array.from({ length: nodes }, (_v, i) => {
      const id = i + 1;
      const diskDir = join(this.#runDir, `n${id}`);
      return { id, namespace: `msgf${tag}-n${id}`, address: `${prefix}.${10 + id}`, diskDir, dataDir: join(diskDir, 'data') };
    });
  }

  /** The current cuts (see {@link partition}). */
  get cuts(): readonly Cut[] {
    return this.#cuts;
  }

  /**
   * Claims the first free /24 of `options.subnets` (by creating its bridge,
   * which only one process can do) and builds the network. Rejects when none
   * is free; anything half-built is removed first.
   */
  static async create(options: NetworkOptions): Promise<Network> {
    const addresses = await run('ip', ['-4', '-o', 'addr', 'show']);
    for (const subnet of options.subnets ?? configuredSubnets()) {
      const prefix = subnetPrefix(subnet);
      if (addresses.includes(` ${prefix}.`)) continue;
      const network = new Network(prefix, options.nodes, options.diskBytes ?? 64 << 20);
      try {
        await run('ip', ['link', 'add', network.bridge, 'type', 'bridge']);
      } catch (error) {
        if (error instanceof CommandError && /exists/i.test(error.stderr)) continue;
        throw error;
      }
      network.#unregister = onExit(() => network.closeSync());
      try {
        await network.#build();
      } catch (error) {
        await network.close();
        throw error;
      }
      return network;
    }
    throw new Error(`no free /24 among ${(options.subnets ?? configuredSubnets()).join(' ')} (set MSG_FAULTS_SUBNET)`);
  }

  async #build(): Promise<void> {
    await run('ip', ['link', 'set', 'dev', this.bridge, 'alias', `${OWNER}${process.pid}`]);
    await run('ip', ['addr', 'add', `${this.driverAddress}/24`, 'dev', this.bridge]);
    await run('ip', ['link', 'set', this.bridge, 'up']);
    for (const node of this.nodes) {
      const host = `${this.bridge}n${node.id}`;
      const peer = `${host}p`;
      await run('ip', ['netns', 'add', node.namespace]);
      await run('ip', ['link', 'add', host, 'type', 'veth', 'peer', 'name', peer]);
      await run('ip', ['link', 'set', peer, 'netns', node.namespace]);
      await run('ip', ['link', 'set', host, 'master', this.bridge]);
      await run('ip', ['link', 'set', host, 'up']);
      await run('ip', ['-n', node.namespace, 'addr', 'add', `${node.address}/24`, 'dev', peer]);
      await run('ip', ['-n', node.namespace, 'link', 'set', peer, 'up']);
      await run('ip', ['-n', node.namespace, 'link', 'set', 'lo', 'up']);
      await mkdir(node.diskDir, { recursive: true });
      await run('mount', ['-t', 'tmpfs', '-o', `size=${this.#diskBytes}`, 'tmpfs', node.diskDir]);
      await mkdir(node.dataDir);
    }
  }

  /** The node with id `id` (1-based). */
  node(id: number): NetNode {
    const node = this.nodes[id - 1];
    if (!node) throw new RangeError(`no node ${id}`);
    return node;
  }

  /**
   * Replaces the partition by `cuts`: for each cut, node `from` drops what it
   * would send to `to` (its nft output chain) and `to` drops what comes from
   * `from` (its input chain). Cuts in one direction only make a one-way
   * partition. The driver is never cut off. `[]` heals everything.
   */
  async partition(cuts: readonly Cut[]): Promise<void> {
    for (const cut of cuts) {
      this.node(cut.from);
      this.node(cut.to);
    }
    this.#cuts = [...cuts];
    await Promise.all(
      this.nodes.map((node) => {
        const dropFrom = cuts.filter((c) => c.to === node.id).map((c) => this.node(c.from).address);
        const dropTo = cuts.filter((c) => c.from === node.id).map((c) => this.node(c.to).address);
        return run('ip', ['netns', 'exec', node.namespace, 'nft', '-f', '-'], { input: nftRuleset([...new Set(dropFrom)], [...new Set(dropTo)]) });
      }),
    );
  }

  /** Removes every cut. */
  async heal(): Promise<void> {
    await this.partition([]);
  }

  /** The rules in force in a node's namespace (`nft list ruleset`), for logs and tests. */
  async rules(id: number): Promise<string> {
    return run('ip', ['netns', 'exec', this.node(id).namespace, 'nft', 'list', 'ruleset']);
  }

  /**
   * Fills node `id`'s filesystem with a filler file until a write fails with
   * ENOSPC; resolves with the bytes written. Rejects on any other error.
   */
  async fillDisk(id: number): Promise<number> {
    const file = await open(join(this.node(id).diskDir, 'filler'), 'a');
    let written = 0;
    try {
      for (const size of [1 << 20, 4096, 512]) {
        const chunk = Buffer.alloc(size);
        for (;;) {
          try {
            written += (await file.write(chunk)).bytesWritten;
          } catch (error) {
            if ((error as NodeJS.ErrnoException).code === 'ENOSPC') break;
            throw error;
          }
        }
      }
    } finally {
      await file.close();
    }
    return written;
  }

  /** Deletes node `id`'s filler file (no error if there is none). */
  async freeDisk(id: number): Promise<void> {
    await unlink(join(this.node(id).diskDir, 'filler')).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
  }

  /** Kills what still runs in the namespaces (by PID), removes namespaces, links and mounts. Safe to call twice. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#unregister();
    // Heal first: a socket closed behind a drop rule would keep retrying
    // (and keep its namespace alive in the kernel) for minutes.
    await Promise.all(this.nodes.map((node) => run('ip', ['netns', 'exec', node.namespace, 'nft', '-f', '-'], { input: nftRuleset([], []) }).catch(() => '')));
    for (const node of this.nodes) {
      for (const pid of (await run('ip', ['netns', 'pids', node.namespace]).catch(() => '')).split(/\s+/).filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // Gone already.
        }
      }
    }
    for (const node of this.nodes) {
      await run('umount', [node.diskDir]).catch(() => run('umount', ['-l', node.diskDir]).catch(() => ''));
      await run('ip', ['netns', 'del', node.namespace]).catch(() => '');
      await run('ip', ['link', 'del', `${this.bridge}n${node.id}`]).catch(() => '');
    }
    await run('ip', ['link', 'del', this.bridge]).catch(() => '');
    await rm(this.#runDir, { recursive: true, force: true });
  }

  /** {@link close}, synchronously (exit and signal handlers). */
  closeSync(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#unregister();
    removeTagSync(tagOf(this.prefix), this.nodes.map((n) => n.namespace));
  }
}

function removeTagSync(tag: string, namespaces: readonly string[]): void {
  for (const ns of namespaces) runSync('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], nftRuleset([], []));
  for (const ns of namespaces) {
    for (const pid of (runSync('ip', ['netns', 'pids', ns]) ?? '').split(/\s+/).filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // Gone already.
      }
    }
  }
  const dir = join(RUN_ROOT, tag);
  const mounts = (runSync('cat', ['/proc/mounts']) ?? '').split('\n').map((l) => l.split(' ')[1] ?? '');
  for (const mount of mounts.filter((m) => m.startsWith(`${dir}/`))) {
    if (runSync('umount', [mount]) === undefined) runSync('umount', ['-l', mount]);
  }
  for (const ns of namespaces) runSync('ip', ['netns', 'del', ns]);
  for (const line of (runSync('ip', ['-o', 'link', 'show']) ?? '').split('\n')) {
    const name = /^\d+: ([^:@\s]+)/.exec(line)?.[1];
    if (name?.startsWith(`mf${tag}n`)) runSync('ip', ['link', 'del', name]);
  }
  runSync('ip', ['link', 'del', `mf${tag}`]);
  runSync('rm', ['-rf', dir]);
}

/**
 * Removes what earlier runs of the harness left behind when they died
 * without cleaning up (SIGKILL): bridges `mf<tag>` whose owner PID is gone,
 * and namespaces `msgf<tag>-*` without a live owner, with their processes
 * (by PID) and mounts. Another live run's network is left alone. Resolves
 * with the names removed.
 */
export async function removeLeftovers(): Promise<string[]> {
  const removed: string[] = [];
  const links = JSON.parse(await run('ip', ['-j', '-d', 'link', 'show', 'type', 'bridge'])) as { ifname: string; ifalias?: string }[];
  const veths = (JSON.parse(await run('ip', ['-j', 'link', 'show', 'type', 'veth'])) as { ifname: string }[]).map((l) => /^mf(\d{1,3}-\d{1,3})n\d+$/.exec(l.ifname)?.[1]);
  const live = new Set<string>();
  const dead = new Set<string>();
  for (const link of links) {
    const match = /^mf(\d{1,3}-\d{1,3})$/.exec(link.ifname);
    if (!match) continue;
    const owner = link.ifalias?.startsWith(OWNER) ? Number(link.ifalias.slice(OWNER.length)) : NaN;
    if (Number.isInteger(owner) && isAlive(owner)) live.add(match[1]!);
    else dead.add(match[1]!);
  }
  const namespaces = (await run('ip', ['netns', 'list'])).split('\n').map((l) => l.split(' ')[0] ?? '');
  const byTag = new Map<string, string[]>();
  for (const ns of namespaces) {
    const match = /^msgf(\d{1,3}-\d{1,3})-n\d+$/.exec(ns);
    if (!match || live.has(match[1]!)) continue;
    byTag.set(match[1]!, [...(byTag.get(match[1]!) ?? []), ns]);
  }
  for (const tag of dead) if (!byTag.has(tag)) byTag.set(tag, []);
  // Host ends of veth pairs whose bridge is gone.
  for (const tag of veths) if (tag !== undefined && !live.has(tag) && !byTag.has(tag)) byTag.set(tag, []);
  // Mounts of a run that died half-way through its cleanup.
  for (const line of (await run('cat', ['/proc/mounts'])).split('\n')) {
    const mount = line.split(' ')[1] ?? '';
    const tag = mount.startsWith(`${RUN_ROOT}/`) ? mount.slice(RUN_ROOT.length + 1).split('/')[0]! : '';
    if (/^\d{1,3}-\d{1,3}$/.test(tag) && !live.has(tag) && !byTag.has(tag)) byTag.set(tag, []);
  }
  for (const [tag, list] of byTag) {
    removeTagSync(tag, list);
    removed.push(`mf${tag}`, ...list);
  }
  return removed;
}
