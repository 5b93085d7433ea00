/** What a table cell shows for a value a broker did not report. */
export const MISSING = '-';

/**
 * Formats `rows` under `headers` as aligned columns (two spaces between
 * columns, no trailing spaces), one line each, ending with a newline. A
 * column whose header ends with `>` is right-aligned (the `>` is not shown).
 */
export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const right = headers.map((h) => h.endsWith('>'));
  const names = headers.map((h) => (h.endsWith('>') ? h.slice(0, -1) : h));
  const widths = names.map((name, i) => Math.max(name.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    names
      .map((_name, i) => {
        const cell = cells[i] ?? '';
        return right[i] ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!);
      })
      .join('  ')
      .trimEnd();
  return [line(names), ...rows.map(line)].join('\n') + '\n';
}

/** `value` as text, or {@link MISSING} when it is `undefined` or `null`. */
export function cell(value: string | number | bigint | boolean | null | undefined): string {
  if (value === undefined || value === null) return MISSING;
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  return String(value);
}

/** A byte count for people: `512 B`, `1.5 KiB`, `20.0 MiB`, ... ({@link MISSING} when unknown). */
export function formatBytes(bytes: number | undefined): string {
  if (bytes === undefined) return MISSING;
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** A duration in milliseconds for people: `850ms`, `2.3s`, `4m05s` ({@link MISSING} when unknown). */
export function formatMs(ms: number | null | undefined): string {
  if (ms === undefined || ms === null || !Number.isFinite(ms)) return MISSING;
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const minutes = Math.floor(ms / 60_000);
  return `${minutes}m${String(Math.floor((ms % 60_000) / 1000)).padStart(2, '0')}s`;
}
