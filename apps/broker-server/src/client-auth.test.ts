import { describe, expect, it } from '@jest/globals';
import { EventEmitter } from 'node:events';
import { writeFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { hashToken } from '@msg/http';
import { makeTempDir, waitFor } from '@msg/test-utils';
import { clientAuthConfigured, clientCertSubject, openClientAuth } from './client-auth.js';
import { createLogger } from './logger.js';

const file = (names: string[]): string =>
  JSON.stringify({ identities: names.map((name) => ({ name, tokenSha256: hashToken(`token-of-${name}`), permissions: { publish: ['*'] } })) });
const req = (token: string): IncomingMessage => ({ headers: { authorization: `Bearer ${token}` } }) as unknown as IncomingMessage;

describe('openClientAuth', () => {
  it('reloads on SIGHUP; a bad file keeps the identities in force, logged and counted; close stops listening', async () => {
    const path = join(await makeTempDir(), 'auth.json');
    await writeFile(path, file(['a']));
    const lines: string[] = [];
    const logger = createLogger('debug', (line) => lines.push(line));
    const signals = new EventEmitter();
    const auth = await openClientAuth(path, logger, { signals: signals as unknown as NodeJS.Process });
    expect(auth.authorizer.authenticate(req('token-of-a'))).toBe('a');

    await writeFile(path, file(['a', 'b']));
    signals.emit('SIGHUP');
    await waitFor(() => auth.authorizer.reloads(true) === 1 || undefined, { timeoutMs: 2000 });
    expect(auth.authorizer.authenticate(req('token-of-b'))).toBe('b');

    await writeFile(path, '{"identities":[{"name":"x","tokenSha256":"nothex","permissions":{}}]}');
    signals.emit('SIGHUP');
    await waitFor(() => auth.authorizer.reloads(false) === 1 || undefined, { timeoutMs: 2000 });
    expect(auth.authorizer.authenticate(req('token-of-b'))).toBe('b');
    const failed = lines.find((l) => l.includes('auth file reload failed'));
    expect(failed).toContain('identities[0].tokenSha256');
    expect(lines.join('\n')).not.toContain('token-of-');

    auth.close();
    expect(signals.listenerCount('SIGHUP')).toBe(0);
    expect(clientAuthConfigured({ authFile: path })).toBe(true);
    expect(clientAuthConfigured({})).toBe(false);
  });

  it('rejects a bad file at once, naming it (exit 64)', async () => {
    const path = join(await makeTempDir(), 'auth.json');
    await writeFile(path, '{"identities":[{"name":"x","permissions":{}}]}');
    const error = await openClientAuth(path, createLogger('error', () => undefined), { signals: null }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'INVALID_CONFIG' });
    expect((error as Error).message).toContain(`${path}: identities[0]`);
  });
});

describe('clientCertSubject', () => {
  const onSocket = (socket: object): IncomingMessage => ({ headers: {}, socket }) as unknown as IncomingMessage;
  const tlsSocket = (authorized: boolean, subject: Record<string, string | string[]>): object => ({ authorized, getPeerCertificate: () => ({ subject }) });

  it('formats a verified certificate’s subject as KEY=value in the certificate’s order, joined by ", "', () => {
    expect(clientCertSubject(onSocket(tlsSocket(true, { CN: 'svc-a' })))).toBe('CN=svc-a');
    expect(clientCertSubject(onSocket(tlsSocket(true, { O: 'acme', OU: ['a', 'b'], CN: 'svc-a' })))).toBe('O=acme, OU=a, OU=b, CN=svc-a');
  });

  it('is undefined without TLS, without a certificate, or for one that did not verify', () => {
    expect(clientCertSubject(onSocket({ remoteAddress: '127.0.0.1' }))).toBeUndefined();
    expect(clientCertSubject(onSocket(tlsSocket(false, { CN: 'svc-a' })))).toBeUndefined();
    expect(clientCertSubject(onSocket({ authorized: true, getPeerCertificate: () => ({}) }))).toBeUndefined();
  });
});
