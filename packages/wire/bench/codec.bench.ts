// Codec throughput for 100-byte messages: encode and decode, messages per second.
import { decodeMessage, encodeMessage, encodeMessages, MessageDecoder, type Message } from '../src/index.js';

const N = 1_000_000;
const data = new Uint8Array(100).fill(7);

function rate(label: string, count: number, run: () => void): void {
  run(); // warm up
  const start = process.hrtime.bigint();
  run();
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  console.log(`${label.padEnd(44)} ${Math.round(count / seconds).toLocaleString('en-US').padStart(14)} msg/s`);
}

rate('wire: encode (100-byte data)', N, () => {
  for (let i = 0; i < N; i++) encodeMessage({ type: 1, topicID: 7n, index: BigInt(i), data });
});

const frame = encodeMessage({ type: 1, topicID: 7n, index: 1n, data });
rate('wire: decode one frame (100-byte data)', N, () => {
  for (let i = 0; i < N; i++) decodeMessage(frame);
});

const messages: Message[] = Array.from({ length: 10_000 }, (_, i) => ({ type: 1, topicID: 7n, index: BigInt(i), data }));
const stream = encodeMessages(messages);
const chunks: Uint8Array[] = [];
for (let at = 0; at < stream.byteLength; at += 65536) chunks.push(stream.subarray(at, at + 65536));
rate('wire: MessageDecoder over 64 KiB chunks', 100 * messages.length, () => {
  for (let round = 0; round < 100; round++) {
    const decoder = new MessageDecoder();
    for (const chunk of chunks) decoder.push(chunk);
    decoder.end();
  }
});
