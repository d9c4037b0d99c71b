/**
 * `dmalens fix` as a process: --dry-run prints a unified diff (that
 * `git apply` takes) and writes nothing; without it the files are rewritten
 * in place (only the .c/.h files named or under the directories named);
 * the project file's per-file overrides apply; encodings and line breaks
 * are kept; usage and I/O errors exit 2.
 */
import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const BIN = path.resolve(__dirname, '..', '..', 'bin', 'dmalens.js');
const FIXTURES = path.resolve(__dirname, '..', '..', 'test', 'fixtures', 'rules');

let tmp: string;

function dmalens(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: tmp, encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function fixture(rule: string, name: string): string {
  return fs.readFileSync(path.join(FIXTURES, rule, name), 'utf8');
}

function put(rel: string, content: string | Buffer): string {
  const p = path.join(tmp, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, content);
  return rel;
}

function snapshot(dir: string): Map<string, { bytes: string; mtime: number }> {
  const out = new Map<string, { bytes: string; mtime: number }>();
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.set(path.relative(tmp, p), { bytes: fs.readFileSync(p).toString('base64'), mtime: fs.statSync(p).mtimeMs });
    }
  };
  walk(dir);
  return out;
}

function oneLineError(stderr: string, re: RegExp): void {
  const lines = stderr.split('\n').filter(Boolean);
  assert.ok(lines.some((l) => /^dmalens: /.test(l) && re.test(l)), stderr);
  assert.doesNotMatch(stderr, /^\s+at /m);
}

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dmalens-fix-'));
  put('drivers/acme/export.c', fixture('DMABUF-ERRPTR', 'bad-export-null.c'));
  put('drivers/acme/bridge.c', fixture('P2P-CPU-MEMCPY', 'bad-memset-memcpy.c'));
  put('drivers/acme/notes.txt', 'memset(buf, 0, len); pci_alloc_p2pmem\n');
  put('drivers/acme/clean.c', '// SPDX-License-Identifier: GPL-2.0\nstatic int acme_add(int a, int b)\n{\n\treturn a + b;\n}\n');
  // An error finding without a safe fix: it stays, and the exit status says so.
  put('drivers/acme/cursor.c', fixture('DMABUF-PIN-BALANCE', 'bad-never-unpinned.c'));
});

after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('dmalens fix', () => {
  let dryRunDiff = '';

  test('--dry-run prints a unified diff and writes nothing', () => {
    const before = snapshot(path.join(tmp, 'drivers'));
    const r = dmalens('fix', '--dry-run', 'drivers');
    assert.equal(r.code, 1, r.stderr); // cursor.c keeps its error finding
    assert.match(r.stdout, /^--- a\/drivers\/acme\/export\.c\n\+\+\+ b\/drivers\/acme\/export\.c\n@@ -\d+,\d+ \+\d+,\d+ @@ int acme_export_fd\(struct acme_export_obj \*obj\)$/m);
    assert.match(r.stdout, /^-\tif \(!dmabuf\) \/\* expect: DMABUF-ERRPTR \*\/\n-\t\treturn -ENOMEM;\n\+\tif \(IS_ERR\(dmabuf\)\) \/\* expect: DMABUF-ERRPTR \*\/\n\+\t\treturn PTR_ERR\(dmabuf\);$/m);
    assert.match(r.stdout, /^\+\tmemset_io\(\(void __iomem \*\)buf, 0, len\);/m);
    assert.match(r.stdout, /^\+\tmemcpy_toio\(\(void __iomem \*\)buf, hdr, sizeof\(\*hdr\)\);/m);
    assert.doesNotMatch(r.stdout, /clean\.c|notes\.txt|cursor\.c/);
    assert.match(r.stderr, /would fix 3 findings in 2 files; 1 finding without a safe fix left \(1 error\)/);
    assert.deepEqual(snapshot(path.join(tmp, 'drivers')), before);
    dryRunDiff = r.stdout;
  });

  test('the dry-run diff applies with git apply --check', (t) => {
    if (spawnSync('git', ['--version']).status !== 0) return t.skip('git is not installed');
    const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'dmalens-fix-git-'));
    try {
      fs.cpSync(path.join(tmp, 'drivers'), path.join(copy, 'drivers'), { recursive: true });
      fs.writeFileSync(path.join(copy, 'fix.patch'), dryRunDiff);
      const env = { ...process.env, GIT_CONFIG_NOSYSTEM: '1', HOME: copy };
      assert.equal(spawnSync('git', ['init', '-q'], { cwd: copy, env }).status, 0);
      const check = spawnSync('git', ['apply', '--check', 'fix.patch'], { cwd: copy, env, encoding: 'utf8' });
      assert.equal(check.status, 0, check.stderr);
    } finally {
      fs.rmSync(copy, { recursive: true, force: true });
    }
  });

  test('fix rewrites the files in place, and only them', () => {
    const notes = fs.statSync(path.join(tmp, 'drivers/acme/notes.txt')).mtimeMs;
    const clean = fs.statSync(path.join(tmp, 'drivers/acme/clean.c')).mtimeMs;
    const cursor = fs.readFileSync(path.join(tmp, 'drivers/acme/cursor.c'), 'utf8');
    const r = dmalens('fix', 'drivers');
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stdout, /^drivers\/acme\/export\.c:\d+: fixed DMABUF-ERRPTR: Test with IS_ERR\(dmabuf\) and return PTR_ERR\(dmabuf\)$/m);
    assert.match(r.stdout, /^drivers\/acme\/bridge\.c:\d+: fixed P2P-CPU-MEMCPY: Use memset_io\(\)/m);
    const exp = fs.readFileSync(path.join(tmp, 'drivers/acme/export.c'), 'utf8');
    assert.match(exp, /\tif \(IS_ERR\(dmabuf\)\) \/\* expect: DMABUF-ERRPTR \*\/\n\t\treturn PTR_ERR\(dmabuf\);/);
    assert.match(fs.readFileSync(path.join(tmp, 'drivers/acme/bridge.c'), 'utf8'), /memcpy_toio\(\(void __iomem \*\)buf, hdr, sizeof\(\*hdr\)\);/);
    assert.equal(fs.statSync(path.join(tmp, 'drivers/acme/notes.txt')).mtimeMs, notes);
    assert.equal(fs.statSync(path.join(tmp, 'drivers/acme/clean.c')).mtimeMs, clean);
    assert.equal(fs.readFileSync(path.join(tmp, 'drivers/acme/cursor.c'), 'utf8'), cursor);
    // Nothing left to fix: a second run changes nothing.
    const again = dmalens('fix', 'drivers/acme/export.c', 'drivers/acme/bridge.c');
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, '');
    assert.match(again.stderr, /fixed 0 findings in 0 files/);
  });

  test('the project file: per-file overrides and kernel version apply', () => {
    put('proj/.dmalens.json', '{\n  // acme\n  "overrides": [{ "files": ["drivers/keep.c"], "disabled": ["P2P-CPU-MEMCPY"] }]\n}\n');
    const keep = put('proj/drivers/keep.c', fixture('P2P-CPU-MEMCPY', 'bad-memset-memcpy.c'));
    const change = put('proj/drivers/change.c', fixture('P2P-CPU-MEMCPY', 'bad-memset-memcpy.c'));
    const r = dmalens('fix', '--dry-run', 'proj');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /\+\+\+ b\/proj\/drivers\/change\.c/);
    assert.doesNotMatch(r.stdout, /keep\.c/);
    void keep;
    void change;
    // 6.1: no _unlocked variants, so a static importer's map is legal there and nothing is fixed.
    put('old/.dmalens.json', '{ "kernelVersion": "6.1" }');
    put('old/cam.c', fixture('DMABUF-LOCKING', 'bad-static-map-no-lock.c'));
    const old = dmalens('fix', '--dry-run', 'old');
    assert.equal(old.stdout, '');
    const newer = dmalens('fix', '--dry-run', '--kernel', '6.12', 'old');
    assert.match(newer.stdout, /dma_buf_map_attachment_unlocked\(attach, DMA_FROM_DEVICE\)/);
  });

  test('CRLF line breaks, a BOM and latin-1 bytes are kept', () => {
    const crlf = fixture('DMABUF-ERRPTR', 'bad-export-null.c').replace(/\n/g, '\r\n');
    put('enc/crlf.c', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(crlf, 'utf8')]));
    const latin = Buffer.from(fixture('DMABUF-ERRPTR', 'bad-export-null.c').replace('Exporter:', 'Exporter (\u00e9t\u00e9):'), 'latin1');
    put('enc/latin.c', latin);
    const r = dmalens('fix', 'enc');
    assert.equal(r.code, 0, r.stderr);
    const a = fs.readFileSync(path.join(tmp, 'enc/crlf.c'));
    assert.deepEqual([...a.subarray(0, 3)], [0xef, 0xbb, 0xbf]);
    const at = a.toString('utf8');
    assert.match(at, /\tif \(IS_ERR\(dmabuf\)\) \/\* expect: DMABUF-ERRPTR \*\/\r\n\t\treturn PTR_ERR\(dmabuf\);\r\n/);
    assert.ok(!/[^\r]\n/.test(at));
    const b = fs.readFileSync(path.join(tmp, 'enc/latin.c'));
    assert.ok(b.includes(Buffer.from([0xe9, 0x74, 0xe9])), 'latin-1 bytes kept');
    assert.match(b.toString('latin1'), /return PTR_ERR\(dmabuf\);/);
  });

  test('errors exit 2 with one line on stderr', () => {
    let r = dmalens('fix', 'no-such-file.c');
    assert.equal(r.code, 2);
    oneLineError(r.stderr, /no-such-file\.c: no such file or directory/);
    r = dmalens('fix', 'drivers/acme/notes.txt');
    assert.equal(r.code, 2);
    oneLineError(r.stderr, /not a C file/);
    r = dmalens('fix');
    assert.equal(r.code, 2);
    oneLineError(r.stderr, /no files or directories given/);
    r = dmalens('fix', '--bogus', 'drivers');
    assert.equal(r.code, 2);
    oneLineError(r.stderr, /unknown option '--bogus'/);
    r = dmalens('fix', '--kernel', 'six', 'drivers');
    assert.equal(r.code, 2);
    oneLineError(r.stderr, /--kernel/);
  });

  test('help lists fix', () => {
    const r = dmalens('help');
    assert.match(r.stdout, /dmalens fix \[--dry-run\]/);
  });
});
