// make bench: Ferry's figures next to a baseline run in the same invocation, as ratios.
// Runs interleaved (baseline, Ferry, baseline, Ferry) and reports medians of the
// per-second samples, because this machine is noisy.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { NullFerry, startNullFerry, stopProc } from '../tests/integration/harness';
import { Ferry2, vmIp } from '../tests/integration/harness2';
import { attachSegment } from '../control/src/shm/segment';
import { DropReason, WORKER_STATS } from '../control/src/gen/proto';

const root = path.resolve(__dirname, '../..');
const BENCH_CLASSIFIER = path.join(root, 'dataplane/build/ferry-bench-classifier');
const BENCH_CT = path.join(root, 'dataplane/build/ferry-bench-conntrack');
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

/** ferryd on the two null ports (pure polling) and ferry-control, healthy. */
function startFerry(extra: string[] = [], memMb = 512): Promise<NullFerry> {
  return startNullFerry({ tag: 'bench', memMb, extra });
}

async function postText(api: string, text: string): Promise<void> {
  const r = await fetch(`${api}/v1/flows`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: text });
  if (r.status >= 300) throw new Error(`bulk flow add: ${r.status} ${(await r.text()).slice(0, 500)}`);
}

/** Total tx pps of ferryd, one sample a second, after the warm-up. */
async function sampleTx(api: string): Promise<number[]> {
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
}

/** 1,001 flows over 10 masks: the in_port pair that carries the null ports' (all-zero)
 * frames, and 9 masks of higher-priority flows those frames never match. */
function tenMaskFlows(): string {
  const lines = ['priority=10,in_port=0,actions=output:1', 'priority=10,in_port=1,actions=output:0'];
  const h = (n: number) => n.toString(16).padStart(2, '0');
  for (let i = 1; i <= 111; i++) {
    lines.push(
      `priority=101,dl_dst=00:00:00:00:00:${h(i)}/00:00:00:00:00:ff,actions=drop`,
      `priority=102,dl_dst=${h(i)}:00:00:00:00:00/ff:00:00:00:00:00,actions=drop`,
      `priority=103,dl_src=00:00:00:00:00:${h(i)}/00:00:00:00:00:ff,actions=drop`,
      `priority=104,dl_src=${h(i)}:00:00:00:00:00/ff:00:00:00:00:00,actions=drop`,
      `priority=105,ip,nw_src=10.0.${i}.0/24,actions=drop`,
      `priority=106,ip,nw_dst=10.1.${i}.0/24,actions=drop`,
      `priority=107,dl_vlan=${i},actions=drop`,
      `priority=108,in_port=0,dl_dst=00:00:00:00:${h(i)}:00/00:00:00:00:ff:00,actions=drop`,
      `priority=109,arp,arp_spa=10.2.${i}.1,actions=drop`,
    );
  }
  return lines.join('\n') + '\n';
}

/** ferryd forwarding 0->1 and 1->0 by flows installed over REST: total tx pps per second. */
async function ferrydForward(flowText = 'priority=1,in_port=0,actions=output:1\npriority=1,in_port=1,actions=output:0\n'): Promise<number[]> {
  const f = await startFerry();
  try {
    await postText(f.api, flowText);
    return await sampleTx(f.api);
  } finally {
    await f.stop();
  }
}

/** Drops of one reason, summed over workers, straight from the segment (the counters workers
 * write as they drop: no REST in between). */
function dropCounter(shm: string, reason: number): () => bigint {
  const seg = attachSegment(shm);
  const offs: number[] = [];
  for (let w = 0; w < seg.info.nWorkers; w++) offs.push(seg.info.workerStatsOff + w * WORKER_STATS.size + WORKER_STATS.fields.drops.offset + reason * 8);
  return () => offs.reduce((s, off) => s + seg.loadU64(off), 0n);
}

/** Round trips of a trivial request (GET /health), the HTTP floor of this machine in this run. */
async function healthRtts(api: string, n: number): Promise<number[]> {
  const xs: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await (await fetch(`${api}/health`)).text();
    xs.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return xs;
}

/**
 * Bulk programming through REST, and how soon a single POST's flow is active in the workers.
 * Traffic flows 0->1 all the time. Each measured POST adds a flow that outranks every earlier one
 * and drops (no actions): the workers' NO_ACTIONS drop counter, read from the segment in a tight
 * loop, starts moving the burst after they see it. The time from the POST's response to that is
 * the issue's "response to active" (ferryd answers only once the new table version is published,
 * so it is at most one burst). Between two, a flow that forwards again (higher still) stops the drops.
 */
async function programming(): Promise<Row[]> {
  const f = await startFerry(['--max-flows', '131072'], 1024);
  try {
    const n = 100000;
    const lines: string[] = [];
    for (let i = 0; i < n; i++) lines.push(`table=1,priority=100,ip,nw_src=10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255},actions=drop`);
    const text = lines.join('\n') + '\n';
    const t0 = process.hrtime.bigint();
    await postText(f.api, text);
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    // the same load again into the running service (del-flows first): what a reload costs once
    // ferry-control's code is compiled and its heap has grown, as opposed to its first load
    const del = await fetch(`${f.api}/v1/flows`, { method: 'DELETE' });
    if (del.status >= 300) throw new Error(`del-flows: ${del.status} ${await del.text()}`);
    const t1 = process.hrtime.bigint();
    await postText(f.api, text);
    const secsAgain = Number(process.hrtime.bigint() - t1) / 1e9;
    await postText(f.api, 'priority=1,in_port=0,actions=output:1\n');
    const drops = dropCounter(f.shm, DropReason.NO_ACTIONS);
    /** POSTs a flow; watch (when given) is first read right as the response's headers are in */
    const post = async (priority: number, actions: unknown[], watch?: () => boolean): Promise<{ sent: bigint; answered: bigint; at: bigint; seen: boolean }> => {
      const sent = process.hrtime.bigint();
      const r = await fetch(`${f.api}/v1/flows`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ priority, match: { in_port: 0 }, actions }),
      });
      const answered = process.hrtime.bigint();
      const seen = watch ? watch() : false;
      const at = process.hrtime.bigint();
      if (r.status >= 300) throw new Error(`POST /v1/flows: ${r.status} ${await r.text()}`);
      await r.arrayBuffer();
      return { sent, answered, at, seen };
    };
    const active: number[] = [];
    const rtt: number[] = [];
    let already = 0;
    for (let i = 0; i < 200; i++) {
      // forwarding again: the drops stop (not measured)
      await post(200 + 2 * i, [{ type: 'output', port: 1 }]);
      for (let a = drops(), tries = 0; ; tries++) {
        await sleep(2);
        const b = drops();
        if (b === a) break;
        if (tries > 1000) throw new Error('the drops never stopped: the forwarding flow is not active');
        a = b;
      }
      const before = drops();
      const r = await post(201 + 2 * i, [], () => drops() !== before);
      const { sent, answered } = r;
      rtt.push(Number(answered - sent) / 1e6);
      // the response is in: spin on the counter (hrtime, no await) until the workers drop
      let moved = r.seen;
      if (moved) {
        already++;
        active.push(0);
        continue;
      }
      let at = r.at;
      while (!moved && Number(at - answered) < 1e9) {
        moved = drops() !== before;
        at = process.hrtime.bigint();
      }
      if (!moved) throw new Error('a drop flow never became active within a second of its response');
      active.push(Number(at - answered) / 1e6);
    }
    const health = await healthRtts(f.api, 200);
    const pct = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * q))]!;
    const late = Math.max(0, ...active.filter((ms) => ms > 0));
    process.stderr.write(`bench: response -> active: ${already} of ${active.length} flows were already dropping when their response arrived` +
      (already < active.length ? `; the slowest of the rest began ${late.toFixed(3)} ms after it\n` : '\n'));
    return [
      { metric: `flow programming, bulk REST (${n} flows, one bundle, the first load of a fresh ferry-control)`, ferry: n / secs / 1000, baseline: 100,
        baselineName: 'issue target', unit: 'k flows/s', ratio: n / secs / 1000 / 100 },
      { metric: `flow programming, bulk REST (the same ${n} flows again after del-flows, same ferry-control)`, ferry: n / secsAgain / 1000, baseline: 100,
        baselineName: 'issue target', unit: 'k flows/s', ratio: n / secsAgain / 1000 / 100 },
      // ferryd answers only once the new table version is published: a flow is active by the time its
      // response arrives, so the "response -> active within 2 ms" is counted, not timed
      { metric: `single POST: flows already active in the workers when their response arrived (workers' drop counter, read from the segment at the response)`,
        ferry: already, baseline: active.length, baselineName: 'all (issue: active within 2 ms of the response)', unit: `of ${active.length}`, ratio: already / active.length },
      // latencies: lower is better, so the ratio is baseline / Ferry (above 1 beats it), as the other such rows
      { metric: `single POST round trip, answered once the workers see it, p99 (p50 ${pct(rtt, 0.5).toFixed(2)} ms; GET /health in the same run: p50 ${pct(health, 0.5).toFixed(2)} ms, p99 ${pct(health, 0.99).toFixed(2)} ms) (lower is better: ratio = baseline/Ferry)`,
        ferry: pct(rtt, 0.99), baseline: 2, baselineName: 'issue target', unit: 'ms', ratio: 2 / pct(rtt, 0.99) },
    ];
  } finally {
    await f.stop();
  }
}
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
      metric: metric!, ferry: Number(ferry), baseline: Number(base), baselineName: baseName!,
      unit: metric!.startsWith('flow table inserts') ? 'M flows/s' : 'Mpps',
      ratio: Number(ferry) / Number(base),
    };
  });
}


/** One figure of ferry-bench-conntrack: the median over ROUNDS runs. */
function ctFigure(args: string[], pick: RegExp): number {
  const xs: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const out = execFileSync(BENCH_CT, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    const line = out.split('\n').find((l) => pick.test(l));
    if (!line) throw new Error(`ferry-bench-conntrack ${args.join(' ')}: no line matching ${pick}:\n${out}`);
    xs.push(Number(line.split('\t')[1]));
  }
  return median(xs);
}

/** Instructions per packet of the OVS benchmark workload under callgrind (the
 * difference between two packet counts, so start-up cost drops out). */
function ctInstructions(): number {
  const ir = (n: number): number => {
    const r = spawnSync('valgrind', ['--tool=callgrind', '--callgrind-out-file=/dev/null', BENCH_CT, 'ovs', '1', String(n), '32'],
      { encoding: 'utf8' });
    const m = /refs:\s+([\d,]+)/.exec(r.stderr ?? '');
    if (!m) throw new Error(`callgrind gave no count:\n${r.stderr}`);
    return Number(m[1]!.replace(/,/g, ''));
  };
  return (ir(400000) - ir(200000)) / 200000;
}

/** The connection tracker next to OVS v3.7.1's ovstest figures on this VM class
 * (shared/research/benchmarks.md: ovstest is not packaged, so its measured figures
 * stand in for a run here). */
function conntrackRows(): Row[] {
  process.stderr.write('bench: connection tracker (ferry-bench-conntrack, OVS ovstest workloads)\n');
  const anchor = 'OVS 3.7.1 ovstest, benchmarks.md';
  const more = (metric: string, ferry: number, baseline: number, unit: string, baselineName = anchor): Row =>
    ({ metric, ferry, baseline, baselineName, unit, ratio: ferry / baseline });
  const less = (metric: string, ferry: number, baseline: number, unit: string, baselineName = anchor): Row =>
    ({ metric: `${metric} (lower is better: ratio = baseline/Ferry)`, ferry, baseline, baselineName, unit, ratio: baseline / ferry });
  const ovs = /ovs-benchmark/;
  return [
    more('ct: ovstest benchmark 1 thread, 1 UDP flow, commit, batch 32', ctFigure(['ovs', '1', '10000000', '32'], ovs), 12.3, 'Mpps'),
    more('ct: ovstest benchmark 2 threads, batch 32', ctFigure(['ovs', '2', '10000000', '32'], ovs), 22.2, 'Mpps'),
    more('ct: ovstest benchmark 1 thread, batch 1', ctFigure(['ovs', '1', '10000000', '1'], ovs), 11.1, 'Mpps'),
    less('ct: instructions per packet, ovstest benchmark 1 thread batch 32 (callgrind)', ctInstructions(), 961, 'Ir/pkt'),
    more('ct: new connections at 100,000, batch 1', ctFigure(['setup', '100000', '1'], /new connections/), 2.48, 'M/s'),
    more('ct: new connections at 100,000, batch 32', ctFigure(['setup', '100000', '32'], /new connections/), 2.48, 'M/s'),
    more('ct: new connections at 1,000,000, batch 32', ctFigure(['setup', '1000000', '32'], /new connections/), 1.5, 'M/s'),
    more('ct: established lookups at 1,000,000, batch 32 (OVS: batch 1)', ctFigure(['setup', '1000000', '32'], /established/), 3.9, 'M/s'),
    ...cleanupRows(),
    ...natRows(),
  ];
}

/** The worker's bursts while a cleanup thread expires 1,000,000 connections, next to
 * its bursts with no cleanup thread just before, all from one run (one machine state). */
function cleanupRows(): Row[] {
  const xs: Record<string, number[]> = {};
  const note = (k: string, v: number): void => { (xs[k] ??= []).push(v); };
  for (let r = 0; r < ROUNDS; r++) {
    const out = execFileSync(BENCH_CT, ['cleanup', '1000000'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    for (const line of out.split('\n').filter((l) => l.startsWith('ct '))) {
      const [name, value, , more] = line.split('\t');
      note(name!, Number(value));
      const p9999 = /p99\.99 (\d+) us/.exec(more ?? '');
      if (p9999) note(`${name!} p99.99`, Number(p9999[1]));
    }
  }
  const fig = (re: RegExp): number => {
    const k = Object.keys(xs).find((n) => re.test(n));
    if (!k) throw new Error(`ferry-bench-conntrack cleanup: no line matching ${re}`);
    return median(xs[k]!);
  };
  const less = (metric: string, ferry: number, baseline: number, unit: string, baselineName: string): Row =>
    ({ metric: `${metric} (lower is better: ratio = baseline/Ferry)`, ferry, baseline, baselineName, unit, ratio: baseline / ferry });
  return [
    less('ct: worst worker burst (32 lookups) while the cleanup thread expires 1,000,000', fig(/^ct worst worker burst while/), 50, 'us', 'issue bound'),
    less('ct: worst worker burst, same run before, no cleanup thread', fig(/^ct worst worker burst with no cleanup/), 50, 'us', 'issue bound'),
    less('ct: p99.99 worker burst while the cleanup thread expires 1,000,000', fig(/^ct worst worker burst while.* p99\.99$/),
      fig(/^ct worst worker burst with no cleanup.* p99\.99$/), 'us', 'same run, no cleanup thread'),
    less('ct: worker bursts over 50 us per million while the cleanup thread expires 1,000,000', fig(/over 50 us per million, sweeping/),
      fig(/over 50 us per million, baseline/), 'per M', 'same run, no cleanup thread'),
    less('ct: longest bucket-lock hold of the cleanup thread (its CPU time, host preemption included)', fig(/longest/), 50, 'us', 'issue bound'),
  ];
}

/** NAT next to no NAT, both from one ferry-bench-conntrack run (so one machine state):
 * new connections committed with SNAT over 16 addresses against plain commits, and
 * replies found by their reply nodes and rewritten back against plain replies. */
function natRows(): Row[] {
  const xs: Record<string, number[]> = {};
  for (let r = 0; r < ROUNDS; r++) {
    const out = execFileSync(BENCH_CT, ['nat', '1000000', '32'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    for (const line of out.split('\n').filter((l) => l.startsWith('ct nat '))) {
      const [name, value] = line.split('\t');
      (xs[name!] ??= []).push(Number(value));
    }
  }
  const fig = (re: RegExp): number => {
    const k = Object.keys(xs).find((n) => re.test(n));
    if (!k) throw new Error(`ferry-bench-conntrack nat: no line matching ${re}`);
    return median(xs[k]!);
  };
  const row = (metric: string, ferry: number, baseline: number): Row =>
    ({ metric, ferry, baseline, baselineName: 'same run without NAT', unit: 'M/s', ratio: ferry / baseline });
  return [
    row('ct: new connections at 1,000,000 with SNAT (16 addresses), batch 32', fig(/new.*SNAT/), fig(/new.*no NAT/)),
    row('ct: established replies at 1,000,000 with SNAT (reply node + header rewrite), batch 32', fig(/replies.*SNAT/), fig(/replies.*no NAT/)),
  ];
}

/** iperf3 TCP (one stream, SECONDS) from namespace client to serverIp in namespace server:
 * Gbit/s of each 1 s interval, the first (slow start) left out. */
async function iperfGbps(client: string, server: string, serverIp: string): Promise<number[]> {
  const srv = spawn('ip', ['netns', 'exec', server, 'iperf3', '-s', '-1', '-B', serverIp], { stdio: 'ignore' });
  try {
    for (let i = 0; i < 100 && !execFileSync('ip', ['netns', 'exec', server, 'ss', '-ltnH'], { encoding: 'utf8' }).includes(':5201'); i++) await sleep(50);
    const r = spawnSync('ip', ['netns', 'exec', client, 'iperf3', '-c', serverIp, '-t', String(SECONDS), '--json', '--connect-timeout', '3000'],
      { encoding: 'utf8', timeout: (SECONDS + 20) * 1000 });
    const j = JSON.parse(r.stdout || '{}') as { error?: string; intervals?: { sum: { bits_per_second: number } }[] };
    if (j.error || !j.intervals?.length) throw new Error(`iperf3 ${client} -> ${serverIp}: ${j.error ?? r.stderr ?? 'no output'}`);
    return j.intervals.slice(1).map((x) => x.sum.bits_per_second / 1e9);
  } finally {
    await stopProc(srv, 'SIGTERM');
  }
}

/** Two namespaces on a plain veth pair, set up as the tunnel topology's VMs are (MTU 1500,
 * offloads off): the baseline the tunnel is measured against. */
function directPair(p: string, up: boolean): void {
  const del = () => { for (const s of ['a', 'b']) spawnSync('ip', ['netns', 'del', `${p}-${s}`]); };
  del();
  if (!up) return;
  const run = (...args: string[]) => execFileSync(args[0]!, args.slice(1), { stdio: 'ignore' });
  for (const s of ['a', 'b']) {
    run('ip', 'netns', 'add', `${p}-${s}`);
    run('ip', 'netns', 'exec', `${p}-${s}`, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1');
    run('ip', '-n', `${p}-${s}`, 'link', 'set', 'lo', 'up');
  }
  run('ip', 'link', 'add', 'eth0', 'netns', `${p}-a`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', `${p}-b`);
  for (const [s, k] of [['a', 1], ['b', 2]] as const) {
    spawnSync('ip', ['netns', 'exec', `${p}-${s}`, 'ethtool', '-K', 'eth0', 'tx', 'off', 'rx', 'off', 'gso', 'off', 'tso', 'off', 'gro', 'off']);
    run('ip', '-n', `${p}-${s}`, 'addr', 'add', `10.251.1.${k}/24`, 'dev', 'eth0');
    run('ip', '-n', `${p}-${s}`, 'link', 'set', 'eth0', 'mtu', '1500', 'up');
  }
}

/** iperf3 through two ferryd joined by an STT tunnel (scripts/topology2.sh, the flows of the
 * integration test: conntrack on both sides) next to iperf3 on a direct veth pair, interleaved. */
async function sttTunnelRows(): Promise<Row[]> {
  process.stderr.write('bench: iperf3 through the STT tunnel (2 ferryd) and over a direct veth pair\n');
  const topo = new Ferry2(`fbt${process.pid % 10000}`);
  const direct = `fbd${process.pid % 10000}`;
  const ferry: number[] = [];
  const base: number[] = [];
  const ratios: number[] = [];
  try {
    await topo.start();
    await topo.configure();
    directPair(direct, true);
    // ARP on both sides and the tunnel's neighbour before the clock starts
    const warm = topo.ping(1, 2, ['-c', '2', '-i', '0.2', '-W', '2']);
    if (!warm.ok) throw new Error(`no ping through the tunnel:\n${warm.out}\n${topo.logs()}`);
    for (let r = 0; r < ROUNDS; r++) {
      const b = await iperfGbps(`${direct}-a`, `${direct}-b`, '10.251.1.2');
      const f = await iperfGbps(topo.node(1).vmNs, topo.node(2).vmNs, vmIp(2));
      base.push(...b);
      ferry.push(...f);
      ratios.push(median(f) / median(b));
    }
  } finally {
    directPair(direct, false);
    await topo.stop();
  }
  process.stderr.write(`bench: iperf3 Gbit/s direct ${base.map((v) => v.toFixed(2)).join(' ')}; tunnel ${ferry.map((v) => v.toFixed(2)).join(' ')}\n`);
  return [{
    metric: `iperf3 TCP vm1->vm2 through STT tunnel, 2 ferryd (af_packet, conntrack), -t ${SECONDS}`,
    ferry: median(ferry), baseline: median(base), baselineName: 'iperf3 direct veth', unit: 'Gbit/s', ratio: median(ratios),
  }];
}

const BENCH_STT = path.join(root, 'dataplane/build/ferry-bench-stt');
/** the largest inner frame STT carries (65535 - 18): "64 KB" */
const STT_BIG = 65517;

/** key=value figures of one ferry-bench-stt mode: the medians over ROUNDS runs. */
function sttFigures(args: string[], keys: string[]): number[] {
  const xs: number[][] = keys.map(() => []);
  for (let r = 0; r < ROUNDS; r++) {
    const out = execFileSync(BENCH_STT, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    keys.forEach((key, i) => {
      const m = new RegExp(`(?:^|\\s)${key}=([\\d.]+)`).exec(out);
      if (!m) throw new Error(`ferry-bench-stt ${args.join(' ')}: no ${key}= in:\n${out}`);
      xs[i]!.push(Number(m[1]));
    });
  }
  return xs.map(median);
}

/** STT encapsulation and reassembly on one core (ferry-bench-stt), when it is built. */
function sttCodecRows(): Row[] {
  try {
    const probe = execFileSync(BENCH_STT, ['encap', '1500', '1000', '1460'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    if (!/encap_gbps=/.test(probe)) return [];
  } catch {
    return []; // not built (or a placeholder)
  }
  process.stderr.write('bench: STT encap/decap on one core (ferry-bench-stt)\n');
  const big = String(STT_BIG);
  const one = (args: string[], key: string): number => sttFigures(args, [key])[0]!;
  const encBig = one(['encap', big, '10000', '1460'], 'encap_gbps');
  const copyBig = one(['baseline', big, '10000'], 'baseline_gbps');
  const encSmall = one(['encap', '1500', '1000000', '1460'], 'encap_mpps');
  const copySmall = one(['baseline', '1500', '1000000'], 'baseline_mpps');
  const [decBig, decHw] = sttFigures(['decap', big, '10000', '1460'], ['decap_gbps', 'decap_hw_gbps']) as [number, number];
  const row = (metric: string, ferry: number, baseline: number, baselineName: string, unit: string): Row =>
    ({ metric, ferry, baseline, baselineName, unit, ratio: ferry / baseline });
  const copy = 'mbuf copy + checksum, same bytes';
  return [
    row('STT encap, 64 KB frames, software TCP checksums, 1 core', encBig, 40, 'issue target', 'Gbit/s'),
    row('STT encap, 64 KB frames, software TCP checksums, 1 core', encBig, copyBig, copy, 'Gbit/s'),
    row('STT encap, 1500 B frames (2 segments each), 1 core', encSmall, copySmall, copy, 'Mpps'),
    row('STT decap + reassembly, 64 KB frames, software checksum check, 1 core', decBig, 20, 'issue target', 'Gbit/s'),
    row('STT decap + reassembly, 64 KB frames, NIC-verified checksums, 1 core', decHw, 20, 'issue target', 'Gbit/s'),
  ];
}

/** FERRY_BENCH_ONLY=forwarding,classifier,conntrack,programming,stt runs only those
 * parts (all by default): for working on one figure. */
const ONLY = new Set((process.env.FERRY_BENCH_ONLY ?? 'forwarding,classifier,conntrack,programming,stt').split(','));

async function forwardingRows(): Promise<Row[]> {
  const ferry: number[] = [];
  const pipe: number[] = [];
  const base: number[] = [];
  const ratios: number[] = [];
  const pipeRatios: number[] = [];
  const ten = tenMaskFlows();
  for (let r = 0; r < ROUNDS; r++) {
    process.stderr.write(`bench: round ${r + 1}/${ROUNDS}: testpmd io, ferryd (in_port flows), ferryd (1,001 flows / 10 masks)\n`);
    const b = await testpmdIo();
    const f = await ferrydForward();
    const p = await ferrydForward(ten);
    base.push(...b);
    ferry.push(...f);
    pipe.push(...p);
    ratios.push(median(f) / median(b));
    pipeRatios.push(median(p) / median(b));
  }
  process.stderr.write(`bench: samples (Mpps) testpmd ${base.map((v) => (v / 1e6).toFixed(1)).join(' ')}; ferryd ${ferry.map((v) => (v / 1e6).toFixed(1)).join(' ')}; per-round ratios ${ratios.map((v) => v.toFixed(2)).join(' ')}\n`);
  return [{
    metric: 'forwarding 2x net_null, 64 B, 1 worker core',
    ferry: median(ferry) / 1e6, baseline: median(base) / 1e6, baselineName: 'testpmd io', unit: 'Mpps',
    ratio: median(ratios),
  }, {
    metric: 'pipeline parse+classify+forward, 64 B, 1,001 flows / 10 masks, 1 core',
    ferry: median(pipe) / 1e6, baseline: median(base) / 1e6, baselineName: 'testpmd io', unit: 'Mpps',
    ratio: median(pipeRatios),
  }];
}

async function main(): Promise<void> {
  const rows: Row[] = [];
  if (ONLY.has('forwarding')) rows.push(...(await forwardingRows()));
  if (ONLY.has('classifier')) rows.push(...classifierRows());
  if (ONLY.has('conntrack')) rows.push(...conntrackRows());
  if (ONLY.has('programming')) {
    process.stderr.write('bench: flow programming over REST\n');
    rows.push(...(await programming()));
  }
  if (ONLY.has('stt')) rows.push(...sttCodecRows(), ...(await sttTunnelRows()));
  printTable(rows);
}

main().catch((e) => { console.error(e); process.exit(1); });
