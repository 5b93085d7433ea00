import { runSimulation } from './simulation.js';

// Usage: pnpm --filter raft-ts sim [--seeds N] [--seed S] [--duration MS] [--trace]
//   --seeds N      run N seeds (default 100), starting at S (default 1)
//   --seed S       alone: replay seed S only
//   --duration MS  virtual length of the faulty phase (default 6000)
//   --trace        print what happens
const args = process.argv.slice(2);
function flag(name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}
const seed = flag('--seed');
const countFlag = flag('--seeds');
const count = Number(countFlag ?? 100);
const durationMs = Number(flag('--duration') ?? 6000);
const traceOn = args.includes('--trace');
const first = seed === undefined ? 1 : Number(seed);
const seeds = seed === undefined || countFlag !== undefined ? count : 1;
if (!Number.isSafeInteger(first) || !Number.isSafeInteger(seeds) || seeds < 1 || !(durationMs > 0)) {
  console.error('usage: sim [--seeds N] [--seed S] [--duration MS] [--trace]');
  process.exit(2);
}
let failed = 0;
const started = Date.now();
for (let s = first; s < first + seeds; s++) {
  const result = await runSimulation(s, { durationMs, ...(traceOn ? { trace: (l: string) => console.log(l) } : {}) });
  if (result.violations.length > 0) {
    failed++;
    const replay = `pnpm --filter raft-ts sim --seed ${s}${flag('--duration') === undefined ? '' : ` --duration ${durationMs}`}`;
    console.log(`seed ${s}: FAILED (replay: ${replay})`);
    for (const v of result.violations) console.log(`  ${v}`);
  } else {
    console.log(`seed ${s}: ok ${JSON.stringify(result.stats)}`);
  }
}
console.log(`${seeds - failed}/${seeds} seeds passed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
process.exitCode = failed > 0 ? 1 : 0;
