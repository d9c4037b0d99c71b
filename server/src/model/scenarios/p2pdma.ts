/**
 * Scenarios of the p2pdma family's rules beyond the first thirteen (see explain.ts
 * for those). Each replays a finding's events on the simulated machine.
 *
 * The machine's p2pdma state lives in dma.ts (P2pProvider: the gen_pool with
 * the pgmap's percpu_ref as owner, the published flag, memunmap_pages()
 * waiting on unbind); routing comes from the world's fabric, which computes
 * the map type as drivers/pci/p2pdma.c does.
 */
import { DmaApi, KVA_BASE, P2pProvider, p2pDma, p2pdmaExports, p2pmemFind, writeAcsCtrl } from '../dma';
import { MEMORY_TYPES, Page } from '../memory';
import { hex, type Recorder, terminal } from '../run';
import { arg, ev, type Explainable, loc, type RuleScenario } from '../scenario';
import { ACS_CR, ACS_RR, Topology } from '../pcie';
import { defaultTopologyInputs, p2pFabric } from '../topology';
import type { World } from '../world';

const PAGE = 4096;

/** The NVMe drive registers its CMB as p2p memory: the usual provider in these runs. */
function nvmeProvider(r: Recorder, w: World): P2pProvider {
  const p = new P2pProvider(r, w.nvme, w.nvmeCmb, w.phys);
  p.addResource();
  p.publish(true);
  return p;
}

/** Whether a device write that landed in `landed` reached the provider's memory it was meant for. */
function landedIn(landed: string, w: World): boolean {
  return landed.startsWith(`BAR${w.nvmeCmb.bar!.index} of ${w.nvmeCmb.owner}`);
}

export const p2pdmaScenarios: Record<string, RuleScenario> = {
  'P2P-BUS-ADDR-VS-IOMMU': {
    world: { p2pPath: 'unsupported', iommu: 'translated' },
    variants: [
      { options: { p2pPath: 'switch' }, label: 'provider and client behind one PCIe switch' },
      { options: { p2pPath: 'allowlisted' }, label: 'an allowlisted host bridge (PCI_P2PDMA_MAP_THRU_HOST_BRIDGE)' },
      { options: { p2pPath: 'allowlisted', iommu: 'off' }, label: 'an allowlisted host bridge and the IOMMU off (x86: bus address = CPU physical address)' },
      { options: { cpu: 'arm64', iommu: 'off' }, label: 'an arm64 host whose PCI bus addresses are offset from CPU addresses, IOMMU off' },
    ],
    reference: [{ op: 'program_bus_address', args: { provider: 'p2p_dev' } }],
    run(r, w, f) {
      const dma = new DmaApi(r, w.phys, w.iommu, w.fabric);
      const extra = p2pDma(dma);
      r.topology = w.fabric.picture(w.nic.bdf, w.nvme.bdf);
      const route = w.fabric.route(w.nic.bdf, w.nvme.bdf);
      if (ev(f, 'map_type_switch')) {
        // The switch lets PCI_P2PDMA_MAP_NOT_SUPPORTED fall through to the ordinary mapping.
        r.at(loc(f, 'map_type_switch'), () => {
          r.step('kernel', `the map type for ${w.nic.name} -> ${w.nvme.name} is ${route.mapType === 'bus-address' ? 'PCI_P2PDMA_MAP_BUS_ADDR' : route.mapType === 'thru-host-bridge' ? 'PCI_P2PDMA_MAP_THRU_HOST_BRIDGE' : 'PCI_P2PDMA_MAP_NOT_SUPPORTED'} (${route.reason})`, { map_type: route.mapType });
          if (route.mapType === 'not-supported') r.step('driver', `the switch handles only ${String(arg(f, 'handles') ?? 'BUS_ADDR and THRU_HOST_BRIDGE')}: NOT_SUPPORTED falls out of it, into the code that maps an ordinary page`);
        });
        const addr =
          route.mapType === 'bus-address'
            ? dma.mapPeer(w.nic, w.nvmeCmb, PAGE, 'the BUS_ADDR case')
            : extra.mapResource(w.nic, w.nvmeCmb.start + PAGE, PAGE);
        const landed = dma.deviceWrite(w.nic, addr, 'a received packet');
        r.step('device', `the packet lands in ${landed}`);
        if (!landedIn(landed, w)) terminal('SILENT_CORRUPTION', `the packet meant for ${w.nvme.name}'s p2p memory lands in ${landed}`, landed);
        return;
      }
      if (ev(f, 'dma_map_resource')) {
        const addr = r.at(loc(f, 'dma_map_resource'), () => extra.mapResource(w.nic, w.nvmeCmb.start + PAGE, PAGE));
        r.step('kernel', `no map type was asked for: for this pair it is ${route.mapType} (${route.reason})`);
        const landed = dma.deviceWrite(w.nic, addr, 'a received packet');
        r.step('device', `the packet lands in ${landed}`);
        if (!landedIn(landed, w)) terminal('SILENT_CORRUPTION', `the packet meant for ${w.nvme.name}'s BAR lands in ${landed}`, landed);
        return;
      }
      const nvme = nvmeProvider(r, w);
      const kaddr = r.at(loc(f, 'program_bus_address'), () => nvme.alloc(PAGE, `the driver of ${w.nic.name}`));
      if (kaddr === undefined) return;
      const bus = nvme.virtToBus(kaddr);
      r.at(loc(f, 'program_bus_address'), () =>
        r.step('driver', `the driver writes pci_p2pmem_virt_to_bus() = ${hex(bus)} into ${w.nic.name}'s descriptor${arg(f, 'sgDma') === true ? ' (as the DMA address of a scatterlist)' : ''}; no DMA mapping is made for ${w.nic.name}`, { 'descriptor.addr': hex(bus), map_type: route.mapType }),
      );
      const landed = dma.deviceWrite(w.nic, bus, 'a received packet');
      r.step('device', `the packet lands in ${landed}`);
      if (!landedIn(landed, w)) terminal('SILENT_CORRUPTION', `${w.nic.name} used the PCI bus address ${hex(bus)}, which on this host is not where the CPU (and the root complex) see the BAR: the packet lands in ${landed}`, landed);
    },
  },

  'P2P-PUBLISH-CONTRACT': {
    world: { p2pPath: 'switch' },
    reference: [{ op: 'pci_p2pdma_add_resource', args: { result: 'failed' } }, { op: 'pci_p2pmem_publish' }],
    run(r, w, f) {
      const dma = new DmaApi(r, w.phys, w.iommu, w.fabric);
      const nvme = new P2pProvider(r, w.nvme, w.nvmeCmb, w.phys);
      r.topology = w.fabric.picture(w.nic.bdf, w.nvme.bdf);
      if (ev(f, 'register_bar_map')) {
        // The whole BAR, registers included, is registered and published.
        const regs = 16 << 10;
        r.at(loc(f, 'register_bar_map'), () => r.step('driver', `the driver maps the first ${regs >> 10} KiB of BAR${w.nvmeCmb.bar!.index} for its registers (doorbells at offset 0x1000)`, { registers: `BAR${w.nvmeCmb.bar!.index}+0x0..${hex(regs - 1)}` }));
        r.at(loc(f, 'pci_p2pdma_add_resource'), () => nvme.addResource({ offset: 0 }));
        r.at(loc(f, 'pci_p2pmem_publish'), () => nvme.publish(true));
        const found = p2pmemFind(r, w.fabric, [nvme], [w.nic]);
        const kaddr = found?.alloc(PAGE, 'an orchestrator (nvmet) for a receive buffer');
        if (kaddr === undefined || !found) return;
        const off = kaddr - (KVA_BASE + w.nvmeCmb.start);
        const addr = dma.mapPeer(w.nic, w.nvmeCmb, off, `dma_map_sg() of the buffer for ${w.nic.name}`);
        const landed = dma.deviceWrite(w.nic, addr, 'a received packet');
        r.step('device', `the packet lands in ${landed}, offset ${hex(off)} of the BAR`);
        if (off < regs) terminal('HANG', `the packet overwrites ${w.nvme.name}'s control registers and doorbells at BAR offset ${hex(off)}: the controller sees garbage commands and hangs (or resets)`, `${w.nvme.name}'s controller`);
        return;
      }
      const result = String(arg(f, 'result') ?? 'failed');
      if (result === 'none') {
        r.at(loc(f, 'pci_p2pmem_publish'), () => nvme.publish(true));
        r.at(loc(f, 'pci_p2pdma_add_resource'), () => nvme.addResource());
      } else {
        const rc = r.at(loc(f, 'pci_p2pdma_add_resource'), () => nvme.addResource({ fail: 'memremap' }));
        r.step('driver', result === 'unchecked' ? `the driver ignores the result (${rc})` : `the driver logs the failure (${rc}) and carries on`);
        r.at(loc(f, 'pci_p2pmem_publish'), () => nvme.publish(true));
      }
      const found = p2pmemFind(r, w.fabric, [nvme], [w.nic]);
      if (!found) terminal('IO_ERROR', `${w.nvme.name}'s memory was registered but never published: no orchestrator can find it, and peer-to-peer never happens on this machine`, 'peer-to-peer transfers');
      const kaddr = found.alloc(PAGE, 'an orchestrator (nvmet) for a receive buffer');
      if (kaddr === undefined) terminal('IO_ERROR', `${found.dev.name} is advertised as a provider but its pool is empty: every p2p allocation fails, and orchestrators that picked it (the closest provider) never use a working one`, 'peer-to-peer transfers');
    },
  },

  'P2P-ALLOC-FREE-MISMATCH': {
    world: { p2pPath: 'switch' },
    reference: [{ op: 'pci_alloc_p2pmem', args: { size: 'SZ_4K' } }, { op: 'pci_free_p2pmem', args: { mismatch: 'size', bigger: true } }],
    run(r, w, f) {
      const nvme = nvmeProvider(r, w);
      const pool = nvme.p2pdma!.pool;
      const kind = String(arg(f, 'mismatch') ?? 'size');
      const bigger = arg(f, 'bigger') === true;
      const allocEv = ev(f, 'pci_alloc_p2pmem', 'pci_p2pmem_alloc_sgl');
      const allocSize = kind === 'size' && !bigger ? 2 * PAGE : PAGE;
      const freeSize = kind === 'size' ? (bigger ? 2 * PAGE : PAGE) : allocSize;
      const me = 'the driver';
      const kaddr = r.at(allocEv?.span, () => nvme.alloc(allocSize, me));
      if (kaddr === undefined) return;
      const neighbour = nvme.alloc(PAGE, 'nvmet request #2');
      const freeEv = f.events.find((e) => e !== allocEv) ?? ev(f, 'pci_free_p2pmem');
      r.at(freeEv?.span, () => {
        switch (kind) {
          case 'device': {
            const other = new P2pProvider(r, w.nic, w.nvmeCmb);
            r.step('driver', `the driver calls pci_free_p2pmem(${w.nic.name}, ${hex(kaddr)}, ${allocSize}): the client, not the provider`);
            other.free(kaddr, allocSize, me);
            return;
          }
          case 'kfree-sgl':
            r.step('driver', `kfree(sgl) frees the scatterlist itself; the ${allocSize} bytes it points to stay allocated in ${w.nvme.name}'s pool, with their pgmap reference`, { 'pool holder': pool.holderAt(kaddr) ?? 'free' });
            return;
          case 'kfree-mem':
          case 'sgl-free': {
            const page = nvme.pgmap?.pages.find((p) => p.phys === kaddr - KVA_BASE) ?? new Page((kaddr - KVA_BASE) / PAGE);
            r.step('kernel', `${kind === 'kfree-mem' ? 'kfree()' : 'sgl_free()'} looks up the page of ${hex(kaddr)}: ${page.describe()} in ${w.nvme.name}'s BAR, not a ${kind === 'kfree-mem' ? 'slab' : 'buddy'} page`, { kva: page.kva });
            if (page.pgmap) terminal('WARN', `${kind === 'kfree-mem' ? 'free_large_kmalloc() WARNs (an order-0 "large kmalloc" object)' : '__free_pages() reports a bad page state'} and puts the p2p page: its page_free callback returns it to the pool behind the driver's back, and the pool later frees it again`, `${w.nvme.name}'s p2p pool`);
            return;
          }
          case 'wrong-free':
            r.step('driver', 'the driver hands the scatterlist (kmalloc memory, not pool memory) to pci_free_p2pmem()');
            pool.free(KVA_BASE + 0x1_2000_0000, allocSize, me);
            return;
          default: {
            const { stolen } = nvme.free(kaddr, freeSize, me);
            if (stolen.length) r.step('kernel', `the pool now believes ${stolen.join(', ')}'s page is free, though it is still mapped for DMA`);
          }
        }
      });
      if (kind === 'kfree-sgl' || (kind === 'size' && !bigger)) {
        if (neighbour !== undefined) nvme.free(neighbour, PAGE, 'nvmet request #2');
        nvme.unbind();
        return;
      }
      if (neighbour !== undefined && pool.holderAt(neighbour) === undefined) {
        const again = nvme.alloc(2 * PAGE, 'nvmet request #3');
        if (again !== undefined && again <= neighbour && neighbour < again + 2 * PAGE) terminal('SILENT_CORRUPTION', `request #3 gets ${hex(again)}-${hex(again + 2 * PAGE - 1)}, which includes the page request #2 is still using: two peers DMA into the same p2p page`, 'nvmet request data');
      }
    },
  },

  'P2P-REF-ERRPATH': {
    world: { p2pPath: 'switch' },
    reference: [{ op: 'percpu_ref_tryget_live' }, { op: 'return_error' }, { op: 'unbind_provider' }],
    run(r, w, f) {
      const nvme = nvmeProvider(r, w);
      const pool = nvme.p2pdma!.pool;
      const ref = nvme.pgmapRef!;
      // struct pages of the first pages of the pool (6.15+: p2p pages start at refcount 0).
      const pages = nvme.pgmap?.pages ?? [0, 1, 2, 3].map((i) => new Page((w.nvmeCmb.start + i * PAGE) / PAGE));
      for (const p of pages) p.refcount = 0;
      const pageOf = (kaddr: number) => pages[Math.floor((kaddr - KVA_BASE - w.nvmeCmb.start) / PAGE)];
      const len = 2 * PAGE;
      r.step('user', `a process mmap()s ${len} bytes of ${w.nvme.name}'s p2pmem/allocate`);
      const got = pool.alloc(len, 'the mmap');
      if (!got) return;
      r.step('kernel', `gen_pool_alloc_owner() returns ${hex(got.addr)} and the pgmap's percpu_ref as owner`, { kaddr: hex(got.addr) });
      if (ev(f, 'put_page_undo')) {
        const page = pageOf(got.addr);
        ref.tryGetLive();
        r.at(loc(f, 'set_page_count'), () => {
          page.refcount = 1;
          r.step('kernel', 'set_page_count(page, 1) before inserting the page', { 'page refcount': page.refcount });
        });
        r.step('kernel', 'vm_insert_page() fails (-EBUSY: the VMA is not a VM_MIXEDMAP)', { ret: '-EBUSY' });
        r.at(loc(f, 'put_page_undo'), () => {
          page.refcount--;
          r.step('driver', 'put_page(page) drops the only reference', { 'page refcount': page.refcount });
          if (page.refcount === 0) {
            r.step('kernel', 'the refcount reached 0: the pgmap page_free callback (p2pdma_folio_free) returns the page to the pool');
            pool.free(got.addr, PAGE, 'the mmap');
            ref.put('and drops a pgmap reference');
          }
        });
        r.step('driver', `the error path then gen_pool_free()s the whole ${len} bytes`);
        pool.free(got.addr, len, 'the mmap');
        return;
      }
      const acq = ev(f, 'percpu_ref_tryget_live', 'get_dev_pagemap', 'set_page_count');
      if (acq?.op === 'set_page_count') {
        ref.tryGetLive();
        const page = pageOf(got.addr);
        r.at(acq.span, () => {
          page.refcount = 1;
          r.step('kernel', 'set_page_count(page, 1) before inserting the page', { 'page refcount': page.refcount });
        });
        r.at(loc(f, 'return_error'), () => {
          r.step('kernel', 'vm_insert_page() fails (-EBUSY)', { ret: '-EBUSY' });
          pool.free(got.addr, len, 'the mmap');
          ref.put('the error path drops the pgmap reference');
          r.step('driver', `the error path returns without set_page_count(page, 0): the page is free in the pool with refcount ${page.refcount}`, { 'page refcount': page.refcount });
        });
        r.step('user', 'the next mmap() of p2pmem/allocate gets the same page');
        const again = pool.alloc(len, 'the next mmap');
        if (again && pageOf(again.addr).refcount !== 0) terminal('WARN', `VM_WARN_ON_ONCE_PAGE(page_ref_count(page)) fires in p2pmem_alloc_mmap(): the page handed out again still has refcount ${pageOf(again.addr).refcount}, so it will never be freed back to the pool either`, `${w.nvme.name}'s p2p pool`);
        return;
      }
      r.at(acq?.span, () => {
        if (!ref.tryGetLive()) return;
        r.step('kernel', `${acq?.op === 'get_dev_pagemap' ? 'get_dev_pagemap()' : 'percpu_ref_tryget_live_rcu()'} takes a pgmap reference so the RCU read lock can be dropped before vm_insert_page() (which sleeps)`, { [ref.name]: ref.count });
      });
      r.at(loc(f, 'return_error'), () => {
        r.step('kernel', 'vm_insert_page() fails (-EBUSY: the VMA is not a VM_MIXEDMAP)', { ret: '-EBUSY' });
        pool.free(got.addr, len, 'the mmap');
        r.step('driver', 'the error path returns -EBUSY without percpu_ref_put()', { [ref.name]: ref.count });
      });
      nvme.unbind();
    },
  },

  'P2P-DMA-MAP-API': {
    world: { p2pPath: 'unsupported', iommu: 'translated', cpu: 'arm64' },
    variants: [
      { options: { p2pPath: 'switch' }, label: 'provider and client behind one PCIe switch' },
      { options: { p2pPath: 'allowlisted', cpu: 'intel' }, label: 'an x86 host with an allowlisted host bridge' },
    ],
    reference: [{ op: 'pci_alloc_p2pmem' }, { op: 'dma_map_page_p2p', args: { via: 'dma_map_page' } }],
    run(r, w, f) {
      const dma = new DmaApi(r, w.phys, w.iommu, w.fabric);
      const extra = p2pDma(dma);
      r.topology = w.fabric.picture(w.nic.bdf, w.nvme.bdf);
      const legacy = ev(f, 'legacy_p2pdma_map_sg');
      if (legacy) {
        const [maj, min] = String(legacy.args?.kernel ?? '6.12').split('.').map(Number);
        const sym = String(legacy.args?.symbol ?? 'pci_p2pdma_map_sg_attrs');
        const exported = p2pdmaExports(maj, min);
        r.at(legacy.span, () => r.step('kernel', `modpost/insmod resolves ${sym} against a ${maj}.${min} kernel`, { [sym]: exported.has(sym) ? 'exported' : 'missing' }));
        if (!exported.has(sym)) terminal('IO_ERROR', `${maj}.${min} has no ${sym}: the module does not build (or insmod fails with "Unknown symbol"), so the device never gets its p2p mapping`, 'the driver');
        return;
      }
      if (ev(f, 'map_sg_negative_check')) {
        const nvme = nvmeProvider(r, w);
        const kaddr = nvme.alloc(PAGE, `the driver of ${w.nic.name}`);
        if (kaddr === undefined) return;
        const nents = r.at(loc(f, 'dma_map_sg'), () => extra.tryMapPeer(w.nic, w.nvmeCmb, kaddr - KVA_BASE - w.nvmeCmb.start, `dma_map_sg() of the p2p buffer for ${w.nic.name}`));
        if (nents !== undefined) {
          const landed = dma.deviceWrite(w.nic, nents, 'a received packet');
          r.step('device', `the packet lands in ${landed}`);
          return;
        }
        r.at(loc(f, 'map_sg_negative_check'), () => r.step('driver', 'the `< 0` test does not see the 0: the driver programs the device with sg_dma_address() of the unmapped entry (0)', { 'descriptor.addr': '0x0' }));
        const landed = dma.deviceWrite(w.nic, 0, 'a received packet');
        terminal('SILENT_CORRUPTION', `the unmapped DMA address 0 is used: the packet lands in ${landed}`, landed);
      }
      if (ev(f, 'rdma_map_p2p')) {
        const nvme = nvmeProvider(r, w);
        const kaddr = r.at(loc(f, 'pci_p2pmem_alloc_sgl', 'pci_alloc_p2pmem'), () => nvme.alloc(PAGE, 'the RDMA upper layer'));
        if (kaddr === undefined) return;
        r.at(loc(f, 'rdma_map_p2p'), () => r.step('kernel', `the connection runs on a software RDMA device (rxe): ib_dma_map_sg() uses virtual DMA ops and hands back the kernel address ${hex(kaddr)} itself`, { dma_addr: hex(kaddr) }));
        const kva = MEMORY_TYPES.P2PDMA.kernelMapping;
        r.step('cpu', `rxe copies the received payload with memcpy() into ${hex(kaddr)}, which is mapped ${kva === 'UC_MMIO' ? 'uncached as device memory (MMIO)' : kva}`);
        if (w.cpu === 'arm64') terminal('CPU_FAULT', 'memcpy() into Device memory uses unaligned accesses and DC ZVA: alignment fault / SError, kernel oops in the RDMA receive path', 'the rxe receive task');
        r.step('cpu', 'on x86 the uncached copy works, slowly');
        return;
      }
      const nvme = nvmeProvider(r, w);
      const src = ev(f, 'pci_alloc_p2pmem', 'pci_p2pmem_alloc_sgl');
      const kaddr = r.at(src?.span, () => nvme.alloc(PAGE, `the driver of ${w.nic.name}`));
      if (kaddr === undefined) return;
      const pgmapPage = new Page((kaddr - KVA_BASE) / PAGE);
      const route = w.fabric.route(w.nic.bdf, w.nvme.bdf);
      const addr = r.at(loc(f, 'dma_map_page_p2p'), () => {
        r.step('kernel', `${String(arg(f, 'via') ?? 'dma_map_page')}() sees a page at physical ${hex(pgmapPage.phys)} and maps it like RAM; the map type it never asked for is ${route.mapType} (${route.reason})`);
        return dma.mapPhys(w.nic, pgmapPage.phys, PAGE, `${String(arg(f, 'via') ?? 'dma_map_page')}(${w.nic.name})`);
      });
      const landed = dma.deviceWrite(w.nic, addr, 'a received packet');
      r.step('device', `the packet lands in ${landed}`);
      if (!landedIn(landed, w)) terminal('SILENT_CORRUPTION', `the packet meant for ${w.nvme.name}'s p2p memory lands in ${landed}`, landed);
    },
  },

  'P2P-ACS-TAMPER': {
    world: { p2pPath: 'switch', iommu: 'translated' },
    variants: [{ options: { iommu: 'off' }, label: 'the IOMMU off (no isolation to lose)' }],
    reference: [{ op: 'acs_write', args: { clearsRedirect: true } }],
    run(r, w, f) {
      const cpu = w.cpu === 'amd-zen' ? 'amd-zen' : w.cpu === 'arm64' ? 'other' : 'intel';
      if (ev(f, 'private_allowlist')) {
        // NIC and NVMe drive under different root ports of a host bridge the kernel does not allow.
        const topo = Topology.create(defaultTopologyInputs('unsupported'));
        const fabric = p2pFabric(topo, cpu);
        const dma = new DmaApi(r, w.phys, w.iommu, fabric);
        const route = fabric.route(w.nic.bdf, w.nvme.bdf);
        r.topology = fabric.picture(w.nic.bdf, w.nvme.bdf);
        r.at(loc(f, 'private_allowlist'), () => r.step('driver', `the driver finds its root complex in its own allowlist and skips pci_p2pdma_distance(), which would have said: ${route.mapType} (${route.reason})`));
        const nvme = nvmeProvider(r, w);
        const kaddr = nvme.alloc(PAGE, `the driver of ${w.nic.name}`);
        if (kaddr === undefined) return;
        const addr = dma.mapPhys(w.nic, kaddr - KVA_BASE, PAGE, `mapping the p2p buffer for ${w.nic.name}`);
        const landed = dma.deviceWrite(w.nic, addr, 'a received packet');
        r.step('device', `the packet lands in ${landed}`);
        return;
      }
      // The machine: NIC and NVMe drive behind one switch whose downstream ports
      // have ACS redirect on (pci_enable_acs() with an IOMMU). The NIC is
      // assigned to a VM through VFIO; the NVMe drive belongs to the host.
      const inputs = defaultTopologyInputs('switch');
      const withAcs = inputs.map((n) => (n.portType === 'switch-downstream' ? { ...n, acs: { ctrl: ACS_RR | ACS_CR } } : n));
      const fabric = p2pFabric(Topology.create(withAcs), cpu);
      const dma = new DmaApi(r, w.phys, w.iommu, fabric);
      const dsp = withAcs.filter((n) => n.portType === 'switch-downstream');
      r.step('kernel', `the switch's downstream ports have ACS request/completion redirect on: the kernel enabled it because the IOMMU isolates ${w.nic.name} and ${w.nvme.name} in different groups`, { 'ACS RR/CR': 'on' });
      if (arg(f, 'hidesCap') === true) {
        // The kernel stops seeing the redirect, the hardware still does it.
        const believed = p2pFabric(Topology.create(inputs), cpu);
        r.at(loc(f, 'acs_write'), () => r.step('driver', `the driver zeroes acs_cap of ${dsp.map((n) => n.bdf).join(', ')}: pci_bridge_has_acs_redir() now reports no redirect, while the ports keep redirecting`, { acs_cap: 0 }));
        const nvme = nvmeProvider(r, w);
        const kaddr = nvme.alloc(PAGE, `an orchestrator for ${w.nic.name}`);
        if (kaddr === undefined) return;
        r.topology = fabric.picture(w.nic.bdf, w.nvme.bdf);
        const addr = new DmaApi(r, w.phys, w.iommu, believed).mapPeer(w.nic, w.nvmeCmb, kaddr - KVA_BASE - w.nvmeCmb.start, `dma_map_sg() for ${w.nic.name}, computed on the kernel's (wrong) view`);
        const landed = dma.deviceWrite(w.nic, addr, 'a received packet');
        r.step('device', `the packet lands in ${landed}`);
        return;
      }
      const guestAddr = w.nvmeCmb.bar!.busAddress + PAGE;
      const guestRam = 0x1_2345_6000;
      if (w.nic.iommu === 'translated') {
        w.iommu.mapAt(w.nic, guestAddr, guestRam, PAGE);
        r.step('kernel', `${w.nic.name} is assigned to a VM; VFIO maps the guest's DMA buffer at IOVA ${hex(guestAddr)} (its guest-physical address) to host RAM ${hex(guestRam)}`, { 'iommu mapping': `${hex(guestAddr)} -> ${hex(guestRam)}` });
      } else {
        r.step('kernel', `${w.nic.name} is used by an untrusted driver; without an IOMMU nothing confines its DMA anyway`);
      }
      r.step('user', `the guest programs ${w.nic.name} to DMA into its buffer at ${hex(guestAddr)}, which happens to equal a bus address inside the BAR of ${w.nvme.name}, a host device`);
      if (w.nic.iommu === 'translated') {
        const before = dma.deviceWrite(w.nic, guestAddr, "the guest's first DMA write");
        r.step('device', `with ACS redirect on, the write goes up to the IOMMU and lands in ${before}, the guest's own memory`);
      }
      r.at(loc(f, 'acs_write'), () => {
        for (const n of dsp) writeAcsCtrl(r, n, false);
      });
      // The hardware now routes by the new ACS bits.
      const after = p2pFabric(Topology.create(withAcs), cpu);
      r.topology = after.picture(w.nic.bdf, w.nvme.bdf);
      const landed = new DmaApi(r, w.phys, w.iommu, after).deviceWrite(w.nic, guestAddr, "the guest's DMA write");
      r.step('device', `the write lands in ${landed}`);
      if (landedIn(landed, w) && w.nic.iommu === 'translated') terminal('SILENT_CORRUPTION', `a device assigned to a VM wrote into the BAR of ${w.nvme.name}, which belongs to the host, without the IOMMU ever seeing the TLP: the isolation between IOMMU groups is gone`, `${w.nvme.name} (host-owned)`);
    },
  },
};

