/**
 * The language server and the project around a document: .dmalens.json
 * (problems shown on the file, rules disabled, lock wrappers), the tree's
 * Makefile version, and the background scan of a kernel tree that lets a
 * helper's callers in other files vouch for the reservation lock.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { serverBuild, TestClient } from './helpers/lspClient';

const HELPER = `int acme_bo_map_import(struct acme_bo *bo)
{
	struct sg_table *sgt;

	sgt = dma_buf_map_attachment(bo->attach, DMA_BIDIRECTIONAL);
	if (IS_ERR(sgt))
		return PTR_ERR(sgt);
	bo->sgt = sgt;
	return 0;
}
`;
const CALLER = `static int acme_bo_validate(struct acme_bo *bo)
{
	int ret;

	dma_resv_lock(bo->base.resv, NULL);
	ret = acme_bo_map_import(bo);
	dma_resv_unlock(bo->base.resv);
	return ret;
}
`;

function kernelTree(extra: Record<string, string> = {}): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'dmalens-tree-'));
  const files: Record<string, string> = {
    MAINTAINERS: 'DMA LENS TEST\n',
    Kbuild: '# kbuild\n',
    Makefile: 'VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 0\n',
    'drivers/gpu/acme/acme_bo.c': HELPER,
    'drivers/gpu/acme/acme_ttm.c': CALLER,
    ...extra,
  };
  for (const [rel, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), text);
  }
  return root;
}

test('the background scan of the tree silences a helper whose callers hold the lock', { timeout: 60000 }, async () => {
  const root = kernelTree();
  const client = new TestClient(serverBuild());
  try {
    await client.initialize({}, [{ uri: pathToFileURL(root).toString(), name: 'linux' }]);
    const uri = pathToFileURL(path.join(root, 'drivers/gpu/acme/acme_bo.c')).toString();
    await client.open(uri, HELPER.replace('dma_buf_map_attachment(', 'dma_buf_map_attachment(') + '\n');
    // Eventually (after the scan) no DMABUF-LOCKING finding: the only caller holds the lock.
    const quiet = await client.waitForDiagnostics((p) => p.uri === uri && !p.diagnostics.some((d) => d.code === 'DMABUF-LOCKING'), 30000);
    assert.ok(quiet);
    assert.ok(client.logs.some((l) => /workspace scan: \d+ files/.test(l)), client.logs.join('\n'));
  } finally {
    client.kill();
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('.dmalens.json: its problems are diagnostics on it, and it disables rules', { timeout: 60000 }, async () => {
  const root = kernelTree({
    '.dmalens.json': '{\n  "rules": { "disabled": ["DMABUF-LOCKING", "NOT-A-RULE"] },\n  "bogus": 1\n}\n',
    'drivers/gpu/acme/acme_import.c': 'int f(struct dma_buf_attachment *a) { struct sg_table *s = dma_buf_map_attachment(a, DMA_TO_DEVICE); if (!s) return -ENOMEM; return 0; }\n',
  });
  const client = new TestClient(serverBuild());
  try {
    await client.initialize({}, [{ uri: pathToFileURL(root).toString(), name: 'linux' }]);
    const uri = pathToFileURL(path.join(root, 'drivers/gpu/acme/acme_import.c')).toString();
    await client.open(uri, fs.readFileSync(path.join(root, 'drivers/gpu/acme/acme_import.c'), 'utf8'));
    const d = await client.waitForDiagnostics((p) => p.uri === uri && p.diagnostics.length > 0);
    const codes = d.diagnostics.map((x) => x.code);
    assert.ok(codes.includes('DMABUF-ERRPTR'));
    assert.ok(!codes.includes('DMABUF-LOCKING'), 'disabled by the project file');
    const configUri = pathToFileURL(path.join(root, '.dmalens.json')).toString();
    const cfg = await client.waitForDiagnostics((p) => p.uri === configUri);
    const msgs = cfg.diagnostics.map((x) => String(x.message)).join('\n');
    assert.match(msgs, /unknown rule id "NOT-A-RULE"/);
    assert.match(msgs, /unknown key "bogus"/);
    assert.equal(cfg.diagnostics.find((x) => /NOT-A-RULE/.test(String(x.message)))!.range.start.line, 1);
  } finally {
    client.kill();
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('an untrusted workspace reads no project file', { timeout: 60000 }, async () => {
  const root = kernelTree({
    '.dmalens.json': '{ "rules": { "disabled": ["DMABUF-ERRPTR"] } }\n',
    'drivers/gpu/acme/acme_import.c': 'int f(struct dma_buf *b) { struct dma_buf_attachment *a = dma_buf_attach(b, NULL); if (!a) return -ENOMEM; return 0; }\n',
  });
  const client = new TestClient(serverBuild());
  try {
    await client.initialize({ trusted: false }, [{ uri: pathToFileURL(root).toString(), name: 'linux' }]);
    const uri = pathToFileURL(path.join(root, 'drivers/gpu/acme/acme_import.c')).toString();
    await client.open(uri, fs.readFileSync(path.join(root, 'drivers/gpu/acme/acme_import.c'), 'utf8'));
    const d = await client.waitForDiagnostics((p) => p.uri === uri && p.diagnostics.length > 0);
    assert.ok(d.diagnostics.some((x) => x.code === 'DMABUF-ERRPTR'), 'the project file was not read');
  } finally {
    client.kill();
    fs.rmSync(root, { recursive: true, force: true });
  }
});
