#!/usr/bin/env node
// `msg`, the operator's command: `msg serve`, `msg cluster`, `msg status`, ...
// (see `msg --help` and docs/cli.md). Installed as the `msg` bin of @msg/broker-server.
import { runMsgProcess } from './run.js';

await runMsgProcess(process.argv.slice(2));
