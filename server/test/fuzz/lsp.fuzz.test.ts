/**
 * Fuzzing of the language server over stdio (the real binary shim): random
 * sessions open, edit and close random and hostile documents (binary bytes
 * as latin-1, NUL, CRLF, invalid surrogates, mutated kernel C and patches,
 * as C, diff, kernel-mail and plain text), with incremental edits whose
 * ranges overlap, run past the end or backwards, several in one
 * notification, versions that go backwards, requests (hover, codeAction,
 * codeLens, dmalens/draftReply, dmalens/explain) at random places, some
 * cancelled at once, some for documents that are not open.
 *
 * The server must stay alive, answer every request, keep each document's
 * text exactly as the client's model of it (vscode-languageserver-textdocument
 * applies the same edits), log no failure of its own ("... failed: "), and
 * at the end still analyse a known document correctly. One more test runs a
 * workspace scan of a tree with hostile files and checks that requests are
 * answered while it runs.
 *
 * Seeded and reproducible: DMALENS_FUZZ_SEED=S, DMALENS_FUZZ_RUNS=N (npm run fuzz).
 */
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import * as fc from 'fast-check';
import { CancellationTokenSource, CodeActionRequest, CodeLensRequest, type TextDocumentContentChangeEvent } from 'vscode-languageserver/node';
import { TextDocument } from 'vscode-languageserver-textdocument';
import { serverBuild, TestClient } from '../helpers/lspClient';
import { fuzzRuns, FUZZ_SEED, readSeeds, Slowest } from './common';

const REPO = path.resolve(__dirname, '../../../..');
const SESSIONS = fuzzRuns(25, 0.02);
const slowest = new Slowest();
let requests = 0;
let edits = 0;

/** Seed files as text (latin-1: any bytes). */
function readSeedTexts(dir: string, ext: RegExp): string[] {
  return readSeeds(dir, ext).map((b) => b.toString('latin1'));
}

const C_SEEDS = [...readSeedTexts(path.join(REPO, 'server/test/fixtures/rules'), /\.c$/), ...readSeedTexts(path.join(REPO, 'examples/drivers'), /\.c$/)];
const PATCH_SEEDS = readSeedTexts(path.join(REPO, 'server/test/fixtures/patch'), /\.(diff|patch|eml|mbx)$/);

const BAD = '#include <linux/dma-buf.h>\n\nvoid f(struct dma_buf_attachment *a)\n{\n\tstruct sg_table *s = dma_buf_map_attachment(a, DMA_BIDIRECTIONAL);\n}\n';

const docText = fc.oneof(
  { weight: 4, arbitrary: fc.nat().map((i) => C_SEEDS[i % C_SEEDS.length]) },
  { weight: 2, arbitrary: fc.nat().map((i) => PATCH_SEEDS[i % PATCH_SEEDS.length] ?? '') },
  fc.constant(''),
  fc.uint8Array({ maxLength: 2000 }).map((b) => Buffer.from(b).toString('latin1')),
  fc.string({ unit: 'binary', maxLength: 2000 }),
  fc.nat().map((i) => C_SEEDS[i % C_SEEDS.length].replace(/\n/g, '\r\n')),
  fc.nat().map((i) => '\ud800' + C_SEEDS[i % C_SEEDS.length].replace(/;/g, ';\0') + '\udfff'),
  fc.constant('void f(void) {' + '{'.repeat(20000) + 'dma_buf_pin(a);' + '}'.repeat(20000) + '}'),
  fc.constant('void f(void) { dma_buf_pin(a); ' + 'x = 1; '.repeat(40000) + '}'),
);

const languageId = fc.constantFrom('c', 'c', 'c', 'diff', 'kernel-mail', 'plaintext', 'cpp', '');

const position = fc.record({ line: fc.oneof(fc.nat({ max: 200 }), fc.constant(2 ** 31 - 1)), character: fc.oneof(fc.nat({ max: 120 }), fc.constant(2 ** 31 - 1)) });
const range = fc.tuple(position, position).map(([start, end]) => ({ start, end }));
const insert = fc.oneof(fc.constant(''), fc.constantFrom('{', '}', '(', ')', ';', '\n', '\r\n', '\0', '\ud83d', 'dma_buf_pin(a);', 'dma_resv_lock(r, NULL);', 'goto out;\n', 'out:\n', '/*', '*/', '#if 0\n', '"'), fc.string({ maxLength: 30 }));

const change: fc.Arbitrary<TextDocumentContentChangeEvent> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ range, text: insert }) },
  { weight: 1, arbitrary: docText.map((text) => ({ text })) },
);

type Action =
  | { k: 'change'; doc: number; changes: TextDocumentContentChangeEvent[]; version: 'next' | 'same' | 'back' }
  | { k: 'close'; doc: number }
  | { k: 'reopen'; doc: number; text: string; languageId: string }
  | { k: 'hover'; doc: number; at: { line: number; character: number }; cancel: boolean }
  | { k: 'codeAction'; doc: number; range: { start: { line: number; character: number }; end: { line: number; character: number } }; cancel: boolean }
  | { k: 'codeLens'; doc: number }
  | { k: 'draftReply'; doc: number; at: { line: number; character: number } }
  | { k: 'explain'; doc: number; range: { start: { line: number; character: number }; end: { line: number; character: number } } }
  | { k: 'wait'; ms: number };

const action: fc.Arbitrary<Action> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ k: fc.constant('change' as const), doc: fc.nat(), changes: fc.array(change, { minLength: 1, maxLength: 4 }), version: fc.constantFrom('next' as const, 'next' as const, 'next' as const, 'same' as const, 'back' as const) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('close' as const), doc: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('reopen' as const), doc: fc.nat(), text: docText, languageId }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('hover' as const), doc: fc.nat(), at: position, cancel: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('codeAction' as const), doc: fc.nat(), range, cancel: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('codeLens' as const), doc: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('draftReply' as const), doc: fc.nat(), at: position }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('explain' as const), doc: fc.nat(), range }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('wait' as const), ms: fc.integer({ min: 0, max: 300 }) }) },
);

const session = fc.record({
  docs: fc.array(fc.record({ text: docText, languageId }), { minLength: 1, maxLength: 4 }),
  actions: fc.array(action, { minLength: 5, maxLength: 40 }),
});

interface Model {
  uri: string;
  languageId: string;
  doc: TextDocument;
  open: boolean;
}

let tmp = '';
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dmalens-fuzz-lsp-'));
});
after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** A request, timed; cancelled at once when asked. Cancellation may win or lose the race: either answer is fine. */
async function request<T>(client: TestClient, method: string, params: unknown, cancel = false): Promise<T | undefined> {
  const src = new CancellationTokenSource();
  const t0 = Date.now();
  const p = client.conn.sendRequest<T>(method, params, src.token);
  if (cancel) src.cancel();
  try {
    return await p;
  } catch (e) {
    const code = (e as { code?: number }).code;
    // Cancelled (-32800), or a refusal of bad parameters (-32602): answers, not failures.
    if (code === -32800 || code === -32602) return undefined;
    throw e;
  } finally {
    requests++;
    slowest.note(Date.now() - t0, method);
  }
}

function failures(client: TestClient): string[] {
  return client.logs.filter((l) => /\bfailed: |Unhandled|TypeError|RangeError|ReferenceError/.test(l));
}

test('fuzz: random editing sessions over stdio; the server keeps every text and answers every request', { timeout: 600_000 }, async () => {
  const client = new TestClient(serverBuild());
  try {
    await client.initialize({}, null);
    let n = 0;
    await fc.assert(
      fc.asyncProperty(session, async ({ docs, actions }) => {
        const run = n++;
        const models: Model[] = docs.map((d, i) => ({ uri: pathToFileURL(path.join(tmp, `s${run}`, `doc${i}${d.languageId === 'c' ? '.c' : '.patch'}`)).href, languageId: d.languageId, doc: TextDocument.create('', d.languageId, 1, d.text), open: true }));
        for (const m of models) await client.open(m.uri, m.doc.getText(), 1, m.languageId);
        for (const a of actions) {
          const m = 'doc' in a ? models[a.doc % models.length] : undefined;
          switch (a.k) {
            case 'change': {
              if (!m!.open) break;
              const v = a.version === 'next' ? m!.doc.version + 1 : a.version === 'same' ? m!.doc.version : Math.max(0, m!.doc.version - 2);
              m!.doc = TextDocument.update(m!.doc, a.changes, v);
              edits += a.changes.length;
              await client.change(m!.uri, v, a.changes);
              break;
            }
            case 'close':
              if (!m!.open) break;
              m!.open = false;
              await client.close(m!.uri);
              break;
            case 'reopen':
              if (m!.open) await client.close(m!.uri);
              m!.doc = TextDocument.create(m!.uri, a.languageId, m!.doc.version + 1, a.text);
              m!.languageId = a.languageId;
              m!.open = true;
              await client.open(m!.uri, a.text, m!.doc.version, a.languageId);
              break;
            case 'hover':
              await request(client, 'textDocument/hover', { textDocument: { uri: m!.uri }, position: a.at }, a.cancel);
              break;
            case 'codeAction':
              await request(client, CodeActionRequest.method, { textDocument: { uri: m!.uri }, range: a.range, context: { diagnostics: [] } }, a.cancel);
              break;
            case 'codeLens':
              await request(client, CodeLensRequest.method, { textDocument: { uri: m!.uri } });
              break;
            case 'draftReply':
              await request(client, 'dmalens/draftReply', { uri: m!.uri, position: a.at });
              break;
            case 'explain':
              await request(client, 'dmalens/explain', { uri: m!.uri, rule: 'DMABUF-LOCKING', range: a.range });
              break;
            case 'wait':
              await new Promise((r) => setTimeout(r, a.ms));
              break;
          }
        }
        // Every open document holds exactly the client's text; closed ones are forgotten.
        for (const m of models) {
          const info = await request<{ text?: string; version: number } | null>(client, 'dmalens/documentInfo', { uri: m.uri, includeText: true });
          if (!m.open) {
            assert.equal(info, null, `${m.uri} was closed but is still known`);
            continue;
          }
          assert.ok(info, `${m.uri} is open but unknown`);
          assert.equal(info.version, m.doc.version);
          assert.ok(info.text === m.doc.getText(), `${m.uri}: the server's text differs from the client's (${info.text?.length} vs ${m.doc.getText().length} characters)`);
        }
        for (const m of models) if (m.open) await client.close(m.uri);
        assert.equal(client.proc.exitCode, null, `the server exited: ${client.stderr}`);
        assert.deepEqual(failures(client), [], 'the server logged a failure');
      }),
      { numRuns: SESSIONS, seed: FUZZ_SEED },
    );
    // Still alive, still right: a known document gets its finding.
    const uri = pathToFileURL(path.join(tmp, 'final.c')).href;
    const since = client.published.length;
    await client.open(uri, BAD, 1);
    const d = await client.diagnosticsFor(uri, 1, since);
    assert.ok(d.diagnostics.some((x) => x.code === 'DMABUF-LOCKING'), JSON.stringify(d.diagnostics));
    assert.equal(await client.stop(), 0);
  } finally {
    client.kill();
  }
});

test('requests are answered while a workspace scan of a tree with hostile files runs', { timeout: 300_000 }, async () => {
  // A small kernel tree (MAINTAINERS and Kbuild make it one): copies of the seeds, and hostile files.
  const root = path.join(tmp, 'linux');
  fs.mkdirSync(path.join(root, 'drivers/gpu/acme'), { recursive: true });
  fs.writeFileSync(path.join(root, 'MAINTAINERS'), 'DMA LENS FUZZ\n');
  fs.writeFileSync(path.join(root, 'Kbuild'), '# kbuild\n');
  fs.writeFileSync(path.join(root, 'Makefile'), 'VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 0\n');
  for (let i = 0; i < 300; i++) fs.writeFileSync(path.join(root, `drivers/gpu/acme/f${i}.c`), C_SEEDS[i % C_SEEDS.length]);
  fs.writeFileSync(path.join(root, 'drivers/gpu/acme/elf.c'), Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0, 0, 0, 0, 0]));
  fs.writeFileSync(path.join(root, 'drivers/gpu/acme/empty.c'), '');
  fs.writeFileSync(path.join(root, 'drivers/gpu/acme/braces.c'), 'void f(void) {' + '{'.repeat(100000) + 'dma_buf_pin(a);' + '}'.repeat(100000) + '}');
  fs.writeFileSync(path.join(root, 'drivers/gpu/acme/line.c'), 'void f(void) { dma_resv_lock(r, NULL); ' + 'x = 1; '.repeat(100000) + '}');
  const client = new TestClient(serverBuild());
  try {
    await client.initialize({}, [{ uri: pathToFileURL(root).href, name: 'linux' }]);
    const uri = pathToFileURL(path.join(root, 'drivers/gpu/acme/open.c')).href;
    await client.open(uri, BAD, 1);
    let worst = 0;
    let asked = 0;
    const t0 = Date.now();
    while (!client.logs.some((l) => /workspace scan: \d+ files/.test(l)) && Date.now() - t0 < 240_000) {
      const t = Date.now();
      await request(client, 'textDocument/hover', { textDocument: { uri }, position: { line: 4, character: 30 } });
      worst = Math.max(worst, Date.now() - t);
      asked++;
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(client.logs.some((l) => /workspace scan: \d+ files/.test(l)), `the scan did not end: ${client.logs.join('\n')}`);
    console.log(`workspace scan: ${asked} hovers answered while it ran, the slowest in ${worst} ms`);
    // A parse has a 5 s budget and cannot be cut in slices: the worst answer waits for at most one.
    assert.ok(worst < 8000, `a hover waited ${worst} ms during the scan`);
    assert.deepEqual(failures(client), []);
    assert.equal(await client.stop(), 0);
  } finally {
    client.kill();
  }
});

test('fuzz report: lsp', () => {
  console.log(`fuzz lsp: ${SESSIONS} sessions, seed ${FUZZ_SEED}, ${edits} edits, ${requests} requests; slowest request ${slowest}`);
});
