/** Hazards injected into real kernel files for the dmabuf family's rules. */
import type { Mutation } from './types';

export const mutations: Mutation[] = [
  // ------------------------------------------------------------ DMABUF-LOCKING
  {
    rule: 'DMABUF-LOCKING',
    file: 'drivers/infiniband/core/umem_dmabuf.c',
    what: 'the unlocked map variant inside a function that runs with the reservation lock held',
    find: `	sgt = dma_buf_map_attachment(umem_dmabuf->attach,
				     DMA_BIDIRECTIONAL);`,
    replace: `	sgt = dma_buf_map_attachment_unlocked(umem_dmabuf->attach,
					      DMA_BIDIRECTIONAL);`,
  },
  {
    rule: 'DMABUF-LOCKING',
    file: 'net/core/devmem.c',
    what: 'the locked map variant without taking the reservation lock',
    find: `	binding->sgt = dma_buf_map_attachment_unlocked(binding->attachment,
						       DMA_FROM_DEVICE);`,
    replace: `	binding->sgt = dma_buf_map_attachment(binding->attachment,
					      DMA_FROM_DEVICE);`,
  },
  {
    rule: 'DMABUF-LOCKING',
    file: 'drivers/iio/industrialio-buffer.c',
    what: 'unmap with the locked variant after the reservation lock was dropped',
    find: `	dma_resv_lock(dmabuf->resv, NULL);
	dma_buf_unmap_attachment(attach, priv->sgt, priv->dir);
	dma_resv_unlock(dmabuf->resv);`,
    replace: `	dma_buf_unmap_attachment(attach, priv->sgt, priv->dir);`,
  },

  // ------------------------------------------------------------ DMABUF-SG-PAGE
  {
    rule: 'DMABUF-SG-PAGE',
    file: 'net/core/devmem.c',
    what: 'walking the CPU entries of the imported table',
    find: `	for_each_sgtable_dma_sg(binding->sgt, sg, sg_idx) {`,
    replace: `	for_each_sgtable_sg(binding->sgt, sg, sg_idx) {`,
  },
  {
    rule: 'DMABUF-SG-PAGE',
    file: 'drivers/infiniband/core/umem_dmabuf.c',
    what: 'the physical address of an imported entry instead of its DMA address',
    find: `		if (start < cur + sg_dma_len(sg) && cur < end)
			nmap++;`,
    replace: `		if (start < cur + sg_dma_len(sg) && cur < end && sg_phys(sg))
			nmap++;`,
  },

  // ------------------------------------------------------------ DMABUF-ERRPTR
  {
    rule: 'DMABUF-ERRPTR',
    file: 'net/core/devmem.c',
    what: 'dma_buf_attach() result tested as NULL',
    find: `	if (IS_ERR(binding->attachment)) {
		err = PTR_ERR(binding->attachment);`,
    replace: `	if (!binding->attachment) {
		err = -ENOMEM;`,
  },
  {
    rule: 'DMABUF-ERRPTR',
    file: 'drivers/gpu/drm/drm_prime.c',
    what: 'imported table tested as NULL',
    find: `	sgt = dma_buf_map_attachment_unlocked(attach, DMA_BIDIRECTIONAL);
	if (IS_ERR(sgt)) {
		ret = PTR_ERR(sgt);
		goto fail_detach;
	}`,
    replace: `	sgt = dma_buf_map_attachment_unlocked(attach, DMA_BIDIRECTIONAL);
	if (!sgt) {
		ret = -ENOMEM;
		goto fail_detach;
	}`,
    at: 'if (!sgt) {',
  },

  // ------------------------------------------------------------ DMABUF-MOVE-NOTIFY
  {
    rule: 'DMABUF-MOVE-NOTIFY',
    file: 'drivers/gpu/drm/xe/xe_dma_buf.c',
    what: 'a peer-to-peer importer whose move_notify only logs',
    find: `static void xe_dma_buf_move_notify(struct dma_buf_attachment *attach)
{
	struct drm_gem_object *obj = attach->importer_priv;
	struct xe_bo *bo = gem_to_xe_bo(obj);

	XE_WARN_ON(xe_bo_evict(bo, false));
}`,
    replace: `static void xe_dma_buf_move_notify(struct dma_buf_attachment *attach)
{
	struct drm_gem_object *obj = attach->importer_priv;

	drm_dbg(obj->dev, "dma-buf %p moved\\n", attach->dmabuf);
}`,
    at: 'static void xe_dma_buf_move_notify(struct dma_buf_attachment *attach)',
  },
  {
    rule: 'DMABUF-MOVE-NOTIFY',
    file: 'drivers/gpu/drm/amd/amdgpu/amdgpu_dma_buf.c',
    what: 'an unbounded fence wait inside move_notify',
    find: `	r = ttm_bo_validate(&bo->tbo, &placement, &ctx);
	if (r) {
		DRM_ERROR("Failed to invalidate DMA-buf import (%d))\\n", r);`,
    replace: `	dma_fence_wait(bo->tbo.base.resv->fences_moving, false);
	r = ttm_bo_validate(&bo->tbo, &placement, &ctx);
	if (r) {
		DRM_ERROR("Failed to invalidate DMA-buf import (%d))\\n", r);`,
  },

  // ------------------------------------------------------------ DMABUF-PIN-BALANCE
  {
    rule: 'DMABUF-PIN-BALANCE',
    file: 'drivers/infiniband/core/umem_dmabuf.c',
    what: 'the pre-104016eb671e double unpin on the map failure path',
    find: `	err = ib_umem_dmabuf_map_pages(umem_dmabuf);
	if (err)
		goto err_release;

	return umem_dmabuf;

err_release:`,
    replace: `	err = ib_umem_dmabuf_map_pages(umem_dmabuf);
	if (err)
		goto err_unpin;

	return umem_dmabuf;

err_unpin:
	dma_buf_unpin(umem_dmabuf->attach);
err_release:`,
    at: 'dma_buf_unpin(umem_dmabuf->attach);',
  },
  {
    rule: 'DMABUF-PIN-BALANCE',
    file: 'drivers/infiniband/core/umem_dmabuf.c',
    what: 'the pinned flag never set: release does not unpin after a map failure',
    find: `	err = dma_buf_pin(umem_dmabuf->attach);
	if (err)
		goto err_release;
	umem_dmabuf->pinned = 1;
`,
    replace: `	err = dma_buf_pin(umem_dmabuf->attach);
	if (err)
		goto err_release;
`,
    at: 'err = dma_buf_pin(umem_dmabuf->attach);',
  },

  // ------------------------------------------------------------ DMABUF-LIFECYCLE
  {
    rule: 'DMABUF-LIFECYCLE',
    file: 'net/core/devmem.c',
    what: 'error unwinding that detaches without unmapping first',
    find: `err_unmap:
	dma_buf_unmap_attachment_unlocked(binding->attachment, binding->sgt,
					  DMA_FROM_DEVICE);
err_detach:
	dma_buf_detach(dmabuf, binding->attachment);`,
    replace: `err_unmap:
err_detach:
	dma_buf_detach(dmabuf, binding->attachment);`,
    at: 'dma_buf_detach(dmabuf, binding->attachment);',
  },
  {
    rule: 'DMABUF-LIFECYCLE',
    file: 'net/core/devmem.c',
    what: 'the binding teardown unmaps with another direction than the bind mapped with',
    find: `	dma_buf_unmap_attachment_unlocked(binding->attachment, binding->sgt,
					  DMA_FROM_DEVICE);
	dma_buf_detach(binding->dmabuf, binding->attachment);`,
    replace: `	dma_buf_unmap_attachment_unlocked(binding->attachment, binding->sgt,
					  DMA_BIDIRECTIONAL);
	dma_buf_detach(binding->dmabuf, binding->attachment);`,
    at: 'dma_buf_unmap_attachment_unlocked(binding->attachment, binding->sgt,',
  },
  {
    rule: 'DMABUF-LIFECYCLE',
    file: 'drivers/gpu/drm/drm_prime.c',
    what: 'a map failure that returns without detaching',
    find: `	attach = dma_buf_attach(dma_buf, attach_dev);
	if (IS_ERR(attach))
		return ERR_CAST(attach);

	get_dma_buf(dma_buf);

	sgt = dma_buf_map_attachment_unlocked(attach, DMA_BIDIRECTIONAL);
	if (IS_ERR(sgt)) {
		ret = PTR_ERR(sgt);
		goto fail_detach;
	}`,
    replace: `	attach = dma_buf_attach(dma_buf, attach_dev);
	if (IS_ERR(attach))
		return ERR_CAST(attach);

	get_dma_buf(dma_buf);

	sgt = dma_buf_map_attachment_unlocked(attach, DMA_BIDIRECTIONAL);
	if (IS_ERR(sgt))
		return ERR_CAST(sgt);`,
    at: 'attach = dma_buf_attach(dma_buf, attach_dev);',
  },
  {
    rule: 'DMABUF-LIFECYCLE',
    file: 'drivers/dma-buf/udmabuf.c',
    what: 'the export reference dropped after dma_buf_fd() succeeded',
    find: `	ret = dma_buf_fd(dmabuf, flags);
	if (ret < 0)
		dma_buf_put(dmabuf);

	return ret;`,
    replace: `	ret = dma_buf_fd(dmabuf, flags);
	dma_buf_put(dmabuf);

	return ret;`,
    at: 'dma_buf_put(dmabuf);',
  },
  {
    rule: 'DMABUF-LIFECYCLE',
    file: 'drivers/iio/industrialio-buffer.c',
    what: 'the attach error unwinding skips dma_buf_detach()',
    find: `	attach = dma_buf_attach(dmabuf, dma_dev);
	if (IS_ERR(attach)) {
		err = PTR_ERR(attach);
		goto err_dmabuf_put;
	}

	err = iio_dma_resv_lock(dmabuf, nonblock);
	if (err)
		goto err_dmabuf_detach;`,
    replace: `	attach = dma_buf_attach(dmabuf, dma_dev);
	if (IS_ERR(attach)) {
		err = PTR_ERR(attach);
		goto err_dmabuf_put;
	}

	err = iio_dma_resv_lock(dmabuf, nonblock);
	if (err)
		goto err_dmabuf_put;`,
    at: 'attach = dma_buf_attach(dmabuf, dma_dev);',
  },

  // ------------------------------------------------------------ DMABUF-P2P-GATE
  {
    rule: 'DMABUF-P2P-GATE',
    file: 'drivers/gpu/drm/xe/xe_dma_buf.c',
    what: 'the exporter honours peer2peer without the pci_p2pdma_distance() check',
    find: `static int xe_dma_buf_attach(struct dma_buf *dmabuf,
			     struct dma_buf_attachment *attach)
{
	struct drm_gem_object *obj = attach->dmabuf->priv;

	if (attach->peer2peer &&
	    pci_p2pdma_distance(to_pci_dev(obj->dev->dev), attach->dev, false) < 0)
		attach->peer2peer = false;

`,
    replace: `static int xe_dma_buf_attach(struct dma_buf *dmabuf,
			     struct dma_buf_attachment *attach)
{
	struct drm_gem_object *obj = attach->dmabuf->priv;

`,
    at: 'static int xe_dma_buf_attach(struct dma_buf *dmabuf,',
  },
  {
    rule: 'DMABUF-P2P-GATE',
    file: 'drivers/gpu/drm/amd/amdgpu/amdgpu_dma_buf.c',
    what: 'the exporter forces peer2peer on',
    find: `	    bo->flags & AMDGPU_GEM_CREATE_GFX12_DCC)
		attach->peer2peer = false;`,
    replace: `	    bo->flags & AMDGPU_GEM_CREATE_GFX12_DCC)
		attach->peer2peer = true;`,
    at: 'attach->peer2peer = true;',
  },

  // ------------------------------------------------------------ DMABUF-VMAP-IOMEM
  {
    rule: 'DMABUF-VMAP-IOMEM',
    file: 'drivers/gpu/drm/drm_gem_shmem_helper.c',
    what: 'vunmap with a map rebuilt from the pointer',
    find: `	if (obj->import_attach) {
		dma_buf_vunmap(obj->import_attach->dmabuf, map);
	} else {`,
    replace: `	if (obj->import_attach) {
		struct iosys_map vmap = IOSYS_MAP_INIT_VADDR(map->vaddr);

		dma_buf_vunmap(obj->import_attach->dmabuf, &vmap);
	} else {`,
    at: 'dma_buf_vunmap(obj->import_attach->dmabuf, &vmap);',
  },
  {
    rule: 'DMABUF-VMAP-IOMEM',
    file: 'drivers/gpu/drm/etnaviv/etnaviv_gem_prime.c',
    what: 'the dma_buf_vmap() error code ignored',
    find: `	ret = dma_buf_vmap(etnaviv_obj->base.import_attach->dmabuf, &map);
	if (ret)
		return NULL;
	return map.vaddr;`,
    replace: `	dma_buf_vmap(etnaviv_obj->base.import_attach->dmabuf, &map);
	return map.vaddr;`,
  },
  {
    rule: 'DMABUF-VMAP-IOMEM',
    file: 'drivers/gpu/drm/drm_gem_dma_helper.c',
    what: 'clearing the imported buffer with memset() on map.vaddr',
    find: `	dma_obj = to_drm_gem_dma_obj(obj);
	dma_obj->vaddr = map.vaddr;`,
    replace: `	dma_obj = to_drm_gem_dma_obj(obj);
	memset(map.vaddr, 0, attach->dmabuf->size);
	dma_obj->vaddr = map.vaddr;`,
  },

  // ------------------------------------------------------------ DMABUF-CPU-ACCESS-SYNC
  {
    rule: 'DMABUF-CPU-ACCESS-SYNC',
    file: 'drivers/dma-buf/heaps/system_heap.c',
    what: 'begin_cpu_access syncs with sgt->nents instead of orig_nents',
    find: `		dma_sync_sgtable_for_cpu(a->dev, a->table, direction);`,
    replace: `		dma_sync_sg_for_cpu(a->dev, a->table->sgl, a->table->nents, direction);`,
  },
  {
    rule: 'DMABUF-CPU-ACCESS-SYNC',
    file: 'drivers/dma-buf/heaps/cma_heap.c',
    what: 'end_cpu_access syncs for the CPU instead of the device',
    find: `		dma_sync_sgtable_for_device(a->dev, &a->table, direction);`,
    replace: `		dma_sync_sgtable_for_cpu(a->dev, &a->table, direction);`,
  },
  {
    rule: 'DMABUF-CPU-ACCESS-SYNC',
    file: 'drivers/dma-buf/udmabuf.c',
    what: 'begin_cpu_access syncs for the device (the 1ffe09590121 bug)',
    find: `	dma_sync_sgtable_for_cpu(dev, ubuf->sg, direction);`,
    replace: `	dma_sync_sgtable_for_device(dev, ubuf->sg, direction);`,
  },
  {
    rule: 'DMABUF-CPU-ACCESS-SYNC',
    file: 'drivers/gpu/drm/drm_gem_dma_helper.c',
    what: 'a CPU clear of the import through the vmap without begin/end_cpu_access()',
    find: `	dma_obj = to_drm_gem_dma_obj(obj);
	dma_obj->vaddr = map.vaddr;`,
    replace: `	dma_obj = to_drm_gem_dma_obj(obj);
	iosys_map_memset(&map, 0, 0, attach->dmabuf->size);
	dma_obj->vaddr = map.vaddr;`,
  },

  // ------------------------------------------------------------ DMABUF-RESV-FAULT
  {
    rule: 'DMABUF-RESV-FAULT',
    file: 'drivers/gpu/drm/amd/amdgpu/amdgpu_gem.c',
    what: 'copy_to_user() before dropping the reservation',
    find: `		amdgpu_bo_unreserve(robj);
		if (copy_to_user(out, &info, sizeof(info)))
			r = -EFAULT;
		break;`,
    replace: `		if (copy_to_user(out, &info, sizeof(info)))
			r = -EFAULT;
		amdgpu_bo_unreserve(robj);
		break;`,
  },
  {
    rule: 'DMABUF-RESV-FAULT',
    file: 'drivers/iio/industrialio-buffer.c',
    what: 'the fence added without reserving a slot',
    find: `	ret = dma_resv_reserve_fences(dmabuf->resv, 1);
	if (ret)
		goto err_queue_unlock;

	dma_resv_add_fence(dmabuf->resv, &fence->base,`,
    replace: `	dma_resv_add_fence(dmabuf->resv, &fence->base,`,
  },
  {
    rule: 'DMABUF-RESV-FAULT',
    file: 'drivers/gpu/drm/drm_mode_config.c',
    what: 'a ww-context lock whose -EDEADLK is ignored',
    find: `		ret = dma_resv_lock(&resv, &resv_ctx);
		if (ret == -EDEADLK)
			dma_resv_lock_slow(&resv, &resv_ctx);`,
    replace: `		dma_resv_lock(&resv, &resv_ctx);`,
  },
  {
    rule: 'DMABUF-RESV-FAULT',
    file: 'drivers/usb/gadget/function/f_fs.c',
    what: 'a sleeping allocation inside the fence-signalling section',
    find: `	ret = usb_ep_queue(ep->ep, usb_req, GFP_ATOMIC);
	dma_fence_end_signalling(cookie);`,
    replace: `	ret = usb_ep_queue(ep->ep, usb_req, GFP_KERNEL);
	dma_fence_end_signalling(cookie);`,
  },

  // ------------------------------------------------------------ DMABUF-EXPORT-OPS
  {
    rule: 'DMABUF-EXPORT-OPS',
    file: 'drivers/dma-buf/udmabuf.c',
    what: 'a second ops table for read-only exports that forgot .release',
    find: `static struct dma_buf *export_udmabuf(struct udmabuf *ubuf,
				      struct miscdevice *device)
{
	DEFINE_DMA_BUF_EXPORT_INFO(exp_info);

	ubuf->device = device;
	exp_info.ops  = &udmabuf_ops;`,
    replace: `static const struct dma_buf_ops udmabuf_ro_ops = {
	.cache_sgt_mapping = true,
	.map_dma_buf	   = map_udmabuf,
	.unmap_dma_buf	   = unmap_udmabuf,
	.mmap		   = mmap_udmabuf,
};

static struct dma_buf *export_udmabuf(struct udmabuf *ubuf,
				      struct miscdevice *device)
{
	DEFINE_DMA_BUF_EXPORT_INFO(exp_info);

	ubuf->device = device;
	exp_info.ops  = &udmabuf_ro_ops;`,
    at: 'exp_info.ops  = &udmabuf_ro_ops;',
  },
  {
    rule: 'DMABUF-EXPORT-OPS',
    file: 'drivers/dma-buf/heaps/cma_heap.c',
    what: 'the export info declared without DEFINE_DMA_BUF_EXPORT_INFO()',
    find: `	struct cma_heap_buffer *buffer;
	DEFINE_DMA_BUF_EXPORT_INFO(exp_info);`,
    replace: `	struct cma_heap_buffer *buffer;
	struct dma_buf_export_info exp_info;`,
  },
  {
    rule: 'DMABUF-EXPORT-OPS',
    file: 'drivers/dma-buf/heaps/cma_heap.c',
    what: 'map_dma_buf maps for the heap device instead of the importer',
    find: `	struct dma_heap_attachment *a = attachment->priv;
	struct sg_table *table = &a->table;
	int ret;

	ret = dma_map_sgtable(attachment->dev, table, direction, 0);`,
    replace: `	struct cma_heap_buffer *buffer = attachment->dmabuf->priv;
	struct dma_heap_attachment *a = attachment->priv;
	struct sg_table *table = &a->table;
	int ret;

	ret = dma_map_sgtable(dma_heap_get_dev(buffer->heap->heap), table, direction, 0);`,
    at: 'ret = dma_map_sgtable(dma_heap_get_dev',
  },
  {
    rule: 'DMABUF-EXPORT-OPS',
    file: 'drivers/gpu/drm/amd/amdgpu/amdgpu_dma_buf.c',
    what: 'pin without unpin in the exporter ops',
    find: `const struct dma_buf_ops amdgpu_dmabuf_ops = {
	.attach = amdgpu_dma_buf_attach,
	.detach = amdgpu_dma_buf_detach,
	.pin = amdgpu_dma_buf_pin,
	.unpin = amdgpu_dma_buf_unpin,
	.map_dma_buf = amdgpu_dma_buf_map,`,
    replace: `const struct dma_buf_ops amdgpu_dmabuf_ops = {
	.attach = amdgpu_dma_buf_attach,
	.detach = amdgpu_dma_buf_detach,
	.pin = amdgpu_dma_buf_pin,
	.map_dma_buf = amdgpu_dma_buf_map,`,
    at: 'const struct dma_buf_ops amdgpu_dmabuf_ops = {',
  },
];
