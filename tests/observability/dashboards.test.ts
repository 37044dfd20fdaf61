// Grafana dashboards: structure, every PromQL expression parses (promtool check rules), and every
// ferry_* metric a query names is served by a live ferry-control attached to a real ferryd.
// Also lints that live /metrics (ferry_* families) with promtool check metrics.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { root } from '../integration/harness';
import { FerryStack, ferryOnly, promtool, sampledNames, startFerryStack } from './stack';

const DASH_DIR = path.join(root, 'docker/grafana/dashboards');

interface Target { expr?: string; refId?: string }
interface Panel { id: number; type: string; title: string; gridPos?: { x: number; y: number; w: number; h: number }; targets?: Target[]; panels?: Panel[]; datasource?: { uid?: string } }
interface Dashboard { uid: string; title: string; panels: Panel[]; templating?: { list: { name: string }[] } }

const dashboards: [string, Dashboard][] = readdirSync(DASH_DIR).filter((f) => f.endsWith('.json'))
  .map((f) => [f, JSON.parse(readFileSync(path.join(DASH_DIR, f), 'utf8')) as Dashboard]);

const allPanels = (d: Dashboard): Panel[] => d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);

/** Each expr with Grafana's variables substituted, so that promtool can parse it. */
function exprs(d: Dashboard): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  for (const p of allPanels(d)) {
    for (const t of p.targets ?? []) {
      if (!t.expr) continue;
      const expr = t.expr
        .replace(/\$__(rate_interval|interval|range)\b/g, '1m')
        .replace(/\$\{(\w+)(?::\w+)?\}|\$(\w+)/g, 'x');
      out.push({ where: `${d.uid} panel ${p.id} "${p.title}" ${t.refId ?? ''}`, expr });
    }
  }
  return out;
}

/** ferry_* metric names an expression reads. */
const ferryNames = (expr: string): string[] => [...expr.matchAll(/\b(ferry_[a-zA-Z0-9_:]+)/g)].map((m) => m[1]!);

test('the Overview, Conntrack and Tunnels dashboards are there, with stable uids and sane panels', () => {
  const names = dashboards.map(([f]) => f);
  assert.ok(names.includes('ferry-overview.json'), `dashboards: ${names.join(', ')}`);
  const uids = new Set<string>();
  for (const [f, d] of dashboards) {
    assert.match(d.uid, /^[a-z0-9-]{1,40}$/, `${f}: uid`);
    assert.ok(!uids.has(d.uid), `${f}: duplicate uid ${d.uid}`);
    uids.add(d.uid);
    const vars = new Set((d.templating?.list ?? []).map((v) => v.name));
    const ids = new Set<number>();
    for (const p of allPanels(d)) {
      assert.ok(Number.isInteger(p.id) && !ids.has(p.id), `${f}: panel id ${p.id} not unique`);
      ids.add(p.id);
      assert.ok(p.gridPos && p.gridPos.w > 0 && p.gridPos.h > 0 && p.gridPos.x + p.gridPos.w <= 24, `${f}: panel ${p.id} gridPos`);
      if (p.type !== 'row') {
        assert.ok((p.targets ?? []).length > 0, `${f}: panel ${p.id} "${p.title}" has no query`);
        assert.equal(p.datasource?.uid, '${datasource}', `${f}: panel ${p.id} datasource`);
      }
      for (const t of p.targets ?? []) {
        for (const [, a, b] of (t.expr ?? '').matchAll(/\$\{(\w+)[^}]*\}|\$(\w+)/g)) {
          const v = a ?? b!;
          assert.ok(v.startsWith('__') || vars.has(v), `${f}: panel ${p.id} uses undefined variable $${v}`);
        }
      }
    }
  }
  const overview = dashboards.find(([f]) => f === 'ferry-overview.json')![1];
  const used = new Set(exprs(overview).flatMap((e) => ferryNames(e.expr)));
  for (const n of ['ferry_port_rx_packets_total', 'ferry_port_tx_bytes_total', 'ferry_worker_drops_total', 'ferry_worker_busy_cycles_total',
    'ferry_emc_hits_total', 'ferry_emc_misses_total', 'ferry_flow_table_lookups_total']) {
    assert.ok(used.has(n), `Overview does not chart ${n}`);
  }
  const ct = dashboards.find(([f]) => f === 'conntrack.json');
  assert.ok(ct, 'the Conntrack dashboard is there');
  const ctUsed = new Set(exprs(ct[1]).flatMap((e) => ferryNames(e.expr)));
  for (const n of ['ferry_ct_connections', 'ferry_ct_connections_max', 'ferry_ct_created_total', 'ferry_ct_invalid_total', 'ferry_ct_limit_refused_total',
    'ferry_ct_early_drops_total', 'ferry_ct_expired_total', 'ferry_ct_flushed_total', 'ferry_ip_fragments_total', 'ferry_ct_packets_total']) {
    assert.ok(ctUsed.has(n), `Conntrack does not chart ${n}`);
  }
  const tun = dashboards.find(([f]) => f === 'tunnels.json');
  assert.ok(tun, 'the Tunnels dashboard is there');
  assert.equal(tun[1].title, 'Ferry / Tunnels');
  const tunUsed = new Set(exprs(tun[1]).flatMap((e) => ferryNames(e.expr)));
  for (const n of ['ferry_tunnel_rx_packets_total', 'ferry_tunnel_tx_packets_total', 'ferry_tunnel_rx_bytes_total', 'ferry_tunnel_tx_bytes_total',
    'ferry_stt_tx_frames_total', 'ferry_stt_tx_segments_total', 'ferry_stt_rx_segments_total', 'ferry_stt_rx_frames_total', 'ferry_stt_errors_total',
    'ferry_stt_reassembly_frames', 'ferry_stt_reassembly_bytes', 'ferry_arp_packets_total', 'ferry_neighbour_misses_total',
    'ferry_neighbour_failures_total', 'ferry_neighbour_held_frames', 'ferry_worker_drops_total']) {
    assert.ok(tunUsed.has(n), `Tunnels does not chart ${n}`);
  }
  assert.ok(exprs(tun[1]).some((e) => /reason=~"tunnel\|neigh_unresolved"/.test(e.expr)), 'Tunnels charts the tunnel drop reasons');
});

test('every dashboard expression parses (promtool check rules)', () => {
  const all = dashboards.flatMap(([, d]) => exprs(d));
  assert.ok(all.length >= 10, `only ${all.length} expressions`);
  const dir = mkdtempSync(path.join(tmpdir(), 'ferry-dash-'));
  try {
    const rules = all.map((e, i) => `      - record: ferry_dashboard_expr_${i}\n        expr: ${JSON.stringify(e.expr)}\n`).join('');
    const file = path.join(dir, 'rules.yml');
    writeFileSync(file, `groups:\n  - name: dashboards\n    rules:\n${rules}`);
    const r = promtool(['check', 'rules', file]);
    const detail = r.status === 0 ? '' : all.map((e, i) => `${i}: ${e.where}: ${e.expr}`).join('\n');
    assert.equal(r.status, 0, `promtool check rules:\n${r.out}\n${detail}`);
    assert.match(r.out, new RegExp(`SUCCESS: ${all.length} rules found`));

    // the check is live: a broken expression fails it
    writeFileSync(file, 'groups:\n  - name: broken\n    rules:\n      - record: x\n        expr: "sum by (port (ferry_flows)"\n');
    assert.notEqual(promtool(['check', 'rules', file]).status, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

let stack: FerryStack | undefined;
before(async () => {
  stack = await startFerryStack('dash');
  // a tunnel, so that the per-tunnel families (labelled by tunnel name) have a series
  const r = await fetch(`${stack.api}/v1/tunnels`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'stt0', local_ip: '192.0.2.1/24', remote_ip: 'flow', key: 'flow', underlay_port: 0 }),
  });
  if (r.status >= 300) throw new Error(`adding a tunnel: ${r.status} ${(await r.text()).slice(0, 500)}`);
});
after(async () => { await stack?.stop(); });

/** /metrics once ferryd has forwarded packets (so table lookups and EMC counters have series). */
async function liveMetrics(): Promise<string> {
  const t0 = Date.now();
  for (;;) {
    const text = await (await fetch(`${stack!.api}/metrics`)).text();
    if (/^ferry_flow_table_lookups_total\{/m.test(text) && /^ferry_flows 2$/m.test(text)) return text;
    if (Date.now() - t0 > 15000) return text;
    await new Promise((r) => setTimeout(r, 200));
  }
}

test('every ferry_* metric the dashboards query is served by a live ferry-control', async () => {
  const live = sampledNames(await liveMetrics());
  const missing = new Set<string>();
  for (const [, d] of dashboards) {
    for (const e of exprs(d)) for (const n of ferryNames(e.expr)) if (!live.has(n)) missing.add(`${n} (${e.where})`);
  }
  assert.deepEqual([...missing], [], 'dashboards query metrics /metrics does not serve');
});

test('the live /metrics ferry_* families pass promtool check metrics', async () => {
  const text = await liveMetrics();
  const ours = ferryOnly(text);
  assert.match(ours, /^ferry_port_tx_packets_total\{port="[^"]+"\} [1-9]/m, 'packets were forwarded');
  const r = promtool(['check', 'metrics'], ours);
  assert.equal(r.status, 0, `promtool check metrics:\n${r.out}`);
});
