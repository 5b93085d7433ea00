export {
  ErrorCodes,
  BrokerError,
  isBrokerError,
  isErrorCode,
  errorCodeForText,
  type ErrorCode,
  type BrokerErrorDetails,
} from './errors.js';
export { MAX_U64, parseU64, parseU16, isU64 } from './u64.js';
export {
  MESSAGE_HEADER_SIZE,
  readHeader,
  writeHeader,
  writeFrameIndex,
  frameType,
  frameTopicID,
  frameIndex,
  frameDataLength,
  type MessageHeader,
} from './header.js';
export {
  MAX_DATA_LENGTH,
  assertValidMessage,
  encodedLength,
  encodeMessage,
  encodeMessageInto,
  encodeMessages,
  decodeMessage,
  type Message,
} from './message.js';
export { asFrame, encodeFrame, splitFrames, frameData, type Frame, type PublishFields } from './frame.js';
export { DEFAULT_MAX_DATA_LENGTH, MessageDecoder, decodeMessages, type DecoderOptions } from './decoder.js';
export {
  BROKER_MESSAGE_TYPE,
  MessageType,
  isBrokerMessageType,
  SET_TOPIC_MAX_INDEX_SIZE,
  encodeSetTopicMaxIndex,
  decodeSetTopicMaxIndex,
  type BrokerMessageType,
  type SetTopicMaxIndex,
} from './types.js';
export { Paths, Headers, Query, MESSAGES_CONTENT_TYPE } from './http.js';
