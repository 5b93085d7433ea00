import { describe, expect, it } from '@jest/globals';
import { BrokerStateError } from '@msg/broker';
import { RaftError } from 'raft-ts';
import { ConfigError } from './config.js';
import { ExitCodes, exitCodeFor } from './exit-codes.js';
import { NodeDirError } from './node-dir-error.js';
import { ServerError } from './server-error.js';

function errno(code: string, syscall: string): Error {
  return Object.assign(new Error(`${syscall} ${code}`), { code, syscall });
}

describe('exitCodeFor', () => {
  it('maps a config error to 64', () => {
    expect(exitCodeFor(new ConfigError('--listen', 'bad'))).toBe(ExitCodes.USAGE);
  });

  it('maps corrupt files and system I/O errors to 74, also as a cause', () => {
    expect(exitCodeFor(new RaftError('CORRUPT', 'log-1.seg: bad crc'))).toBe(ExitCodes.IO);
    expect(exitCodeFor(new BrokerStateError('CORRUPT_META', 'meta: bad'))).toBe(ExitCodes.IO);
    // A broker whose disk failed, wrapping nothing with an errno (raft-ts's APPLY_FAILED carries it as cause).
    expect(exitCodeFor(new BrokerStateError('STORAGE_FAILED', 'broker storage failed'))).toBe(ExitCodes.IO);
    expect(exitCodeFor(new BrokerStateError('DATA_LOST', 'topic 7 holds less than its checkpoint'))).toBe(ExitCodes.IO);
    expect(exitCodeFor(errno('EACCES', 'open'))).toBe(ExitCodes.IO);
    expect(exitCodeFor(new Error('wrapped', { cause: errno('EIO', 'write') }))).toBe(ExitCodes.IO);
  });

  it('maps an unusable listen address or a failed join to 69, even when caused by a refused connection', () => {
    expect(exitCodeFor(errno('EADDRINUSE', 'listen'))).toBe(ExitCodes.UNAVAILABLE);
    const refused = new RaftError('UNREACHABLE', 'down', { cause: errno('ECONNREFUSED', 'connect') });
    expect(exitCodeFor(new ServerError('JOIN_FAILED', 'no', { cause: refused }))).toBe(ExitCodes.UNAVAILABLE);
    expect(exitCodeFor(refused)).toBe(ExitCodes.INTERNAL);
  });

  it('maps a refused join token to 77, also as the cause of a failed join; a damaged or unwritable token file to 74', () => {
    const refused = new RaftError('UNAUTHENTICATED', 'join: the signature does not match');
    expect(exitCodeFor(new ServerError('JOIN_FAILED', 'no', { cause: refused }))).toBe(ExitCodes.NOPERM);
    expect(exitCodeFor(new ServerError('JOIN_REFUSED', 'no', { cause: refused }))).toBe(ExitCodes.NOPERM);
    expect(exitCodeFor(new ServerError('JOIN_TOKEN_CORRUPT', 'join-token at offset 0: not a join token'))).toBe(ExitCodes.IO);
    expect(exitCodeFor(new ServerError('JOIN_TOKEN_WRITE_FAILED', 'no', { cause: errno('ENOSPC', 'write') }))).toBe(ExitCodes.IO);
  });

  it('maps a locked data dir to 75, another identity to 64, a removed node to 78, a damaged node.json to 74', () => {
    const held = Object.assign(new Error('topic already open'), { code: 'TOPIC_ALREADY_OPEN' });
    expect(exitCodeFor(new NodeDirError('DATA_DIR_LOCKED', '/d', 'in use by process 7', { cause: held }))).toBe(ExitCodes.IN_USE);
    expect(exitCodeFor(new NodeDirError('NODE_IDENTITY_CHANGED', '/d', 'other url'))).toBe(ExitCodes.USAGE);
    expect(exitCodeFor(new NodeDirError('NODE_REMOVED', '/d', 'removed'))).toBe(ExitCodes.REMOVED);
    expect(exitCodeFor(new NodeDirError('NODE_IDENTITY_CORRUPT', '/d', '/d/node.json is damaged'))).toBe(ExitCodes.IO);
    expect(exitCodeFor(new NodeDirError('NODE_IDENTITY_WRITE_FAILED', '/d', 'no', { cause: errno('ENOSPC', 'write') }))).toBe(ExitCodes.IO);
    expect([ExitCodes.IN_USE, ExitCodes.REMOVED]).toEqual([75, 78]);
  });

  it('maps anything else to 70', () => {
    expect(exitCodeFor(new Error('bug'))).toBe(ExitCodes.INTERNAL);
    expect(exitCodeFor('not an error')).toBe(ExitCodes.INTERNAL);
    expect(exitCodeFor(new RaftError('NO_LEADER', 'none'))).toBe(ExitCodes.INTERNAL);
  });
});
