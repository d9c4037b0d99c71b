// SPDX-License-Identifier: GPL-2.0
/*
 * acme_dmabuf_import.c - import dma-bufs from other drivers into the ACME
 * GPU's address space (render targets and scanout buffers).
 *
 * Fictional driver used by the DMA Lens demo. This version contains
 * several dma-buf contract violations; see ../good/acme_dmabuf_import.c.
 */
#include <linux/dma-buf.h>
#include <linux/dma-resv.h>
#include <linux/err.h>
#include <linux/mm.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>

struct acme_device {
	struct device *dev;
};

/* An import is used either as a render target or as a scanout buffer. */
struct acme_import {
	struct acme_device *adev;
	struct dma_buf *dmabuf;
	struct dma_buf_attachment *attach;
	struct sg_table *sgt;
	struct page **pages;
	unsigned int npages;
	void *cpu_addr;
	u64 gpu_va;
	bool pinned;
};

void acme_vm_map_range(struct acme_device *adev, u64 va, dma_addr_t addr,
		       unsigned int len);
void acme_vm_unmap(struct acme_device *adev, u64 va, size_t size);
void acme_display_set_scanout(struct acme_device *adev, dma_addr_t addr);

/* Render buffers may live in another GPU's VRAM, so allow P2P. */
static const struct dma_buf_attach_ops acme_import_attach_ops = {
	.allow_peer2peer = true,
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
	imp->npages = dmabuf->size >> PAGE_SHIFT;

	attach = dma_buf_dynamic_attach(dmabuf, adev->dev,
					&acme_import_attach_ops, imp);
	if (!attach) {
		ret = -ENOMEM;
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

/* Bind a render target into the GPU VM and keep a CPU view for readback. */
int acme_import_bind(struct acme_import *imp)
{
	struct acme_device *adev = imp->adev;
	struct scatterlist *sg;
	struct sg_table *sgt;
	unsigned int n = 0;
	u64 va = imp->gpu_va;
	int i;

	sgt = dma_buf_map_attachment(imp->attach, DMA_BIDIRECTIONAL);
	if (IS_ERR(sgt))
		return PTR_ERR(sgt);

	imp->pages = kvcalloc(imp->npages, sizeof(*imp->pages), GFP_KERNEL);
	if (!imp->pages)
		goto err_unmap;

	for_each_sgtable_sg(sgt, sg, i) {
		acme_vm_map_range(adev, va, sg_dma_address(sg), sg_dma_len(sg));
		va += sg_dma_len(sg);
		if (n < imp->npages)
			imp->pages[n++] = sg_page(sg);
	}

	/* The CPU view is optional: readback falls back to a GPU copy. */
	imp->cpu_addr = vmap(imp->pages, n, VM_MAP, PAGE_KERNEL);
	imp->sgt = sgt;
	return 0;

err_unmap:
	dma_buf_unmap_attachment_unlocked(imp->attach, sgt, DMA_BIDIRECTIONAL);
	return -ENOMEM;
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
		goto out_unlock;
	}

	imp->pinned = true;
	imp->sgt = sgt;
	acme_display_set_scanout(imp->adev, sg_dma_address(sgt->sgl));

out_unlock:
	dma_resv_unlock(resv);
	return ret;
}

void acme_import_release(struct acme_import *imp)
{
	struct dma_resv *resv = imp->dmabuf->resv;

	if (imp->cpu_addr)
		vunmap(imp->cpu_addr);
	kvfree(imp->pages);

	dma_resv_lock(resv, NULL);
	if (imp->sgt) {
		acme_vm_unmap(imp->adev, imp->gpu_va, imp->dmabuf->size);
		dma_buf_unmap_attachment(imp->attach, imp->sgt,
					 imp->pinned ? DMA_TO_DEVICE :
						       DMA_BIDIRECTIONAL);
	}
	if (imp->pinned)
		dma_buf_unpin(imp->attach);
	dma_resv_unlock(resv);

	dma_buf_detach(imp->dmabuf, imp->attach);
	dma_buf_put(imp->dmabuf);
	kfree(imp);
}
