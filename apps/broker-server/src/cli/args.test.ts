import { describe, expect, it } from '@jest/globals';
import { choiceFlag, connectionOf, integerFlag, parseCommandArgs, stringsFlag, u64Arg } from './args.js';
import { CliError } from './errors.js';

/** The error `fn` throws (fails the test when it throws none). */
function thrown(fn: () => unknown): CliError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(CliError);
    return error as CliError;
  }
  throw new Error('expected a throw');
}

describe('parseCommandArgs', () => {
  const flags = { from: { type: 'string' }, follow: { type: 'boolean', short: 'f' }, url: { type: 'string', multiple: true } } as const;

  it('returns flags and positionals, with repeated flags in order', () => {
    const args = parseCommandArgs('tail', ['7', '--from', '5', '-f', '--url', 'http://a:1', '--url=http://b:2'], flags, { min: 1, max: 1 });
    expect(args.positionals).toEqual(['7']);
    expect(args.values.from).toBe('5');
    expect(args.values.follow).toBe(true);
    expect(stringsFlag(args, 'url')).toEqual(['http://a:1', 'http://b:2']);
  });

  it('refuses an unknown flag, a missing value and wrong positionals with USAGE errors naming them', () => {
    expect(thrown(() => parseCommandArgs('tail', ['--nope'], flags)).message).toMatch(/Unknown option '--nope'.*msg tail --help/);
    expect(thrown(() => parseCommandArgs('tail', ['7', '--from'], flags, { max: 1 })).message).toContain("'--from <value>' argument missing");
    expect(thrown(() => parseCommandArgs('tail', [], flags, { min: 1, max: 1, names: 'the topic id' })).message).toBe('missing the topic id; see `msg tail --help`');
    const extra = thrown(() => parseCommandArgs('tail', ['7', '8'], flags, { min: 1, max: 1 }));
    expect(extra.message).toContain('unexpected argument "8"');
    expect(extra.exitCode).toBe(64);
  });

  it('accepts --help and -h even without the required positionals', () => {
    expect(parseCommandArgs('tail', ['-h'], flags, { min: 1 }).values.help).toBe(true);
    expect(parseCommandArgs('tail', ['--help'], flags, { min: 1 }).values.help).toBe(true);
  });
});

describe('flag values', () => {
  const args = (argv: string[]) => parseCommandArgs('bench', argv, { messages: { type: 'string' }, format: { type: 'string' } });

  it('integerFlag takes base-10 integers in range and names the flag otherwise', () => {
    expect(integerFlag(args([]), 'messages', 10)).toBe(10);
    expect(integerFlag(args(['--messages', '250']), 'messages', 10, { min: 1 })).toBe(250);
    for (const bad of ['0', '1.5', 'x', '1e3', '']) {
      expect(thrown(() => integerFlag(args(['--messages', bad]), 'messages', 10, { min: 1, max: 1000 })).message).toBe(
        `--messages: expected an integer in 1..1000, got ${JSON.stringify(bad)}`,
      );
    }
  });

  it('u64Arg takes 0..2^64-1 and nothing else', () => {
    expect(u64Arg('18446744073709551615', '<topic>')).toBe(18446744073709551615n);
    expect(u64Arg('0', '<topic>')).toBe(0n);
    expect(thrown(() => u64Arg('18446744073709551616', '<topic>')).message).toContain('<topic>: expected an integer in 0..18446744073709551615');
    expect(() => u64Arg('-1', '--from')).toThrow('--from');
  });

  it('choiceFlag lists the choices', () => {
    expect(choiceFlag(args(['--format', 'hex']), 'format', ['text', 'hex'] as const, 'text')).toBe('hex');
    expect(thrown(() => choiceFlag(args(['--format', 'xml']), 'format', ['text', 'hex'] as const, 'text')).message).toBe(
      '--format: expected one of text, hex, got "xml"',
    );
  });
});

describe('connectionOf', () => {
  const conn = { url: { type: 'string', multiple: true }, token: { type: 'string' }, ca: { type: 'string' }, cert: { type: 'string' }, key: { type: 'string' } } as const;
  const parse = (argv: string[]) => parseCommandArgs('status', argv, conn);

  it('takes --url (deduplicated by origin), else MSG_URL (comma separated), else the default', () => {
    expect(connectionOf(parse(['--url', 'http://a:1/x', '--url', 'http://a:1', '--url', 'https://b:2']), {}).urls.map((u) => u.origin)).toEqual([
      'http://a:1',
      'https://b:2',
    ]);
    expect(connectionOf(parse([]), { MSG_URL: 'http://c:3, http://d:4' }).urls.map((u) => u.origin)).toEqual(['http://c:3', 'http://d:4']);
    expect(connectionOf(parse([]), {}).urls.map((u) => u.origin)).toEqual(['http://127.0.0.1:8086']);
  });

  it('names the flag or variable of a bad URL', () => {
    expect(thrown(() => connectionOf(parse(['--url', 'ftp://x']), {})).message).toBe('--url: expected an absolute http:// or https:// URL, got "ftp://x"');
    expect(thrown(() => connectionOf(parse([]), { MSG_URL: 'nowhere' })).message).toContain('MSG_URL:');
  });

  it('takes the token from --token, else MSG_TOKEN, and never echoes a bad one', () => {
    expect(connectionOf(parse(['--token', 'abc']), { MSG_TOKEN: 'env' }).token).toBe('abc');
    expect(connectionOf(parse([]), { MSG_TOKEN: 'env' }).token).toBe('env');
    expect(connectionOf(parse([]), {}).token).toBeUndefined();
    const bad = thrown(() => connectionOf(parse(['--token', 'se cret']), {}));
    expect(bad.message).toBe('--token: a token is one word without whitespace');
    expect(thrown(() => connectionOf(parse([]), { MSG_TOKEN: 'a b' })).message).toContain('MSG_TOKEN');
  });

  it('takes --ca (else MSG_CA), and --cert only with --key', () => {
    expect(connectionOf(parse(['--ca', '/x/ca.pem']), {}).tlsFiles).toEqual({ ca: '/x/ca.pem' });
    expect(connectionOf(parse([]), { MSG_CA: '/y.pem' }).tlsFiles).toEqual({ ca: '/y.pem' });
    expect(connectionOf(parse(['--cert', 'c.pem', '--key', 'k.pem']), {}).tlsFiles).toEqual({ cert: 'c.pem', key: 'k.pem' });
    expect(thrown(() => connectionOf(parse(['--cert', 'c.pem']), {})).message).toBe('--cert needs --key');
    expect(thrown(() => connectionOf(parse(['--key', 'k.pem']), {})).message).toBe('--key needs --cert');
  });
});
