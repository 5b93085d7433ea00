// Usage: pnpm --filter @msg/broker sim [--seeds N] [--seed S] [--duration MS] [--weights kind=W,...] [--shard I/N] [--trace]
// raft-ts's simulation with the real broker as every node's state machine, on the simulated disks.
import { parseSimArgs, runSimCli, type SimArgs } from 'raft-ts/simulation';
import { brokerApp } from './broker-app.js';

let args: SimArgs;
try {
  args = parseSimArgs(process.argv.slice(2));
} catch (err) {
  console.error((err as Error).message.replace('usage: sim', 'usage: pnpm --filter @msg/broker sim'));
  process.exit(2);
}
process.exitCode = (await runSimCli(args, brokerApp, 'pnpm --filter @msg/broker sim')) > 0 ? 1 : 0;
