/**
 * The workspace lock pass (./workspace.ts) in worker threads: the same two
 * passes and the same facts, with the files shared out in chunks and every
 * result put back in file order (so lock wrappers that two files export
 * resolve as in the one-thread pass; server/test/perf.test.ts compares them).
 *
 * - pass 1: each file that can matter (the prefilter on its bytes) says which
 *   of its functions need their callers' lock and which lock wrappers it exports;
 * - the files that call those functions, by a search of every file's bytes;
 * - pass 2, two rounds: the lock state at each of those calls.
 *
 * The language server runs it with one worker, in the background, so a scan
 * of a kernel tree never holds up an edit; a batch run takes every core.
 * Workers re-read the few files a later pass needs rather than keep texts.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { Analyzer } from '../core/analyzer';
import { decodeBytes } from '../core/text';
import type { AnalyzeOptions, WorkspaceFacts } from '../core/types';
import { mayMatterBytes } from '../rules/registry';
import { combineWorkspaceFacts, type FileLockFacts } from '../rules/workspace';
import { loadWasm } from './assets';
import type { WorkspaceResult } from './workspace';

const MARK = 'dmalens-workspace-worker';
const CHUNK = 64;

interface Job {
  files: readonly string[];
  options: AnalyzeOptions;
  maxSize: number;
}

type TaskBody =
  | { kind: 'facts'; start: number; end: number }
  | { kind: 'callers'; start: number; end: number; need: string[]; mattered: number[] }
  | { kind: 'calls'; indices: number[]; need: string[]; facts: WorkspaceFacts };
type Task = TaskBody & { id: number };

type FactsItem = { index: number; facts: FileLockFacts };
type Reply = { id: number; items?: unknown[]; fatal?: string };

export interface WorkspaceRun {
  /** The facts, or undefined when cancelled. Rejects when no worker could run. */
  result: Promise<WorkspaceResult | undefined>;
  cancel(): void;
}

/** Runs the workspace pass over `files` in `workers` threads (default: every core). */
export function collectWorkspaceFactsInWorkers(
  files: readonly string[],
  options: AnalyzeOptions = {},
  opts: { workers?: number; maxSize?: number } = {},
): WorkspaceRun {
  const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  const count = Math.max(1, Math.min(opts.workers ?? cores, Math.ceil(files.length / CHUNK) || 1));
  const job: Job = { files, options, maxSize: opts.maxSize ?? 4_000_000 };
  const pool: Worker[] = [];
  let cancelled = false;
  let failed: ((e: Error) => void) | undefined;
  const waiting = new Map<number, (items: unknown[]) => void>();
  const idle: Worker[] = [];
  const queue: Task[] = [];
  let nextId = 0;

  const dispatch = () => {
    while (idle.length && queue.length) idle.pop()!.postMessage(queue.shift()!);
  };
  const stop = () => {
    for (const w of pool) void w.terminate().catch(() => 0);
  };
  let onCancel: () => void = () => undefined;
  const whenCancelled = new Promise<void>((resolve) => (onCancel = resolve));
  let alive = count;
  let started = 0;
  const ready = new Promise<void>((resolve, reject) => {
    failed = reject;
    const entry = `require(${JSON.stringify(__filename)});`;
    for (let i = 0; i < count; i++) {
      const w = new Worker(entry, { eval: true, workerData: { [MARK]: job } });
      pool.push(w);
      w.on('message', (m: Reply | { ready: true }) => {
        if ('ready' in m) {
          idle.push(w);
          if (++started === 1) resolve();
          dispatch();
          return;
        }
        if (m.fatal !== undefined) {
          failed?.(new Error(m.fatal));
          return;
        }
        const done = waiting.get(m.id);
        waiting.delete(m.id);
        idle.push(w);
        dispatch();
        done?.(m.items ?? []);
      });
      w.on('error', (e) => failed?.(e instanceof Error ? e : new Error(String(e))));
      w.on('exit', (code) => {
        alive--;
        if (!cancelled && (waiting.size || started === 0) && alive === 0) failed?.(new Error(`the workspace workers stopped (exit code ${code})`));
      });
    }
  });
  const run = <T>(task: TaskBody): Promise<T[]> => {
    const id = nextId++;
    const p = new Promise<T[]>((resolve, reject) => {
      waiting.set(id, resolve as (items: unknown[]) => void);
      const prev = failed;
      failed = (e) => {
        prev?.(e);
        reject(e);
      };
    });
    queue.push({ ...task, id });
    dispatch();
    return p;
  };
  const chunks = (n: number): Array<[number, number]> => {
    const out: Array<[number, number]> = [];
    for (let s = 0; s < n; s += CHUNK) out.push([s, Math.min(n, s + CHUNK)]);
    return out;
  };

  const result = (async (): Promise<WorkspaceResult | undefined> => {
    const t0 = Date.now();
    try {
      await Promise.race([ready, whenCancelled]);
      if (cancelled) return undefined;
      // Pass 1.
      const parts = await Promise.all(chunks(files.length).map(([start, end]) => run<FactsItem>({ kind: 'facts', start, end })));
      if (cancelled) return undefined;
      const items = parts.flat();
      const perFile = items.map((x) => x.facts);
      const withFacts = perFile.filter((f) => f.needsCallerLock.length || f.exports.length).length;
      const need = [...new Set(perFile.flatMap((f) => f.needsCallerLock))];
      let facts = combineWorkspaceFacts(perFile, []);
      let callerFiles: number[] = [];
      if (need.length) {
        const mattered = items.map((x) => x.index);
        const found = await Promise.all(chunks(files.length).map(([start, end]) => run<number>({ kind: 'callers', start, end, need, mattered: mattered.filter((i) => i >= start && i < end) })));
        if (cancelled) return undefined;
        callerFiles = found.flat();
        for (let round = 0; round < 2; round++) {
          const shares: number[][] = [];
          for (let s = 0; s < callerFiles.length; s += 8) shares.push(callerFiles.slice(s, s + 8));
          const calls = (await Promise.all(shares.map((indices) => run<{ callee: string; held: boolean; caller: string }>({ kind: 'calls', indices, need, facts })))).flat();
          if (cancelled) return undefined;
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
    } finally {
      stop();
    }
  })();
  return {
    result,
    cancel: () => {
      cancelled = true;
      onCancel();
      for (const resolve of waiting.values()) resolve([]);
      waiting.clear();
      stop();
    },
  };
}

// ------------------------------------------------------------------ worker

function readText(file: string, maxSize: number): string | undefined {
  try {
    const raw = fs.readFileSync(file);
    if (raw.length > maxSize) return undefined;
    const d = decodeBytes(raw);
    return 'binary' in d ? undefined : d.text;
  } catch {
    return undefined;
  }
}

/** What workspaceSteps (./workspace.ts) does for one task's files. */
function perform(analyzer: Analyzer, job: Job, task: Task): unknown[] {
  const { files, options, maxSize } = job;
  if (task.kind === 'facts') {
    const out: FactsItem[] = [];
    for (let i = task.start; i < task.end; i++) {
      let raw: Buffer;
      try {
        raw = fs.readFileSync(files[i]);
      } catch {
        continue;
      }
      if (raw.length > maxSize || !mayMatterBytes(raw)) continue;
      const d = decodeBytes(raw);
      if ('binary' in d) continue;
      out.push({ index: i, facts: analyzer.fileLockFacts(d.text, options) });
    }
    return out;
  }
  const re = new RegExp(`\\b(?:${task.need.join('|')})\\s*\\(`);
  if (task.kind === 'callers') {
    const mattered = new Set(task.mattered);
    const names = task.need.map((n) => Buffer.from(n, 'latin1'));
    const out: number[] = [];
    for (let i = task.start; i < task.end; i++) {
      let text: string | undefined;
      if (mattered.has(i)) text = readText(files[i], Infinity);
      else {
        let raw: Buffer;
        try {
          raw = fs.readFileSync(files[i]);
        } catch {
          continue;
        }
        if (raw.length > maxSize || !names.some((n) => raw.indexOf(n) >= 0)) continue;
        const d = decodeBytes(raw);
        text = 'binary' in d ? undefined : d.text;
      }
      if (text !== undefined && re.test(text)) out.push(i);
    }
    return out;
  }
  const need = new Set(task.need);
  return task.indices.flatMap((i) => analyzer.lockAtCalls(readText(files[i], Infinity) ?? '', need, { ...options, workspace: task.facts }));
}

async function runWorker(job: Job): Promise<void> {
  const port = parentPort!;
  let analyzer: Analyzer;
  try {
    analyzer = await Analyzer.create(loadWasm());
  } catch (e) {
    port.postMessage({ id: -1, fatal: e instanceof Error ? e.message : String(e) } satisfies Reply);
    return;
  }
  port.on('message', (task: Task) => {
    let items: unknown[];
    try {
      items = perform(analyzer, job, task);
    } catch (e) {
      port.postMessage({ id: -1, fatal: e instanceof Error ? e.message : String(e) } satisfies Reply);
      return;
    }
    port.postMessage({ id: task.id, items } satisfies Reply);
  });
  port.postMessage({ ready: true });
}

if (!isMainThread && workerData && typeof workerData === 'object' && MARK in workerData) {
  void runWorker((workerData as Record<string, Job>)[MARK]);
}
