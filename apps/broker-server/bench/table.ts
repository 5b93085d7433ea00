// Plain-text tables for the bench's report: one per section, first column
// left-aligned, numbers right-aligned, the last (note) column left-aligned.

/** A table: a title, column headers, rows of cells (already formatted), and lines printed under it. */
export interface Table {
  title: string;
  columns: string[];
  rows: string[][];
  notes: string[];
}

/** A new empty table. */
export function table(title: string, columns: string[]): Table {
  return { title, columns, rows: [], notes: [] };
}

/** `n` with a thousands separator and `digits` decimals; `-` when not a finite number. */
export function fmt(n: number | undefined, digits = 0): string {
  return n !== undefined && Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '-';
}

/** A ratio as `0.62x`. */
export function ratio(n: number | undefined): string {
  return n !== undefined && Number.isFinite(n) ? `${n.toFixed(2)}x` : '-';
}

/** `met` / `MISSED` for a target, with the target itself: `≥ 0.6x: met`. */
export function target(label: string, met: boolean | undefined): string {
  if (met === undefined) return `${label}: n/a`;
  return `${label}: ${met ? 'met' : 'MISSED'}`;
}

/** The table as lines of text. */
export function render(t: Table): string {
  const last = t.columns.length - 1;
  const widths = t.columns.map((c, i) => Math.max(c.length, ...t.rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === 0 || i === last ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  const out = [``, `## ${t.title}`, line(t.columns), widths.map((w) => '-'.repeat(w)).join('  ')];
  for (const row of t.rows) out.push(line(t.columns.map((_, i) => row[i] ?? '')));
  for (const note of t.notes) out.push(`  ${note}`);
  return out.join('\n');
}
