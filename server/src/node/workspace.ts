/**
 * Workspace facts for a set of files on disk (the CLI's paths, a kernel tree):
 * the two passes of rules/workspace.ts, with the file reading done here.
 *
 * Pass 1 runs over the files that can matter (the prefilter). Functions that
 * need their callers' reservation lock are then looked for, by name, in every
 * file of the set (a text search), and the files that call them report the
 * lock state at each call. Two rounds, so a caller that is itself called
 * locked counts as locked.
 */
import * as fs from 'node:fs';
import type { Analyzer } from '../core/analyzer';
import { decodeBytes } from '../core/text';
import type { AnalyzeOptions, WorkspaceFacts } from '../core/types';
import { mayMatterBytes } from '../rules/registry';
import { combineWorkspaceFacts, type FileLockFacts } from '../rules/workspace';

export interface WorkspaceStats {
  filesScanned: number;
  filesWithFacts: number;
  callerFiles: number;
  calledLocked: number;
  seconds: number;
}

function readText(file: string): string | undefined {
  try {
    const d = decodeBytes(fs.readFileSync(file));
    return 'binary' in d ? undefined : d.text;
  } catch {
    return undefined;
  }
}

export interface WorkspaceResult {
  facts: WorkspaceFacts;
  stats: WorkspaceStats;
}

/** The synchronous form, for the CLI and tests. */
export function collectWorkspaceFacts(analyzer: Analyzer, files: readonly string[], options: AnalyzeOptions = {}, maxSize = 4_000_000): WorkspaceResult {
  const steps = workspaceSteps(analyzer, files, options, maxSize);
  for (;;) {
    const n = steps.next();
    if (n.done) return n.value;
  }
}

/**
 * The asynchronous form, for the language server: yields to the event loop
 * every `sliceMs` so requests keep being answered, and stops (undefined)
 * when `cancelled()` says so.
 */
export async function collectWorkspaceFactsAsync(
  analyzer: Analyzer,
  files: readonly string[],
  options: AnalyzeOptions = {},
  opts: { maxSize?: number; sliceMs?: number; cancelled?: () => boolean } = {},
): Promise<WorkspaceResult | undefined> {
  const steps = workspaceSteps(analyzer, files, options, opts.maxSize ?? 4_000_000);
  const slice = opts.sliceMs ?? 15;
  let start = Date.now();
  for (;;) {
    const n = steps.next();
    if (n.done) return n.value;
    if (Date.now() - start >= slice) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (opts.cancelled?.()) return undefined;
      start = Date.now();
    }
  }
}

/** The two passes as a generator: one step per file read or analysed. */
function* workspaceSteps(analyzer: Analyzer, files: readonly string[], options: AnalyzeOptions, maxSize: number): Generator<void, WorkspaceResult> {
  const t0 = Date.now();
  const perFile: FileLockFacts[] = [];
  const texts = new Map<string, string>();
  let withFacts = 0;
  for (const file of files) {
    yield;
    let raw: Buffer;
    try {
      raw = fs.readFileSync(file);
    } catch {
      continue;
    }
    // The prefilter on the raw bytes, decoding only what matters.
    if (raw.length > maxSize || !mayMatterBytes(raw)) continue;
    const d = decodeBytes(raw);
    if ('binary' in d) continue;
    const text = d.text;
    texts.set(file, text);
    const f = analyzer.fileLockFacts(text, options);
    if (f.needsCallerLock.length || f.exports.length) withFacts++;
    perFile.push(f);
  }
  const need = new Set(perFile.flatMap((f) => f.needsCallerLock));
  let facts = combineWorkspaceFacts(perFile, []);
  const callerFiles: string[] = [];
  if (need.size) {
    const re = new RegExp(`\\b(?:${[...need].join('|')})\\s*\\(`);
    const names = [...need].map((n) => Buffer.from(n, 'latin1'));
    for (const file of files) {
      yield;
      let text = texts.get(file);
      if (text === undefined) {
        let raw: Buffer;
        try {
          raw = fs.readFileSync(file);
        } catch {
          continue;
        }
        // memmem on the bytes first: most files mention none of the names.
        if (raw.length > maxSize || !names.some((n) => raw.indexOf(n) >= 0)) continue;
        text = readText(file);
      }
      if (text !== undefined && re.test(text)) callerFiles.push(file);
    }
    for (let round = 0; round < 2; round++) {
      const calls: Array<{ callee: string; held: boolean }> = [];
      for (const file of callerFiles) {
        yield;
        calls.push(...analyzer.lockAtCalls(texts.get(file) ?? readText(file) ?? '', need, { ...options, workspace: facts }));
      }
      facts = combineWorkspaceFacts(perFile, calls);
    }
  }
  return {
    facts,
    stats: {
      filesScanned: files.length,
      filesWithFacts: withFacts,
      callerFiles: callerFiles.length,
      calledLocked: facts.calledLocked?.size ?? 0,
      seconds: (Date.now() - t0) / 1000,
    },
  };
}
