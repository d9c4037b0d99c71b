/**
 * The pgmap family's further scenarios: each reference run reaches the
 * catalog's outcome through the key steps, the variants of the finding's
 * events take the chain the events describe, and the world changes the run
 * where the kernel behaves differently.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { explain, referenceRun } from '../../src/model/explain';
import type { Run } from '../../src/model/types';
import type { CodeEvent } from '../../src/core/types';

const steps = (run: Run) => run.steps.map((s) => `[${s.actor}] ${s.action}`).join('\n');

function chain(run: Run, outcome: string, keys: RegExp[]): void {
  assert.equal(run.outcome.kind, outcome, `${run.outcome.summary}\n${steps(run)}`);
  let at = 0;
  for (const k of keys) {
    const idx = run.steps.findIndex((s, i) => i >= at && k.test(s.action));
    assert.ok(idx >= 0, `step ${k} (after step ${at}) missing from\n${steps(run)}`);
    at = idx + 1;
  }
}

const run = (rule: string, events: CodeEvent[]) => explain({ rule, events, span: { start: 0, end: 0 } })!;

test('PGMAP-RANGE-SOURCE: a hand-built P2PDMA pgmap over a free range sends peer DMA nowhere', () => {
  chain(referenceRun('PGMAP-RANGE-SOURCE')!, 'UR_AER', [/request_free_mem_region/, /MEMORY_DEVICE_P2PDMA mapped uncached/, /dma_map_page\(the NIC/, /translates/, /reaches nothing/]);
});

test('PGMAP-RANGE-SOURCE: each type and range source reaches its own outcome', () => {
  const setup = (pgmapType: string, rangeFrom: string) => [{ op: 'pgmap_setup', args: { pgmapType, rangeFrom } }, { op: 'memremap_pages' }];
  chain(run('PGMAP-RANGE-SOURCE', setup('GENERIC', 'free')), 'CPU_FAULT', [/MEMORY_DEVICE_GENERIC with a write-back kernel mapping/, /write-back kernel mapping of 0x[0-9a-f]+ points at nothing/, /machine check/]);
  chain(run('PGMAP-RANGE-SOURCE', setup('FS_DAX', 'bar')), 'SILENT_CORRUPTION', [/BAR2 of the GPU/, /MEMORY_DEVICE_FS_DAX/, /mapped write-back: stores sit in the CPU cache/]);
  chain(run('PGMAP-RANGE-SOURCE', setup('PRIVATE', 'platform')), 'WARN', [/System RAM/, /attempted on System RAM region/]);
  chain(run('PGMAP-RANGE-SOURCE', setup('GENERIC', 'literal')), 'WARN', [/another device already registered/, /Conflicting mapping in same section/]);
});

test('PGMAP-LIFETIME: a pgmap on the stack is called through after the frame is reused', () => {
  chain(referenceRun('PGMAP-LIFETIME')!, 'CPU_FAULT', [/MEMORY_DEVICE_PRIVATE/, /zone_device_page_init\(\) takes a pgmap reference/, /stack frame, the dev_pagemap in it included, is reused/, /last put_page\(\) drops the last reference: free_zone_device_folio\(\) reads page->pgmap->ops->page_free/, /garbage/]);
});

test('PGMAP-LIFETIME: freed storage, an unchecked failure, an interior free and a missing teardown', () => {
  chain(run('PGMAP-LIFETIME', [{ op: 'memremap_pages', args: { storage: 'heap' } }, { op: 'free_pgmap', args: { unmapped: false } }, { op: 'page_free_later' }]), 'UAF', [/memremap_pages\(\) creates struct pages/, /frees the chunk that holds the dev_pagemap/, /free_zone_device_folio\(\) reads .* no longer a dev_pagemap/]);
  chain(run('PGMAP-LIFETIME', [{ op: 'memremap_pages', args: { fails: true, checked: false } }, { op: 'use_pages' }]), 'CPU_FAULT', [/another device registered/, /Conflicting mapping in same section/, /does not test the result with IS_ERR/, /vmemmap of a range that memremap_pages\(\) never populated/]);
  chain(run('PGMAP-LIFETIME', [{ op: 'pgmap_storage', args: { storage: 'embedded' } }, { op: 'free_pgmap', args: { interior: true, fn: 'devm_kfree' } }]), 'LEAK', [/dev_pagemap member sits at/, /devres_destroy\(\) finds no devres/]);
  chain(run('PGMAP-LIFETIME', [{ op: 'pgmap_storage', args: { storage: 'embedded' } }, { op: 'free_pgmap', args: { interior: true, fn: 'kfree' } }]), 'SILENT_CORRUPTION', [/dev_pagemap member sits at/, /not an object start on its freelist/]);
  chain(run('PGMAP-LIFETIME', [{ op: 'memremap_pages', args: { storage: 'heap' } }, { op: 'driver_unbind', args: { unmapped: false } }, { op: 'get_dev_pagemap' }]), 'UAF', [/MEMORY_DEVICE_GENERIC/, /remove callback returns without memunmap_pages\(\)/, /get_dev_pagemap\(.*\) finds the pgmap in pgmap_array/]);
});

test('PGMAP-PRIVATE-CPU-ACCESS: the CPU faults on the missing kernel mapping', () => {
  chain(referenceRun('PGMAP-PRIVATE-CPU-ACCESS')!, 'CPU_FAULT', [/MEMORY_DEVICE_PRIVATE with add_pages\(\): no kernel mapping/, /holds a MEMORY_DEVICE_PRIVATE page/, /kmap_local_page\(\): page_address\(\) computes __va/, /unable to handle page fault/]);
});

test('PGMAP-FOREIGN-OWNER: another driver\'s zone_device_data sends DMA astray; the IOMMU stops it', () => {
  const r = referenceRun('PGMAP-FOREIGN-OWNER')!;
  chain(r, 'SILENT_CORRUPTION', [/MEMORY_DEVICE_COHERENT/, /stores a struct gpu_svm_bo in zone_device_data/, /returns that page: a coherent page is an ordinary present PTE/, /reads zone_device_data of a page whose pgmap belongs to the GPU driver/, /writes the user's data to 0x123456000/]);
  assert.ok(r.worldNotes?.some((n) => /IOMMU translating for the device: IOMMU_FAULT/.test(n)), String(r.worldNotes));
  chain(explain({ rule: 'PGMAP-FOREIGN-OWNER', events: [{ op: 'hmm_page' }, { op: 'interpret_zone_device_page' }], span: { start: 0, end: 0 } }, { iommu: 'translated' })!, 'IOMMU_FAULT', [/hmm_range_fault\(\)/, /has no mapping/]);
});

test('PGMAP-REFCOUNT-INIT: a page handed out without a pgmap reference outlives its memmap', () => {
  chain(referenceRun('PGMAP-REFCOUNT-INIT')!, 'UAF', [/off its free list: refcount 0, no pgmap reference/, /get_page\(\) raises the refcount from 0 to 1 on a free device page/, /memunmap_pages\(\) kills the pgmap's percpu ref .* \(0 page references outstanding\)/, /removes the struct pages/, /do_swap_page\(\) uses a struct page whose memmap memunmap_pages\(\) removed/]);
  chain(run('PGMAP-REFCOUNT-INIT', [{ op: 'device_page_alloc', args: { init: false } }, { op: 'lock_page' }]), 'UAF', [/lock_page\(\) locks the page; its refcount stays 0/, /0 page references outstanding/]);
});

test('PGMAP-REFCOUNT-INIT: put_page() in page_free underflows the refcount', () => {
  chain(run('PGMAP-REFCOUNT-INIT', [{ op: 'page_free_callback', args: { refcount: 0 } }, { op: 'put_page', args: { in: 'page_free' } }]), 'CPU_FAULT', [/zone_device_page_init/, /drops the last reference: free_zone_device_folio\(\) calls the driver's page_free\(\) and put_dev_pagemap\(\)/, /page_free\(\)'s put_page\(\) drops the refcount below zero/, /VM_BUG_ON_PAGE on the zero refcount/]);
});

test('PGMAP-API-DRIFT: the build fails only where the identifier is missing', () => {
  chain(referenceRun('PGMAP-API-DRIFT')!, 'IO_ERROR', [/MIGRATE_PFN_LOCKED up in the 6.12 headers: gone since 5.17/, /does not build/]);
  const drift = (name: string, target: string) => run('PGMAP-API-DRIFT', [{ op: 'api_drift', args: { name, target } }]);
  assert.equal(drift('page_pgmap', '6.12').outcome.kind, 'IO_ERROR');
  assert.equal(drift('page_pgmap', '6.15').outcome.kind, 'OK');
  assert.equal(drift('MEMORY_DEVICE_DEVDAX', '5.4').outcome.kind, 'OK');
  assert.equal(drift('MEMORY_DEVICE_DEVDAX', '6.1').outcome.kind, 'IO_ERROR');
});
