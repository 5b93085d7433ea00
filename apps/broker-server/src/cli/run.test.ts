import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import type { CommandIO } from './io.js';
import { COMMANDS, msgVersion, ownsSignals, runMsg } from './run.js';

function io(env: NodeJS.ProcessEnv = {}): CommandIO & { stdout: () => string; stderr: () => string } {
  let out = '';
  let err = '';
  return {
    out: (text) => void (out += text),
    err: { write: (text: string) => void (err += text) },
    env,
    stdin: (async function* () {})(),
    signal: new AbortController().signal,
    stdout: () => out,
    stderr: () => err,
  };
}

describe('msg', () => {
  it('prints its version (the package version) for --version and -V', async () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(msgVersion()).toBe(pkg.version);
    for (const argv of [['--version'], ['-V'], ['tail', '--version'], ['serve', '-V'], ['cluster', '--version', '--', '--sync', 'never']]) {
      const run = io();
      expect(await runMsg(argv, run)).toBe(0);
      expect(run.stdout()).toBe(`msg ${pkg.version}\n`);
    }
  });

  it('lists every command for --help, and exits 64 with the list on stderr without one', async () => {
    const help = io();
    expect(await runMsg(['--help'], help)).toBe(0);
    for (const name of ['serve', ...Object.keys(COMMANDS)]) expect(help.stdout()).toMatch(new RegExp(`^  ${name} `, 'm'));
    const none = io();
    expect(await runMsg([], none)).toBe(64);
    expect(none.stderr()).toContain('Usage: msg <command>');
  });

  it('prints each command\'s usage for <command> --help and -h, and help <command>', async () => {
    for (const name of Object.keys(COMMANDS)) {
      for (const argv of [[name, '--help'], [name, '-h'], ['help', name]]) {
        const run = io();
        expect(await runMsg(argv, run)).toBe(0);
        expect(run.stdout()).toContain(`Usage: msg ${name}`);
        expect(run.stdout()).toContain('Exit codes:');
      }
    }
  });

  it('exits 64 naming an unknown command, and a usage error of a command', async () => {
    const unknown = io();
    expect(await runMsg(['stauts'], unknown)).toBe(64);
    expect(unknown.stderr()).toContain('msg: unknown command "stauts"');
    const bad = io();
    expect(await runMsg(['tail', '7', '--format', 'xml'], bad)).toBe(64);
    expect(bad.stderr()).toBe('msg tail: --format: expected one of text, hex, json, got "xml"\n');
    const noTopic = io();
    expect(await runMsg(['publish'], noTopic)).toBe(64);
    expect(noTopic.stderr()).toContain('msg publish: missing the topic id');
  });

  it('exits 69 when no broker answers, and 66 for a --ca file that cannot be read', async () => {
    const down = io();
    expect(await runMsg(['status', '--url', 'http://127.0.0.1:1'], down)).toBe(69);
    expect(down.stderr()).toContain('msg status: no broker answered: http://127.0.0.1:1');
    const ca = io();
    expect(await runMsg(['topics', '--url', 'https://127.0.0.1:1', '--ca', '/no/such/ca.pem'], ca)).toBe(66);
    expect(ca.stderr()).toContain('msg topics: --ca: ENOENT');
  });

  it('leave: takes --url for --cluster and names itself msg leave', async () => {
    const run = io();
    expect(await runMsg(['leave', '--url', 'http://127.0.0.1:1'], run)).toBe(64);
    expect(run.stderr()).toMatch(/^msg leave: .*--member/);
  });

  it('serve and cluster handle signals themselves; the others leave them to the runner', () => {
    expect(ownsSignals(['serve'])).toBe(true);
    expect(ownsSignals(['cluster'])).toBe(true);
    expect(ownsSignals(['tail', '7'])).toBe(false);
    expect(ownsSignals(['--data-dir', 'x'], { compat: true })).toBe(true);
    expect(ownsSignals(['status'], { compat: true })).toBe(false);
  });
});
