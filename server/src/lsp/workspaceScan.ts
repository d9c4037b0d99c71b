/**
 * The background scan of a kernel tree open as a workspace folder: the
 * cross-file lock facts (node/workspace.ts) that let DMA Lens see that the
 * callers of a helper hold the reservation lock. Runs in slices so the server
 * keeps answering; cancelled on shutdown or when the folders change.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Analyzer } from '../core/analyzer';
import type { AnalyzeOptions, WorkspaceFacts } from '../core/types';
import { collectWorkspaceFactsAsync, type WorkspaceResult, type WorkspaceStats } from '../node/workspace';
import { collectWorkspaceFactsInWorkers, type WorkspaceRun } from '../node/workspaceWorkers';

/** Every .c file under `root`, skipping dot folders and symlinks (bounded). */
export function cFilesUnder(root: string, limit = 200_000): string[] {
  const out: string[] = [];
  const stack = [root];
  while (stack.length && out.length < limit) {
    const dir = stack.pop()!;
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const p = path.join(dir, e.name);
      if (e.isDirectory()) stack.push(p);
      else if (e.isFile() && e.name.endsWith('.c')) out.push(p);
    }
  }
  return out.sort();
}

/** Workspaces with fewer .c files are scanned in the server's own thread. */
export const WORKER_MIN_FILES = 1000;

export class WorkspaceScan {
  private generation = 0;
  private running?: WorkspaceRun;
  facts?: WorkspaceFacts;
  stats?: WorkspaceStats;

  /** Starts (or restarts) the scan of `root`; `done` runs when facts are ready. */
  start(analyzer: Analyzer, root: string, options: AnalyzeOptions, done: (stats: WorkspaceStats) => void, fail: (e: unknown) => void): void {
    const gen = ++this.generation;
    setImmediate(() => {
      const files = cFilesUnder(root);
      // A tree: in a worker thread, so the scan never holds up an edit (a 6.12 tree keeps
      // it busy for seconds). A few files: here, in slices (a worker takes 0.3 s to start);
      // here too when no worker can run.
      const inProcess = () => collectWorkspaceFactsAsync(analyzer, files, options, { cancelled: () => gen !== this.generation });
      let scan: Promise<WorkspaceResult | undefined>;
      this.running?.cancel();
      this.running = undefined;
      try {
        if (files.length < WORKER_MIN_FILES) throw new Error('few files');
        this.running = collectWorkspaceFactsInWorkers(files, options, { workers: 1 });
        scan = this.running.result.catch(() => (gen === this.generation ? inProcess() : undefined));
      } catch {
        scan = inProcess();
      }
      scan
        .then((r) => {
          if (!r || gen !== this.generation) return;
          this.facts = r.facts;
          this.stats = r.stats;
          done(r.stats);
        })
        .catch(fail);
    });
  }

  cancel(): void {
    this.generation++;
    this.running?.cancel();
    this.running = undefined;
  }
}
