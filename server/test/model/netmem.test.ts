/**
 * The netmem family's scenarios: devmem TCP frags without pages, and the
 * binding's device, granule, order and sync assumptions, each to its outcome
 * through the key steps; the world changes the run where the kernel does.
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

const run = (rule: string, events: CodeEvent[], world = {}) => explain({ rule, events, span: { start: 0, end: 0 } }, Object.keys(world).length ? world : undefined)!;

test('NETMEM-UNREADABLE-FRAG: a CPU use of skb_frag_page() on a devmem skb is a NULL dereference', () => {
  chain(referenceRun('NETMEM-UNREADABLE-FRAG')!, 'CPU_FAULT', [/dma_buf_attach\(dmabuf, the NIC\)/, /512 net_iovs/, /devmem provider/, /headers into a host page .* payload into net_iov 0/, /skb_frag_page\(\) of frag 0: NULL/, /kmap_local_page\(\) dereferences the NULL page/, /NULL pointer dereference/]);
});

test('NETMEM-UNREADABLE-FRAG: mapping the frag for DMA, and __netmem_to_page() of a net_iov', () => {
  const rx = { op: 'rx_devmem_skb', args: { readable: false } };
  chain(run('NETMEM-UNREADABLE-FRAG', [rx, { op: 'skb_frag_dma_map', args: { kind: 'page' } }, { op: 'dma_map_frag' }]), 'UR_AER', [/skb_frag_dma_map\(\) calls skb_frag_page\(\)/, /page_to_phys\(NULL\)/, /maps IOVA/, /translates/, /Unsupported Request/]);
  chain(run('NETMEM-UNREADABLE-FRAG', [rx, { op: 'frag_page', args: { kind: 'page' } }, { op: 'dma_map_frag' }], { iommu: 'off' }), 'UR_AER', [/page_to_phys\(NULL\)/, /as the DMA address \(IOMMU off\)/, /no IOMMU translation/]);
  chain(run('NETMEM-UNREADABLE-FRAG', [rx, { op: 'frag_page', args: { kind: 'garbage' } }, { op: 'cpu_access_frag', args: { via: 'page_address()' } }]), 'SILENT_CORRUPTION', [/__netmem_to_page\(\) of frag 0 clears the NET_IOV bit/, /reads "page" fields/]);
});

test('NETMEM-DMA-DEV-GRANULE: attaching for a sub-function\'s parent makes the binding fail', () => {
  chain(referenceRun('NETMEM-DMA-DEV-GRANULE')!, 'IO_ERROR', [/its parent is mlx5_core\.sf\.1 .* no dma_mask/, /dma_buf_attach\(dmabuf, mlx5_core\.sf\.1/, /WARN_ON_ONCE\(!dev->dma_mask\), 0 entries, -EINVAL/, /binding is refused/]);
  chain(run('NETMEM-DMA-DEV-GRANULE', [{ op: 'netdev_get_dma_dev', args: { result: 'NULL' } }, { op: 'dma_buf_attach', args: { to: 'NULL' } }]), 'WARN', [/returns NULL/, /WARN_ON\(!dmabuf \|\| !dev\)/]);
});

test('NETMEM-DMA-DEV-GRANULE: order, sync and granule', () => {
  chain(run('NETMEM-DMA-DEV-GRANULE', [{ op: 'page_pool_create', args: { order: 2 } }, { op: 'bind_dmabuf_queue' }]), 'IO_ERROR', [/binds a dma-buf to RX queue/, /page_pool_create\(\) with order 2/, /-E2BIG/]);
  const sync = [{ op: 'page_pool_get_dma_addr_netmem' }, { op: 'dma_sync_netmem' }];
  chain(run('NETMEM-DMA-DEV-GRANULE', sync), 'CPU_FAULT', [/completes a receive into net_iov 5/, /dma_sync_single_for_cpu\(0x/, /arch_sync_dma_for_cpu\(\) invalidates cache lines/]);
  assert.equal(run('NETMEM-DMA-DEV-GRANULE', sync, { cpu: 'intel' }).outcome.kind, 'OK', 'a DMA-coherent x86 device does no cache maintenance');
  const r = explain({ rule: 'NETMEM-DMA-DEV-GRANULE', events: sync, span: { start: 0, end: 0 } })!;
  assert.ok(r.worldNotes?.some((n) => /x86 server .*: it works/.test(n)), String(r.worldNotes));
  chain(run('NETMEM-DMA-DEV-GRANULE', [{ op: 'sg_dma_len', args: { aligned: false } }, { op: 'split_chunk' }]), 'LEAK', [/chunks of 14336 bytes/, /3 net_iovs of 4096 bytes: the last 2048 bytes are covered by no net_iov/, /8192 bytes of the dma-buf/]);
});
