import { BrokerError, isU64 } from '@msg/wire';

/** A message to publish: the broker assigns its index. */
export interface PublishMessage {
  /** Message type, 0..65535 (types with bit 0x8000 are the broker's own). */
  type: number;
  /** Topic id, 0..2^64-1. */
  topicID: bigint;
  /** The payload; must not be empty (the protocol rejects empty data). */
  data: Uint8Array;
}

/**
 * Checks a message before it leaves, with the broker's own codes and texts
 * (and in its order): `MESSAGE_TYPE_REQUIRED` for a type that is not a u16,
 * `TOPIC_REQUIRED` for a topic id that is not a u64 bigint,
 * `MESSAGE_DATA_REQUIRED` for missing or empty data.
 */
export function validatePublishMessage(message: PublishMessage): void {
  const { type, topicID, data } = (message ?? {}) as Partial<PublishMessage>;
  if (typeof type !== 'number' || !Number.isInteger(type) || type < 0 || type > 0xffff) throw new BrokerError('MESSAGE_TYPE_REQUIRED');
  if (!isU64(topicID)) throw new BrokerError('TOPIC_REQUIRED');
  if (!(data instanceof Uint8Array) || data.byteLength === 0) throw new BrokerError('MESSAGE_DATA_REQUIRED');
}
