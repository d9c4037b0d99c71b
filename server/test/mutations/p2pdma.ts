/** Hazards injected into real kernel files for the p2pdma family's rules. */
import type { Mutation } from './types';

export const mutations: Mutation[] = [
  // ------------------------------------------------------------ P2P-DISTANCE-UNCHECKED
  {
    rule: 'P2P-DISTANCE-UNCHECKED',
    file: 'drivers/nvme/host/pci.c',
    what: 'the CMB queue is allocated from a device looked up by ID instead of the controller itself',
    find: `	struct pci_dev *pdev = to_pci_dev(dev->dev);

	if (qid && dev->cmb_use_sqes && (dev->cmbsz & NVME_CMBSZ_SQS)) {
		nvmeq->sq_cmds = pci_alloc_p2pmem(pdev, SQ_SIZE(nvmeq));`,
    replace: `	struct pci_dev *pdev = pci_get_device(PCI_VENDOR_ID_INTEL, 0x0953, NULL);

	if (qid && dev->cmb_use_sqes && (dev->cmbsz & NVME_CMBSZ_SQS)) {
		nvmeq->sq_cmds = pci_alloc_p2pmem(pdev, SQ_SIZE(nvmeq));`,
    at: 'pci_alloc_p2pmem',
  },
  {
    rule: 'P2P-DISTANCE-UNCHECKED',
    file: 'drivers/nvme/host/pci.c',
    what: 'the CMB queue memory is DMA-mapped for another device without a distance check',
    find: `		nvmeq->sq_cmds = pci_alloc_p2pmem(pdev, SQ_SIZE(nvmeq));
		if (nvmeq->sq_cmds) {
			nvmeq->sq_dma_addr = pci_p2pmem_virt_to_bus(pdev,
							nvmeq->sq_cmds);`,
    replace: `		nvmeq->sq_cmds = pci_alloc_p2pmem(pdev, SQ_SIZE(nvmeq));
		if (nvmeq->sq_cmds) {
			nvmeq->sq_dma_addr = dma_map_single(dev->dev->parent,
							nvmeq->sq_cmds, SQ_SIZE(nvmeq), DMA_TO_DEVICE);`,
    at: 'pci_alloc_p2pmem',
  },

  // ------------------------------------------------------------ P2P-DISTANCE-BOOL
  {
    rule: 'P2P-DISTANCE-BOOL',
    file: 'drivers/gpu/drm/amd/amdgpu/amdgpu_dma_buf.c',
    what: 'the distance used as a truth value in the attach check',
    find: `	    pci_p2pdma_distance(adev->pdev, attach->dev, false) < 0)`,
    replace: `	    !pci_p2pdma_distance(adev->pdev, attach->dev, false))`,
  },
  {
    rule: 'P2P-DISTANCE-BOOL',
    file: 'drivers/accel/habanalabs/common/memory.c',
    what: 'the stored distance tested with ! instead of < 0',
    find: `	rc = pci_p2pdma_distance(hdev->pdev, attachment->dev, true);

	if (rc < 0)`,
    replace: `	rc = pci_p2pdma_distance(hdev->pdev, attachment->dev, true);

	if (!rc)`,
    at: 'if (!rc)',
  },
  {
    rule: 'P2P-DISTANCE-BOOL',
    file: 'drivers/nvme/target/core.c',
    what: 'the namespace provider check compares the distance > 0',
    find: `		ret = pci_p2pdma_distance(ns->p2p_dev, nvmet_ns_dev(ns), true);
		if (ret < 0)
			return -EINVAL;`,
    replace: `		ret = pci_p2pdma_distance(ns->p2p_dev, nvmet_ns_dev(ns), true);
		if (ret > 0)
			return -EINVAL;`,
    at: 'if (ret > 0)',
  },

  // ------------------------------------------------------------ P2P-SECOND-ALLOCATOR
  {
    rule: 'P2P-SECOND-ALLOCATOR',
    file: 'drivers/nvme/host/pci.c',
    what: 'the CMB is also handed to a driver-private gen_pool',
    find: `	if (pci_p2pdma_add_resource(pdev, bar, size, offset)) {`,
    replace: `	gen_pool_add(dev->cmb_pool, pci_resource_start(pdev, bar) + offset, size, -1);
	if (pci_p2pdma_add_resource(pdev, bar, size, offset)) {`,
    at: 'if (pci_p2pdma_add_resource',
  },
  {
    rule: 'P2P-SECOND-ALLOCATOR',
    file: 'drivers/pci/p2pdma.c',
    what: 'p2p memory registered on demand from the sysfs mmap path',
    find: `	rcu_read_lock();
	p2pdma = rcu_dereference(pdev->p2pdma);
	if (!p2pdma) {
		ret = -ENODEV;
		goto out;
	}

	kaddr = (void *)gen_pool_alloc_owner(p2pdma->pool, len, (void **)&ref);`,
    replace: `	ret = pci_p2pdma_add_resource(pdev, 0, len, 0);
	if (ret)
		return ret;

	rcu_read_lock();
	p2pdma = rcu_dereference(pdev->p2pdma);
	if (!p2pdma) {
		ret = -ENODEV;
		goto out;
	}

	kaddr = (void *)gen_pool_alloc_owner(p2pdma->pool, len, (void **)&ref);`,
  },

  // ------------------------------------------------------------ P2P-CPU-MEMCPY
  {
    rule: 'P2P-CPU-MEMCPY',
    file: 'drivers/nvme/host/pci.c',
    what: 'the CMB submission queue is cleared with memset()',
    find: `			if (nvmeq->sq_dma_addr) {
				set_bit(NVMEQ_SQ_CMB, &nvmeq->flags);`,
    replace: `			if (nvmeq->sq_dma_addr) {
				memset(nvmeq->sq_cmds, 0, SQ_SIZE(nvmeq));
				set_bit(NVMEQ_SQ_CMB, &nvmeq->flags);`,
    at: 'memset',
  },
  {
    rule: 'P2P-CPU-MEMCPY',
    file: 'drivers/pci/p2pdma.c',
    what: 'a freshly allocated p2pmem SGL buffer is zeroed with memset()',
    find: `	addr = pci_alloc_p2pmem(pdev, length);
	if (!addr)
		goto out_free_sg;
`,
    replace: `	addr = pci_alloc_p2pmem(pdev, length);
	if (!addr)
		goto out_free_sg;
	memset(addr, 0, length);
`,
    at: 'memset',
  },

  // ------------------------------------------------------------ P2P-BUS-ADDR-VS-IOMMU
  {
    rule: 'P2P-BUS-ADDR-VS-IOMMU',
    file: 'kernel/dma/direct.c',
    what: 'the map-type switch of dma_direct_map_sg() loses its default (NOT_SUPPORTED falls through to dma_direct_map_page)',
    find: `			switch (map) {
			case PCI_P2PDMA_MAP_BUS_ADDR:
				continue;
			case PCI_P2PDMA_MAP_THRU_HOST_BRIDGE:
				/*
				 * Any P2P mapping that traverses the PCI
				 * host bridge must be mapped with CPU physical
				 * address and not PCI bus addresses. This is
				 * done with dma_direct_map_page() below.
				 */
				break;
			default:
				ret = -EREMOTEIO;
				goto out_unmap;
			}`,
    replace: `			switch (map) {
			case PCI_P2PDMA_MAP_BUS_ADDR:
				continue;
			case PCI_P2PDMA_MAP_THRU_HOST_BRIDGE:
				/*
				 * Any P2P mapping that traverses the PCI
				 * host bridge must be mapped with CPU physical
				 * address and not PCI bus addresses. This is
				 * done with dma_direct_map_page() below.
				 */
				break;
			}`,
    at: 'switch (map)',
  },
  {
    rule: 'P2P-BUS-ADDR-VS-IOMMU',
    file: 'drivers/iommu/dma-iommu.c',
    what: 'the map-type switch of iommu_dma_map_sg() loses its default',
    find: `			map = pci_p2pdma_map_segment(&p2pdma_state, dev, s);
			switch (map) {
			case PCI_P2PDMA_MAP_BUS_ADDR:
				/*
				 * iommu_map_sg() will skip this segment as
				 * it is marked as a bus address,
				 * __finalise_sg() will copy the dma address
				 * into the output segment.
				 */
				continue;
			case PCI_P2PDMA_MAP_THRU_HOST_BRIDGE:
				/*
				 * Mapping through host bridge should be
				 * mapped with regular IOVAs, thus we
				 * do nothing here and continue below.
				 */
				break;
			default:
				ret = -EREMOTEIO;
				goto out_restore_sg;
			}`,
    replace: `			map = pci_p2pdma_map_segment(&p2pdma_state, dev, s);
			switch (map) {
			case PCI_P2PDMA_MAP_BUS_ADDR:
				/*
				 * iommu_map_sg() will skip this segment as
				 * it is marked as a bus address,
				 * __finalise_sg() will copy the dma address
				 * into the output segment.
				 */
				continue;
			case PCI_P2PDMA_MAP_THRU_HOST_BRIDGE:
				/*
				 * Mapping through host bridge should be
				 * mapped with regular IOVAs, thus we
				 * do nothing here and continue below.
				 */
				break;
			}`,
    at: 'switch (map)',
  },
  {
    rule: 'P2P-BUS-ADDR-VS-IOMMU',
    file: 'drivers/nvme/target/core.c',
    what: 'the target programs the command with the raw bus address of the chosen provider\'s memory',
    find: `	req->p2p_dev = p2p_dev;

	return 0;
out_free_sg:`,
    replace: `	req->p2p_dev = p2p_dev;
	req->cmd->common.dptr.prp1 = cpu_to_le64(pci_p2pmem_virt_to_bus(p2p_dev, sg_virt(req->sg)));

	return 0;
out_free_sg:`,
    at: 'pci_p2pmem_virt_to_bus',
  },

  // ------------------------------------------------------------ P2P-PUBLISH-CONTRACT
  {
    rule: 'P2P-PUBLISH-CONTRACT',
    file: 'drivers/nvme/host/pci.c',
    what: 'the CMB registration result is ignored before publishing',
    find: `	if (pci_p2pdma_add_resource(pdev, bar, size, offset)) {
		dev_warn(dev->ctrl.device,
			 "failed to register the CMB\\n");
		hi_lo_writeq(0, dev->bar + NVME_REG_CMBMSC);
		return;
	}

	dev->cmb_size = size;
	dev->cmb_use_sqes = use_cmb_sqes && (dev->cmbsz & NVME_CMBSZ_SQS);

	if ((dev->cmbsz & (NVME_CMBSZ_WDS | NVME_CMBSZ_RDS)) ==
			(NVME_CMBSZ_WDS | NVME_CMBSZ_RDS))
		pci_p2pmem_publish(pdev, true);`,
    replace: `	pci_p2pdma_add_resource(pdev, bar, size, offset);

	dev->cmb_size = size;
	dev->cmb_use_sqes = use_cmb_sqes && (dev->cmbsz & NVME_CMBSZ_SQS);

	if ((dev->cmbsz & (NVME_CMBSZ_WDS | NVME_CMBSZ_RDS)) ==
			(NVME_CMBSZ_WDS | NVME_CMBSZ_RDS))
		pci_p2pmem_publish(pdev, true);`,
    at: 'pci_p2pmem_publish',
  },
  {
    rule: 'P2P-PUBLISH-CONTRACT',
    file: 'drivers/nvme/host/pci.c',
    what: 'the registration failure is only logged and the CMB is published anyway',
    find: `	if (pci_p2pdma_add_resource(pdev, bar, size, offset)) {
		dev_warn(dev->ctrl.device,
			 "failed to register the CMB\\n");
		hi_lo_writeq(0, dev->bar + NVME_REG_CMBMSC);
		return;
	}

	dev->cmb_size = size;
	dev->cmb_use_sqes = use_cmb_sqes && (dev->cmbsz & NVME_CMBSZ_SQS);

	if ((dev->cmbsz & (NVME_CMBSZ_WDS | NVME_CMBSZ_RDS)) ==
			(NVME_CMBSZ_WDS | NVME_CMBSZ_RDS))
		pci_p2pmem_publish(pdev, true);`,
    replace: `	if (pci_p2pdma_add_resource(pdev, bar, size, offset))
		dev_warn(dev->ctrl.device,
			 "failed to register the CMB\\n");

	dev->cmb_size = size;
	dev->cmb_use_sqes = use_cmb_sqes && (dev->cmbsz & NVME_CMBSZ_SQS);

	if ((dev->cmbsz & (NVME_CMBSZ_WDS | NVME_CMBSZ_RDS)) ==
			(NVME_CMBSZ_WDS | NVME_CMBSZ_RDS))
		pci_p2pmem_publish(pdev, true);`,
    at: 'pci_p2pmem_publish',
  },
  {
    rule: 'P2P-PUBLISH-CONTRACT',
    file: 'drivers/nvme/host/pci.c',
    what: 'the CMB is published before it is registered',
    find: `	if (pci_p2pdma_add_resource(pdev, bar, size, offset)) {
		dev_warn(dev->ctrl.device,`,
    replace: `	pci_p2pmem_publish(pdev, true);
	if (pci_p2pdma_add_resource(pdev, bar, size, offset)) {
		dev_warn(dev->ctrl.device,`,
  },

  // ------------------------------------------------------------ P2P-ALLOC-FREE-MISMATCH
  {
    rule: 'P2P-ALLOC-FREE-MISMATCH',
    file: 'drivers/nvme/host/pci.c',
    what: 'the CMB queue is freed with half its size when the bus address lookup fails',
    find: `			pci_free_p2pmem(pdev, nvmeq->sq_cmds, SQ_SIZE(nvmeq));`,
    replace: `			pci_free_p2pmem(pdev, nvmeq->sq_cmds, SQ_SIZE(nvmeq) / 2);`,
  },
  {
    rule: 'P2P-ALLOC-FREE-MISMATCH',
    file: 'drivers/nvme/target/core.c',
    what: 'the data SGL from pci_p2pmem_alloc_sgl() is kfree()d on the metadata failure path',
    find: `out_free_sg:
	pci_p2pmem_free_sgl(p2p_dev, req->sg);`,
    replace: `out_free_sg:
	kfree(req->sg);`,
    at: 'kfree',
  },
  {
    rule: 'P2P-ALLOC-FREE-MISMATCH',
    file: 'drivers/nvme/target/core.c',
    what: 'the data SGL is returned with pci_free_p2pmem() as if it were a buffer',
    find: `out_free_sg:
	pci_p2pmem_free_sgl(p2p_dev, req->sg);`,
    replace: `out_free_sg:
	pci_free_p2pmem(p2p_dev, req->sg, nvmet_data_transfer_len(req));`,
    at: 'pci_free_p2pmem',
  },
  {
    rule: 'P2P-ALLOC-FREE-MISMATCH',
    file: 'drivers/pci/p2pdma.c',
    what: 'pci_p2pmem_alloc_sgl() frees its buffer with the wrong size on a (new) error path',
    find: `	sg_set_buf(sg, addr, length);
	*nents = 1;
	return sg;`,
    replace: `	if (length > SZ_1G) {
		pci_free_p2pmem(pdev, addr, length / 2);
		goto out_free_sg;
	}
	sg_set_buf(sg, addr, length);
	*nents = 1;
	return sg;`,
    at: 'pci_free_p2pmem',
  },

  // ------------------------------------------------------------ P2P-REF-ERRPATH
  {
    rule: 'P2P-REF-ERRPATH',
    file: 'drivers/pci/p2pdma.c',
    what: 'before 6220694c52a5: the pgmap reference is not released when vm_insert_page() fails',
    find: `	if (unlikely(!percpu_ref_tryget_live_rcu(ref))) {
		ret = -ENODEV;
		goto out_free_mem;
	}
	rcu_read_unlock();

	for (vaddr = vma->vm_start; vaddr < vma->vm_end; vaddr += PAGE_SIZE) {
		ret = vm_insert_page(vma, vaddr, virt_to_page(kaddr));
		if (ret) {
			gen_pool_free(p2pdma->pool, (uintptr_t)kaddr, len);
			percpu_ref_put(ref);
			return ret;
		}`,
    replace: `	if (unlikely(!percpu_ref_tryget_live_rcu(ref))) {
		ret = -ENODEV;
		goto out_free_mem;
	}
	rcu_read_unlock();

	for (vaddr = vma->vm_start; vaddr < vma->vm_end; vaddr += PAGE_SIZE) {
		ret = vm_insert_page(vma, vaddr, virt_to_page(kaddr));
		if (ret) {
			gen_pool_free(p2pdma->pool, (uintptr_t)kaddr, len);
			return ret;
		}`,
    at: 'percpu_ref_tryget_live_rcu',
  },
  {
    rule: 'P2P-REF-ERRPATH',
    file: 'drivers/pci/p2pdma.c',
    what: 'before 83014d82a110 (6.15+ refcount scheme): the page count set to 1 is not reset when vm_insert_page() fails',
    find: `	for (vaddr = vma->vm_start; vaddr < vma->vm_end; vaddr += PAGE_SIZE) {
		ret = vm_insert_page(vma, vaddr, virt_to_page(kaddr));
		if (ret) {
			gen_pool_free(p2pdma->pool, (uintptr_t)kaddr, len);
			percpu_ref_put(ref);
			return ret;
		}
		percpu_ref_get(ref);
		put_page(virt_to_page(kaddr));`,
    replace: `	for (vaddr = vma->vm_start; vaddr < vma->vm_end; vaddr += PAGE_SIZE) {
		struct page *page = virt_to_page(kaddr);

		VM_WARN_ON_ONCE_PAGE(page_ref_count(page), page);
		set_page_count(page, 1);
		ret = vm_insert_page(vma, vaddr, page);
		if (ret) {
			gen_pool_free(p2pdma->pool, (uintptr_t)kaddr, len);
			percpu_ref_put(ref);
			return ret;
		}
		percpu_ref_get(ref);
		put_page(page);`,
    at: 'set_page_count',
  },
  {
    rule: 'P2P-REF-ERRPATH',
    file: 'drivers/pci/p2pdma.c',
    what: 'the page count is undone with put_page(), which frees the page to the pool a second time',
    find: `	for (vaddr = vma->vm_start; vaddr < vma->vm_end; vaddr += PAGE_SIZE) {
		ret = vm_insert_page(vma, vaddr, virt_to_page(kaddr));
		if (ret) {
			gen_pool_free(p2pdma->pool, (uintptr_t)kaddr, len);
			percpu_ref_put(ref);
			return ret;
		}`,
    replace: `	for (vaddr = vma->vm_start; vaddr < vma->vm_end; vaddr += PAGE_SIZE) {
		struct page *page = virt_to_page(kaddr);

		set_page_count(page, 1);
		ret = vm_insert_page(vma, vaddr, page);
		if (ret) {
			put_page(page);
			gen_pool_free(p2pdma->pool, (uintptr_t)kaddr, len);
			percpu_ref_put(ref);
			return ret;
		}`,
    at: 'put_page',
  },

  // ------------------------------------------------------------ P2P-DMA-MAP-API
  {
    rule: 'P2P-DMA-MAP-API',
    file: 'drivers/nvme/host/pci.c',
    what: 'the request is mapped with the p2pdma helper removed in 6.0',
    find: `	rc = dma_map_sgtable(dev->dev, &iod->sgt, rq_dma_dir(req),
			     DMA_ATTR_NO_WARN);`,
    replace: `	rc = pci_p2pdma_map_sg(dev->dev, iod->sgt.sgl, iod->sgt.orig_nents,
			     rq_dma_dir(req));`,
  },
  {
    rule: 'P2P-DMA-MAP-API',
    file: 'drivers/nvme/host/pci.c',
    what: 'dma_map_sg() failure tested with < 0',
    find: `	rc = dma_map_sgtable(dev->dev, &iod->sgt, rq_dma_dir(req),
			     DMA_ATTR_NO_WARN);
	if (rc) {`,
    replace: `	rc = dma_map_sg(dev->dev, iod->sgt.sgl, iod->sgt.orig_nents,
			     rq_dma_dir(req));
	if (rc < 0) {`,
    at: 'if (rc < 0)',
  },
  {
    rule: 'P2P-DMA-MAP-API',
    file: 'drivers/nvme/target/io-cmd-bdev.c',
    what: 'a p2p data page is mapped with dma_map_page() right after is_pci_p2pdma_page() identified it',
    find: `	if (is_pci_p2pdma_page(sg_page(req->sg)))
		opf |= REQ_NOMERGE;`,
    replace: `	if (is_pci_p2pdma_page(sg_page(req->sg))) {
		opf |= REQ_NOMERGE;
		req->p2p_dma = dma_map_page(bdev_get_queue(req->ns->bdev)->dma_dev, sg_page(req->sg), 0, PAGE_SIZE, DMA_TO_DEVICE);
	}`,
    at: 'dma_map_page',
  },
  {
    rule: 'P2P-DMA-MAP-API',
    file: 'drivers/nvme/host/pci.c',
    what: 'the CMB queue is mapped for the controller with dma_map_single()',
    find: `			nvmeq->sq_dma_addr = pci_p2pmem_virt_to_bus(pdev,
							nvmeq->sq_cmds);`,
    replace: `			nvmeq->sq_dma_addr = dma_map_single(dev->dev,
							nvmeq->sq_cmds, SQ_SIZE(nvmeq), DMA_TO_DEVICE);`,
  },

  // ------------------------------------------------------------ P2P-ACS-TAMPER
  {
    rule: 'P2P-ACS-TAMPER',
    file: 'drivers/nvme/host/pci.c',
    what: 'the NVMe driver clears ACS control on its upstream bridge before registering the CMB',
    find: `	if (pci_p2pdma_add_resource(pdev, bar, size, offset)) {`,
    replace: `	if (pdev->bus->self && pdev->bus->self->acs_cap)
		pci_write_config_word(pdev->bus->self, pdev->bus->self->acs_cap + PCI_ACS_CTRL, 0);
	if (pci_p2pdma_add_resource(pdev, bar, size, offset)) {`,
    at: 'pci_write_config_word',
  },
  {
    rule: 'P2P-ACS-TAMPER',
    file: 'drivers/gpu/drm/xe/xe_dma_buf.c',
    what: 'the exporter hides the ACS capability of the bridge above it before asking for the distance',
    find: `	struct drm_gem_object *obj = attach->dmabuf->priv;

	if (attach->peer2peer &&`,
    replace: `	struct drm_gem_object *obj = attach->dmabuf->priv;
	struct pci_dev *up = pci_upstream_bridge(to_pci_dev(obj->dev->dev));

	if (up)
		up->acs_cap = 0;
	if (attach->peer2peer &&`,
    at: 'up->acs_cap = 0',
  },
  {
    rule: 'P2P-ACS-TAMPER',
    file: 'drivers/pci/p2pdma.c',
    what: 'the PCI core turns ACS redirect off while checking for it (a review hint in the core)',
    find: `	pci_read_config_word(pdev, pos + PCI_ACS_CTRL, &ctrl);
`,
    replace: `	pci_read_config_word(pdev, pos + PCI_ACS_CTRL, &ctrl);
	pci_write_config_word(pdev, pos + PCI_ACS_CTRL, ctrl & ~(PCI_ACS_RR | PCI_ACS_CR));
`,
    at: 'pci_write_config_word',
  },
];
