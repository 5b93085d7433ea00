// The deterministic simulation as a dev-only entry point (`raft-ts/simulation`, under the
// `@msg/source` condition only; not published): other packages of this repository run their
// own state machine on it (`SimApp`), on the same faulty network and disks.
export { FAULT_KINDS, runSimulation, textApp, type FaultKind, type SimApp, type SimAppNode, type SimOptions, type SimResult, type SimStats } from './simulation.js';
export { parseSimArgs, runSimCli, type SimArgs } from './cli.js';
export { SimDisk, SECTOR, type ArmedFault, type DiskEvent, type IoErrorCode, type SimFileHandle, type SimFileSystem } from './sim-disk.js';
export { SimNetwork, type NetworkFaults } from './sim-network.js';
export { Scheduler } from './scheduler.js';
export { Prng } from './prng.js';
