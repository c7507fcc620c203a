// Where swarmctl writes: stdout for results, stderr for errors and notes. Colour is used only
// when the stream is a terminal and NO_COLOR is unset, so pipes, files and CI logs stay plain.

import Table from 'cli-table3';
import pc from 'picocolors';

type Colors = ReturnType<typeof pc.createColors>;

export interface OutputOptions {
  json: boolean;
  stdout?: NodeJS.WriteStream;
  stderr?: NodeJS.WriteStream;
  env?: NodeJS.ProcessEnv;
}

export type Align = 'left' | 'right';

/** True when colour may be written to this stream (https://no-color.org: any non-empty value). */
export function colourEnabled(stream: NodeJS.WriteStream, env: NodeJS.ProcessEnv): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '' && env.FORCE_COLOR !== '0') {
    return true;
  }
  return stream.isTTY === true && env.TERM !== 'dumb';
}

export class Output {
  readonly json: boolean;
  /** Colours for stdout. */
  readonly c: Colors;
  readonly isTTY: boolean;

  private readonly stdout: NodeJS.WriteStream;
  private readonly stderr: NodeJS.WriteStream;
  private readonly ce: Colors;

  constructor(options: OutputOptions) {
    const env = options.env ?? process.env;

    this.json = options.json;
    this.stdout = options.stdout ?? process.stdout;
    this.stderr = options.stderr ?? process.stderr;
    this.isTTY = this.stdout.isTTY === true;
    this.c = pc.createColors(colourEnabled(this.stdout, env));
    this.ce = pc.createColors(colourEnabled(this.stderr, env));
  }

  line(text = ''): void {
    this.stdout.write(`${text}\n`);
  }

  write(text: string): void {
    this.stdout.write(text);
  }

  /** Machine output: one stable JSON document, pretty-printed, on stdout. */
  printJson(value: unknown): void {
    this.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  }

  /** A fatal message, on stderr, prefixed so it stands out in a log. */
  error(text: string): void {
    this.stderr.write(`${this.ce.red('error:')} ${text}\n`);
  }

  /** A note that does not change the outcome. Kept off stdout so --json stays parseable. */
  note(text: string): void {
    this.stderr.write(`${this.ce.dim(text)}\n`);
  }

  /** An aligned, borderless table, headed in bold on a terminal. */
  table(head: string[], rows: (string | number)[][], align: Align[] = []): string {
    const table = new Table({
      head: head.map((h) => this.c.bold(h)),
      chars: BORDERLESS,
      style: { head: [], border: [], 'padding-left': 0, 'padding-right': 0, compact: true },
      colAligns: head.map((_, i) => align[i] ?? 'left'),
    });

    for (const row of rows) table.push(row.map((cell) => String(cell)));

    return trimRight(table.toString());
  }

  /** "label  value" lines with the labels padded to one width. */
  keyValues(pairs: [string, string | number][]): string {
    const width = Math.max(0, ...pairs.map(([k]) => k.length));
    return pairs.map(([k, v]) => `${this.c.dim(k.padEnd(width))}  ${v}`).join('\n');
  }

  /** A section heading for multi-part reports. */
  heading(text: string): string {
    return this.c.bold(text);
  }

  /** The swarm's three states in traffic-light colours. */
  status(status: string): string {
    const label = status.toUpperCase();
    if (status === 'healthy' || status === 'ok' || status === 'PASS') return this.c.green(label);
    if (status === 'degraded' || status === 'WARN' || status === 'SKIP') {
      return this.c.yellow(label);
    }
    return this.c.red(label);
  }
}

// No rules between cells, two spaces between columns: reads like `kubectl get`.
export const BORDERLESS = {
  top: '',
  'top-mid': '',
  'top-left': '',
  'top-right': '',
  bottom: '',
  'bottom-mid': '',
  'bottom-left': '',
  'bottom-right': '',
  left: '',
  'left-mid': '',
  mid: '',
  'mid-mid': '',
  right: '',
  'right-mid': '',
  middle: '  ',
};

function trimRight(text: string): string {
  return text
    .split('\n')
    .map((l) => l.replace(/\s+$/, ''))
    .join('\n');
}
