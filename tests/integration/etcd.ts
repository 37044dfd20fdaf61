// A throwaway etcd cluster on 127.0.0.1 for integration tests: Debian's etcd 3.4
// (/usr/bin/etcd, package etcd-server; etcdctl from etcd-client), every member with its own
// temporary data dir and free client and peer ports, the v3 API only. start() waits until
// every member reports itself healthy; members can be stopped, killed and restarted (same
// data dir and ports); stop() removes everything and never throws. Members also die with
// the test process if it exits without stop().
import { ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './harness';

export const ETCD = process.env.FERRY_ETCD_BIN ?? '/usr/bin/etcd';
export const ETCDCTL = process.env.FERRY_ETCDCTL_BIN ?? '/usr/bin/etcdctl';

/** Per-member log kept in memory (the tail is what matters in a failure message). */
const LOG_CAP = 256 * 1024;

export interface EtcdClusterOptions {
  /** number of members (default 3) */
  members?: number;
  /** raft heartbeat interval in ms (default 50) */
  heartbeatMs?: number;
  /** raft election timeout in ms (default 500) */
  electionMs?: number;
  /** how long start() waits for every member to be healthy (default 20000) */
  timeoutMs?: number;
}

/** etcd's environment: the caller's without any ETCD_* / ETCDCTL_* that would override flags. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^ETCD(CTL)?_/.test(k)) env[k] = v;
  return { ...env, ...extra };
}

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s: string): string => Buffer.from(s, 'base64').toString('utf8');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const exited = (p: ChildProcess): boolean => p.exitCode != null || p.signalCode != null;

/** Live clusters, killed synchronously if the process exits without stop(). */
const live = new Set<EtcdCluster>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => { for (const c of live) c.killNow(); });
}

class AddressInUse extends Error {}

export class EtcdCluster {
  /** client URLs, http://127.0.0.1:<port>, member i at index i */
  readonly endpoints: string[];
  /** peer URLs, member i at index i */
  readonly peerUrls: string[];
  /** member names (etcd0, etcd1, ...) */
  readonly names: string[];
  /** data dirs (removed by stop()) */
  readonly dataDirs: string[];
  /** --initial-cluster-token: unique per cluster; also in every member's command line */
  readonly token: string;
  private readonly procs: (ChildProcess | undefined)[];
  private readonly logBuf: string[];
  private readonly heartbeatMs: number;
  private readonly electionMs: number;
  private stopped = false;

  private constructor(clientPorts: number[], peerPorts: number[], opts: EtcdClusterOptions) {
    const n = clientPorts.length;
    this.token = `ferry-it-${process.pid}-${randomBytes(4).toString('hex')}`;
    this.names = Array.from({ length: n }, (_, i) => `etcd${i}`);
    this.endpoints = clientPorts.map((p) => `http://127.0.0.1:${p}`);
    this.peerUrls = peerPorts.map((p) => `http://127.0.0.1:${p}`);
    this.dataDirs = [];
    this.procs = new Array<ChildProcess | undefined>(n).fill(undefined);
    this.logBuf = new Array<string>(n).fill('');
    this.heartbeatMs = opts.heartbeatMs ?? 50;
    this.electionMs = opts.electionMs ?? 500;
  }

  /** Starts the cluster and waits until every member is healthy (else throws with the logs;
   * nothing is left behind). Ports taken between choosing and binding them: retried. */
  static async start(opts: EtcdClusterOptions = {}): Promise<EtcdCluster> {
    const n = opts.members ?? 3;
    if (!Number.isInteger(n) || n < 1 || n > 9) throw new Error(`EtcdCluster: members must be 1..9, got ${n}`);
    for (let attempt = 1; ; attempt++) {
      const ports = await distinctFreePorts(2 * n);
      const c = new EtcdCluster(ports.slice(0, n), ports.slice(n), opts);
      live.add(c);
      installExitHook();
      try {
        for (let i = 0; i < n; i++) {
          c.dataDirs.push(mkdtempSync(path.join(os.tmpdir(), `ferry-it-etcd-${c.names[i]}-`)));
        }
        for (let i = 0; i < n; i++) c.spawnMember(i, 'new');
        await c.waitHealthy(undefined, opts.timeoutMs ?? 20000);
        return c;
      } catch (e) {
        await c.stop();
        if (e instanceof AddressInUse && attempt < 3) continue;
        throw e;
      }
    }
  }

  get size(): number { return this.endpoints.length; }

  /** Whether member i's process is running. */
  isRunning(i: number): boolean {
    const p = this.procs[this.check(i)];
    return p !== undefined && !exited(p);
  }

  /** pid of member i's process, if running. */
  pid(i: number): number | undefined {
    return this.isRunning(i) ? this.procs[i]!.pid : undefined;
  }

  /** SIGTERM to member i (a leader hands over leadership first) and waits until it is gone
   * (SIGKILL after 10 s). No-op if it is not running. */
  async stopMember(i: number): Promise<void> {
    await this.signalAndWait(this.check(i), 'SIGTERM', 10000);
  }

  /** SIGKILL to member i and waits until it is gone. No-op if it is not running. */
  async killMember(i: number): Promise<void> {
    await this.signalAndWait(this.check(i), 'SIGKILL', 0);
  }

  /** Restarts member i with its data dir and ports (--initial-cluster-state existing) and, unless
   * wait is false, waits until it is healthy (which needs a quorum of members running). */
  async startMember(i: number, opts: { wait?: boolean; timeoutMs?: number } = {}): Promise<void> {
    this.check(i);
    if (this.stopped) throw new Error('EtcdCluster: already stopped');
    if (this.isRunning(i)) throw new Error(`EtcdCluster: member ${i} is running`);
    this.spawnMember(i, 'existing');
    if (opts.wait ?? true) await this.waitHealthy([i], opts.timeoutMs ?? 20000);
  }

  /** Waits until every member in members (default: all) answers GET /health with
   * {"health":"true"}; throws with the logs if one exits or the time runs out. */
  async waitHealthy(members?: number[], timeoutMs = 20000): Promise<void> {
    const which = members ?? this.endpoints.map((_, i) => i);
    const end = Date.now() + timeoutMs;
    const pending = new Set(which);
    let last = '';
    while (pending.size > 0) {
      for (const i of [...pending]) {
        const p = this.procs[i];
        if (!p || exited(p)) {
          const log = this.logBuf[i] ?? '';
          const msg = `etcd member ${i} (${this.names[i]}) exited (${p?.exitCode ?? p?.signalCode ?? 'not started'}) while waiting for it to be healthy\n${this.logs()}`;
          throw /address already in use/.test(log) ? new AddressInUse(msg) : new Error(msg);
        }
        const h = await this.health(i);
        if (h.ok) pending.delete(i);
        else last = `member ${i}: ${h.detail}`;
      }
      if (pending.size === 0) break;
      if (Date.now() > end) {
        throw new Error(`etcd: members ${[...pending].join(',')} not healthy after ${timeoutMs} ms (${last})\n${this.logs()}`);
      }
      await sleep(100);
    }
  }

  /** GET /health of member i: ok when it answers {"health":"true"} (it has a leader and no alarm). */
  async health(i: number): Promise<{ ok: boolean; detail: string }> {
    try {
      const r = await fetch(`${this.endpoints[this.check(i)]}/health`, { signal: AbortSignal.timeout(2000) });
      const text = await r.text();
      let ok = false;
      try { ok = r.status === 200 && (JSON.parse(text) as { health?: unknown }).health === 'true'; } catch { /* not JSON */ }
      return { ok, detail: `${r.status} ${text.trim()}` };
    } catch (e) {
      return { ok: false, detail: String(e) };
    }
  }

  /** Runs etcdctl (v3 API) against member (default: every endpoint); resolves to stdout,
   * rejects with stderr. */
  etcdctl(args: string[], opts: { member?: number; timeoutMs?: number } = {}): Promise<string> {
    const endpoints = opts.member === undefined ? this.endpoints.join(',') : this.endpoints[this.check(opts.member)]!;
    const timeoutMs = opts.timeoutMs ?? 10000;
    return new Promise((resolve, reject) => {
      execFile(ETCDCTL, [`--endpoints=${endpoints}`, '--dial-timeout=2s', `--command-timeout=${Math.max(1, Math.floor(timeoutMs / 1000) - 1)}s`, ...args],
        { env: cleanEnv({ ETCDCTL_API: '3' }), encoding: 'utf8', timeout: timeoutMs },
        (err, stdout, stderr) => {
          if (err) reject(new Error(`etcdctl ${args.join(' ')} (${endpoints}): ${err.message}\n${stderr}`));
          else resolve(stdout);
        });
    });
  }

  /** Put through member i's gRPC gateway (POST /v3/kv/put). */
  async put(i: number, key: string, value: string): Promise<void> {
    await this.gateway(i, '/v3/kv/put', { key: b64(key), value: b64(value) });
  }

  /** Get through member i's gRPC gateway (POST /v3/kv/range); undefined if the key is absent.
   * serializable: answered from member i's own state, without asking the leader. */
  async get(i: number, key: string, opts: { serializable?: boolean } = {}): Promise<string | undefined> {
    const r = (await this.gateway(i, '/v3/kv/range', { key: b64(key), serializable: opts.serializable ?? false })) as
      { kvs?: { value?: string }[] };
    const kv = r.kvs?.[0];
    return kv ? unb64(kv.value ?? '') : undefined;
  }

  /** Every member stopped (SIGKILL: the data is thrown away), its data dir removed. Never throws. */
  async stop(): Promise<void> {
    this.stopped = true;
    try {
      await Promise.all(this.procs.map((_, i) => this.signalAndWait(i, 'SIGKILL', 0).catch(() => undefined)));
    } catch { /* never */ }
    for (const d of this.dataDirs) {
      try { rmSync(d, { recursive: true, force: true }); } catch { /* never throws */ }
    }
    live.delete(this);
  }

  /** The tail of every member's log (maxPerMember characters each), for failure messages. */
  logs(maxPerMember = 4000): string {
    return this.logBuf.map((l, i) => {
      const p = this.procs[i];
      const state = !p ? 'not started' : exited(p) ? `exited ${p.exitCode ?? p.signalCode}` : `running pid ${p.pid}`;
      return `--- etcd member ${i} ${this.names[i]} ${this.endpoints[i]} (${state}):\n${l.slice(-maxPerMember)}`;
    }).join('\n');
  }

  /** Synchronous SIGKILL of every member and removal of the data dirs (process 'exit' hook). */
  killNow(): void {
    for (const p of this.procs) if (p && !exited(p)) { try { p.kill('SIGKILL'); } catch { /* gone */ } }
    for (const d of this.dataDirs) { try { rmSync(d, { recursive: true, force: true }); } catch { /* best effort */ } }
  }

  private check(i: number): number {
    if (!Number.isInteger(i) || i < 0 || i >= this.endpoints.length) throw new Error(`EtcdCluster: no member ${i}`);
    return i;
  }

  private initialCluster(): string {
    return this.names.map((name, i) => `${name}=${this.peerUrls[i]}`).join(',');
  }

  private spawnMember(i: number, state: 'new' | 'existing'): void {
    const args = [
      '--name', this.names[i]!,
      '--data-dir', this.dataDirs[i]!,
      '--listen-client-urls', this.endpoints[i]!,
      '--advertise-client-urls', this.endpoints[i]!,
      '--listen-peer-urls', this.peerUrls[i]!,
      '--initial-advertise-peer-urls', this.peerUrls[i]!,
      '--initial-cluster', this.initialCluster(),
      '--initial-cluster-state', state,
      '--initial-cluster-token', this.token,
      '--heartbeat-interval', String(this.heartbeatMs),
      '--election-timeout', String(this.electionMs),
      '--quota-backend-bytes', String(64 * 1024 * 1024),
      '--snapshot-count', '10000',
      '--enable-v2=false',
      '--logger', 'zap',
      '--log-outputs', 'stderr',
      '--log-level', 'info',
    ];
    const p = spawn(ETCD, args, { stdio: ['ignore', 'pipe', 'pipe'], env: cleanEnv() });
    this.procs[i] = p;
    this.logBuf[i] += `=== ${new Date().toISOString()} start (${state}): ${ETCD} ${args.join(' ')}\n`;
    const append = (d: Buffer): void => {
      const s = (this.logBuf[i] ?? '') + d.toString();
      this.logBuf[i] = s.length > LOG_CAP ? s.slice(-LOG_CAP) : s;
    };
    p.stdout?.on('data', append);
    p.stderr?.on('data', append);
    p.on('error', (e) => append(Buffer.from(`spawn error: ${String(e)}\n`)));
    p.on('exit', (code, sig) => append(Buffer.from(`=== ${new Date().toISOString()} exited (${code ?? sig})\n`)));
  }

  private signalAndWait(i: number, sig: NodeJS.Signals, killAfterMs: number): Promise<void> {
    const p = this.procs[i];
    if (!p || exited(p) || p.pid === undefined) return Promise.resolve();
    return new Promise((resolve) => {
      const t = killAfterMs > 0 ? setTimeout(() => p.kill('SIGKILL'), killAfterMs) : undefined;
      p.once('exit', () => { if (t) clearTimeout(t); resolve(); });
      p.kill(sig);
    });
  }

  private async gateway(i: number, url: string, body: unknown): Promise<unknown> {
    const r = await fetch(`${this.endpoints[this.check(i)]}${url}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(10000),
    });
    const text = await r.text();
    if (r.status !== 200) throw new Error(`etcd member ${i} POST ${url}: ${r.status} ${text}`);
    return JSON.parse(text) as unknown;
  }
}

/** count distinct free ports on 127.0.0.1. */
async function distinctFreePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}
