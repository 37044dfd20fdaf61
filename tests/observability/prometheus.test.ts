// Debian's Prometheus, on loopback, scraping a ferry-control attached to a real ferryd that
// forwards between two net_null ports: the counters arrive as rates and gauges Prometheus can query.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, waitFor } from '../integration/harness';
import { FerryStack, startFerryStack, stopProc } from './stack';

const skip = spawnSync('prometheus', ['--version']).error ? 'prometheus not installed (scripts/install-deps.sh installs it)' : false;

let stack: FerryStack | undefined;
let prom: ChildProcess | undefined;
let dir: string | undefined;
let promApi = '';
let promLog = '';

before(async () => {
  if (skip) return;
  stack = await startFerryStack('prom');
  dir = mkdtempSync(path.join(tmpdir(), 'ferry-prom-'));
  const config = path.join(dir, 'prometheus.yml');
  writeFileSync(config, [
    'global:', '  scrape_interval: 1s', '  evaluation_interval: 1s',
    'scrape_configs:', '  - job_name: ferry', '    static_configs:', `      - targets: ["${stack.target}"]`, '',
  ].join('\n'));
  const port = await freePort();
  promApi = `http://127.0.0.1:${port}`;
  prom = spawn('prometheus', [`--config.file=${config}`, `--web.listen-address=127.0.0.1:${port}`,
    `--storage.tsdb.path=${path.join(dir, 'data')}`, '--storage.tsdb.retention.time=1h'], { stdio: ['ignore', 'pipe', 'pipe'] });
  prom.stdout!.on('data', (d: Buffer) => (promLog += d.toString()));
  prom.stderr!.on('data', (d: Buffer) => (promLog = (promLog + d.toString()).slice(-20000)));
});

after(async () => {
  if (prom) await stopProc(prom, 'SIGTERM');
  await stack?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Sample { metric: Record<string, string>; value: [number, string] }

async function query(q: string): Promise<Sample[]> {
  const r = await fetch(`${promApi}/api/v1/query?${new URLSearchParams({ query: q })}`);
  const body = await r.json() as { status: string; error?: string; data?: { resultType: string; result: Sample[] } };
  if (body.status !== 'success') throw new Error(`query ${q}: ${body.error}`);
  return body.data!.result;
}

test('Prometheus scrapes ferry-control: up, forwarding rate and flow count', { skip }, async () => {
  await waitFor('Prometheus ready', async () => {
    if (prom!.exitCode != null) throw new Error(`prometheus exited: ${promLog}`);
    try { return (await fetch(`${promApi}/-/ready`)).ok ? true : undefined; } catch { return undefined; }
  }, 30000);
  await waitFor('up == 1 for ferry-control', async () => {
    const r = await query('up{job="ferry"}');
    return r.length === 1 && r[0]!.value[1] === '1' ? true : undefined;
  }, 30000);

  // A 5 s rate needs at least two samples in the window: keep asking until it has them.
  const rates = await waitFor('a tx rate over two scrapes', async () => {
    const r = await query('rate(ferry_port_tx_packets_total[5s])');
    return r.length >= 2 ? r : undefined;
  }, 20000);
  const byPort = Object.fromEntries(rates.map((s) => [s.metric.port!, Number(s.value[1])]));
  const best = Math.max(...Object.values(byPort));
  assert.ok(best > 1e6, `net_null forwarding should be over 1 Mpps on some port; rates: ${JSON.stringify(byPort)}`);

  const flows = await query('sum(ferry_flows)');
  assert.equal(flows.length, 1);
  assert.equal(Number(flows[0]!.value[1]), 2);

  // the recording-rule style queries of the dashboard work on real data too
  const emc = await query('sum(rate(ferry_emc_hits_total[5s])) / (sum(rate(ferry_emc_hits_total[5s])) + sum(rate(ferry_emc_misses_total[5s])))');
  assert.equal(emc.length, 1);
  const ratio = Number(emc[0]!.value[1]);
  assert.ok(ratio >= 0 && ratio <= 1, `EMC hit ratio ${ratio}`);
});
