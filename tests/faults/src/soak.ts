// `npm run soak -- --minutes N [--seed S] [--steps K] [--rounds R] [--nodes n] [--election-timeout-ms T] [--kinds a,b]`:
// seeded fault schedules, one fresh cluster each (seeds S, S+1, …), until N
// minutes have passed or R rounds ran; prints every fault as it happens, a
// failure report per failed round, and the summary table. Exit 1 on any
// violation, 2 when the prerequisites are missing.
import { parseArgs } from 'node:util';
import { removeLeftovers } from './network.js';
import { missingPrerequisite } from './prerequisites.js';
import { formatFailure, runSchedule, type RunReport } from './run-schedule.js';
import { FaultKinds, type FaultKind } from './schedule.js';
import { formatSummary, summarize } from './summary.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    seed: { type: 'string' },
    steps: { type: 'string', default: '30' },
    rounds: { type: 'string' },
    nodes: { type: 'string', default: '3' },
    'election-timeout-ms': { type: 'string' },
    kinds: { type: 'string' },
  },
});

const number = (name: string, text: string | undefined): number | undefined => {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 0) {
    console.error(`--${name}: want a non-negative integer, got ${text}`);
    process.exit(64);
  }
  return value;
};

const minutes = number('minutes', values.minutes)!;
const firstSeed = number('seed', values.seed) ?? Math.floor(Math.random() * 1_000_000);
const steps = number('steps', values.steps)!;
const rounds = number('rounds', values.rounds) ?? Infinity;
const nodes = number('nodes', values.nodes)!;
const electionTimeoutMs = number('election-timeout-ms', values['election-timeout-ms']);
const kinds = values.kinds?.split(',').map((k) => k.trim());
const unknown = kinds?.filter((k) => !(FaultKinds as readonly string[]).includes(k)) ?? [];
if (unknown.length > 0 || kinds?.length === 0) {
  console.error(`--kinds: want a comma-separated list of ${FaultKinds.join(', ')}; got ${values.kinds}`);
  process.exit(64);
}

const missing = await missingPrerequisite();
if (missing) {
  console.error(`soak: cannot run: ${missing}`);
  process.exit(2);
}
const leftovers = await removeLeftovers();
if (leftovers.length > 0) console.log(`removed leftovers of an earlier run: ${leftovers.join(' ')}`);

const deadline = Date.now() + minutes * 60_000;
const reports: RunReport[] = [];
let failed = false;
for (let round = 0; round < rounds && (round === 0 || Date.now() < deadline); round++) {
  const seed = firstSeed + round;
  console.log(`=== round ${round + 1}: seed ${seed}, ${steps} steps, ${nodes} nodes ===`);
  const report = await runSchedule({ seed, steps, nodes, ...(electionTimeoutMs ? { electionTimeoutMs } : {}), ...(kinds ? { kinds: kinds as FaultKind[] } : {}), echo: (line) => console.log(line) });
  reports.push(report);
  if (report.result.violations.length > 0) {
    failed = true;
    console.log(formatFailure(report, steps));
  }
}
console.log(formatSummary(summarize(reports)));
process.exit(failed ? 1 : 0);
