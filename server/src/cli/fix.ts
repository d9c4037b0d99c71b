/**
 * `dmalens fix [--dry-run] PATH...`: applies the safe fixes (the fix
 * engine's preferred ones, server/src/fixes) to C files in place, or with
 * --dry-run prints what it would change as a unified diff (`--- a/PATH`,
 * `+++ b/PATH`; `git apply` takes it).
 *
 * - Writes only the files named, or the .c/.h files under the directories
 *   named; nothing else (no backup, no temporary file). Encoding, BOM and
 *   line breaks are kept.
 * - The project file `.dmalens.json` nearest above each file applies as in
 *   the editor: kernel version, disabled rules (also per-file "overrides"),
 *   excludes, lock wrappers, helpers. Command-line options win.
 * - Fixes are applied in passes (a fix that collides with another waits for
 *   the next pass, on the re-analysed text), at most five; a pass that would
 *   make the file parse worse is not applied.
 *
 * Exit status: 0 when no error-severity finding is left (after the fixes;
 * with --dry-run, as it would be), 1 when error findings remain that have no
 * safe fix, 2 on usage or I/O errors (a file that cannot be read or written
 * is left as it was).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { Analyzer } from '../core/analyzer';
import { LineIndex } from '../core/positions';
import { decodeBytes } from '../core/text';
import type { AnalyzeOptions, Finding, KernelVersion } from '../core/types';
import { FixSession } from '../fixes/engine';
import { unifiedDiff } from '../fixes/diff';
import { applyEdits } from '../fixes/text';
import type { Fix } from '../fixes/types';
import { loadWasm } from '../node/assets';
import { ProjectFiles } from '../node/project';
import { collectFiles, describeFsError, SOURCE_EXTENSIONS } from './files';

export const FIX_USAGE = `  dmalens fix [--dry-run] [options] PATH...
                                     apply the safe fixes to C files in place (--dry-run: print them
                                     as a unified diff and write nothing); options: --kernel X.Y,
                                     --disable RULE, --rule RULE (fix only RULE), --max-size BYTES;
                                     exit 0 no error finding left, 1 some left, 2 usage or I/O error`;

export class FixUsageError extends Error {}

interface IO {
  out(s: string): void;
  err(s: string): void;
}

const MAX_PASSES = 5;
const DEFAULT_MAX_SIZE = 4_000_000;

/** Windows-1252 (what the core decodes "latin-1" files with), inverted: char -> byte. */
let cp1252: Map<string, number> | undefined;
function encodeLatin1(text: string): Buffer | undefined {
  if (!cp1252) {
    cp1252 = new Map();
    const dec = new TextDecoder('latin1');
    for (let b = 0; b < 256; b++) cp1252.set(dec.decode(Uint8Array.of(b)), b);
  }
  const out = Buffer.alloc(text.length);
  for (let i = 0; i < text.length; i++) {
    const b = cp1252.get(text[i]);
    if (b === undefined) return undefined;
    out[i] = b;
  }
  return out;
}

function kernelVersion(s: string): KernelVersion {
  const m = /^(\d{1,3})\.(\d{1,3})$/.exec(s.trim());
  if (!m) throw new FixUsageError(`--kernel: expected a version like 6.12, got '${s}'`);
  return { major: Number(m[1]), minor: Number(m[2]) };
}

export async function fixCommand(
  args: string[],
  io: IO,
  parse: <R>(run: () => R) => R,
  usage: string,
): Promise<number> {
  const { values, positionals } = parse(() =>
    parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        'dry-run': { type: 'boolean', short: 'n' },
        kernel: { type: 'string' },
        disable: { type: 'string', multiple: true },
        rule: { type: 'string', multiple: true },
        'max-size': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }),
  );
  if (values.help) {
    io.out(usage);
    return 0;
  }
  if (positionals.length === 0) throw new FixUsageError(`fix: no files or directories given (see 'dmalens help')`);
  const dryRun = !!values['dry-run'];
  const cliKernel = values.kernel !== undefined ? kernelVersion(values.kernel) : undefined;
  const split = (v: string[] | undefined) => (v ?? []).flatMap((x) => x.split(',')).map((x) => x.trim()).filter(Boolean);
  const cliDisabled = split(values.disable);
  const only = new Set(split(values.rule));
  let maxSize = DEFAULT_MAX_SIZE;
  if (values['max-size'] !== undefined) {
    if (!/^\d+$/.test(values['max-size']) || Number(values['max-size']) <= 0) throw new FixUsageError(`--max-size: expected a number of bytes, got '${values['max-size']}'`);
    maxSize = Number(values['max-size']);
  }

  const analyzer = await Analyzer.create(loadWasm());
  const known = new Set(analyzer.rules().map((r) => r.id));
  for (const id of [...cliDisabled, ...only]) if (!known.has(id)) io.err(`dmalens: warning: unknown rule '${id}' (see 'dmalens rules')\n`);
  const projects = new ProjectFiles(known);

  const { files, errors } = await collectFiles(positionals);
  let fatal = errors.length > 0;
  for (const e of errors) io.err(`dmalens: ${e.file}: ${e.message}\n`);
  let fixedFiles = 0;
  let fixedCount = 0;
  let errorsLeft = 0;
  let left = 0;

  for (const file of files) {
    if (!SOURCE_EXTENSIONS.includes(path.extname(file))) {
      io.err(`dmalens: ${file}: not a C file (.c or .h); not fixed\n`);
      fatal = true;
      continue;
    }
    let bytes: Buffer;
    try {
      const st = await fs.promises.stat(file);
      if (!st.isFile()) throw Object.assign(new Error('not a regular file'), { code: 'ENOTFILE' });
      if (st.size > maxSize) {
        io.err(`dmalens: ${file}: skipped: ${st.size} bytes, over the ${maxSize}-byte limit (--max-size)\n`);
        continue;
      }
      bytes = await fs.promises.readFile(file);
    } catch (e) {
      io.err(`dmalens: ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOTFILE' ? 'not a regular file' : describeFsError(e)}\n`);
      fatal = true;
      continue;
    }
    const decoded = decodeBytes(bytes);
    if ('binary' in decoded) {
      io.err(`dmalens: ${file}: skipped: ${decoded.reason}\n`);
      continue;
    }
    const options = projects.optionsFor(file, { kernelVersion: cliKernel, disabledRules: cliDisabled });
    if (!options) continue; // excluded by the project file
    const original = decoded.text;
    const { text, applied, remaining } = fixText(analyzer, original, options, only);
    left += remaining.length;
    errorsLeft += remaining.filter((f) => f.severity === 'error').length;
    if (text === original) continue;
    const display = file.split(path.sep).join('/').replace(/^\.\//, '');
    if (dryRun) {
      io.out(unifiedDiff(display, original, text));
    } else {
      let out: Buffer | undefined;
      if (decoded.encoding === 'utf-8') {
        const bom = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf;
        out = Buffer.concat([bom ? Buffer.from([0xef, 0xbb, 0xbf]) : Buffer.alloc(0), Buffer.from(text, 'utf8')]);
      } else out = encodeLatin1(text);
      if (!out) {
        io.err(`dmalens: ${file}: a fix would write characters the file's encoding (latin-1) cannot hold; not fixed\n`);
        fatal = true;
        continue;
      }
      try {
        await fs.promises.writeFile(file, out);
      } catch (e) {
        io.err(`dmalens: ${file}: cannot write: ${describeFsError(e)}\n`);
        fatal = true;
        continue;
      }
      for (const a of applied) io.out(`${display}:${a.line}: fixed ${a.fix.ruleId}: ${a.fix.title}\n`);
    }
    fixedFiles++;
    fixedCount += applied.length;
  }
  io.err(
    `dmalens: ${dryRun ? 'would fix' : 'fixed'} ${fixedCount} finding${fixedCount === 1 ? '' : 's'} in ${fixedFiles} file${fixedFiles === 1 ? '' : 's'}` +
      `; ${left} finding${left === 1 ? '' : 's'} without a safe fix left (${errorsLeft} error${errorsLeft === 1 ? '' : 's'})\n`,
  );
  if (fatal) return 2;
  return errorsLeft > 0 ? 1 : 0;
}

/**
 * The text with the safe fixes applied (in passes), the fixes applied (with
 * the line, in the text of their pass), and the findings left.
 */
export function fixText(
  analyzer: Analyzer,
  original: string,
  options: AnalyzeOptions,
  only: ReadonlySet<string> = new Set(),
): { text: string; applied: Array<{ fix: Fix; line: number }>; remaining: Finding[] } {
  let text = original;
  const applied: Array<{ fix: Fix; line: number }> = [];
  const seen = new Set<string>([text]);
  let remaining: Finding[] = [];
  const fixOptions = { kernelVersion: options.kernelVersion, lockWrappers: options.lockWrappers, helpers: options.helpers };
  for (let pass = 0; pass <= MAX_PASSES; pass++) {
    const doc = analyzer.parse(text);
    let next: string | undefined;
    try {
      const result = analyzer.analyze(doc, options);
      remaining = result.findings;
      if (pass === MAX_PASSES) break;
      const wanted = only.size ? result.findings.filter((f) => only.has(f.rule)) : result.findings;
      const { edits, fixes } = new FixSession(doc, fixOptions).preferredEdits(wanted);
      if (!edits.length) break;
      const candidate = applyEdits(text, edits);
      if (seen.has(candidate)) break;
      // Never make the file parse worse.
      const check = analyzer.parse(candidate);
      const worse = analyzer.analyze(check, options).errorNodes > result.errorNodes;
      check.delete();
      if (worse) break;
      const index = new LineIndex(text);
      for (const f of fixes) applied.push({ fix: f, line: index.lineOf(f.edits[0].start) + 1 });
      next = candidate;
    } finally {
      doc.delete();
    }
    if (next === undefined) break;
    seen.add(next);
    text = next;
  }
  if (only.size) remaining = remaining.filter((f) => only.has(f.rule));
  return { text, applied, remaining };
}
