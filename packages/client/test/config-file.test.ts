import { describe, expect, it } from '@jest/globals';
import { makeTempDir, waitFor } from '@msg/test-utils';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Client } from '../src/index.js';
import { broker, defer, expectCode, fastOptions } from './helpers.js';

async function configPath(content?: string): Promise<string> {
  const path = join(await makeTempDir(), 'client.json');
  if (content !== undefined) await writeFile(path, content);
  return path;
}

function newClient(options: ConstructorParameters<typeof Client>[0] = {}): Client {
  const client = new Client(fastOptions(options));
  defer(() => client[Symbol.asyncDispose]());
  return client;
}

describe('Client.open with a config file', () => {
  it('reads the URLs of the file, which replace those given before', async () => {
    const path = await configPath('{"urls":["http://127.0.0.1:9001","http://127.0.0.1:9002"]}');
    const client = newClient({ urls: ['http://127.0.0.1:9999'] });
    await client.open(path);
    expect(client.urls.map((u) => u.origin)).toEqual(['http://127.0.0.1:9001', 'http://127.0.0.1:9002']);
    expect(client.url?.origin).toBe('http://127.0.0.1:9001');
  });

  it('names each bad file with a typed error and stays openable', async () => {
    const missing = await configPath();
    const client = newClient();
    const notFound = await expectCode(client.open(missing), 'ClientError', 'CONFIG_NOT_FOUND');
    expect(notFound.message).toContain(missing);
    await expectCode(client.open(await configPath('not json')), 'ClientError', 'CONFIG_NOT_JSON');
    const shape = await expectCode(client.open(await configPath('{"url":["http://a:1"]}')), 'ClientError', 'CONFIG_INVALID');
    expect(shape.message).toContain('urls');
    expect(client.opened).toBe(false);
    await client.open(await configPath('{"urls":["http://127.0.0.1:9001"]}'));
    expect(client.opened).toBe(true);
  });

  it('creates a missing file from the URLs it was given', async () => {
    const path = await configPath();
    const client = newClient({ urls: ['http://127.0.0.1:9001'], configPath: path });
    await client.open();
    expect(await readFile(path, 'utf8')).toBe('{"urls":["http://127.0.0.1:9001"]}\n');
  });

  it('stays unopened with CONFIG_WRITE_FAILED when a missing file cannot be created', async () => {
    const path = join(await makeTempDir(), 'no-such-dir', 'client.json');
    const client = newClient({ urls: ['http://127.0.0.1:9001'] });
    const error = await expectCode(client.open(path), 'ClientError', 'CONFIG_WRITE_FAILED');
    expect(error.message).toContain(path);
    expect(client.opened).toBe(false);
  });
});

describe('the ping loop', () => {
  it('rewrites the config file atomically when the cluster changes, and only then', async () => {
    const leader = await broker();
    const other = await broker();
    leader.knobs.pingURLs = [leader.url];
    const path = await configPath(JSON.stringify({ urls: [leader.url] }));
    const before = await stat(path);
    const client = newClient({ pingIntervalMs: 10 });
    await client.open(path);
    await waitFor(() => leader.count('/messaging/ping') >= 3);
    expect((await stat(path)).ino).toBe(before.ino);
    leader.knobs.pingURLs = [leader.url, other.url];
    await waitFor(async () => (await readFile(path, 'utf8')) === `${JSON.stringify({ urls: [leader.url, other.url] })}\n`);
    expect((await stat(path)).ino).not.toBe(before.ino);
    expect(await readdir(join(path, '..'))).toEqual(['client.json']);
    expect(client.urls.map((u) => u.origin)).toEqual([leader.url, other.url]);
  });

  it('keeps running after failed pings', async () => {
    const leader = await broker({ fail: () => 'INTERNAL' });
    const warnings: string[] = [];
    const client = newClient({ urls: [leader.url], pingIntervalMs: 10, retries: 0, logger: { warn: (m) => warnings.push(m) } });
    await client.open();
    await waitFor(() => leader.count('/messaging/ping') >= 3);
    expect(warnings[0]).toBe('ping failed');
    leader.knobs.fail = undefined;
    leader.knobs.pingURLs = [leader.url];
    const count = leader.count('/messaging/ping');
    await waitFor(() => leader.count('/messaging/ping') > count + 1);
  });
});
