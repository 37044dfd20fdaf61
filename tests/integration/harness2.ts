// Two Ferry nodes ("hypervisors") joined by an STT tunnel over an underlay veth, each with
// one "VM": scripts/topology2.sh makes the namespaces, this starts a ferryd and a
// ferry-control per node, configures the tunnels and flows over REST, and tears all of it
// down again (processes, namespaces, shared memory, DPDK runtime files), also on failure.
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, root, sh, stopProc, waitFor } from './harness';

const FERRYD = path.join(root, 'dataplane/build/ferryd');
const CONTROL = path.join(root, 'control/bin/ferry-control.js');
export const TOPOLOGY2 = path.join(root, 'scripts/topology2.sh');

/** The underlay subnet the tunnel endpoints live in (in ferryd, not in Linux). */
export const underlayIp = (k: number): string => `192.168.251.${k}`;
/** The VMs' addresses. */
export const vmIp = (k: number): string => `10.251.0.${k}`;
export const vmMac = (k: number): string => `02:fe:01:00:00:0${k}`;
/** The STT context id the flows put the VMs' network in. */
export const VNI = '0x10';

function collect(p: ChildProcess): () => string {
  let out = '';
  p.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  return () => out;
}

/** Flows for one node: VM (port 0) <-> tunnel (port tport), through the connection tracker
 * (zone 1), the VMs' network carried as context id VNI. Distinct priorities: ferryd refuses
 * overlapping flows of equal priority. */
export function sttFlows(tport: number, vni = VNI): string {
  return [
    `table=0,priority=100,in_port=0,arp,actions=set_field:${vni}->tun_id,output:${tport}`,
    `table=0,priority=100,in_port=${tport},tun_id=${vni},arp,actions=output:0`,
    'table=0,priority=90,in_port=0,ip,actions=ct(table=1,zone=1)',
    `table=0,priority=90,in_port=${tport},tun_id=${vni},ip,actions=ct(table=2,zone=1)`,
    `table=1,priority=100,ct_state=+trk+new,actions=ct(commit,zone=1),set_field:${vni}->tun_id,output:${tport}`,
    `table=1,priority=101,ct_state=+trk+est,actions=set_field:${vni}->tun_id,output:${tport}`,
    `table=1,priority=102,ct_state=+trk+rel,actions=set_field:${vni}->tun_id,output:${tport}`,
    'table=1,priority=103,ct_state=+trk+inv,actions=drop',
    'table=2,priority=100,ct_state=+trk+new,actions=ct(commit,zone=1),output:0',
    'table=2,priority=101,ct_state=+trk+est,actions=output:0',
    'table=2,priority=102,ct_state=+trk+rel,actions=output:0',
    'table=2,priority=103,ct_state=+trk+inv,actions=drop',
  ].join('\n') + '\n';
}

/** The tunnel each node gets: its own endpoint, the other's as remote, tun_id from the flow. */
export function tunnelBody(k: number, name = 'stt0'): Record<string, unknown> {
  return { name, local_ip: `${underlayIp(k)}/24`, remote_ip: underlayIp(3 - k), key: 'flow', underlay_port: 1 };
}

/** The PMD ferryd drives its VM port with (the underlay is always af_packet). */
export type VmPmd = 'af_packet' | 'pcap';

export class HvNode {
  readonly shm: string;
  api = '';
  ferryd?: ChildProcess;
  control?: ChildProcess;
  ferrydLog: () => string = () => '';
  controlLog: () => string = () => '';
  /** the tunnel's OpenFlow port, once made */
  tport = -1;

  constructor(readonly prefix: string, readonly k: number, readonly vmPmd: VmPmd = 'af_packet') {
    this.shm = `ferry-it-${prefix}-hv${k}`;
    this.stateDir = mkdtempSync(path.join(os.tmpdir(), `ferry-state-${prefix}-hv${k}-`));
  }

  /** ferry-control's durable desired state (removed at stop) */
  readonly stateDir: string;

  get ns(): string { return `${this.prefix}-hv${this.k}`; }
  get vmNs(): string { return `${this.prefix}-vm${this.k}`; }

  async start(listen?: string): Promise<void> {
    this.startFerryd();
    const target = listen ?? `127.0.0.1:${await freePort()}`;
    this.api = `http://${target}`;
    this.startControl();
    await this.waitHealthy();
  }

  /** (Re)starts ferryd (extraEnv: e.g. FERRY_FAULT_KILL_AT_BUNDLE_OP for fault injection). */
  startFerryd(extraEnv: Record<string, string> = {}): void {
    this.ferryd = spawn('ip', ['netns', 'exec', this.ns, FERRYD,
      '--no-huge', '-m', '256', '--no-pci', '--file-prefix', this.shm, '-l', '0,1',
      '--vdev', this.vmVdev(), '--vdev', `net_af_packet1,iface=${this.prefix}-u${this.k}`,
      '--log-level=error', '--', '--shm-name', this.shm, '--pmd-sleep-us', '50'],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...extraEnv } });
    this.ferrydLog = collect(this.ferryd);
  }

  /** (Re)starts ferry-control on the same address and state directory. */
  startControl(): void {
    const target = this.api.replace(/^http:\/\//, '');
    this.control = spawn(CONTROL, ['--shm-name', this.shm, '--listen', target, '--state-dir', this.stateDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.controlLog = collect(this.control);
  }

  /** Waits for /health ok (both processes up, the desired state replayed). */
  async waitHealthy(timeoutMs = 20000): Promise<void> {
    await waitFor(`hv${this.k}: ferry-control /health ok`, async () => {
      if (this.ferryd?.exitCode != null) throw new Error(`ferryd exited: ${this.ferrydLog()}`);
      if (this.control?.exitCode != null) throw new Error(`ferry-control exited: ${this.controlLog()}`);
      const r = await fetch(`${this.api}/health`);
      return r.status === 200 ? true : undefined;
    }, timeoutMs);
  }

  /** Kills a process (SIGKILL by default) and waits until it is gone. */
  async kill(which: 'ferryd' | 'control', signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const p = which === 'ferryd' ? this.ferryd : this.control;
    if (!p || p.exitCode != null || p.signalCode != null) return;
    const gone = new Promise((r) => p.on('exit', r));
    p.kill(signal);
    await gone;
  }

  /** Port 0's vdev. af_packet joins a PACKET_FANOUT group with PACKET_FANOUT_FLAG_DEFRAG (DPDK 22.11
   * always does), so the kernel reassembles IP fragments before ferryd sees them, and cuts what no
   * longer fits the 2048-byte ring frame: a VM's fragments never reach ferryd as fragments. libpcap
   * (net_pcap, inbound only) hands them over as they are. */
  private vmVdev(): string {
    const ifc = `${this.prefix}-v${this.k}`;
    return this.vmPmd === 'pcap' ? `net_pcap0,rx_iface_in=${ifc},tx_iface=${ifc}` : `net_af_packet0,iface=${ifc}`;
  }

  async stop(): Promise<void> {
    try {
      if (this.control) await stopProc(this.control, 'SIGTERM');
    } finally {
      if (this.ferryd) await stopProc(this.ferryd, 'SIGTERM');
      rmSync(`/dev/shm/${this.shm}`, { force: true });
      rmSync(`/dev/shm/${this.shm}.doorbell`, { force: true }); // ferryd removes it, unless killed
      rmSync(`/var/run/dpdk/${this.shm}`, { recursive: true, force: true });
      rmSync(this.stateDir, { recursive: true, force: true });
    }
  }

  async json(method: string, url: string, body?: unknown): Promise<{ status: number; body: any }> {
    const r = await fetch(`${this.api}${url}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    let parsed: unknown = text;
    try { parsed = text ? JSON.parse(text) : undefined; } catch { /* not JSON: keep the text */ }
    return { status: r.status, body: parsed };
  }

  async text(url: string): Promise<string> {
    return (await fetch(`${this.api}${url}`)).text();
  }

  /** Sum of the /metrics samples of name whose labels include labels (0 if none). */
  async metric(name: string, labels: Record<string, string> = {}): Promise<number> {
    return sumMetric(await this.text('/metrics'), name, labels);
  }

  async addTunnel(body: Record<string, unknown> = tunnelBody(this.k)): Promise<any> {
    const r = await this.json('POST', '/v1/tunnels', body);
    if (r.status !== 201) throw new Error(`hv${this.k}: POST /v1/tunnels ${JSON.stringify(body)}: ${r.status} ${JSON.stringify(r.body)}`);
    this.tport = r.body.port;
    return r.body;
  }

  async addFlows(text: string): Promise<void> {
    const r = await fetch(`${this.api}/v1/flows`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: text });
    if (r.status >= 300) throw new Error(`hv${this.k}: POST /v1/flows: ${r.status} ${(await r.text()).slice(0, 1000)}`);
  }

  /** What went wrong, for an assertion message. */
  logs(): string {
    return `--- hv${this.k} ferryd:\n${this.ferrydLog().slice(-3000)}\n--- hv${this.k} ferry-control:\n${this.controlLog().slice(-3000)}`;
  }
}

/** Sum of the samples of one metric family in Prometheus text whose labels include labels. */
export function sumMetric(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have: Record<string, string> = {};
    for (const kv of (m[3] ?? '').matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)) have[kv[1]!] = kv[2]!;
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[4]);
  }
  return sum;
}

export interface PingResult { ok: boolean; received: number; out: string }

export class Ferry2 {
  readonly nodes: [HvNode, HvNode];

  constructor(readonly prefix: string, vmPmd: VmPmd = 'af_packet') {
    if (prefix.length > 8) throw new Error(`prefix ${prefix} longer than 8`);
    this.nodes = [new HvNode(prefix, 1, vmPmd), new HvNode(prefix, 2, vmPmd)];
  }

  node(k: number): HvNode { return this.nodes[k - 1]!; }

  /** Topology and both nodes, healthy; nothing configured. On failure everything made is removed. */
  async start(): Promise<void> {
    this.topologyDown();
    try {
      sh(TOPOLOGY2, ['up', this.prefix]);
      await Promise.all(this.nodes.map((n) => n.start()));
    } catch (e) {
      await this.stop();
      throw e;
    }
  }

  /** The tunnel stt0 on both nodes and sttFlows() through it. */
  async configure(): Promise<void> {
    for (const n of this.nodes) {
      await n.addTunnel();
      await n.addFlows(sttFlows(n.tport));
    }
  }

  /** ping from VM from to VM to; never throws. */
  ping(from: number, to: number, args: string[] = []): PingResult {
    const r = spawnSync('ip', ['netns', 'exec', this.node(from).vmNs, 'ping', '-n', ...args, vmIp(to)],
      { encoding: 'utf8', timeout: 60000 });
    const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
    const received = Number(/(\d+) (?:packets )?received/.exec(out)?.[1] ?? 0);
    return { ok: r.status === 0, received, out };
  }

  /** Both nodes stopped and the topology removed; always goes all the way. */
  async stop(): Promise<void> {
    const results = await Promise.allSettled(this.nodes.map((n) => n.stop()));
    this.topologyDown();
    for (const r of results) if (r.status === 'rejected') throw r.reason;
  }

  topologyDown(): void {
    sh(TOPOLOGY2, ['down', this.prefix]);
  }

  logs(): string {
    return this.nodes.map((n) => n.logs()).join('\n');
  }
}
