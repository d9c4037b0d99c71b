/**
 * `dmalens check` over many files: worker threads read, prefilter and analyse
 * the files ahead of the command's loop, which takes their results one file
 * at a time, in the order of the files. The loop then reports and prints
 * exactly what it would have without them (server/test/bulk.test.ts compares
 * the output byte for byte).
 *
 * Each worker loads its own analyzer and takes chunks of file indices. Per
 * .c/.h file it
 * - reads the bytes with readSource's checks (files.ts readBytesSync) and
 *   refuses binary files (core/text.ts binaryReason);
 * - runs the prefilter on the bytes (rules/registry.ts mayMatterBytes): a
 *   file no rule can fire on is answered "quiet", never decoded or parsed
 *   (on a kernel tree, 99 files in 100);
 * - else decodes and analyses it (AnalyzeOptions from ../node/project.ts, as
 *   the loop computes it), sending back the result, and the text only when
 *   there is something to locate.
 * Other files (patches named on the command line, standard input) are left
 * to the loop, as is everything when a worker cannot start.
 *
 * Chunks are handed out at most WINDOW files ahead of the file the loop
 * waits for, so results wait in memory only briefly.
 *
 * The files may come in while the command still walks the directories
 * (`stream`, `add`, `end`): the workers start on the first files found, so
 * the walk (0.8 s on the 6.12 tree) and their start overlap the analysis.
 *
 * Workers: os.availableParallelism(), for 256 files or more; DMALENS_WORKERS=N
 * sets the number (0: none) whatever the number of files.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { Analyzer } from '../core/analyzer';
import { decodeBytes, binaryReason } from '../core/text';
import type { AnalysisResult, AnalyzeOptions } from '../core/types';
import { loadWasm } from '../node/assets';
import { mayMatterBytes } from '../rules/registry';
import { ProjectFiles } from '../node/project';
import { readBytesSync, type ReadResult, SOURCE_EXTENSIONS } from './files';

/** What the loop gets for a file: readSource's answer, plus the worker's analysis. */
export type Prepared = ReadResult & {
  /** No rule can fire on the file: nothing to analyse, locate or print (`text` is empty then). */
  quiet?: boolean;
  /** The worker's analysis of `text` (throws what analyzeText threw). */
  analysed?: () => AnalysisResult;
};

export interface BulkOptions {
  maxSize: number;
  /** The options every file is analysed with (structured-cloneable); `path` is set per file. */
  options: AnalyzeOptions;
  /** Number of workers; default from DMALENS_WORKERS, else the machine's parallelism. */
  workers?: number;
}

/** Fewer files than this are analysed in the loop itself (starting workers costs about 0.1 s). */
export const MIN_FILES = 256;
const CHUNK = 32;
const WINDOW = 16384;
const MARK = 'dmalens-bulk-worker';

type Item =
  | { k: 'main' }
  | { k: 'skip'; skipped: string; fatal: boolean }
  | { k: 'quiet'; bytes: number }
  | { k: 'done'; bytes: number; encoding: 'utf-8' | 'latin-1'; text?: string; result: AnalysisResult }
  | { k: 'error'; bytes: number; encoding: 'utf-8' | 'latin-1'; message: string };

interface Job {
  maxSize: number;
  options: AnalyzeOptions;
}

type ToWorker = { type: 'chunk'; start: number; files: string[] };
type FromWorker = { type: 'results'; start: number; items: Item[] } | { type: 'fatal'; message: string };

const EMPTY: AnalysisResult = { findings: [], notices: [], errorNodes: 0 };

function isSource(file: string): boolean {
  return SOURCE_EXTENSIONS.includes(path.extname(file));
}

/** How many workers to start for `count` files (0: none). */
export function workerCount(count: number, requested?: number): number {
  const env = process.env.DMALENS_WORKERS;
  if (requested !== undefined) return Math.max(0, requested);
  if (env !== undefined && /^\d+$/.test(env.trim())) return Number(env.trim());
  if (count < MIN_FILES) return 0;
  const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  return cores >= 2 ? cores : 0;
}

export class BulkAnalysis {
  private readonly files: string[] = [];
  private readonly items: (Item | undefined)[] = [];
  private readonly waiters = new Map<number, (item: Item) => void>();
  private readonly live = new Set<Worker>();
  /** Chunks handed to each worker and not yet answered. */
  private readonly pending = new Map<Worker, Array<{ start: number; end: number }>>();
  private nextChunk = 0;
  /** Index of the next file the loop takes. */
  private next = 0;
  private closed = false;
  /** Every file has been added (`end`). */
  private ended = false;
  /** Workers were started (they may all be gone since). */
  private started = false;

  private constructor(
    private readonly job: Job,
    /** Workers to start, or undefined: as many as workerCount gives for the files once there are MIN_FILES. */
    private readonly requested: number | undefined,
  ) {}

  /**
   * A bulk analysis whose files come in with `add`, in the loop's order, and
   * end with `end`. It starts workers once MIN_FILES files have come in (or
   * at once when a number is asked for); with fewer, `take` answers
   * undefined and the loop does the work.
   */
  static stream(opts: BulkOptions): BulkAnalysis {
    return new BulkAnalysis({ maxSize: opts.maxSize, options: opts.options }, opts.workers);
  }

  /** The next file of the list. */
  add(file: string): void {
    if (this.ended || this.closed) return;
    this.files.push(file);
    if (!this.started) this.maybeStart();
    else if (this.live.size === 0) this.settle(this.files.length - 1, { k: 'main' });
    else if (this.files.length - this.nextChunk >= CHUNK) for (const w of this.live) this.feed(w);
  }

  /** No more files: the last chunk goes out, short or not. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    if (!this.started) this.maybeStart();
    for (const w of this.live) this.feed(w);
  }

  private maybeStart(): void {
    // Without a number asked for, none until the walk has found MIN_FILES files (workerCount).
    const n = workerCount(this.files.length, this.requested);
    if (n === 0) return;
    this.started = true;
    const count = this.ended ? Math.min(n, Math.max(1, Math.ceil(this.files.length / CHUNK))) : n;
    const entry = `require(${JSON.stringify(__filename)});`;
    for (let i = 0; i < count; i++) {
      let w: Worker;
      try {
        w = new Worker(entry, { eval: true, workerData: { [MARK]: this.job } });
      } catch {
        break;
      }
      this.live.add(w);
      this.pending.set(w, []);
      w.on('message', (m: FromWorker) => this.onMessage(w, m));
      w.on('error', () => this.lost(w));
      w.on('exit', () => this.lost(w));
      w.unref();
    }
    if (this.live.size === 0) this.lostAll();
    for (const w of this.live) {
      this.feed(w);
      this.feed(w);
    }
  }

  /**
   * The result for `file`, which must be the next file of the list (else, and
   * for files the workers leave to the loop, undefined).
   */
  async take(file: string): Promise<Prepared | undefined> {
    if (this.closed || !this.started || this.files[this.next] !== file) return undefined;
    const i = this.next++;
    for (const w of this.live) this.feed(w);
    const item = this.items[i] ?? (await this.wait(i));
    this.items[i] = undefined;
    return prepared(item);
  }

  /** Stops the workers. */
  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.live];
    this.live.clear();
    await Promise.all(all.map((w) => w.terminate().catch(() => 0)));
    for (const [i, resolve] of this.waiters) {
      this.waiters.delete(i);
      resolve({ k: 'main' });
    }
  }

  private wait(i: number): Promise<Item> {
    for (const w of this.live) w.ref();
    return new Promise<Item>((resolve) => this.waiters.set(i, resolve)).finally(() => {
      if (this.waiters.size === 0) for (const w of this.live) w.unref();
    });
  }

  private feed(w: Worker): void {
    const queue = this.pending.get(w);
    if (!queue || !this.live.has(w) || queue.length >= 2) return;
    if (this.nextChunk >= this.files.length || this.nextChunk >= this.next + WINDOW) return;
    // While files still come in, only whole chunks go out.
    if (!this.ended && this.files.length - this.nextChunk < CHUNK) return;
    const start = this.nextChunk;
    const end = Math.min(this.files.length, start + CHUNK);
    this.nextChunk = end;
    queue.push({ start, end });
    w.postMessage({ type: 'chunk', start, files: this.files.slice(start, end) } satisfies ToWorker);
  }

  private onMessage(w: Worker, m: FromWorker): void {
    if (m.type === 'fatal') {
      this.lost(w);
      return;
    }
    const queue = this.pending.get(w);
    if (queue && queue.length && queue[0].start === m.start) queue.shift();
    m.items.forEach((item, k) => this.settle(m.start + k, item));
    this.feed(w);
  }

  private settle(i: number, item: Item): void {
    const resolve = this.waiters.get(i);
    if (resolve) {
      this.waiters.delete(i);
      resolve(item);
    } else if (i >= this.next) this.items[i] = item;
  }

  /** A worker died or could not start: the loop does its unanswered files itself. */
  private lost(w: Worker): void {
    if (!this.pending.has(w)) return;
    const queue = this.pending.get(w)!;
    this.pending.delete(w);
    this.live.delete(w);
    void w.terminate().catch(() => 0);
    for (const c of queue) for (let i = c.start; i < c.end; i++) this.settle(i, { k: 'main' });
    if (this.live.size === 0) this.lostAll();
  }

  /** No worker left: the rest of the files go to the loop too (and those still to come, in `add`). */
  private lostAll(): void {
    for (let i = this.nextChunk; i < this.files.length; i++) this.settle(i, { k: 'main' });
    this.nextChunk = this.files.length;
  }
}

function prepared(item: Item): Prepared | undefined {
  switch (item.k) {
    case 'main':
      return undefined;
    case 'skip':
      return { skipped: item.skipped, fatal: item.fatal };
    case 'quiet':
      return { text: '', bytes: item.bytes, encoding: 'utf-8', quiet: true, analysed: () => EMPTY };
    case 'done': {
      const result = item.result;
      return { text: item.text ?? '', bytes: item.bytes, encoding: item.encoding, analysed: () => result };
    }
    case 'error': {
      const message = item.message;
      return {
        text: '',
        bytes: item.bytes,
        encoding: item.encoding,
        analysed: () => {
          throw new Error(message);
        },
      };
    }
  }
}

// ------------------------------------------------------------------ worker

/** One file, as the loop would do it (readSource, analyzeText), with the prefilter first. */
async function analyseOne(analyzer: Analyzer, projects: ProjectFiles, job: Job, file: string): Promise<Item> {
  if (!isSource(file)) return { k: 'main' };
  const read = readBytesSync(file, job.maxSize);
  if ('skipped' in read) return { k: 'skip', skipped: read.skipped, fatal: read.fatal };
  const bytes = read.bytes;
  const binary = binaryReason(bytes);
  if (binary !== undefined) return { k: 'skip', skipped: binary, fatal: false };
  if (!mayMatterBytes(bytes)) return { k: 'quiet', bytes: bytes.length };
  const decoded = decodeBytes(bytes);
  if ('binary' in decoded) return { k: 'skip', skipped: decoded.reason, fatal: false };
  const { text, encoding } = decoded;
  // The command line's options over the nearest .dmalens.json (../node/project.ts); excluded files never get here.
  const options: AnalyzeOptions = projects.optionsFor(file, job.options) ?? { ...job.options, path: file };
  try {
    // Lazily: the bodies no rule looks into are never parsed (core/parser.ts parseLazily).
    const result = analyzer.analyzeText(text, options, { lazy: true });
    const needText = result.findings.length > 0;
    return { k: 'done', bytes: bytes.length, encoding, result, ...(needText ? { text } : {}) };
  } catch (e) {
    return { k: 'error', bytes: bytes.length, encoding, message: e instanceof Error ? e.message : String(e) };
  }
}

async function runWorker(job: Job): Promise<void> {
  const port = parentPort!;
  let analyzer: Analyzer;
  try {
    analyzer = await Analyzer.create(loadWasm());
  } catch (e) {
    port.postMessage({ type: 'fatal', message: e instanceof Error ? e.message : String(e) } satisfies FromWorker);
    return;
  }
  const projects = new ProjectFiles(new Set(analyzer.rules().map((r) => r.id)));
  const queue: ToWorker[] = [];
  let busy = false;
  const drain = async (): Promise<void> => {
    if (busy) return;
    busy = true;
    while (queue.length) {
      const c = queue.shift()!;
      const items: Item[] = [];
      for (const file of c.files) items.push(await analyseOne(analyzer, projects, job, file));
      port.postMessage({ type: 'results', start: c.start, items } satisfies FromWorker);
      // Let the event loop turn between chunks (messages in, anything freed on a turn).
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    busy = false;
  };
  port.on('message', (m: ToWorker) => {
    if (m.type === 'chunk') {
      queue.push(m);
      void drain();
    }
  });
}

if (!isMainThread && workerData && typeof workerData === 'object' && MARK in workerData) {
  void runWorker((workerData as Record<string, Job>)[MARK]);
}
