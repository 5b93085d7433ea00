import { FAULT_KINDS, runSimulation, type FaultKind, type SimApp } from './simulation.js';

/** What the command line asked for. */
export interface SimArgs {
  first: number;
  seeds: number;
  durationMs: number;
  trace: boolean;
  weights: Partial<Record<FaultKind, number>>;
  /** Run only seeds `s` with `s % shards === shard` (to spread a run over processes). */
  shard: number;
  shards: number;
  /** Stop at the first seed that fails (to find one). */
  untilFailure: boolean;
}

const USAGE = `usage: sim [--seeds N] [--seed S] [--duration MS] [--weights kind=W,...] [--shard I/N] [--trace]
  --seeds N        run N seeds (default 100), starting at S (default 1)
  --seed S         alone: replay seed S only
  --duration MS    virtual length of the faulty phase (default 6000)
  --weights k=W,.. weight of fault kinds (1 = default rate, 0 = off); kinds: ${FAULT_KINDS.join(', ')}
  --shard I/N      run only the seeds s with s % N == I (one process of N)
  --until-failure  stop at the first seed that fails
  --trace          print what happens`;

/** Parses the simulation's flags; throws with the usage text on bad input. */
export function parseSimArgs(args: readonly string[]): SimArgs {
  const flag = (name: string): string | undefined => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const seed = flag('--seed');
  const countFlag = flag('--seeds');
  const first = seed === undefined ? 1 : Number(seed);
  const seeds = seed === undefined || countFlag !== undefined ? Number(countFlag ?? 100) : 1;
  const durationMs = Number(flag('--duration') ?? 6000);
  const weights: Partial<Record<FaultKind, number>> = {};
  for (const part of (flag('--weights') ?? '').split(',').filter((p) => p.length > 0)) {
    const [kind, value] = part.split('=');
    const w = Number(value);
    if (!(FAULT_KINDS as readonly string[]).includes(kind ?? '') || !(w >= 0)) throw new Error(`bad weight "${part}"\n${USAGE}`);
    weights[kind as FaultKind] = w;
  }
  const [shard, shards] = (flag('--shard') ?? '0/1').split('/').map(Number) as [number, number];
  if (!Number.isSafeInteger(first) || !Number.isSafeInteger(seeds) || seeds < 1 || !(durationMs > 0) || !(shards >= 1) || !(shard >= 0 && shard < shards)) {
    throw new Error(USAGE);
  }
  return { first, seeds, durationMs, trace: args.includes('--trace'), weights, shard, shards, untilFailure: args.includes('--until-failure') };
}

/** Runs the seeds `args` names, printing one line per seed and a table of the faults injected; resolves with the failed count. */
export async function runSimCli(args: SimArgs, app?: SimApp | (() => SimApp), command = 'pnpm --filter raft-ts sim'): Promise<number> {
  let failed = 0;
  let ran = 0;
  const totals: Record<string, number> = {};
  const started = Date.now();
  for (let s = args.first; s < args.first + args.seeds; s++) {
    if (s % args.shards !== args.shard) continue;
    ran++;
    const result = await runSimulation(s, {
      durationMs: args.durationMs,
      weights: args.weights,
      ...(app ? { app } : {}),
      ...(args.trace ? { trace: (l: string) => console.log(l) } : {}),
    });
    for (const [k, v] of Object.entries(result.stats.faults)) totals[k] = (totals[k] ?? 0) + v;
    if (result.violations.length > 0) {
      failed++;
      const replay = `${command} --seed ${s}${args.durationMs === 6000 ? '' : ` --duration ${args.durationMs}`}`;
      console.log(`seed ${s}: FAILED (replay: ${replay})`);
      for (const v of result.violations) console.log(`  ${v}`);
      if (args.untilFailure) break;
    } else {
      const { faults, ...rest } = result.stats;
      console.log(`seed ${s}: ok ${JSON.stringify(rest)} faults ${JSON.stringify(faults)}`);
    }
  }
  console.log('faults injected, all seeds:');
  for (const [k, v] of Object.entries(totals).sort()) console.log(`  ${k.padEnd(26)} ${v}`);
  console.log(`${ran - failed}/${ran} seeds passed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return failed;
}

// Usage: pnpm --filter raft-ts sim [flags]; see USAGE.
if (import.meta.url === `file://${process.argv[1]}`) {
  let parsed: SimArgs;
  try {
    parsed = parseSimArgs(process.argv.slice(2));
  } catch (err) {
    console.error((err as Error).message);
    process.exit(2);
  }
  process.exitCode = (await runSimCli(parsed)) > 0 ? 1 : 0;
}
