import { describe, expect, it } from '@jest/globals';
import { Client, ClientError, type BrokerError } from '../src/index.js';
import { deadURL } from './fake-broker.js';
import { sleep, waitFor } from '@msg/test-utils';
import { broker, bytes, expectCode, openClient } from './helpers.js';

describe('Client lifecycle', () => {
  it('does no I/O in the constructor and rejects calls before open()', async () => {
    const client = new Client({ urls: ['http://127.0.0.1:1'] });
    expect(client.opened).toBe(false);
    await expectCode(client.publish({ type: 1, topicID: 1n, data: bytes('x') }), 'BrokerError', 'CLIENT_CLOSED');
    await expectCode(() => client.conn(1n), 'BrokerError', 'CLIENT_CLOSED');
    await expectCode(client.close(), 'BrokerError', 'CLIENT_CLOSED');
  });

  it('refuses to open twice and to close twice, with the original texts', async () => {
    const client = new Client({ pingIntervalMs: 0 });
    await client.open();
    const twice = await expectCode(client.open(), 'BrokerError', 'CLIENT_ALREADY_OPEN');
    expect(twice.message).toBe('client already open');
    await client.close();
    const again = await expectCode(client.close(), 'BrokerError', 'CLIENT_CLOSED');
    expect(again.message).toBe('client closed');
    await expectCode(client.open(), 'BrokerError', 'CLIENT_CLOSED');
  });

  it('rejects publish, publishBatch, ping and conn after close', async () => {
    const b = await broker();
    const client = new Client({ urls: [b.url], pingIntervalMs: 0 });
    await client.open();
    await client.close();
    await expectCode(client.publish({ type: 1, topicID: 1n, data: bytes('x') }), 'BrokerError', 'CLIENT_CLOSED');
    await expectCode(client.publishBatch([{ type: 1, topicID: 1n, data: bytes('x') }]), 'BrokerError', 'CLIENT_CLOSED');
    await expectCode(client.ping(), 'BrokerError', 'CLIENT_CLOSED');
    await expectCode(() => client.conn(1n), 'BrokerError', 'CLIENT_CLOSED');
    expect(b.requests).toHaveLength(0);
  });

  it('fails a publish in flight with CLIENT_CLOSED when closed', async () => {
    const b = await broker({ stall: () => true });
    const client = new Client({ urls: [b.url], pingIntervalMs: 0 });
    await client.open();
    const pending = client.publish({ type: 1, topicID: 1n, data: bytes('x') });
    await new Promise((resolve) => setTimeout(resolve, 50));
    await client.close();
    await expectCode(pending, 'BrokerError', 'CLIENT_CLOSED');
  });

  it('validates options and URLs with typed errors', async () => {
    expect(() => new Client({ retries: -1 })).toThrow(ClientError);
    await expectCode(() => new Client({ batching: { maxMessages: 0 } }), 'ClientError', 'INVALID_OPTIONS');
    await expectCode(() => new Client({ backoff: { initialMs: 10, maxMs: 5 } }), 'ClientError', 'INVALID_OPTIONS');
    await expectCode(() => new Client({ urls: ['ftp://x'] }), 'ClientError', 'INVALID_URL');
    const client = new Client();
    await expectCode(() => client.setURLs([]), 'ClientError', 'INVALID_URL');
    await expectCode(() => client.setURL('not a url'), 'ClientError', 'INVALID_URL');
  });

  it('keeps URLs as origins and reports url and urls as copies', () => {
    const client = new Client({ urls: ['http://127.0.0.1:9001/x?y=1', new URL('http://127.0.0.1:9002')], random: () => 0.99 });
    expect(client.urls.map((u) => u.href)).toEqual(['http://127.0.0.1:9001/', 'http://127.0.0.1:9002/']);
    expect(client.url?.href).toBe('http://127.0.0.1:9002/');
    client.url!.port = '1';
    expect(client.url?.port).toBe('9002');
    client.setURL('http://127.0.0.1:9003');
    expect(client.url?.href).toBe('http://127.0.0.1:9003/');
    client.setURLs(['http://127.0.0.1:9003', 'http://127.0.0.1:9004']);
    expect(client.url?.href).toBe('http://127.0.0.1:9003/');
  });

  it('fails with NO_URLS when it knows no broker', async () => {
    const client = await openClient();
    await expectCode(client.publish({ type: 1, topicID: 1n, data: bytes('x') }), 'ClientError', 'NO_URLS');
  });
});

describe('Client.publish', () => {
  it('posts the original query string and resolves with the broker index', async () => {
    const b = await broker();
    const client = await openClient({ urls: [b.url], batching: { enabled: false } });
    expect(await client.publish({ type: 513, topicID: 18446744073709551615n, data: bytes('hello') })).toBe(1n);
    expect(await client.publish({ type: 1, topicID: 7n, data: bytes('again') })).toBe(2n);
    const first = b.requests[0]!;
    expect([first.method, first.path, first.query.get('type'), first.query.get('topicID')]).toEqual([
      'POST', '/messaging/messages', '513', '18446744073709551615',
    ]);
    expect(b.store.from(7n, 0n).map((m) => new TextDecoder().decode(m.data))).toEqual(['again']);
  });

  it('checks messages before sending, with the broker codes', async () => {
    const b = await broker();
    const client = await openClient({ urls: [b.url] });
    await expectCode(client.publish({ type: 65536, topicID: 1n, data: bytes('x') }), 'BrokerError', 'MESSAGE_TYPE_REQUIRED');
    await expectCode(client.publish({ type: 1, topicID: -1n, data: bytes('x') }), 'BrokerError', 'TOPIC_REQUIRED');
    await expectCode(client.publish({ type: 1, topicID: 1 as unknown as bigint, data: bytes('x') }), 'BrokerError', 'TOPIC_REQUIRED');
    await expectCode(client.publish({ type: 1, topicID: 1n, data: new Uint8Array(0) }), 'BrokerError', 'MESSAGE_DATA_REQUIRED');
    expect(b.requests).toHaveLength(0);
  });

  it('maps server errors to BrokerError codes from the code header, the original text, or the status', async () => {
    const b = await broker({ fail: () => 'STALE_WRITE' });
    const client = await openClient({ urls: [b.url], batching: { enabled: false } });
    const coded = await expectCode(client.publish({ type: 1, topicID: 1n, data: bytes('x') }), 'BrokerError', 'STALE_WRITE');
    expect((coded as BrokerError).status).toBe(409);
    b.knobs.errorCodes = false;
    b.knobs.fail = () => 'TOPIC_REQUIRED';
    const byText = await expectCode(client.publish({ type: 1, topicID: 1n, data: bytes('x') }), 'BrokerError', 'TOPIC_REQUIRED');
    expect(byText.message).toBe('topic required');
    b.knobs.fail = undefined;
    b.knobs.role = 'follower';
    b.knobs.notLeaderStatus = 500;
    // An original broker's `not leader`: a 500 with only the text; retried, then NO_LEADER.
    const noLeader = await expectCode(client.publish({ type: 1, topicID: 1n, data: bytes('x') }), 'BrokerError', 'NO_LEADER');
    expect((noLeader.cause as BrokerError).code).toBe('NOT_LEADER');
  });

  it('follows a 307 to the leader (a member) and then talks to the leader directly', async () => {
    const leader = await broker();
    const follower = await broker({ role: 'follower', leaderURL: leader.url });
    const client = await openClient({ urls: [follower.url, leader.url], batching: { enabled: false } });
    client.setURL(follower.url);
    expect(await client.publish({ type: 1, topicID: 1n, data: bytes('a') })).toBe(1n);
    expect(client.url?.origin).toBe(leader.url);
    expect(await client.publish({ type: 1, topicID: 1n, data: bytes('b') })).toBe(2n);
    expect(follower.count('/messaging/messages')).toBe(1);
    expect(leader.count('/messaging/messages')).toBe(2);
    expect(leader.requests[0]!.query.get('topicID')).toBe('1');
  });

  it('fails over to the next URL when redirected to an unreachable leader', async () => {
    const dead = await deadURL();
    const follower = await broker({ role: 'follower', leaderURL: dead });
    const leader = await broker();
    const client = await openClient({ urls: [follower.url, leader.url], batching: { enabled: false } });
    client.setURL(follower.url);
    expect(await client.publish({ type: 1, topicID: 1n, data: bytes('a') })).toBe(1n);
    expect(client.url?.origin).toBe(leader.url);
  });

  it('gives up with UNAVAILABLE after bounded retries when the only leader is unreachable', async () => {
    const dead = await deadURL();
    const follower = await broker({ role: 'follower', leaderURL: dead });
    const client = await openClient({ urls: [follower.url, dead], retries: 2, batching: { enabled: false } });
    client.setURL(follower.url);
    const started = Date.now();
    const error = await expectCode(client.publish({ type: 1, topicID: 1n, data: bytes('a') }), 'BrokerError', 'UNAVAILABLE');
    expect(error.message).toContain(new URL(dead).host);
    // follower -> 307 dead (refused) -> follower -> 307 dead -> follower -> 307 dead: 3 refusals.
    expect(follower.count('/messaging/messages')).toBe(3);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('fails over across URLs on refused connections, dropped connections and not leader', async () => {
    const dead = await deadURL();
    const dropper = await broker({ drop: () => true });
    const notLeader = await broker({ role: 'follower' });
    const leader = await broker();
    const client = await openClient({ urls: [dead, dropper.url, notLeader.url, leader.url], retries: 5, batching: { enabled: false } });
    client.setURL(dead);
    expect(await client.publish({ type: 1, topicID: 1n, data: bytes('a') })).toBe(1n);
    expect([dropper.requests.length, notLeader.requests.length, leader.requests.length]).toEqual([1, 1, 1]);
    expect(client.url?.origin).toBe(leader.url);
  });

  it('moves straight to the leader a not-leader answer names', async () => {
    const leader = await broker();
    const follower = await broker({ role: 'follower', leaderHint: leader.url });
    const other = await broker();
    const client = await openClient({ urls: [follower.url, other.url, leader.url], batching: { enabled: false } });
    client.setURL(follower.url);
    expect(await client.publish({ type: 1, topicID: 1n, data: bytes('a') })).toBe(1n);
    expect([follower.requests.length, other.requests.length, leader.requests.length]).toEqual([1, 0, 1]);
  });

  it('times out a stalled broker and retries elsewhere; alone it ends with TIMEOUT', async () => {
    const stalled = await broker({ stall: () => true });
    const leader = await broker();
    const client = await openClient({ urls: [stalled.url, leader.url], requestTimeoutMs: 500, batching: { enabled: false } });
    client.setURL(stalled.url);
    expect(await client.publish({ type: 1, topicID: 1n, data: bytes('a') })).toBe(1n);
    const lonely = await openClient({ urls: [stalled.url], requestTimeoutMs: 100, retries: 1, batching: { enabled: false } });
    await expectCode(lonely.publish({ type: 1, topicID: 1n, data: bytes('a') }), 'BrokerError', 'TIMEOUT');
    expect(stalled.requests.length).toBe(3);
  });

  it('is cancelled by its AbortSignal, before or during the request', async () => {
    const stalled = await broker({ stall: () => true });
    const client = await openClient({ urls: [stalled.url], batching: { enabled: false } });
    const reason = new Error('enough');
    const before = await expectCode(client.publish({ type: 1, topicID: 1n, data: bytes('a') }, { signal: AbortSignal.abort(reason) }), 'ClientError', 'ABORTED');
    expect(before.cause).toBe(reason);
    expect(stalled.requests).toHaveLength(0);
    const controller = new AbortController();
    const pending = client.publish({ type: 1, topicID: 1n, data: bytes('a') }, { signal: controller.signal });
    setTimeout(() => controller.abort(reason), 50);
    const during = await expectCode(pending, 'ClientError', 'ABORTED');
    expect(during.cause).toBe(reason);
  });
});

describe('Client.ping', () => {
  it('learns the cluster URLs from the leader, through a redirect', async () => {
    const leader = await broker();
    const follower = await broker({ role: 'follower', leaderURL: leader.url });
    leader.knobs.pingURLs = [leader.url, follower.url];
    const client = await openClient({ urls: [follower.url, leader.url] });
    client.setURL(follower.url);
    const urls = await client.ping();
    expect(urls.map((u) => u.origin)).toEqual([leader.url, follower.url]);
    expect(client.urls.map((u) => u.origin)).toEqual([leader.url, follower.url]);
    expect(client.url?.origin).toBe(leader.url);
    expect(leader.requests[0]!.method).toBe('POST');
  });

  it('keeps the URLs when the leader sends none, and rejects a malformed answer', async () => {
    const leader = await broker();
    const client = await openClient({ urls: [leader.url] });
    expect(await client.ping()).toEqual([]);
    expect(client.urls.map((u) => u.origin)).toEqual([leader.url]);
    leader.knobs.pingURLs = ['not a url'];
    await expectCode(client.ping(), 'ClientError', 'BAD_RESPONSE');
  });
});

describe('Client.close', () => {
  it('stops the background ping loop', async () => {
    const b = await broker();
    const client = new Client({ urls: [b.url], pingIntervalMs: 10 });
    await client.open();
    await waitFor(() => b.count('/messaging/ping') >= 2);
    await client.close();
    const pings = b.count('/messaging/ping');
    await sleep(100);
    expect(b.count('/messaging/ping')).toBe(pings);
  });
});
