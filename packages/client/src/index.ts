export {
  Client,
  DEFAULT_PING_INTERVAL_MS,
  DEFAULT_RECONNECT_DELAY_MS,
  type ClientOptions,
  type BatchingOptions,
  type CallOptions,
} from './client.js';
export type { ClientTls } from './transport.js';
export { Conn, type ConnOptions, type ConnOpenOptions, type ConnState, type ConnHost } from './conn.js';
export { ClientError, ClientErrorCodes, isClientError, brokerErrorFromResponse, type ClientErrorCode, type ResponseHeaders } from './errors.js';
export { loadConfig, writeConfig, formatConfig, parseBrokerURL, type ClientConfig } from './config.js';
export { systemClock, type Clock, type TimerHandle } from './clock.js';
export { silentLogger, type Logger } from './logger.js';
export type { BackoffOptions } from './backoff.js';
export { validatePublishMessage, type PublishMessage } from './publish-message.js';
// Re-exported so that users of the client need not import @msg/wire for these.
export { BrokerError, ErrorCodes, isBrokerError, type ErrorCode, type Message } from '@msg/wire';
