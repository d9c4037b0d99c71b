/**
 * Workspace facts across files: a function that needs its callers' reservation
 * lock is quiet when every caller in the workspace holds it, and reported when
 * one does not; the asynchronous (language server) form agrees with the CLI's.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Analyzer } from '../src/core/analyzer';
import { loadWasm } from '../src/node/assets';
import { collectWorkspaceFacts, collectWorkspaceFactsAsync } from '../src/node/workspace';

const HELPER = `/* acme_bo.c */
int acme_bo_map_import(struct acme_bo *bo)
{
	struct sg_table *sgt;

	sgt = dma_buf_map_attachment(bo->attach, DMA_BIDIRECTIONAL);
	if (IS_ERR(sgt))
		return PTR_ERR(sgt);
	bo->sgt = sgt;
	return 0;
}
`;
const LOCKED_CALLER = `/* acme_ttm.c */
static int acme_bo_validate(struct acme_bo *bo)
{
	int ret;

	dma_resv_lock(bo->base.resv, NULL);
	ret = acme_bo_map_import(bo);
	dma_resv_unlock(bo->base.resv);
	return ret;
}
`;
const UNLOCKED_CALLER = `/* acme_debugfs.c */
static int acme_debug_map(struct acme_bo *bo)
{
	return acme_bo_map_import(bo);
}
`;

function workspace(files: Record<string, string>): string[] {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dmalens-ws-'));
  return Object.entries(files).map(([name, text]) => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, text);
    return p;
  });
}

test('callers in other files decide the entry lock state', async () => {
  const analyzer = await Analyzer.create(loadWasm());
  const locking = (ws: ReturnType<typeof collectWorkspaceFacts>['facts']) =>
    analyzer.analyzeText(HELPER, { workspace: ws }).findings.filter((f) => f.rule === 'DMABUF-LOCKING');

  const alone = analyzer.analyzeText(HELPER).findings.filter((f) => f.rule === 'DMABUF-LOCKING');
  assert.equal(alone.length, 1, 'alone, the helper is a warning: its callers are unknown');
  assert.equal(alone[0].severity, 'warning');

  const good = collectWorkspaceFacts(analyzer, workspace({ 'acme_bo.c': HELPER, 'acme_ttm.c': LOCKED_CALLER }));
  assert.ok(good.facts.calledLocked?.has('acme_bo_map_import'));
  assert.ok(good.stats.callerFiles >= 1);
  assert.deepEqual(locking(good.facts), []);

  const mixed = collectWorkspaceFacts(analyzer, workspace({ 'acme_bo.c': HELPER, 'acme_ttm.c': LOCKED_CALLER, 'acme_debugfs.c': UNLOCKED_CALLER }));
  assert.ok(!mixed.facts.calledLocked?.has('acme_bo_map_import'));
  assert.equal(locking(mixed.facts).length, 1);

  const files = workspace({ 'acme_bo.c': HELPER, 'acme_ttm.c': LOCKED_CALLER });
  const sync = collectWorkspaceFacts(analyzer, files);
  let yields = 0;
  const async = await collectWorkspaceFactsAsync(analyzer, files, {}, { sliceMs: 0, cancelled: () => (yields++, false) });
  assert.ok(async && yields > 0, 'the async form yields to the event loop');
  assert.deepEqual([...async.facts.calledLocked!], [...sync.facts.calledLocked!]);
  assert.equal(await collectWorkspaceFactsAsync(analyzer, files, {}, { sliceMs: 0, cancelled: () => true }), undefined, 'cancellation stops it');
});
