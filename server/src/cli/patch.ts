/**
 * Patches and patch mail on the command line (the review itself is
 * patch/review.ts; this file reads, decides and prints):
 *
 *   dmalens check [options] FILE.patch|FILE.mbx|FILE.eml|-   findings on the lines a patch adds
 *   dmalens check --terse -                                  one line per finding, nothing when clean (b4)
 *   dmalens reply [options] FILE|-                           an LKML-style reply per patch with findings
 *
 * Which inputs are patches: files named *.patch, *.diff, *.mbox, *.mbx or
 * *.eml; any other file named on the command line that is not *.c or *.h
 * when its text looks like a patch (review.ts `looksLikePatch`); standard
 * input (`-`) when it looks like a patch (else it is read as C).
 *
 * Locations: `file:line:col` (text) and `file`/`line`/`column` (JSON) are in
 * the patch file as it is on disk (for an encoded mail, the encoded line);
 * JSON adds `target: {file, line}`, the line in the patched source, and
 * `subject`, the patch's subject. `--terse` prints the target:
 *
 *   drivers/gpu/drm/acme/acme_dmabuf.c:80: ERROR: dma_buf_map_attachment() ... [DMABUF-LOCKING]
 *
 * The severity is upper case, as checkpatch --terse writes it: b4 marks a
 * check line that contains `ERROR:` as a failure and any other line as a
 * warning.
 *
 * Whole-file mode: with `--tree DIR` (or when the current directory is the
 * root of a kernel tree: MAINTAINERS and Kbuild; `--no-tree` turns that
 * off) the files a patch touches are read from DIR, the patch is applied in
 * memory and the whole file is analysed (node/tree.ts refuses paths that
 * leave DIR).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import type { Analyzer } from '../core/analyzer';
import { LineIndex } from '../core/positions';
import { decodeBytes } from '../core/text';
import type { KernelVersion, Severity } from '../core/types';
import { isKernelTreeRoot, TreeReader } from '../node/tree';
import { draftReply } from '../patch/reply';
import { looksLikePatch, type PatchFinding, type PatchReview, reviewPatchText } from '../patch/review';
import { explainFinding } from './explain';
import type { WorldOptions } from '../model/world';
import { describeFsError, type ReadResult, readSource } from './files';
import { compareStrings, formatText, type LocatedFinding, locateFindings, oneLine } from './formats';

/** Files read as patches whatever their text. */
export const PATCH_EXTENSIONS: readonly string[] = ['.patch', '.diff', '.mbox', '.mbx', '.eml'];

/** The command-line argument for standard input, and the name findings from it carry. */
export const STDIN_ARG = '-';
export const STDIN_NAME = '<stdin>';

export const PATCH_CHECK_OPTIONS = `  --tree DIR                 patches: read the files they change from DIR and analyse them whole
                             (default: the current directory when it is a kernel tree root)
  --no-tree                  patches: analyse the hunks alone, even in a kernel tree
  --all                      patches: also report findings the patch does not add (already in the
                             tree, or on context lines)
  --terse                    one line per finding, <file>:<line>: SEVERITY: message [RULE], with a
                             patch's finding at its line in the patched file; nothing when clean (b4)`;

export const REPLY_USAGE = `  dmalens reply [options] FILE|-    an LKML-style review reply for each patch with findings
                                     (options: --tree, --no-tree, --all, --kernel, --disable,
                                     --severity, --from "Name <addr>")`;

/** A mistake in the command line (the caller turns it into exit code 2). */
export class PatchUsageError extends Error {}

/** Whether `file` (with text `text`) is reviewed as a patch rather than analysed as C. */
export function isPatchInput(file: string, text: string, fromStdin = false): boolean {
  if (fromStdin) return looksLikePatch(text);
  const ext = path.extname(file).toLowerCase();
  if (PATCH_EXTENSIONS.includes(ext)) return true;
  if (ext === '.c' || ext === '.h') return false;
  return looksLikePatch(text);
}

/** `files` (from collectFiles, without `-`) plus standard input, once, when `-` was given. */
export function withStdin(files: readonly string[], positionals: readonly string[]): string[] {
  return positionals.includes(STDIN_ARG) ? [...files, STDIN_NAME] : [...files];
}

export function isStdin(file: string): boolean {
  return file === STDIN_NAME;
}

/** Reads all of standard input (as readSource reads a file: size limit, binary refused). */
export async function readStdin(maxBytes: number, stream: NodeJS.ReadableStream = process.stdin): Promise<ReadResult> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of stream) {
      const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
      size += b.length;
      // Past the limit, keep draining (the writer, b4 say, should not get EPIPE) but keep nothing.
      if (size <= maxBytes) chunks.push(b);
    }
  } catch (e) {
    return { skipped: `standard input: ${describeFsError(e)}`, fatal: true };
  }
  if (size > maxBytes) return { skipped: `${size} bytes, over the ${maxBytes}-byte limit (--max-size)`, fatal: false };
  const bytes = Buffer.concat(chunks);
  const decoded = decodeBytes(bytes);
  if ('binary' in decoded) return { skipped: decoded.reason, fatal: false };
  return { text: decoded.text, bytes: bytes.length, encoding: decoded.encoding };
}

/** The tree for whole-file mode: `--tree DIR`, else the current directory when it is a kernel tree root. */
export function openTree(o: { tree?: string; noTree?: boolean }, maxBytes: number, cwd: string = process.cwd()): TreeReader | undefined {
  if (o.tree !== undefined) {
    if (o.noTree) throw new PatchUsageError('--tree and --no-tree cannot be used together');
    let st: fs.Stats;
    try {
      st = fs.statSync(o.tree);
    } catch (e) {
      throw new PatchUsageError(`--tree: ${o.tree}: ${describeFsError(e)}`);
    }
    if (!st.isDirectory()) throw new PatchUsageError(`--tree: ${o.tree} is not a directory`);
    return new TreeReader(o.tree, maxBytes);
  }
  if (o.noTree) return undefined;
  return isKernelTreeRoot(cwd) ? new TreeReader(cwd, maxBytes) : undefined;
}

export interface PatchCheckOptions {
  tree?: TreeReader;
  /** Also findings the patch does not add (includeExisting and allLines). */
  all?: boolean;
  /** One line per finding, at its target; only error diagnostics of the review are reported. */
  terse?: boolean;
  explain?: boolean;
  /** The machine of the explanations' runs (check --topology). */
  world?: WorldOptions;
  kernelVersion?: KernelVersion;
  disabled?: readonly string[];
  severity?: Readonly<Record<string, Severity>>;
}

/** Checks `check`'s patch options; throws PatchUsageError. */
export function patchCheckOptions(
  values: { tree?: string; 'no-tree'?: boolean; all?: boolean; terse?: boolean; explain?: boolean },
  format: string,
  maxBytes: number,
): Pick<PatchCheckOptions, 'tree' | 'all' | 'terse' | 'explain'> {
  if (values.terse && format !== 'text') throw new PatchUsageError(`--terse is a text format; it cannot be combined with --format ${format}`);
  if (values.terse && values.explain) throw new PatchUsageError('--terse prints one line per finding; it cannot be combined with --explain');
  return {
    tree: openTree({ tree: values.tree, noTree: values['no-tree'] }, maxBytes),
    all: !!values.all,
    terse: !!values.terse,
    explain: !!values.explain,
  };
}

/** Reviews patch files for `check` and `reply`. */
export class PatchCheck {
  constructor(
    private readonly analyzer: Analyzer,
    private readonly o: PatchCheckOptions,
  ) {}

  get terse(): boolean {
    return !!this.o.terse;
  }

  review(text: string): PatchReview {
    const tree = this.o.tree;
    return reviewPatchText(text, this.analyzer, {
      ...(tree ? { readTarget: (p: string) => tree.read(p) } : {}),
      ...(this.o.kernelVersion ? { kernelVersion: this.o.kernelVersion } : {}),
      ...(this.o.disabled ? { disabledRules: this.o.disabled } : {}),
      ...(this.o.severity ? { severity: this.o.severity } : {}),
      ...(this.o.all ? { includeExisting: true, allLines: true } : {}),
    });
  }

  /**
   * Reviews one patch file and returns its findings located in the file
   * (byte columns), with target, subject and `existing`. The review's own
   * diagnostics (a hunk that does not apply, a truncated mail) go to
   * `report` as `line N: message`; with `terse` only those of error severity.
   */
  check(
    text: string,
    encoding: 'utf-8' | 'latin-1',
    report: (message: string, fatal: boolean) => void,
    onExplainError?: (f: PatchFinding, e: unknown) => void,
  ): { review: PatchReview; findings: LocatedPatchFinding[] } {
    const review = this.review(text);
    const index = new LineIndex(text);
    for (const d of review.diagnostics) {
      if (this.o.terse && d.severity !== 'error') continue;
      report(`line ${index.utf16LineColumn(d.span.start).line}: ${d.severity}: ${d.message}`, false);
    }
    const all = review.patches.flatMap((p) => p.findings);
    const explain = this.o.explain
      ? (f: PatchFinding) => explainFinding(f, index, encoding, (e) => onExplainError?.(f, e), this.o.world)
      : undefined;
    return { review, findings: locatePatchFindings(all, index, encoding, explain) };
  }
}

/** A located patch finding and the review's finding it came from. */
export interface LocatedPatchFinding {
  located: LocatedFinding;
  finding: PatchFinding;
}

/** Patch findings in line/column form (formats.ts locateFindings), with their target, subject and `existing`. */
export function locatePatchFindings(
  findings: readonly PatchFinding[],
  index: LineIndex,
  encoding: 'utf-8' | 'latin-1',
  explain?: (f: PatchFinding) => ReturnType<typeof explainFinding>,
): LocatedPatchFinding[] {
  const sorted = [...findings].sort(
    (a, b) =>
      a.span.start - b.span.start ||
      a.span.end - b.span.end ||
      compareStrings(a.rule, b.rule) ||
      compareStrings(a.message, b.message) ||
      a.patchIndex - b.patchIndex,
  );
  return sorted.map((f) => {
    const [located] = locateFindings([f], index, encoding, explain ? () => explain(f) : undefined);
    located.target = { file: f.target.file, line: f.target.line };
    located.subject = f.subject;
    if (f.existing) located.existing = true;
    return { located, finding: f };
  });
}

/** What the text formats add to a patch finding's message: where it is when the patch does not show it, and `existing`. */
function noted(f: LocatedFinding, outside: boolean): string {
  let m = f.message;
  if (outside && f.target) m = `in ${f.target.file} at line ${f.target.line}, which the patch does not show: ${m}`;
  if (f.existing) m += ' (already there before this patch)';
  return m;
}

/** The gcc-style text format for a patch file (formats.ts formatText, with the notes above). */
export function formatPatchText(file: string, findings: readonly LocatedPatchFinding[]): string {
  return formatText(
    file,
    findings.map(({ located, finding }) => ({ ...located, message: noted(located, finding.on === 'outside') })),
  );
}

/**
 * `--terse`: `<file>:<line>: SEVERITY: message [RULE]`, one line per finding;
 * a patch's finding names its place in the patched file (target).
 */
export function formatTerse(file: string, findings: readonly LocatedFinding[]): string {
  let out = '';
  for (const f of findings) {
    const where = f.target ? `${f.target.file}:${f.target.line}` : `${file}:${f.bytes.start.line}`;
    out += `${where}: ${f.severity.toUpperCase()}: ${oneLine(noted(f, false))} [${f.rule}]\n`;
  }
  return out;
}

/**
 * Runs a patch file through `check`: the hook main.ts calls for every input
 * that isPatchInput() accepts. Returns the located findings (text output is
 * written here; JSON and SARIF are the caller's).
 */
export function checkPatchFile(
  checker: PatchCheck,
  file: string,
  read: { text: string; encoding: 'utf-8' | 'latin-1' },
  format: string,
  out: (s: string) => void,
  report: (file: string, message: string, fatal: boolean) => void,
): LocatedFinding[] {
  const { findings } = checker.check(
    read.text,
    read.encoding,
    (m, fatal) => report(file, m, fatal),
    (f, e) => report(file, `the model's ${f.rule} run failed: ${e instanceof Error ? e.message : String(e)}`, false),
  );
  if (checker.terse) out(formatTerse(file, findings.map((f) => f.located)));
  else if (format === 'text') out(formatPatchText(file, findings));
  return findings.map((f) => f.located);
}

// ---------------------------------------------------------------- dmalens reply

export interface ReplyDeps {
  parse: <R>(run: () => R) => R;
  analyzer: () => Promise<Analyzer>;
  kernelVersion: (s: string) => KernelVersion;
  severities: (values: readonly string[]) => Record<string, Severity>;
  maxSize: number;
}

/**
 * `dmalens reply [options] FILE|-`: for each patch with findings, the reply
 * patch/reply.ts drafts, separated by a blank line; nothing when every patch
 * is clean. Exit status 0, or 2 on a usage or I/O error.
 */
export async function replyCommand(args: string[], io: { out(s: string): void; err(s: string): void }, deps: ReplyDeps): Promise<number> {
  const { values, positionals } = deps.parse(() =>
    parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        tree: { type: 'string' },
        'no-tree': { type: 'boolean' },
        all: { type: 'boolean' },
        kernel: { type: 'string' },
        disable: { type: 'string', multiple: true },
        severity: { type: 'string', multiple: true },
        from: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }),
  );
  if (values.help) {
    io.out(`Usage:\n${REPLY_USAGE}\n`);
    return 0;
  }
  if (positionals.length === 0) throw new PatchUsageError(`reply: no patch file given (a file, or - for standard input)`);
  const kernelVersion = values.kernel !== undefined ? deps.kernelVersion(values.kernel) : undefined;
  const disabled = (values.disable ?? []).flatMap((d) => d.split(',')).map((d) => d.trim()).filter(Boolean);
  const severity = deps.severities(values.severity ?? []);
  const tree = openTree({ tree: values.tree, noTree: values['no-tree'] }, deps.maxSize);
  const checker = new PatchCheck(await deps.analyzer(), { tree, all: !!values.all, kernelVersion, disabled, severity });

  let fatal = false;
  const replies: string[] = [];
  const inputs = [...new Set(positionals)].map((p) => (p === STDIN_ARG ? STDIN_NAME : p));
  for (const file of inputs) {
    const read = isStdin(file) ? await readStdin(deps.maxSize) : await readSource(file, deps.maxSize);
    if ('skipped' in read) {
      io.err(`dmalens: ${file}: ${oneLine(read.fatal ? read.skipped : `skipped: ${read.skipped}`)}\n`);
      fatal ||= read.fatal;
      continue;
    }
    if (!isPatchInput(file, read.text, isStdin(file))) {
      io.err(`dmalens: ${file}: skipped: not a patch or patch mail\n`);
      continue;
    }
    const review = checker.review(read.text);
    const index = new LineIndex(read.text);
    for (const d of review.diagnostics) {
      io.err(`dmalens: ${file}: ${oneLine(`line ${index.utf16LineColumn(d.span.start).line}: ${d.severity}: ${d.message}`)}\n`);
    }
    for (const p of review.patches) {
      if (!p.findings.length) continue;
      replies.push(draftReply(p, p.findings, read.text, values.from ? { from: values.from } : {}));
    }
  }
  io.out(replies.join('\n'));
  return fatal ? 2 : 0;
}
