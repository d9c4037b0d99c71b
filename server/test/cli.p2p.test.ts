/**
 * `dmalens p2p` as a process, on the topology fixtures. It runs the tsc
 * output (out/src/cli/main.js) rather than server/bin/dmalens.js, which
 * prefers the esbuild bundle and may be older than this build.
 */
import { describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

const MAIN = path.resolve(__dirname, '..', 'src', 'cli', 'main.js');
const FIXTURES = path.resolve(__dirname, '../../test/fixtures/topology');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function dmalens(...args: string[]): Run {
  const r = spawnSync(process.execPath, [MAIN, ...args], { cwd: FIXTURES, encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface P2pJson {
  distance: number;
  clients: {
    bdf: string;
    mapType: string;
    distance: number;
    reason: string;
    hops: number;
    disableAcsRedir?: string;
    commonUpstreamBridge?: string;
    path: string[];
    kernelLog: string[];
    dmaAddress?: { kind: string; iommu: string; address?: string; mapsTo?: string; wrongChoice?: { outcome: string } };
  }[];
  provider: string;
  cpu: string;
  notes: string[];
}

function json(...args: string[]): P2pJson {
  const r = dmalens('p2p', '--format', 'json', ...args);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as P2pJson;
}

function assertOneLineError(r: Run, pattern: RegExp): void {
  assert.equal(r.code, 2);
  assert.equal(r.stdout, '');
  const lines = r.stderr.split('\n').filter((l) => l.length > 0);
  assert.equal(lines.length, 1, `expected one line on stderr, got:\n${r.stderr}`);
  assert.match(lines[0], /^dmalens: /);
  assert.match(lines[0], pattern);
  assert.doesNotMatch(r.stderr, /^\s+at /m);
}

const SKY = ['--topology', 'skylake-2s.tvnn.txt'];
const SKY_ACS = [...SKY, '--acs', 'skylake-2s.vvv.txt'];

describe('dmalens p2p: answers', () => {
  test('JSON shape: distance and clients first, the four public client fields first', () => {
    const doc = json(...SKY, '1a:00.0', '1b:00.0', '1c:00.0');
    const raw = JSON.parse(dmalens('p2p', '--format', 'json', ...SKY, '1a:00.0', '1b:00.0').stdout) as Record<string, unknown>;
    assert.deepEqual(Object.keys(raw).slice(0, 2), ['distance', 'clients']);
    assert.deepEqual(Object.keys((raw.clients as object[])[0]).slice(0, 4), ['bdf', 'mapType', 'distance', 'reason']);
    // The tree alone has no ACS data: the PLX switch routes both pairs, 4 + 4.
    assert.equal(doc.distance, 8);
    assert.deepEqual(
      doc.clients.map((c) => [c.bdf, c.mapType, c.distance]),
      [
        ['0000:1b:00.0', 'bus-address', 4],
        ['0000:1c:00.0', 'bus-address', 4],
      ],
    );
    assert.equal(doc.clients[0].reason, 'common upstream bridge 0000:18:00.0 with no ACS redirect');
    assert.equal(doc.provider, '0000:1a:00.0');
    assert.equal(doc.cpu, 'other');
    assert.ok(doc.notes.some((n) => /no ACS data/.test(n)));
  });

  test('with lspci -vvv: ACS redirect on the PLX downstream ports, the allowlisted Skylake root port', () => {
    const doc = json(...SKY_ACS, '1a:00.0', '1b:00.0');
    const c = doc.clients[0];
    assert.deepEqual([c.mapType, c.distance, c.commonUpstreamBridge], ['thru-host-bridge', 4, '0000:18:00.0']);
    assert.equal(c.disableAcsRedir, '0000:19:08.0;0000:19:09.0');
    assert.deepEqual(c.kernelLog, [
      'nvme 0000:1b:00.0: ACS redirect is set between the client and provider (0000:1a:00.0)',
      'nvme 0000:1b:00.0: to disable ACS redirect for this path, add the kernel parameter: pci=disable_acs_redir=0000:19:08.0;0000:19:09.0',
    ]);
    assert.match(c.reason, /host bridge 8086:2030 \(0000:17:00\.0\) is on the allowlist$/);
  });

  test('pci_p2pdma_distance_many(): the sum, or -1 when one client is not supported', () => {
    // 1b: 4 (switch); 3b: 4 + 2 across root buses 17 and 3a; 5e: 4 + 2, 5d's
    // host bridge device is the Root Port at 5d:02.0 (8086:2032).
    const ok = json(...SKY_ACS, '1a:00.0', '1b:00.0', '3b:00.0', '5e:00.0');
    assert.equal(ok.distance, 16);
    // Root bus 80 starts with the CBDMA engine at 04.0: no host bridge device.
    const bad = json(...SKY_ACS, '1a:00.0', '1b:00.0', '3b:00.0', '5e:00.0', '80:04.0');
    assert.equal(bad.distance, -1);
    assert.deepEqual(bad.clients.map((c) => c.distance), [4, 6, 6, -1]);
    assert.match(bad.clients[3].reason, /host bridge 0000:80 has no host bridge device/);
  });

  test('without -vvv the root ports have no ids, so crossing root buses fails, and a note says why', () => {
    const r = dmalens('p2p', ...SKY, '1a:00.0', '3b:00.0');
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^client 0000:3b:00\.0 \[15b3:1017\]: not-supported, distance -1$/m);
    assert.match(r.stdout, /^note: no vendor:device id for 0000:17:00\.0 .*lspci -vvvnn/m);
  });

  test('workstation: NVMe and NIC on different root ports of a host bridge not on the allowlist (text)', () => {
    const r = dmalens('p2p', '-t', 'workstation-adl.tvnn.txt', '--acs', 'workstation-adl.vvv.txt', '--cpu', 'intel', '02:00.0', '01:00.0');
    assert.equal(r.code, 0);
    assert.equal(r.stderr, '');
    assert.equal(
      r.stdout,
      [
        'provider 0000:02:00.0 [144d:a80a] Samsung Electronics Co Ltd NVMe SSD Controller PM9A1/PM9A3/980PRO',
        'cpu: intel; cpu_supports_p2pdma() is false',
        'client 0000:01:00.0 [15b3:1017]: not-supported, distance -1',
        '  no common upstream bridge; host bridge 8086:4660 (0000:00:00.0) is not on the allowlist',
        '  path: 0000:01:00.0 > 0000:00:01.0 > hostbridge:0000:00 > 0000:00:06.0 > 0000:02:00.0 (breaks at hostbridge:0000:00)',
        '  kernel: mlx5_core 0000:01:00.0: cannot be used for peer-to-peer DMA as the client and provider (0000:02:00.0) do not share an upstream bridge or whitelisted host bridge',
        'distance: -1 (not supported: 0000:01:00.0)',
        '',
      ].join('\n'),
    );
  });

  test('EPYC: allowed on AMD Zen, refused otherwise (with a hint)', () => {
    const args = ['-t', 'epyc-rome.tvnn.txt', '--acs', 'epyc-rome.vvv.txt', '21:00.0', '41:00.0', '25:00.0'];
    const zen = json(...args, '--cpu', 'amd-zen');
    // 21 ↔ 41: chains of 2 and 2. 21 ↔ 25: 21:00.0, 20:01.1 and 25:00.0, 23:01.0, 22:00.0, 20:03.1.
    assert.equal(zen.distance, 4 + 6);
    assert.deepEqual(zen.clients.map((c) => c.mapType), ['thru-host-bridge', 'thru-host-bridge']);
    const other = json(...args);
    assert.equal(other.distance, -1);
    assert.ok(other.notes.some((n) => /--cpu amd-zen/.test(n)));
    // The Broadcom switch pair with ACS: listed for disable_acs_redir, refused without Zen.
    const sw = json('-t', 'epyc-rome.tvnn.txt', '--acs', 'epyc-rome.vvv.txt', '24:00.0', '25:00.0');
    assert.deepEqual([sw.clients[0].mapType, sw.clients[0].disableAcsRedir], ['not-supported', '0000:23:00.0;0000:23:01.0']);
    assert.ok(sw.clients[0].kernelLog.includes('pci 0000:20:00.0: Host bridge not in P2PDMA whitelist: 1022:1480'));
  });

  test('X570: the ACS of a multi-function NIC is on the list; two functions of the GPU share an ACS bridge', () => {
    const doc = json('-t', 'x570-multifunction.tvnn.txt', '--acs', 'x570-multifunction.vvv.txt', '--cpu', 'amd-zen', '04:00.0', '05:00.1', '04:00.0');
    assert.equal(doc.clients[0].disableAcsRedir, '0000:03:01.0;0000:05:00.1;0000:03:04.0');
    assert.deepEqual([doc.clients[1].mapType, doc.clients[1].distance], ['bus-address', 0]);
    const gpu = json('-t', 'x570-multifunction.tvnn.txt', '--acs', 'x570-multifunction.vvv.txt', '0d:00.0', '0d:00.1');
    assert.deepEqual([gpu.clients[0].mapType, gpu.clients[0].distance, gpu.clients[0].disableAcsRedir], ['not-supported', -1, '0000:0c:00.0']);
    // Without the -vvv data the same pair is a plain distance-2 bus-address path.
    const bare = json('-t', 'x570-multifunction.tvnn.txt', '0d:00.0', '0d:00.1');
    assert.deepEqual([bare.clients[0].mapType, bare.clients[0].distance], ['bus-address', 2]);
  });

  test('JSON topology with IOMMU modes: which DMA address to use, and what the other one does', () => {
    const doc = json('-t', 'hand-written.json', '04:00.0', '03:00.0', '05:00.0');
    const [gpu, nvme] = doc.clients;
    assert.equal(gpu.mapType, 'thru-host-bridge');
    assert.deepEqual([gpu.dmaAddress?.iommu, gpu.dmaAddress?.kind, gpu.dmaAddress?.mapsTo], ['translated', 'iova', '0x38bf00000000']);
    assert.equal(gpu.dmaAddress?.wrongChoice?.outcome, 'IOMMU_FAULT');
    assert.deepEqual([nvme.dmaAddress?.iommu, nvme.dmaAddress?.kind, nvme.dmaAddress?.address], ['passthrough', 'cpu-physical', '0x38bf00000000']);
    // --iommu sets the default for devices without their own mode.
    const off = json('-t', 'hand-written.json', '--iommu', 'off', '04:00.0', '03:00.0');
    assert.equal(off.clients[0].dmaAddress?.kind, 'cpu-physical');
    // --override replaces fields: ACS off on both downstream ports → the switch routes.
    const routed = json('-t', 'hand-written.json', '--override', 'no-acs.override.json', '04:00.0', '03:00.0');
    assert.deepEqual([routed.clients[0].mapType, routed.clients[0].dmaAddress?.kind], ['bus-address', 'bus-address']);
  });
});

describe('dmalens p2p: errors', () => {
  test('an unknown device names the BDF', () => {
    assertOneLineError(dmalens('p2p', ...SKY, '1a:00.0', '07:00.0'), /p2p: no device 0000:07:00\.0 in skylake-2s\.tvnn\.txt$/);
    assertOneLineError(dmalens('p2p', ...SKY, '0001:1a:00.0', '1b:00.0'), /no device 0001:1a:00\.0/);
  });

  test('usage mistakes', () => {
    assertOneLineError(dmalens('p2p', '1a:00.0', '1b:00.0'), /--topology FILE is required/);
    assertOneLineError(dmalens('p2p', ...SKY, '1a:00.0'), /expected a PROVIDER and at least one CLIENT/);
    assertOneLineError(dmalens('p2p', ...SKY, '1a:00', '1b:00.0'), /'1a:00' is not a PCI address/);
    assertOneLineError(dmalens('p2p', ...SKY, '--cpu', 'arm64', '1a:00.0', '1b:00.0'), /--cpu: expected amd-zen, intel, other; got 'arm64'/);
    assertOneLineError(dmalens('p2p', ...SKY, '--format', 'sarif', '1a:00.0', '1b:00.0'), /--format: expected text, json/);
    assertOneLineError(dmalens('p2p', ...SKY, '--frobnicate', '1a:00.0', '1b:00.0'), /unknown option '--frobnicate'/);
  });

  test('I/O and format errors name the file', () => {
    assertOneLineError(dmalens('p2p', '-t', 'missing.txt', '1a:00.0', '1b:00.0'), /cannot read topology missing\.txt: no such file/);
    assertOneLineError(dmalens('p2p', '-t', '.', '1a:00.0', '1b:00.0'), /cannot read topology \.: is a directory/);
    assertOneLineError(dmalens('p2p', '-t', 'skylake-2s.vvv.txt', '1a:00.0', '1b:00.0'), /p2p: skylake-2s\.vvv\.txt: line 1: /);
    assertOneLineError(dmalens('p2p', ...SKY, '--acs', 'skylake-2s.tvnn.txt', '1a:00.0', '1b:00.0'), /p2p: skylake-2s\.tvnn\.txt: line 1: expected an lspci -vvv/);
    assertOneLineError(dmalens('p2p', ...SKY, '--override', 'skylake-2s.tvnn.txt', '1a:00.0', '1b:00.0'), /p2p: skylake-2s\.tvnn\.txt: not valid JSON/);
  });

  test('help', () => {
    const r = dmalens('p2p', '--help');
    assert.equal(r.code, 0);
    assert.match(r.stdout, /Options for p2p:/);
    assert.match(dmalens('help').stdout, /dmalens p2p --topology FILE/);
  });
});
