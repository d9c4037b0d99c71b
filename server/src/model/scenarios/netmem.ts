/**
 * Scenarios of the netmem family's rules beyond the first thirteen (see explain.ts
 * for those). Each replays a finding's events on the simulated machine.
 */
import { DmaApi } from '../dma';
import { PAGE_SIZE } from '../memory';
import {
  cpuUseFragPage,
  createDevmemPool,
  type DevNode,
  DevmemBinding,
  dmaMapFragPage,
  netIovAsPage,
  Skb,
  skbFragPage,
  syncNetIovForCpu,
} from '../netmem';
import { hex, type Recorder, terminal } from '../run';
import { arg, ev, loc, type RuleScenario } from '../scenario';
import type { World } from '../world';

/** A GPU buffer bound to one RX queue of the NIC, and a TCP segment received into it with header split. */
function devmemSkb(r: Recorder, w: World): Skb {
  const binding = new DevmemBinding(r);
  const nicDev: DevNode = { name: w.nic.name, dmaMask: true, dma: w.nic };
  const base = w.gpuVram.bar!.busAddress + (128 << 20);
  binding.attachAndMap(nicDev, w.gpu, [{ dma: base, len: 2 << 20 }]);
  r.step('kernel', `the RX queue's page_pool is backed by the devmem provider: the NIC receives into net_iovs, GPU memory at ${hex(base)}`, { 'rx queue': 'devmem' });
  const skb = new Skb(128);
  skb.addFrag({ netmem: binding.niovs[0], off: 0, size: 1448 });
  r.step('device', `${w.nic.name} splits a TCP segment: headers into a host page (the linear part), payload into net_iov 0`, { 'skb->unreadable': skb.unreadable, 'frag[0]': 'net_iov' });
  return skb;
}

export const netmemScenarios: Record<string, RuleScenario> = {
  'NETMEM-UNREADABLE-FRAG': {
    world: { iommu: 'translated' },
    variants: [{ options: { iommu: 'off' }, label: 'IOMMU off' }],
    reference: [{ op: 'rx_devmem_skb', args: { readable: false } }, { op: 'frag_page', args: { kind: 'page' } }, { op: 'cpu_access_frag', args: { via: 'kmap_local_page()' } }],
    run(r, w, f) {
      const skb = r.at(ev(f, 'rx_devmem_skb')?.span, () => devmemSkb(r, w));
      r.step('kernel', 'the skb travels up the stack to code that reads its frags without testing skb_frags_readable()');
      const kind = String(arg(f, 'kind') ?? 'page');
      const via = String(arg(f, 'via') ?? 'kmap_local_page()');
      if (kind === 'garbage') {
        const fake = r.at(loc(f, 'frag_page'), () => netIovAsPage(r, skb, 0));
        r.at(loc(f, 'cpu_access_frag', 'dma_map_frag', 'page_ref_frag'), () => r.step('cpu', `${via} reads "page" fields (flags, the memmap index) out of the net_iov at ${hex(fake)}: the page_pool fields line up, the rest is whatever follows it in the niov array`));
        terminal('SILENT_CORRUPTION', `${via} computes a "kernel address" from a net_iov: the code reads or writes kernel memory that belongs to neighbouring net_iovs and the binding`, 'the devmem binding\'s net_iov array');
      }
      const page = r.at(loc(f, 'frag_page', 'skb_frag_dma_map'), () => skbFragPage(r, skb, 0, ev(f, 'skb_frag_dma_map') ? 'skb_frag_dma_map() calls skb_frag_page()' : undefined));
      if (ev(f, 'dma_map_frag') || ev(f, 'skb_frag_dma_map')) {
        const dma = new DmaApi(r, w.phys, w.iommu, w.fabric);
        const addr = r.at(loc(f, 'dma_map_frag', 'skb_frag_dma_map'), () => dmaMapFragPage(r, dma, w.nic, page));
        dma.deviceWrite(w.nic, addr, 'the frag\'s contents');
        return;
      }
      r.at(loc(f, 'cpu_access_frag', 'page_ref_frag'), () => cpuUseFragPage(r, page, via));
    },
  },

  'NETMEM-DMA-DEV-GRANULE': {
    world: { cpu: 'arm64' },
    variants: [{ options: { cpu: 'intel' }, label: 'an x86 server (DMA-coherent)' }],
    reference: [{ op: 'dma_buf_attach', args: { to: 'netdev_parent' } }, { op: 'dma_buf_map_attachment', args: { dev: 'parent' } }, { op: 'rx_refill' }],
    run(r, w, f) {
      const attach = ev(f, 'dma_buf_attach');
      if (attach) {
        const pf: DevNode = { name: `${w.nic.name} (PCI function ${w.nic.bdf})`, dmaMask: true, dma: w.nic };
        const sf: DevNode = { name: 'mlx5_core.sf.1 (an auxiliary device)', dmaMask: false, parent: pf };
        r.step('kernel', `the netdev is a sub-function: its parent is ${sf.name}, which has no dma_mask; the DMA device is its parent, ${pf.name}`, { 'netdev->dev.parent': sf.name });
        const binding = new DevmemBinding(r);
        const to = arg(f, 'to') === 'NULL' ? null : sf;
        if (!to) r.at(loc(f, 'netdev_get_dma_dev'), () => r.step('kernel', 'netdev_get_dma_dev() of a netdev whose parent chain has no DMA-capable device returns NULL', { dma_dev: 'NULL' }));
        const res = r.at(attach.span, () => binding.attachAndMap(to, w.gpu, [{ dma: w.gpuVram.bar!.busAddress, len: 2 << 20 }]));
        if (res === 'failed') terminal('IO_ERROR', 'dma_buf_map_attachment_unlocked() fails: the binding is refused, and devmem TCP never works on this device although its PCI function could do the DMA', 'the bind request');
        return;
      }
      const order = arg(f, 'order');
      if (order !== undefined) {
        r.step('user', 'the user binds a dma-buf to RX queue 3 (netlink bind-rx)');
        r.at(loc(f, 'page_pool_create'), () => createDevmemPool(r, Number(order)));
        return;
      }
      if (ev(f, 'dma_sync_netmem')) {
        const binding = new DevmemBinding(r);
        binding.attachAndMap({ name: w.nic.name, dmaMask: true, dma: w.nic }, w.gpu, [{ dma: w.gpuVram.bar!.busAddress + (64 << 20), len: 1 << 20 }]);
        r.step('device', `${w.nic.name} completes a receive into net_iov 5`);
        const coherent = w.cpu !== 'arm64';
        r.at(loc(f, 'dma_sync_netmem'), () => syncNetIovForCpu(r, binding.niovs[5], coherent));
        return;
      }
      // Chunks cut into PAGE_SIZE net_iovs.
      const binding = new DevmemBinding(r);
      const chunkLen = 3 * PAGE_SIZE + 2048;
      r.step('kernel', `the exporter's sg_table has chunks of ${chunkLen} bytes (its allocation granule is not a multiple of PAGE_SIZE)`);
      r.at(loc(f, 'sg_dma_len', 'split_chunk'), () => {
        for (let i = 0; i < 4; i++) binding.addChunk(w.gpuVram.bar!.busAddress + i * 0x10000, chunkLen);
      });
      terminal('LEAK', `${binding.lost} bytes of the dma-buf (the tail of every chunk) are never handed to the NIC: the queue has less memory than the user bound, and no error says so`, 'the bound dma-buf');
    },
  },
};
