import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { createHash, createHmac, hkdfSync } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { isRaftError } from '../errors.js';
import { PeerAuth, PeerAuthHeaders, type PeerAuthOptions } from './peer-auth.js';

const SECRET = Buffer.alloc(32, 9);
const TARGET = 'http://10.0.0.2:8086';
const BODY = Buffer.from('{"term":3}');

/** A signer and a verifier (two nodes) sharing a settable clock. */
function pair(options: PeerAuthOptions = {}): { signer: PeerAuth; verifier: PeerAuth; clock: { now: number } } {
  const clock = { now: 1_700_000_000_000 };
  const now = (): number => clock.now;
  return { signer: new PeerAuth({ secret: SECRET, now, ...options }), verifier: new PeerAuth({ secret: SECRET, now, ...options }), clock };
}

function reasonOf(result: ReturnType<PeerAuth['verify']>): string {
  return result.ok ? 'ok' : result.reason;
}

describe('PeerAuth', () => {
  it('signs as documented: HKDF-derived key, HMAC-SHA256 of the canonical string, in four headers', () => {
    const signer = new PeerAuth({ secret: SECRET, now: () => 1234, randomBytes: (n) => Buffer.alloc(n, 0xab) });
    const headers = signer.sign('appendEntries', `${TARGET}/`, BODY);
    const nonce = `${Buffer.alloc(16, 0xab).toString('base64url')}.1`;
    const key = Buffer.from(hkdfSync('sha256', SECRET, Buffer.alloc(0), 'raft-ts peer-auth v1', 32));
    const canonical = ['raft-ts-peer-auth-v1', 'POST', 'append', TARGET, '1234', nonce, createHash('sha256').update(BODY).digest('hex')].join('\n');
    expect(headers).toEqual({
      [PeerAuthHeaders.timestamp]: '1234',
      [PeerAuthHeaders.nonce]: nonce,
      [PeerAuthHeaders.target]: TARGET,
      [PeerAuthHeaders.signature]: createHmac('sha256', key).update(canonical).digest('base64url'),
    });
    // Each request gets the next sequence.
    expect(signer.sign('appendEntries', TARGET, BODY)[PeerAuthHeaders.nonce]).toMatch(/\.2$/);
  });

  it('accepts what a peer with the same secret signed, once', () => {
    const { signer, verifier } = pair();
    const headers = signer.sign('requestVote', TARGET, BODY);
    expect(verifier.verify('vote', headers, BODY, TARGET)).toEqual({ ok: true });
    expect(reasonOf(verifier.verify('vote', headers, BODY, TARGET))).toBe('replay');
    expect(verifier.accepted).toBe(1);
    expect(verifier.rejected.replay).toBe(1);
    expect(verifier.rejectedTotal).toBe(1);
  });

  it('refuses a missing or malformed header, another secret, an altered body, rpc or target', () => {
    const { signer, verifier } = pair();
    const good = (): IncomingHttpHeaders => signer.sign('requestVote', TARGET, BODY);
    for (const name of Object.values(PeerAuthHeaders)) {
      const headers = good();
      delete headers[name];
      expect(reasonOf(verifier.verify('vote', headers, BODY))).toBe('missing');
    }
    const malformed: [string, string][] = [
      [PeerAuthHeaders.timestamp, '12.5'],
      [PeerAuthHeaders.timestamp, '-1'],
      [PeerAuthHeaders.nonce, 'abc'],
      [PeerAuthHeaders.nonce, `${'A'.repeat(22)}.0`],
      [PeerAuthHeaders.nonce, `${'A'.repeat(21)}.1`],
      [PeerAuthHeaders.signature, 'short'],
      [PeerAuthHeaders.target, ''],
    ];
    for (const [name, value] of malformed) expect(reasonOf(verifier.verify('vote', { ...good(), [name]: value }, BODY))).toBe('malformed');
    expect(reasonOf(verifier.verify('nope', good(), BODY))).toBe('malformed');
    const other = new PeerAuth({ secret: Buffer.alloc(32, 1), now: () => 1_700_000_000_000 });
    expect(reasonOf(verifier.verify('vote', other.sign('requestVote', TARGET, BODY), BODY))).toBe('bad-signature');
    expect(reasonOf(verifier.verify('vote', good(), Buffer.from('{"term":4}')))).toBe('bad-signature');
    expect(reasonOf(verifier.verify('join', good(), BODY))).toBe('bad-signature');
    expect(reasonOf(verifier.verify('vote', { ...good(), [PeerAuthHeaders.target]: 'http://10.0.0.3:8086' }, BODY))).toBe('bad-signature');
    expect(reasonOf(verifier.verify('vote', { ...good(), [PeerAuthHeaders.timestamp]: '1700000000001' }, BODY))).toBe('bad-signature');
    expect(reasonOf(verifier.verify('vote', good(), undefined))).toBe('unverifiable-body');
  });

  it('refuses a timestamp more than the window away either way, and a target that is not this node (join and leave aside)', () => {
    const { signer, verifier, clock } = pair({ windowMs: 30_000 });
    const at = (offset: number, rpc: 'requestVote' | 'join' = 'requestVote', target = TARGET): IncomingHttpHeaders => {
      const saved = clock.now;
      clock.now += offset;
      const headers = signer.sign(rpc, target, BODY);
      clock.now = saved;
      return headers;
    };
    expect(reasonOf(verifier.verify('vote', at(-30_001), BODY))).toBe('stale');
    expect(reasonOf(verifier.verify('vote', at(30_001), BODY))).toBe('stale');
    expect(reasonOf(verifier.screen('vote', at(-30_001)))).toBe('stale');
    expect(reasonOf(verifier.verify('vote', at(-30_000), BODY))).toBe('ok');
    expect(reasonOf(verifier.verify('vote', at(30_000), BODY))).toBe('ok');
    expect(reasonOf(verifier.verify('vote', at(0, 'requestVote', 'http://10.0.0.3:8086'), BODY, TARGET))).toBe('wrong-target');
    expect(reasonOf(verifier.verify('join', at(0, 'join', 'http://localhost:8086'), BODY, TARGET))).toBe('ok');
  });

  it('accepts requests of one sender in any order, each once, within 1024 of the newest', () => {
    fc.assert(
      fc.property(fc.shuffledSubarray(Array.from({ length: 300 }, (_, i) => i), { minLength: 300 }), (order) => {
        const { signer, verifier } = pair();
        const signed = Array.from({ length: 300 }, () => signer.sign('appendEntries', TARGET, BODY));
        for (const i of order) expect(reasonOf(verifier.verify('append', signed[i]!, BODY))).toBe('ok');
        for (const i of order.slice(0, 20)) expect(reasonOf(verifier.verify('append', signed[i]!, BODY))).toBe('replay');
      }),
      { numRuns: 30 },
    );
    const { signer, verifier } = pair();
    const first = signer.sign('appendEntries', TARGET, BODY);
    for (let i = 0; i < 1100; i++) signer.sign('appendEntries', TARGET, BODY);
    expect(reasonOf(verifier.verify('append', signer.sign('appendEntries', TARGET, BODY), BODY))).toBe('ok');
    // Too far behind the newest to tell whether it was seen: refused.
    expect(reasonOf(verifier.verify('append', first, BODY))).toBe('replay');
  });

  it('tracks at most maxSenders senders, and forgets one only after it was idle for twice the window', () => {
    const clock = { now: 1_700_000_000_000 };
    const now = (): number => clock.now;
    const verifier = new PeerAuth({ secret: SECRET, now, maxSenders: 2, windowMs: 1000 });
    const a = new PeerAuth({ secret: SECRET, now });
    const b = new PeerAuth({ secret: SECRET, now });
    const c = new PeerAuth({ secret: SECRET, now });
    const captured = a.sign('requestVote', TARGET, BODY);
    expect(reasonOf(verifier.verify('vote', captured, BODY))).toBe('ok');
    expect(reasonOf(verifier.verify('vote', b.sign('requestVote', TARGET, BODY), BODY))).toBe('ok');
    expect(reasonOf(verifier.verify('vote', c.sign('requestVote', TARGET, BODY), BODY))).toBe('too-many-senders');
    clock.now += 2 * 1000 + 1001;
    expect(reasonOf(verifier.verify('vote', c.sign('requestVote', TARGET, BODY), BODY))).toBe('ok');
    // a was forgotten, but what it signed back then is stale now.
    expect(reasonOf(verifier.verify('vote', captured, BODY))).toBe('stale');
  });

  it('refuses everything and cannot sign until it has a secret of at least 32 bytes', () => {
    const auth = new PeerAuth();
    expect(auth.hasSecret).toBe(false);
    expect(reasonOf(auth.verify('vote', new PeerAuth({ secret: SECRET }).sign('requestVote', TARGET, BODY), BODY))).toBe('no-secret');
    let thrown: unknown;
    try {
      auth.sign('requestVote', TARGET, BODY);
    } catch (error) {
      thrown = error;
    }
    expect(isRaftError(thrown, 'UNAUTHENTICATED')).toBe(true);
    expect(() => auth.setSecret(Buffer.alloc(31))).toThrow(/at least 32 bytes/);
    expect(() => new PeerAuth({ secret: Buffer.alloc(16) })).toThrow(/at least 32 bytes/);
    expect(() => new PeerAuth({ windowMs: 0 })).toThrow(/windowMs/);
    auth.setSecret(SECRET);
    expect(auth.hasSecret).toBe(true);
    expect(reasonOf(auth.verify('vote', new PeerAuth({ secret: SECRET }).sign('requestVote', TARGET, BODY), BODY))).toBe('ok');
  });
});
