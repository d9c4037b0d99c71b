// SPDX-License-Identifier: GPL-2.0
/*
 * acme_svm.c - shared virtual memory for the ACME GPU: process pages are
 * migrated into VRAM, represented by MEMORY_DEVICE_PRIVATE struct pages,
 * and migrated back when the CPU touches them.
 *
 * Fictional driver used by the DMA Lens demo: the corrected version of
 * ../gpu/acme_svm.c. DMA Lens reports nothing here.
 */
#include <linux/dma-mapping.h>
#include <linux/err.h>
#include <linux/highmem.h>
#include <linux/ioport.h>
#include <linux/memremap.h>
#include <linux/migrate.h>
#include <linux/mm.h>
#include <linux/pci.h>

struct acme_svm {
	struct pci_dev *pdev;
	struct dev_pagemap pagemap;
	u64 vram_base;
};

struct page *acme_svm_alloc_vram_page(struct acme_svm *svm);
void acme_svm_free_vram_page(struct acme_svm *svm, struct page *page);
int acme_svm_copy_from_vram(struct acme_svm *svm, dma_addr_t dst, u64 vram_addr);
int acme_svm_copy_to_vram(struct acme_svm *svm, u64 vram_addr, dma_addr_t src);

static struct acme_svm *acme_page_to_svm(struct page *page)
{
	return container_of(page->pgmap, struct acme_svm, pagemap);
}

static u64 acme_svm_vram_addr(struct acme_svm *svm, struct page *page)
{
	unsigned long idx = page_to_pfn(page) -
			    PHYS_PFN(svm->pagemap.range.start);

	return svm->vram_base + ((u64)idx << PAGE_SHIFT);
}

static void acme_svm_page_free(struct page *page)
{
	acme_svm_free_vram_page(acme_page_to_svm(page), page);
}

/* The CPU touched a page that lives in VRAM: copy it back to RAM. */
static vm_fault_t acme_svm_migrate_to_ram(struct vm_fault *vmf)
{
	struct acme_svm *svm = acme_page_to_svm(vmf->page);
	struct device *dev = &svm->pdev->dev;
	unsigned long src = 0, dst = 0;
	struct migrate_vma args = {
		.vma		= vmf->vma,
		.start		= vmf->address,
		.end		= vmf->address + PAGE_SIZE,
		.src		= &src,
		.dst		= &dst,
		.pgmap_owner	= svm,
		.flags		= MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
		.fault_page	= vmf->page,
	};
	dma_addr_t dma_dst;
	struct page *spage, *dpage;
	vm_fault_t ret = 0;

	if (migrate_vma_setup(&args) < 0)
		return VM_FAULT_SIGBUS;
	if (!args.cpages)
		return 0;

	spage = migrate_pfn_to_page(src);
	if (!spage || !(src & MIGRATE_PFN_MIGRATE))
		goto done;

	dpage = alloc_page_vma(GFP_HIGHUSER, vmf->vma, vmf->address);
	if (!dpage) {
		ret = VM_FAULT_OOM;
		goto done;
	}
	lock_page(dpage);

	/* spage is device-private: address it through VRAM, never the DMA API. */
	dma_dst = dma_map_page(dev, dpage, 0, PAGE_SIZE, DMA_FROM_DEVICE);
	if (dma_mapping_error(dev, dma_dst))
		goto err_free;

	if (acme_svm_copy_from_vram(svm, dma_dst, acme_svm_vram_addr(svm, spage))) {
		dma_unmap_page(dev, dma_dst, PAGE_SIZE, DMA_FROM_DEVICE);
		goto err_free;
	}

	dma_unmap_page(dev, dma_dst, PAGE_SIZE, DMA_FROM_DEVICE);
	dst = migrate_pfn(page_to_pfn(dpage));
	goto done;

err_free:
	unlock_page(dpage);
	__free_page(dpage);
	ret = VM_FAULT_SIGBUS;
done:
	migrate_vma_pages(&args);
	migrate_vma_finalize(&args);
	return ret;
}

static const struct dev_pagemap_ops acme_svm_pagemap_ops = {
	.page_free	= acme_svm_page_free,
	.migrate_to_ram	= acme_svm_migrate_to_ram,
};

int acme_svm_init(struct acme_svm *svm, resource_size_t vram_size)
{
	struct device *dev = &svm->pdev->dev;
	struct resource *res;
	void *addr;

	res = devm_request_free_mem_region(dev, &iomem_resource, vram_size);
	if (IS_ERR(res))
		return PTR_ERR(res);

	svm->pagemap.type = MEMORY_DEVICE_PRIVATE;
	svm->pagemap.range.start = res->start;
	svm->pagemap.range.end = res->end;
	svm->pagemap.nr_range = 1;
	svm->pagemap.ops = &acme_svm_pagemap_ops;
	svm->pagemap.owner = svm;

	addr = devm_memremap_pages(dev, &svm->pagemap);
	if (IS_ERR(addr))
		return PTR_ERR(addr);

	return 0;
}

/* Move one system page of a process into VRAM (called from an ioctl). */
int acme_svm_migrate_to_vram(struct acme_svm *svm, struct vm_area_struct *vma,
			     unsigned long addr)
{
	struct device *dev = &svm->pdev->dev;
	unsigned long src = 0, dst = 0;
	struct migrate_vma args = {
		.vma		= vma,
		.start		= addr,
		.end		= addr + PAGE_SIZE,
		.src		= &src,
		.dst		= &dst,
		.pgmap_owner	= svm,
		.flags		= MIGRATE_VMA_SELECT_SYSTEM,
	};
	struct page *spage, *dpage;
	dma_addr_t dma;
	int ret;

	ret = migrate_vma_setup(&args);
	if (ret)
		return ret;

	spage = migrate_pfn_to_page(src);
	if (!spage || !(src & MIGRATE_PFN_MIGRATE))
		goto done;

	dpage = acme_svm_alloc_vram_page(svm);
	if (!dpage)
		goto done;

	dma = dma_map_page(dev, spage, 0, PAGE_SIZE, DMA_TO_DEVICE);
	if (dma_mapping_error(dev, dma)) {
		acme_svm_free_vram_page(svm, dpage);
		goto done;
	}

	if (!acme_svm_copy_to_vram(svm, acme_svm_vram_addr(svm, dpage), dma))
		dst = migrate_pfn(page_to_pfn(dpage));
	else
		acme_svm_free_vram_page(svm, dpage);
	dma_unmap_page(dev, dma, PAGE_SIZE, DMA_TO_DEVICE);

done:
	migrate_vma_pages(&args);
	migrate_vma_finalize(&args);
	return 0;
}
