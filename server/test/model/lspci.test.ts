/**
 * Topologies from lspci text and from the JSON format. The fixtures under
 * test/fixtures/topology/ follow pciutils' output byte for byte (ls-tree.c's
 * tree drawing, ls-caps.c/ls-ecaps.c capability lines); see the README there.
 */
import { describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ACS_CR, ACS_RR, ACS_SV, ACS_UF, Topology, TopologyError, calcMapTypeAndDist } from '../../src/model/pcie';
import {
  loadTopology,
  mergeDevices,
  parseLspciTree,
  parseLspciVerbose,
  parseTopologyJson,
  splitNameAndIds,
  topologyToJson,
} from '../../src/model/lspci';

const FIXTURES = path.resolve(__dirname, '../../../test/fixtures/topology');
const read = (name: string): string => fs.readFileSync(path.join(FIXTURES, name), 'utf8');

function tree(name: string): Topology {
  return Topology.create(parseLspciTree(read(`${name}.tvnn.txt`)));
}

function both(name: string): Topology {
  return loadTopology({ topology: read(`${name}.tvnn.txt`), verbose: read(`${name}.vvv.txt`) }).topology;
}

const upstream = (t: Topology, bdf: string): string | null => t.upstreamBridge(t.device(bdf)!)?.bdf ?? null;
const chain = (t: Topology, bdf: string): string[] => t.upstreamChain(t.device(bdf)!).map((d) => d.bdf);

describe('lspci -tvnn: 2-socket Skylake-SP server (pciutils >= 3.8 layout)', () => {
  const t = tree('skylake-2s');

  test('every function, bridge and root bus', () => {
    assert.equal(t.devices.length, 113);
    assert.equal(t.devices.filter((d) => d.isBridge).length, 15);
    assert.deepEqual(
      t.hostBridges.map((h) => h.name),
      ['0000:00', '0000:17', '0000:3a', '0000:5d', '0000:80', '0000:85', '0000:ae', '0000:d7', '10000:00'],
    );
  });

  test('names, ids and the brackets inside names', () => {
    const dmi = t.device('0000:00:00.0')!;
    assert.deepEqual([dmi.vendorId, dmi.deviceId, dmi.name], [0x8086, 0x2020, 'Intel Corporation Sky Lake-E DMI3 Registers']);
    const nvme = t.device('1b:00.0')!;
    assert.equal(nvme.name, 'Intel Corporation NVMe Datacenter SSD [3DNAND, Beta Rock Controller]');
    assert.equal(nvme.deviceId, 0x0a54);
    const cx5 = t.device('3b:00.1')!;
    assert.deepEqual([cx5.name, cx5.vendorId, cx5.deviceId], ['Mellanox Technologies MT27800 Family [ConnectX-5]', 0x15b3, 0x1017]);
    // lspci -t never names bridges.
    assert.equal(t.device('17:00.0')!.vendorId, undefined);
  });

  test('bus ranges and parents: the PLX switch under root port 17:00.0', () => {
    const rp = t.device('17:00.0')!;
    assert.deepEqual([rp.secondary, rp.subordinate], [0x18, 0x1d]);
    assert.deepEqual(chain(t, '1a:00.0'), ['0000:1a:00.0', '0000:19:08.0', '0000:18:00.0', '0000:17:00.0']);
    assert.equal(upstream(t, '1b:00.0'), '0000:19:09.0');
    assert.equal(upstream(t, '1c:00.0'), '0000:19:10.0');
    assert.deepEqual(t.children(t.device('19:11.0')!), []); // "\-11.0-[1d]--": an empty slot
    assert.deepEqual(t.children(t.device('18:00.0')!).map((d) => d.bdf), ['0000:19:08.0', '0000:19:09.0', '0000:19:10.0', '0000:19:11.0']);
    assert.equal(upstream(t, '10000:02:00.0'), '10000:00:01.0');
    assert.equal(upstream(t, '80:04.0'), null);
  });

  test('port types inferred from the shape', () => {
    const type = (b: string) => t.device(b)!.portType;
    assert.equal(type('17:00.0'), 'root-port');
    assert.equal(type('18:00.0'), 'switch-upstream');
    assert.equal(type('19:08.0'), 'switch-downstream');
    assert.equal(type('1a:00.0'), 'endpoint');
    assert.equal(type('00:1c.5'), 'root-port');
    assert.equal(type('02:00.0'), 'pcie-to-pci-bridge'); // the BMC's PCIe-to-PCI bridge
    assert.equal(type('03:00.0'), 'pci-device');
    assert.equal(type('00:00.0'), 'rc-endpoint');
    assert.ok(t.devices.every((d) => d.portTypeFrom === 'inferred'));
  });

  test('host bridge devices: 00.0, a Root Port at 02.0, or none', () => {
    const dev = (name: string) => t.hostBridgeDevice(t.hostBridges.find((h) => h.name === name)!)?.bdf ?? null;
    assert.equal(dev('0000:00'), '0000:00:00.0');
    assert.equal(dev('0000:5d'), '0000:5d:02.0');
    assert.equal(dev('0000:80'), null); // 80:04.0, the CBDMA engine, is first
    assert.equal(dev('0000:ae'), null); // ae:05.0, VT-d
  });
});

describe('lspci -tvnn: EPYC Rome (pciutils <= 3.7 layout: root buses descending)', () => {
  const text = read('epyc-rome.tvnn.txt');
  const t = Topology.create(parseLspciTree(text));

  test('every function, bridge and root bus', () => {
    assert.ok(text.startsWith('-+-[0000:60]-'));
    assert.equal(t.devices.length, 92);
    assert.equal(t.devices.filter((d) => d.isBridge).length, 20);
    assert.deepEqual(t.hostBridges.map((h) => h.name), ['0000:00', '0000:20', '0000:40', '0000:60']);
  });

  test('the Broadcom switch, the ConnectX-6 functions, the BMC bridge', () => {
    assert.equal(t.device('22:00.0')!.portType, 'switch-upstream');
    assert.deepEqual(t.children(t.device('23:01.0')!).map((d) => d.bdf), ['0000:25:00.0', '0000:25:00.1']);
    assert.deepEqual(chain(t, '26:00.0'), ['0000:26:00.0', '0000:23:02.0', '0000:22:00.0', '0000:20:03.1']);
    const rc = t.device('20:00.0')!;
    assert.deepEqual([rc.name, rc.vendorId, rc.deviceId], ['Advanced Micro Devices, Inc. [AMD] Starship/Matisse Root Complex', 0x1022, 0x1480]);
    assert.equal(t.device('62:00.0')!.portType, 'pcie-to-pci-bridge');
    assert.equal(t.device('00:18.7')!.deviceId, 0x1497);
  });
});

describe('lspci -tvnn: workstation and a multi-function desktop', () => {
  test('Alder Lake workstation: NVMe and NIC on different CPU root ports', () => {
    const t = tree('workstation-adl');
    assert.equal(t.devices.length, 22);
    assert.equal(t.devices.filter((d) => d.isBridge).length, 5);
    assert.equal(t.hostBridges.length, 1);
    assert.equal(upstream(t, '01:00.0'), '0000:00:01.0');
    assert.equal(upstream(t, '02:00.0'), '0000:00:06.0');
    assert.deepEqual(t.children(t.device('00:1c.2')!), []);
  });

  test('X570: chipset switch, four NIC functions, the GPU behind its own switch', () => {
    const t = tree('x570-multifunction');
    assert.equal(t.devices.length, 52);
    assert.equal(t.devices.filter((d) => d.isBridge).length, 15);
    assert.deepEqual(t.children(t.device('03:04.0')!).map((d) => d.bdf), ['0000:05:00.0', '0000:05:00.1', '0000:05:00.2', '0000:05:00.3']);
    assert.equal(t.device('02:00.0')!.portType, 'switch-upstream');
    assert.equal(t.device('03:05.0')!.portType, 'switch-downstream');
    assert.equal(t.device('06:00.0')!.portType, 'pcie-to-pci-bridge'); // a bridge with an empty bus below
    assert.equal(t.device('0b:00.0')!.portType, 'switch-upstream');
    assert.equal(t.device('0c:00.0')!.portType, 'switch-downstream');
    assert.deepEqual(chain(t, '0d:00.1'), ['0000:0d:00.1', '0000:0c:00.0', '0000:0b:00.0', '0000:00:03.1']);
  });
});

describe('lspci -tvnn: other shapes', () => {
  // Written with pciutils' ls-tree.c logic: <= 3.7 prepends buses, >= 3.8 appends.
  const VF_OLD = `-[0000:00]-+-00.0  Intel Corporation Sky Lake-E DMI3 Registers [8086:2020]
           \\-01.0-[01-02]--+-[0000:02]-+-00.0  Intel Corporation Ethernet Virtual Function 700 Series [8086:154c]
                           |           \\-00.1  Intel Corporation Ethernet Virtual Function 700 Series [8086:154c]
                           \\-[0000:01]-+-00.0  Intel Corporation Ethernet Controller X710 for 10GbE SFP+ [8086:1572]
                                       \\-00.1  Intel Corporation Ethernet Controller X710 for 10GbE SFP+ [8086:1572]
`;
  const VF_NEW = `-[0000:00]-+-00.0  Intel Corporation Sky Lake-E DMI3 Registers [8086:2020]
           \\-01.0-[01-02]--+-[0000:01]-+-00.0  Intel Corporation Ethernet Controller X710 for 10GbE SFP+ [8086:1572]
                           |           \\-00.1  Intel Corporation Ethernet Controller X710 for 10GbE SFP+ [8086:1572]
                           \\-[0000:02]-+-00.0  Intel Corporation Ethernet Virtual Function 700 Series [8086:154c]
                                       \\-00.1  Intel Corporation Ethernet Virtual Function 700 Series [8086:154c]
`;

  test('several buses below one bridge (an SR-IOV VF bus), in both layouts', () => {
    for (const text of [VF_OLD, VF_NEW]) {
      const t = Topology.create(parseLspciTree(text));
      assert.equal(t.devices.length, 6);
      assert.equal(t.hostBridges.length, 1);
      assert.equal(upstream(t, '02:00.1'), '0000:00:01.0');
      assert.equal(t.device('02:00.0')!.deviceId, 0x154c);
      // VF and PF: both hang below 00:01.0 → distance 2 through it.
      const r = calcMapTypeAndDist(t, t.device('02:00.0')!, t.device('01:00.0')!, 'intel');
      assert.deepEqual([r.mapType, r.distance], ['bus-address', 2]);
    }
  });

  test('lspci -t, -tvn and -tvvv forms', () => {
    const bare = parseLspciTree('-[0000:00]-+-00.0\n           +-01.0-[01]----00.0\n           \\-1f.3\n');
    assert.deepEqual(bare.map((d) => [d.bdf, d.name, d.secondary]), [
      ['0000:00:00.0', undefined, undefined],
      ['0000:00:01.0', undefined, 1],
      ['0000:01:00.0', undefined, undefined],
      ['0000:00:1f.3', undefined, undefined],
    ]);
    const unconfigured = parseLspciTree('-[0000:00]-+-00.0  8086:4660\n           \\-1c.0--\n');
    assert.deepEqual(unconfigured.map((d) => d.bdf), ['0000:00:00.0', '0000:00:1c.0']);
    const numeric = parseLspciTree('-[0000:00]-+-00.0  8086:4660\n           \\-02.0  8086:4680\n');
    assert.deepEqual(numeric.map((d) => [d.vendorId, d.deviceId, d.name]), [
      [0x8086, 0x4660, undefined],
      [0x8086, 0x4680, undefined],
    ]);
    const withBars = parseLspciTree(
      [
        '-[0000:00]-+-00.0  Intel Corporation 12th Gen Core Processor Host Bridge/DRAM Registers [8086:4660]',
        '           +-01.0-[01]----00.0  Mellanox Technologies MT27800 Family [ConnectX-5] [15b3:1017]',
        '           |                      Region 0: Memory at 6000000000 (64-bit, prefetchable) [size=32M]',
        '           \\-02.0  Intel Corporation AlderLake-S GT1 [8086:4680]',
        '                    Region 0: Memory at 6002000000 (64-bit, non-prefetchable) [size=16M]',
        '                    Region 2: Memory at 4000000000 (64-bit, prefetchable) [size=256M]',
        '                    Region 4: I/O ports at 5000 [size=64]',
        '',
      ].join('\n'),
    );
    const cx5 = withBars.find((d) => d.bdf === '0000:01:00.0')!;
    assert.deepEqual(cx5.bars, [{ index: 0, cpu: 0x6000000000n, bus: 0x6000000000n, size: 32n << 20n, prefetchable: true }]);
    assert.deepEqual(withBars.find((d) => d.bdf === '0000:00:02.0')!.bars!.map((b) => b.index), [0, 2]);
  });

  test('names: ids are the last [vvvv:dddd]', () => {
    assert.deepEqual(splitNameAndIds('NVIDIA Corporation GA100 [A100 PCIe 40GB] [10de:20f1]'), {
      name: 'NVIDIA Corporation GA100 [A100 PCIe 40GB]',
      vendorId: 0x10de,
      deviceId: 0x20f1,
    });
    assert.deepEqual(splitNameAndIds('Device [1234:5678]'), { name: 'Device', vendorId: 0x1234, deviceId: 0x5678 });
    assert.deepEqual(splitNameAndIds('Some Vendor Widget'), { name: 'Some Vendor Widget' });
  });

  test('malformed trees are errors with a line number', () => {
    assert.throws(() => parseLspciTree('hello\n'), (e: Error) => e instanceof TopologyError && /^line 1: /.test(e.message));
    assert.throws(
      () => parseLspciTree('-[0000:00]-+-00.0  A [8086:0001]\n           +-zz.0  B [8086:0002]\n'),
      /: line 2: expected a device like '00\.0' at column 14/,
    );
    // The last sibling must be "\-": a list that stops at "+-" is cut short.
    assert.throws(() => parseLspciTree('-[0000:00]-+-00.0  A [8086:0001]\n'), /ends in the middle of a bus/);
    assert.throws(() => parseLspciTree(''), /empty/);
  });
});

describe('lspci -vvv', () => {
  test('headers, Express port types, ACS, BARs, drivers', () => {
    const { devices, warnings } = parseLspciVerbose(read('skylake-2s.vvv.txt'));
    assert.deepEqual(warnings, []);
    assert.equal(devices.length, 26);
    assert.equal(devices.filter((d) => d.acs).length, 11);
    const dsp = devices.find((d) => d.bdf === '0000:19:08.0')!;
    assert.deepEqual([dsp.classCode, dsp.vendorId, dsp.deviceId, dsp.portType], [0x0604, 0x10b5, 0x8747, 'switch-downstream']);
    assert.equal(dsp.name, 'PLX Technology, Inc. PEX 8747 48-Lane, 5-Port PCI Express Gen 3 (8.0 GT/s) Switch');
    assert.deepEqual(dsp.acs, { ctrl: ACS_SV | ACS_RR | ACS_CR | ACS_UF, cap: 0x7f });
    assert.deepEqual([dsp.secondary, dsp.subordinate, dsp.driver, dsp.iommuGroup], [0x1a, 0x1a, 'pcieport', 28]);
    const gpu = devices.find((d) => d.bdf === '0000:1a:00.0')!;
    assert.deepEqual(
      gpu.bars.map((b) => [b.index, b.cpu.toString(16), b.size, b.prefetchable]),
      [
        [0, 'c5000000', 16n << 20n, false],
        [1, '38b000000000', 32n << 30n, true],
        [3, '38b800000000', 32n << 20n, true],
      ],
    );
    // The DMI3 host bridge claims to be a Root Port; CBDMA and VMD are RCiEPs.
    assert.equal(devices.find((d) => d.bdf === '0000:00:00.0')!.portType, 'root-port');
    assert.equal(devices.find((d) => d.bdf === '0000:80:04.0')!.portType, 'rc-endpoint');
    assert.equal(devices.find((d) => d.bdf === '10000:01:00.0')!.driver, 'nvme');
  });

  test('merged into the tree: ids of bridges, explicit port types, ACS', () => {
    const t = both('skylake-2s');
    const rp = t.device('17:00.0')!;
    assert.deepEqual([rp.vendorId, rp.deviceId, rp.portType, rp.portTypeFrom], [0x8086, 0x2030, 'root-port', 'lspci-vvv']);
    assert.equal(rp.acs?.ctrl, 0x1d);
    assert.equal(t.device('00:00.0')!.portType, 'root-port');
    assert.equal(t.device('19:11.0')!.acs?.ctrl, 0x1d);
    assert.equal(t.device('1a:00.0')!.acs, undefined); // no ACS capability
    assert.equal(t.device('3b:00.0')!.driver, 'mlx5_core');
    // Devices -vvv does not list keep their inferred types.
    assert.equal(t.device('02:00.0')!.portTypeFrom, 'inferred');
  });

  test('other machines', () => {
    const epyc = both('epyc-rome');
    assert.equal(epyc.device('23:02.0')!.acs?.ctrl, 0x1d);
    assert.equal(epyc.device('22:00.0')!.acs, undefined);
    const x570 = both('x570-multifunction');
    // The X710 functions carry ACS themselves (multi-function isolation).
    assert.deepEqual([0, 1, 2, 3].map((f) => x570.device(`05:00.${f}`)!.acs?.ctrl), [0x0c, 0x0c, 0x0c, 0x0c]);
    assert.equal(x570.device('0c:00.0')!.portTypeFrom, 'lspci-vvv');
    const ws = both('workstation-adl');
    assert.deepEqual([ws.device('00:06.0')!.vendorId, ws.device('00:06.0')!.deviceId], [0x8086, 0x464d]);
  });

  test('"<access denied>" (not run as root) is a warning; pciutils >= 3.11 "IntMsgNum" is read', () => {
    const text = [
      '00:01.0 PCI bridge [0604]: Intel Corporation 12th Gen Core Processor PCI Express x16 Controller #1 [8086:460d] (rev 02) (prog-if 00 [Normal decode])',
      '\tBus: primary=00, secondary=01, subordinate=01, sec-latency=0',
      '\tCapabilities: <access denied>',
      '\tKernel driver in use: pcieport',
      '',
      '01:00.0 Ethernet controller [0200]: Mellanox Technologies MT27800 Family [ConnectX-5] [15b3:1017]',
      '\tCapabilities: [60] Express (v2) Endpoint, IntMsgNum 0',
      '',
    ].join('\n');
    const { devices, warnings } = parseLspciVerbose(text);
    assert.equal(devices[0].capabilitiesHidden, true);
    assert.equal(devices[0].portType, undefined);
    assert.equal(devices[1].portType, 'endpoint');
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /without root/);
  });

  test('text that is not lspci -vvv is an error with a line number', () => {
    assert.throws(() => parseLspciVerbose(read('skylake-2s.tvnn.txt')), /: line 1: expected an lspci -vvv device line/);
    assert.throws(() => parseLspciVerbose('00:01.0 PCI bridge: X\n\t\tACSCtl:\tReqRedir* Foo\n'), /: line 2: bad ACS flag/);
  });
});

describe('the JSON format', () => {
  test('the hand-written world (docs/topology.md)', () => {
    const doc = parseTopologyJson(read('hand-written.json'));
    assert.equal(doc.cpu, 'intel');
    assert.equal(doc.iommu, 'translated');
    const t = Topology.create(doc.devices, doc);
    assert.equal(t.devices.length, 12);
    const dsp = t.device('02:00.0')!;
    assert.deepEqual([dsp.portType, dsp.portTypeFrom, dsp.secondary, dsp.acs?.ctrl, dsp.acs?.cap], ['switch-downstream', 'json', 3, 0x1d, 0x7f]);
    assert.equal(t.device('02:02.0')!.acs?.ctrl, 29); // a register value works too
    const cmb = t.device('04:00.0')!.bars[1];
    assert.deepEqual([cmb.index, cmb.cpu, cmb.bus, cmb.size], [2, 0x38bf00000000n, 0x38bf00000000n, 256n << 20n]);
    assert.equal(t.device('05:00.0')!.iommu, 'passthrough');
    assert.equal(t.iommuOf(t.device('03:00.0')!), 'translated');
    assert.equal(t.device('06:00.2')!.physfn, '0000:06:00.0');
    assert.equal(upstream(t, '06:00.2'), '0000:00:03.0');
  });

  test('round trip through topologyToJson', () => {
    const t = both('skylake-2s');
    const again = Topology.create(parseTopologyJson(JSON.stringify(topologyToJson(t))).devices);
    assert.equal(again.devices.length, t.devices.length);
    for (const d of t.devices) {
      const e = again.device(d.bdf)!;
      assert.deepEqual(
        [e.vendorId, e.deviceId, e.portType, e.secondary, e.subordinate, e.acs, e.bars, e.driver],
        [d.vendorId, d.deviceId, d.portType, d.secondary, d.subordinate, d.acs, d.bars, d.driver],
        d.bdf,
      );
    }
  });

  test('mistakes are errors that say where', () => {
    const bad = (devices: unknown[]) => () => parseTopologyJson(JSON.stringify({ devices }));
    assert.throws(bad([{ bdf: '00:00.0', scondary: '01' }]), /devices\[0\]: unknown field 'scondary'/);
    assert.throws(bad([{ bdf: '00:01.0', secondary: '1ff' }]), /device 0000:00:01\.0: 'secondary': expected a bus number/);
    assert.throws(bad([{ bdf: '00:01.0', acs: 'ReqRedir+ Bogus+' }]), /'acs': bad ACS flag 'Bogus\+'/);
    assert.throws(bad([{ bdf: '00:01.0', type: 'bridge' }]), /'type': expected one of endpoint/);
    assert.throws(bad([{ bdf: '00:01.0', bars: [{ index: 0, cpu: '0x1000', size: '4Q' }] }]), /bars\[0\]: 'size'/);
    assert.throws(() => parseTopologyJson('{"devices": [}'), /not valid JSON/);
    assert.throws(() => parseTopologyJson('{"devices": [], "format": "other/2"}'), /'format' must be/);
  });

  test('overrides replace fields and add devices', () => {
    const base = parseLspciTree(read('workstation-adl.tvnn.txt'));
    const over = parseTopologyJson(
      JSON.stringify({ devices: [{ bdf: '00:06.0', type: 'root-port', acs: 'ReqRedir+' }, { bdf: '05:00.0', id: '8086:1533' }] }),
    );
    const t = Topology.create(mergeDevices(base, over.devices));
    assert.equal(t.devices.length, 23);
    assert.equal(t.device('00:06.0')!.acs?.ctrl, ACS_RR);
    assert.equal(t.device('00:06.0')!.secondary, 2); // kept from the tree
    assert.equal(upstream(t, '05:00.0'), '0000:00:1c.2');
  });

  test('loadTopology says where ACS came from', () => {
    assert.equal(loadTopology({ topology: read('workstation-adl.tvnn.txt') }).acsSource, 'none');
    assert.equal(loadTopology({ topology: read('hand-written.json') }).acsSource, 'json');
    const l = loadTopology({ topology: read('workstation-adl.tvnn.txt'), verbose: read('workstation-adl.vvv.txt') });
    assert.equal(l.acsSource, 'lspci-vvv');
    assert.equal(l.format, 'lspci-tree');
    assert.deepEqual(l.warnings, []);
  });

  test('the example in docs/topology.md loads and answers as the text says', () => {
    const md = fs.readFileSync(path.resolve(__dirname, '../../../../docs/topology.md'), 'utf8');
    const blocks = [...md.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => m[1]);
    assert.equal(blocks.length, 2);
    const t = loadTopology({ topology: blocks[0], overrides: [blocks[1]] }).topology;
    assert.equal(t.devices.length, 7);
    assert.equal(calcMapTypeAndDist(t, t.device('04:00.0')!, t.device('03:00.0')!, 'intel').mapType, 'bus-address');
    const before = loadTopology({ topology: blocks[0] }).topology;
    assert.equal(calcMapTypeAndDist(before, before.device('04:00.0')!, before.device('03:00.0')!, 'intel').mapType, 'thru-host-bridge');
  });
});
