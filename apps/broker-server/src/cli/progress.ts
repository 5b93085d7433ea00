/** Where a {@link Progress} writes: a stream; `isTTY` picks the bar over plain lines. */
export interface ProgressStream {
  write(text: string): unknown;
  /** True on a terminal. */
  isTTY?: boolean;
  /** Terminal width in columns, when known. */
  columns?: number;
}

/** Options of {@link createProgress}. */
export interface ProgressOptions {
  /** What is being done (`import`, `bench publish`, ...); starts every line. */
  label: string;
  /** The amount of work, in `unit`s; `undefined` when unknown (then counts are shown without a bar). */
  total?: number;
  /** What is counted (`messages`, `entries`); default `items`. */
  unit?: string;
  /** Written to (default: `process.stderr`). */
  stream?: ProgressStream;
  /** Milliseconds since some fixed point (default `performance.now`). */
  now?: () => number;
  /** On a TTY, least milliseconds between two redraws. Default 100. */
  redrawMs?: number;
  /** Otherwise, least milliseconds between two progress lines (a line is also written at every 25%). Default 2000. */
  lineMs?: number;
}

/** Progress of one long piece of work: a bar redrawn in place on a terminal, plain lines elsewhere (logs, pipes, CI). */
export interface Progress {
  /** Sets the work done so far (and a new total, when it became known or changed); writes when due. */
  update(done: number, total?: number): void;
  /** Ends the progress with a last line (`message`, default the final count). Later calls do nothing. */
  finish(message?: string): void;
}

const BAR_WIDTH = 30;

/**
 * A {@link Progress} on `options.stream`: on a TTY one line `label [####....]
 * 45% 450/1000 unit` redrawn with `\r` at most every `redrawMs`; otherwise a
 * line `label: 450/1000 unit (45%)` at most every `lineMs` and at each 25%
 * step. `finish` ends the bar's line (TTY) or writes the last line.
 */
export function createProgress(options: ProgressOptions): Progress {
  const stream = options.stream ?? process.stderr;
  const now = options.now ?? (() => performance.now());
  const tty = stream.isTTY === true;
  const unit = options.unit ?? 'items';
  const redrawMs = options.redrawMs ?? 100;
  const lineMs = options.lineMs ?? 2000;
  let total = options.total;
  let done = 0;
  let lastWrite = -Infinity;
  let lastQuarter = -1;
  let finished = false;
  let drawn = false;

  const counts = (): string => (total === undefined ? `${done} ${unit}` : `${done}/${total} ${unit}`);
  const percent = (): number | undefined => (total === undefined || total <= 0 ? undefined : Math.min(100, Math.floor((done / total) * 100)));
  const bar = (): string => {
    const p = percent();
    if (p === undefined) return `${options.label} ${counts()}`;
    const filled = Math.round((p / 100) * BAR_WIDTH);
    return `${options.label} [${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}] ${String(p).padStart(3)}% ${counts()}`;
  };
  const plain = (): string => {
    const p = percent();
    return `${options.label}: ${counts()}${p === undefined ? '' : ` (${p}%)`}\n`;
  };
  const draw = (): void => {
    const text = bar();
    const width = stream.columns ?? 120;
    stream.write(`\r${text.length >= width ? text.slice(0, width - 1) : text}\x1b[K`);
    drawn = true;
  };

  return {
    update(value, newTotal) {
      if (finished) return;
      done = value;
      if (newTotal !== undefined) total = newTotal;
      const t = now();
      if (tty) {
        if (t - lastWrite < redrawMs) return;
        lastWrite = t;
        draw();
        return;
      }
      const p = percent();
      const quarter = p === undefined ? -1 : Math.floor(p / 25);
      if (quarter > lastQuarter || t - lastWrite >= lineMs) {
        lastQuarter = Math.max(lastQuarter, quarter);
        lastWrite = t;
        stream.write(plain());
      }
    },
    finish(message) {
      if (finished) return;
      finished = true;
      if (tty) {
        if (message === undefined) {
          draw();
          stream.write('\n');
        } else {
          stream.write(`${drawn ? '\r\x1b[K' : ''}${options.label}: ${message}\n`);
        }
        return;
      }
      stream.write(message === undefined ? plain() : `${options.label}: ${message}\n`);
    },
  };
}
