// N Ferry nodes in cluster mode: scripts/topology-mesh.sh makes the namespaces (PREFIX-hvK with
// ferryd's VM port PREFIX-vK and underlay port PREFIX-uK, the VM PREFIX-vmK at 10.252.0.K, and the
// underlay bridge in PREFIX-ul); each node runs a ferryd and a ferry-control with --etcd, its
// tunnel endpoint 192.168.252.K. Everything it makes goes again at stop, also on failure.
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, root, sh, stopProc, waitFor } from './harness';
import { sumMetric } from './harness2';

const FERRYD = path.join(root, 'dataplane/build/ferryd');
const CONTROL = path.join(root, 'control/bin/ferry-control.js');
const TOPOLOGY = path.join(root, 'scripts/topology-mesh.sh');

export const meshVmIp = (k: number): string => `10.252.0.${k}`;
export const meshTunnelIp = (k: number): string => `192.168.252.${k}`;

function collect(p: ChildProcess): () => string {
  let out = '';
  p.stdout?.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20000)));
  p.stderr?.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20000)));
  return () => out;
}

export interface MeshOptions {
  etcd: string[];
  /** etcd key prefix (one per test run) */
  etcdPrefix: string;
  leaseTtl: number;
  meshKey: string;
}

export class MeshNode {
  readonly shm: string;
  readonly stateDir: string;
  api = '';
  ferryd?: ChildProcess;
  control?: ChildProcess;
  ferrydLog: () => string = () => '';
  controlLog: () => string = () => '';

  constructor(readonly prefix: string, readonly k: number, readonly opts: MeshOptions) {
    this.shm = `ferry-it-${prefix}-hv${k}`;
    this.stateDir = mkdtempSync(path.join(os.tmpdir(), `ferry-state-${prefix}-hv${k}-`));
  }

  get ns(): string { return `${this.prefix}-hv${this.k}`; }
  get vmNs(): string { return `${this.prefix}-vm${this.k}`; }
  get id(): string { return `hv${this.k}`; }

  async start(): Promise<void> {
    if (!this.api) this.api = `http://127.0.0.1:${await freePort()}`;
    this.startFerryd();
    this.startControl();
    await this.waitHealthy();
  }

  startFerryd(): void {
    this.ferryd = spawn('ip', ['netns', 'exec', this.ns, FERRYD,
      '--no-huge', '-m', '256', '--no-pci', '--file-prefix', this.shm, '-l', '0,1',
      '--vdev', `net_af_packet0,iface=${this.prefix}-v${this.k}`, '--vdev', `net_af_packet1,iface=${this.prefix}-u${this.k}`,
      '--log-level=error', '--', '--shm-name', this.shm, '--pmd-sleep-us', '100'], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.ferrydLog = collect(this.ferryd);
  }

  startControl(): void {
    this.control = spawn(CONTROL, ['--shm-name', this.shm, '--listen', this.api.replace('http://', ''),
      '--state-dir', this.stateDir, '--etcd', this.opts.etcd.join(','), '--etcd-prefix', this.opts.etcdPrefix,
      '--node-id', this.id, '--tunnel-ip', `${meshTunnelIp(this.k)}/24`, '--underlay-port', '1',
      '--lease-ttl', String(this.opts.leaseTtl), '--mesh-key', this.opts.meshKey], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.controlLog = collect(this.control);
  }

  async waitHealthy(timeoutMs = 20000): Promise<void> {
    await waitFor(`${this.id}: /health ok`, async () => {
      if (this.ferryd?.exitCode != null) throw new Error(`ferryd exited: ${this.ferrydLog()}`);
      if (this.control?.exitCode != null) throw new Error(`ferry-control exited: ${this.controlLog()}`);
      const r = await fetch(`${this.api}/health`);
      const b = (await r.json()) as { status: string; cluster?: { etcd: string; registered: boolean } };
      return r.status === 200 && b.cluster?.etcd === 'up' && b.cluster.registered ? true : undefined;
    }, timeoutMs);
  }

  /** Kills both processes (SIGKILL: the lease is not revoked, it runs out). */
  async kill(): Promise<void> {
    for (const p of [this.control, this.ferryd]) {
      if (!p || p.exitCode != null || p.signalCode != null) continue;
      const gone = new Promise((r) => p.on('exit', r));
      p.kill('SIGKILL');
      await gone;
    }
  }

  async stop(): Promise<void> {
    try {
      if (this.control) await stopProc(this.control, 'SIGTERM');
    } finally {
      if (this.ferryd) await stopProc(this.ferryd, 'SIGTERM');
      rmSync(`/dev/shm/${this.shm}`, { force: true });
      rmSync(`/dev/shm/${this.shm}.doorbell`, { force: true }); // ferryd removes it, unless killed
      rmSync(`/var/run/dpdk/${this.shm}`, { recursive: true, force: true });
    }
  }

  removeState(): void {
    rmSync(this.stateDir, { recursive: true, force: true });
  }

  async json(method: string, url: string, body?: unknown): Promise<{ status: number; body: any }> {
    const r = await fetch(`${this.api}${url}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': typeof body === 'string' ? 'text/plain' : 'application/json' },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await r.text();
    let parsed: unknown = text;
    try { parsed = text ? JSON.parse(text) : undefined; } catch { /* keep the text */ }
    return { status: r.status, body: parsed };
  }

  async metric(name: string, labels: Record<string, string> = {}): Promise<number> {
    return sumMetric(await (await fetch(`${this.api}/metrics`)).text(), name, labels);
  }

  async tunnelNames(): Promise<string[]> {
    return ((await this.json('GET', '/v1/tunnels')).body.items as { name: string }[]).map((t) => t.name).sort();
  }

  logs(): string {
    return `--- ${this.id} ferryd:\n${this.ferrydLog().slice(-2000)}\n--- ${this.id} ferry-control:\n${this.controlLog().slice(-4000)}`;
  }
}

export class Mesh {
  readonly nodes: MeshNode[];

  constructor(readonly prefix: string, n: number, opts: MeshOptions) {
    if (prefix.length > 8) throw new Error(`prefix ${prefix} longer than 8`);
    this.nodes = Array.from({ length: n }, (_, i) => new MeshNode(prefix, i + 1, opts));
  }

  node(k: number): MeshNode { return this.nodes[k - 1]!; }

  async start(): Promise<void> {
    this.topologyDown();
    try {
      sh(TOPOLOGY, ['up', this.prefix, String(this.nodes.length)]);
      for (const n of this.nodes) await n.start();
    } catch (e) {
      await this.stop();
      throw e;
    }
  }

  ping(from: number, to: number, args: string[] = ['-c', '3', '-i', '0.2', '-W', '2']): { received: number; out: string } {
    const r = spawnSync('ip', ['netns', 'exec', this.node(from).vmNs, 'ping', '-n', ...args, meshVmIp(to)], { encoding: 'utf8', timeout: 60000 });
    const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
    return { received: Number(/(\d+) (?:packets )?received/.exec(out)?.[1] ?? 0), out };
  }

  async stop(): Promise<void> {
    const results = await Promise.allSettled(this.nodes.map((n) => n.stop()));
    this.topologyDown();
    for (const n of this.nodes) n.removeState();
    for (const r of results) if (r.status === 'rejected') throw r.reason;
  }

  topologyDown(): void {
    sh(TOPOLOGY, ['down', this.prefix, String(this.nodes.length)]);
  }

  logs(): string {
    return this.nodes.map((n) => n.logs()).join('\n');
  }
}
