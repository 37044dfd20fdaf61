// The dataplane metric families added for observability: values from a fake ferryd's segment,
// label sets bounded, names that promtool accepts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { WORKER_STATS, TABLE_STATS, N_TABLES, ParseReason } from '../src/gen/proto';
import { harness } from './helpers';

const WS = WORKER_STATS.fields;

/** Only the ferry_* families of an exposition (prom-client's default metrics trip promtool's lint). */
export function ferryOnly(text: string): string {
  return text.split('\n').filter((l) => {
    const m = /^(?:# (?:HELP|TYPE) )?([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(l);
    return m !== null && m[1]!.startsWith('ferry_');
  }).join('\n') + '\n';
}

test('worker, EMC, parse-error, table, port and heartbeat families come from the segment', async () => {
  const h = await harness('metrics-dp', { ports: ['eth0', 'eth1'], nWorkers: 2 });
  try {
    const { dv, layout } = h.fake;
    const w1 = layout.workers + 1 * WORKER_STATS.size;
    dv.setBigUint64(w1 + WS.rx_packets.offset, 1000n, true);
    dv.setBigUint64(w1 + WS.rx_bursts.offset, 40n, true);
    dv.setBigUint64(w1 + WS.emc_hits.offset, 900n, true);
    dv.setBigUint64(w1 + WS.emc_misses.offset, 100n, true);
    dv.setBigUint64(w1 + WS.recirculations.offset, 7n, true);
    dv.setBigUint64(w1 + WS.parse_errors.offset + ParseReason.TCP_SHORT * 8, 3n, true);
    h.fake.setWorker(1, { busy_cycles: 300n, idle_cycles: 100n });
    // table 0 on both workers, table 5 on worker 1; table 9 has counters but no lookups
    const ts = (w: number, t: number, lookups: bigint, matches: bigint, misses: bigint): void => {
      const at = layout.tableStats + (w * N_TABLES + t) * TABLE_STATS.size;
      dv.setBigUint64(at + TABLE_STATS.fields.lookups.offset, lookups, true);
      dv.setBigUint64(at + TABLE_STATS.fields.matches.offset, matches, true);
      dv.setBigUint64(at + TABLE_STATS.fields.misses.offset, misses, true);
    };
    ts(0, 0, 10n, 8n, 2n);
    ts(1, 0, 5n, 5n, 0n);
    ts(1, 5, 4n, 1n, 3n);
    ts(0, 9, 0n, 0n, 0n);
    h.fake.setHwStats(1, { oerrors: 6n, rx_nombuf: 2n });

    const m = (await h.app.inject({ url: '/metrics' })).body;
    const has = (line: string): void => assert.ok(m.split('\n').includes(line), `missing: ${line}`);
    has('ferry_worker_busy_cycles_total{worker="1"} 300');
    has('ferry_worker_idle_cycles_total{worker="1"} 100');
    has('ferry_worker_rx_packets_total{worker="1"} 1000');
    has('ferry_worker_rx_bursts_total{worker="1"} 40');
    has('ferry_worker_recirculations_total{worker="1"} 7');
    has('ferry_emc_hits_total{worker="1"} 900');
    has('ferry_emc_misses_total{worker="1"} 100');
    has('ferry_emc_hits_total{worker="0"} 0');
    has('ferry_parse_errors_total{worker="1",reason="tcp_short"} 3');
    has('ferry_parse_errors_total{worker="0",reason="eth_short"} 0');
    has('ferry_flow_table_lookups_total{table="0",result="match"} 13');
    has('ferry_flow_table_lookups_total{table="0",result="miss"} 2');
    has('ferry_flow_table_lookups_total{table="5",result="match"} 1');
    has('ferry_flow_table_lookups_total{table="5",result="miss"} 3');
    assert.doesNotMatch(m, /table="9"/, 'tables without lookups are not exported');
    assert.equal(m.split('\n').filter((l) => l.startsWith('ferry_flow_table_lookups_total{')).length, 4);
    has('ferry_port_tx_errors_total{port="eth1"} 6');
    has('ferry_port_rx_nombuf_total{port="eth1"} 2');
    has('ferry_port_up{port="eth0"} 1');
    has('ferry_port_speed_bytes{port="eth0"} 1250000000');
    const age = /^ferry_heartbeat_age_seconds (\S+)$/m.exec(m);
    assert.ok(age, 'heartbeat age exported');
    assert.ok(Number(age[1]) >= 0 && Number(age[1]) < 5, `heartbeat age ${age[1]}`);
    // the original names keep working
    has('ferry_worker_busy_ratio{worker="1"} 0.75');
    assert.match(m, /^ferry_port_rx_packets_total\{port="eth0"\} \d+$/m);

    // no unbounded labels: only the agreed label names appear on ferry_* series
    for (const l of m.split('\n')) {
      if (!l.startsWith('ferry_')) continue;
      for (const [, name] of l.matchAll(/[{,]([a-z_]+)="/g)) {
        assert.ok(['port', 'worker', 'table', 'result', 'reason', 'ring', 'version', 'direction', 'op', 'tunnel', 'state'].includes(name!), `label ${name} in ${l}`);
      }
    }
  } finally {
    await h.close();
  }
});

test('the ferry_* families pass promtool check metrics', { skip: spawnSync('promtool', ['--version']).error ? 'promtool not installed' : false }, async () => {
  const h = await harness('metrics-lint', { ports: ['eth0', 'eth1'], nWorkers: 2 });
  try {
    const m = (await h.app.inject({ url: '/metrics' })).body;
    const r = spawnSync('promtool', ['check', 'metrics'], { input: ferryOnly(m), encoding: 'utf8' });
    assert.equal(r.status, 0, `promtool check metrics: ${r.stdout}${r.stderr}`);
    // and promtool does catch a bad name (the check is live)
    const bad = spawnSync('promtool', ['check', 'metrics'], { input: '# HELP ferry_x_ms x\n# TYPE ferry_x_ms counter\nferry_x_ms 1\n', encoding: 'utf8' });
    assert.notEqual(bad.status, 0);
  } finally {
    await h.close();
  }
});

test('without a segment the dataplane families are empty, not zero-filled', async () => {
  const h = await harness('metrics-none', {}, { startFake: false });
  try {
    const m = (await h.app.inject({ url: '/metrics' })).body;
    assert.doesNotMatch(m, /^ferry_emc_hits_total\{/m);
    assert.doesNotMatch(m, /^ferry_heartbeat_age_seconds /m);
  } finally {
    await h.close();
  }
});
