// Starts a real ferryd (af_packet ports on veths in namespaces this harness creates)
// and a real ferry-control, and tears all of it down again, also when a test fails.
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const root = path.resolve(__dirname, '../../..');
const FERRYD = path.join(root, 'dataplane/build/ferryd');
const CONTROL = path.join(root, 'control/bin/ferry-control.js');
const TOPOLOGY = path.join(root, 'scripts/topology.sh');
export const RAWFRAMES = path.join(root, 'tests/tools/rawframes.py');

export function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 10000): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

function collect(p: ChildProcess): () => string {
  let out = '';
  p.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  return () => out;
}

export interface FerryOptions {
  prefix: string; // <= 8 chars, unique per test file
  vms: number;
  ip?: boolean;
}

export class Ferry {
  readonly shm: string;
  api = '';
  ferryd?: ChildProcess;
  control?: ChildProcess;
  ferrydLog: () => string = () => '';
  controlLog: () => string = () => '';
  /** ferry-control's durable desired state (a fresh directory per Ferry; kept across its restarts) */
  readonly stateDir: string;
  private controlPort = 0;

  constructor(readonly opts: FerryOptions) {
    this.shm = `ferry-it-${opts.prefix}`;
    this.stateDir = mkdtempSync(path.join(os.tmpdir(), `ferry-state-${opts.prefix}-`));
  }

  ns(k: number | 'sw'): string {
    return `${this.opts.prefix}-${k === 'sw' ? 'sw' : `vm${k}`}`;
  }

  async start(): Promise<void> {
    this.topologyDown();
    sh(TOPOLOGY, ['up', this.opts.prefix, String(this.opts.vms), ...(this.opts.ip ? ['--ip'] : [])]);
    this.startFerryd();
    this.controlPort = await freePort();
    this.api = `http://127.0.0.1:${this.controlPort}`;
    this.startControl();
    await this.waitHealthy();
  }

  /** (Re)starts ferry-control on the same address and state directory. */
  startControl(): void {
    this.control = spawn(CONTROL, ['--shm-name', this.shm, '--listen', `127.0.0.1:${this.controlPort}`, '--state-dir', this.stateDir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.controlLog = collect(this.control);
  }

  /** Kills ferry-control and waits until it is gone. */
  async killControl(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const p = this.control;
    if (!p || p.exitCode != null || p.signalCode != null) return;
    const gone = new Promise((r) => p.on('exit', r));
    p.kill(signal);
    await gone;
  }

  startFerryd(): void {
    const vdevs: string[] = [];
    for (let k = 1; k <= this.opts.vms; k++) vdevs.push('--vdev', `net_af_packet${k - 1},iface=${this.opts.prefix}-s${k}`);
    this.ferryd = spawn('ip', ['netns', 'exec', this.ns('sw'), FERRYD,
      '--no-huge', '-m', '256', '--no-pci', '--file-prefix', this.shm, '-l', '0,1', ...vdevs, '--log-level=error',
      '--', '--shm-name', this.shm, '--pmd-sleep-us', '50'], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.ferrydLog = collect(this.ferryd);
  }

  async waitHealthy(timeoutMs = 15000): Promise<void> {
    await waitFor('ferry-control /health ok', async () => {
      if (this.ferryd?.exitCode != null) throw new Error(`ferryd exited: ${this.ferrydLog()}`);
      if (this.control?.exitCode != null) throw new Error(`ferry-control exited: ${this.controlLog()}`);
      const r = await fetch(`${this.api}/health`);
      return r.status === 200 ? true : undefined;
    }, timeoutMs);
  }

  async json(method: string, url: string, body?: unknown): Promise<{ status: number; headers: Headers; body: any }> {
    const r = await fetch(`${this.api}${url}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    return { status: r.status, headers: r.headers, body: text ? JSON.parse(text) : undefined };
  }

  /** Value of one sample in /metrics, e.g. metric('ferry_port_rx_packets_total', {port: 'net_af_packet0'}). */
  async metric(name: string, labels: Record<string, string> = {}): Promise<number> {
    const text = await (await fetch(`${this.api}/metrics`)).text();
    for (const line of text.split('\n')) {
      if (!line.startsWith(name)) continue;
      const m = /^([a-z_:]+)(\{([^}]*)\})? (\S+)$/.exec(line);
      if (!m || m[1] !== name) continue;
      const have = Object.fromEntries((m[3] ?? '').split(',').filter(Boolean).map((kv) => {
        const i = kv.indexOf('=');
        return [kv.slice(0, i), kv.slice(i + 2, -1)];
      }));
      if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[4]);
    }
    throw new Error(`metric ${name}${JSON.stringify(labels)} not in /metrics`);
  }

  /** Sends count test frames from vmFrom and returns how many vmTo received (with
   * destination MAC dstMac, when given). */
  async frames(vmFrom: number, vmTo: number, count: number, len = 60, dstMac?: string): Promise<number> {
    const rx = spawn('ip', ['netns', 'exec', this.ns(vmTo), 'python3', RAWFRAMES, 'recv', 'eth0', '1.0', ...(dstMac ? [dstMac] : [])],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    const out = collect(rx);
    await waitFor('receiver ready', async () => (out().includes('ready') ? true : undefined), 5000);
    sh('ip', ['netns', 'exec', this.ns(vmFrom), 'python3', RAWFRAMES, 'send', 'eth0', String(count), String(len)]);
    await new Promise((r) => rx.on('exit', r));
    const lines = out().trim().split('\n');
    return Number(lines[lines.length - 1]);
  }

  killFerryd(signal: NodeJS.Signals = 'SIGKILL'): void {
    this.ferryd?.kill(signal);
  }

  async stop(): Promise<void> {
    const exited = (p?: ChildProcess) =>
      p && p.exitCode == null && p.signalCode == null ? new Promise((r) => p.on('exit', r)) : Promise.resolve();
    const waits = [exited(this.control), exited(this.ferryd)];
    this.control?.kill('SIGTERM');
    this.ferryd?.kill('SIGTERM');
    const t = setTimeout(() => { this.control?.kill('SIGKILL'); this.ferryd?.kill('SIGKILL'); }, 5000);
    await Promise.all(waits);
    clearTimeout(t);
    this.topologyDown();
    rmSync(`/dev/shm/${this.shm}`, { force: true });
      rmSync(`/dev/shm/${this.shm}.doorbell`, { force: true }); // ferryd removes it, unless killed
    rmSync(`/var/run/dpdk/${this.shm}`, { recursive: true, force: true });
    rmSync(this.stateDir, { recursive: true, force: true });
  }

  topologyDown(): void {
    sh(TOPOLOGY, ['down', this.opts.prefix, String(this.opts.vms)]);
  }
}

export function stopProc(p: ChildProcess, sig: NodeJS.Signals = 'SIGINT'): Promise<void> {
  if (p.exitCode != null || p.signalCode != null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => p.kill('SIGKILL'), 5000);
    p.on('exit', () => { clearTimeout(t); resolve(); });
    p.kill(sig);
  });
}

/** The sum of a metric's samples (over all label sets, e.g. every worker) at api's /metrics; throws when absent. */
export async function metricSum(api: string, name: string): Promise<number> {
  const text = await (await fetch(`${api}/metrics`)).text();
  let sum = 0;
  let seen = false;
  for (const line of text.split('\n')) {
    const m = /^([a-z_:]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m && m[1] === name) {
      sum += Number(m[3]);
      seen = true;
    }
  }
  if (!seen) throw new Error(`${name} not in /metrics`);
  return sum;
}

export interface NullFerry {
  api: string;
  /** host:port of ferry-control, for a scrape target */
  target: string;
  /** ferryd's segment name */
  shm: string;
  stop(): Promise<void>;
}

/** ferryd on two net_null ports (EAL memory memMb, ferryd options extra) with a ferry-control
 * attached, healthy, and flows (ovs-ofctl text) installed; stop() cleans up everything. */
export async function startNullFerry(opts: { tag: string; memMb?: number; extra?: string[]; flows?: string }): Promise<NullFerry> {
  const shm = `ferry-${opts.tag}-${process.pid}-${Math.floor(Math.random() * 1e6)}`;
  const fd = spawn(FERRYD, ['--no-huge', '-m', String(opts.memMb ?? 256), '--no-pci', '--file-prefix', shm, '-l', '0,1',
    '--vdev', 'net_null0', '--vdev', 'net_null1', '--log-level=error', '--', '--shm-name', shm, ...(opts.extra ?? [])],
  { stdio: ['ignore', 'pipe', 'pipe'] });
  const log = collect(fd);
  const port = await freePort();
  const target = `127.0.0.1:${port}`;
  const api = `http://${target}`;
  const stateDir = mkdtempSync(path.join(os.tmpdir(), `ferry-state-${opts.tag}-`));
  const ctl = spawn(CONTROL, ['--shm-name', shm, '--listen', target, '--request-timeout-ms', '30000', '--state-dir', stateDir],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  const stop = async (): Promise<void> => {
    await stopProc(ctl, 'SIGTERM');
    await stopProc(fd);
    rmSync(stateDir, { recursive: true, force: true });
    rmSync(`/dev/shm/${shm}`, { force: true });
    rmSync(`/dev/shm/${shm}.doorbell`, { force: true }); // ferryd removes it, unless killed
    rmSync(`/var/run/dpdk/${shm}`, { recursive: true, force: true });
  };
  try {
    await waitFor('ferry-control healthy', async () => {
      if (fd.exitCode != null) throw new Error(`ferryd exited: ${log()}`);
      return (await fetch(`${api}/health`)).status === 200 ? true : undefined;
    }, 20000);
    if (opts.flows) {
      const r = await fetch(`${api}/v1/flows`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: opts.flows });
      if (r.status >= 300) throw new Error(`adding flows: ${r.status} ${(await r.text()).slice(0, 500)}`);
    }
  } catch (e) {
    await stop();
    throw e;
  }
  return { api, target, shm, stop };
}

