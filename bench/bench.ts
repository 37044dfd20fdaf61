// make bench: Ferry's figures next to a baseline run in the same invocation, as ratios.
// Runs interleaved (baseline, Ferry, baseline, Ferry) and reports medians of the
// per-second samples, because this machine is noisy.
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { freePort, waitFor } from '../tests/integration/harness';

const root = path.resolve(__dirname, '../..');
const FERRYD = path.join(root, 'dataplane/build/ferryd');
const BENCH_CLASSIFIER = path.join(root, 'dataplane/build/ferry-bench-classifier');
const CONTROL = path.join(root, 'control/bin/ferry-control.js');
const SECONDS = Number(process.env.FERRY_BENCH_SECONDS ?? 5);
const WARMUP = 2;
const ROUNDS = Number(process.env.FERRY_BENCH_ROUNDS ?? 3);
const EAL = ['--no-huge', '-m', '512', '--no-pci', '-l', '0,1', '--vdev', 'net_null0', '--vdev', 'net_null1', '--log-level=error'];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? NaN : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

function stopProc(p: ChildProcess, sig: NodeJS.Signals = 'SIGINT'): Promise<void> {
  if (p.exitCode != null || p.signalCode != null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => p.kill('SIGKILL'), 5000);
    p.on('exit', () => { clearTimeout(t); resolve(); });
    p.kill(sig);
  });
}

/** testpmd io forwarding between the two null ports: total Tx pps per stats period. */
async function testpmdIo(): Promise<number[]> {
  const prefix = `ferry-bench-tp-${process.pid}`;
  const p = spawn('dpdk-testpmd', [...EAL, '--file-prefix', prefix, '--',
    '--forward-mode=io', '--nb-cores=1', '--stats-period=1', '--total-num-mbufs=16384'],
  { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  await sleep((SECONDS + WARMUP) * 1000 + 500);
  await stopProc(p);
  rmSync(`/var/run/dpdk/${prefix}`, { recursive: true, force: true });
  // each period prints one "Tx-pps:" line per port, ports in order
  const tx = [...out.matchAll(/Tx-pps:\s+(\d+)/g)].map((m) => Number(m[1]));
  const periods: number[] = [];
  for (let i = 0; i + 1 < tx.length; i += 2) periods.push(tx[i]! + tx[i + 1]!);
  const samples = periods.filter((v) => v > 0).slice(WARMUP);
  if (samples.length === 0) throw new Error(`testpmd gave no samples:\n${out.slice(-2000)}`);
  return samples;
}

/** ferryd forwarding 0->1 and 1->0 by flows installed over REST: total tx pps per second. */
async function ferrydForward(): Promise<number[]> {
  const shm = `ferry-bench-${process.pid}`;
  const fd = spawn(FERRYD, [...EAL, '--file-prefix', shm, '--', '--shm-name', shm], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  fd.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  fd.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const port = await freePort();
  const api = `http://127.0.0.1:${port}`;
  const ctl = spawn('node', [CONTROL, '--shm-name', shm, '--listen', `127.0.0.1:${port}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    await waitFor('ferry-control healthy', async () => {
      if (fd.exitCode != null) throw new Error(`ferryd exited: ${log}`);
      return (await fetch(`${api}/health`)).status === 200 ? true : undefined;
    }, 20000);
    for (const [a, b] of [[0, 1], [1, 0]]) {
      const r = await fetch(`${api}/v1/flows`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ priority: 1, match: { in_port: a }, actions: [{ type: 'output', port: b }] }),
      });
      if (r.status !== 201) throw new Error(`flow add: ${r.status} ${await r.text()}`);
    }
    const txTotal = async () => {
      const body = await (await fetch(`${api}/v1/ports`)).json() as { items: { stats: { tx_packets: string } }[] };
      return body.items.reduce((s, p) => s + Number(p.stats.tx_packets), 0);
    };
    await sleep(WARMUP * 1000);
    const samples: number[] = [];
    let prev = await txTotal();
    let t0 = process.hrtime.bigint();
    for (let i = 0; i < SECONDS; i++) {
      await sleep(1000);
      const now = await txTotal();
      const t1 = process.hrtime.bigint();
      samples.push((now - prev) / (Number(t1 - t0) / 1e9));
      prev = now;
      t0 = t1;
    }
    return samples;
  } finally {
    await stopProc(ctl, 'SIGTERM');
    await stopProc(fd);
    rmSync(`/dev/shm/${shm}`, { force: true });
    rmSync(`/var/run/dpdk/${shm}`, { recursive: true, force: true });
  }
}

/** ferry and baseline medians over all samples; ratio = median of the per-round ratios, so
 * drift of the machine between rounds cancels out. */
interface Row { metric: string; ferry: number; baseline: number; baselineName: string; unit: string; ratio: number }

function printTable(rows: Row[]): void {
  const fmt = (v: number) => (Number.isFinite(v) ? v.toFixed(2) : 'n/a');
  const cells = rows.map((r) => [r.metric, `${fmt(r.ferry)} ${r.unit}`, `${fmt(r.baseline)} ${r.unit} (${r.baselineName})`, `${fmt(r.ratio)}x`]);
  const head = ['metric', 'Ferry', 'baseline (same run)', 'ratio'];
  const w = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => '| ' + c.map((x, i) => x.padEnd(w[i]!)).join(' | ') + ' |';
  console.log(line(head));
  console.log('|' + w.map((n) => '-'.repeat(n + 2)).join('|') + '|');
  for (const c of cells) console.log(line(c));
}

/** Classifier and cache lookups on one core, each next to rte_hash on the same keys. */
function classifierRows(): Row[] {
  process.stderr.write('bench: classifier lookups (ferry-bench-classifier)\n');
  const out = execFileSync(BENCH_CLASSIFIER, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return out.trim().split('\n').map((line) => {
    const [metric, ferry, base, baseName] = line.split('\t');
    return {
      metric: metric!, ferry: Number(ferry), baseline: Number(base), baselineName: baseName!, unit: 'Mpps',
      ratio: Number(ferry) / Number(base),
    };
  });
}

async function main(): Promise<void> {
  const ferry: number[] = [];
  const base: number[] = [];
  const ratios: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    process.stderr.write(`bench: round ${r + 1}/${ROUNDS}: testpmd io, then ferryd\n`);
    const b = await testpmdIo();
    const f = await ferrydForward();
    base.push(...b);
    ferry.push(...f);
    ratios.push(median(f) / median(b));
  }
  process.stderr.write(`bench: samples (Mpps) testpmd ${base.map((v) => (v / 1e6).toFixed(1)).join(' ')}; ferryd ${ferry.map((v) => (v / 1e6).toFixed(1)).join(' ')}; per-round ratios ${ratios.map((v) => v.toFixed(2)).join(' ')}\n`);
  const rows: Row[] = [{
    metric: 'forwarding 2x net_null, 64 B, 1 worker core',
    ferry: median(ferry) / 1e6, baseline: median(base) / 1e6, baselineName: 'testpmd io', unit: 'Mpps',
    ratio: median(ratios),
  }];
  rows.push(...classifierRows());
  printTable(rows);
}

main().catch((e) => { console.error(e); process.exit(1); });
