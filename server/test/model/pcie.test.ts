/**
 * The PCIe model against drivers/pci/p2pdma.c (Debian linux-source-6.12).
 * Every expected value below is worked out by hand from the C code; the
 * comments name the lines (of 6.12's p2pdma.c unless said otherwise) that
 * decide it:
 *
 *   388-403  pci_bridge_has_acs_redir()   acs_cap, ctrl & (RR | CR | EC)
 *   413-424  cpu_supports_p2pdma()        AMD && family >= 0x17
 *   432-447  pci_p2pdma_whitelist[]
 *   466-483  pci_host_bridge_dev()        first device: devfn 00.0 or a Root Port
 *   485-512  __host_bridge_whitelist()    REQ_SAME_HOST_BRIDGE at 501
 *   518-532  host_bridge_whitelist()      same host: 524-525; else a && b: 527-528
 *   596-616  outer/inner loops            dist_a, dist_b, ACS on a at 599
 *   618-619  no common bridge             dist = dist_a + dist_b, host bridge path
 *   621-634  check_b_path_acs             ACS on the client's side, excluding a
 *   638-641  no ACS → BUS_ADDR
 *   643-650  warnings, acs_redirects = true
 *   653-659  !cpu_supports_p2pdma() && !host_bridge_whitelist() → NOT_SUPPORTED
 *   687-726  pci_p2pdma_distance_many()
 * and include/linux/pci.h 774-781 pci_upstream_bridge().
 */
import { describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import {
  ACS_CR,
  ACS_DT,
  ACS_EC,
  ACS_RR,
  ACS_SV,
  ACS_TB,
  ACS_UF,
  type CpuKind,
  type PciDeviceInput,
  P2PDMA_WHITELIST,
  Topology,
  TopologyError,
  calcMapTypeAndDist,
  cpuSupportsP2pdma,
  disableAcsRedirParam,
  formatAcs,
  hostBridgeWhitelist,
  p2pAddressing,
  p2pDmaAddress,
  p2pPicture,
  parseAcs,
  pciBridgeHasAcsRedir,
  pciP2pdmaDistanceMany,
  routeDmaWrite,
} from '../../src/model/pcie';

const REDIR = 'SrcValid+ ReqRedir+ CmplRedir+ UpstreamFwd+';

/**
 * A one-socket Intel machine, root bus 0000:00:
 *
 *   00:00.0  host bridge device (id given per test)
 *   00:01.0  root port ─ 01:00.0 switch upstream port
 *                          ├ 02:00.0 DSP ─ 03:00.0 GPU (fn 0), 03:00.1 (fn 1)
 *                          └ 02:01.0 DSP ─ 04:00.0 NVMe
 *   00:02.0  root port ─ 06:00.0 NIC
 *   00:04.0  RCiEP (DMA engine)
 *   00:05.0  RCiEP
 */
function intelWorld(opts: { hostId?: string; acs?: Record<string, string>; extra?: PciDeviceInput[] } = {}): Topology {
  const hostId = opts.hostId ?? '8086:2020';
  const [v, d] = hostId.split(':').map((x) => parseInt(x, 16));
  const acs = (bdf: string): PciDeviceInput['acs'] => (opts.acs?.[bdf] ? { ctrl: parseAcs(opts.acs[bdf]) } : undefined);
  const dev = (bdf: string, more: Partial<PciDeviceInput> = {}): PciDeviceInput => ({ bdf, acs: acs(bdf), ...more });
  return Topology.create([
    dev('00:00.0', { vendorId: v, deviceId: d }),
    dev('00:01.0', { portType: 'root-port', secondary: 0x01, subordinate: 0x04, vendorId: 0x8086, deviceId: 0x2030 }),
    dev('01:00.0', { portType: 'switch-upstream', secondary: 0x02, subordinate: 0x04 }),
    dev('02:00.0', { portType: 'switch-downstream', secondary: 0x03 }),
    dev('02:01.0', { portType: 'switch-downstream', secondary: 0x04 }),
    dev('03:00.0', { vendorId: 0x10de, deviceId: 0x1db6, bars: [{ index: 1, cpu: 0x38b000000000n, bus: 0x38b000000000n, size: 32n << 30n }] }),
    dev('03:00.1', { vendorId: 0x10de, deviceId: 0x10f2, bars: [{ index: 0, cpu: 0xc5080000n, bus: 0xc5080000n, size: 0x4000n }] }),
    dev('04:00.0', { vendorId: 0x8086, deviceId: 0x0a54, bars: [{ index: 0, cpu: 0xc6010000n, bus: 0xc6010000n, size: 0x4000n }] }),
    dev('00:02.0', { portType: 'root-port', secondary: 0x06, vendorId: 0x8086, deviceId: 0x2031 }),
    dev('06:00.0', { vendorId: 0x15b3, deviceId: 0x1017 }),
    dev('00:04.0', { vendorId: 0x8086, deviceId: 0x2021 }),
    dev('00:05.0', { vendorId: 0x8086, deviceId: 0x2024 }),
    ...(opts.extra ?? []),
  ]);
}

function calc(t: Topology, provider: string, client: string, cpu: CpuKind = 'intel') {
  return calcMapTypeAndDist(t, t.device(provider)!, t.device(client)!, cpu);
}

describe('pci_upstream_bridge() and pci_host_bridge_dev()', () => {
  const t = intelWorld();
  const up = (bdf: string): string | null => t.upstreamBridge(t.device(bdf)!)?.bdf ?? null;

  test('root ports and every device on a root bus have no upstream bridge', () => {
    // pci.h 777: pci_is_root_bus(dev->bus) → NULL.
    assert.equal(up('00:01.0'), null);
    assert.equal(up('00:00.0'), null);
    assert.equal(up('00:04.0'), null);
  });

  test('below a port, dev->bus->self', () => {
    assert.equal(up('01:00.0'), '0000:00:01.0'); // the root port above a switch upstream port
    assert.equal(up('02:00.0'), '0000:01:00.0'); // the upstream port above a downstream port
    assert.equal(up('03:00.1'), '0000:02:00.0');
    assert.equal(up('06:00.0'), '0000:00:02.0');
  });

  test('a virtual function answers for its physical function (pci_physfn())', () => {
    const w = intelWorld({ extra: [{ bdf: '06:00.4', physfn: '06:00.0' }] });
    assert.equal(w.upstreamBridge(w.device('06:00.4')!)?.bdf, '0000:00:02.0');
    // VF and PF: a = VF, bb runs PF, 00:02.0; a = 00:02.0 (dist_a 1), bb = PF (0), 00:02.0 (1): dist 2, not 0.
    const r = calcMapTypeAndDist(w, w.device('06:00.4')!, w.device('06:00.0')!, 'intel');
    assert.deepEqual([r.mapType, r.distance, r.commonUpstream], ['bus-address', 2, '0000:00:02.0']);
  });

  test('host bridge device: devfn 00.0 whatever it is, else a Root Port, else none (466-483)', () => {
    const host = t.hostBridges[0];
    assert.equal(t.hostBridgeDevice(host)?.bdf, '0000:00:00.0');
    const w = Topology.create([
      { bdf: '5d:02.0', portType: 'root-port', secondary: 0x5e, vendorId: 0x8086, deviceId: 0x2032 },
      { bdf: '5d:05.0', vendorId: 0x8086, deviceId: 0x2034 },
      { bdf: '5e:00.0' },
      { bdf: '80:04.0', vendorId: 0x8086, deviceId: 0x2021 },
      { bdf: '80:05.0', vendorId: 0x8086, deviceId: 0x2024 },
    ]);
    const [h5d, h80] = w.hostBridges;
    assert.equal(h5d.name, '0000:5d');
    assert.equal(w.hostBridgeDevice(h5d)?.bdf, '0000:5d:02.0'); // first device, a Root Port at devfn 10.0
    assert.equal(h80.name, '0000:80');
    assert.equal(w.hostBridgeDevice(h80), null); // first device 80:04.0: devfn 0x20, an RCiEP
  });
});

describe('pci_bridge_has_acs_redir()', () => {
  const dev = (ctrl?: number) =>
    Topology.create([{ bdf: '00:00.0', ...(ctrl !== undefined && { acs: { ctrl } }) }]).devices[0];

  test('only RR, CR and EC count (399: PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_EC)', () => {
    assert.equal(pciBridgeHasAcsRedir(dev()), false); // no ACS capability: 393-395
    assert.equal(pciBridgeHasAcsRedir(dev(ACS_SV | ACS_TB | ACS_UF | ACS_DT)), false);
    assert.equal(pciBridgeHasAcsRedir(dev(ACS_RR)), true);
    assert.equal(pciBridgeHasAcsRedir(dev(ACS_CR)), true);
    assert.equal(pciBridgeHasAcsRedir(dev(ACS_EC)), true);
    assert.equal(pciBridgeHasAcsRedir(dev(0)), false);
  });

  test('lspci notation round-trips', () => {
    const v = parseAcs('SrcValid+ TransBlk- ReqRedir+ CmplRedir+ UpstreamFwd+ EgressCtrl- DirectTrans-');
    assert.equal(v, ACS_SV | ACS_RR | ACS_CR | ACS_UF);
    assert.equal(v, 0x1d);
    assert.equal(formatAcs(v), 'SrcValid+ TransBlk- ReqRedir+ CmplRedir+ UpstreamFwd+ EgressCtrl- DirectTrans-');
    assert.throws(() => parseAcs('ReqRedir? Bogus+'), TopologyError);
  });
});

describe('calc_map_type_and_dist()', () => {
  test('same function: distance 0, bus address', () => {
    // a = provider, bb = client = a at once (607): goto check_b_path_acs with
    // dist_a = dist_b = 0; 625 breaks at once; acs_cnt 0 → 638-640 BUS_ADDR.
    const r = calc(intelWorld(), '03:00.0', '03:00.0');
    assert.equal(r.mapType, 'bus-address');
    assert.equal(r.distance, 0);
    assert.equal(r.hostBridgeConsulted, false);
    assert.deepEqual(r.path, ['0000:03:00.0']);
    assert.match(r.reason, /same function 0000:03:00\.0, with no ACS redirect/);
  });

  test('two functions of one device: distance 2, bus address', () => {
    // a = 03:00.0: bb walks 03:00.1, 02:00.0, 01:00.0, 00:01.0, no match.
    // a = 02:00.0 (dist_a 1): bb = 03:00.1 (dist_b 0), then 02:00.0 (dist_b 1) == a.
    // dist = 1 + 1 = 2; no ACS anywhere → BUS_ADDR.
    const r = calc(intelWorld(), '03:00.0', '03:00.1');
    assert.deepEqual([r.mapType, r.distance, r.commonUpstream], ['bus-address', 2, '0000:02:00.0']);
    assert.equal(r.reason, 'common upstream bridge 0000:02:00.0 with no ACS redirect');
  });

  test('two endpoints under one switch: distance 4, bus address', () => {
    // a: 03:00.0 (0), 02:00.0 (1), 01:00.0 (2); for a = 01:00.0 the inner
    // loop goes 04:00.0 (0), 02:01.0 (1), 01:00.0 (2) == a. dist = 2 + 2 = 4.
    const r = calc(intelWorld(), '03:00.0', '04:00.0');
    assert.deepEqual([r.mapType, r.distance, r.hops], ['bus-address', 4, 4]);
    assert.equal(r.reason, 'common upstream bridge 0000:01:00.0 with no ACS redirect');
    assert.deepEqual(r.path, ['0000:04:00.0', '0000:02:01.0', '0000:01:00.0', '0000:02:00.0', '0000:03:00.0']);
    assert.deepEqual(r.kernelLog, []);
  });

  test('ACS ReqRedir on a switch downstream port, allowlisted host bridge: through the host bridge', () => {
    // 599: a = 02:00.0 has RR → listed. check_b_path_acs (628) tests 04:00.0
    // and 02:01.0 (clear) and stops at 01:00.0. acs_cnt 1 → 643-650, then
    // 653: host_bridge_whitelist(): one host bridge (524-525), its device
    // 00:00.0 is 8086:2020, flags 0 → true → THRU_HOST_BRIDGE, dist still 4.
    const r = calc(intelWorld({ acs: { '02:00.0': REDIR } }), '03:00.0', '04:00.0');
    assert.deepEqual([r.mapType, r.distance], ['thru-host-bridge', 4]);
    assert.deepEqual(r.acsRedirects.map((a) => a.bdf), ['0000:02:00.0']);
    assert.equal(r.disableAcsRedir, '0000:02:00.0');
    assert.equal(r.hostBridgeConsulted, true);
    assert.equal(
      r.reason,
      'common upstream bridge 0000:01:00.0, but ACS redirect is set on 0000:02:00.0 (ReqRedir+ CmplRedir+); host bridge 8086:2020 (0000:00:00.0) is on the allowlist',
    );
    assert.deepEqual(r.kernelLog, [
      'pci 0000:04:00.0: ACS redirect is set between the client and provider (0000:03:00.0)',
      'pci 0000:04:00.0: to disable ACS redirect for this path, add the kernel parameter: pci=disable_acs_redir=0000:02:00.0',
    ]);
    // The request climbs to the root complex and back down.
    assert.deepEqual(r.path, [
      '0000:04:00.0', '0000:02:01.0', '0000:01:00.0', '0000:00:01.0', 'hostbridge:0000:00',
      '0000:00:01.0', '0000:01:00.0', '0000:02:00.0', '0000:03:00.0',
    ]);
  });

  test('ACS redirect, host bridge not on the allowlist: not supported, and the whitelist warning is printed', () => {
    // As above up to 653; 00:00.0 is 8086:4660, no entry → 507-509 warns
    // because warn = acs_redirects = true; 655-658 → NOT_SUPPORTED.
    const r = calc(intelWorld({ hostId: '8086:4660', acs: { '02:00.0': REDIR, '02:01.0': REDIR } }), '03:00.0', '04:00.0');
    assert.equal(r.mapType, 'not-supported');
    assert.equal(r.distance, -1);
    assert.equal(r.hops, 4);
    // Provider side first (599), then the client side (628).
    assert.equal(r.disableAcsRedir, '0000:02:00.0;0000:02:01.0');
    assert.deepEqual(r.kernelLog.slice(2), [
      'pci 0000:00:00.0: Host bridge not in P2PDMA whitelist: 8086:4660',
      'pci 0000:04:00.0: cannot be used for peer-to-peer DMA as the client and provider (0000:03:00.0) do not share an upstream bridge or whitelisted host bridge',
    ]);
    assert.deepEqual(r.breakAt, { node: 'hostbridge:0000:00', reason: 'host bridge 8086:4660 (0000:00:00.0) is not on the allowlist' });
  });

  test("the common bridge's own ACS counts; a bridge above it does not", () => {
    // 599 tests a before the inner loop finds a == bb: for two functions
    // under 02:00.0, a = 02:00.0 is the common device and is tested.
    const own = calc(intelWorld({ acs: { '02:00.0': REDIR } }), '03:00.0', '03:00.1');
    assert.deepEqual([own.mapType, own.distance, own.disableAcsRedir], ['thru-host-bridge', 2, '0000:02:00.0']);
    // The root port is above the common 01:00.0: the loops never reach it.
    const above = calc(intelWorld({ acs: { '00:01.0': REDIR } }), '03:00.0', '04:00.0');
    assert.equal(above.mapType, 'bus-address');
  });

  test('ACS on an endpoint counts too, even for the same function', () => {
    // pci_bridge_has_acs_redir() does not check for a bridge: a = provider
    // (a multi-function endpoint with ReqRedir+) is listed at 599 before 607
    // matches. acs_cnt 1 → through the host bridge at distance 0.
    const t = intelWorld({ acs: { '03:00.0': 'ReqRedir+ CmplRedir+' } });
    const r = calc(t, '03:00.0', '03:00.0');
    assert.deepEqual([r.mapType, r.distance, r.disableAcsRedir], ['thru-host-bridge', 0, '0000:03:00.0']);
    // The client function is tested on the b path (628).
    const r2 = calc(intelWorld({ acs: { '03:00.1': 'ReqRedir+' } }), '03:00.0', '03:00.1');
    assert.deepEqual([r2.mapType, r2.disableAcsRedir], ['thru-host-bridge', '0000:03:00.1']);
  });

  test('different root ports under an allowlisted Intel host bridge: through the host bridge', () => {
    // No a ever equals a bb: dist_a = 4 (03:00.0, 02:00.0, 01:00.0, 00:01.0),
    // dist_b = 2 (06:00.0, 00:02.0) after the last inner loop; 618 dist = 6.
    // 653 with warn = false: same host bridge, 8086:2020 → THRU_HOST_BRIDGE.
    const r = calc(intelWorld({ acs: { '02:00.0': REDIR } }), '03:00.0', '06:00.0');
    assert.deepEqual([r.mapType, r.distance], ['thru-host-bridge', 6]);
    assert.equal(r.reason, 'no common upstream bridge; host bridge 8086:2020 (0000:00:00.0) is on the allowlist');
    // ACS on the provider's chain is looked at (599) but never reported here.
    assert.deepEqual(r.acsRedirects, []);
    assert.equal(r.disableAcsRedir, undefined);
    assert.deepEqual(r.kernelLog, []);
  });

  test('a host bridge not on the allowlist: not supported, without the whitelist warning', () => {
    // Same walk, dist 6; 8086:4660 has no entry, warn = false → 507 silent.
    const r = calc(intelWorld({ hostId: '8086:4660' }), '03:00.0', '06:00.0');
    assert.deepEqual([r.mapType, r.distance, r.hops], ['not-supported', -1, 6]);
    assert.equal(r.kernelLog.length, 1);
    assert.match(r.kernelLog[0], /cannot be used for peer-to-peer DMA/);
  });

  test('AMD Zen: allowed without looking at the allowlist; other CPUs are not', () => {
    // 653: cpu_supports_p2pdma() true short-circuits host_bridge_whitelist().
    const t = intelWorld({ hostId: '1022:1480' });
    const zen = calc(t, '03:00.0', '06:00.0', 'amd-zen');
    assert.deepEqual([zen.mapType, zen.distance, zen.hostBridgeConsulted], ['thru-host-bridge', 6, false]);
    assert.match(zen.reason, /cpu_supports_p2pdma\(\) allows any path/);
    assert.equal(calc(t, '03:00.0', '06:00.0', 'intel').mapType, 'not-supported');
    assert.equal(calc(t, '03:00.0', '06:00.0', 'other').mapType, 'not-supported');
    assert.equal(cpuSupportsP2pdma('amd-zen'), true);
    assert.equal(cpuSupportsP2pdma('intel'), false);
  });

  test('two RCiEPs on one root bus: no upstream bridges, distance 2 through the host bridge', () => {
    // a = 00:04.0: bb = 00:05.0 (dist_b 1), then NULL; a = NULL (dist_a 1). dist 2.
    const r = calc(intelWorld(), '00:04.0', '00:05.0');
    assert.deepEqual([r.mapType, r.distance, r.commonUpstream], ['thru-host-bridge', 2, undefined]);
  });

  describe('REQ_SAME_HOST_BRIDGE (0x3c00, 0x2f00)', () => {
    /** Root bus 00 and 80, each with a host bridge device at 00.0 and two root ports. */
    function twoHosts(a: number, b: number): Topology {
      return Topology.create([
        { bdf: '00:00.0', vendorId: 0x8086, deviceId: a },
        { bdf: '00:01.0', portType: 'root-port', secondary: 0x01 },
        { bdf: '01:00.0' },
        { bdf: '00:02.0', portType: 'root-port', secondary: 0x02 },
        { bdf: '02:00.0' },
        { bdf: '80:00.0', vendorId: 0x8086, deviceId: b },
        { bdf: '80:01.0', portType: 'root-port', secondary: 0x81 },
        { bdf: '81:00.0' },
      ]);
    }

    for (const id of [0x3c00, 0x2f00]) {
      const hex = id.toString(16);
      test(`8086:${hex}: supported within one host bridge, not across two`, () => {
        const t = twoHosts(id, id);
        // Same host bridge: 525 passes same_host_bridge = true; 501 does not fire.
        const within = calc(t, '01:00.0', '02:00.0');
        assert.deepEqual([within.mapType, within.distance], ['thru-host-bridge', 4]);
        // Different: 527 passes false; 501 fires → false, 528 never evaluated.
        const across = calc(t, '01:00.0', '81:00.0');
        assert.deepEqual([across.mapType, across.distance, across.hops], ['not-supported', -1, 4]);
        assert.equal(across.hostBridges.length, 1);
        assert.equal(across.hostBridges[0].hostBridge.name, '0000:00');
        assert.match(across.reason, new RegExp(`^no common upstream bridge; different host bridges 0000:00 and 0000:80; host bridge 8086:${hex} \\(0000:00:00\\.0\\)`));
        assert.match(across.reason, /same host bridge only/);
        assert.deepEqual(across.breakAt?.node, 'hostbridge:0000:00');
      });
    }

    test('across host bridges both must pass: 2020 then 2f00 fails on the second', () => {
      const t = twoHosts(0x2020, 0x2f00);
      const hb = hostBridgeWhitelist(t, t.device('01:00.0')!, t.device('81:00.0')!, false);
      assert.deepEqual(hb.verdicts.map((v) => v.allowed), [true, false]);
      assert.equal(calc(t, '01:00.0', '81:00.0').breakAt?.node, 'hostbridge:0000:80');
      assert.equal(calc(twoHosts(0x2020, 0x2030), '01:00.0', '81:00.0').mapType, 'thru-host-bridge');
    });

    test('the allowlist table is 6.12 verbatim', () => {
      assert.deepEqual(
        P2PDMA_WHITELIST.map((e) => [e.vendor.toString(16), e.device.toString(16).padStart(4, '0'), e.sameHostBridgeOnly]),
        [
          ['8086', '3c00', true],
          ['8086', '3c01', true],
          ['8086', '2f00', true],
          ['8086', '2f01', true],
          ['8086', '2030', false],
          ['8086', '2031', false],
          ['8086', '2032', false],
          ['8086', '2033', false],
          ['8086', '2020', false],
          ['8086', '09a2', false],
        ],
      );
    });
  });

  test('different PCI domains never share a bridge', () => {
    const t = intelWorld({
      extra: [
        { bdf: '10000:00:00.0', portType: 'root-port', secondary: 0x01, vendorId: 0x8086, deviceId: 0x2030 },
        { bdf: '10000:01:00.0' },
      ],
    });
    // dist_a 4, dist_b 2 (10000:01:00.0, 10000:00:00.0); both host bridges allowlisted.
    const r = calc(t, '03:00.0', '10000:01:00.0');
    assert.deepEqual([r.mapType, r.distance], ['thru-host-bridge', 6]);
    assert.deepEqual(r.hostBridges.map((v) => v.hostBridge.name), ['0000:00', '10000:00']);
  });
});

describe('pci_p2pdma_distance_many()', () => {
  test('sums the clients; -1 when one is not supported', () => {
    const t = intelWorld({ hostId: '8086:4660' });
    const p = t.device('03:00.0')!;
    const c = (...b: string[]) => b.map((x) => t.device(x)!);
    // 0 (same function) + 2 (sibling function) + 4 (switch) = 6.
    assert.equal(pciP2pdmaDistanceMany(t, p, c('03:00.0', '03:00.1', '04:00.0'), 'intel').distance, 6);
    // 06:00.0 needs the host bridge, which is not allowlisted → 722-723.
    const many = pciP2pdmaDistanceMany(t, p, c('03:00.1', '06:00.0', '04:00.0'), 'intel');
    assert.equal(many.distance, -1);
    assert.deepEqual(many.clients.map((r) => r.distance), [2, -1, 4]);
    // Without verbose the loop breaks at the first unsupported client (716-717).
    assert.equal(pciP2pdmaDistanceMany(t, p, c('03:00.1', '06:00.0', '04:00.0'), 'intel', false).clients.length, 2);
    // No clients → -1 (696-697).
    assert.equal(pciP2pdmaDistanceMany(t, p, [], 'intel').distance, -1);
  });
});

describe('the kernel message buffer', () => {
  test('drops the last ";", and truncates at 127 characters like the 128-byte seq_buf', () => {
    assert.equal(disableAcsRedirParam(['0000:02:00.0', '0000:02:01.0']), '0000:02:00.0;0000:02:01.0');
    const ten = Array.from({ length: 10 }, (_, i) => `0000:0${i}:00.0`);
    // 10 x 13 = 130 characters with the semicolons: vsnprintf stops at 127.
    const s = disableAcsRedirParam(ten);
    assert.equal(s.length, 127);
    assert.ok(s.endsWith('0000:09:00'));
    // Nine fit (117 < 128): the final ';' is dropped.
    assert.equal(disableAcsRedirParam(ten.slice(0, 9)).length, 116);
  });
});

describe('topology validation', () => {
  test('duplicate BDFs, shared secondary buses, loops and bad physfn are errors', () => {
    assert.throws(() => Topology.create([{ bdf: '00:00.0' }, { bdf: '0000:00:00.0' }]), /listed twice/);
    assert.throws(
      () => Topology.create([{ bdf: '00:01.0', secondary: 1 }, { bdf: '00:02.0', secondary: 1 }]),
      /both have secondary bus 0000:01/,
    );
    assert.throws(() => Topology.create([{ bdf: '02:00.0', secondary: 3 }, { bdf: '03:00.0', secondary: 2 }]), /loop/);
    assert.throws(() => Topology.create([{ bdf: '00:00.0', physfn: '00:09.0' }]), /physfn/);
    assert.throws(() => Topology.create([{ bdf: 'zz' }]), /bad BDF/);
  });

  test('port types are inferred from the shape when not given', () => {
    const t = Topology.create([
      { bdf: '00:00.0' },
      { bdf: '00:01.0', secondary: 1, subordinate: 3 },
      { bdf: '01:00.0', secondary: 2, subordinate: 3 },
      { bdf: '02:00.0', secondary: 3 },
      { bdf: '03:00.0' },
      { bdf: '00:1c.5', secondary: 4, subordinate: 5 },
      { bdf: '04:00.0', secondary: 5 },
      { bdf: '05:00.0' },
    ]);
    const type = (b: string) => [t.device(b)!.portType, t.device(b)!.portTypeFrom];
    assert.deepEqual(type('00:00.0'), ['rc-endpoint', 'inferred']);
    assert.deepEqual(type('00:01.0'), ['root-port', 'inferred']);
    assert.deepEqual(type('01:00.0'), ['switch-upstream', 'inferred']);
    assert.deepEqual(type('02:00.0'), ['switch-downstream', 'inferred']);
    assert.deepEqual(type('03:00.0'), ['endpoint', 'inferred']);
    assert.deepEqual(type('04:00.0'), ['pcie-to-pci-bridge', 'inferred']); // AST1150 style
    assert.deepEqual(type('05:00.0'), ['pci-device', 'inferred']);
  });

  test('a bus inside a bridge range that no bridge owns is a VF bus below that bridge', () => {
    const t = Topology.create([
      { bdf: '00:01.0', secondary: 1, subordinate: 2 },
      { bdf: '01:00.0' },
      { bdf: '02:00.0' }, // VF on the virtual bus 02
    ]);
    assert.equal(t.isRootBus(0, 2), false);
    assert.equal(t.upstreamBridge(t.device('02:00.0')!)?.bdf, '0000:00:01.0');
    assert.equal(t.hostBridges.length, 1);
  });
});

describe('DMA addresses for a p2p transfer', () => {
  /** The switch world with a host bridge window offset: bus = cpu - 0x3800_0000_0000 for the GPU BAR. */
  function offsetWorld(opts: { hostId?: string; acs?: Record<string, string> } = {}): Topology {
    const base = intelWorld(opts);
    return Topology.create(
      base.devices.map((d) => {
        const input: PciDeviceInput = {
          bdf: d.bdf,
          ...(d.vendorId !== undefined && { vendorId: d.vendorId, deviceId: d.deviceId }),
          portType: d.portType,
          ...(d.secondary !== undefined && { secondary: d.secondary, subordinate: d.subordinate }),
          ...(d.acs && { acs: { ...d.acs } }),
          bars: d.bars.map((b) => (d.bdf === '0000:03:00.0' ? { ...b, bus: b.cpu - 0x380000000000n } : { ...b })),
        };
        return input;
      }),
    );
  }

  test('what the DMA API hands out, per map type and IOMMU mode', () => {
    const bar = { index: 1, cpu: 0x38b000000000n, bus: 0xb000000000n, size: 1n << 30n };
    assert.deepEqual(
      ['off', 'passthrough', 'translated'].map((m) => p2pDmaAddress('bus-address', m as 'off', { bar, offset: 0x1000n }).address),
      [0xb000001000n, 0xb000001000n, 0xb000001000n],
    );
    const iova = p2pDmaAddress('thru-host-bridge', 'translated', { bar });
    assert.deepEqual([iova.kind, iova.address, iova.mapsTo], ['iova', undefined, 0x38b000000000n]);
    const phys = p2pDmaAddress('thru-host-bridge', 'passthrough', { bar });
    assert.deepEqual([phys.kind, phys.address], ['cpu-physical', 0x38b000000000n]);
    assert.equal(p2pDmaAddress('not-supported', 'off').kind, 'none');
  });

  test('switch path: the bus address is routed by the switch; an IOVA climbs to the root complex', () => {
    const t = intelWorld();
    const r = calc(t, '03:00.0', '04:00.0');
    const bar = t.device('03:00.0')!.bars[0];
    const a = p2pAddressing(t, r, { cpu: 'intel', iommu: 'translated', bar, offset: 0x2000n });
    assert.equal(a.expected.kind, 'bus-address');
    assert.equal(a.expectedRoute?.outcome.kind, 'OK');
    assert.deepEqual(a.expectedRoute?.hops, ['0000:04:00.0', '0000:02:01.0', '0000:01:00.0', '0000:02:00.0', '0000:03:00.0']);
    // dma_map_resource() instead: an IOVA the switch cannot match; the IOMMU
    // maps it to the BAR and the allowlisted root complex sends it back down.
    assert.equal(a.wrong.uses, 'dma-api');
    assert.equal(a.wrong.route.outcome.kind, 'OK');
    assert.ok(a.wrong.route.hops.includes('iommu'));
    // Where the root complex does not forward peer-to-peer: Unsupported Request.
    const t2 = intelWorld({ hostId: '8086:4660' });
    const a2 = p2pAddressing(t2, calc(t2, '03:00.0', '04:00.0'), { cpu: 'intel', iommu: 'translated', bar, offset: 0n });
    assert.equal(a2.expectedRoute?.outcome.kind, 'OK');
    assert.equal(a2.wrong.route.outcome.kind, 'UR_AER');
  });

  test('through the host bridge with a translating IOMMU: the bus address faults', () => {
    const t = intelWorld({ acs: { '02:00.0': REDIR, '02:01.0': REDIR } });
    const r = calc(t, '03:00.0', '04:00.0');
    const bar = t.device('03:00.0')!.bars[0];
    const a = p2pAddressing(t, r, { cpu: 'intel', iommu: 'translated', bar });
    assert.equal(a.expected.kind, 'iova');
    assert.equal(a.expectedRoute?.outcome.kind, 'OK');
    assert.equal(a.wrong.uses, 'bus-address');
    // The switch would match the GPU's BAR, but ACS on 02:01.0 redirects it
    // upstream, and the IOMMU has no mapping for a raw bus address.
    assert.equal(a.wrong.route.outcome.kind, 'IOMMU_FAULT');
    assert.ok(a.wrong.route.steps.some((s) => /ACS ReqRedir\+ CmplRedir\+ on 0000:02:01\.0 redirects/.test(s)));
    assert.deepEqual(a.wrong.route.breakAt?.node, 'iommu');
  });

  test('through the host bridge without an IOMMU: a bus address works only where it equals the CPU address', () => {
    const both = { '02:00.0': REDIR, '02:01.0': REDIR };
    const same = intelWorld({ acs: both });
    const bar = same.device('03:00.0')!.bars[0];
    const a = p2pAddressing(same, calc(same, '03:00.0', '04:00.0'), { cpu: 'intel', iommu: 'off', bar });
    assert.equal(a.expected.kind, 'cpu-physical');
    assert.equal(a.wrong.route.outcome.kind, 'OK'); // x86: bus == CPU address, the bug hides
    assert.ok(a.wrong.route.hops.includes('hostbridge:0000:00'));
    // ReqRedir acts at the ingress port: with ACS only on the provider's
    // downstream port, the kernel still says thru-host-bridge, but the
    // client's request is switched directly.
    const one = intelWorld({ acs: { '02:00.0': REDIR } });
    const c = p2pAddressing(one, calc(one, '03:00.0', '04:00.0'), { cpu: 'intel', iommu: 'off', bar });
    assert.equal(c.mapType, 'thru-host-bridge');
    assert.deepEqual(c.wrong.route.hops, ['0000:04:00.0', '0000:02:01.0', '0000:01:00.0', '0000:02:00.0', '0000:03:00.0']);
    const off = offsetWorld({ acs: both });
    const bar2 = off.device('03:00.0')!.bars[0];
    const b = p2pAddressing(off, calc(off, '03:00.0', '04:00.0'), { cpu: 'intel', iommu: 'off', bar: bar2 });
    assert.equal(b.expected.address, 0x38b000000000n);
    assert.equal(b.wrong.route.outcome.kind, 'SILENT_CORRUPTION');
    assert.match(b.wrong.route.outcome.summary, /CPU physical 0xb000000000/);
  });

  test('not supported: no DMA address; a bus address used anyway ends in an Unsupported Request', () => {
    const t = intelWorld({ hostId: '8086:4660' });
    const r = calc(t, '03:00.0', '06:00.0');
    const bar = t.device('03:00.0')!.bars[0];
    const a = p2pAddressing(t, r, { cpu: 'intel', iommu: 'passthrough', bar });
    assert.equal(a.expected.kind, 'none');
    assert.equal(a.expectedRoute, undefined);
    assert.equal(a.wrong.route.outcome.kind, 'UR_AER');
    assert.equal(a.wrong.route.breakAt?.node, 'hostbridge:0000:00');
  });

  test('an address in another BAR behind the switch lands there', () => {
    const t = intelWorld();
    const provider = t.device('03:00.0')!;
    const route = routeDmaWrite(t, t.device('04:00.0')!, { kind: 'address', value: 0xc5080010n }, {
      cpu: 'intel',
      iommu: 'translated',
      intended: { provider, bar: provider.bars[0], offset: 0n },
    });
    assert.equal(route.outcome.kind, 'SILENT_CORRUPTION');
    assert.equal(route.outcome.target, 'BAR0 of 0000:03:00.1 at offset 0x10');
  });
});

describe('pictures', () => {
  test('path nodes, their parents up to the CPU, and the break', () => {
    const t = intelWorld({ hostId: '8086:4660' });
    const r = calc(t, '03:00.0', '06:00.0');
    const pic = p2pPicture(t, r, 'intel');
    assert.deepEqual(pic.path, r.path);
    assert.deepEqual(pic.breakAt, r.breakAt);
    const byId = new Map(pic.nodes.map((n) => [n.id, n]));
    assert.equal(byId.get('cpu')?.kind, 'cpu');
    assert.deepEqual([byId.get('hostbridge:0000:00')?.kind, byId.get('hostbridge:0000:00')?.parent], ['hostbridge', 'cpu']);
    assert.deepEqual([byId.get('0000:00:01.0')?.kind, byId.get('0000:00:01.0')?.parent], ['rootport', 'hostbridge:0000:00']);
    assert.equal(byId.get('0000:01:00.0')?.kind, 'switch-up');
    assert.equal(byId.get('0000:02:00.0')?.kind, 'switch-down');
    assert.deepEqual([byId.get('0000:03:00.0')?.kind, byId.get('0000:03:00.0')?.parent], ['endpoint', '0000:02:00.0']);
    assert.ok(byId.get('hostbridge:0000:00')?.notes?.some((n) => /not on the allowlist/.test(n)));
    // Every node's parent is in the picture.
    for (const n of pic.nodes) if (n.parent) assert.ok(byId.has(n.parent), n.id);
  });
});
