/**
 * devmem TCP as net/core/devmem.c and include/linux/skbuff.h (6.12) run it:
 * a dma-buf bound to an RX queue is mapped for the DMA device, each
 * sg_dma_len() chunk is cut into PAGE_SIZE net_iovs kept in a gen_pool, the
 * queue's page_pool hands net_iovs to the NIC, and skbs built from them are
 * unreadable: skb_frag_page() returns NULL, there is no kernel mapping.
 *
 * Devices: the NIC's net_device has a parent that may not be the DMA device
 * (an auxiliary/sub-function device without a dma_mask, whose grandparent is
 * the PCI function that does the DMA).
 */
import type { DeviceInfo, DmaApi } from './dma';
import { PAGE_SIZE, type Page } from './memory';
import { hex, type Recorder, terminal } from './run';

/** A struct device in the chain net_device -> parent -> grandparent. */
export interface DevNode {
  name: string;
  /** dev->dma_mask is set: the DMA API may map for it. */
  dmaMask: boolean;
  /** The PCI function behind it, for the IOMMU and the fabric. */
  dma?: DeviceInfo;
  parent?: DevNode;
}

export interface NetIov {
  kind: 'net_iov';
  /** The DMA address inside the dma-buf mapping. */
  dmaAddr: number;
  index: number;
}

export type Netmem = { kind: 'page'; page: Page } | NetIov;

export interface Frag {
  netmem: Netmem;
  off: number;
  size: number;
}

export class Skb {
  readonly frags: Frag[] = [];
  /** skb->unreadable: set by __skb_fill_netmem_desc() for the first net_iov frag. */
  unreadable = false;
  constructor(readonly headLen: number) {}

  /** __skb_fill_netmem_desc(). */
  addFrag(f: Frag): void {
    this.frags.push(f);
    if (f.netmem.kind === 'net_iov') this.unreadable = true;
  }
}

/** skb_frag_page(): NULL for a net_iov. */
export function skbFragPage(r: Recorder, skb: Skb, i: number, what = 'skb_frag_page()'): Page | null {
  const f = skb.frags[i];
  const page = f.netmem.kind === 'page' ? f.netmem.page : null;
  r.step('kernel', `${what} of frag ${i}: ${page ? `a page (pfn ${hex(page.pfn)})` : 'NULL, the frag is a net_iov (dma-buf memory, no struct page)'}`, { [`frag[${i}]`]: f.netmem.kind, 'skb->unreadable': skb.unreadable });
  return page;
}

/** __netmem_to_page() of a net_iov: the net_iov pointer itself, read as a struct page. */
export function netIovAsPage(r: Recorder, skb: Skb, i: number): bigint {
  const f = skb.frags[i];
  const fake = 0xffff_8880_1234_5000n + BigInt(f.netmem.kind === 'net_iov' ? f.netmem.index * 48 : 0);
  r.step('kernel', `__netmem_to_page() of frag ${i} clears the NET_IOV bit and returns the net_iov (${hex(fake)}) as a struct page *`, { page: 'a net_iov' });
  return fake;
}

/** A page-based CPU use of what skb_frag_page() returned (kmap, page_address, get_page, sg_set_page + crypto). */
export function cpuUseFragPage(r: Recorder, page: Page | null, what: string): void {
  if (!page) {
    r.step('cpu', `${what} dereferences the NULL page (page->flags, or page_address()'s lookup)`, { page: 'NULL' });
    terminal('CPU_FAULT', `NULL pointer dereference in ${what}: kernel oops in the receive path`, 'the softirq / receiving task');
  }
  r.step('cpu', `${what} works on ${page.describe()}`);
}

/**
 * dma_map_page() of what skb_frag_page() returned: page_to_phys(NULL) is an
 * offset from the base of the memmap, a physical address nothing decodes.
 */
export function dmaMapFragPage(r: Recorder, dma: DmaApi, dev: DeviceInfo, page: Page | null): number {
  if (page) return dma.mapPage(dev, page);
  const bogus = 0x7e00_0000_0000;
  r.step('kernel', `dma_map_page(${dev.name}, NULL) computes page_to_phys(NULL) = ${hex(bogus)} (the distance of NULL from vmemmap, shifted): no check stops it`, { phys: hex(bogus) });
  return dma.mapPhys(dev, bogus, PAGE_SIZE, `dma_map_page(${dev.name}, NULL)`);
}

/** The dma-buf bound to an RX queue (struct net_devmem_dmabuf_binding). */
export class DevmemBinding {
  /** The net_iovs of every chunk, in gen_pool order. */
  readonly niovs: NetIov[] = [];
  /** Bytes of the dma-buf that no net_iov covers. */
  lost = 0;

  constructor(readonly r: Recorder) {}

  /**
   * net_devmem_bind_dmabuf(): dma_buf_attach(dmabuf, dev) and
   * dma_buf_map_attachment_unlocked() for `dev`, which is the device the
   * exporter maps for. A device without dma_mask makes dma_map_sgtable()
   * WARN and fail.
   */
  attachAndMap(dev: DevNode | null, exporter: DeviceInfo, chunks: Array<{ dma: number; len: number }>): 'mapped' | 'failed' {
    const r = this.r;
    if (!dev) {
      r.step('kernel', 'dma_buf_attach(dmabuf, NULL): WARN_ON(!dmabuf || !dev), returns ERR_PTR(-EINVAL)', { attach: 'refused' });
      terminal('WARN', 'the binding fails with a WARN: the netdev has no DMA device, and nothing said so before the dma-buf was attached', 'the bind request');
    }
    r.step('kernel', `dma_buf_attach(dmabuf, ${dev.name}): ${exporter.name}'s exporter records ${dev.name} as the importing device`, { 'attach->dev': dev.name });
    if (!dev.dmaMask) {
      r.step('kernel', `the exporter's map_dma_buf calls dma_map_sgtable(${dev.name}): WARN_ON_ONCE(!dev->dma_mask), 0 entries, -EINVAL`, { mapping: 'failed' });
      return 'failed';
    }
    r.step('kernel', `the exporter maps the buffer for ${dev.name}: ${chunks.length} sg entr${chunks.length === 1 ? 'y' : 'ies'}`, { nents: chunks.length });
    for (const c of chunks) this.addChunk(c.dma, c.len);
    return 'mapped';
  }

  /** The chunk loop of net_devmem_bind_dmabuf(): num_niovs = len / PAGE_SIZE. */
  addChunk(dma: number, len: number): void {
    const n = Math.floor(len / PAGE_SIZE);
    for (let i = 0; i < n; i++) this.niovs.push({ kind: 'net_iov', dmaAddr: dma + i * PAGE_SIZE, index: this.niovs.length });
    const tail = len - n * PAGE_SIZE;
    this.lost += tail;
    this.r.step('kernel', `gen_pool_add_owner() adds the chunk at ${hex(dma)} (${len} bytes) and ${n} net_iov${n === 1 ? '' : 's'} of ${PAGE_SIZE} bytes${tail ? `: the last ${tail} bytes are covered by no net_iov` : ''}`, { niovs: this.niovs.length, 'bytes unusable': this.lost });
  }
}

/** page_pool_create() for a queue bound to the devmem provider: mp_dmabuf_devmem_init(). */
export function createDevmemPool(r: Recorder, order: number): void {
  r.step('kernel', `page_pool_create() with order ${order} on a queue bound to the devmem provider: mp_dmabuf_devmem_init() turns dma_sync off and checks pool->p.order`, { order });
  if (order !== 0) {
    r.step('kernel', 'mp_dmabuf_devmem_init() returns -E2BIG: the provider only hands out PAGE_SIZE net_iovs', { pool: 'refused' });
    terminal('IO_ERROR', 'the queue restart fails with -E2BIG: no dma-buf can ever be bound to this driver\'s queues', 'the bind request');
  }
}

/**
 * dma_sync_single_for_cpu() on a net_iov's DMA address (kernel/dma/direct.h):
 * non-coherent devices get arch_sync_dma_for_cpu(dma_to_phys(addr)), cache
 * maintenance by virtual address on phys_to_virt() of an address that is
 * not in the linear map; coherent devices skip it.
 */
export function syncNetIovForCpu(r: Recorder, niov: NetIov, coherent: boolean): void {
  r.step('driver', `dma_sync_single_for_cpu(${hex(niov.dmaAddr)}): the address is inside the dma-buf mapping, not something the DMA API mapped`, { dma_addr: hex(niov.dmaAddr) });
  if (coherent) {
    r.step('kernel', 'the device is DMA-coherent: dma_direct_sync_single_for_cpu() does no cache maintenance, and no swiotlb slot matches: nothing happens');
    return;
  }
  r.step('kernel', `dma_to_phys() gives ${hex(niov.dmaAddr)} (GPU memory, not RAM); arch_sync_dma_for_cpu() invalidates cache lines at phys_to_virt() of it, an address the linear map does not cover`, { 'cache op': 'DC IVAC on an unmapped VA' });
  terminal('CPU_FAULT', 'the cache maintenance instruction faults on the unmapped linear-map address: kernel oops in the RX completion path', 'the RX softirq');
}
