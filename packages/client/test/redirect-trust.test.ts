// Redirects are trusted only to members (security issue 10): a 307 or a
// `not leader` hint naming a URL outside the client's member set is never
// followed, and member lists are learned only from pings answered by members.
import { describe, expect, it } from '@jest/globals';
import { makeTempDir } from '@msg/test-utils';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FakeStore } from './fake-broker.js';
import { broker, bytes, expectCode, openClient } from './helpers.js';

interface Logged {
  message: string;
  meta: Record<string, unknown> | undefined;
}

function recordingLogger(): { warnings: Logged[]; logger: { warn: (message: string, meta?: Record<string, unknown>) => void } } {
  const warnings: Logged[] = [];
  return { warnings, logger: { warn: (message, meta) => warnings.push({ message, meta }) } };
}

const message = { type: 1, topicID: 1n, data: bytes('x') };

describe('redirects outside the member set', () => {
  it('does not follow a 307 to an outside URL: it publishes through a member and logs once', async () => {
    const outsider = await broker();
    const leader = await broker();
    const follower = await broker({ role: 'follower', leaderURL: outsider.url });
    const { warnings, logger } = recordingLogger();
    const client = await openClient({ urls: [follower.url, leader.url], logger, token: 'secret-token' });
    client.setURL(follower.url);
    expect(await client.publish(message)).toBe(1n);
    client.setURL(follower.url);
    expect(await client.publishBatch([message, message])).toEqual([2n, 3n]);
    expect(outsider.requests).toHaveLength(0);
    expect(client.url?.origin).toBe(leader.url);
    const untrusted = warnings.filter((w) => w.message.includes('untrusted redirect'));
    expect(untrusted).toHaveLength(1);
    expect(untrusted[0]!.meta).toEqual({ from: follower.url, to: outsider.url });
    expect(JSON.stringify(warnings)).not.toContain('secret-token');
  });

  it('ends with UNTRUSTED_REDIRECT when no member takes the call', async () => {
    const outsider = await broker();
    const follower = await broker({ role: 'follower', leaderURL: outsider.url });
    const client = await openClient({ urls: [follower.url], retries: 2, batching: { enabled: false } });
    const error = await expectCode(client.publish(message), 'ClientError', 'UNTRUSTED_REDIRECT');
    expect(error.message).toContain(outsider.url);
    expect((error as { retriable?: boolean }).retriable).toBe(true);
    expect(outsider.requests).toHaveLength(0);
    expect(follower.count('/messaging/messages')).toBe(3);
    expect(client.url?.origin).toBe(follower.url);
  });

  it('ignores a not-leader hint naming an outside URL and fails over to the next member', async () => {
    const outsider = await broker();
    const leader = await broker();
    const follower = await broker({ role: 'follower', leaderHint: `${outsider.url}/x?y=1` });
    const client = await openClient({ urls: [follower.url, leader.url], batching: { enabled: false } });
    client.setURL(follower.url);
    expect(await client.publish(message)).toBe(1n);
    expect(outsider.requests).toHaveLength(0);
    expect(client.url?.origin).toBe(leader.url);
  });

  it('follows a 307 to a member, comparing origins (neither a path nor the case of the host matters)', async () => {
    const leader = await broker();
    const port = new URL(leader.url).port;
    const follower = await broker({ role: 'follower', leaderURL: `http://LOCALHOST:${port}` });
    const client = await openClient({ urls: [follower.url, `http://localhost:${port}/some/path`], batching: { enabled: false } });
    client.setURL(follower.url);
    expect(await client.publish(message)).toBe(1n);
    expect(leader.count('/messaging/messages')).toBe(1);
    expect(follower.count('/messaging/messages')).toBe(1);
    expect(client.url?.origin).toBe(`http://localhost:${port}`);
  });
});

describe('members learned from a member\'s redirect', () => {
  it('follows a follower\'s 307 to the leader it names among the members (X-Broker-Members), given only the follower', async () => {
    const store = new FakeStore();
    const leader = await broker({ pingURLs: [] }, store);
    const follower = await broker({ role: 'follower', leaderURL: leader.url }, store);
    follower.knobs.members = [follower.url, leader.url];
    leader.knobs.pingURLs = [follower.url, leader.url];
    const client = await openClient({ urls: [follower.url], retries: 1, batching: { enabled: false } });
    expect((await client.ping()).map((u) => u.origin)).toEqual([follower.url, leader.url]);
    client.setURL(follower.url);
    expect(await client.publish(message)).toBe(1n);
    expect(leader.count('/messaging/messages')).toBe(1);
    expect(client.url?.origin).toBe(leader.url);
  });

  it('does not follow a redirect to a URL the member list leaves out, and never contacts it (the listed members are learned)', async () => {
    const outsider = await broker();
    const follower = await broker({ role: 'follower', leaderURL: outsider.url });
    follower.knobs.members = [follower.url, 'http://127.0.0.1:9'];
    const client = await openClient({ urls: [follower.url], retries: 1, batching: { enabled: false } });
    await expectCode(client.publish(message), 'ClientError', 'UNTRUSTED_REDIRECT');
    expect(outsider.requests).toHaveLength(0);
    expect(client.isMember('http://127.0.0.1:9')).toBe(true);
    expect(client.isMember(outsider.url)).toBe(false);
  });
});

describe('members learned from pings', () => {
  it('trusts the URLs a member ping returns (and only after that ping)', async () => {
    const store = new FakeStore();
    const first = await broker({}, store);
    const second = await broker({}, store);
    const client = await openClient({ urls: [first.url], retries: 0, batching: { enabled: false } });
    first.knobs.role = 'follower';
    first.knobs.leaderURL = second.url;
    await expectCode(client.publish(message), 'ClientError', 'UNTRUSTED_REDIRECT');
    expect(second.requests).toHaveLength(0);

    first.knobs.role = 'leader';
    first.knobs.pingURLs = [first.url, second.url];
    expect((await client.ping()).map((u) => u.origin)).toEqual([first.url, second.url]);
    first.knobs.role = 'follower';
    expect(await client.publish(message)).toBe(1n);
    expect(second.count('/messaging/messages')).toBe(1);
    expect(client.url?.origin).toBe(second.url);
  });

  it('ignores the member list of a ping a non-member would answer, and persists nothing of it', async () => {
    const outsider = await broker({ pingURLs: ['http://attacker.invalid:9'] });
    const follower = await broker({ role: 'follower', leaderURL: outsider.url });
    const path = join(await makeTempDir(), 'client.json');
    const original = `${JSON.stringify({ urls: [follower.url] })}\n`;
    await writeFile(path, original);
    const client = await openClient({ configPath: path, retries: 1 });
    await expectCode(client.ping(), 'ClientError', 'UNTRUSTED_REDIRECT');
    expect(outsider.requests).toHaveLength(0);
    expect(client.urls.map((u) => u.origin)).toEqual([follower.url]);
    expect(await readFile(path, 'utf8')).toBe(original);
  });
});
