// The STT, ARP, neighbour and per-tunnel metric families (worker counters summed over workers, one
// snapshot per scrape), the new drop reasons, promtool's lint, and the Tunnels dashboard's queries.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { DropReason, SttReason, WORKER_STATS } from '../src/gen/proto';
import { harness } from './helpers';

const ferryOnly = (text: string): string => text.split('\n').filter((l) => /^(?:# (?:HELP|TYPE) )?ferry_/.test(l)).join('\n') + '\n';
const WS = WORKER_STATS.fields;
const noPromtool = spawnSync('promtool', ['--version']).error ? 'promtool not installed' : false;
const DASHBOARD = path.resolve(__dirname, '../../../docker/grafana/dashboards/tunnels.json');
const STT0 = { name: 'stt0', local_ip: '192.0.2.1/24', remote_ip: 'flow', key: 'flow', underlay_port: 0 };

test('ferry_stt_*, ferry_arp_*, ferry_neighbour_* and ferry_tunnel_* are summed over workers', async () => {
  const h = await harness('tun-metrics', { nWorkers: 2 });
  try {
    const { dv, layout } = h.fake;
    const w = (i: number): number => layout.workers + i * WORKER_STATS.size;
    const set = (i: number, field: keyof typeof WS, v: bigint, index = 0): void => dv.setBigUint64(w(i) + WS[field].offset + index * 8, v, true);
    set(0, 'stt_tx_frames', 10n); set(1, 'stt_tx_frames', 20n);
    set(0, 'stt_tx_segments', 40n); set(1, 'stt_tx_segments', 80n);
    set(1, 'stt_rx_segments', 9n);
    set(0, 'stt_rx_frames', 3n);
    set(0, 'stt_reasm_frames', 2n); set(1, 'stt_reasm_frames', 1n);
    set(1, 'stt_reasm_bytes', 65536n);
    set(0, 'stt', 4n, SttReason.BAD_CSUM); set(1, 'stt', 1n, SttReason.BAD_CSUM);
    set(1, 'stt', 6n, SttReason.TIMEOUT);
    set(0, 'stt', 99n, 15); // the unnamed slot: not exported
    set(0, 'arp_rx_requests', 5n); set(1, 'arp_tx_replies', 5n); set(0, 'arp_tx_requests', 2n); set(1, 'arp_rx_replies', 1n);
    set(0, 'neigh_misses', 7n); set(1, 'neigh_failures', 1n); set(1, 'neigh_held', 4n);
    const drops = new Array<bigint>(16).fill(0n);
    drops[DropReason.TUNNEL] = 11n;
    drops[DropReason.NEIGH_UNRESOLVED] = 12n;
    h.fake.setWorker(1, { drops });
    assert.equal((await h.app.inject({ method: 'POST', url: '/v1/tunnels', payload: STT0 })).statusCode, 201);
    assert.equal((await h.app.inject({ method: 'POST', url: '/v1/tunnels', payload: { ...STT0, name: 'stt1', port: 5 } })).statusCode, 201);
    h.fake.setWorkerPort(0, 2, { rx_packets: 3n, rx_bytes: 300n, tx_packets: 4n, tx_bytes: 400n });
    h.fake.setWorkerPort(1, 2, { rx_packets: 1n, rx_bytes: 100n, tx_packets: 1n, tx_bytes: 100n });
    h.fake.setWorkerPort(1, 5, { tx_packets: 8n, tx_bytes: 800n });
    h.fake.setWorkerPort(1, 6, { tx_packets: 1000n }); // no tunnel there

    const m = (await h.app.inject({ url: '/metrics' })).body;
    const lines = m.split('\n');
    const has = (line: string): void => assert.ok(lines.includes(line), `missing: ${line}`);
    has('ferry_stt_tx_frames_total 30');
    has('ferry_stt_tx_segments_total 120');
    has('ferry_stt_rx_segments_total 9');
    has('ferry_stt_rx_frames_total 3');
    has('ferry_stt_reassembly_frames 3');
    has('ferry_stt_reassembly_bytes 65536');
    has('ferry_stt_errors_total{reason="bad_csum"} 5');
    has('ferry_stt_errors_total{reason="timeout"} 6');
    has('ferry_stt_errors_total{reason="bad_inner"} 0');
    has('ferry_arp_packets_total{direction="rx",op="request"} 5');
    has('ferry_arp_packets_total{direction="tx",op="reply"} 5');
    has('ferry_arp_packets_total{direction="tx",op="request"} 2');
    has('ferry_arp_packets_total{direction="rx",op="reply"} 1');
    has('ferry_neighbour_misses_total 7');
    has('ferry_neighbour_failures_total 1');
    has('ferry_neighbour_held_frames 4');
    has('ferry_tunnel_rx_packets_total{tunnel="stt0"} 4');
    has('ferry_tunnel_rx_bytes_total{tunnel="stt0"} 400');
    has('ferry_tunnel_tx_packets_total{tunnel="stt0"} 5');
    has('ferry_tunnel_tx_bytes_total{tunnel="stt0"} 500');
    has('ferry_tunnel_tx_packets_total{tunnel="stt1"} 8');
    has('ferry_tunnel_rx_packets_total{tunnel="stt1"} 0');
    has('ferry_worker_drops_total{worker="1",reason="tunnel"} 11');
    has('ferry_worker_drops_total{worker="1",reason="neigh_unresolved"} 12');
    const series = (name: string): string[] => lines.filter((l) => l.startsWith(`${name}{`));
    assert.equal(series('ferry_stt_errors_total').length, Object.keys(SttReason).length, 'one series per named reason');
    assert.equal(series('ferry_arp_packets_total').length, 4);
    assert.equal(series('ferry_tunnel_tx_packets_total').length, 2, 'one series per tunnel');
    assert.doesNotMatch(m, / 99$/m);
    assert.doesNotMatch(m, / 1000$/m, 'a port without a tunnel is not shown');

    // a deleted tunnel's series go away
    assert.equal((await h.app.inject({ method: 'DELETE', url: '/v1/tunnels/stt1' })).statusCode, 204);
    const m2 = (await h.app.inject({ url: '/metrics' })).body;
    assert.doesNotMatch(m2, /tunnel="stt1"/);
  } finally {
    await h.close();
  }
});

test('without a segment the STT families have no sample', async () => {
  const h = await harness('tun-metrics-none', {}, { startFake: false });
  try {
    const m = (await h.app.inject({ url: '/metrics' })).body;
    for (const n of ['ferry_stt_tx_frames_total', 'ferry_stt_reassembly_bytes', 'ferry_neighbour_held_frames', 'ferry_neighbour_misses_total']) {
      assert.doesNotMatch(m, new RegExp(`^${n} `, 'm'));
    }
    assert.doesNotMatch(m, /^ferry_stt_errors_total\{/m);
    assert.doesNotMatch(m, /^ferry_arp_packets_total\{/m);
  } finally {
    await h.close();
  }
});

test('promtool accepts the families, and every query of the Tunnels dashboard parses and names served metrics', { skip: noPromtool }, async () => {
  const h = await harness('tun-metrics-lint', { nWorkers: 2 });
  const dir = mkdtempSync(path.join(tmpdir(), 'ferry-tun-dash-'));
  try {
    assert.equal((await h.app.inject({ method: 'POST', url: '/v1/tunnels', payload: STT0 })).statusCode, 201);
    const m = (await h.app.inject({ url: '/metrics' })).body;
    const lint = spawnSync('promtool', ['check', 'metrics'], { input: ferryOnly(m), encoding: 'utf8' });
    assert.equal(lint.status, 0, `promtool check metrics: ${lint.stdout}${lint.stderr}`);

    const d = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { uid: string; title: string; panels: { id: number; type: string; targets?: { expr: string }[] }[] };
    assert.equal(d.uid, 'ferry-tunnels');
    assert.equal(d.title, 'Ferry / Tunnels');
    const exprs = d.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
    assert.ok(exprs.length >= 12, `${exprs.length} queries`);
    const served = new Set(m.split('\n').map((l) => /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{| )/.exec(l)?.[1]).filter(Boolean));
    const named = new Set(exprs.flatMap((e) => [...e.matchAll(/\b(ferry_[a-z0-9_]+)/g)].map((x) => x[1]!)));
    for (const n of named) assert.ok(served.has(n), `the dashboard queries ${n}, which /metrics does not serve`);
    const file = path.join(dir, 'rules.yml');
    const rules = exprs.map((e, i) => `      - record: ferry_tun_dashboard_${i}\n        expr: ${JSON.stringify(e.replace(/\$__rate_interval/g, '1m').replace(/\$(instance|tunnel)/g, 'x'))}\n`).join('');
    writeFileSync(file, `groups:\n  - name: tunnels\n    rules:\n${rules}`);
    const r = spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8' });
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await h.close();
  }
});
