// The conntrack and reassembly metric families (worker counters and header totals of one snapshot),
// their names and labels as promtool wants them, and the Conntrack dashboard's queries against them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { CtInvalidReason, FragReason, SHM_HEADER, WORKER_STATS } from '../src/gen/proto';
import { harness } from './helpers';

/** Only the ferry_* families of an exposition (prom-client's default metrics trip promtool's lint). */
const ferryOnly = (text: string): string => text.split('\n').filter((l) => /^(?:# (?:HELP|TYPE) )?ferry_/.test(l)).join('\n') + '\n';

const WS = WORKER_STATS.fields;
const H = SHM_HEADER.fields;
const noPromtool = spawnSync('promtool', ['--version']).error ? 'promtool not installed' : false;
const DASHBOARD = path.resolve(__dirname, '../../../docker/grafana/dashboards/conntrack.json');

test('ferry_ct_* and ferry_ip_fragments_total come from the worker counters and the header', async () => {
  const h = await harness('ct-metrics', { nWorkers: 2 });
  try {
    const { dv, layout } = h.fake;
    const w = (i: number): number => layout.workers + i * WORKER_STATS.size;
    dv.setBigUint64(w(1) + WS.ct_packets.offset, 1000n, true);
    dv.setBigUint64(w(1) + WS.ct_created.offset, 40n, true);
    dv.setBigUint64(w(0) + WS.ct_limit_refused.offset, 3n, true);
    dv.setBigUint64(w(0) + WS.ct_early_drops.offset, 2n, true);
    h.fake.setWorker(0, { ct_nat_created: 17n, ct_nat_exhausted: 4n, ct_nat_rewrites: 1234n });
    h.fake.setWorker(1, { ct_nat_created: 5n, ct_nat_rewrites: 99_000_000_000n, ct_nat_rewrite_errors: 3n });
    h.fake.setWorker(0, { ct_exp_created: 21n, ct_exp_matched: 13n });
    h.fake.setWorker(1, { ct_exp_created: 4n });
    dv.setBigUint64(w(1) + WS.ct_invalid.offset + CtInvalidReason.TCP_SEQ * 8, 7n, true);
    dv.setBigUint64(w(0) + WS.ct_invalid.offset + CtInvalidReason.NOT_IP * 8, 9n, true);
    dv.setBigUint64(w(0) + WS.ct_invalid.offset + 15 * 8, 99n, true); // an unnamed slot: not exported
    dv.setBigUint64(w(1) + WS.frag.offset + FragReason.REASSEMBLED * 8, 11n, true);
    dv.setBigUint64(w(1) + WS.frag.offset + FragReason.TOO_MANY * 8, 1n, true);
    for (let i = 0; i < 5; i++) h.fake.ct.add({ src: '10.0.0.1', dst: '10.0.0.2', sport: i });
    h.fake.ct.counters.expired = 12n;
    h.fake.ct.counters.flushed = 4n;
    h.fake.ct.counters.eventsDropped = 6n;
    h.fake.ct.counters.sweeps = 8n;
    h.fake.ct.maxConns = 5000;
    for (let i = 0; i < 3; i++) {
      h.fake.ct.addExpectation({ src: '10.0.0.2', dst: '10.0.0.1', dport: 30000 + i, parent: { src: '10.0.0.2', dst: '10.0.0.1', sport: 40000, dport: 21 } });
    }
    h.fake.ct.counters.expExpired = 5n;
    h.fake.ct.publish();
    assert.equal(dv.getBigUint64(H.ct_expectations.offset, true), 3n);
    assert.equal(dv.getBigUint64(H.ct_conns.offset, true), 5n);

    const m = (await h.app.inject({ url: '/metrics' })).body;
    const has = (line: string): void => assert.ok(m.split('\n').includes(line), `missing: ${line}`);
    has('ferry_ct_connections 5');
    dv.setBigUint64(H.mbufs_total.offset, 8192n, true);
    dv.setBigUint64(H.mbufs_available.offset, 7000n, true);
    const m2 = (await h.app.inject({ url: '/metrics' })).body.split('\n');
    assert.ok(m2.includes('ferry_mbufs{state="free"} 7000'), 'free mbufs');
    assert.ok(m2.includes('ferry_mbufs{state="in_use"} 1192'), 'mbufs in use');
    has('ferry_ct_connections_max 5000');
    has('ferry_ct_packets_total{worker="1"} 1000');
    has('ferry_ct_packets_total{worker="0"} 0');
    has('ferry_ct_created_total{worker="1"} 40');
    has('ferry_ct_limit_refused_total{worker="0"} 3');
    has('ferry_ct_early_drops_total{worker="0"} 2');
    has('ferry_ct_nat_created_total{worker="0"} 17');
    has('ferry_ct_nat_created_total{worker="1"} 5');
    has('ferry_ct_nat_exhausted_total{worker="0"} 4');
    has('ferry_ct_nat_exhausted_total{worker="1"} 0');
    has('ferry_ct_nat_rewrites_total{worker="0"} 1234');
    has('ferry_ct_nat_rewrites_total{worker="1"} 99000000000');
    has('ferry_ct_nat_rewrite_errors_total{worker="1"} 3');
    has('# TYPE ferry_ct_nat_exhausted_total counter');
    has('# HELP ferry_ct_nat_exhausted_total Commits refused because no free tuple was left in the nat() range; the packet continued untranslated');
    has('ferry_ct_invalid_total{worker="1",reason="tcp_seq"} 7');
    has('ferry_ct_invalid_total{worker="0",reason="not_ip"} 9');
    has('ferry_ct_invalid_total{worker="0",reason="l3_short"} 0');
    has('ferry_ip_fragments_total{worker="1",result="reassembled"} 11');
    has('ferry_ip_fragments_total{worker="1",result="too_many"} 1');
    has('ferry_ct_expired_total 12');
    has('ferry_ct_flushed_total 4');
    has('ferry_ct_events_dropped_total 6');
    has('ferry_ct_sweeps_total 8');
    has('ferry_ct_expectations 3');
    has('# TYPE ferry_ct_expectations gauge');
    has('ferry_ct_expectations_created_total{worker="0"} 21');
    has('ferry_ct_expectations_created_total{worker="1"} 4');
    has('ferry_ct_expectations_matched_total{worker="0"} 13');
    has('ferry_ct_expectations_matched_total{worker="1"} 0');
    has('# TYPE ferry_ct_expectations_matched_total counter');
    has('ferry_ct_expectations_expired_total 5');
    has('# TYPE ferry_ct_expectations_expired_total counter');
    has('ferry_ct_event_subscribers 0');
    has('ferry_ct_event_subscribers_dropped_total 0');
    const series = (name: string): string[] => m.split('\n').filter((l) => l.startsWith(`${name}{`));
    assert.equal(series('ferry_ct_invalid_total').length, 2 * Object.keys(CtInvalidReason).length, 'one series per worker and named reason');
    assert.equal(series('ferry_ip_fragments_total').length, 2 * Object.keys(FragReason).length);
    assert.doesNotMatch(m, / 99$/m, 'unnamed reason slots stay out');
    for (const l of m.split('\n')) {
      if (!l.startsWith('ferry_ct') && !l.startsWith('ferry_ip')) continue;
      for (const [, name] of l.matchAll(/[{,]([a-z_]+)="/g)) assert.ok(['worker', 'reason', 'result'].includes(name!), `label ${name} in ${l}`);
    }
  } finally {
    await h.close();
  }
});

test('without a segment the header families have no sample', async () => {
  const h = await harness('ct-metrics-none', {}, { startFake: false });
  try {
    const m = (await h.app.inject({ url: '/metrics' })).body;
    assert.doesNotMatch(m, /^ferry_ct_connections /m);
    assert.doesNotMatch(m, /^ferry_mbufs\{/m);
    assert.doesNotMatch(m, /^ferry_ct_expired_total /m);
    assert.doesNotMatch(m, /^ferry_ct_packets_total\{/m);
    assert.doesNotMatch(m, /^ferry_ct_expectations /m);
    assert.doesNotMatch(m, /^ferry_ct_expectations_expired_total /m);
    assert.doesNotMatch(m, /^ferry_ct_expectations_created_total\{/m);
  } finally {
    await h.close();
  }
});

test('promtool accepts the families, and every query of the Conntrack dashboard parses and names served metrics', { skip: noPromtool }, async () => {
  const h = await harness('ct-metrics-lint', { nWorkers: 2 });
  const dir = mkdtempSync(path.join(tmpdir(), 'ferry-ct-dash-'));
  try {
    const m = (await h.app.inject({ url: '/metrics' })).body;
    const lint = spawnSync('promtool', ['check', 'metrics'], { input: ferryOnly(m), encoding: 'utf8' });
    assert.equal(lint.status, 0, `promtool check metrics: ${lint.stdout}${lint.stderr}`);

    const d = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { uid: string; panels: { id: number; type: string; targets?: { expr: string }[] }[] };
    assert.equal(d.uid, 'ferry-conntrack');
    const exprs = d.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
    assert.ok(exprs.length >= 10, `${exprs.length} queries`);
    const served = new Set(m.split('\n').map((l) => /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{| )/.exec(l)?.[1]).filter(Boolean));
    const named = new Set(exprs.flatMap((e) => [...e.matchAll(/\b(ferry_[a-z0-9_]+)/g)].map((x) => x[1]!)));
    for (const n of named) assert.ok(served.has(n), `the dashboard queries ${n}, which /metrics does not serve`);
    for (const n of ['ferry_ct_connections', 'ferry_ct_connections_max', 'ferry_ct_created_total', 'ferry_ct_invalid_total', 'ferry_ct_limit_refused_total',
      'ferry_ct_early_drops_total', 'ferry_ct_expired_total', 'ferry_ct_flushed_total', 'ferry_ip_fragments_total', 'ferry_ct_packets_total',
      'ferry_ct_nat_created_total', 'ferry_ct_nat_exhausted_total', 'ferry_ct_nat_rewrites_total', 'ferry_ct_nat_rewrite_errors_total',
      'ferry_ct_expectations', 'ferry_ct_expectations_created_total', 'ferry_ct_expectations_matched_total', 'ferry_ct_expectations_expired_total']) {
      assert.ok(named.has(n), `the dashboard does not chart ${n}`);
    }
    const file = path.join(dir, 'rules.yml');
    const rules = exprs.map((e, i) => `      - record: ferry_ct_dashboard_${i}\n        expr: ${JSON.stringify(e.replace(/\$__rate_interval/g, '1m').replace(/\$instance/g, 'x'))}\n`).join('');
    writeFileSync(file, `groups:\n  - name: conntrack\n    rules:\n${rules}`);
    const r = spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8' });
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await h.close();
  }
});
