/**
 * The CLI's file handling: which files `check PATH...` visits, in which
 * order, and how one file is read.
 */
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { collectFiles, describeFsError, readSource } from '../src/cli/files';
import { ProjectFiles } from '../src/node/project';

let tmp: string;
let cwd: string;

function write(rel: string, content: string | Buffer): void {
  const p = path.join(tmp, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, content);
}

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dmalens-files-'));
  write('tree/b.c', 'int b;\n');
  write('tree/a.h', 'int a;\n');
  write('tree/notes.txt', 'not C\n');
  write('tree/B.c', 'int B;\n');
  write('tree/sub/z.c', 'int z;\n');
  write('tree/sub/deeper/y.h', 'int y;\n');
  write('tree/a.c.orig', 'int o;\n');
  write('elsewhere/e.c', 'int e;\n');
  fs.symlinkSync(path.join(tmp, 'elsewhere'), path.join(tmp, 'tree', 'linked-dir'));
  fs.symlinkSync(path.join(tmp, 'elsewhere', 'e.c'), path.join(tmp, 'tree', 'linked.c'));
  cwd = process.cwd();
  process.chdir(tmp);
});

after(() => {
  process.chdir(cwd);
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('directories: .c and .h only, sorted, recursive, symlinked dirs skipped', async () => {
  const { files, errors } = await collectFiles(['tree']);
  assert.deepEqual(errors, []);
  const s = path.sep;
  assert.deepEqual(files, [
    `tree${s}B.c`,
    `tree${s}a.h`,
    `tree${s}b.c`,
    `tree${s}linked.c`,
    `tree${s}sub${s}deeper${s}y.h`,
    `tree${s}sub${s}z.c`,
  ]);
});

test('paths keep the spelling the user gave', async () => {
  const { files } = await collectFiles(['./tree/sub/', 'tree/notes.txt']);
  assert.deepEqual(files, ['./tree/sub/deeper' + path.sep + 'y.h', './tree/sub/z.c', 'tree/notes.txt']);
});

test('a file reached twice is listed once; missing paths are errors', async () => {
  const { files, errors } = await collectFiles(['tree/sub/z.c', 'nope.c', 'tree/sub']);
  assert.deepEqual(files, ['tree/sub/z.c', 'tree/sub' + path.sep + 'deeper' + path.sep + 'y.h']);
  assert.deepEqual(errors, [{ file: 'nope.c', message: 'no such file or directory' }]);
});

test('readSource: UTF-8, latin-1, binary, too large, missing', async () => {
  write('u.c', '/* ü */ int x;\n');
  write('l.c', Buffer.from('/* caf\xe9 */ int x;\n', 'latin1'));
  write('bin.c', Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 0, 1]));
  write('big.c', 'int x;\n'.repeat(10));
  assert.deepEqual(await readSource('u.c', 1000), { text: '/* ü */ int x;\n', bytes: 16, encoding: 'utf-8' });
  const l = await readSource('l.c', 1000);
  assert.ok('text' in l && l.encoding === 'latin-1' && l.text.includes('café'));
  const b = await readSource('bin.c', 1000);
  assert.ok('skipped' in b && !b.fatal && /binary/.test(b.skipped), JSON.stringify(b));
  const big = await readSource('big.c', 69);
  assert.ok('skipped' in big && !big.fatal && /70 bytes.*69/.test(big.skipped), JSON.stringify(big));
  assert.ok('text' in (await readSource('big.c', 70)));
  assert.deepEqual(await readSource('missing.c', 1000), { skipped: 'no such file or directory', fatal: true });
  const dir = await readSource('tree', 1000);
  assert.ok('skipped' in dir && !dir.fatal);
});

test('describeFsError keeps the message short', () => {
  const e = Object.assign(new Error("EWEIRD: something odd, open 'x.c'"), { code: 'EWEIRD' });
  assert.equal(describeFsError(e), 'something odd');
  assert.equal(describeFsError(Object.assign(new Error('x'), { code: 'EACCES' })), 'permission denied');
});

test('ProjectFiles: the analyzer path is relative to the kernel tree root when there is one', () => {
  write('linux/MAINTAINERS', '');
  write('linux/Kconfig', '');
  write('linux/Makefile', '');
  write('linux/drivers/pci/Makefile', '');
  write('linux/drivers/pci/Kconfig', '');
  write('linux/drivers/pci/p2pdma.c', '');
  const kp = new ProjectFiles(new Set());
  const pathFor = (file: string) => kp.optionsFor(file, {})?.path;
  assert.equal(pathFor(path.join('linux', 'drivers', 'pci', 'p2pdma.c')), 'drivers/pci/p2pdma.c');
  assert.equal(pathFor(path.join(tmp, 'linux', 'drivers', 'pci', 'p2pdma.c')), 'drivers/pci/p2pdma.c');
  assert.equal(pathFor('./tree/sub/z.c'), 'tree/sub/z.c');
});
