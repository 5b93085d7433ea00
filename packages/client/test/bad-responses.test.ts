import { describe, expect, it } from '@jest/globals';
import { Headers, Paths } from '@msg/wire';
import type { BrokerError } from '../src/index.js';
import { broker, bytes, expectCode, openClient } from './helpers.js';

const message = { type: 1, topicID: 1n, data: bytes('x') };

describe('Client against answers that break the protocol', () => {
  it('rejects a publish answer without a valid X-Broker-Index with BAD_RESPONSE', async () => {
    const b = await broker({ answer: () => ({ status: 200 }) });
    const client = await openClient({ urls: [b.url], batching: { enabled: false } });
    const missing = await expectCode(client.publish(message), 'ClientError', 'BAD_RESPONSE');
    expect(missing.message).toContain(b.url);
    b.knobs.answer = () => ({ status: 200, headers: { [Headers.index]: '-1' } });
    await expectCode(client.publish(message), 'ClientError', 'BAD_RESPONSE');
    b.knobs.answer = () => ({ status: 200, headers: { [Headers.index]: '18446744073709551616' } });
    await expectCode(client.publish(message), 'ClientError', 'BAD_RESPONSE');
    expect(b.requests).toHaveLength(3);
  });

  it('retries a redirect without a Location, then ends with BAD_RESPONSE', async () => {
    const b = await broker({ answer: () => ({ status: 307 }) });
    const client = await openClient({ urls: [b.url], retries: 2, batching: { enabled: false } });
    await expectCode(client.publish(message), 'ClientError', 'BAD_RESPONSE');
    expect(b.requests).toHaveLength(3);
  });

  it('rejects a batch answer whose indexes do not match the batch', async () => {
    const b = await broker({
      answer: (r) => (r.path === Paths.batch ? { status: 200, headers: { [Headers.index]: '5', [Headers.lastIndex]: '5' } } : undefined),
    });
    const client = await openClient({ urls: [b.url] });
    const error = await expectCode(client.publishBatch([message, message]), 'ClientError', 'BAD_RESPONSE');
    expect(error.message).toContain('batch of 2');
    b.knobs.answer = (r) => (r.path === Paths.batch ? { status: 200, headers: { [Headers.index]: '5' } } : undefined);
    await expectCode(client.publishBatch([message, message]), 'ClientError', 'BAD_RESPONSE');
  });

  it('maps an error answer with only a status, or only a text body, to its code', async () => {
    const b = await broker({ answer: () => ({ status: 413 }) });
    const client = await openClient({ urls: [b.url], batching: { enabled: false } });
    const tooLarge = (await expectCode(client.publish(message), 'BrokerError', 'BODY_TOO_LARGE')) as BrokerError;
    expect(tooLarge.message).toBe('body too large (HTTP 413)');
    b.knobs.answer = () => ({ status: 400, body: 'message type required\n' });
    const byBody = await expectCode(client.publish(message), 'BrokerError', 'MESSAGE_TYPE_REQUIRED');
    expect(byBody.message).toBe('message type required');
    b.knobs.answer = () => ({ status: 400, headers: { [Headers.errorCode]: 'NO_SUCH_CODE', [Headers.error]: 'stale write' } });
    await expectCode(client.publish(message), 'BrokerError', 'STALE_WRITE');
    expect(b.requests).toHaveLength(3);
  });

  it('retries a 5xx answer of unknown meaning and ends with INTERNAL', async () => {
    const b = await broker({ answer: () => ({ status: 502, body: 'bad gateway' }) });
    const client = await openClient({ urls: [b.url], retries: 2, batching: { enabled: false } });
    const error = await expectCode(client.publish(message), 'BrokerError', 'INTERNAL');
    expect(error.message).toBe('bad gateway');
    expect(b.requests).toHaveLength(3);
  });
});
