/**
 * Scenarios of the dmabuf family's rules beyond the first thirteen (see explain.ts
 * for those). Each replays a finding's events on the simulated machine.
 *
 * The machine's state for these runs lives in dmabuf.ts: kernel mappings
 * (KernelMapping, with the core's vmap_ptr check), the CPU caches of a
 * non-coherent SoC (CpuCache), references and fds (BufferRefs), the lock
 * graph between mmap_lock and reservation locks (LockGraph), fence slots
 * (FenceSlots) and dma_buf_export()'s checks (dmaBufExport).
 */
import type { CodeEvent } from '../../core/types';
import { DmaApi } from '../dma';
import {
  BufferRefs,
  CpuCache,
  cpuPlainAccess,
  DmaBuf,
  detachAttachment,
  deviceWriteOrphan,
  type Dir,
  dmaBufExport,
  type ExportOps,
  FenceSlots,
  KernelMapping,
  LockGraph,
} from '../dmabuf';
import { hex, type Recorder, terminal } from '../run';
import { arg, ev, type Explainable, exportVramBuffer, loc, type RuleScenario } from '../scenario';
import type { World } from '../world';

const DIRS = new Set(['DMA_TO_DEVICE', 'DMA_FROM_DEVICE', 'DMA_BIDIRECTIONAL']);
const dirOf = (v: unknown, fallback: Dir): Dir => (typeof v === 'string' && DIRS.has(v) ? (v as Dir) : fallback);
const has = (f: Explainable, op: string) => f.events.some((e) => e.op === op);

/** An accelerator whose buffers live only in its on-board memory: nothing to fall back to without peer-to-peer. */
function exportDeviceMemory(r: Recorder, w: World, dma: DmaApi): DmaBuf {
  r.step('driver', `the accelerator (${w.gpu.name}) exports 2 MiB of its on-board memory, BAR${w.gpuVram.bar!.index}: there is no system-memory copy to fall back to`, { backing: 'device memory only' });
  return new DmaBuf(r, dma, {
    size: 2 << 20,
    placement: 'VRAM',
    vramPhys: w.gpuVram.start + (64 << 20),
    vramBus: w.gpuVram.bar!.busAddress + (64 << 20),
    sysramPhys: 0x1_2340_0000,
    exporter: w.gpu,
    debug: w.dmabufDebug,
  });
}

// ------------------------------------------------------------ DMABUF-P2P-GATE

const p2pGate: RuleScenario = {
  world: { p2pPath: 'unsupported', iommu: 'translated' },
  variants: [
    { options: { p2pPath: 'switch' }, label: 'the GPU and the NIC behind one PCIe switch' },
    { options: { p2pPath: 'allowlisted' }, label: 'a host bridge on the p2pdma allowlist' },
  ],
  reference: [
    { op: 'dma_buf_attach', args: { peer2peer: false, dynamic: false } },
    { op: 'exporter_map_devmem', args: { checksPeer2peer: false, via: 'dma_map_resource()' } },
    { op: 'importer_dma' },
  ],
  run(r, w, f) {
    const dma = new DmaApi(r, w.phys, w.iommu, w.fabric);
    r.topology = w.fabric.picture(w.nic.bdf, w.gpu.bdf);
    const staticOnly = arg(f, 'static') === true;
    if (staticOnly) {
      // The importer asked for peer memory but attached statically.
      const buf = exportDeviceMemory(r, w, dma);
      const a = r.at(loc(f, 'dma_buf_attach'), () => buf.attach('T1', w.nic, { dynamic: false }));
      r.step('kernel', 'a static attachment never carries peer2peer: dma_buf_attach() passes no importer_ops, so attach->peer2peer stays false', { peer2peer: a.peer2peer });
      r.step('driver', 'the exporter has nothing but device memory and refuses to map it for an importer without peer2peer: map_dma_buf returns -EPERM');
      terminal('IO_ERROR', `every dma_buf_map_attachment() of ${w.nic.name} fails with -EPERM: the import can never work, although the importer could have taken peer memory on a dynamic attachment`, 'the import');
    }
    const buf = exportDeviceMemory(r, w, dma);
    const dynamic = ev(f, 'dma_buf_dynamic_attach') !== undefined;
    const distanceChecked = arg(f, 'distanceChecked') !== false;
    const a = r.at(loc(f, 'dma_buf_attach', 'dma_buf_dynamic_attach'), () => {
      if (dynamic && !distanceChecked) {
        // The exporter's .attach has no pci_p2pdma_distance(): nothing clears peer2peer.
        r.step('driver', 'the exporter\'s .attach does not call pci_p2pdma_distance(), so attach->peer2peer stays as the importer asked');
        return buf.attach('T1', w.nic, { dynamic: true, peer2peer: true, moveNotify: 'invalidates', exporterChecksDistance: false });
      }
      if (dynamic) return buf.attach('T1', w.nic, { dynamic, peer2peer: true, moveNotify: 'invalidates' });
      // A static attachment: no importer_ops, so attach->peer2peer stays false.
      const att = { dev: w.nic, dynamic: false, peer2peer: false, pinned: 0, mappings: [] };
      buf.attachments.push(att);
      r.step('kernel', `${w.nic.name} attaches with dma_buf_attach(): no importer_ops, so attach->peer2peer = false`, { attachments: buf.attachments.length, peer2peer: false });
      return att;
    });
    if (has(f, 'force_peer2peer')) {
      r.at(loc(f, 'force_peer2peer'), () => {
        a.peer2peer = true;
        r.step('driver', `the exporter sets attach->peer2peer = true for ${w.nic.name}, which never said it can handle memory without struct pages`, { peer2peer: true });
      });
    }
    const checks = arg(f, 'checksPeer2peer') !== false;
    const t = r.at(loc(f, 'exporter_map_devmem'), () => {
      if (checks && !a.peer2peer) {
        r.step('driver', 'the exporter sees attach->peer2peer == false and migrates the buffer to system RAM first');
        return buf.mapUnlocked('T1', a);
      }
      if (!checks) r.step('driver', `the exporter's map_dma_buf never looks at attach->peer2peer (${a.peer2peer}) and maps its VRAM for ${w.nic.name}`);
      const addr = dma.mapPhys(w.nic, buf.spec.vramPhys, buf.spec.size, `dma_map_resource(${w.nic.name}, BAR${w.gpuVram.bar!.index} + 64 MiB)`);
      r.step('driver', `the exporter returns an sg_table whose entry has sg_page() = NULL and DMA address ${hex(addr)}`, { sg_dma_address: hex(addr), 'sg_page()': 'NULL' });
      return { id: 1, entries: [{ page: 'NULL' as const, dmaAddr: addr, len: buf.spec.size }], dev: w.nic.bdf, placement: 'VRAM' };
    });
    r.at(loc(f, 'importer_dma'), () => {
      const landed = dma.deviceWrite(w.nic, t.entries[0].dmaAddr, 'a received packet');
      r.step('device', `the packet lands in ${landed}`);
    });
  },
};

// ------------------------------------------------------------ DMABUF-LIFECYCLE

const lifecycle: RuleScenario = {
  world: { cpu: 'arm64', iommu: 'translated' },
  variants: [{ options: { cpu: 'intel' }, label: 'a cache-coherent x86 machine' }],
  reference: [{ op: 'dma_buf_fd' }, { op: 'dma_buf_put', args: { afterFd: true } }, { op: 'user_uses_fd' }],
  run(r, w, f) {
    const dma = new DmaApi(r, w.phys, w.iommu, w.fabric);
    r.step('driver', 'the exporter creates a 2 MiB buffer in system RAM and exports it (dma_buf_export(): one reference, the export reference)', { refcount: 1 });
    const buf = new DmaBuf(r, dma, { size: 2 << 20, placement: 'SYSRAM', vramPhys: w.gpuVram.start, vramBus: w.gpuVram.bar!.busAddress, sysramPhys: 0x1_2340_0000, exporter: w.gpu, debug: w.dmabufDebug });
    const refs = new BufferRefs(r, buf);
    const fdEv = ev(f, 'dma_buf_fd');
    // Reference handed to an fd.
    if (fdEv && (has(f, 'user_uses_fd') || has(f, 'user_closes_fd') || arg(f, 'afterFd') === true)) {
      r.at(fdEv.span, () => refs.fdInstall(5));
      const put = f.events.find((e) => e.op === 'dma_buf_put');
      if (put) {
        r.at(put.span, () => refs.put('the driver (dma_buf_put() after dma_buf_fd())', 'fd 5'));
        r.at(loc(f, 'user_uses_fd'), () => {
          r.step('user', 'user space calls mmap(5) on the fd it was given');
          refs.use('mmap() of fd 5 (dma_buf_mmap_internal)');
        });
        return;
      }
      r.at(loc(f, 'user_closes_fd'), () => refs.close(5));
      r.at(loc(f, 'use_after_fd'), () => refs.use('the driver\'s read of the buffer after dma_buf_fd()'));
      return;
    }
    if (fdEv && arg(f, 'flags') === 0) {
      r.at(fdEv.span, () => refs.fdInstall(5));
      r.step('user', 'the process fork()s and execs a helper; the fd has no O_CLOEXEC, so exec keeps it open in the helper');
      refs.dupFd(6, 'the helper inherits the fd across fork() and exec()');
      r.step('user', 'the process closes its fd 5 when it is done with the buffer');
      refs.close(5);
      if (!refs.released) terminal('LEAK', `the exec'ed helper still holds the buffer through its inherited fd (refcount ${refs.refcount}): the memory is never freed while it runs, and it can map the buffer it was never meant to see`, 'the exported buffer');
      return;
    }
    const attachEv = ev(f, 'dma_buf_attach', 'dma_buf_dynamic_attach');
    const a = r.at(attachEv?.span, () => buf.attach('T1', w.nic, { dynamic: attachEv?.op === 'dma_buf_dynamic_attach', peer2peer: false, moveNotify: 'invalidates' }));
    const leak = arg(f, 'leaks');
    if (leak) {
      r.at(loc(f, 'return_error'), () => r.step('driver', `the error path returns without ${leak === 'attachment' ? 'dma_buf_detach()' : 'dma_buf_put()'}`));
      if (leak === 'reference') {
        refs.get('the importer (dma_buf_get())');
        r.step('user', 'the exporting process closes its fd and exits');
        refs.put('the exporter\'s last fd', 'the export reference');
        terminal('LEAK', `the buffer stays allocated forever (refcount ${refs.refcount}): the reference dma_buf_get() took is owned by nobody`, 'the exported buffer');
      }
      r.step('user', 'user space closes the last fd of the buffer');
      refs.put('close() of the last fd', 'the export reference');
      r.step('kernel', `${w.nic.name}'s leaked attachment still points at the freed struct dma_buf`);
      terminal('WARN', 'dma_buf_release() WARNs on the non-empty attachment list, then frees the buffer under the leaked attachment (and the exporter\'s per-attachment state leaks)', 'the attachment list');
    }
    const mapEv = ev(f, 'dma_buf_map_attachment', 'dma_buf_map_attachment_unlocked');
    const mapDir = dirOf(mapEv?.args?.dir, 'DMA_FROM_DEVICE');
    const t = r.at(mapEv?.span, () => buf.mapUnlocked('T1', a));
    const unmapEv = f.events.find((e) => /unmap_attachment/.test(e.op));
    if (unmapEv && arg(f, 'mappedDir')) {
      // Unmap with another direction than the map: the exporter's dma_unmap_sgtable() syncs for that direction.
      const cache = new CpuCache(r, w.cpu !== 'arm64');
      r.step('driver', `the table was mapped ${mapDir}: ${w.nic.name} will write into the buffer`);
      cache.deviceWrite(1, `${w.nic.name} (receive DMA)`);
      const unDir = dirOf(unmapEv.args?.dir, 'DMA_TO_DEVICE');
      r.at(unmapEv.span, () => cache.sync(false, unDir, cache.lines.length, `the exporter's dma_unmap_sgtable(${unDir}) (sync for the CPU)`));
      r.note('with CONFIG_DMA_API_DEBUG the unmap also prints "device driver frees DMA memory with different direction"');
      const seen = cache.cpuRead();
      r.step('cpu', `the CPU reads the received data: version ${[...new Set(seen)].join(', ')}`);
      if (seen.some((v) => v !== 1)) terminal('SILENT_CORRUPTION', `the CPU reads stale cache lines instead of what ${w.nic.name} wrote: the unmap for ${unDir} never invalidated them`, 'the received data');
      // The data survived this time; CONFIG_DMA_API_DEBUG compares the directions of map and unmap.
      r.step('kernel', `dma-debug's check_unmap() finds the entry mapped ${mapDir} and unmapped ${unDir}`, { 'mapped dir': mapDir, 'unmapped dir': unDir });
      terminal('WARN', `DMA-API: "device driver frees DMA memory with different direction [mapped as ${mapDir}] [unmapped as ${unDir}]": the cache maintenance follows the unmap's direction, which here happens to keep the data`, `${w.nic.name}'s mapping`);
    }
    const put = f.events.find((e) => e.op === 'dma_buf_put' && e.args?.attached === true);
    if (put) {
      refs.get('the importer (dma_buf_get())');
      r.step('user', 'the exporting process closes its fd');
      refs.put('the exporter\'s fd', 'the export reference');
      r.at(put.span, () => refs.put('the importer (dma_buf_put() before dma_buf_detach())', 'the importer (dma_buf_get())'));
      r.at(loc(f, 'dma_buf_detach'), () => {
        r.step('driver', 'the importer calls dma_buf_detach() on the buffer it no longer holds');
        refs.use('dma_buf_detach() (dma_resv_lock(dmabuf->resv))');
      });
      return;
    }
    // Detach while the mapping is live, then the buffer goes away.
    const orphaned = r.at(loc(f, 'dma_buf_detach'), () => detachAttachment(r, buf, a));
    r.step('user', 'user space closes the last fd of the buffer');
    refs.put('close() of the last fd', 'the export reference');
    r.at(loc(f, 'device_dma_after_detach'), () => deviceWriteOrphan(r, buf, a, orphaned[0] ?? t));
  },
};

// ------------------------------------------------------------ DMABUF-VMAP-IOMEM

const vmapIomem: RuleScenario = {
  world: { cpu: 'arm64' },
  variants: [{ options: { cpu: 'intel' }, label: 'x86' }],
  reference: [{ op: 'dma_buf_vmap_unlocked', args: { map: 'map' } }, { op: 'cpu_access_vaddr', args: { via: 'memcpy()' } }],
  run(r, w, f) {
    const dma = new DmaApi(r, w.phys, w.iommu, w.fabric);
    if (arg(f, 'oldApi') === true) {
      r.at(f.events[0]?.span, () => r.step('driver', 'the code calls dma_buf_vmap(buf) and expects the address back'));
      terminal('IO_ERROR', 'since 5.11 dma_buf_vmap() takes a struct iosys_map * and returns an int: this does not build ("too few arguments"), and a cast to make it build yields 0 as the "address"', 'the build');
    }
    const buf = exportVramBuffer(r, w, dma);
    const unchecked = arg(f, 'unchecked') === true;
    const km = new KernelMapping(r, buf, !unchecked);
    const vmapEv = ev(f, 'dma_buf_vmap', 'dma_buf_vmap_unlocked');
    const { map } = r.at(vmapEv?.span, () => km.vmap());
    if (unchecked) {
      r.step('driver', 'the caller ignores the return value and uses map.vaddr');
      r.at(loc(f, 'cpu_access_vaddr'), () => cpuPlainAccess(r, map, w.cpu, 'the access through map.vaddr'));
      return;
    }
    if (has(f, 'forge_map')) {
      r.step('driver', 'the importer keeps only map.vaddr');
      const forged = { vaddr: map.vaddr, isIomem: arg(f, 'isIomem') === true };
      r.at(loc(f, 'forge_map'), () => r.step('driver', `it rebuilds a map from that pointer: IOSYS_MAP_INIT_VADDR() says is_iomem = ${forged.isIomem}`, { 'map.is_iomem': forged.isIomem }));
      const vun = f.events.find((e) => /vunmap/.test(e.op));
      r.at(vun?.span, () => km.vunmap(forged));
      return;
    }
    if (has(f, 'vaddr_escapes')) {
      r.at(loc(f, 'vaddr_escapes'), () => r.step('driver', `map.vaddr is stored as a plain void *; is_iomem (${map.isIomem}) is lost`));
      r.step('driver', 'later code reads the frame through the stored pointer with memcpy()');
      cpuPlainAccess(r, map, w.cpu, 'memcpy() through the stored pointer');
      return;
    }
    r.at(loc(f, 'cpu_access_vaddr'), () => cpuPlainAccess(r, map, w.cpu, String(arg(f, 'via') ?? 'the access')));
  },
};

// ------------------------------------------------------------ DMABUF-CPU-ACCESS-SYNC

const cpuAccessSync: RuleScenario = {
  world: { cpu: 'arm64', iommu: 'translated' },
  variants: [{ options: { cpu: 'intel' }, label: 'a cache-coherent x86 machine' }],
  reference: [{ op: 'dma_buf_vmap_unlocked' }, { op: 'cpu_write', args: { bracketed: false } }, { op: 'device_read' }],
  run(r, w, f) {
    const coherent = w.cpu !== 'arm64';
    r.step('kernel', coherent ? 'the machine\'s DMA is cache coherent (x86 snoops)' : 'an arm64 SoC whose display/video engines are not cache coherent: every buffer the CPU touches needs cache maintenance', { coherent });
    const syncEv = ev(f, 'dma_sync');
    const role = ev(f, 'begin_cpu_access', 'end_cpu_access');
    if (syncEv && role) return exporterSync(r, w, syncEv, role.op === 'begin_cpu_access', coherent);
    const cache = new CpuCache(r, coherent);
    const begin = ev(f, 'dma_buf_begin_cpu_access');
    const end = ev(f, 'dma_buf_end_cpu_access');
    r.at(ev(f, 'dma_buf_vmap', 'dma_buf_vmap_unlocked')?.span, () => r.step('driver', 'the importer maps the buffer into the kernel (dma_buf_vmap)'));
    if (begin && end) {
      const d1 = dirOf(begin.args?.dir, 'DMA_TO_DEVICE');
      const d2 = dirOf(end.args?.dir, 'DMA_FROM_DEVICE');
      cache.deviceWrite(1, `${w.gpu.name}`);
      r.at(begin.span, () => cache.sync(false, d1, cache.lines.length, `dma_buf_begin_cpu_access(${d1}) -> the exporter's dma_sync_sgtable_for_cpu(${d1})`));
      const seen = cache.cpuRead();
      r.step('cpu', `the CPU reads the buffer first: version ${[...new Set(seen)].join(', ')}`);
      if (seen.some((v) => v !== 1)) terminal('SILENT_CORRUPTION', `the CPU works on stale cache lines: begin_cpu_access(${d1}) did not invalidate what ${w.gpu.name} wrote`, 'the CPU\'s view of the buffer');
      r.at(loc(f, 'cpu_write'), () => cache.cpuWrite(2, 'the CPU fills the buffer'));
      r.at(end.span, () => cache.sync(true, d2, cache.lines.length, `dma_buf_end_cpu_access(${d2}) -> the exporter's dma_sync_sgtable_for_device(${d2})`));
    } else {
      r.at(loc(f, 'cpu_write'), () => cache.cpuWrite(2, `the CPU writes through the mapping (${String(arg(f, 'via') ?? 'a store')}) with no begin/end_cpu_access()`));
    }
    deviceReads(r, w, cache, 2);
  },
};

function deviceReads(r: Recorder, w: World, cache: CpuCache, expect: number): void {
  const got = cache.deviceRead();
  r.step('device', `${w.gpu.name} reads the buffer from memory: version ${[...new Set(got)].join(', ')}`);
  const bad = got.filter((v) => v !== expect).length;
  if (bad) terminal('SILENT_CORRUPTION', `${w.gpu.name} reads ${bad === got.length ? 'none' : `only ${got.length - bad} of ${got.length} parts`} of what the CPU wrote: the rest never left the CPU cache`, bad === got.length ? 'the whole buffer' : 'the tail of the buffer');
  r.step('device', 'the device sees the CPU\'s data');
}

function exporterSync(r: Recorder, w: World, syncEv: CodeEvent, inBegin: boolean, coherent: boolean): void {
  const dma = new DmaApi(r, w.phys, w.iommu, w.fabric);
  const cache = new CpuCache(r, coherent, 4, 1);
  const toDevice = syncEv.args?.toDevice === true;
  const role = inBegin ? '.begin_cpu_access' : '.end_cpu_access';
  if (syncEv.args?.wrongDevice === true) {
    // The table was mapped for the importer; the exporter syncs it through its own misc device.
    const addr = dma.mapPhys(w.nic, 0x1_2340_0000, 2 << 20, `map_dma_buf: dma_map_sgtable(attach->dev = ${w.nic.name})`);
    r.at(syncEv.span, () => {
      r.step('driver', `${role} calls dma_sync_sgtable_for_${toDevice ? 'device' : 'cpu'}() with the exporter's misc device on ${w.nic.name}'s table`);
      if (w.iommu.translate({ name: 'misc', bdf: 'misc', iommu: 'translated' }, addr) === undefined) {
        r.step('kernel', `CONFIG_DMA_API_DEBUG looks ${hex(addr)} up among the misc device's mappings: there is none`);
        terminal('WARN', `DMA-API: "device driver tries to sync DMA memory it has not allocated [device address=${hex(addr)}]": the maintenance is done with another device's DMA configuration (its coherency, its swiotlb bounce buffers), not ${w.nic.name}'s`, 'cache maintenance of the buffer');
      }
    });
    return;
  }
  if (syncEv.args?.count === 'nents') {
    r.step('kernel', `the table has ${cache.lines.length} CPU entries (orig_nents); the IOMMU merged them into ${cache.nents} DMA segment (nents)`, { orig_nents: cache.lines.length, nents: cache.nents });
    if (inBegin) {
      cache.deviceWrite(1, w.gpu.name);
      r.at(syncEv.span, () => cache.sync(false, 'DMA_BIDIRECTIONAL', cache.nents, `${role}: dma_sync_sg_for_cpu(dev, sgl, sgt->nents)`));
      const seen = cache.cpuRead();
      r.step('cpu', `the CPU reads the buffer: versions ${seen.join(', ')}`);
      if (seen.some((v) => v !== 1)) terminal('SILENT_CORRUPTION', `the CPU reads stale data in ${seen.filter((v) => v !== 1).length} of ${seen.length} parts of the buffer: only the first nents entries were invalidated`, 'the tail of the buffer');
      return;
    }
    cache.cpuWrite(2, 'the CPU fills the buffer');
    r.at(syncEv.span, () => cache.sync(true, 'DMA_BIDIRECTIONAL', cache.nents, `${role}: dma_sync_sg_for_device(dev, sgl, sgt->nents)`));
    return deviceReads(r, w, cache, 2);
  }
  // Reversed direction.
  if (inBegin) {
    cache.deviceWrite(1, w.gpu.name);
    r.at(syncEv.span, () => cache.sync(true, 'DMA_BIDIRECTIONAL', cache.lines.length, `${role}: dma_sync_sgtable_for_device() (should be _for_cpu)`));
    const seen = cache.cpuRead();
    r.step('cpu', `the CPU reads the buffer: version ${[...new Set(seen)].join(', ')}`);
    if (seen.some((v) => v !== 1)) terminal('SILENT_CORRUPTION', `the CPU reads stale cache lines: begin_cpu_access wrote the cache back instead of invalidating it, so ${w.gpu.name}'s data is never seen`, 'the CPU\'s view of the buffer');
    return;
  }
  cache.cpuWrite(2, 'the CPU fills the buffer');
  r.at(syncEv.span, () => cache.sync(false, 'DMA_BIDIRECTIONAL', cache.lines.length, `${role}: dma_sync_sgtable_for_cpu() (should be _for_device)`));
  deviceReads(r, w, cache, 2);
}

// ------------------------------------------------------------ DMABUF-RESV-FAULT

const resvFault: RuleScenario = {
  world: {},
  reference: [{ op: 'dma_resv_lock' }, { op: 'user_fault', args: { via: 'copy_to_user' } }],
  run(r, w, f) {
    const locks = new LockGraph(r);
    const resv = 'bo->resv';
    if (has(f, 'dma_resv_add_fence')) {
      const slots = new FenceSlots(r, resv, 4, 4);
      r.step('kernel', 'earlier submissions left 4 fences in the buffer\'s dma_resv list, which has room for 4', { num_fences: 4, max_fences: 4 });
      r.at(loc(f, 'dma_resv_lock'), () => locks.acquire('T1', resv, 'the submission locks the buffer'));
      r.step('driver', 'the job is pushed to the ring; no dma_resv_reserve_fences() ran under this lock');
      r.at(loc(f, 'dma_resv_add_fence'), () => slots.add('the job\'s fence (a new context)'));
      return;
    }
    if (has(f, 'ww_deadlk')) {
      const dma = new DmaApi(r, w.phys, w.iommu, w.fabric);
      const buf = exportVramBuffer(r, w, dma);
      r.step('driver', 'T1, a copy job, has the source locked under its acquire context and wants the destination buffer, which lives in VRAM');
      r.step('kernel', 'T2, an eviction with an older ww ticket, already holds the destination\'s lock');
      buf.evictBegin('T2');
      r.at(loc(f, 'dma_resv_lock'), () => {
        r.step('kernel', `T1 (younger ticket) calls dma_resv_lock(dst, &ctx): ${buf.resv.name} is held by an older context, so the wound/wait algorithm returns -EDEADLK to T1 to make it back off`, { ret: '-EDEADLK', [buf.resv.name]: `held by ${buf.resv.holder}` });
        r.step('driver', 'T1 ignores the return value and goes on as if it held the lock');
      });
      r.step('driver', `T1 looks up the destination's placement (still VRAM at ${hex(buf.spec.vramPhys)}) and starts the copy engine`);
      buf.evictFinish('T2', 'a newly allocated buffer object');
      if (buf.reusedBy) terminal('SILENT_CORRUPTION', `the copy lands in VRAM at ${hex(buf.spec.vramPhys)}, which the eviction running under the lock T1 never got has just handed to ${buf.reusedBy}`, `VRAM of ${buf.reusedBy}`);
      r.step('device', 'the copy lands in the destination');
      return;
    }
    if (has(f, 'dma_fence_begin_signalling')) {
      const alloc = has(f, 'alloc_gfp_kernel');
      r.at(loc(f, 'dma_fence_begin_signalling'), () => locks.acquire('T1', 'fence F (the job fence T1 must signal)', 'dma_fence_begin_signalling(): from here T1 is on the path that signals fence F'));
      if (alloc) {
        r.at(loc(f, 'alloc_gfp_kernel'), () => {
          r.step('kernel', 'memory is low: the GFP_KERNEL allocation enters direct reclaim');
          r.step('kernel', 'the GPU driver\'s shrinker wants to evict a buffer that job F is still using and waits for fence F');
          locks.acquire('T1', 'fence F (the job fence T1 must signal)', 'in direct reclaim the shrinker calls dma_fence_wait(F)');
        });
        return;
      }
      locks.acquire('T2', resv, 'another submitter locks the buffer (dma_resv_lock())');
      r.step('kernel', 'T2, holding the lock, waits for fence F before it moves the buffer');
      locks.acquire('T2', 'fence F (the job fence T1 must signal)', 'waits for fence F under the lock (dma_fence_wait())');
      r.at(loc(f, 'dma_resv_lock'), () => locks.acquire('T1', resv, 'dma_resv_lock() inside the signalling section'));
      return;
    }
    // A user-memory fault under the reservation lock.
    const lockEv = ev(f, 'dma_resv_lock');
    r.at(lockEv?.span, () => locks.acquire('T1', resv, `the ioctl reserves the buffer with ${String(lockEv?.args?.via ?? 'dma_resv_lock')}()`));
    r.step('user', 'meanwhile another thread of the process touches a GPU mapping of the same buffer');
    locks.acquire('T2', 'mmap_lock(mm)', 'a page fault on the GPU mapping enters the fault handler');
    r.step('kernel', 'T2\'s fault handler (the driver\'s vm_fault) needs the buffer reserved to look up its placement');
    locks.acquire('T2', resv, 'the driver\'s fault handler calls dma_resv_lock()');
    const fault = ev(f, 'user_fault', 'mmap_lock');
    r.at(fault?.span, () => {
      r.step('kernel', `T1's ${String(fault?.args?.via ?? 'copy_to_user')}() faults on the user page (not yet populated)`);
      locks.acquire('T1', 'mmap_lock(mm)', 'the page fault handler needs mmap_lock to populate the page');
    });
  },
};

// ------------------------------------------------------------ DMABUF-EXPORT-OPS

const exportOps: RuleScenario = {
  world: { iommu: 'translated' },
  variants: [{ options: { iommu: 'off' }, label: 'the IOMMU off' }],
  reference: [
    { op: 'dma_buf_ops', args: { table: 'acme_ops', map_dma_buf: true, unmap_dma_buf: true, release: false, pin: false, unpin: false, cache_sgt_mapping: false } },
    { op: 'dma_buf_export', args: { problem: 'missing', missing: 'release' } },
  ],
  run(r, w, f) {
    const problem = arg(f, 'problem');
    if (problem === 'garbage-info') {
      r.at(loc(f, 'export_info_uninitialised'), () => r.step('driver', 'struct dma_buf_export_info lives on the stack uninitialised; the driver sets ops, size, flags and priv only'));
      r.at(loc(f, 'dma_buf_export'), () => dmaBufExport(r, { map_dma_buf: true, unmap_dma_buf: true, release: true, pin: false, unpin: false, cache_sgt_mapping: false }, { priv: true, resvGarbage: true }));
      return;
    }
    if (problem) {
      const ops: ExportOps = {
        map_dma_buf: arg(f, 'map_dma_buf') !== false,
        unmap_dma_buf: arg(f, 'unmap_dma_buf') !== false,
        release: arg(f, 'release') !== false,
        pin: arg(f, 'pin') === true,
        unpin: arg(f, 'unpin') === true,
        cache_sgt_mapping: arg(f, 'cache_sgt_mapping') === true,
      };
      r.at(loc(f, 'dma_buf_ops'), () => r.step('driver', `the exporter's ops: ${Object.entries(ops).filter(([, v]) => v).map(([k]) => '.' + k).join(', ') || 'none'}`));
      r.at(loc(f, 'dma_buf_export'), () => dmaBufExport(r, ops));
      return;
    }
    const dma = new DmaApi(r, w.phys, w.iommu, w.fabric);
    const phys = 0x1_2340_0000;
    if (has(f, 'return_shared_sgt')) {
      const table = { id: 1, freed: false };
      const addr = dma.mapPhys(w.nic, phys, 2 << 20, `the exporter maps its one table (sg_table #${table.id}) for the first importer, ${w.nic.name}`);
      r.at(loc(f, 'return_shared_sgt'), () => r.step('driver', `map_dma_buf hands sg_table #${table.id} (DMA address ${hex(addr)}) to ${w.nic.name} and, again, to ${w.gpu.name}`));
      if (w.gpu.iommu === 'translated' && w.iommu.translate(w.gpu, addr) === undefined) r.note(`with the IOMMU on, ${w.gpu.name}'s DMA to ${hex(addr)} faults at once: the table was mapped in ${w.nic.name}'s domain only`);
      const unmap = (who: string) => {
        r.step('driver', `${who} is done: dma_buf_unmap_attachment() -> the exporter's unmap_dma_buf unmaps and frees sg_table #${table.id}`, { [`sg_table #${table.id}`]: table.freed ? 'already freed' : 'freed' });
        if (table.freed) terminal('UAF', `the exporter unmaps and kfree()s sg_table #${table.id} a second time: double free of a table ${w.nic.name} already returned`, 'the shared sg_table');
        w.iommu.unmap(w.nic, addr);
        table.freed = true;
      };
      unmap(w.nic.name);
      unmap(w.gpu.name);
      return;
    }
    // Mapped for the exporter's own device instead of attach->dev.
    const addr = r.at(loc(f, 'exporter_dma_map'), () => dma.mapPhys(w.gpu, phys, 2 << 20, `map_dma_buf: ${String(arg(f, 'call') ?? 'dma_map_sgtable')}() for the exporter's own device ${w.gpu.name}, not attach->dev`));
    r.at(loc(f, 'importer_dma'), () => {
      r.step('driver', `${w.nic.name} (the importer) receives DMA address ${hex(addr)}, an address of ${w.gpu.name}'s IOMMU domain`);
      const landed = dma.deviceWrite(w.nic, addr, 'a received packet');
      if (!landed.includes(hex(phys))) terminal('SILENT_CORRUPTION', `the packet lands in ${landed}, not in the buffer`, landed);
      r.step('device', `the packet lands in ${landed}: without an IOMMU both devices happen to see the same physical address`);
    });
  },
};

export const dmabufScenarios: Record<string, RuleScenario> = {
  'DMABUF-P2P-GATE': p2pGate,
  'DMABUF-LIFECYCLE': lifecycle,
  'DMABUF-VMAP-IOMEM': vmapIomem,
  'DMABUF-CPU-ACCESS-SYNC': cpuAccessSync,
  'DMABUF-RESV-FAULT': resvFault,
  'DMABUF-EXPORT-OPS': exportOps,
};
