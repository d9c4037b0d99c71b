// SPDX-License-Identifier: GPL-2.0
/*
 * acme_p2p.c - peer-to-peer support for the ACME accelerator card: share
 * device memory with other PCIe devices and run a command ring in a
 * partner device's memory.
 *
 * BAR 2 is VRAM (the driver's own allocator manages it, and only it),
 * BAR 4 is a scratch window registered, whole, as p2pmem for peers.
 *
 * Fictional driver used by the DMA Lens demo: the corrected version of
 * ../pci/acme_p2p.c. DMA Lens reports nothing here.
 */
#include <linux/err.h>
#include <linux/genalloc.h>
#include <linux/io.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/pci-p2pdma.h>
#include <linux/scatterlist.h>

#define ACME_VRAM_BAR		2
#define ACME_SCRATCH_BAR	4

struct acme_p2p {
	struct pci_dev *pdev;
	void __iomem *vram;
	struct gen_pool *vram_pool;

	struct pci_dev *peer;		/* partner hosting our command ring */
	struct pci_dev *provider;	/* p2pmem source for staging buffers */
	void *ring;
	size_t ring_size;
};

int acme_engine_set_ring(struct pci_dev *pdev, void *ring, size_t len);

/* VRAM: our allocator for firmware queues and buffer objects. */
static int acme_p2p_init_vram(struct acme_p2p *ap)
{
	struct pci_dev *pdev = ap->pdev;
	resource_size_t start = pci_resource_start(pdev, ACME_VRAM_BAR);
	resource_size_t size = pci_resource_len(pdev, ACME_VRAM_BAR);
	int ret;

	ap->vram = devm_ioremap_wc(&pdev->dev, start, size);
	if (!ap->vram)
		return -ENOMEM;

	ap->vram_pool = devm_gen_pool_create(&pdev->dev, PAGE_SHIFT, -1,
					     "acme-vram");
	if (IS_ERR(ap->vram_pool))
		return PTR_ERR(ap->vram_pool);

	return gen_pool_add_virt(ap->vram_pool, (unsigned long)ap->vram, start,
				 size, -1);
}

/*
 * Give the scratch window struct pages for peers: the whole BAR, once, at
 * probe, as MEMORY_DEVICE_PCI_P2PDMA memory with the right bus offset.
 */
static int acme_p2p_expose_scratch(struct acme_p2p *ap)
{
	int ret;

	ret = pci_p2pdma_add_resource(ap->pdev, ACME_SCRATCH_BAR, 0, 0);
	if (ret)
		return ret;

	pci_p2pmem_publish(ap->pdev, true);
	return 0;
}

/* Accept a p2pmem provider chosen by the administrator. */
int acme_p2p_set_provider(struct acme_p2p *ap, struct pci_dev *provider)
{
	if (pci_p2pdma_distance(provider, &ap->pdev->dev, true) < 0)
		return -EINVAL;

	pci_dev_put(ap->provider);
	ap->provider = pci_dev_get(provider);
	return 0;
}

struct scatterlist *acme_p2p_alloc_staging(struct acme_p2p *ap,
					   unsigned int *nents, u32 len)
{
	return pci_p2pmem_alloc_sgl(ap->provider, nents, len);
}

/* Place our command ring in the partner's memory, seed it, start the engine. */
int acme_p2p_setup_ring(struct acme_p2p *ap, const void *init, size_t len)
{
	struct pci_dev *pdev = ap->pdev;

	/* Our engine will fetch commands from the peer: check the path first. */
	if (pci_p2pdma_distance(ap->peer, &pdev->dev, true) < 0)
		return -EOPNOTSUPP;

	ap->ring = pci_alloc_p2pmem(ap->peer, len);
	if (!ap->ring)
		return -ENOMEM;

	/* p2pmem is MMIO: use the I/O accessors, not memcpy(). */
	memcpy_toio((void __iomem *)ap->ring, init, len);
	ap->ring_size = len;
	return acme_engine_set_ring(pdev, ap->ring, len);
}

void acme_p2p_teardown_ring(struct acme_p2p *ap)
{
	if (ap->ring)
		pci_free_p2pmem(ap->peer, ap->ring, ap->ring_size);
	ap->ring = NULL;
}

static int acme_p2p_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct acme_p2p *ap;
	int ret;

	ap = devm_kzalloc(&pdev->dev, sizeof(*ap), GFP_KERNEL);
	if (!ap)
		return -ENOMEM;
	ap->pdev = pdev;

	ret = pcim_enable_device(pdev);
	if (ret)
		return ret;

	ret = acme_p2p_init_vram(ap);
	if (ret)
		return ret;

	ret = acme_p2p_expose_scratch(ap);
	if (ret)
		return ret;

	pci_set_drvdata(pdev, ap);
	return 0;
}

static const struct pci_device_id acme_p2p_ids[] = {
	{ PCI_DEVICE(0x1e5d, 0x0a20) },
	{ }
};

static struct pci_driver acme_p2p_driver = {
	.name		= "acme-p2p",
	.id_table	= acme_p2p_ids,
	.probe		= acme_p2p_probe,
};
module_pci_driver(acme_p2p_driver);
