// `make soak`: SOAK_SECONDS (default 600) of mixed traffic between the two VMs of the two-node STT
// topology (tests/integration/harness2.ts) while the control plane is kept busy: flow churn in a
// scratch table no packet reaches, conntrack flushes, tunnel changes, one kill -9 of a
// ferry-control and one of a ferryd. It prints RSS, mempool fill, conntrack entries, flows and
// tunnels at the start and the end as one table and exits 1 on growth or on any desired state
// lost (compared with what the soak itself expects every node to hold).
//
// The soak keeps its own model of each node's desired state: the base flows (sttFlows, by id),
// the scratch table (table 50, by cookie: every scratch flow gets a unique cookie, so the model
// needs neither ferry-control's id function nor the ids of bulk adds) and the tunnels. Everything
// that talks to one node's control service takes that node's lock, so the model and the node
// never disagree because of a request in flight; traffic and metric reads take no lock.
import { ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { stopProc, waitFor } from '../integration/harness';
import { Ferry2, HvNode, tunnelBody, underlayIp, vmIp } from '../integration/harness2';

const SOAK_S = Number(process.env.SOAK_SECONDS ?? 600);
if (!Number.isFinite(SOAK_S) || SOAK_S < 30) {
  console.error(`soak: SOAK_SECONDS must be a number >= 30 (got ${process.env.SOAK_SECONDS})`);
  process.exit(2);
}
/** TCP rate cap: 2 cores run two polling ferryds, two ferry-controls, iperf3 and the kernel's
 * veths; the soak is about state and memory under steady load, not throughput, so the stream leaves
 * the control plane some CPU (SOAK_TCP_RATE=0: uncapped). */
const TCP_RATE = process.env.SOAK_TCP_RATE ?? '300M';
const WARMUP_S = 20;
const SCRATCH = 50; // no flow goes to table 50: its churn never touches the traffic
const TARGET = 2000; // scratch flows per node at the start and after each replace
const HIGH = 3000; // above this the oldest batch goes: the table breathes instead of growing

// Bounds, and why:
// ferryd allocates its mempools, flow tables and conntrack table up front (EAL memory, -m 256);
// pages first touched late (a table slot, a reassembly buffer) show up as RSS, but the warm-up and
// the pre-filled scratch table touched most of them before the start sample. 8 MiB is far below
// what 10 minutes of a per-packet leak would add (tens of millions of packets) and about what
// 100 bytes lost per flow-mod would (~90,000 flow-mods), and above the pages first touched late
// (+1..4 MiB seen).
const FERRYD_RSS_MIB = 8;
// Node's heap breathes (GC timing, JIT, buffers; +10..25 MiB over a run is usual): fail on a
// lasting rise over 64 MiB or over 50% of the start, whichever is less (the end figure is the
// lowest of several samples at rest; at ~125 MiB the 50% bound is the tighter one).
const CONTROL_RSS_MIB = 64;
const CONTROL_RSS_RATIO = 0.5;
// mbufs in use at rest, end against start (idle to idle: whatever the rx rings hold at rest): a
// burst of one port (32) is all that may still be on its way back to the pool when sampled.
const MBUF_TOL = 32;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const rnd = (n: number): number => Math.floor(Math.random() * n);
const MiB = (kib: number): number => Math.round((kib / 1024) * 10) / 10;

const failures: string[] = [];
const fail = (msg: string): void => {
  failures.push(msg);
  console.log(`soak: FAIL ${msg}`);
};
const t0 = Date.now();
const log = (msg: string): void => console.log(`soak [${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${msg}`);

const stats = {
  flowsAdded: 0, flowsDeleted: 0, bulks: 0, replaces: 0, singleAdds: 0, listChecks: 0,
  flushes: 0, ctFlushed: 0, tunnelChanges: 0, probes: 0, probePingsLost: 0,
  tcpOk: 0, tcpFailed: 0, tcpGbps: [] as number[], tcpErrors: [] as string[],
  udpOk: 0, udpFailed: 0, udpLossPct: [] as number[], udpErrors: [] as string[],
  pings: [] as { dir: string; sent: number; received: number }[],
  controlRestarts: 0, ferrydRestarts: 0,
};

// ---- processes ---------------------------------------------------------------------------
/** every traffic process the soak started, killed at cleanup (they outlive nothing) */
const children = new Set<ChildProcess>();

function inNs(ns: string, args: string[]): ChildProcess {
  const p = spawn('ip', ['netns', 'exec', ns, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(p);
  p.on('exit', () => children.delete(p));
  return p;
}

/** Runs a command in a namespace to its end (killed after timeoutMs); never throws. */
function run(ns: string, args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; out: string }> {
  return new Promise((resolve) => {
    const p = inNs(ns, args);
    let stdout = '';
    let stderr = '';
    p.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('exit', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, out: stdout + stderr });
    });
  });
}

class Mutex {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const r = this.tail.then(fn, fn);
    this.tail = r.catch(() => undefined);
    return r;
  }
}

// ---- REST ----------------------------------------------------------------------------------
interface Res { status: number; body: any; text: string }

/** One request with a timeout (a hung ferry-control must fail the soak, not hang it). */
async function api(n: HvNode, method: string, url: string, body?: unknown): Promise<Res> {
  const text = typeof body === 'string';
  const r = await fetch(`${n.api}${url}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': text ? 'text/plain' : 'application/json' },
    body: body === undefined ? undefined : text ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(60_000),
  });
  const t = await r.text();
  let parsed: unknown = t;
  try { parsed = t ? JSON.parse(t) : undefined; } catch { /* not JSON */ }
  return { status: r.status, body: parsed, text: t };
}

/** A request that must answer want; anything else is a Ferry failure (thrown, with the body). */
async function expect(n: HvNode, want: number, method: string, url: string, body?: unknown): Promise<any> {
  const r = await api(n, method, url, body);
  if (r.status !== want) throw new Error(`hv${n.k}: ${method} ${url}: ${r.status} (want ${want}) ${r.text.slice(0, 500)}`);
  return r.body;
}

interface FlowItem { id: string; table: number; cookie: string }

async function listFlows(n: HvNode, table?: number): Promise<FlowItem[]> {
  const out: FlowItem[] = [];
  let cursor: string | null = null;
  do {
    const q: string = `/v1/flows?limit=10000${table === undefined ? '' : `&table=${table}`}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const b = await expect(n, 200, 'GET', q);
    for (const f of b.items as FlowItem[]) out.push({ id: f.id, table: f.table, cookie: f.cookie });
    cursor = b.next_cursor;
  } while (cursor);
  return out;
}

// ---- the model ------------------------------------------------------------------------------
interface TunnelWant { name: string; local_ip: string; remote_ip: string; key: string; underlay_port: number; tos: number }

class Model {
  base = new Set<string>(); // ids of sttFlows()
  /** scratch flows by cookie ("0x..."): their batch, and the id once a listing or an add showed it */
  scratch = new Map<string, { batch: number; id?: string }>();
  tunnels = new Map<string, TunnelWant>();
  stt0Port = -1;
  private serial = 0;
  private batchNo = 0;

  newBatch(): number { return ++this.batchNo; }

  /** a flow line of a fresh scratch flow: a unique cookie (batch << 24 | serial) and a unique
   * nw_dst, so no two live scratch flows overlap or share an id whatever their priority */
  line(batch: number): { cookie: string; line: string; json: Record<string, unknown> } {
    const s = ++this.serial;
    const cookie = '0x' + ((BigInt(batch) << 24n) | BigInt(s)).toString(16);
    const dst = `100.${(s >> 16) & 255}.${(s >> 8) & 255}.${s & 255}`;
    const priority = 1 + rnd(1000);
    const l4 = [['ip', ''], ['tcp', `,tp_dst=${1 + rnd(65535)}`], ['udp', `,tp_src=${1 + rnd(65535)}`]][rnd(3)]!;
    const act = ['drop', 'output:0', 'set_field:0x20->tun_id,output:stt0'][rnd(3)]!;
    return {
      cookie,
      line: `table=${SCRATCH},priority=${priority},cookie=${cookie},${l4[0]},nw_dst=${dst}${l4[1]},actions=${act}`,
      json: { table: SCRATCH, priority, cookie, match: { ip: true, nw_dst: dst }, actions: [{ type: 'drop' }] },
    };
  }

  cookiesOf(batch: number): string[] {
    return [...this.scratch].filter(([, v]) => v.batch === batch).map(([c]) => c);
  }
}

// ---- traffic -----------------------------------------------------------------------------
let stopTraffic = false;
let stopChurn = false;

/** pings n from VM k to the other; how many came back */
async function pingCount(topo: Ferry2, k: number, n: number): Promise<number> {
  const r = await run(topo.node(k).vmNs, ['ping', '-n', '-c', String(n), '-i', '0.2', '-W', '1', vmIp(3 - k)], 20_000);
  return Number(/(\d+) (?:packets )?received/.exec(r.out)?.[1] ?? 0);
}

/** Traffic works from VM k: a 3-ping probe answered at least once within 15 s (a change may cost a
 * packet or an ARP round; it may not cut the path). */
async function probe(topo: Ferry2, k: number, what: string): Promise<void> {
  const end = Date.now() + 15_000;
  for (;;) {
    stats.probes++;
    const got = await pingCount(topo, k, 3);
    stats.probePingsLost += 3 - got;
    if (got > 0) return;
    if (Date.now() > end) {
      fail(`traffic vm${k} -> vm${3 - k} does not pass within 15 s after ${what}`);
      return;
    }
  }
}

/** TCP vm1 -> vm2 in chunks of up to 20 s until stopTraffic; a chunk that fails is counted. */
async function tcpLoop(topo: Ferry2, deadline: () => number): Promise<void> {
  while (!stopTraffic) {
    const t = Math.min(20, Math.floor((deadline() - Date.now()) / 1000));
    if (t < 2) break;
    const r = await run(topo.node(1).vmNs, ['iperf3', '-c', vmIp(2), '-t', String(t), '--json', '--connect-timeout', '3000',
      ...(TCP_RATE === '0' ? [] : ['-b', TCP_RATE])], (t + 20) * 1000);
    let err = '';
    try {
      const j = JSON.parse(r.stdout);
      const bps = Number(j.end?.sum_received?.bits_per_second ?? 0);
      if (j.error || !(bps > 0)) err = j.error ?? 'no bytes received';
      else stats.tcpGbps.push(bps / 1e9);
    } catch {
      err = `no JSON (exit ${r.code}): ${r.out.slice(-300)}`;
    }
    if (err) {
      stats.tcpFailed++;
      stats.tcpErrors.push(`[${((Date.now() - t0) / 1000).toFixed(0)} s] ${err}`);
      await sleep(1000);
    } else {
      stats.tcpOk++;
    }
  }
}

/** 2 s UDP bursts at 10 Mbit/s vm2 -> vm1, every 10 s. */
async function udpLoop(topo: Ferry2): Promise<void> {
  while (!stopTraffic) {
    const r = await run(topo.node(2).vmNs, ['iperf3', '-u', '-b', '10M', '-t', '2', '-c', vmIp(1), '-p', '5202', '--json',
      '--connect-timeout', '3000'], 20_000);
    try {
      const j = JSON.parse(r.stdout);
      if (j.error) throw new Error(j.error);
      stats.udpOk++;
      stats.udpLossPct.push(Number(j.end?.sum?.lost_percent ?? 0));
    } catch (e) {
      stats.udpFailed++;
      stats.udpErrors.push(`[${((Date.now() - t0) / 1000).toFixed(0)} s] ${(e as Error).message}: ${r.out.slice(-300)}`);
    }
    for (let i = 0; i < 80 && !stopTraffic; i++) await sleep(100);
  }
}

/** a ping -i 0.2 for the whole run; on SIGINT it prints what it sent and got back */
function longPing(topo: Ferry2, k: number): { stop: () => Promise<void> } {
  const p = inNs(topo.node(k).vmNs, ['ping', '-n', '-i', '0.2', vmIp(3 - k)]);
  let out = '';
  p.stdout!.on('data', (d: Buffer) => (out += d.toString().slice(-2000)));
  return {
    stop: async () => {
      await stopProc(p, 'SIGINT');
      const sent = Number(/(\d+) packets transmitted/.exec(out)?.[1] ?? 0);
      const received = Number(/(\d+) (?:packets )?received/.exec(out)?.[1] ?? 0);
      stats.pings.push({ dir: `vm${k}->vm${3 - k}`, sent, received });
    },
  };
}

// ---- control-plane activity -----------------------------------------------------------------
/** Compares a node's table 50 with the model (and learns the ids for deletes by id). */
async function checkScratch(n: HvNode, m: Model, when: string): Promise<void> {
  const items = await listFlows(n, SCRATCH);
  const have = new Map(items.map((f) => [f.cookie, f.id]));
  const missing = [...m.scratch.keys()].filter((c) => !have.has(c));
  const extra = [...have.keys()].filter((c) => !m.scratch.has(c));
  if (missing.length || extra.length) {
    fail(`hv${n.k} ${when}: table ${SCRATCH} holds ${items.length} flows, the soak expects ${m.scratch.size}: ` +
      `${missing.length} missing (${missing.slice(0, 5).join(' ')}), ${extra.length} unexpected (${extra.slice(0, 5).join(' ')})`);
    // continue from what is there, so one loss is reported once
    m.scratch = new Map(items.map((f) => [f.cookie, { batch: Number(BigInt(f.cookie) >> 24n), id: f.id }]));
    return;
  }
  for (const [c, v] of m.scratch) v.id = have.get(c);
}

/** replace-flows: table 50 becomes TARGET new flows in one bundle */
async function replaceScratch(n: HvNode, m: Model): Promise<void> {
  const b = m.newBatch();
  const ls = Array.from({ length: TARGET }, () => m.line(b));
  const res = await expect(n, 200, 'PUT', `/v1/tables/${SCRATCH}/flows`, ls.map((l) => l.line).join('\n') + '\n');
  if (res.added !== TARGET || res.deleted !== m.scratch.size) fail(`hv${n.k}: PUT table ${SCRATCH} (${TARGET} new, ${m.scratch.size} old) answered ${JSON.stringify(res)}`);
  stats.flowsDeleted += m.scratch.size;
  m.scratch = new Map(ls.map((l) => [l.cookie, { batch: b }]));
  stats.flowsAdded += TARGET;
  stats.replaces++;
}

/** One churn step on table 50, chosen by tick and chance; the model follows each answer. */
async function churnStep(n: HvNode, m: Model, tick: number): Promise<void> {
  const r = Math.random();
  const addLines = async (count: number): Promise<void> => {
    const b = m.newBatch();
    const ls = Array.from({ length: count }, () => m.line(b));
    const res = await expect(n, 200, 'POST', '/v1/flows', ls.map((l) => l.line).join('\n') + '\n');
    if (res.added !== count || res.replaced !== 0) fail(`hv${n.k}: POST ${count} new flows answered ${JSON.stringify(res)}`);
    for (const l of ls) m.scratch.set(l.cookie, { batch: b });
    stats.flowsAdded += count;
  };
  const deleteBatch = async (batch: number, how: 'query' | 'body'): Promise<void> => {
    const cookies = m.cookiesOf(batch);
    const cookie = '0x' + (BigInt(batch) << 24n).toString(16);
    const mask = '0xffffffffff000000';
    const res = how === 'query'
      ? await expect(n, 200, 'DELETE', `/v1/flows?table=${SCRATCH}&cookie=${cookie}&cookie_mask=${mask}`)
      : await expect(n, 200, 'POST', '/v1/flows/delete', { table: SCRATCH, cookie, cookie_mask: mask });
    if (res.deleted !== cookies.length) fail(`hv${n.k}: deleting batch ${batch} (${cookies.length} flows) answered ${JSON.stringify(res)}`);
    for (const c of cookies) m.scratch.delete(c);
    stats.flowsDeleted += res.deleted;
  };
  const live = [...m.scratch.keys()];
  const any = (): string | undefined => live[rnd(live.length)];

  if (tick % 120 === 60) {
    await replaceScratch(n, m);
  } else if (tick % 40 === 20) {
    await addLines(1000);
    stats.bulks++;
  } else if (m.scratch.size > HIGH) {
    const oldest = Math.min(...[...m.scratch.values()].map((v) => v.batch));
    await deleteBatch(oldest, r < 0.5 ? 'query' : 'body');
  } else if (r < 0.35) {
    await addLines(1 + rnd(20));
  } else if (r < 0.5) {
    // one JSON flow: the plain FLOW_ADD path (not a bundle); its id comes back
    const b = m.newBatch();
    const l = m.line(b);
    const res = await expect(n, 201, 'POST', '/v1/flows', l.json);
    if (res.cookie !== l.cookie) fail(`hv${n.k}: POST one flow: cookie ${res.cookie}, sent ${l.cookie}`);
    m.scratch.set(l.cookie, { batch: b, id: res.id });
    stats.flowsAdded++;
    stats.singleAdds++;
  } else if (r < 0.7) {
    const withId = [...m.scratch].filter(([, v]) => v.id);
    const pick = withId[rnd(withId.length)];
    if (!pick) return;
    await expect(n, 204, 'DELETE', `/v1/flows/${pick[1].id}`);
    m.scratch.delete(pick[0]);
    stats.flowsDeleted++;
  } else if (r < 0.85) {
    const c = any();
    if (!c) return;
    const res = await expect(n, 200, 'POST', '/v1/flows/delete', { table: SCRATCH, cookie: c, cookie_mask: '0xffffffffffffffff' });
    if (res.deleted !== 1) fail(`hv${n.k}: deleting the flow of cookie ${c} answered ${JSON.stringify(res)}`);
    m.scratch.delete(c);
    stats.flowsDeleted += res.deleted;
  } else {
    // a whole small batch (one add request's flows); the big ones go only above HIGH
    const size = new Map<number, number>();
    for (const v of m.scratch.values()) size.set(v.batch, (size.get(v.batch) ?? 0) + 1);
    const small = [...size].filter(([, c]) => c <= 20).map(([b]) => b);
    if (small.length) await deleteBatch(small[rnd(small.length)]!, r < 0.92 ? 'query' : 'body');
  }
  if (tick % 10 === 0) {
    await checkScratch(n, m, 'during churn');
    stats.listChecks++;
  }
}

async function churnLoop(n: HvNode, m: Model, lock: Mutex): Promise<void> {
  for (let tick = 1; !stopChurn; tick++) {
    try {
      await lock.run(() => churnStep(n, m, tick));
    } catch (e) {
      // the model no longer knows what the node holds: this node's churn ends, the rest goes on
      fail(`flow churn: ${(e as Error).message}`);
      return;
    }
    await sleep(500);
  }
  // the table back at its start size for the end sample: RSS is then compared like with like
  await lock.run(() => replaceScratch(n, m)).catch((e) => fail(`flow churn: ${(e as Error).message}`));
}

/** Runs fn every periodMs from offsetMs on, until stopChurn (a step in progress finishes). */
async function every(periodMs: number, offsetMs: number, fn: (i: number) => Promise<void>): Promise<void> {
  const start = Date.now();
  for (let i = 0; ; i++) {
    const at = start + offsetMs + i * periodMs;
    while (Date.now() < at) {
      if (stopChurn) return;
      await sleep(Math.min(250, at - Date.now()));
    }
    if (stopChurn) return;
    await fn(i);
  }
}

/** One tunnel cycle on a node: stt0's tos changed, an extra tunnel made, tos back, the extra
 * one deleted; traffic must pass after each step. The cycle ends where it began. */
async function tunnelCycle(topo: Ferry2, n: HvNode, m: Model, lock: Mutex): Promise<void> {
  const stt0 = (tos: number): TunnelWant => ({ ...(tunnelBody(n.k) as unknown as TunnelWant), tos });
  const sttx: TunnelWant = { name: 'sttx', local_ip: `${underlayIp(n.k)}/24`, remote_ip: '192.168.251.99', key: 'flow', underlay_port: 1, tos: 0 };
  const steps: [string, () => Promise<void>][] = [
    ['PUT stt0 tos=32', async () => { await expect(n, 200, 'PUT', '/v1/tunnels/stt0', stt0(32)); m.tunnels.set('stt0', stt0(32)); }],
    ['POST sttx', async () => { await expect(n, 201, 'POST', '/v1/tunnels', sttx); m.tunnels.set('sttx', sttx); }],
    ['PUT stt0 tos=0', async () => { await expect(n, 200, 'PUT', '/v1/tunnels/stt0', stt0(0)); m.tunnels.set('stt0', stt0(0)); }],
    ['DELETE sttx', async () => { await expect(n, 204, 'DELETE', '/v1/tunnels/sttx'); m.tunnels.delete('sttx'); }],
  ];
  for (const [what, step] of steps) {
    try {
      await lock.run(step);
      stats.tunnelChanges++;
    } catch (e) {
      fail(`tunnel change: ${(e as Error).message}`);
      return;
    }
    await probe(topo, n.k, `hv${n.k} ${what}`);
  }
}

/** The whole desired state of a node against the model: base flow ids, table 50 by cookie,
 * ferryd's flow count, and every tunnel's configuration (and that ferryd has it: stats). */
async function checkState(n: HvNode, m: Model, when: string): Promise<void> {
  const before = failures.length;
  const all = await listFlows(n);
  const base = new Set(all.filter((f) => f.table !== SCRATCH).map((f) => f.id));
  const missing = [...m.base].filter((id) => !base.has(id));
  const extra = [...base].filter((id) => !m.base.has(id));
  if (missing.length || extra.length) fail(`hv${n.k} ${when}: base flows: missing ${missing.join(' ') || 'none'}, unexpected ${extra.join(' ') || 'none'}`);
  await checkScratch(n, m, when);
  const want = m.base.size + m.scratch.size;
  // ferry_flows comes from ferryd's stats, published every housekeeping tick: give it a few
  const active = await waitFor('ferry_flows', async () => {
    const v = await n.metric('ferry_flows');
    return v === want ? v : undefined;
  }, 3000).catch(async () => n.metric('ferry_flows'));
  if (active !== want) fail(`hv${n.k} ${when}: ferryd holds ${active} flows (ferry_flows), the soak expects ${want}`);
  const tunnels = (await expect(n, 200, 'GET', '/v1/tunnels')).items as (TunnelWant & { port: number; stats: unknown })[];
  for (const [name, t] of m.tunnels) {
    const got = tunnels.find((x) => x.name === name);
    const diff = got && (Object.keys(t) as (keyof TunnelWant)[]).filter((k) => got[k] !== t[k]);
    if (!got) fail(`hv${n.k} ${when}: tunnel ${name} is missing`);
    else if (diff!.length) fail(`hv${n.k} ${when}: tunnel ${name} differs in ${diff!.join(', ')}: ${JSON.stringify(got)}, want ${JSON.stringify(t)}`);
    else if (name === 'stt0' && got.port !== m.stt0Port) fail(`hv${n.k} ${when}: stt0 is port ${got.port}, was ${m.stt0Port}`);
    else if (!got.stats) fail(`hv${n.k} ${when}: tunnel ${name} has no counters (not in ferryd)`);
  }
  for (const t of tunnels) if (!m.tunnels.has(t.name)) fail(`hv${n.k} ${when}: unexpected tunnel ${JSON.stringify(t)}`);
  log(`hv${n.k} ${when}: desired state ${failures.length === before ? 'as expected' : 'DIFFERS'} (${m.base.size} base + ${m.scratch.size} scratch flows, tunnels ${[...m.tunnels.keys()].join(',')})`);
}

// ---- samples -----------------------------------------------------------------------------
function rssKiB(p: ChildProcess | undefined, comm: string): number {
  if (!p?.pid) return NaN;
  try {
    // ip netns exec execs the program: the child's pid is ferryd's (node's for ferry-control)
    if (!readFileSync(`/proc/${p.pid}/comm`, 'utf8').startsWith(comm)) return NaN;
    return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${p.pid}/status`, 'utf8'))?.[1] ?? NaN);
  } catch {
    return NaN;
  }
}

/** the lowest of count samples 200 ms apart (a burst in flight or a heap not yet collected is not growth) */
async function lowest(count: number, fn: () => Promise<number> | number): Promise<number> {
  let low = Infinity;
  for (let i = 0; i < count; i++) {
    low = Math.min(low, await fn());
    if (i < count - 1) await sleep(200);
  }
  return low;
}

/** the most mbufs in use in 10 samples 100 ms apart under traffic (information: the gauge moves) */
async function peakInUse(n: HvNode): Promise<number> {
  let high = 0;
  for (let i = 0; i < 10; i++) {
    high = Math.max(high, await n.metric('ferry_mbufs', { state: 'in_use' }));
    await sleep(100);
  }
  return high;
}

interface Sample { rssFerryd: number; rssControl: number; inUse: number; free: number; ct: number; flows: number; tunnels: number }

async function sample(n: HvNode, count: number): Promise<Sample> {
  return {
    rssFerryd: await lowest(count, () => rssKiB(n.ferryd, 'ferryd')),
    rssControl: await lowest(count, () => rssKiB(n.control, 'node')),
    inUse: await lowest(count, () => n.metric('ferry_mbufs', { state: 'in_use' })),
    free: await n.metric('ferry_mbufs', { state: 'free' }),
    ct: await n.metric('ferry_ct_connections'),
    flows: await n.metric('ferry_flows'),
    tunnels: (await expect(n, 200, 'GET', '/v1/tunnels')).items.length,
  };
}

/** tracked connections of zone 1 by protocol, e.g. "tcp 3, udp 2, icmp 2" */
async function ctByProto(n: HvNode): Promise<string> {
  const r = await api(n, 'GET', '/v1/conntrack?zone=1');
  const count = new Map<string, number>();
  for (const l of r.text.split('\n').filter(Boolean)) {
    const p = String((JSON.parse(l) as { proto?: string }).proto);
    count.set(p, (count.get(p) ?? 0) + 1);
  }
  return [...count].map(([p, c]) => `${p} ${c}`).join(', ') || 'none';
}

// ---- the run ---------------------------------------------------------------------------------
type Row = [string, string, string, string, string, string, string];
const rows: Row[] = [];

function row(metric: string, node: string, start: number | string, end: number | string, limit: string, ok: boolean | null): void {
  const delta = typeof start === 'number' && typeof end === 'number' ? `${end - start >= 0 ? '+' : ''}${Math.round((end - start) * 10) / 10}` : '';
  rows.push([metric, node, String(start), String(end), delta, limit, ok === null ? 'info' : ok ? 'ok' : 'FAIL']);
  if (ok === false) failures.push(`${metric} ${node}: start ${start}, end ${end}, limit ${limit}`);
}

function printTable(): void {
  const head: Row = ['metric', 'node', 'start', 'end', 'delta', 'limit', 'verdict'];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: Row): string => r.map((c, i) => (i >= 2 && i <= 4 ? c.padStart(w[i]!) : c.padEnd(w[i]!))).join('  ');
  console.log('\n' + fmt(head));
  console.log(w.map((x) => '-'.repeat(x)).join('  '));
  for (const r of rows) console.log(fmt(r));
}

async function soak(topo: Ferry2): Promise<void> {
  const [hv1, hv2] = topo.nodes;
  const models = [new Model(), new Model()] as const;
  const locks = [new Mutex(), new Mutex()] as const;
  const nodeOf = (k: number): [HvNode, Model, Mutex] => [topo.node(k), models[k - 1]!, locks[k - 1]!];

  log('starting two ferryd + ferry-control nodes (prefix soak)');
  await topo.start();
  await topo.configure();
  for (const k of [1, 2]) {
    const [n, m] = nodeOf(k);
    for (const f of await listFlows(n)) m.base.add(f.id);
    m.tunnels.set('stt0', { ...(tunnelBody(k) as unknown as TunnelWant), tos: 0 });
    m.stt0Port = n.tport;
  }
  // idle mbufs before any packet: what the rx rings and caches hold at rest
  const idle0 = await Promise.all(topo.nodes.map(async (n) => ({
    inUse: await lowest(5, () => n.metric('ferry_mbufs', { state: 'in_use' })),
    free: await n.metric('ferry_mbufs', { state: 'free' }),
  })));
  log(`idle mbufs in use: hv1 ${idle0[0]!.inUse}, hv2 ${idle0[1]!.inUse}`);

  // the scratch table at its working size before the start sample: its memory is not growth
  for (const k of [1, 2]) {
    const [n, m] = nodeOf(k);
    const b = m.newBatch();
    const ls = Array.from({ length: TARGET }, () => m.line(b));
    await expect(n, 200, 'PUT', `/v1/tables/${SCRATCH}/flows`, ls.map((l) => l.line).join('\n') + '\n');
    for (const l of ls) m.scratch.set(l.cookie, { batch: b });
    stats.flowsAdded += TARGET;
    await checkState(n, m, 'after setup');
  }

  // traffic: iperf3 servers (TCP in vm2, UDP in vm1), pings both ways, TCP and UDP loops
  inNs(hv2.vmNs, ['iperf3', '-s', '-B', vmIp(2)]);
  inNs(hv1.vmNs, ['iperf3', '-s', '-B', vmIp(1), '-p', '5202']);
  await waitFor('iperf3 servers', async () => {
    const a = (await run(hv2.vmNs, ['ss', '-ltnH'], 5000)).out.includes(':5201');
    const b = (await run(hv1.vmNs, ['ss', '-ltnH'], 5000)).out.includes(':5202');
    return a && b ? true : undefined;
  }, 10_000);
  for (const k of [1, 2]) await probe(topo, k, 'setup');
  const pings = [longPing(topo, 1), longPing(topo, 2)];
  let trafficEnd = Infinity;
  const traffic = [tcpLoop(topo, () => trafficEnd), udpLoop(topo)];
  log(`warm-up: ${WARMUP_S} s of traffic (TCP${TCP_RATE === '0' ? '' : ` at ${TCP_RATE}bit/s`}, UDP bursts, pings)`);
  await sleep(WARMUP_S * 1000);
  const start = await Promise.all(topo.nodes.map((n) => sample(n, 5)));
  const loaded0 = await Promise.all(topo.nodes.map(peakInUse));
  for (const n of topo.nodes) log(`hv${n.k} conntrack zone 1 after warm-up: ${await ctByProto(n)}`);
  const ferrydPid0 = topo.nodes.map((n) => n.ferryd?.pid);

  /** RSS of the processes started mid-run, just after their restart: their own growth to the end */
  const restarted = { control: NaN, ferryd: NaN };
  const soakStart = Date.now();
  // traffic goes on while the control-plane activity winds down (and for the peak sample below)
  trafficEnd = soakStart + SOAK_S * 1000 + 10_000;
  log(`soak: ${SOAK_S} s`);
  const progress = setInterval(() => log(`progress: scratch hv1 ${models[0].scratch.size} hv2 ${models[1].scratch.size}, flows +${stats.flowsAdded} -${stats.flowsDeleted}, ` +
    `flushes ${stats.flushes}, tunnel changes ${stats.tunnelChanges}, tcp chunks ${stats.tcpOk} ok ${stats.tcpFailed} failed, failures ${failures.length}`), 30_000);

  const activity = [
    churnLoop(hv1, models[0], locks[0]),
    churnLoop(hv2, models[1], locks[1]),
    // conntrack flushes every 20 s, the nodes in turn
    every(20_000, 10_000, async (i) => {
      const [n, , lock] = nodeOf(1 + (i % 2));
      try {
        const r = await lock.run(() => expect(n, 200, 'DELETE', '/v1/conntrack?zone=1'));
        stats.flushes++;
        stats.ctFlushed += Number(r.deleted);
      } catch (e) {
        fail(`conntrack flush: ${(e as Error).message}`);
      }
    }),
    // tunnel cycles every 30 s on each node, hv2 half a period later
    every(30_000, 5_000, () => tunnelCycle(topo, ...nodeOf(1))),
    every(30_000, 20_000, () => tunnelCycle(topo, ...nodeOf(2))),
    // kill -9 of hv1's ferry-control at 50%: the restarted one must hold the same desired state
    every(SOAK_S * 1000, SOAK_S * 500, async (i) => {
      if (i > 0) return;
      await locks[0].run(async () => {
        log('kill -9 of hv1 ferry-control');
        await hv1.kill('control');
        await sleep(3000);
        hv1.startControl();
        await hv1.waitHealthy(30_000);
        stats.controlRestarts++;
        await checkState(hv1, models[0], 'after kill -9 of ferry-control');
        restarted.control = await lowest(5, () => rssKiB(hv1.control, 'node'));
      }).catch((e) => fail(`hv1 ferry-control restart: ${(e as Error).message}\n${hv1.logs()}`));
    }),
    // kill -9 of hv2's ferryd at 75%: ferry-control replays tunnels and flows, traffic recovers
    every(SOAK_S * 1000, SOAK_S * 750, async (i) => {
      if (i > 0) return;
      const ok = await locks[1].run(async () => {
        log('kill -9 of hv2 ferryd');
        await hv2.kill('ferryd');
        hv2.startFerryd();
        await hv2.waitHealthy(30_000);
        stats.ferrydRestarts++;
        await checkState(hv2, models[1], 'after kill -9 of ferryd');
        restarted.ferryd = await lowest(5, () => rssKiB(hv2.ferryd, 'ferryd'));
        return true;
      }).catch((e) => fail(`hv2 ferryd restart: ${(e as Error).message}\n${hv2.logs()}`));
      if (ok) for (const k of [1, 2]) await probe(topo, k, 'kill -9 of hv2 ferryd');
    }),
  ];

  await sleep(SOAK_S * 1000);
  const loaded = await Promise.all(topo.nodes.map(peakInUse));
  stopChurn = true;
  log('stopping the control-plane activity (a tunnel cycle in progress finishes)');
  await Promise.all(activity);
  stopTraffic = true;
  log('stopping traffic');
  await Promise.all(traffic);
  for (const p of pings) await p.stop();
  clearInterval(progress);
  // hold queues, reassembly and ARP hold timeouts are well under a second; 5 s is plenty
  await sleep(5000);
  const end = await Promise.all(topo.nodes.map((n) => sample(n, 5)));
  for (const n of topo.nodes) log(`hv${n.k} conntrack zone 1 at rest, before the final flush: ${await ctByProto(n)}`);

  // the final flush: every connection goes; the tracker must be empty afterwards
  const ctAfter: number[] = [];
  for (const n of topo.nodes) {
    await expect(n, 200, 'DELETE', '/v1/conntrack');
    ctAfter.push(await waitFor('conntrack empty', async () => ((await n.metric('ferry_ct_connections')) === 0 ? 0 : undefined), 3000)
      .catch(async () => n.metric('ferry_ct_connections')));
  }
  for (const k of [1, 2]) {
    const [n, m] = nodeOf(k);
    await checkState(n, m, 'at the end');
  }
  // and what a restarted ferry-control reads back from its state directory
  for (const k of [1, 2]) {
    const [n, m] = nodeOf(k);
    await n.kill('control');
    n.startControl();
    await n.waitHealthy(30_000);
    await checkState(n, m, 'after the final ferry-control restart');
  }

  // ---- the table ----
  for (const [i, n] of topo.nodes.entries()) {
    const s = start[i]!, e = end[i]!, node = `hv${n.k}`;
    const fdNote = n.ferryd?.pid !== ferrydPid0[i] ? ' (restarted at 75%)' : '';
    row(`ferryd RSS MiB${fdNote}`, node, MiB(s.rssFerryd), MiB(e.rssFerryd), `+${FERRYD_RSS_MIB}`,
      e.rssFerryd - s.rssFerryd <= FERRYD_RSS_MIB * 1024);
    const climit = Math.min(CONTROL_RSS_MIB * 1024, s.rssControl * CONTROL_RSS_RATIO);
    row(`ferry-control RSS MiB${k1(n) ? ' (restarted at 50%)' : ''}`, node, MiB(s.rssControl), MiB(e.rssControl),
      `+${MiB(climit)} (min ${CONTROL_RSS_MIB}, ${CONTROL_RSS_RATIO * 100}%)`, e.rssControl - s.rssControl <= climit);
  }
  if (stats.controlRestarts) {
    const climit = Math.min(CONTROL_RSS_MIB * 1024, restarted.control * CONTROL_RSS_RATIO);
    row('ferry-control RSS MiB since its restart', 'hv1', MiB(restarted.control), MiB(end[0]!.rssControl),
      `+${MiB(climit)} (min ${CONTROL_RSS_MIB}, ${CONTROL_RSS_RATIO * 100}%)`, end[0]!.rssControl - restarted.control <= climit);
  }
  if (stats.ferrydRestarts) {
    row('ferryd RSS MiB since its restart', 'hv2', MiB(restarted.ferryd), MiB(end[1]!.rssFerryd), `+${FERRYD_RSS_MIB}`,
      end[1]!.rssFerryd - restarted.ferryd <= FERRYD_RSS_MIB * 1024);
  }
  for (const [i, n] of topo.nodes.entries()) {
    const node = `hv${n.k}`;
    row('mbufs in_use at rest', node, idle0[i]!.inUse, end[i]!.inUse, `+${MBUF_TOL}`, end[i]!.inUse - idle0[i]!.inUse <= MBUF_TOL);
    row('mbufs free at rest', node, idle0[i]!.free, end[i]!.free, '', null);
    row('mbufs in_use under traffic (peak)', node, loaded0[i]!, loaded[i]!, '', null);
    row('ct entries (end: before final flush)', node, start[i]!.ct, end[i]!.ct, '', null);
    row('ct entries after final flush', node, '-', ctAfter[i]!, '= 0', ctAfter[i] === 0);
    const want = models[i]!.base.size + models[i]!.scratch.size;
    row('flows in ferryd (ferry_flows)', node, start[i]!.flows, end[i]!.flows, `= ${want}`, end[i]!.flows === want);
    row('tunnels', node, start[i]!.tunnels, end[i]!.tunnels, `= ${models[i]!.tunnels.size}`, end[i]!.tunnels === models[i]!.tunnels.size);
  }
  for (const p of stats.pings) {
    const lost = p.sent - p.received;
    // a ferryd restart (a second or two), flushes and tunnel changes may cost a few pings, no more
    const allowed = Math.round(p.sent * 0.02) + 50;
    row(`pings lost ${p.dir}`, '-', '-', lost, `<= ${allowed} (2% + 50)`, p.sent > 0 && lost <= allowed);
  }
  const chunks = stats.tcpOk + stats.tcpFailed;
  row('iperf3 TCP chunks failed', '-', '-', stats.tcpFailed, `< half of ${chunks}`, stats.tcpOk > 0 && stats.tcpFailed * 2 < chunks);
}

/** hv1's ferry-control was restarted mid-run (its end RSS is of the new process) */
const k1 = (n: HvNode): boolean => n.k === 1 && stats.controlRestarts > 0;

function printSummary(): void {
  const mean = (a: number[]): string => (a.length ? (a.reduce((x, y) => x + y, 0) / a.length).toFixed(3) : '-');
  console.log('');
  console.log(`flows added ${stats.flowsAdded}, deleted ${stats.flowsDeleted} (bulks of 1000: ${stats.bulks}, table replaces: ${stats.replaces}, ` +
    `single JSON adds: ${stats.singleAdds}, table-50 listings checked: ${stats.listChecks})`);
  console.log(`conntrack flushes ${stats.flushes} (${stats.ctFlushed} entries), tunnel changes ${stats.tunnelChanges}, ` +
    `traffic probes ${stats.probes} (${stats.probePingsLost} pings lost)`);
  console.log(`kill -9 + restart: ferry-control ${stats.controlRestarts}, ferryd ${stats.ferrydRestarts}`);
  console.log(`iperf3 TCP chunks ok ${stats.tcpOk}, failed ${stats.tcpFailed}, mean ${mean(stats.tcpGbps)} Gbit/s` +
    `${TCP_RATE === '0' ? '' : ` (capped at ${TCP_RATE}bit/s)`}`);
  for (const e of stats.tcpErrors.slice(0, 10)) console.log(`  failed chunk: ${e}`);
  console.log(`iperf3 UDP bursts ok ${stats.udpOk}, failed ${stats.udpFailed}, mean loss ${mean(stats.udpLossPct)}%`);
  for (const e of stats.udpErrors.slice(0, 10)) console.log(`  failed burst: ${e}`);
  for (const p of stats.pings) console.log(`ping ${p.dir}: sent ${p.sent}, received ${p.received}`);
}

async function main(): Promise<void> {
  const topo = new Ferry2('soak');
  let cleaning: Promise<void> | undefined;
  const cleanup = (): Promise<void> => (cleaning ??= (async () => {
    stopChurn = stopTraffic = true;
    for (const c of children) c.kill('SIGKILL');
    await topo.stop();
  })());
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      console.log(`soak: ${sig}, cleaning up`);
      void cleanup().finally(() => process.exit(130));
    });
  }
  try {
    await soak(topo);
  } catch (e) {
    fail(`${(e as Error).stack ?? e}\n${topo.logs()}`);
  } finally {
    await cleanup().catch((e) => fail(`cleanup: ${(e as Error).message}`));
  }
  if (rows.length) printTable();
  printSummary();
  console.log(`\nwall time ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  if (failures.length) {
    console.log(`\nsoak FAILED (${failures.length}):`);
    for (const f of failures) console.log(`- ${f}`);
    process.exit(1);
  }
  console.log('\nsoak passed');
}

void main();
