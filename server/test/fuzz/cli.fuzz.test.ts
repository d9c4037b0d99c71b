/**
 * Fuzzing of the `dmalens` command line on hostile files and argument lists:
 * random and bit-flipped bytes, ELF and PNG images, empty files, invalid
 * UTF-8, latin-1, UTF-16, NUL, CRLF, mutated kernel C and patches, named
 * .c, .h, .patch, .diff, .eml, .mbx; a directory, a FIFO and a dangling link
 * named like sources; random argument lists.
 *
 * Every run ends with exit status 0, 1 or 2; stderr holds only `dmalens: `
 * lines and never a stack trace; the JSON output parses; no file analysis
 * fails ("analysis failed" is the CLI's catch-all for a core exception). The
 * CLI writes files only under `fix` without --dry-run, and only the C files
 * it was given.
 *
 * Most runs call the CLI's `main` in this process (fast); a few batches run
 * the real process (server/bin/dmalens.js), which is what users run.
 * Seeded and reproducible: DMALENS_FUZZ_SEED=S, DMALENS_FUZZ_RUNS=N (npm run fuzz).
 */
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as fc from 'fast-check';
import { main } from '../../src/cli/main';
import { BUDGET_MS, fuzzRuns, FUZZ_SEED, readSeeds, Slowest } from './common';

const REPO = path.resolve(__dirname, '../../../..');
const BIN = path.join(REPO, 'server/bin/dmalens.js');
const RUNS_IN_PROCESS = fuzzRuns(40, 0.1);
const RUNS_SPAWNED = fuzzRuns(4, 0.01);
const slowest = new Slowest();
let tried = 0;
let tmp = '';

// ---------------------------------------------------------------- inputs


const C_SEEDS = [...readSeeds(path.join(REPO, 'server/test/fixtures/rules'), /\.c$/), ...readSeeds(path.join(REPO, 'examples/drivers'), /\.[ch]$/)];
const PATCH_SEEDS = [...readSeeds(path.join(REPO, 'server/test/fixtures/patch'), /\.(diff|patch|eml|mbx)$/), ...readSeeds(path.join(REPO, 'examples/patches'), /\.(mbx|patch)$/)];

const ELF = Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0x3e, 0, 1, 0, 0, 0]);
const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, 0x49, 0x48, 0x44, 0x52]);

/** A file's content: what goes wrong with files in a tree. */
const content: fc.Arbitrary<{ kind: string; bytes: Buffer }> = fc.oneof(
  fc.constant({ kind: 'empty', bytes: Buffer.alloc(0) }),
  fc.uint8Array({ maxLength: 3000 }).map((b) => ({ kind: 'random bytes', bytes: Buffer.from(b) })),
  fc.uint8Array({ maxLength: 3000 }).map((b) => ({ kind: 'ELF', bytes: Buffer.concat([ELF, Buffer.from(b)]) })),
  fc.uint8Array({ maxLength: 3000 }).map((b) => ({ kind: 'PNG', bytes: Buffer.concat([PNG, Buffer.from(b)]) })),
  fc.tuple(fc.nat(), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 20 })).map(([s, flips]) => {
    // Bit-flipped kernel C (or a patch): invalid UTF-8, NUL and control bytes appear.
    const pool = s % 3 === 0 && PATCH_SEEDS.length ? PATCH_SEEDS : C_SEEDS;
    const b = Buffer.from(pool[s % pool.length]);
    for (const [at, v] of flips) if (b.length) b[at % b.length] = v;
    return { kind: 'bit-flipped seed', bytes: b };
  }),
  fc.tuple(fc.nat(), fc.constantFrom(Buffer.from([0xc3, 0x28]), Buffer.from([0x80]), Buffer.from([0xc0, 0xaf]), Buffer.from([0xf8, 0x88, 0x80, 0x80, 0x80]), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from([0xef, 0xbb, 0xbf]))).map(([s, bad]) => {
    // Invalid UTF-8 inside real C: read as latin-1.
    const b = C_SEEDS[s % C_SEEDS.length];
    const at = s % Math.max(1, b.length);
    return { kind: 'invalid UTF-8', bytes: Buffer.concat([b.subarray(0, at), bad, b.subarray(at)]) };
  }),
  fc.nat().map((s) => ({ kind: 'latin-1', bytes: Buffer.from(C_SEEDS[s % C_SEEDS.length].toString('utf8').replace(/\n/g, ' /* Jos\xe9 M\xfcller \xbc */\n'), 'latin1') })),
  fc.nat().map((s) => ({ kind: 'CRLF', bytes: Buffer.from(C_SEEDS[s % C_SEEDS.length].toString('utf8').replace(/\n/g, '\r\n')) })),
  fc.nat().map((s) => ({ kind: 'UTF-16LE', bytes: Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(C_SEEDS[s % C_SEEDS.length].toString('utf8'), 'utf16le')]) })),
  fc.nat().map((s) => ({ kind: 'NUL inside', bytes: Buffer.concat([C_SEEDS[s % C_SEEDS.length], Buffer.from([0, 0, 0]), C_SEEDS[(s + 1) % C_SEEDS.length]]) })),
  fc.tuple(fc.nat(), fc.nat()).map(([s, at]) => {
    const b = PATCH_SEEDS.length ? PATCH_SEEDS[s % PATCH_SEEDS.length] : C_SEEDS[0];
    return { kind: 'truncated', bytes: b.subarray(0, at % (b.length + 1)) };
  }),
  fc.nat().map((s) => {
    // A mail whose base64 body is broken.
    const body = Buffer.from(PATCH_SEEDS.length ? PATCH_SEEDS[s % PATCH_SEEDS.length] : C_SEEDS[0]).toString('base64').replace(/(.{76})/g, '$1\n');
    const broken = body.slice(0, body.length / 2) + '!!==\u00e9' + body.slice(body.length / 2 + 7);
    return { kind: 'broken base64 mail', bytes: Buffer.from(`From: a <a@b>\nSubject: [PATCH] x\nContent-Transfer-Encoding: base64\n\n${broken}\n`) };
  }),
);

const NAMES = ['.c', '.h', '.patch', '.diff', '.eml', '.mbx', '.mbox'];
const files = fc.array(fc.tuple(content, fc.constantFrom(...NAMES)), { minLength: 1, maxLength: 12 });

// ---------------------------------------------------------------- helpers

/** Path -> hash of content and mtime, for every file under `dir`. */
function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        const st = fs.statSync(p);
        out.set(p, crypto.createHash('sha1').update(fs.readFileSync(p)).digest('hex') + ':' + st.mtimeMs);
      } else out.set(p, e.isSymbolicLink() ? 'link' : 'other');
    }
  };
  walk(dir);
  return out;
}

function changed(before: Map<string, string>, after: Map<string, string>): string[] {
  const out: string[] = [];
  for (const [p, h] of after) if (before.get(p) !== h) out.push(p);
  for (const p of before.keys()) if (!after.has(p)) out.push(p);
  return out.sort();
}

let batch = 0;
function writeFiles(list: ReadonlyArray<[{ kind: string; bytes: Buffer }, string]>): string[] {
  const dir = path.join(tmp, `b${batch++}`);
  fs.mkdirSync(dir, { recursive: true });
  return list.map(([c, ext], i) => {
    const p = path.join(dir, `f${i}-${c.kind.replace(/\W+/g, '_')}${ext}`);
    fs.writeFileSync(p, c.bytes);
    return p;
  });
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** What every run must show, whatever its input. */
function checkRun(r: Run, what: string): void {
  assert.ok([0, 1, 2].includes(r.code), `${what}: exit ${r.code}\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /^\s+at .*[(:]\d+/m, `${what}: a stack trace on stderr\n${r.stderr}`);
  for (const line of r.stderr.split('\n').filter(Boolean)) {
    // USAGE goes to stderr when no command is given; every other line is a dmalens: line.
    if (r.stderr.startsWith('Usage:')) break;
    assert.match(line, /^dmalens: /, `${what}: stray stderr line ${JSON.stringify(line)}`);
  }
  assert.doesNotMatch(r.stderr, /analysis failed|review failed|rule \S+ failed/, `${what}: the analysis threw\n${r.stderr}`);
}

async function inProcess(args: string[]): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const t0 = Date.now();
  const code = await main(args, { out: (s) => void (stdout += s), err: (s) => void (stderr += s) });
  const ms = Date.now() - t0;
  slowest.note(ms, `main(${args.slice(0, 3).join(' ')}${args.length > 3 ? ' ...' : ''})`);
  tried++;
  return { code, stdout, stderr };
}

function spawned(args: string[], input?: Buffer): Run {
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: tmp, input, encoding: 'utf8', timeout: 120_000, maxBuffer: 64 << 20 });
  if (r.error) throw r.error;
  const ms = Date.now() - t0;
  slowest.note(ms, `dmalens ${args.slice(0, 3).join(' ')}${args.length > 3 ? ' ...' : ''} (process)`);
  tried++;
  assert.notEqual(r.signal, 'SIGTERM', `dmalens ${args.join(' ')}: timed out`);
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function checkJson(r: Run, inputs: readonly string[], what: string): void {
  const out = JSON.parse(r.stdout) as { findings: Array<{ file: string; line: number; column: number }>; errors?: Array<{ file: string; message: string }> };
  assert.ok(Array.isArray(out.findings), `${what}: findings`);
  for (const f of out.findings) {
    assert.ok(inputs.some((i) => path.resolve(tmp, f.file) === path.resolve(i) || f.file === i), `${what}: finding in an unknown file ${f.file}`);
    assert.ok(f.line >= 1 && f.column >= 1, `${what}: position`);
  }
}

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dmalens-fuzz-cli-'));
});

after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

// ---------------------------------------------------------------- properties

test('fuzz: check on hostile files (in process), JSON and text; nothing written', async () => {
  await fc.assert(
    fc.asyncProperty(files, fc.constantFrom('json', 'text', 'sarif'), async (list, format) => {
      const paths = writeFiles(list);
      const before = snapshot(tmp);
      const r = await inProcess(['check', '--format', format, ...paths]);
      const what = `check --format ${format} ${list.map(([c, e]) => c.kind + e).join(' ')}`;
      checkRun(r, what);
      if (format === 'json') checkJson(r, paths, what);
      if (format === 'sarif') JSON.parse(r.stdout);
      assert.deepEqual(changed(before, snapshot(tmp)), [], `${what}: check wrote files`);
    }),
    { numRuns: RUNS_IN_PROCESS, seed: FUZZ_SEED },
  );
});

test('fuzz: check and fix on hostile files, as a process; fix writes only the C files named', async () => {
  await fc.assert(
    fc.asyncProperty(files, async (list) => {
      const paths = writeFiles(list);
      const what = list.map(([c, e]) => c.kind + e).join(' ');
      let before = snapshot(tmp);
      const r = spawned(['check', '--format', 'json', ...paths]);
      checkRun(r, `check ${what}`);
      checkJson(r, paths, `check ${what}`);
      const dry = spawned(['fix', '--dry-run', ...paths]);
      checkRun(dry, `fix --dry-run ${what}`);
      assert.deepEqual(changed(before, snapshot(tmp)), [], `${what}: check or fix --dry-run wrote files`);
      // fix on one of them: only that file may change.
      before = snapshot(tmp);
      const one = paths[0];
      const f = spawned(['fix', one]);
      checkRun(f, `fix ${path.basename(one)}`);
      for (const p of changed(before, snapshot(tmp))) assert.equal(p, one, `fix ${path.basename(one)} wrote ${p}`);
    }),
    { numRuns: RUNS_SPAWNED, seed: FUZZ_SEED },
  );
});

test('fuzz: random argument lists end in 0, 1 or 2 with one-line errors; only fix writes', async () => {
  const dir = path.join(tmp, 'args');
  fs.mkdirSync(dir, { recursive: true });
  const c = path.join(dir, 'a.c');
  const p = path.join(dir, 'a.patch');
  fs.writeFileSync(c, C_SEEDS[0]);
  fs.writeFileSync(p, PATCH_SEEDS[0] ?? 'x');
  const word = fc.oneof(
    fc.constantFrom('check', 'rules', 'explain', 'reply', 'p2p', 'fix', 'help', 'version', '--help', '-h', '--version', '--format', '-f', 'json', 'text', 'sarif', 'html', '--kernel', '6.12', '99.99', 'x.y', '--disable', '--severity', 'DMABUF-LOCKING=error', 'X=bogus', '--max-size', '0', '-1', '1', '99999999999999999999', '--dry-run', '-n', '--explain', '--summary', '--terse', '--all', '--tree', '--no-tree', '--rule', 'DMABUF-LOCKING', 'NO-SUCH-RULE', '--world', 'switch', '--iommu', 'off', '--cpu', 'intel', '--topology', '--acs', '--override', '--from', '--', '=', '', ' ', '\u00e9', '/nonexistent/x.c', dir, c, p, tmp),
    // Junk, made harmless as a path: no '/', no '.', no '-' alone (standard input); relative to an empty directory.
    fc.string({ maxLength: 12 }).map((x) => x.replace(/[/.\\]/g, '_').replace(/^-$/, '--')),
  );
  const cwd = process.cwd();
  const empty = path.join(tmp, 'cwd');
  fs.mkdirSync(empty, { recursive: true });
  process.chdir(empty);
  try {
  await fc.assert(
    fc.asyncProperty(fc.array(word, { maxLength: 8 }), async (args) => {
      const before = snapshot(tmp);
      const r = await inProcess(args);
      const what = `dmalens ${JSON.stringify(args)}`;
      checkRun(r, what);
      const writes = changed(before, snapshot(tmp));
      if (!writes.length) return;
      // Only `fix` without --dry-run/-n writes, and only C files it was given (or that lie under a directory it was given).
      assert.equal(args[0], 'fix', `${what} wrote ${writes.join(', ')}`);
      assert.ok(!args.includes('--dry-run') && !args.includes('-n'), `${what}: --dry-run wrote`);
      for (const w of writes) {
        assert.match(w, /\.[ch]$/, `${what} wrote a non-C file ${w}`);
        assert.ok(args.some((a) => a && (path.resolve(a) === w || w.startsWith(path.resolve(a) + path.sep))), `${what} wrote ${w}, which it was not given`);
      }
      fs.writeFileSync(c, C_SEEDS[0]);
    }),
    { numRuns: fuzzRuns(60, 0.1), seed: FUZZ_SEED },
  );
  } finally {
    process.chdir(cwd);
  }
});

test('hostile paths: a directory, a FIFO and a dangling link named like sources; stdin', () => {
  const dir = path.join(tmp, 'paths');
  fs.mkdirSync(path.join(dir, 'dir.c'), { recursive: true });
  fs.symlinkSync(path.join(dir, 'missing.c'), path.join(dir, 'dangling.c'));
  const fifo = path.join(dir, 'fifo.c');
  const hasFifo = spawnSync('mkfifo', [fifo]).status === 0;
  fs.writeFileSync(path.join(dir, 'ok.c'), C_SEEDS[0]);
  const named = ['dir.c', 'dangling.c', 'ok.c', ...(hasFifo ? ['fifo.c'] : [])].map((n) => path.join(dir, n));
  for (const args of [['check', ...named], ['check', dir], ['fix', '--dry-run', ...named]]) {
    const r = spawned(args);
    checkRun(r, args.join(' '));
    assert.equal(r.code, 2, `${args.join(' ')}: an unreadable input is an I/O error (exit 2)\n${r.stderr}`);
    assert.match(r.stderr, /dangling\.c/);
  }
  // The directory walk skips the FIFO (only regular files and links to them are read) and reports the dangling link.
  const walk = spawned(['check', '--format', 'json', dir]);
  checkJson(walk, [path.join(dir, 'ok.c')], 'check DIR');
  // stdin: random bytes, a patch, nothing.
  for (const input of [crypto.randomBytes(5000), Buffer.concat([ELF, crypto.randomBytes(100)]), Buffer.alloc(0), PATCH_SEEDS[0] ?? Buffer.alloc(0)]) {
    const r = spawned(['check', '-'], input);
    checkRun(r, 'check -');
  }
});

test('a file over --max-size, and a 20 MB single line under a bigger --max-size, end with a notice', async () => {
  const dir = path.join(tmp, 'big');
  fs.mkdirSync(dir, { recursive: true });
  const big = path.join(dir, 'line.c');
  fs.writeFileSync(big, 'void f(void) { dma_buf_pin(a); ' + 'x = 1; '.repeat(3_000_000) + '}\n');
  const t0 = Date.now();
  const skipped = await inProcess(['check', big]);
  checkRun(skipped, 'check 20 MB');
  assert.match(skipped.stderr, /over the \d+-byte limit/);
  const capped = await inProcess(['check', '--max-size', '100000000', big]);
  checkRun(capped, 'check --max-size 100000000 20 MB');
  assert.match(capped.stderr, /character limit|time budget/);
  assert.ok(Date.now() - t0 < 2 * BUDGET_MS, `20 MB: ${Date.now() - t0} ms`);
});

test('fuzz report: cli', () => {
  console.log(`fuzz cli: ${RUNS_IN_PROCESS} in-process and ${RUNS_SPAWNED} spawned runs per property, seed ${FUZZ_SEED}, ${tried} command runs; slowest ${slowest}`);
});
