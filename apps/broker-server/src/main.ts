#!/usr/bin/env node
// The broker binary as it was before `msg`: `node dist/main.js <flags>` serves
// (the flags of `msg serve`), `node dist/main.js leave ...` removes a node, and
// every other subcommand of `msg` works here too. `msg` itself is cli/msg.ts.
import { runMsgProcess } from './cli/run.js';

await runMsgProcess(process.argv.slice(2), { compat: true });
