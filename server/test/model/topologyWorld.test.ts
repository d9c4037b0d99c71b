/**
 * Runs on a user's topology (dmalens.topology, `--topology`): the world takes
 * the devices, their IOMMU modes and their BARs from it; a run that ends
 * differently from the rule's own worlds says so and where it fails; the
 * world's sentence places the devices the run routed between, as the steps
 * do; and only steps that come from an event of the user's code are located.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Analyzer } from '../../src/core/analyzer';
import type { Finding } from '../../src/core/types';
import { explain, referenceRun, scenarioRules } from '../../src/model/explain';
import { loadTopology } from '../../src/model/lspci';
import type { Run } from '../../src/model/types';
import { buildWorld, topologyWorld } from '../../src/model/world';
import { loadWasm } from '../../src/node/assets';

const REPO = path.resolve(__dirname, '../../../..');
const EXAMPLE_TOPOLOGY = path.join(REPO, 'examples/topology/lspci-tvnn.txt');
const EXAMPLE_DRIVER = path.join(REPO, 'examples/drivers/pci/acme_p2p.c');
const HAND_WRITTEN = path.join(REPO, 'server/test/fixtures/topology/hand-written.json');

const steps = (run: Run) => run.steps.map((s) => `[${s.actor}] ${s.action}`).join('\n');
const topologyOf = (text: string) => loadTopology({ topology: text }).topology;
/** hand-written.json with its global IOMMU mode (and per-device modes) changed. */
function handWritten(iommu: string | undefined, devices: Record<string, string> = {}): string {
  const doc = JSON.parse(fs.readFileSync(HAND_WRITTEN, 'utf8'));
  if (iommu === undefined) delete doc.iommu;
  else doc.iommu = iommu;
  for (const d of doc.devices) {
    if (d.bdf in devices) d.iommu = devices[d.bdf];
    else if (Object.keys(devices).length > 0) delete d.iommu;
  }
  return JSON.stringify(doc);
}

async function exampleFindings(): Promise<{ text: string; findings: Finding[] }> {
  const analyzer = await Analyzer.create(loadWasm());
  const text = fs.readFileSync(EXAMPLE_DRIVER, 'utf8');
  return { text, findings: analyzer.analyzeText(text).findings };
}

test('on the examples\' topology, findings that do not fail there say so and where they fail', async () => {
  const world = topologyWorld(topologyOf(fs.readFileSync(EXAMPLE_TOPOLOGY, 'utf8')));
  const { findings } = await exampleFindings();
  const expected: Record<string, { fails: string; why: RegExp }> = {
    'P2P-DISTANCE-UNCHECKED': { fails: 'UR_AER', why: /the NIC 0000:1a:00\.0 and the NVMe drive 0000:1b:00\.0 behind one PCIe switch \(common upstream bridge 0000:17:00\.0/ },
    'P2P-DISTANCE-BOOL': { fails: 'UR_AER', why: /the NIC 0000:1a:00\.0 and the NVMe drive 0000:1b:00\.0 behind one PCIe switch/ },
    'P2P-CPU-MEMCPY': { fails: 'CPU_FAULT', why: /CPU intel/ },
  };
  for (const [rule, e] of Object.entries(expected)) {
    const f = findings.find((x) => x.rule === rule);
    assert.ok(f, `a ${rule} finding in the example`);
    const run = explain(f, world)!;
    assert.equal(run.outcome.kind, 'OK', `${rule} works on this machine\n${steps(run)}`);
    assert.match(run.outcome.summary, /on your topology/, rule);
    const notes = run.worldNotes ?? [];
    assert.match(notes[0] ?? '', /^on your topology \(/, `${rule}: ${notes.join(' | ')}`);
    assert.match(notes[0], e.why, rule);
    assert.match(notes[0], /this run does not fail/, rule);
    assert.ok(notes.some((n) => n.startsWith("in the rule's default world (") && n.includes(`: ${e.fails} (`)), `${rule}: ${notes.join(' | ')}`);
    assert.equal(run.failsIn?.world, "the rule's default world", rule);
    assert.equal(run.failsIn?.outcome.kind, e.fails, rule);
    // The same finding in the rule's own world: unchanged, no "your topology" anywhere.
    const own = explain(f)!;
    assert.equal(own.outcome.kind, e.fails, rule);
    assert.equal(own.failsIn, undefined);
    assert.ok(!(own.worldNotes ?? []).some((n) => /your topology/.test(n)), rule);
  }
  // A finding that fails on the topology too keeps its outcome, and gets no failsIn.
  const second = explain(findings.find((x) => x.rule === 'P2P-SECOND-ALLOCATOR')!, world)!;
  assert.equal(second.outcome.kind, 'SILENT_CORRUPTION');
  assert.equal(second.failsIn, undefined);
});

test('a run on a topology notes each other outcome once, the default world first', () => {
  const world = topologyWorld(topologyOf(fs.readFileSync(EXAMPLE_TOPOLOGY, 'utf8')));
  const run = referenceRun('PGMAP-PRIVATE-AS-P2P', world)!;
  const notes = run.worldNotes ?? [];
  const KINDS = ['SILENT_CORRUPTION', 'IOMMU_FAULT', 'UR_AER', 'CPU_FAULT', 'HANG', 'DEADLOCK', 'UAF', 'LEAK', 'LIVELOCK', 'WARN', 'IO_ERROR'];
  const kinds = notes.slice(1).map((n) => (n.endsWith(': it works') ? 'OK' : KINDS.find((k) => n.includes(`: ${k} (`)) ?? `? ${n}`));
  assert.ok(kinds.length >= 1, notes.join('\n'));
  assert.deepEqual(kinds, [...new Set(kinds)], notes.join('\n'));
  assert.ok(!kinds.includes(run.outcome.kind), notes.join('\n'));
});

test('the topology\'s IOMMU modes reach the run: global, per device, and the CLI-style override', () => {
  const off = referenceRun('P2P-BUS-ADDR-VS-IOMMU', topologyWorld(topologyOf(handWritten('off'))))!;
  assert.notEqual(off.outcome.kind, 'IOMMU_FAULT', steps(off));
  assert.match(off.world, /IOMMU off/);
  assert.ok(!off.steps.some((s) => /IOMMU has no mapping|translated/.test(s.action)), steps(off));
  assert.ok(off.steps.some((s) => /no IOMMU translation/.test(s.action)), steps(off));

  const on = referenceRun('P2P-BUS-ADDR-VS-IOMMU', topologyWorld(topologyOf(handWritten('translated'))))!;
  assert.equal(on.outcome.kind, 'IOMMU_FAULT', steps(on));
  assert.match(on.world, /IOMMU translated/);

  // Only the NIC (the client) off, the topology otherwise translated: the NIC's own mode decides.
  const nicOff = topologyOf(handWritten('translated', { '0000:06:00.0': 'off' }));
  const w = buildWorld(topologyWorld(nicOff));
  assert.equal(w.nic.iommu, 'off');
  assert.equal(w.gpu.iommu, 'translated');
  assert.equal(w.nvme.iommu, 'translated');
  assert.match(w.summary, /IOMMU translated for the GPU, off for the NIC, translated for the NVMe drive/);
  assert.notEqual(referenceRun('P2P-BUS-ADDR-VS-IOMMU', topologyWorld(nicOff))!.outcome.kind, 'IOMMU_FAULT');

  // A topology that says nothing keeps the rule's own mode; loadTopology's iommu (the CLI's --iommu) sets the global one.
  assert.equal(buildWorld({ ...topologyWorld(topologyOf(handWritten(undefined))), iommu: 'passthrough' }).nic.iommu, 'passthrough');
  assert.equal(buildWorld(topologyWorld(loadTopology({ topology: handWritten(undefined), iommu: 'off' }).topology)).nic.iommu, 'off');
  // An lspci tree has no IOMMU modes: the rule's world decides (P2P-DISTANCE-UNCHECKED runs with it off).
  const tree = referenceRun('P2P-DISTANCE-UNCHECKED', topologyWorld(topologyOf(fs.readFileSync(EXAMPLE_TOPOLOGY, 'utf8'))))!;
  assert.match(tree.world, /IOMMU off/);
});

test('the topology\'s BARs are the ones the runs use; the model\'s own only where it gives none', () => {
  const t = topologyOf(fs.readFileSync(HAND_WRITTEN, 'utf8'));
  const w = buildWorld(topologyWorld(t));
  assert.equal(w.nvmeCmb.start, 0x38bf_0000_0000);
  assert.equal(w.nvmeCmb.size, 256 << 20);
  assert.deepEqual(w.nvmeCmb.bar, { bdf: '0000:04:00.0', index: 2, busAddress: 0x38bf_0000_0000 });
  assert.equal(w.gpuVram.start, 0x3880_0000_0000);
  assert.equal(w.gpuVram.bar!.index, 1, 'the largest BAR of the A100, not its 16 MiB BAR0');
  assert.ok(!/not in the topology/.test(w.summary), w.summary);

  const run = referenceRun('P2P-DISTANCE-UNCHECKED', topologyWorld(t))!;
  assert.ok(run.steps.some((s) => /CMB \(BAR2 at 0x38bf00000000, bus 0x38bf00000000\)/.test(s.action)), steps(run));
  assert.ok(!run.steps.some((s) => /0xfb0/.test(s.action)), steps(run));
  const second = referenceRun('P2P-SECOND-ALLOCATOR', topologyWorld(t))!;
  assert.ok(second.steps.some((s) => /manages BAR1 \(0x388000000000\+0x2000000000\)/.test(s.action)), steps(second));

  // A bus address that differs from the CPU address is kept.
  const doc = JSON.parse(fs.readFileSync(HAND_WRITTEN, 'utf8'));
  doc.devices.find((d: { bdf: string }) => d.bdf === '0000:04:00.0').bars[1].bus = '0x2000000000';
  assert.equal(buildWorld(topologyWorld(topologyOf(JSON.stringify(doc)))).nvmeCmb.bar!.busAddress, 0x20_0000_0000);

  // lspci -tvnn has no BARs: the model's, and the sentence says so.
  const tree = buildWorld(topologyWorld(topologyOf(fs.readFileSync(EXAMPLE_TOPOLOGY, 'utf8'))));
  assert.equal(tree.nvmeCmb.start, 0xfb00_0000);
  assert.match(tree.summary, /not in the topology, so the model's: the GPU's VRAM BAR, the NVMe drive's CMB BAR/);

  // A BAR on top of the model's System RAM, or too small for the run, is not used.
  doc.devices.find((d: { bdf: string }) => d.bdf === '0000:04:00.0').bars[1] = { index: 2, cpu: '0x100000000', size: '256M' };
  const inRam = buildWorld(topologyWorld(topologyOf(JSON.stringify(doc))));
  assert.equal(inRam.nvmeCmb.start, 0xfb00_0000);
  assert.match(inRam.summary, /the NVMe drive's CMB BAR/);
});

test('the world\'s sentence places the devices of the path the run took', () => {
  const run = referenceRun('P2P-SECOND-ALLOCATOR')!;
  assert.ok(run.steps.some((s) => /common upstream bridge 0000:01:00\.0 with no ACS redirect/.test(s.action)), steps(run));
  assert.match(run.world, /the NVMe drive and the GPU behind one PCIe switch \(common upstream bridge 0000:01:00\.0 with no ACS redirect\)/);
  assert.ok(!/different root ports|no peer-to-peer path/.test(run.world), run.world);
  const unchecked = referenceRun('P2P-DISTANCE-UNCHECKED')!;
  assert.match(unchecked.world, /the NIC and the NVMe drive with no peer-to-peer path between them \(no common upstream bridge; host bridge 8086:0e00/);
  // Every reference run: a switch-local path in the steps is the one the sentence describes.
  for (const rule of scenarioRules()) {
    const r = referenceRun(rule)!;
    for (const s of r.steps) {
      const m = /common upstream bridge \S+ with no ACS redirect/.exec(s.action);
      if (m && !/ACS redirect on|ACS request\/completion redirect/.test(steps(r))) assert.ok(r.world.includes(m[0]), `${rule}: "${m[0]}" in the steps, world: ${r.world}`);
    }
  }
  // A run that routes nothing does not place the devices.
  assert.equal(referenceRun('DMABUF-ERRPTR')!.world, 'an x86 server, IOMMU translated');
});

test('only steps from an event of the user\'s code carry a location, and it is that event\'s', async () => {
  const { text, findings } = await exampleFindings();
  const bool = findings.find((f) => f.rule === 'P2P-DISTANCE-BOOL')!;
  const run = explain(bool)!;
  const alloc = run.steps.find((s) => /^pci_alloc_p2pmem\(/.test(s.action));
  assert.ok(alloc, steps(run));
  assert.equal(alloc.location, undefined, 'the finding has no pci_alloc_p2pmem event: the step is the model\'s');
  assert.ok(!run.steps.some((s) => s.location && /pci_alloc_p2pmem|virt_to_bus/.test(s.action)), steps(run));
  assert.match(text.slice(run.steps[0].location!.start, run.steps[0].location!.end), /pci_p2pdma_distance/);
  // Every run of every finding of the example drivers and the rule fixtures.
  const analyzer = await Analyzer.create(loadWasm());
  const files = [
    ...fs.readdirSync(path.join(REPO, 'examples/drivers'), { recursive: true, encoding: 'utf8' }).map((f) => path.join(REPO, 'examples/drivers', f)),
    ...fs.readdirSync(path.join(REPO, 'server/test/fixtures/rules'), { recursive: true, encoding: 'utf8' }).map((f) => path.join(REPO, 'server/test/fixtures/rules', f)),
  ].filter((f) => f.endsWith('.c'));
  let runs = 0;
  for (const file of files) {
    for (const f of analyzer.analyzeText(fs.readFileSync(file, 'utf8')).findings) {
      const r = explain(f);
      if (!r) continue;
      runs++;
      for (const s of r.steps) {
        if (!s.location) continue;
        const own = f.events.some((e) => e.span && e.span.start === s.location!.start && e.span.end === s.location!.end);
        assert.ok(own, `${path.relative(REPO, file)} ${f.rule}: "${s.action}" is located, but at no event of the finding`);
      }
    }
  }
  assert.ok(runs > 100, `${runs} runs`);
});
