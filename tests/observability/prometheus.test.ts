// Debian's Prometheus, on loopback, scraping a ferry-control attached to a real ferryd that
// forwards between two net_null ports: the counters arrive as rates and gauges Prometheus can query.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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

/** A dashboard query with its Grafana variables bound (this instance, every tunnel, a 5 s rate). */
function bind(expr: string): string {
  return expr.replace(/\$__rate_interval/g, '5s').replace(/instance=~"\$instance"/g, 'instance=~".+"')
    .replace(/tunnel=~"\$tunnel"/g, 'tunnel=~".+"');
}

test('the Tunnels dashboard\'s key queries give the right values on real encapsulation traffic', { skip }, async () => {
  const api = stack!.api;
  const send = async (method: string, url: string, body: unknown, type = 'application/json'): Promise<void> => {
    const r = await fetch(`${api}${url}`, { method, headers: { 'content-type': type },
      body: typeof body === 'string' ? body : JSON.stringify(body) });
    assert.ok(r.status < 300, `${method} ${url}: ${r.status} ${await r.text()}`);
  };
  // every frame net_null0 brings in goes into an STT tunnel on net_null1 (64-byte frames: one segment each)
  await send('POST', '/v1/tunnels', { name: 'prom0', local_ip: '192.0.2.1/24', remote_ip: '192.0.2.2', key: '5', underlay_port: 1 });
  await send('PUT', '/v1/neighbours/1/192.0.2.2', { mac: '02:00:00:00:00:02' });
  const tunnels = await (await fetch(`${api}/v1/tunnels/prom0`)).json() as { port: number };
  await send('POST', '/v1/flows', `priority=1,in_port=0,actions=output:${tunnels.port}\n`, 'text/plain');

  const dash = JSON.parse(readFileSync(path.join(__dirname, '../../../docker/grafana/dashboards/tunnels.json'), 'utf8')) as
    { panels: { title: string; targets?: { expr: string }[] }[] };
  const exprOf = (title: string, i = 0): string => bind(dash.panels.find((p) => p.title === title)!.targets![i]!.expr);

  const frames = await waitFor('an encapsulation rate over two scrapes', async () => {
    const r = await query(exprOf('Encapsulated frames/s'));
    return r.length === 1 && Number(r[0]!.value[1]) > 0 ? Number(r[0]!.value[1]) : undefined;
  }, 20000);
  assert.ok(frames > 1e5, `net_null traffic encapsulated at ${frames} frames/s`);
  // the per-tunnel series is the tunnel's name and carries the same frames
  const mine = await waitFor('the tunnel\'s own rate (a new series needs two scrapes)', async () =>
    (await query(exprOf('Packets/s per tunnel', 1))).find((s) => s.metric.tunnel === 'prom0'), 20000);
  assert.ok(Number(mine.value[1]) > 1e5, JSON.stringify(mine));
  const perFrame = await query(exprOf('Segments per frame'));
  assert.equal(perFrame.length, 1);
  // (the two counters are read a few instructions apart while the worker counts on: a hair of skew)
  assert.ok(Math.abs(Number(perFrame[0]!.value[1]) - 1) < 1e-3, `64-byte frames take one segment each: ${perFrame[0]!.value[1]}`);
  // a static neighbour: nothing waits for ARP, nothing fails
  assert.equal(Number((await query(exprOf('Frames held for ARP')))[0]!.value[1]), 0);
  assert.equal((await query(exprOf('STT errors/s by reason'))).length, 0);
  assert.equal(Number((await query(exprOf('Tunnels')))[0]!.value[1]), 1);
});
