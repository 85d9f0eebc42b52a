import { execFile, spawn, type ChildProcess } from 'node:child_process';

export interface Exec {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a short runtime command (state, kill, delete, --version) and collects its output; never throws for a non-zero exit. */
export function execRuntime(binary: string, args: readonly string[], timeoutMs = 10_000): Promise<Exec> {
  return new Promise((resolve) => {
    execFile(binary, [...args], { timeout: timeoutMs, maxBuffer: 4 * 1024 * 1024, encoding: 'utf8' }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof (error as { code?: unknown }).code === 'number' ? ((error as { code: number }).code) : 127;
      resolve({ code, stdout, stderr: stderr || (error?.message ?? '') });
    });
  });
}

/** Collects a child's stdout and stderr up to a cap, and times the first byte. */
export class OutputCollector {
  private readonly chunks = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
  private size = 0;
  truncated = false;
  firstOutputAt: number | undefined;

  constructor(
    private readonly maxBytes: number,
    private readonly onOutput?: (stream: 'stdout' | 'stderr', chunk: Buffer) => void,
  ) {}

  attach(child: ChildProcess): void {
    child.stdout?.on('data', (c: Buffer) => this.push('stdout', c));
    child.stderr?.on('data', (c: Buffer) => this.push('stderr', c));
  }

  private push(stream: 'stdout' | 'stderr', chunk: Buffer): void {
    this.firstOutputAt ??= performance.now();
    this.onOutput?.(stream, chunk);
    const room = this.maxBytes - this.size;
    if (room <= 0) {
      this.truncated = true;
      return;
    }
    const kept = chunk.length > room ? chunk.subarray(0, room) : chunk;
    if (kept.length < chunk.length) this.truncated = true;
    this.chunks[stream].push(kept);
    this.size += kept.length;
  }

  text(stream: 'stdout' | 'stderr'): string {
    return Buffer.concat(this.chunks[stream]).toString('utf8');
  }
}

export { spawn };
