export { loadConfig, usage, urlOf, ConfigError, SETTINGS, type ServerConfig, type LoadResult } from './config.js';
export { createLogger, type JsonLogger, type LogFormat, type LogLevel, type LoggerOptions } from './logger.js';
export { startServer, type RunningServer, type StartOptions } from './server.js';
export { createBrokerAdapter, type BrokerAdapter, type AdapterRaft, type AdapterBroker } from './broker-adapter.js';
export { ServerError, ServerErrorCodes, type ServerErrorCode } from './server-error.js';
export { ExitCodes, exitCodeFor, type ExitCode } from './exit-codes.js';
export { shutdownOnSignals, type SignalSource, type SignalShutdown } from './shutdown-on-signals.js';
export { leaveCluster, parseLeaveArgs, runLeave, leaveUsage, leaveExitCode, type LeaveOptions } from './leave.js';
