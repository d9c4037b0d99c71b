// SPDX-License-Identifier: GPL-2.0
/*
 * acme_dmabuf_import.c - import dma-bufs from other drivers into the ACME
 * GPU's address space (render targets and scanout buffers).
 *
 * Fictional driver used by the DMA Lens demo: the corrected version of
 * ../gpu/acme_dmabuf_import.c. DMA Lens reports nothing here.
 */
#include <linux/dma-buf.h>
#include <linux/dma-resv.h>
#include <linux/err.h>
#include <linux/iosys-map.h>
#include <linux/mm.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>

struct acme_device {
	struct device *dev;
};

/* An import is used either as a render target or as a scanout buffer. */
struct acme_import {
	struct acme_device *adev;
	struct dma_buf *dmabuf;
	struct dma_buf_attachment *attach;
	struct sg_table *sgt;
	enum dma_data_direction dir;
	u64 gpu_va;
	bool pinned;
};

void acme_vm_map_range(struct acme_device *adev, u64 va, dma_addr_t addr,
		       unsigned int len);
void acme_vm_unmap(struct acme_device *adev, u64 va, size_t size);
void acme_display_set_scanout(struct acme_device *adev, dma_addr_t addr);

/*
 * Called by the exporter with the reservation lock held when the buffer
 * is about to move: tear the GPU mapping down; the next bind re-maps.
 */
static void acme_import_move_notify(struct dma_buf_attachment *attach)
{
	struct acme_import *imp = attach->importer_priv;

	if (!imp->sgt)
		return;

	acme_vm_unmap(imp->adev, imp->gpu_va, imp->dmabuf->size);
	dma_buf_unmap_attachment(attach, imp->sgt, imp->dir);
	imp->sgt = NULL;
}

/* Render buffers may live in another GPU's VRAM, so allow P2P. */
static const struct dma_buf_attach_ops acme_import_attach_ops = {
	.allow_peer2peer = true,
	.move_notify = acme_import_move_notify,
};

struct acme_import *acme_import_dmabuf(struct acme_device *adev, int fd)
{
	struct dma_buf_attachment *attach;
	struct acme_import *imp;
	struct dma_buf *dmabuf;
	int ret;

	dmabuf = dma_buf_get(fd);
	if (IS_ERR(dmabuf))
		return ERR_CAST(dmabuf);

	imp = kzalloc(sizeof(*imp), GFP_KERNEL);
	if (!imp) {
		ret = -ENOMEM;
		goto err_put;
	}
	imp->adev = adev;
	imp->dmabuf = dmabuf;

	attach = dma_buf_dynamic_attach(dmabuf, adev->dev,
					&acme_import_attach_ops, imp);
	if (IS_ERR(attach)) {
		ret = PTR_ERR(attach);
		goto err_free;
	}
	imp->attach = attach;
	return imp;

err_free:
	kfree(imp);
err_put:
	dma_buf_put(dmabuf);
	return ERR_PTR(ret);
}

/* Bind a render target into the GPU VM, using only the DMA addresses. */
int acme_import_bind(struct acme_import *imp)
{
	struct dma_resv *resv = imp->dmabuf->resv;
	struct acme_device *adev = imp->adev;
	struct scatterlist *sg;
	struct sg_table *sgt;
	u64 va = imp->gpu_va;
	int ret = 0;
	int i;

	dma_resv_lock(resv, NULL);
	if (imp->sgt)
		goto out_unlock;

	sgt = dma_buf_map_attachment(imp->attach, DMA_BIDIRECTIONAL);
	if (IS_ERR(sgt)) {
		ret = PTR_ERR(sgt);
		goto out_unlock;
	}

	for_each_sgtable_dma_sg(sgt, sg, i) {
		acme_vm_map_range(adev, va, sg_dma_address(sg), sg_dma_len(sg));
		va += sg_dma_len(sg);
	}
	imp->sgt = sgt;
	imp->dir = DMA_BIDIRECTIONAL;

out_unlock:
	dma_resv_unlock(resv);
	return ret;
}

/* CPU readback goes through the exporter, bracketed for coherency. */
int acme_import_readback(struct acme_import *imp, void *dst, size_t len)
{
	struct iosys_map map;
	int ret;

	ret = dma_buf_begin_cpu_access(imp->dmabuf, DMA_FROM_DEVICE);
	if (ret)
		return ret;

	ret = dma_buf_vmap_unlocked(imp->dmabuf, &map);
	if (!ret) {
		iosys_map_memcpy_from(dst, &map, 0, min(len, imp->dmabuf->size));
		dma_buf_vunmap_unlocked(imp->dmabuf, &map);
	}

	dma_buf_end_cpu_access(imp->dmabuf, DMA_FROM_DEVICE);
	return ret;
}

/* Scanout buffers must not move while they are displayed. */
int acme_import_pin_for_scanout(struct acme_import *imp)
{
	struct dma_resv *resv = imp->dmabuf->resv;
	struct sg_table *sgt;
	int ret;

	dma_resv_lock(resv, NULL);
	ret = dma_buf_pin(imp->attach);
	if (ret)
		goto out_unlock;

	sgt = dma_buf_map_attachment(imp->attach, DMA_TO_DEVICE);
	if (IS_ERR(sgt)) {
		ret = PTR_ERR(sgt);
		goto err_unpin;
	}

	imp->pinned = true;
	imp->sgt = sgt;
	imp->dir = DMA_TO_DEVICE;
	acme_display_set_scanout(imp->adev, sg_dma_address(sgt->sgl));
	dma_resv_unlock(resv);
	return 0;

err_unpin:
	dma_buf_unpin(imp->attach);
out_unlock:
	dma_resv_unlock(resv);
	return ret;
}

void acme_import_release(struct acme_import *imp)
{
	struct dma_resv *resv = imp->dmabuf->resv;

	dma_resv_lock(resv, NULL);
	if (imp->sgt) {
		acme_vm_unmap(imp->adev, imp->gpu_va, imp->dmabuf->size);
		dma_buf_unmap_attachment(imp->attach, imp->sgt, imp->dir);
		imp->sgt = NULL;
	}
	if (imp->pinned)
		dma_buf_unpin(imp->attach);
	dma_resv_unlock(resv);

	dma_buf_detach(imp->dmabuf, imp->attach);
	dma_buf_put(imp->dmabuf);
	kfree(imp);
}
