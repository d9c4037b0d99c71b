/**
 * `dmalens check` and the project file: the nearest `.dmalens.json` above
 * each file applies (disabled rules, severities, per-file overrides,
 * excludes, kernel version), the kernel tree's Makefile gives the version
 * when nothing else does, and command-line options win. Run as a child
 * process on temporary trees, in the loop and through the bulk workers.
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

function dmalens(cwd: string, env: Record<string, string>, ...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: 'utf8', timeout: 120_000, env: { ...process.env, ...env } });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function write(rel: string, content: string): string {
  const p = path.join(tmp, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, content);
  return p;
}

const ERRPTR = `#include <linux/dma-buf.h>
static int f(struct device *dev, int fd)
{
	struct dma_buf *buf = dma_buf_get(fd);

	if (!buf)
		return -EINVAL;
	dma_buf_put(buf);
	return 0;
}
`;

/** Rule ids of the JSON findings, with their severity, by file name. */
function found(stdout: string): string[] {
  const doc = JSON.parse(stdout) as { findings: Array<{ file: string; rule: string; severity: string }> };
  return doc.findings.map((f) => `${path.basename(f.file)} ${f.rule} ${f.severity}`).sort();
}

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dmalens-project-'));
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

for (const mode of ['loop', 'workers'] as const) {
  const env: Record<string, string> = { DMALENS_WORKERS: mode === 'workers' ? '2' : '0' };
  describe(`dmalens check reads .dmalens.json (${mode})`, () => {
    test('disabled rules, severities, per-file overrides and excludes apply below the project file', () => {
      const root = path.join(mode, 'proj');
      write(`${root}/drivers/a/errptr.c`, ERRPTR);
      write(`${root}/drivers/b/errptr.c`, ERRPTR);
      write(`${root}/drivers/staging/errptr.c`, ERRPTR);
      write(`${root}/other/errptr.c`, ERRPTR);
      write(
        `${root}/.dmalens.json`,
        JSON.stringify({
          rules: { severity: { 'DMABUF-ERRPTR': 'warning' } },
          exclude: ['drivers/staging/**'],
          overrides: [{ files: ['drivers/b/**'], disabled: ['DMABUF-ERRPTR'] }],
        }),
      );
      const r = dmalens(path.join(tmp, root), env, 'check', '--format', 'json', '.');
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr, '');
      const doc = JSON.parse(r.stdout) as { findings: Array<{ file: string; rule: string; severity: string }> };
      assert.deepEqual(
        doc.findings.map((f) => `${f.file.replace(/^\.\//, '')} ${f.rule} ${f.severity}`).sort(),
        ['drivers/a/errptr.c DMABUF-ERRPTR warning', 'other/errptr.c DMABUF-ERRPTR warning'],
      );
    });

    test('the command line wins: --severity and --disable over the project file', () => {
      const root = path.join(mode, 'cli');
      write(`${root}/x/errptr.c`, ERRPTR);
      write(`${root}/.dmalens.json`, JSON.stringify({ rules: { severity: { 'DMABUF-ERRPTR': 'info' } } }));
      const cwd = path.join(tmp, root);
      assert.deepEqual(found(dmalens(cwd, env, 'check', '--format', 'json', 'x').stdout), ['errptr.c DMABUF-ERRPTR info']);
      const hard = dmalens(cwd, env, 'check', '--format', 'json', '--severity', 'DMABUF-ERRPTR=error', 'x');
      assert.equal(hard.code, 1);
      assert.deepEqual(found(hard.stdout), ['errptr.c DMABUF-ERRPTR error']);
      const off = dmalens(cwd, env, 'check', '--format', 'json', '--disable', 'DMABUF-ERRPTR', 'x');
      assert.equal(off.code, 0);
      assert.deepEqual(found(off.stdout), []);
    });

    test('kernel version: --kernel, else the project file, else the tree Makefile', () => {
      const root = path.join(mode, 'tree');
      const src = fs.readFileSync(path.join(FIXTURES, 'MIG-FAULT-PAGE', 'bad-designated.c'), 'utf8');
      write(`${root}/MAINTAINERS`, 'THE REST\n');
      write(`${root}/Kconfig`, 'mainmenu "Linux"\n');
      write(`${root}/Makefile`, '# SPDX-License-Identifier: GPL-2.0\nVERSION = 6\nPATCHLEVEL = 0\nSUBLEVEL = 0\n');
      write(`${root}/drivers/gpu/dmem.c`, src);
      const cwd = path.join(tmp, root);
      // The Makefile says 6.0: fault_page does not exist yet, nothing to say.
      assert.deepEqual(found(dmalens(cwd, env, 'check', '--format', 'json', 'drivers').stdout), []);
      // --kernel wins over the Makefile.
      assert.deepEqual(found(dmalens(cwd, env, 'check', '--format', 'json', '--kernel', '6.12', 'drivers').stdout), ['dmem.c MIG-FAULT-PAGE error']);
      // The project file wins over the Makefile, --kernel over the project file.
      write(`${root}/.dmalens.json`, '{ "kernelVersion": "6.1" }');
      assert.deepEqual(found(dmalens(cwd, env, 'check', '--format', 'json', 'drivers').stdout), ['dmem.c MIG-FAULT-PAGE error']);
      assert.deepEqual(found(dmalens(cwd, env, 'check', '--format', 'json', '--kernel', '6.0', 'drivers').stdout), []);
    });

    test('a broken project file: its problems on stderr with line and column, the valid part still applies', () => {
      const root = path.join(mode, 'broken');
      write(`${root}/y/errptr.c`, ERRPTR);
      write(`${root}/.dmalens.json`, '{\n  "rules": { "disabled": ["DMABUF-ERRPTR"] },\n  "kernelVersion": 612\n}\n');
      const r = dmalens(path.join(tmp, root), env, 'check', '--format', 'json', 'y');
      assert.equal(r.code, 0);
      assert.deepEqual(found(r.stdout), []);
      const lines = r.stderr.split('\n').filter(Boolean);
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0], /^dmalens: .*\.dmalens\.json:3:20: error: kernelVersion must be a string "X\.Y"/);
    });
  });
}

describe('dmalens check: patches and the project file', () => {
  test('a disabled rule is disabled in a patch below the project file too', () => {
    const patch = [
      'diff --git a/drivers/a/new.c b/drivers/a/new.c',
      'new file mode 100644',
      '--- /dev/null',
      '+++ b/drivers/a/new.c',
      `@@ -0,0 +1,${ERRPTR.split('\n').length - 1} @@`,
      ...ERRPTR.split('\n').slice(0, -1).map((l) => '+' + l),
      '',
    ].join('\n');
    write('patches/p/0001-new.patch', patch);
    const cwd = path.join(tmp, 'patches');
    const before = dmalens(cwd, {}, 'check', '--format', 'json', 'p/0001-new.patch');
    assert.deepEqual(found(before.stdout), ['0001-new.patch DMABUF-ERRPTR error']);
    write('patches/p/.dmalens.json', '{ "rules": { "disabled": ["DMABUF-ERRPTR"] } }');
    const afterOff = dmalens(cwd, {}, 'check', '--format', 'json', 'p/0001-new.patch');
    assert.equal(afterOff.code, 0, afterOff.stderr);
    assert.deepEqual(found(afterOff.stdout), []);
  });
});
