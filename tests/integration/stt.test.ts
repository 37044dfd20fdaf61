// STT tunnels between two real ferryd nodes: each "hypervisor" namespace runs a ferryd with
// its VM on port 0 and an underlay veth on port 1; the tunnel stt0 (port 2) carries the VMs'
// network (context id 0x10, set by the flows) through the connection tracker on both sides.
// Real kernel traffic: pings of every size class (one segment, two segments, inner IP
// fragments) and an iperf3 TCP transfer each way, then the counters, the neighbour table
// and the tracked connections, and what happens when one end loses its tunnel.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { sh, stopProc, waitFor } from './harness';
import { Ferry2, HvNode, tunnelBody, underlayIp, vmIp } from './harness2';

interface Iperf { bytes: number; error?: string; out: string }

/** count pings from VM from to VM to, every one answered. */
function pingAll(topo: Ferry2, from: number, to: number, size?: number, count = 3): void {
  const r = topo.ping(from, to, ['-c', String(count), '-i', '0.2', '-W', '2', ...(size === undefined ? [] : ['-s', String(size)])]);
  assert.equal(r.received, count, `ping vm${from} -> vm${to}${size ? ` -s ${size}` : ''}:\n${r.out}\n${topo.logs()}`);
}

describe('STT tunnel between two ferryd nodes', () => {
  const topo = new Ferry2(`fst${process.pid % 10000}`);
  const [hv1, hv2] = topo.nodes;
  let server: ChildProcess | undefined;

  before(async () => {
    await topo.start();
    await topo.configure();
  });
  after(async () => {
    if (server) await stopProc(server, 'SIGTERM');
    await topo.stop();
  });

  const pingOk = (from: number, to: number, size?: number): void => pingAll(topo, from, to, size);

  test('tunnels are port 2 on both nodes', async () => {
    for (const n of topo.nodes) {
      assert.equal(n.tport, 2);
      const list = (await n.json('GET', '/v1/tunnels')).body;
      assert.equal(list.items.length, 1, JSON.stringify(list));
      assert.equal(list.items[0].name, 'stt0');
      assert.equal(list.items[0].remote_ip, underlayIp(3 - n.k));
    }
  });

  test('ping both ways across the tunnel', () => {
    pingOk(1, 2);
    pingOk(2, 1);
  });

  test('ping -s 1472 (1514-byte frames: two STT segments each) both ways', () => {
    pingOk(1, 2, 1472);
    pingOk(2, 1, 1472);
  });

  const iperf = (reverse: boolean): Iperf => {
    const r = spawnSync('ip', ['netns', 'exec', hv1.vmNs, 'iperf3', '-c', vmIp(2), '-t', '3', '--json', '--connect-timeout', '3000',
      ...(reverse ? ['-R'] : [])], { encoding: 'utf8', timeout: 20000 });
    const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
    try {
      const j = JSON.parse(r.stdout);
      return { bytes: Number(j.end?.sum_received?.bytes ?? 0), error: j.error, out };
    } catch {
      return { bytes: 0, error: `no JSON (exit ${r.status}, ${r.error ?? ''})`, out };
    }
  };

  test('iperf3 TCP vm1 -> vm2 and back (-R) through the tunnel and conntrack', async () => {
    server = spawn('ip', ['netns', 'exec', hv2.vmNs, 'iperf3', '-s', '-B', vmIp(2)], { stdio: 'ignore' });
    await waitFor('iperf3 server listening', async () =>
      (sh('ip', ['netns', 'exec', hv2.vmNs, 'ss', '-ltnH']).includes(':5201') ? true : undefined), 5000);
    for (const reverse of [false, true]) {
      const r = iperf(reverse);
      assert.equal(r.error, undefined, `iperf3${reverse ? ' -R' : ''}: ${r.error}\n${r.out.slice(-2000)}\n${topo.logs()}`);
      assert.ok(r.bytes > 0, `iperf3${reverse ? ' -R' : ''} moved no bytes:\n${r.out.slice(-2000)}`);
    }
    await stopProc(server, 'SIGTERM');
    server = undefined;
  });

  test('STT, tunnel and ARP counters in /metrics', async () => {
    const arp = { txReq: 0, rxReq: 0, txRep: 0, rxRep: 0 };
    for (const n of topo.nodes) {
      const m = (name: string, labels: Record<string, string> = {}) => n.metric(name, labels);
      const txFrames = await m('ferry_stt_tx_frames_total');
      const txSegs = await m('ferry_stt_tx_segments_total');
      const rxFrames = await m('ferry_stt_rx_frames_total');
      const rxSegs = await m('ferry_stt_rx_segments_total');
      const what = `hv${n.k}: tx frames ${txFrames} segments ${txSegs}, rx frames ${rxFrames} segments ${rxSegs}`;
      assert.ok(txFrames > 0 && rxFrames > 0, what);
      assert.ok(txSegs > txFrames, `no multi-segment frame: ${what}`);
      assert.ok(rxSegs > rxFrames, `no multi-segment frame reassembled: ${what}`);
      assert.ok(await m('ferry_tunnel_tx_packets_total', { tunnel: 'stt0' }) > 0, `hv${n.k} tunnel tx`);
      assert.ok(await m('ferry_tunnel_rx_packets_total', { tunnel: 'stt0' }) > 0, `hv${n.k} tunnel rx`);
      assert.equal(await m('ferry_stt_errors_total', { reason: 'bad_csum' }), 0, `hv${n.k} bad_csum`);
      const node = {
        txReq: await m('ferry_arp_packets_total', { direction: 'tx', op: 'request' }),
        rxReq: await m('ferry_arp_packets_total', { direction: 'rx', op: 'request' }),
        txRep: await m('ferry_arp_packets_total', { direction: 'tx', op: 'reply' }),
        rxRep: await m('ferry_arp_packets_total', { direction: 'rx', op: 'reply' }),
      };
      // what a node asked, it was answered; what it was asked, it answered
      assert.ok(node.rxRep <= node.txReq && node.txRep === node.rxReq, `hv${n.k} ARP ${JSON.stringify(node)}`);
      for (const k of Object.keys(arp) as (keyof typeof arp)[]) arp[k] += node[k];
      const t = (await n.json('GET', '/v1/tunnels')).body.items[0];
      assert.ok(Number(t.stats.tx_packets) > 0 && Number(t.stats.rx_packets) > 0, JSON.stringify(t));
      assert.ok(Number(t.stats.tx_bytes) > 0 && Number(t.stats.rx_bytes) > 0, JSON.stringify(t));
    }
    // at least one node resolved the other over ARP, and the other answered
    assert.ok(arp.txReq > 0 && arp.rxReq > 0 && arp.txRep > 0 && arp.rxRep > 0, `ARP over both nodes ${JSON.stringify(arp)}`);
  });

  test('decapsulated frames of several segments parse whole (no parse errors on either node)', async () => {
    // a reassembled frame is an mbuf chain; its headers are in the first mbuf, its IP
    // total length covers the whole chain
    for (const n of topo.nodes) {
      const errors = (await n.text('/metrics')).split('\n').filter((l) => l.startsWith('ferry_parse_errors_total{') && !l.endsWith(' 0'));
      assert.deepEqual(errors, [], `hv${n.k} (rx frames ${await n.metric('ferry_stt_rx_frames_total')})`);
    }
  });

  const underlayMac = async (n: HvNode): Promise<string> => {
    const ports = (await n.json('GET', '/v1/ports')).body.items as { port_id: number; mac: string }[];
    const p = ports.find((x) => x.port_id === 1);
    assert.ok(p, JSON.stringify(ports));
    return p!.mac.toLowerCase();
  };

  test('each node has the other\'s underlay address as a reachable neighbour', async () => {
    for (const n of topo.nodes) {
      const other = topo.node(3 - n.k);
      const items = (await n.json('GET', '/v1/neighbours')).body.items as { port: number; ip: string; mac: string; state: string }[];
      const e = items.find((x) => x.ip === underlayIp(other.k));
      assert.ok(e, `hv${n.k} neighbours: ${JSON.stringify(items)}`);
      assert.equal(e!.port, 1);
      assert.equal(e!.mac.toLowerCase(), await underlayMac(other));
      assert.equal(e!.state, 'reachable');
    }
  });

  test('both nodes tracked the iperf3 connections in zone 1', async () => {
    for (const n of topo.nodes) {
      const text = await n.text('/v1/conntrack?zone=1&proto=tcp&dport=5201');
      const entries = text.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
      assert.ok(entries.length >= 2, `hv${n.k}: ${text}`); // control and data connections
      for (const e of entries) {
        assert.equal(e.zone, 1);
        assert.equal(e.src, vmIp(1));
        assert.equal(e.dst, vmIp(2));
        assert.equal(e.seen_reply, true, JSON.stringify(e));
      }
      assert.ok(entries.some((e) => Number(e.packets_orig) > 100 && Number(e.packets_reply) > 100), `hv${n.k}: ${text}`);
    }
  });

  test('hv2 without its tunnel: segments are for no local endpoint and miss in its table; back when it is re-created', async () => {
    const del = await hv2.json('DELETE', '/v1/tunnels/stt0');
    assert.equal(del.status, 204, JSON.stringify(del.body));
    const miss0 = await hv2.metric('ferry_worker_drops_total', { reason: 'table_miss' });
    const seg0 = await hv2.metric('ferry_stt_rx_segments_total');
    const tx0 = await hv1.metric('ferry_stt_tx_frames_total');
    const r = topo.ping(1, 2, ['-c', '3', '-i', '0.2', '-W', '1']);
    assert.equal(r.received, 0, r.out);
    // hv1 still encapsulates (its neighbour entry for hv2 stands)...
    assert.ok(await hv1.metric('ferry_stt_tx_frames_total') - tx0 >= 3);
    // ...but hv2 no longer takes them as STT: plain TCP in on port 1, which no flow matches
    assert.equal(await hv2.metric('ferry_stt_rx_segments_total'), seg0);
    assert.ok(await hv2.metric('ferry_worker_drops_total', { reason: 'table_miss' }) - miss0 >= 3);

    // an endpoint with the wrong remote: hv2 takes the segments, but no tunnel wants them
    await hv2.addTunnel(tunnelBody(2, 'stt0'));
    const put = await hv2.json('PUT', '/v1/tunnels/stt0', { ...tunnelBody(2), remote_ip: '192.168.251.9' });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    const noTunnel0 = await hv2.metric('ferry_stt_errors_total', { reason: 'no_tunnel' });
    const r2 = topo.ping(1, 2, ['-c', '3', '-i', '0.2', '-W', '1']);
    assert.equal(r2.received, 0, r2.out);
    assert.ok(await hv2.metric('ferry_stt_errors_total', { reason: 'no_tunnel' }) - noTunnel0 >= 3);

    // the right one again: traffic flows
    const fix = await hv2.json('PUT', '/v1/tunnels/stt0', tunnelBody(2));
    assert.equal(fix.status, 200, JSON.stringify(fix.body));
    assert.equal(fix.body.port, 2);
    pingOk(1, 2);
    pingOk(2, 1);
  });
});

// The VM ports on net_pcap here: af_packet would hand ferryd the VMs' fragments already
// reassembled by the kernel, and cut (harness2 vmVdev). The tunnel and underlay are the same.
describe('STT tunnel: inner IP fragments', () => {
  const topo = new Ferry2(`fsf${process.pid % 10000}`, 'pcap');
  const [hv1, hv2] = topo.nodes;

  before(async () => {
    await topo.start();
    await topo.configure();
  });
  after(async () => {
    await topo.stop();
  });

  test('ping -s 8000 both ways: each fragment crosses the tunnel (two segments each)', async () => {
    pingAll(topo, 1, 2); // ARP settled on both sides first
    const tx1 = await hv1.metric('ferry_stt_tx_frames_total');
    const tx2 = await hv2.metric('ferry_stt_tx_frames_total');
    const seg1 = await hv1.metric('ferry_stt_tx_segments_total');
    pingAll(topo, 1, 2, 8000);
    pingAll(topo, 2, 1, 8000);
    // 8028-byte datagrams in 1500-byte fragments: 6 per echo, 3 echoes and 3 replies a side
    const d1 = await hv1.metric('ferry_stt_tx_frames_total') - tx1;
    const d2 = await hv2.metric('ferry_stt_tx_frames_total') - tx2;
    assert.ok(d1 >= 36 && d2 >= 36, `tx frames hv1 +${d1}, hv2 +${d2}`);
    assert.ok(await hv1.metric('ferry_stt_tx_segments_total') - seg1 >= 2 * 30 + 6, 'the 1514-byte fragments took two segments');
    for (const n of topo.nodes) assert.equal(await n.metric('ferry_stt_errors_total', { reason: 'bad_csum' }), 0);
  });
});
