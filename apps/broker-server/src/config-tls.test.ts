import { describe, expect, it } from '@jest/globals';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTempDir } from '@msg/test-utils';
import { ConfigError, loadConfig, type ServerConfig } from './config.js';

async function run(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<ServerConfig> {
  const result = await loadConfig(argv, env, '/srv');
  if (result.kind !== 'run') throw new Error('expected a config');
  return result.config;
}

async function failure(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<ConfigError> {
  const error = await loadConfig(argv, env, '/srv').catch((e: unknown) => e);
  expect(error).toBeInstanceOf(ConfigError);
  return error as ConfigError;
}

describe('loadConfig: TLS', () => {
  it('takes the client listener\'s certificate, key and CA from flags, variables or file keys, as paths from the working dir', async () => {
    const config = await run(['--tls-cert', 'node.crt', '--tls-key', 'node.key', '--tls-ca', '/etc/ca.crt']);
    expect(config.tls).toEqual({ cert: '/srv/node.crt', key: '/srv/node.key', ca: '/etc/ca.crt' });
    expect((await run([], { MSG_TLS_CERT: 'a.crt', MSG_TLS_KEY: 'a.key' })).tls).toEqual({ cert: '/srv/a.crt', key: '/srv/a.key', ca: undefined });
    const file = join(await makeTempDir(), 'broker.json');
    await writeFile(file, JSON.stringify({ tlsCert: 'f.crt', tlsKey: 'f.key', tlsCa: 'f-ca.crt' }));
    expect((await run(['--config', file])).tls).toEqual({ cert: '/srv/f.crt', key: '/srv/f.key', ca: '/srv/f-ca.crt' });
    expect((await run([])).tls).toBeUndefined();
  });

  it('needs both the certificate and the key, and a CA only with them', async () => {
    expect((await failure(['--tls-cert', 'a.crt'])).message).toMatch(/--tls-cert and --tls-key/);
    expect((await failure(['--tls-key', 'a.key'])).message).toMatch(/--tls-cert and --tls-key/);
    expect((await failure(['--tls-ca', 'ca.crt'])).message).toMatch(/--tls-cert and --tls-key/);
    expect((await failure(['--peer-listen', '127.0.0.1:0', '--peer-tls-cert', 'p.crt'])).message).toMatch(/--peer-tls-cert and --peer-tls-key/);
  });

  it('advertises https:// URLs by default when TLS is on', async () => {
    const config = await run(['--listen', '127.0.0.1:9443', '--tls-cert', 'a.crt', '--tls-key', 'a.key', '--peer-listen', '127.0.0.1:9444']);
    expect(config.advertiseURL).toBe('https://127.0.0.1:9443');
    expect(config.peerAdvertiseURL).toBe('https://127.0.0.1:9444');
  });

  it('secures peer traffic with --peer-tls-* on the peer listener, else with the client listener\'s files', async () => {
    const client = ['--tls-cert', 'a.crt', '--tls-key', 'a.key', '--tls-ca', 'ca.crt'];
    expect((await run(client)).peerTls).toEqual({ cert: '/srv/a.crt', key: '/srv/a.key', ca: '/srv/ca.crt' });
    const peer = ['--peer-listen', '127.0.0.1:0', '--peer-tls-cert', 'p.crt', '--peer-tls-key', 'p.key', '--peer-tls-ca', 'pca.crt'];
    expect((await run([...client, ...peer])).peerTls).toEqual({ cert: '/srv/p.crt', key: '/srv/p.key', ca: '/srv/pca.crt' });
    expect((await run(peer)).tls).toBeUndefined();
    expect((await run([])).peerTls).toBeUndefined();
    expect((await failure(['--peer-tls-cert', 'p.crt', '--peer-tls-key', 'p.key'])).message).toMatch(/--peer-listen/);
  });
});

describe('loadConfig: safe defaults', () => {
  const fix = /--tls-cert\/--tls-key.*--auth-file.*--insecure/;

  it('refuses a client listener on a non-loopback address without TLS or client authentication, naming what to configure', async () => {
    for (const listen of ['0.0.0.0:0', '[::]:0', '10.1.2.3:8086', 'broker.example:8086']) {
      const error = await failure(['--listen', listen, '--advertise-url', 'http://10.1.2.3:8086']);
      expect(error.setting).toBe('--listen');
      expect(error.message).toMatch(fix);
    }
    expect((await failure([], { MSG_LISTEN: '0.0.0.0:0', MSG_ADVERTISE_URL: 'http://10.1.2.3:8086' })).setting).toBe('MSG_LISTEN');
  });

  it('starts there with TLS, with --auth-file, or with --insecure (flag, MSG_INSECURE or the key insecure)', async () => {
    const wild = ['--listen', '0.0.0.0:0', '--advertise-url', 'https://10.1.2.3:8086'];
    expect((await run([...wild, '--tls-cert', 'a.crt', '--tls-key', 'a.key'])).insecure).toBe(false);
    expect((await run([...wild, '--insecure'])).insecure).toBe(true);
    expect((await run([...wild, '--auth-file', 'auth.json'])).insecure).toBe(false);
    expect((await run(wild, { MSG_INSECURE: 'true' })).insecure).toBe(true);
    expect((await failure(wild, { MSG_INSECURE: 'false' })).message).toMatch(fix);
    const file = join(await makeTempDir(), 'broker.json');
    await writeFile(file, JSON.stringify({ insecure: true }));
    expect((await run([...wild, '--config', file])).insecure).toBe(true);
  });

  it('keeps loopback open by default', async () => {
    for (const listen of ['127.0.0.1:0', '127.0.0.2:0', 'localhost:0', '[::1]:0']) expect((await run(['--listen', listen])).insecure).toBe(false);
  });

  it('refuses a peer listener on a non-loopback address without peer TLS, unless --insecure', async () => {
    const peer = ['--peer-listen', '0.0.0.0:0', '--peer-advertise-url', 'http://10.1.2.3:9000'];
    const error = await failure(peer);
    expect(error.setting).toBe('--peer-listen');
    expect(error.message).toMatch(/--peer-tls-cert\/--peer-tls-key.*--insecure/);
    await run([...peer, '--insecure']);
    await run([...peer, '--peer-tls-cert', 'p.crt', '--peer-tls-key', 'p.key']);
  });
});
