/**
 * What the fuzz suites share: the number of runs, the seed, the time budget
 * per input and the slowest input seen.
 *
 * `npm test` runs every property a fixed number of times from a fixed seed
 * (reproducible, a couple of minutes for the whole directory); `npm run fuzz`
 * sets DMALENS_FUZZ_RUNS to run many more. DMALENS_FUZZ_SEED replays another
 * seed; fast-check prints the seed and the shrunk counterexample of a failure.
 */

import * as fs from 'node:fs';
import * as path from 'node:path';

/** The files under `dir` (recursively, none when it does not exist) whose names match `ext`: seeds of the generators. */
export function readSeeds(dir: string, ext: RegExp): Buffer[] {
  const out: Buffer[] = [];
  const walk = (d: string) => {
    if (!fs.existsSync(d)) return;
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (ext.test(e.name)) out.push(fs.readFileSync(p));
    }
  };
  walk(dir);
  return out;
}

/**
 * Runs of a property: `defaultRuns` in npm test; under npm run fuzz
 * (DMALENS_FUZZ_RUNS=N) N times `longShare` (the costly properties, which
 * spawn processes or analyse big inputs, take a share of N).
 */
export function fuzzRuns(defaultRuns: number, longShare = 1): number {
  const n = Number(process.env.DMALENS_FUZZ_RUNS);
  return Number.isFinite(n) && n > 0 ? Math.max(1, Math.round(n * longShare)) : defaultRuns;
}

export const FUZZ_SEED = Number(process.env.DMALENS_FUZZ_SEED ?? 20261121);

/**
 * Per input: the CPU time this process spent on it (the machine is shared: 2
 * cores, other tests running, and wall time there measures the neighbours).
 */
export const BUDGET_MS = Number(process.env.DMALENS_FUZZ_BUDGET_MS ?? 8000);

/** Runs `fn`, with its wall time and this process's CPU time (user + system, all threads). */
export function measure<T>(fn: () => T): { value: T; ms: number; cpuMs: number } {
  const t0 = Date.now();
  const c0 = process.cpuUsage();
  const value = fn();
  const c = process.cpuUsage(c0);
  return { value, ms: Date.now() - t0, cpuMs: Math.round((c.user + c.system) / 1000) };
}

/** Whether this is the long run (npm run fuzz). */
export const LONG = Number(process.env.DMALENS_FUZZ_RUNS) > 0;

export class Slowest {
  ms = 0;
  cpuMs = 0;
  what = '';
  note(ms: number, what: string, cpuMs?: number): void {
    if (ms > this.ms) {
      this.ms = ms;
      this.cpuMs = cpuMs ?? 0;
      this.what = what;
    }
  }
  toString(): string {
    return `${this.ms} ms${this.cpuMs ? ` (${this.cpuMs} ms CPU)` : ''} (${this.what || 'none'})`;
  }
}
