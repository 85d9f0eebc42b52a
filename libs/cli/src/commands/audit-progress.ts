/**
 * Progress for long audit runs: a cli-progress bar on an interactive terminal, nothing
 * otherwise (pipes, CI logs and --json output stay clean).
 */
import { SingleBar, Presets } from 'cli-progress';

export interface Progress {
  update(done: number, total: number): void;
  stop(): void;
}

export type ProgressFactory = (label: string, unit: string) => Progress | undefined;

/** A bar on stderr when it is a terminal. */
export const terminalProgress: ProgressFactory = (label, unit) => {
  if (process.stderr.isTTY !== true) return undefined;
  const bar = new SingleBar(
    { format: `${label} [{bar}] {percentage}% | {value}/{total} ${unit} | {eta_formatted}`, stream: process.stderr, hideCursor: true, clearOnComplete: true, etaBuffer: 50 },
    Presets.shades_classic,
  );
  let started = false;
  return {
    update(done, total) {
      if (!started) {
        bar.start(total, done);
        started = true;
      } else {
        bar.setTotal(total);
        bar.update(done);
      }
    },
    stop() {
      if (started) bar.stop();
      started = false;
    },
  };
};
