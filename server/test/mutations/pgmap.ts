/** Hazards injected into real kernel files for the pgmap family's rules. */
import type { Mutation } from './types';

export const mutations: Mutation[] = [
  // ------------------------------------------------------------ PGMAP-RANGE-SOURCE
  {
    rule: 'PGMAP-RANGE-SOURCE',
    file: 'lib/test_hmm.c',
    what: 'the free-range chunk registered as MEMORY_DEVICE_GENERIC (CPU-mapped, nothing behind it)',
    find: '\t\tdevmem->pagemap.range.start = res->start;\n\t\tdevmem->pagemap.range.end = res->end;\n\t\tdevmem->pagemap.type = MEMORY_DEVICE_PRIVATE;',
    replace: '\t\tdevmem->pagemap.range.start = res->start;\n\t\tdevmem->pagemap.range.end = res->end;\n\t\tdevmem->pagemap.type = MEMORY_DEVICE_GENERIC;',
    at: 'devmem->pagemap.range.start = res->start;',
  },
  {
    rule: 'PGMAP-RANGE-SOURCE',
    file: 'drivers/gpu/drm/amd/amdkfd/kfd_migrate.c',
    what: 'the non-XGMI branch (free range) made MEMORY_DEVICE_COHERENT',
    find: '\t\tpgmap->range.start = res->start;\n\t\tpgmap->range.end = res->end;\n\t\tpgmap->type = MEMORY_DEVICE_PRIVATE;',
    replace: '\t\tpgmap->range.start = res->start;\n\t\tpgmap->range.end = res->end;\n\t\tpgmap->type = MEMORY_DEVICE_COHERENT;',
    at: 'pgmap->range.start = res->start;',
  },
  {
    rule: 'PGMAP-RANGE-SOURCE',
    file: 'drivers/gpu/drm/nouveau/nouveau_dmem.c',
    what: 'VRAM chunk over a free range registered as MEMORY_DEVICE_PCI_P2PDMA',
    find: '\tchunk->pagemap.type = MEMORY_DEVICE_PRIVATE;\n\tchunk->pagemap.range.start = res->start;',
    replace: '\tchunk->pagemap.type = MEMORY_DEVICE_PCI_P2PDMA;\n\tchunk->pagemap.range.start = res->start;',
    at: 'chunk->pagemap.range.start = res->start;',
  },
  {
    rule: 'PGMAP-RANGE-SOURCE',
    file: 'arch/powerpc/kvm/book3s_hv_uvmem.c',
    what: 'the secure-memory pgmap over a free range made MEMORY_DEVICE_FS_DAX',
    find: '\tkvmppc_uvmem_pgmap.type = MEMORY_DEVICE_PRIVATE;\n\tkvmppc_uvmem_pgmap.range.start = res->start;',
    replace: '\tkvmppc_uvmem_pgmap.type = MEMORY_DEVICE_FS_DAX;\n\tkvmppc_uvmem_pgmap.range.start = res->start;',
    at: 'kvmppc_uvmem_pgmap.range.start = res->start;',
  },

  // ------------------------------------------------------------ PGMAP-LIFETIME
  {
    rule: 'PGMAP-LIFETIME',
    file: 'drivers/pci/p2pdma.c',
    what: 'devm_kfree() of the embedded pgmap instead of the allocation (the bug 6238784e502b fixed)',
    find: '\tdevm_kfree(&pdev->dev, p2p_pgmap);',
    replace: '\tdevm_kfree(&pdev->dev, pgmap);',
  },
  {
    rule: 'PGMAP-LIFETIME',
    file: 'drivers/gpu/drm/nouveau/nouveau_dmem.c',
    what: 'memremap_pages() result ignored',
    find: '\tptr = memremap_pages(&chunk->pagemap, numa_node_id());\n\tif (IS_ERR(ptr)) {\n\t\tret = PTR_ERR(ptr);\n\t\tgoto out_bo_unpin;\n\t}',
    replace: '\tmemremap_pages(&chunk->pagemap, numa_node_id());',
  },
  {
    rule: 'PGMAP-LIFETIME',
    file: 'lib/test_hmm.c',
    what: 'memremap_pages() tested only against NULL',
    find: '\tptr = memremap_pages(&devmem->pagemap, numa_node_id());\n\tif (IS_ERR_OR_NULL(ptr)) {\n\t\tif (ptr)\n\t\t\tret = PTR_ERR(ptr);\n\t\telse\n\t\t\tret = -EFAULT;',
    replace: '\tptr = memremap_pages(&devmem->pagemap, numa_node_id());\n\tif (!ptr) {\n\t\tret = -EFAULT;',
    at: 'ptr = memremap_pages(',
  },
  {
    rule: 'PGMAP-LIFETIME',
    file: 'fs/fuse/virtio_fs.c',
    what: 'the DAX window remap tested against NULL instead of IS_ERR()',
    find: '\tfs->window_kaddr = devm_memremap_pages(&vdev->dev, pgmap);\n\tif (IS_ERR(fs->window_kaddr))',
    replace: '\tfs->window_kaddr = devm_memremap_pages(&vdev->dev, pgmap);\n\tif (!fs->window_kaddr)',
    at: 'fs->window_kaddr = devm_memremap_pages(',
  },
  {
    rule: 'PGMAP-LIFETIME',
    file: 'drivers/xen/unpopulated-alloc.c',
    what: 'the pgmap freed on a failure after a successful remap',
    find: '\tfor (i = 0; i < alloc_pages; i++) {\n\t\tstruct page *pg = virt_to_page(vaddr + PAGE_SIZE * i);',
    replace: '\tif (!alloc_pages) {\n\t\tkfree(pgmap);\n\t\tgoto err_pgmap;\n\t}\n\tfor (i = 0; i < alloc_pages; i++) {\n\t\tstruct page *pg = virt_to_page(vaddr + PAGE_SIZE * i);',
    at: 'kfree(pgmap);',
  },

  // ------------------------------------------------------------ PGMAP-PRIVATE-CPU-ACCESS
  {
    rule: 'PGMAP-PRIVATE-CPU-ACCESS',
    file: 'drivers/gpu/drm/nouveau/nouveau_dmem.c',
    what: 'the fault path copies the device-private page with the CPU instead of the copy engine',
    find: '\tret = nouveau_dmem_copy_one(drm, spage, dpage, &dma_addr);',
    replace: '\tcopy_highpage(dpage, spage);\n\tret = 0;',
  },
  {
    rule: 'PGMAP-PRIVATE-CPU-ACCESS',
    file: 'lib/test_hmm.c',
    what: 'eviction copies the device-private page itself, not its backing page',
    find: '\t\tspage = BACKING_PAGE(spage);\n\t\tdpage = alloc_page(GFP_HIGHUSER_MOVABLE | __GFP_NOFAIL);\n\t\tlock_page(dpage);\n\t\tcopy_highpage(dpage, spage);',
    replace: '\t\tdpage = alloc_page(GFP_HIGHUSER_MOVABLE | __GFP_NOFAIL);\n\t\tlock_page(dpage);\n\t\tcopy_highpage(dpage, spage);',
    at: 'copy_highpage(dpage, spage);',
  },
  {
    rule: 'PGMAP-PRIVATE-CPU-ACCESS',
    file: 'arch/powerpc/kvm/book3s_hv_uvmem.c',
    what: 'a cache flush through the kernel mapping of the secure (device-private) page',
    find: '\tif (!is_zone_device_page(spage))\n\t\tgoto out_finalize;\n',
    replace: '\tif (!is_zone_device_page(spage))\n\t\tgoto out_finalize;\n\tflush_dcache_page(spage);\n',
    at: 'flush_dcache_page(spage);',
  },

  // ------------------------------------------------------------ PGMAP-FOREIGN-OWNER
  {
    rule: 'PGMAP-FOREIGN-OWNER',
    file: 'drivers/gpu/drm/amd/amdkfd/kfd_svm.c',
    what: 'any ZONE_DEVICE page from hmm_range_fault() taken as this driver\'s, its svm_bo read from zone_device_data',
    find: '\t\tif (is_zone_device_page(page)) {\n\t\t\tstruct amdgpu_device *bo_adev = prange->svm_bo->node->adev;',
    replace: '\t\tif (is_zone_device_page(page)) {\n\t\t\tstruct svm_range_bo *zbo = page->zone_device_data;\n\t\t\tstruct amdgpu_device *bo_adev = zbo->node->adev;',
    at: 'page->zone_device_data;',
  },
  {
    rule: 'PGMAP-FOREIGN-OWNER',
    file: 'lib/test_hmm.c',
    what: 'the snapshot treats every ZONE_DEVICE page as a dmirror chunk',
    find: '\tpage = hmm_pfn_to_page(entry);\n\tif (is_device_private_page(page)) {\n\t\t/* Is the page migrated to this device or some other? */\n\t\tif (dmirror->mdevice == dmirror_page_to_device(page))',
    replace: '\tpage = hmm_pfn_to_page(entry);\n\tif (is_zone_device_page(page)) {\n\t\t/* Is the page migrated to this device or some other? */\n\t\tif (dmirror->mdevice == dmirror_page_to_device(page))',
    at: 'if (dmirror->mdevice == dmirror_page_to_device(page))',
  },

  // ------------------------------------------------------------ PGMAP-REFCOUNT-INIT
  {
    rule: 'PGMAP-REFCOUNT-INIT',
    file: 'lib/test_hmm.c',
    what: 'a device page handed out with get_page()+lock_page() (the pre-6.1 protocol)',
    find: '\tzone_device_page_init(dpage);\n\tdpage->zone_device_data = rpage;',
    replace: '\tget_page(dpage);\n\tlock_page(dpage);\n\tdpage->zone_device_data = rpage;',
  },
  {
    rule: 'PGMAP-REFCOUNT-INIT',
    file: 'drivers/gpu/drm/nouveau/nouveau_dmem.c',
    what: 'the allocated device page only locked',
    find: '\tzone_device_page_init(page);\n\treturn page;',
    replace: '\tlock_page(page);\n\treturn page;',
  },
  {
    rule: 'PGMAP-REFCOUNT-INIT',
    file: 'arch/powerpc/kvm/book3s_hv_uvmem.c',
    what: 'the secure page handed out with get_page()',
    find: '\tdpage->zone_device_data = pvt;\n\tzone_device_page_init(dpage);',
    replace: '\tdpage->zone_device_data = pvt;\n\tget_page(dpage);',
    at: 'get_page(dpage);',
  },
  {
    rule: 'PGMAP-REFCOUNT-INIT',
    file: 'drivers/gpu/drm/nouveau/nouveau_dmem.c',
    what: 'page_free drops a reference the core already dropped',
    find: '\tspin_unlock(&dmem->lock);\n}\n\nstatic void nouveau_dmem_fence_done',
    replace: '\tspin_unlock(&dmem->lock);\n\tput_page(page);\n}\n\nstatic void nouveau_dmem_fence_done',
    at: 'put_page(page);',
  },

  // ------------------------------------------------------------ PGMAP-API-DRIFT
  {
    rule: 'PGMAP-API-DRIFT',
    file: 'drivers/gpu/drm/nouveau/nouveau_dmem.c',
    what: 'page_pgmap() (6.15) used on a 6.12 tree',
    find: '\treturn container_of(page->pgmap, struct nouveau_dmem_chunk, pagemap);',
    replace: '\treturn container_of(page_pgmap(page), struct nouveau_dmem_chunk, pagemap);',
  },
  {
    rule: 'PGMAP-API-DRIFT',
    file: 'lib/test_hmm.c',
    what: '.folio_free (the newer name) in a 6.12 dev_pagemap_ops',
    find: '\t.page_free\t= dmirror_devmem_free,',
    replace: '\t.folio_free\t= dmirror_devmem_free,',
  },
  {
    rule: 'PGMAP-API-DRIFT',
    file: 'lib/test_hmm.c',
    what: 'MIGRATE_PFN_LOCKED (removed in 5.17) ORed into a destination pfn',
    find: '\t\tdst_pfns[i] = migrate_pfn(page_to_pfn(dpage));\n\t\tif (src_pfns[i] & MIGRATE_PFN_WRITE)',
    replace: '\t\tdst_pfns[i] = migrate_pfn(page_to_pfn(dpage)) | MIGRATE_PFN_LOCKED;\n\t\tif (src_pfns[i] & MIGRATE_PFN_WRITE)',
  },

  // ------------------------------------------------------------ PGMAP-PRIVATE-AS-P2P
  {
    rule: 'PGMAP-PRIVATE-AS-P2P',
    file: 'drivers/gpu/drm/nouveau/nouveau_dmem.c',
    what: 'the device-private chunk placed over the VRAM BAR instead of a free range',
    find: '\tchunk->pagemap.range.start = res->start;\n\tchunk->pagemap.range.end = res->end;\n\tchunk->pagemap.nr_range = 1;\n\tchunk->pagemap.ops = &nouveau_dmem_pagemap_ops;\n\tchunk->pagemap.owner = drm->dev;\n\n\tret = nouveau_bo_new(&drm->client, DMEM_CHUNK_SIZE, 0,\n\t\t\t     NOUVEAU_GEM_DOMAIN_VRAM, 0, 0, NULL, NULL,\n\t\t\t     &chunk->bo);\n\tif (ret)\n\t\tgoto out_release;\n\n\tret = nouveau_bo_pin(chunk->bo, NOUVEAU_GEM_DOMAIN_VRAM, false);\n\tif (ret)\n\t\tgoto out_bo_free;\n\n\tptr = memremap_pages(&chunk->pagemap, numa_node_id());',
    replace: '\tchunk->pagemap.range.start = pci_resource_start(to_pci_dev(drm->dev->dev), 1);\n\tchunk->pagemap.range.end = chunk->pagemap.range.start + DMEM_CHUNK_SIZE - 1;\n\tchunk->pagemap.nr_range = 1;\n\tchunk->pagemap.ops = &nouveau_dmem_pagemap_ops;\n\tchunk->pagemap.owner = drm->dev;\n\n\tret = nouveau_bo_new(&drm->client, DMEM_CHUNK_SIZE, 0,\n\t\t\t     NOUVEAU_GEM_DOMAIN_VRAM, 0, 0, NULL, NULL,\n\t\t\t     &chunk->bo);\n\tif (ret)\n\t\tgoto out_release;\n\n\tret = nouveau_bo_pin(chunk->bo, NOUVEAU_GEM_DOMAIN_VRAM, false);\n\tif (ret)\n\t\tgoto out_bo_free;\n\n\tptr = memremap_pages(&chunk->pagemap, numa_node_id());',
    at: 'ptr = memremap_pages(&chunk->pagemap, numa_node_id());',
  },
  {
    rule: 'PGMAP-PRIVATE-AS-P2P',
    file: 'arch/powerpc/kvm/book3s_hv_uvmem.c',
    what: 'device-private pgmap over a PCI BAR via a local',
    find: '\tkvmppc_uvmem_pgmap.range.start = res->start;\n\tkvmppc_uvmem_pgmap.range.end = res->end;\n\tkvmppc_uvmem_pgmap.nr_range = 1;\n\tkvmppc_uvmem_pgmap.ops = &kvmppc_uvmem_ops;\n\t/* just one global instance: */\n\tkvmppc_uvmem_pgmap.owner = &kvmppc_uvmem_pgmap;\n\taddr = memremap_pages(&kvmppc_uvmem_pgmap, NUMA_NO_NODE);',
    replace: '\tkvmppc_uvmem_pgmap.range.start = pci_resource_start(uvmem_pdev, 2);\n\tkvmppc_uvmem_pgmap.range.end = kvmppc_uvmem_pgmap.range.start + size - 1;\n\tkvmppc_uvmem_pgmap.nr_range = 1;\n\tkvmppc_uvmem_pgmap.ops = &kvmppc_uvmem_ops;\n\t/* just one global instance: */\n\tkvmppc_uvmem_pgmap.owner = &kvmppc_uvmem_pgmap;\n\taddr = memremap_pages(&kvmppc_uvmem_pgmap, NUMA_NO_NODE);',
    at: 'addr = memremap_pages(&kvmppc_uvmem_pgmap, NUMA_NO_NODE);',
  },

  // ------------------------------------------------------------ PGMAP-INIT-FIELDS
  {
    rule: 'PGMAP-INIT-FIELDS',
    file: 'arch/powerpc/kvm/book3s_hv_uvmem.c',
    what: 'no owner on the device-private pgmap',
    find: '\t/* just one global instance: */\n\tkvmppc_uvmem_pgmap.owner = &kvmppc_uvmem_pgmap;\n\taddr = memremap_pages(&kvmppc_uvmem_pgmap, NUMA_NO_NODE);',
    replace: '\taddr = memremap_pages(&kvmppc_uvmem_pgmap, NUMA_NO_NODE);',
  },
  {
    rule: 'PGMAP-INIT-FIELDS',
    file: 'drivers/gpu/drm/amd/amdkfd/kfd_migrate.c',
    what: 'nr_range never set',
    find: '\tpgmap->nr_range = 1;\n\tpgmap->ops = &svm_migrate_pgmap_ops;\n\tpgmap->owner = SVM_ADEV_PGMAP_OWNER(adev);\n\tpgmap->flags = 0;\n\t/* Device manager releases device-specific resources, memory region and\n\t * pgmap when driver disconnects from device.\n\t */\n\tr = devm_memremap_pages(adev->dev, pgmap);',
    replace: '\tpgmap->ops = &svm_migrate_pgmap_ops;\n\tpgmap->owner = SVM_ADEV_PGMAP_OWNER(adev);\n\tpgmap->flags = 0;\n\t/* Device manager releases device-specific resources, memory region and\n\t * pgmap when driver disconnects from device.\n\t */\n\tr = devm_memremap_pages(adev->dev, pgmap);',
    at: 'r = devm_memremap_pages(adev->dev, pgmap);',
  },

  // ------------------------------------------------------------ PGMAP-PRIVATE-DMA-MAP
  {
    rule: 'PGMAP-PRIVATE-DMA-MAP',
    file: 'drivers/gpu/drm/nouveau/nouveau_dmem.c',
    what: 'the fault path DMA-maps the device-private source page',
    find: '\tret = nouveau_dmem_copy_one(drm, spage, dpage, &dma_addr);',
    replace: '\tdma_addr = dma_map_page(drm->dev->dev, spage, 0, PAGE_SIZE, DMA_BIDIRECTIONAL);\n\tret = dma_mapping_error(drm->dev->dev, dma_addr);',
  },
  {
    rule: 'PGMAP-PRIVATE-DMA-MAP',
    file: 'lib/test_hmm.c',
    what: 'eviction maps the collected device-private page for DMA',
    find: '\t\tspage = BACKING_PAGE(spage);\n\t\tdpage = alloc_page(GFP_HIGHUSER_MOVABLE | __GFP_NOFAIL);',
    replace: '\t\tdma_map_page(dmirror_dev(spage), spage, 0, PAGE_SIZE, DMA_TO_DEVICE);\n\t\tdpage = alloc_page(GFP_HIGHUSER_MOVABLE | __GFP_NOFAIL);',
  },
];
