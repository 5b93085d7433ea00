import { describe, expect, it } from '@jest/globals';
import { BrokerError, ClientError } from '@msg/client';
import { CliError, cliExitCode, describeError } from './errors.js';

describe('cliExitCode', () => {
  it('maps errors to the documented exit codes', () => {
    expect(cliExitCode(new CliError('USAGE', 'x'))).toBe(64);
    expect(cliExitCode(new CliError('REFUSED', 'x'))).toBe(65);
    expect(cliExitCode(new CliError('NO_INPUT', 'x'))).toBe(66);
    expect(cliExitCode(new CliError('UNAVAILABLE', 'x'))).toBe(69);
    expect(cliExitCode(new CliError('CORRUPT_INPUT', 'x'))).toBe(74);
    expect(cliExitCode(new BrokerError('UNAUTHENTICATED'))).toBe(77);
    expect(cliExitCode(new BrokerError('FORBIDDEN'))).toBe(77);
    expect(cliExitCode(new BrokerError('NO_LEADER'))).toBe(69);
    expect(cliExitCode(Object.assign(new Error('connect'), { code: 'ECONNREFUSED' }))).toBe(69);
    expect(cliExitCode(new ClientError('INVALID_OPTIONS'))).toBe(64);
    expect(cliExitCode(new BrokerError('TOPIC_REQUIRED'))).toBe(64);
    expect(cliExitCode(new Error('bug'))).toBe(70);
  });
});

describe('describeError', () => {
  it('adds the code of library errors and a cause the message does not already hold', () => {
    expect(describeError(new BrokerError('NO_LEADER'))).toBe('no leader (NO_LEADER)');
    expect(describeError(new CliError('USAGE', 'bad --x'))).toBe('bad --x');
    expect(describeError(new Error('outer', { cause: new Error('inner') }))).toBe('outer: inner');
    expect(describeError(new Error('outer: inner', { cause: new Error('inner') }))).toBe('outer: inner');
  });
});
