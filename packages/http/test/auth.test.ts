import { describe, expect, it } from '@jest/globals';
import type { IncomingMessage } from 'node:http';
import { encodeMessages, Headers } from '@msg/wire';
import { authenticatedIdentity, certSubjectResolver, hashToken, IdentityAuthorizer, Limits, TopicSet, type Identity } from '../src/index.js';
import { fakeBroker, startServer, type TestServer } from './fake-broker.js';
import { request, type Answer } from './http-client.js';

const PUB = 'pub-token-0123456789abcdef0123456789';
const OPS = 'ops-token-0123456789abcdef0123456789';

const identities: Identity[] = [
  { name: 'pub', tokenSha256: hashToken(PUB), permissions: { publish: TopicSet.of([[1n, 1n], [10n, 20n]]), subscribe: TopicSet.of([[1n, 1n]]), admin: false } },
  { name: 'ops', tokenSha256: hashToken(OPS), permissions: { publish: TopicSet.ALL, subscribe: TopicSet.ALL, admin: true } },
  { name: 'cert', certSubject: 'CN=svc-cert', permissions: { publish: TopicSet.of([[7n, 7n]]), subscribe: TopicSet.NONE, admin: false } },
];

const bearer = (token: string): Record<string, string> => ({ Authorization: `Bearer ${token}` });

async function serve(fastPath: boolean, authorizer = new IdentityAuthorizer(identities)): Promise<TestServer> {
  return startServer(fakeBroker(), { authorizer, fastPath });
}

function expectRefused(answer: Answer, status: 401 | 403): void {
  expect(answer.status).toBe(status);
  expect(answer.headers[Headers.errorCode]).toBe(status === 401 ? 'UNAUTHENTICATED' : 'FORBIDDEN');
  if (status === 401) expect(answer.headers['www-authenticate']).toBe('Bearer realm="msg"');
}

describe('TopicSet', () => {
  it('holds inclusive ranges, all or none', () => {
    const set = TopicSet.of([[10n, 20n], [1n, 1n]]);
    expect([0n, 1n, 2n, 9n, 10n, 15n, 20n, 21n].map((id) => set.has(id))).toEqual([false, true, false, false, true, true, true, false]);
    expect(TopicSet.ALL.has(18446744073709551615n)).toBe(true);
    expect(TopicSet.NONE.has(0n)).toBe(false);
    expect(() => TopicSet.of([[5n, 4n]])).toThrow(RangeError);
  });
});

describe('IdentityAuthorizer', () => {
  const req = (headers: Record<string, string>): IncomingMessage => ({ headers }) as unknown as IncomingMessage;

  it('knows a token only by its hash, and refuses other schemes and unknown tokens', () => {
    const auth = new IdentityAuthorizer(identities);
    expect(auth.authenticate(req({ authorization: `Bearer ${PUB}` }))).toBe('pub');
    expect(auth.authenticate(req({ authorization: `bearer  ${OPS} ` }))).toBe('ops');
    expect(auth.authenticate(req({ authorization: 'Bearer nope' }))).toBeUndefined();
    expect(auth.authenticate(req({ authorization: `Basic ${PUB}` }))).toBeUndefined();
    expect(auth.authenticate(req({}))).toBeUndefined();
    expect(hashToken('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });

  it('maps a client-certificate subject to an identity through a resolver', () => {
    const auth = new IdentityAuthorizer(identities, { resolvers: [certSubjectResolver((r) => r.headers['x-test-subject'] as string | undefined)] });
    expect(auth.authenticate(req({ 'x-test-subject': 'CN=svc-cert' }))).toBe('cert');
    expect(auth.authenticate(req({ 'x-test-subject': 'CN=other' }))).toBeUndefined();
    expect(auth.permits('cert', 'publish', 7n)).toBe(true);
    expect(auth.permits('cert', 'publish', 8n)).toBe(false);
  });

  it('replaces its identities at once (a reload) and counts reloads', () => {
    const auth = new IdentityAuthorizer(identities);
    auth.replace([identities[1]!]);
    auth.recordReload(true);
    auth.recordReload(false);
    expect(auth.authenticate(req({ authorization: `Bearer ${PUB}` }))).toBeUndefined();
    expect(auth.permits('pub', 'publish', 1n)).toBe(false);
    expect(auth.reloads(true)).toBe(1);
    expect(auth.reloads(false)).toBe(1);
    expect(auth.identityCount).toBe(1);
    expect(() => new IdentityAuthorizer([identities[0]!, identities[0]!])).toThrow(/duplicate/);
  });
});

describe.each([true, false])('the handler with an authorizer (fast path %s)', (fastPath) => {
  it('answers 401 without or with an unknown credential and 403 without the permission, on every client route', async () => {
    const s = await serve(fastPath);
    expectRefused(await request(`${s.url}/messaging/messages?type=1&topicID=1`, { method: 'POST', body: 'x' }), 401);
    expectRefused(await request(`${s.url}/messaging/messages?type=1&topicID=1`, { method: 'POST', body: 'x', headers: bearer('wrong') }), 401);
    expect((await request(`${s.url}/messaging/messages?type=1&topicID=1`, { method: 'POST', body: 'x', headers: bearer(PUB) })).status).toBe(200);
    expectRefused(await request(`${s.url}/messaging/messages?type=1&topicID=5`, { method: 'POST', body: 'x', headers: bearer(PUB) }), 403);

    expect((await request(`${s.url}/messaging/messages?topicID=1&index=0`, { headers: bearer(PUB) })).status).toBe(200);
    expectRefused(await request(`${s.url}/messaging/messages?topicID=2&index=0`, { headers: bearer(PUB) }), 403);
    expectRefused(await request(`${s.url}/messaging/messages?topicID=1&index=0`), 401);
    expectRefused(await request(`${s.url}/messaging/heartbeat?topicID=2&index=0`, { method: 'POST', headers: bearer(PUB) }), 403);
    expect((await request(`${s.url}/messaging/heartbeat?topicID=1&index=0`, { method: 'POST', headers: bearer(PUB) })).status).toBe(200);

    const batch = (topics: bigint[]): Uint8Array => encodeMessages(topics.map((topicID) => ({ type: 1, topicID, index: 0n, data: Buffer.from('m') })));
    const published = s.broker.log.length;
    expectRefused(await request(`${s.url}/messaging/batch`, { method: 'POST', body: batch([10n, 4n]), headers: bearer(PUB) }), 403);
    expect(s.broker.log.length).toBe(published);
    expectRefused(await request(`${s.url}/messaging/batch`, { method: 'POST', body: batch([10n]) }), 401);
    expect((await request(`${s.url}/messaging/batch`, { method: 'POST', body: batch([10n, 20n]), headers: bearer(PUB) })).status).toBe(200);

    for (const path of ['/status', '/metrics']) {
      expectRefused(await request(`${s.url}${path}`), 401);
      expectRefused(await request(`${s.url}${path}`, { headers: bearer(PUB) }), 403);
      expect((await request(`${s.url}${path}`, { headers: bearer(OPS) })).status).toBe(200);
    }
    expectRefused(await request(`${s.url}/messaging/ping`), 401);
    expect((await request(`${s.url}/messaging/ping`, { headers: bearer(PUB) })).status).toBe(200);
    expect((await request(`${s.url}/health`)).status).toBe(200);
    expect((await request(`${s.url}/ready`)).status).toBe(200);

    const metrics = (await request(`${s.url}/metrics`, { headers: bearer(OPS) })).body.toString();
    expect(metrics).toContain('msg_http_auth_failures_total{kind="unauthenticated"} 7');
    expect(metrics).toContain('msg_http_auth_failures_total{kind="forbidden"} 6');
    expect(metrics).toContain('msg_http_auth_reloads_total{result="ok"} 0');
    expect(metrics).toContain('msg_http_auth_identities 3');
  });

  it('counts streams per client under the authenticated identity', async () => {
    const seen: (string | undefined)[] = [];
    const limits = new Limits({
      maxStreamsPerClient: 1,
      identify: (req) => {
        seen.push(authenticatedIdentity(req));
        return authenticatedIdentity(req) ?? 'anonymous';
      },
    });
    const s = await startServer(fakeBroker(), { authorizer: new IdentityAuthorizer(identities), limits, fastPath });
    expect((await request(`${s.url}/messaging/messages?topicID=1&index=0`, { headers: bearer(PUB) })).status).toBe(200);
    expect(seen).toEqual(['pub']);
  });
});

describe('the handler without an authorizer', () => {
  it('stays open, as before', async () => {
    const s = await startServer(fakeBroker());
    expect((await request(`${s.url}/messaging/messages?type=1&topicID=5`, { method: 'POST', body: 'x' })).status).toBe(200);
    expect((await request(`${s.url}/status`)).status).toBe(200);
    expect((await request(`${s.url}/metrics`)).body.toString()).not.toContain('msg_http_auth');
  });
});
