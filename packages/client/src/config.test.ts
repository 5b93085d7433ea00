import { describe, expect, it } from '@jest/globals';
import { makeTempDir } from '@msg/test-utils';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatConfig, loadConfig, parseBrokerURL, writeConfig } from './config.js';
import { ClientError } from './errors.js';

async function failure(promise: Promise<unknown>): Promise<ClientError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ClientError);
  return error as ClientError;
}

describe('loadConfig', () => {
  it('reads the original format', async () => {
    const path = join(await makeTempDir(), 'client.json');
    await writeFile(path, '{"urls":["http://h1:8086","https://h2:8087/ignored?x=1"]}\n');
    const config = await loadConfig(path);
    expect(config.urls.map((u) => u.href)).toEqual(['http://h1:8086/', 'https://h2:8087/']);
  });

  it('names a missing file', async () => {
    const path = join(await makeTempDir(), 'missing.json');
    const error = await failure(loadConfig(path));
    expect(error.code).toBe('CONFIG_NOT_FOUND');
    expect(error.message).toContain(path);
  });

  it('names a file that cannot be read', async () => {
    const dir = await makeTempDir();
    const error = await failure(loadConfig(dir));
    expect(error.code).toBe('CONFIG_UNREADABLE');
    expect(error.message).toContain(dir);
  });

  it('names a file that is not JSON', async () => {
    const path = join(await makeTempDir(), 'client.json');
    await writeFile(path, '{"urls": [');
    const error = await failure(loadConfig(path));
    expect(error.code).toBe('CONFIG_NOT_JSON');
    expect(error.message).toContain(path);
  });

  it.each([
    ['{}', 'urls'],
    ['[]', '(root)'],
    ['{"urls":"http://h1:8086"}', 'urls'],
    ['{"urls":[]}', 'at least one'],
    ['{"urls":["http://h1:8086", 7]}', 'urls.1'],
    ['{"urls":["ftp://h1"]}', 'urls.0: not an absolute http(s) URL'],
  ])('names the problem of the wrong shape %s', async (content, problem) => {
    const path = join(await makeTempDir(), 'client.json');
    await writeFile(path, content);
    const error = await failure(loadConfig(path));
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.message).toContain(problem);
    expect(error.message).toContain(path);
  });
});

describe('writeConfig', () => {
  it('replaces the file atomically and leaves no temp file', async () => {
    const dir = await makeTempDir();
    const path = join(dir, 'client.json');
    await writeConfig(path, { urls: [new URL('http://a:1')] });
    await writeConfig(path, { urls: [new URL('http://a:1'), new URL('http://b:2')] });
    expect(await readFile(path, 'utf8')).toBe('{"urls":["http://a:1","http://b:2"]}\n');
    expect(await readdir(dir)).toEqual(['client.json']);
    expect((await loadConfig(path)).urls.map((u) => u.origin)).toEqual(['http://a:1', 'http://b:2']);
  });

  it('fails with CONFIG_WRITE_FAILED and cleans up when it cannot write', async () => {
    const dir = await makeTempDir();
    const error = await failure(writeConfig(join(dir, 'no', 'such', 'dir.json'), { urls: [new URL('http://a:1')] }));
    expect(error.code).toBe('CONFIG_WRITE_FAILED');
    await mkdir(join(dir, 'target.json'));
    const onDir = await failure(writeConfig(join(dir, 'target.json'), { urls: [new URL('http://a:1')] }));
    expect(onDir.code).toBe('CONFIG_WRITE_FAILED');
    expect(await readdir(dir)).toEqual(['target.json']);
  });
});

describe('parseBrokerURL', () => {
  it('keeps http(s) origins only', () => {
    expect(parseBrokerURL('http://h:1/x')?.href).toBe('http://h:1/');
    expect(parseBrokerURL('file:///x')).toBeUndefined();
    expect(parseBrokerURL('h:1')).toBeUndefined();
    expect(formatConfig({ urls: [new URL('https://h')] })).toBe('{"urls":["https://h"]}\n');
  });
});
