/**
 * Workspace facts: what one file tells the analysis of the others.
 *
 * The reservation lock is often taken in one file and needed in another:
 * TTM calls a driver's move callback with the buffer reserved, and that
 * callback calls into helpers in other files that reach dma_buf_move_notify()
 * or dma_buf_map_attachment(). A function that needs the lock and takes none
 * itself is fine when every caller in the workspace holds it. The faces run
 * two passes: first each file says which of its non-static functions need the
 * lock from their callers (`needsCallerLock`) and which lock wrappers it
 * exports; then the files that call those functions say whether the lock is
 * held at each call (`lockAtCalls`); the result goes into
 * AnalyzeOptions.workspace for the real analysis.
 */
import { FileFacts } from '../core/facts';
import type { ParsedFile } from '../core/parser';
import type { AnalyzeOptions, WorkspaceFacts } from '../core/types';
import { anyHeld, CALLER, fileLocks, HELD } from './dmabuf/locks';
import { LOCK_FNS, MUST_HOLD, MUST_NOT_HOLD } from './dmabuf/vocab';
import { interestingPattern } from './registry';

export interface FileLockFacts {
  /** Non-static functions that call a must-hold dma-buf function with no lock of their own. */
  needsCallerLock: string[];
  /** Non-static functions of this file that act as lock wrappers. */
  exports: Array<[string, { kind: 'acquire' | 'release' | 'assert' | 'try'; arg: number; conditional?: boolean; suffix?: string }]>;
}

export function fileLockFacts(doc: ParsedFile, options: AnalyzeOptions = {}): FileLockFacts {
  const ff = new FileFacts(doc, interestingPattern(undefined, true), options);
  const locks = fileLocks(ff);
  const needsCallerLock: string[] = [];
  for (const fl of locks.functions.values()) {
    if (fl.fn.info.isStatic || fl.entry !== 'unknown') continue;
    if (fl.fn.calls.some((c) => MUST_HOLD.has(c.name) && !anyHeld(fl.before(c)))) needsCallerLock.push(fl.fn.info.name);
  }
  const exports: FileLockFacts['exports'] = [];
  for (const [name, s] of locks.summaries) {
    const info = ff.functions.get(name);
    // The dma-buf API itself (defined in dma-buf.c) keeps its own meaning: its asserts are requirements, not wrappers.
    if (!info || info.isStatic || MUST_HOLD.has(name) || MUST_NOT_HOLD.has(name) || name in LOCK_FNS) continue;
    if (s.acquires.length) exports.push([name, { kind: 'acquire', arg: s.acquires[0].param, conditional: s.acquires[0].conditional, suffix: s.acquires[0].suffix }]);
    else if (s.releases.length) exports.push([name, { kind: 'release', arg: s.releases[0].param, suffix: s.releases[0].suffix }]);
    else if (s.asserts.length) exports.push([name, { kind: 'assert', arg: s.asserts[0].param, suffix: s.asserts[0].suffix }]);
  }
  return { needsCallerLock, exports };
}

/** For each call to one of `names` in this file: is a reservation lock held there? */
export function lockAtCalls(doc: ParsedFile, names: ReadonlySet<string>, options: AnalyzeOptions = {}): Array<{ callee: string; held: boolean; caller: string }> {
  if (!names.size) return [];
  const words = [...names, ...Object.keys(LOCK_FNS)];
  const ff = new FileFacts(doc, new RegExp(`\\b(?:${words.join('|')})\\b`), options);
  const locks = fileLocks(ff);
  const out: Array<{ callee: string; held: boolean; caller: string }> = [];
  for (const fl of locks.functions.values()) {
    for (const c of fl.fn.calls) {
      if (!names.has(c.name) || ff.functions.has(c.name)) continue;
      const s = fl.before(c);
      out.push({ callee: c.name, held: anyHeld(s) || s.get(CALLER) === HELD, caller: fl.fn.info.name });
    }
  }
  return out;
}

/** Combines the two passes into the facts the analysis takes. */
export function combineWorkspaceFacts(
  files: FileLockFacts[],
  calls: Array<{ callee: string; held: boolean }>,
): WorkspaceFacts {
  const lockFns = new Map<string, { kind: 'acquire' | 'release' | 'assert' | 'try'; arg: number; conditional?: boolean; suffix?: string }>();
  for (const f of files) for (const [name, spec] of f.exports) if (!lockFns.has(name)) lockFns.set(name, spec);
  const verdict = new Map<string, boolean>();
  for (const c of calls) verdict.set(c.callee, (verdict.get(c.callee) ?? true) && c.held);
  const calledLocked = new Set<string>();
  for (const [name, all] of verdict) if (all) calledLocked.add(name);
  return { lockFns, calledLocked };
}
