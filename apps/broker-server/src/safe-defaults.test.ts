import { describe, expect, it } from '@jest/globals';
import { exposureProblem, isLoopbackHost } from './safe-defaults.js';

describe('isLoopbackHost', () => {
  it('is true for localhost, 127.0.0.0/8, ::1 and mapped loopback only', () => {
    for (const host of ['localhost', 'LOCALHOST', '127.0.0.1', '127.9.8.7', '::1', '[::1]', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1']) expect([host, isLoopbackHost(host)]).toEqual([host, true]);
    for (const host of ['0.0.0.0', '::', '10.0.0.1', '128.0.0.1', '::ffff:10.0.0.1', 'broker.example', '::2', 'localhost.example']) expect([host, isLoopbackHost(host)]).toEqual([host, false]);
  });
});

describe('exposureProblem', () => {
  it('lets a client listener off loopback start with TLS, client authentication or --insecure only', () => {
    const open = { host: '0.0.0.0', tls: false, auth: false, insecure: false };
    expect(exposureProblem('client', open)).toMatch(/--tls-cert\/--tls-key.*--auth-file.*--insecure/);
    expect(exposureProblem('client', { ...open, tls: true })).toBeUndefined();
    expect(exposureProblem('client', { ...open, auth: true })).toBeUndefined();
    expect(exposureProblem('client', { ...open, insecure: true })).toBeUndefined();
    expect(exposureProblem('client', { ...open, host: '127.0.0.1' })).toBeUndefined();
  });

  it('lets a peer listener off loopback start with TLS or --insecure only: the auth file does not cover raft', () => {
    const open = { host: '10.0.0.1', tls: false, auth: true, insecure: false };
    expect(exposureProblem('peer', open)).toMatch(/--peer-tls-cert\/--peer-tls-key.*--insecure/);
    expect(exposureProblem('peer', { ...open, tls: true })).toBeUndefined();
    expect(exposureProblem('peer', { ...open, insecure: true })).toBeUndefined();
  });
});
