// Progress for long work: a bar on a terminal, a log line every few seconds
// otherwise (CI logs, pipes), nothing when quiet.
import { performance } from 'node:perf_hooks';
import cliProgress from 'cli-progress';

export class Progress {
  private bar: cliProgress.SingleBar | null = null;
  private lastLine = 0;
  private readonly t0 = performance.now();
  private readonly showRate: boolean;

  /** `rate: false` for progress in time (seconds of a run), where a rate says nothing. */
  constructor(
    private readonly label: string,
    private readonly total: number,
    private readonly unit: string,
    opts: { quiet?: boolean; rate?: boolean } = {},
  ) {
    this.showRate = opts.rate !== false;
    if (opts.quiet) {
      this.update = () => {};
      this.done = () => {};
      return;
    }
    if (process.stderr.isTTY) {
      this.bar = new cliProgress.SingleBar(
        {
          format: `${label} [{bar}] {percentage}% | {value}/{total} ${unit}${this.showRate ? ' | {rate}/s' : ''} | eta {eta_formatted}`,
          stream: process.stderr,
          hideCursor: true,
        },
        cliProgress.Presets.shades_classic,
      );
      this.bar.start(total, 0, { rate: 0 });
    }
  }

  update(value: number): void {
    const s = (performance.now() - this.t0) / 1000;
    const rate = Math.round(value / Math.max(s, 1e-3));
    if (this.bar) {
      this.bar.update(value, { rate });
    } else if (performance.now() - this.lastLine > 5000) {
      this.lastLine = performance.now();
      process.stderr.write(
        `${this.label}: ${value}/${this.total} ${this.unit} (${((100 * value) / this.total).toFixed(1)}%${this.showRate ? `, ${rate}/s` : ''})\n`,
      );
    }
  }

  done(): void {
    this.bar?.stop();
  }
}
