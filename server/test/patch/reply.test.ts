/** The review reply: LKML style, checked against a golden draft. */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Analyzer } from '../../src/core/analyzer';
import { loadWasm } from '../../src/node/assets';
import { draftReply, wrap } from '../../src/patch/reply';
import { reviewPatchText } from '../../src/patch/review';

const FIX = path.resolve(__dirname, '../../../test/fixtures/patch');
const read = (name: string) => fs.readFileSync(path.join(FIX, name), 'utf8');
const analyzerP = Analyzer.create(loadWasm());

const GOLDEN = `From: Rev Iewer <reviewer@acme.example>
To: Jane Doe <jane.doe@acme.example>
Cc: dri-devel@lists.freedesktop.org,
 Christian König <christian.koenig@amd.example>, linux-media@vger.kernel.org,
 linux-pci@vger.kernel.org
Subject: Re: [PATCH v2 1/3] drm/acme: keep the pages of imported buffers for CPU readback
In-Reply-To: <20250114092133.4172-2-jane.doe@acme.example>
References: <20250114092132.4172-1-jane.doe@acme.example>
 <20250114092133.4172-2-jane.doe@acme.example>

On Tue, 14 Jan 2025 10:21:33 +0100, Jane Doe <jane.doe@acme.example> wrote:
> diff --git a/drivers/gpu/drm/acme/acme_dmabuf.c b/drivers/gpu/drm/acme/acme_dmabuf.c
> index d2b859f..9c3115c 100644
> --- a/drivers/gpu/drm/acme/acme_dmabuf.c
> +++ b/drivers/gpu/drm/acme/acme_dmabuf.c
[...]
> @@ -66,24 +67,40 @@ struct acme_import *acme_import_dmabuf(struct acme_device *adev, int fd)
[...]
>  	int i;
>
> -	sgt = dma_buf_map_attachment_unlocked(imp->attach, DMA_BIDIRECTIONAL);
> +	sgt = dma_buf_map_attachment(imp->attach, DMA_BIDIRECTIONAL);

DMABUF-LOCKING (error): dma_buf_map_attachment() must be called with the
reservation lock of the attachment's dma-buf held; acme_import_bind()
never takes it before this call. Take
dma_resv_lock(attach->dmabuf->resv, NULL) around it, or use
dma_buf_map_attachment_unlocked().

[...]
> +	for_each_sgtable_sg(sgt, sg, i) {
> +		if (n >= imp->npages)
> +			break;
> +		imp->pages[n++] = sg_page(sg);

DMABUF-SG-PAGE (error): sg_page() on the sg_table returned by
dma_buf_map_attachment(): an importer may only use its DMA addresses
(sg_dma_address/sg_dma_len over for_each_sgtable_dma_sg). The pages
behind it belong to the exporter and may not exist at all (peer-to-peer
or VRAM); CONFIG_DMABUF_DEBUG scrambles them.

[...]
`;

test('a reply to patch 1/3 of a b4 series: headers, attribution, trimmed quotes, comments under their lines', async () => {
  const text = read('acme-v2.mbx');
  const review = reviewPatchText(text, await analyzerP);
  const patch = review.patches[1];
  const reply = draftReply(patch, patch.findings, text, { from: 'Rev Iewer <reviewer@acme.example>' });
  assert.equal(reply, GOLDEN);
  for (const line of reply.split('\n')) {
    assert.ok(!/\s$/.test(line), `no trailing whitespace: ${JSON.stringify(line)}`);
    if (!line.startsWith('>') && !/^(Subject|References|Cc|In-Reply-To|To|From):|^On .* wrote:$/.test(line) && !line.startsWith(' '))
      assert.ok(line.length <= 72, `comments wrap at 72: ${JSON.stringify(line)}`);
  }
});

test('a quoted-printable mail is quoted decoded', async () => {
  const text = read('acme-1-qp.eml');
  const review = reviewPatchText(text, await analyzerP);
  const patch = review.patches[0];
  const reply = draftReply(patch, patch.findings, text);
  const body = (s: string) => s.slice(s.indexOf('\nOn '));
  assert.equal(body(reply), body(GOLDEN));
  assert.ok(!reply.includes('=3D'));
  assert.match(reply, /^To: Jane Doe <jane\.doe@acme\.example>\nCc: dri-devel@lists\.freedesktop\.org, linux-media@vger\.kernel\.org\nSubject: Re: \[PATCH v2 1\/3\]/);
});

test('one finding chosen, a partial finding, and a finding outside the hunks', async () => {
  const text = read('acme-v2.mbx');
  const review = reviewPatchText(text, await analyzerP);
  const patch = review.patches[1];
  const only = draftReply(patch, [patch.findings[1]], text);
  assert.ok(!only.includes('DMABUF-LOCKING'));
  assert.match(only, /> \+\t\timp->pages\[n\+\+\] = sg_page\(sg\);\n\nDMABUF-SG-PAGE \(error\)/);

  const p2 = review.patches[2];
  assert.match(draftReply(p2, p2.findings, text), /P2P-DISTANCE-BOOL \(warning\):[^]*\(Judged\s+from\s+the\s+hunk\s+alone:\s+the\s+function\s+is\s+not\s+entirely\s+in\s+the\s+patch\.\)\n/);

  const outside = { ...patch.findings[0], on: 'outside' as const, span: patch.files[0].hunks[1].span, target: { file: 'drivers/gpu/drm/acme/acme_dmabuf.c', line: 123 } };
  const r = draftReply(patch, [outside], text);
  assert.match(r, /> @@ -66,24 \+67,40 @@ struct acme_import \*acme_import_dmabuf\(struct acme_device \*adev, int fd\)\n\nIn drivers\/gpu\/drm\/acme\/acme_dmabuf\.c at line 123, which this patch does\nnot show: DMABUF-LOCKING \(error\):[^]*dma_buf_map_attachment_unlocked\(\)\.\n\n\[\.\.\.\]\n$/);
});

test('a plain diff has no mail headers to answer: the draft says what it can', async () => {
  const text = read('acme-1.diff');
  const review = reviewPatchText(text, await analyzerP);
  const reply = draftReply(review.patches[0], review.patches[0].findings, text);
  assert.match(reply, /^Subject: Re: drivers\/gpu\/drm\/acme\/acme_dmabuf\.c\n\nthe author wrote:\n> diff --git/);
  assert.doesNotThrow(() => draftReply(review.patches[0], review.patches[0].findings, 'not the same text'));
});

test('wrap keeps words whole and lines within the width', () => {
  assert.deepEqual(wrap('a bb ccc dddd', 6), ['a bb', 'ccc', 'dddd']);
  assert.deepEqual(wrap('averyveryverylongword x', 5), ['averyveryverylongword', 'x']);
  assert.deepEqual(wrap('', 10), []);
});
