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
import { collectWorkspaceFactsAsync, type WorkspaceStats } from '../node/workspace';

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

export class WorkspaceScan {
  private generation = 0;
  facts?: WorkspaceFacts;
  stats?: WorkspaceStats;

  /** Starts (or restarts) the scan of `root`; `done` runs when facts are ready. */
  start(analyzer: Analyzer, root: string, options: AnalyzeOptions, done: (stats: WorkspaceStats) => void, fail: (e: unknown) => void): void {
    const gen = ++this.generation;
    setImmediate(() => {
      const files = cFilesUnder(root);
      collectWorkspaceFactsAsync(analyzer, files, options, { cancelled: () => gen !== this.generation })
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
  }
}
