/**
 * A synthetic patch series for the review tests and scripts/bench-patch.js:
 * `n` git format-patch messages (an mbox with a 0/n cover letter) over a
 * tree of small driver files. Patch k inserts a few lines into a function
 * of file k % files, so later patches see the tree as earlier ones left it.
 * Every third patch adds an unlocked dma_buf_map_attachment(), every third
 * a pci_p2pdma_distance() used as a boolean, the others a harmless line.
 */

export interface SyntheticExpectation {
  /** Index of the message in the mbox (the cover letter is 0). */
  patch: number;
  rule?: string;
  file: string;
  /** One-based line in the patched file of the hazard's first line. */
  line: number;
}

export interface SyntheticSeries {
  mbox: string;
  /** The tree before the series. */
  tree: Map<string, string>;
  expected: SyntheticExpectation[];
}

const FUNCTIONS = 6;

function baseFile(f: number): string[] {
  const name = `synth${String(f).padStart(2, '0')}`;
  const lines = [
    '// SPDX-License-Identifier: GPL-2.0',
    `/* ${name}.c - synthetic driver file for the patch-review benchmark. */`,
    '#include <linux/dma-buf.h>',
    '#include <linux/dma-resv.h>',
    '#include <linux/err.h>',
    '#include <linux/pci-p2pdma.h>',
    '',
    'struct synth_dev {',
    '\tstruct dma_buf_attachment *attach;',
    '\tstruct pci_dev *pdev;',
    '\tstruct device *client;',
    '\tunsigned long count, flags, gen;',
    '\tbool p2p;',
    '};',
    '',
  ];
  for (let k = 0; k < FUNCTIONS; k++) {
    lines.push(
      `int ${name}_step${k}(struct synth_dev *sd)`,
      '{',
      '\tstruct sg_table *sgt;',
      '\tint ret = 0;',
      '',
      '\tsd->count++;',
      `\tsd->flags |= ${1 << k};`,
      '\tif (!sd->attach)',
      '\t\treturn -ENODEV;',
      '',
      '\treturn ret;',
      '}',
      '',
    );
  }
  return lines;
}

export function syntheticSeries(n: number, files = 10): SyntheticSeries {
  const tree = new Map<string, string>();
  const state: string[][] = [];
  for (let f = 0; f < files; f++) {
    const lines = baseFile(f);
    state.push(lines);
    tree.set(pathOf(f), lines.join('\n') + '\n');
  }
  const expected: SyntheticExpectation[] = [];
  const messages: string[] = [];
  const date = (k: number) => `Mon, 3 Mar 2025 10:${String(Math.floor(k / 60)).padStart(2, '0')}:${String(k % 60).padStart(2, '0')} +0100`;
  const header = (k: number, subject: string) =>
    [
      `From ${(k + 1).toString(16).padStart(40, '0')} Mon Sep 17 00:00:00 2001`,
      `From: Sam Synth <sam@synth.example>`,
      `Date: ${date(k)}`,
      `Subject: [PATCH ${k}/${n}] ${subject}`,
      `Message-Id: <20250303.${k}-synth@synth.example>`,
      ...(k > 0 ? [`In-Reply-To: <20250303.0-synth@synth.example>`, `References: <20250303.0-synth@synth.example>`] : []),
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=UTF-8',
      'Content-Transfer-Encoding: 8bit',
      '',
    ].join('\n');
  messages.push(`${header(0, 'synth: a long series')}\nA synthetic series of ${n} patches.\n\n-- \n2.43.0\n`);
  for (let k = 1; k <= n; k++) {
    const f = (k - 1) % files;
    const lines = state[f];
    const path = pathOf(f);
    const fnIndex = Math.floor((k - 1) / files) % FUNCTIONS;
    const name = `synth${String(f).padStart(2, '0')}_step${fnIndex}`;
    const sig = lines.findIndex((l) => l.startsWith(`int ${name}(`));
    // Insert after `sd->count++;` of that function.
    const at = lines.indexOf('\tsd->count++;', sig) + 1;
    const kind = k % 3;
    const added =
      kind === 1
        ? ['\tsgt = dma_buf_map_attachment(sd->attach, DMA_BIDIRECTIONAL);', '\tif (IS_ERR(sgt))', '\t\treturn PTR_ERR(sgt);']
        : kind === 2
          ? ['\tif (pci_p2pdma_distance(sd->pdev, sd->client, true))', '\t\tsd->p2p = true;']
          : ['\tsd->gen++;'];
    const from = at - 3;
    const oldCount = 6;
    const hunk = [
      `@@ -${from + 1},${oldCount} +${from + 1},${oldCount + added.length} @@ ${lines[sig]}`,
      ...lines.slice(from, at).map((l) => ' ' + l),
      ...added.map((l) => '+' + l),
      ...lines.slice(at, at + 3).map((l) => ' ' + l),
    ];
    lines.splice(at, 0, ...added);
    if (kind !== 0) expected.push({ patch: k, rule: kind === 1 ? 'DMABUF-LOCKING' : 'P2P-DISTANCE-BOOL', file: path, line: at + 1 });
    const subject = kind === 0 ? `synth: count generations in ${name}()` : kind === 1 ? `synth: map the buffer in ${name}()` : `synth: use peer-to-peer in ${name}()`;
    messages.push(
      [
        header(k, subject),
        `This changes ${name}().`,
        '',
        'Signed-off-by: Sam Synth <sam@synth.example>',
        '---',
        ` ${path} | ${added.length} ${'+'.repeat(added.length)}`,
        ` 1 file changed, ${added.length} insertion${added.length === 1 ? '' : 's'}(+)`,
        '',
        `diff --git a/${path} b/${path}`,
        `index ${k.toString(16).padStart(7, '0')}..${(k + 1).toString(16).padStart(7, '0')} 100644`,
        `--- a/${path}`,
        `+++ b/${path}`,
        ...hunk,
        '-- ',
        '2.43.0',
        '',
      ].join('\n'),
    );
  }
  return { mbox: messages.join('\n'), tree, expected };
}

function pathOf(f: number): string {
  return `drivers/misc/synth/synth${String(f).padStart(2, '0')}.c`;
}
