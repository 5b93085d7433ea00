import { describe, expect, it } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BrokerError, Client, type Message } from '@msg/client';
import { makeTempDir } from '@msg/test-utils';
import { encodeMessages } from '@msg/wire';
import { startBroker, type BrokerProcess } from '../src/broker-process.js';
import { waitForLog } from '../src/cluster.js';
import { request, type HttpAnswer } from '../src/http-request.js';

const sha256 = (token: string): string => createHash('sha256').update(token).digest('hex');
const newToken = (): string => randomBytes(32).toString('base64url');

const PUB = newToken(); // publish 1 and 10-20, subscribe 1
const SUB = newToken(); // subscribe everything, publish nothing
const ADMIN = newToken(); // admin, and everything
const LATE = newToken(); // added by a reload

interface IdentitySpec {
  name: string;
  token: string;
  publish?: (string | number)[];
  subscribe?: (string | number)[];
  admin?: boolean;
}

function authFile(identities: IdentitySpec[]): string {
  return JSON.stringify({
    identities: identities.map((i) => ({
      name: i.name,
      tokenSha256: sha256(i.token),
      permissions: { publish: i.publish ?? [], subscribe: i.subscribe ?? [], admin: i.admin ?? false },
    })),
  });
}

const BASE: IdentitySpec[] = [
  { name: 'pub', token: PUB, publish: [1, '10-20'], subscribe: ['1'] },
  { name: 'sub', token: SUB, subscribe: ['*'] },
  { name: 'ops', token: ADMIN, publish: ['*'], subscribe: ['*'], admin: true },
];

async function startWithAuth(identities: IdentitySpec[] = BASE): Promise<{ broker: BrokerProcess; file: string }> {
  const dir = await makeTempDir('msg-it-auth-');
  const file = join(dir, 'auth.json');
  await writeFile(file, authFile(identities), { mode: 0o600 });
  const broker = await startBroker({ dataDir: join(dir, 'data'), args: ['--auth-file', file] });
  return { broker, file };
}

const bearer = (token: string): Record<string, string> => ({ Authorization: `Bearer ${token}` });
const publish = (url: string, topic: number, token?: string): Promise<HttpAnswer> =>
  request(`${url}/messaging/messages?type=1&topicID=${topic}`, { method: 'POST', body: 'hello', headers: token === undefined ? {} : bearer(token) });
const code = (answer: HttpAnswer): unknown => answer.headers['x-broker-error-code'];

async function metric(url: string, sample: string): Promise<number | undefined> {
  const text = (await request(`${url}/metrics`, { headers: bearer(ADMIN) })).body.toString();
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  return line === undefined ? undefined : Number(line.slice(sample.length + 1));
}

describe('client authentication and authorization (--auth-file)', () => {
  it('answers 401 without a token or with a wrong one, 403 without the permission, and lets the permitted through', async () => {
    const { broker } = await startWithAuth();
    const url = broker.url;

    const none = await publish(url, 1);
    expect(none.status).toBe(401);
    expect(code(none)).toBe('UNAUTHENTICATED');
    expect(String(none.headers['www-authenticate'])).toMatch(/^Bearer/);
    const wrong = await publish(url, 1, newToken());
    expect(wrong.status).toBe(401);
    expect(code(wrong)).toBe('UNAUTHENTICATED');
    const malformed = await request(`${url}/messaging/messages?type=1&topicID=1`, { method: 'POST', body: 'x', headers: { Authorization: 'Basic abc' } });
    expect(malformed.status).toBe(401);

    expect((await publish(url, 1, PUB)).status).toBe(200);
    expect((await publish(url, 15, PUB)).status).toBe(200);
    const forbidden = await publish(url, 5, PUB);
    expect(forbidden.status).toBe(403);
    expect(code(forbidden)).toBe('FORBIDDEN');
    expect((await publish(url, 1, SUB)).status).toBe(403);

    // Subscribe: a GET of topic 1 for pub, of any topic for sub; not topic 5 for pub.
    const get = (topic: number, token?: string): Promise<HttpAnswer> =>
      request(`${url}/messaging/messages?topicID=${topic}&index=0`, { headers: token === undefined ? {} : bearer(token) });
    expect((await get(1)).status).toBe(401);
    expect((await get(1, PUB)).status).toBe(200);
    expect((await get(5, PUB)).status).toBe(403);
    expect((await get(5, SUB)).status).toBe(200);
    const heartbeat = (topic: number, token: string): Promise<HttpAnswer> =>
      request(`${url}/messaging/heartbeat?topicID=${topic}&index=0`, { method: 'POST', headers: bearer(token) });
    expect((await heartbeat(1, PUB)).status).toBe(200);
    expect((await heartbeat(5, PUB)).status).toBe(403);

    // A batch with one forbidden topic is refused whole: nothing of it is published.
    const batch = (topics: number[], token: string): Promise<HttpAnswer> =>
      request(`${url}/messaging/batch`, {
        method: 'POST',
        headers: bearer(token),
        body: encodeMessages(topics.map((topicID, i) => ({ type: 1, topicID: BigInt(topicID), index: 0n, data: Buffer.from(`batch-${i}`) }))),
      });
    const mixed = await batch([12, 5, 13], PUB);
    expect(mixed.status).toBe(403);
    expect(code(mixed)).toBe('FORBIDDEN');
    for (const topic of [12, 13]) {
      const read = await request(`${url}/messaging/messages?topicID=${topic}&index=0`, { headers: bearer(SUB) });
      expect(read.body.byteLength).toBe(0);
    }
    expect((await batch([12, 13], PUB)).status).toBe(200);

    // Admin: /status and /metrics; probes stay open.
    expect((await request(`${url}/status`)).status).toBe(401);
    expect((await request(`${url}/status`, { headers: bearer(PUB) })).status).toBe(403);
    expect((await request(`${url}/status`, { headers: bearer(ADMIN) })).status).toBe(200);
    expect((await request(`${url}/metrics`)).status).toBe(401);
    expect((await request(`${url}/metrics`, { headers: bearer(SUB) })).status).toBe(403);
    expect((await request(`${url}/health`)).status).toBe(200);
    expect((await request(`${url}/ready`)).status).toBe(200);
    // Ping needs a credential, any.
    expect((await request(`${url}/messaging/ping`)).status).toBe(401);
    expect((await request(`${url}/messaging/ping`, { headers: bearer(SUB) })).status).toBe(200);

    expect(await metric(url, 'msg_http_auth_failures_total{kind="unauthenticated"}')).toBe(7);
    expect(await metric(url, 'msg_http_auth_failures_total{kind="forbidden"}')).toBe(7);
    // No token is ever logged.
    const logs = JSON.stringify(broker.logs);
    for (const token of [PUB, SUB, ADMIN]) expect(logs).not.toContain(token);
  });

  it('reloads the file on SIGHUP (an identity added without a restart), and keeps the old one when the new is bad', async () => {
    const { broker, file } = await startWithAuth();
    expect((await publish(broker.url, 1, LATE)).status).toBe(401);

    await writeFile(file, authFile([...BASE, { name: 'late', token: LATE, publish: [1] }]));
    process.kill(broker.pid, 'SIGHUP');
    await waitForLog(broker, (l) => l.msg === 'auth file reloaded', 'the reload');
    expect((await publish(broker.url, 1, LATE)).status).toBe(200);
    expect(await metric(broker.url, 'msg_http_auth_reloads_total{result="ok"}')).toBe(1);

    await writeFile(file, '{"identities":[{"name":"broken","tokenSha256":"zz"}]}');
    process.kill(broker.pid, 'SIGHUP');
    const failed = await waitForLog(broker, (l) => l.msg === 'auth file reload failed', 'the failed reload');
    expect(JSON.stringify(failed)).toContain('tokenSha256');
    expect((await publish(broker.url, 1, LATE)).status).toBe(200);
    expect((await publish(broker.url, 1, PUB)).status).toBe(200);
    expect(await metric(broker.url, 'msg_http_auth_reloads_total{result="failed"}')).toBe(1);
    expect(broker.alive).toBe(true);
  });

  it('refuses to start with a bad auth file: exit 64 naming the file and the field', async () => {
    const dir = await makeTempDir('msg-it-auth-');
    const file = join(dir, 'auth.json');
    await writeFile(file, JSON.stringify({ identities: [{ name: 'a', tokenSha256: sha256('x'), permissions: { publish: ['20-10'] } }] }));
    const error = await startBroker({ dataDir: join(dir, 'data'), args: ['--auth-file', file], timeoutMs: 20_000 }).catch((e: unknown) => e);
    expect(error).toMatchObject({ status: { code: 64 } });
    const text = JSON.stringify((error as { logs: unknown }).logs);
    expect(text).toContain(file);
    expect(text).toContain('identities[0].permissions.publish[0]');
  });

  it('@msg/client sends its token (a rotating function is called per request) and gets typed, non-retriable 401 and 403', async () => {
    const { broker } = await startWithAuth();
    let calls = 0;
    const client = new Client({
      urls: [broker.url],
      pingIntervalMs: 0,
      token: async () => {
        calls++;
        return PUB;
      },
    });
    await client.open();
    try {
      expect(await client.publish({ type: 1, topicID: 1n, data: Buffer.from('from the client') })).toBeGreaterThan(0n);
      expect(await client.publish({ type: 1, topicID: 11n, data: Buffer.from('again') })).toBeGreaterThan(0n);
      expect(calls).toBeGreaterThanOrEqual(2);
      const forbidden = await client.publish({ type: 1, topicID: 5n, data: Buffer.from('no') }).catch((e: unknown) => e);
      expect(forbidden).toBeInstanceOf(BrokerError);
      expect(forbidden).toMatchObject({ code: 'FORBIDDEN', status: 403, retriable: false });
      // A stream of a permitted topic gets the messages.
      const conn = client.conn(1n);
      conn.open(0n);
      const first = await conn[Symbol.asyncIterator]().next();
      const message: Message | undefined = first.done === true ? undefined : first.value;
      expect(Buffer.from(message?.data ?? []).toString()).toBe('from the client');
      await conn.close();
    } finally {
      await client.close();
    }

    const stranger = new Client({ urls: [broker.url], pingIntervalMs: 0, token: 'not-a-known-token', retries: 3 });
    await stranger.open();
    try {
      const started = Date.now();
      const error = await stranger.publish({ type: 1, topicID: 1n, data: Buffer.from('x') }).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'UNAUTHENTICATED', status: 401, retriable: false });
      expect(Date.now() - started).toBeLessThan(2000);
      const refused = stranger.conn(1n);
      refused.open(0n);
      await expect(refused[Symbol.asyncIterator]().next()).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
      await refused.close();
    } finally {
      await stranger.close();
    }
  });
});
