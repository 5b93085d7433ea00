/**
 * The bytes of one message as §1 of the protocol spec lays them out: a
 * 22-byte big-endian header (type u16, topic id u64, index u64, data length
 * u32) and the data. Written from the spec, not with @msg/wire, so that the
 * raw-HTTP tests check the broker against the spec alone.
 */
export function frame(type: number, topicID: bigint, index: bigint, data: string): Buffer {
  const body = Buffer.from(data);
  const header = Buffer.alloc(22);
  header.writeUInt16BE(type, 0);
  header.writeBigUInt64BE(topicID, 2);
  header.writeBigUInt64BE(index, 10);
  header.writeUInt32BE(body.byteLength, 18);
  return Buffer.concat([header, body]);
}
