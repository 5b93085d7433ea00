import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { HttpTransport, PeerAuth, RaftNode } from 'raft-ts';
import { makeTempDir } from '@msg/test-utils';
import { Broker } from '../src/index.js';

async function example(dataDir: string): Promise<{ index: bigint; seen: string[] }> {
  // README:begin
  const broker = new Broker({ dir: join(dataDir, 'broker') });
  const transport = new HttpTransport({ auth: new PeerAuth({ secret: randomBytes(32) }) }); // how the node reaches its peers (signed)
  const node = new RaftNode({ dir: join(dataDir, 'raft'), url: 'http://127.0.0.1:8086', stateMachine: broker, transport });
  broker.attachLog(node);
  await broker.open(); // the state machine first: raft re-applies to it on open
  await node.open();
  if (node.state === 'uninitialized') await node.initialize(); // first start: a new single-node cluster
  for (let i = 0; i < 500 && !node.isLeader(); i++) await new Promise((resolve) => setTimeout(resolve, 10));

  const index = await broker.publish({ type: 1, topicID: 7n, data: new TextEncoder().encode('hello') });
  const seen: string[] = [];
  const reader = await broker.openTopicReader(7n, 0n); // { streaming: true } waits for more
  for await (const message of reader.messages()) seen.push(`${message.index}: ${new TextDecoder().decode(message.data)}`);
  // or `for await (const chunk of reader)`: raw frames, ready for an HTTP response

  await node.close();
  await broker.close();
  await transport.close();
  // README:end
  return { index, seen };
}

describe('README', () => {
  it('runs the example: publish on a single-node cluster and read it back', async () => {
    const { index, seen } = await example(await makeTempDir());
    expect(seen).toEqual([`${index}: hello`]);
  });

  it('shows exactly the code this test runs', () => {
    const readme = readFileSync(join(import.meta.dirname, '..', 'README.md'), 'utf8');
    const block = /## Example\n\n```ts\n([\s\S]*?)```/.exec(readme)?.[1];
    const source = readFileSync(join(import.meta.dirname, 'readme.test.ts'), 'utf8');
    const body = /\/\/ README:begin\n([\s\S]*?)\s*\/\/ README:end/.exec(source)?.[1];
    const dedent = (code: string): string => code.split('\n').map((line) => line.replace(/^ {2}/, '')).join('\n').trim();
    expect(block).toBeDefined();
    expect(dedent(body!)).toBe(block!.trim());
  });
});
