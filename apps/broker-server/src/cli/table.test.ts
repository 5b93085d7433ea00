import { describe, expect, it } from '@jest/globals';
import { cell, formatBytes, formatMs, formatTable } from './table.js';

describe('formatTable', () => {
  it('aligns columns, right-aligns those marked with >, and leaves no trailing spaces', () => {
    const text = formatTable(['NAME', 'COUNT>', 'NOTE'], [
      ['a', '1', ''],
      ['longer', '1000', 'x'],
    ]);
    expect(text).toBe(['NAME    COUNT  NOTE', 'a           1', 'longer   1000  x', ''].join('\n'));
  });
});

describe('cells', () => {
  it('shows absent values as "-" and booleans as yes/no', () => {
    expect([cell(undefined), cell(null), cell(true), cell(false), cell(0), cell(12n)]).toEqual(['-', '-', 'yes', 'no', '0', '12']);
  });

  it('formats bytes and durations for people', () => {
    expect([formatBytes(undefined), formatBytes(512), formatBytes(1536), formatBytes(20 * 1024 * 1024)]).toEqual(['-', '512 B', '1.5 KiB', '20.0 MiB']);
    expect([formatMs(undefined), formatMs(null), formatMs(849.6), formatMs(2300), formatMs(245_000)]).toEqual(['-', '-', '850ms', '2.3s', '4m05s']);
  });
});
