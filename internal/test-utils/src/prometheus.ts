/** One metric family of a Prometheus text exposition (format 0.0.4), as {@link parsePrometheusText} returns it. */
export interface MetricFamily {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  /** Samples in order: the sample's full name (`x_bucket` for a histogram's bucket), labels and value. */
  samples: { name: string; labels: Record<string, string>; value: number }[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? ([^ ]+)( -?\d+)?$/;
const LABEL = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/;

/**
 * Parses a Prometheus text exposition strictly and throws an `Error` naming
 * the line at the first problem: each family's `# HELP` then `# TYPE` before
 * its samples, sample names belonging to the family (`_bucket`, `_sum` and
 * `_count` for histograms, a `le` label on every bucket, cumulative bucket
 * counts ending with `+Inf` equal to `_count`), well-formed labels, numeric
 * values, no family or series twice. Empty lines are allowed.
 */
export function parsePrometheusText(text: string): Map<string, MetricFamily> {
  const families = new Map<string, MetricFamily>();
  const series = new Set<string>();
  let current: MetricFamily | undefined;
  const lines = text.split('\n');
  if (lines.at(-1) !== '') throw new Error('the exposition does not end with a newline');
  lines.forEach((line, i) => {
    const where = `line ${i + 1} (${JSON.stringify(line)})`;
    if (line === '') return;
    if (line.startsWith('# HELP ')) {
      const [name, ...help] = line.slice(7).split(' ');
      if (!name || !NAME.test(name)) throw new Error(`${where}: bad metric name`);
      if (families.has(name)) throw new Error(`${where}: family ${name} twice`);
      current = { name, help: help.join(' '), type: 'untyped', samples: [] };
      families.set(name, current);
      return;
    }
    if (line.startsWith('# TYPE ')) {
      const [name, type] = line.slice(7).split(' ');
      if (!current || current.name !== name) throw new Error(`${where}: TYPE without its HELP`);
      if (type !== 'counter' && type !== 'gauge' && type !== 'histogram' && type !== 'summary' && type !== 'untyped') throw new Error(`${where}: bad type`);
      current.type = type;
      return;
    }
    if (line.startsWith('#')) return;
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`${where}: not a sample`);
    const [, name = '', , labelText = '', valueText] = m;
    if (!current) throw new Error(`${where}: sample before any family`);
    const suffixes = current.type === 'histogram' ? ['_bucket', '_sum', '_count'] : current.type === 'summary' ? ['', '_sum', '_count'] : [''];
    if (!suffixes.some((s) => name === current!.name + s)) throw new Error(`${where}: sample of another family than ${current.name}`);
    const labels: Record<string, string> = {};
    let rest = labelText;
    while (rest.length > 0) {
      const l = LABEL.exec(rest);
      if (!l) throw new Error(`${where}: bad labels`);
      if (l[1]! in labels) throw new Error(`${where}: label ${l[1]} twice`);
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
      rest = rest.slice(l[0].length);
    }
    // As Prometheus (Go's ParseFloat): NaN and Inf in any case (prom-client writes `Nan`).
    const lower = valueText?.toLowerCase();
    const value = lower === '+inf' || lower === 'inf' ? Infinity : lower === '-inf' ? -Infinity : lower === 'nan' ? NaN : Number(valueText);
    if (valueText === undefined || (Number.isNaN(value) && lower !== 'nan')) throw new Error(`${where}: bad value`);
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (series.has(key)) throw new Error(`${where}: series twice`);
    series.add(key);
    if (name.endsWith('_bucket') && current.type === 'histogram' && labels.le === undefined) throw new Error(`${where}: bucket without le`);
    current.samples.push({ name, labels, value });
  });
  for (const f of families.values()) if (f.type === 'histogram') checkHistogram(f);
  return families;
}

function checkHistogram(f: MetricFamily): void {
  const groups = new Map<string, { buckets: { le: number; value: number }[]; count?: number }>();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { buckets: [] }));
    if (s.name.endsWith('_bucket')) g.buckets.push({ le: le === '+Inf' ? Infinity : Number(le), value: s.value });
    if (s.name.endsWith('_count')) g.count = s.value;
  }
  for (const [key, g] of groups) {
    const sorted = [...g.buckets].sort((a, b) => a.le - b.le);
    for (let i = 1; i < sorted.length; i++) {
      if (sorted[i]!.value < sorted[i - 1]!.value) throw new Error(`${f.name}${key}: bucket counts are not cumulative`);
    }
    const inf = sorted.at(-1);
    if (!inf || inf.le !== Infinity) throw new Error(`${f.name}${key}: no +Inf bucket`);
    if (g.count !== inf.value) throw new Error(`${f.name}${key}: _count ${g.count} differs from the +Inf bucket ${inf.value}`);
  }
}

/** The value of the sample `name` with exactly `labels` (default none) in `families`, `undefined` when absent. */
export function sampleValue(families: Map<string, MetricFamily>, name: string, labels: Record<string, string> = {}): number | undefined {
  const want = JSON.stringify(Object.entries(labels).sort());
  for (const f of families.values()) {
    for (const s of f.samples) if (s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === want) return s.value;
  }
  return undefined;
}
