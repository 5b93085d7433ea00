import { BrokerError } from './errors.js';

/** Flag bit of message types reserved for the broker's own messages. */
export const BROKER_MESSAGE_TYPE = 0x8000;

/** Message types the broker itself defines. */
export const MessageType = {
  /** A reader reports the highest index it has stored for a topic. Topic 0, 16-byte data. */
  SetTopicMaxIndex: BROKER_MESSAGE_TYPE | 0x00,
  /** A client message published with a producer id and sequence, for deduplication (the broker's log only; topics get the message itself). */
  ProducedMessage: BROKER_MESSAGE_TYPE | 0x01,
} as const;

/** One of {@link MessageType}'s values. */
export type BrokerMessageType = (typeof MessageType)[keyof typeof MessageType];

/** True when `type` has the {@link BROKER_MESSAGE_TYPE} bit. */
export function isBrokerMessageType(type: number): boolean {
  return (type & BROKER_MESSAGE_TYPE) !== 0;
}

/** Bytes of a SetTopicMaxIndex payload: topic id u64 ‖ index u64, big-endian. */
export const SET_TOPIC_MAX_INDEX_SIZE = 16;

/** The payload of a {@link MessageType.SetTopicMaxIndex} message. */
export interface SetTopicMaxIndex {
  topicID: bigint;
  index: bigint;
}

/** Encodes a SetTopicMaxIndex payload (16 bytes). */
export function encodeSetTopicMaxIndex(value: SetTopicMaxIndex): Uint8Array {
  const out = new Uint8Array(SET_TOPIC_MAX_INDEX_SIZE);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt.asUintN(64, value.topicID));
  view.setBigUint64(8, BigInt.asUintN(64, value.index));
  return out;
}

/**
 * Decodes a SetTopicMaxIndex payload. Anything but exactly 16 bytes is
 * `INVALID_MESSAGE` (the original crashed on short data).
 */
export function decodeSetTopicMaxIndex(data: Uint8Array): SetTopicMaxIndex {
  if (data.byteLength !== SET_TOPIC_MAX_INDEX_SIZE) {
    throw new BrokerError('INVALID_MESSAGE', {
      message: `invalid message: SetTopicMaxIndex data must be ${SET_TOPIC_MAX_INDEX_SIZE} bytes, got ${data.byteLength}`,
    });
  }
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  return { topicID: view.getBigUint64(0), index: view.getBigUint64(8) };
}
