import { describe, expect, it } from '@jest/globals';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTempDir } from '@msg/test-utils';
import { deadURL, FakeStore } from './fake-broker.js';
import { broker, bytes } from './helpers.js';
import { codeBlocks, packageDir, runScript, tsx } from './run-script.js';

const examples = join(packageDir, 'examples');

/** Runs an example of examples/ against the sources of the package (`@msg/client` resolves to src/). */
async function runExample(name: string, args: readonly string[], cwd?: string): Promise<string> {
  const result = await runScript(tsx, ['--conditions=@msg/source', join(examples, name), ...args], {
    cwd: cwd ?? (await makeTempDir()),
    timeoutMs: 20_000,
  });
  expect({ code: result.code, timedOut: result.timedOut, stderr: result.stderr }).toEqual({ code: 0, timedOut: false, stderr: '' });
  return result.stdout;
}

describe('README.md', () => {
  it('shows every file of examples/ verbatim, and no code that is not one of them', async () => {
    const readme = await readFile(join(packageDir, 'README.md'), 'utf8');
    const blocks = codeBlocks(readme).filter((block) => block.lang !== 'sh');
    const files = (await readdir(examples)).filter((name) => name.endsWith('.mjs')).sort();
    expect(blocks.map((block) => block.example).sort()).toEqual(files.map((name) => `examples/${name}`));
    for (const block of blocks) {
      expect({ file: block.example, lang: block.lang, code: block.code }).toEqual({
        file: block.example,
        lang: 'js',
        code: await readFile(join(packageDir, block.example!), 'utf8'),
      });
    }
  });
});

describe('the README examples', () => {
  it('quickstart publishes, reads its messages back and heartbeats', async () => {
    const b = await broker();
    expect(await runExample('quickstart.mjs', [b.url])).toBe('read 3 messages: hello brave world\n');
    expect(b.count('/messaging/batch')).toBe(1);
    expect(b.store.heartbeats).toEqual([{ topicID: 7n, index: 3n }]);
  });

  it('exactly-once publishes once though the first answer is lost', async () => {
    const b = await broker({ dropAnswers: 1 });
    expect(await runExample('exactly-once.mjs', [b.url])).toBe('invoice 1001 paid: committed once, at index 1\n');
    // Sent twice (the first answer was lost), stored once: the retry carried the same producer and sequence.
    expect(b.count('/messaging/messages', 'POST')).toBe(2);
    expect(b.store.from(9n, 0n)).toHaveLength(1);
    expect(b.count('/messaging/producers', 'GET')).toBe(1);
  });

  it('consume prints a topic from an index and heartbeats the last one', async () => {
    const b = await broker();
    for (const word of ['one', 'two', 'three', 'four']) b.store.append(1, 7n, bytes(word));
    expect(await runExample('consume.mjs', [b.url, '7', '2', '2'])).toBe('2: two\n3: three\n');
    expect(b.store.heartbeats.at(-1)).toEqual({ topicID: 7n, index: 3n });
  });

  it('failover finds the leader past a dead URL and a follower, and persists the cluster', async () => {
    const store = new FakeStore();
    const leader = await broker({}, store);
    const follower = await broker({ role: 'follower', leaderURL: leader.url }, store);
    leader.knobs.pingURLs = [leader.url, follower.url];
    const cwd = await makeTempDir();
    // Every broker listed: a redirect is followed only to a known member.
    const out = await runExample('failover.mjs', [await deadURL(), follower.url, leader.url], cwd);
    expect(out).toBe(`published at index 1 on the leader ${leader.url}\ncluster: ${leader.url} ${follower.url}\n`);
    expect(JSON.parse(await readFile(join(cwd, 'msg-client.json'), 'utf8'))).toEqual({ urls: [leader.url, follower.url] });
  });

  it('errors shows the codes of a refused message, a cancelled call, a reclaimed segment and a closed client', async () => {
    const b = await broker({ firstIndex: 2n });
    for (const word of ['one', 'two', 'three']) b.store.append(1, 9n, bytes(word));
    expect(await runExample('errors.mjs', [b.url])).toBe(
      [
        'refused: MESSAGE_DATA_REQUIRED (message data required)',
        'cancelled: ABORTED',
        'reclaimed: resuming at index 2',
        'read index 2',
        'read index 3',
        'after close: CLIENT_CLOSED',
        '',
      ].join('\n'),
    );
  });
});
