// Cluster mode: this node's part in a fleet whose desired state lives in etcd.
//
// - Membership: the node registers {node_id, tunnel_ip, underlay_mac, ...} under a lease it keeps
//   alive; every node's mesh is one STT tunnel per other registered node (peer-<id>, the peer's
//   tunnel IP as remote) plus a static neighbour for the peer's underlay MAC. A node whose lease
//   runs out (it stopped, or lost etcd) leaves every other node's mesh.
// - Desired state: a full read, then a watch from the revision after it. Every change is applied
//   through the services' reconcile paths (the same code that programs ferryd for REST requests):
//   conntrack settings, then tunnels and the mesh, then flows, each as one step.
// - Losing etcd: ferryd keeps forwarding with what it has; /health and /metrics say etcd is out of
//   reach; the watch resumes from the last revision seen when etcd returns, or, when that revision
//   was compacted meanwhile, the node reads everything again (a full resync).
import { Etcd3, Lease, Watcher, isRecoverableError } from 'etcd3';
import { ConsecutiveBreaker, ExponentialBackoff, circuitBreaker, handleWhen, retry } from 'cockatiel';
import type { FerrydConnection, Log } from '../ferryd';
import type { FlowService } from '../flows/service';
import type { TunnelService, Tunnel, StaticNeighbour } from '../tunnels/service';
import type { ConntrackService } from '../conntrack/service';
import { parseIpv4 } from '../tunnels/format';
import { ClusterKeys, NodeRecord } from './keys';
import { ClusterView } from './view';
import type { ClusterStore } from './store';

export interface ClusterConfig {
  endpoints: string[];
  prefix: string;
  nodeId: string;
  /** this node's tunnel endpoint (an address of ferryd's, on the underlay) */
  tunnelIp: string;
  tunnelPlen: number;
  underlayPort: number;
  /** the STT key of the mesh tunnels: a number, or 'flow' (from tun_id) */
  meshKey: bigint | 'flow';
  /** seconds a registration outlives its node */
  leaseTtl: number;
}

export interface ClusterHealth {
  node_id: string;
  etcd: 'up' | 'down';
  /** ms since etcd was last seen up (0 while up) */
  etcd_down_ms: number;
  revision: string;
  registered: boolean;
  peers: string[];
  last_error: string | null;
  desired_keys: number;
}

const PROBE_MS = 1000;
const ALL_NS = ['nodes', 'flows', 'tunnels', 'neighbours', 'stt-options', 'ct-settings', 'ct-zone-limits', 'ct-timeout-policies'];

/** What the store and the agent share: made first, as the services need the store. */
export interface ClusterParts {
  keys: ClusterKeys;
  view: ClusterView;
  client: Etcd3;
}

export function clusterParts(config: ClusterConfig): ClusterParts {
  const keys = new ClusterKeys(config.prefix, config.nodeId);
  // etcd3's defaults keep a failed member's circuit open 5 s and back a watch off exponentially
  // without a bound worth waiting for: a node should see etcd back within a second or two
  const client = new Etcd3({
    hosts: config.endpoints,
    dialTimeout: 2000,
    faultHandling: {
      host: () => circuitBreaker(handleWhen(isRecoverableError), { halfOpenAfter: 1000, breaker: new ConsecutiveBreaker(3) }),
      global: retry(handleWhen(isRecoverableError), { maxAttempts: 3 }),
      // etcd3 calls next() on it for each new backoff sequence, which is what cockatiel 3's factory does
      watchBackoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 1000 }) as never,
    },
  });
  return { keys, view: new ClusterView(keys), client };
}

export class ClusterAgent {
  readonly keys: ClusterKeys;
  readonly view: ClusterView;
  readonly client: Etcd3;
  readonly counters = { watchEvents: 0, fullResyncs: 0, watchResumes: 0, applyErrors: 0, badKeys: 0, leasesLost: 0 };
  private store: ClusterStore | null = null;
  private lease: Lease | null = null;
  private watcher: Watcher | null = null;
  private registered = false;
  private etcdUp = false;
  private downSince = Date.now();
  private lastError: string | null = null;
  private stopped = false;
  private timer: NodeJS.Timeout | null = null;
  /** namespaces (and 'nodes') changed since the last apply */
  private dirty = new Set<string>();
  private applying: Promise<void> = Promise.resolve();
  private applyScheduled = false;
  private synced = false;
  private resyncing = false;
  /** when the watch lost etcd (null: connected) */
  private watchDownSince: number | null = null;

  constructor(
    readonly config: ClusterConfig,
    parts: ClusterParts,
    private readonly services: { ferryd: FerrydConnection; flows: FlowService; tunnels: TunnelService; conntrack: ConntrackService },
    private readonly log: Log,
  ) {
    this.keys = parts.keys;
    this.view = parts.view;
    this.client = parts.client;
    // a new ferryd: the mesh tunnels get their ports once it is attached
    // a ferryd that became ready (attached, replayed): everything again, as it may have missed some
    services.ferryd.on('ready', () => {
      for (const ns of ALL_NS) this.dirty.add(ns);
      this.scheduleApply();
    });
  }

  /** The store REST changes go through (set by the caller, which builds it over the view). */
  attachStore(store: ClusterStore): void {
    this.store = store;
    store.onRejected = (why) => {
      this.lastError = why;
      // the node applied a change etcd did not take: back to what etcd holds
      for (const ns of ALL_NS) this.dirty.add(ns);
      this.scheduleApply();
    };
  }

  start(): void {
    this.stopped = false;
    void this.probe();
    this.timer = setInterval(() => void this.probe(), PROBE_MS);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.watcher?.cancel().catch(() => undefined);
    // a clean stop leaves the fleet at once rather than when the lease runs out
    await this.lease?.revoke().catch(() => undefined);
    this.client.close();
  }

  health(): ClusterHealth {
    return {
      node_id: this.config.nodeId,
      etcd: this.etcdUp ? 'up' : 'down',
      etcd_down_ms: this.etcdUp ? 0 : Date.now() - this.downSince,
      revision: this.view.revision,
      registered: this.registered,
      peers: [...this.view.nodes.keys()].filter((n) => n !== this.config.nodeId).sort(),
      last_error: this.lastError,
      desired_keys: this.view.entries.size,
    };
  }

  get isEtcdUp(): boolean {
    return this.etcdUp;
  }

  // ---- reachability, registration, sync --------------------------------------------------------
  /** Every second: is etcd there? Then whatever is missing: the first sync, the registration. */
  private async probe(): Promise<void> {
    if (this.stopped) return;
    try {
      await this.client.maintenance.status({ deadline: Date.now() + PROBE_MS });
      if (!this.etcdUp) this.log.info(`cluster: etcd is reachable (${this.config.endpoints.join(',')})`);
      this.etcdUp = true;
    } catch (e) {
      if (this.etcdUp) this.log.warn(`cluster: etcd is out of reach: ${(e as Error).message}; forwarding goes on with the state this node has`);
      if (this.etcdUp || this.lastError === null) this.lastError = `etcd: ${(e as Error).message}`;
      if (this.etcdUp) this.downSince = Date.now();
      this.etcdUp = false;
      return;
    }
    try {
      if (!this.synced && !this.resyncing) await this.fullResync(this.counters.fullResyncs ? 'the watched revision is gone (compacted): full resync' : 'first sync');
      else if (this.watchDownSince !== null && Date.now() - this.watchDownSince > 2 * PROBE_MS && !this.resyncing) await this.resumeWatch();
      if (!this.registered) await this.register();
    } catch (e) {
      this.lastError = (e as Error).message;
      this.log.warn(`cluster: ${this.lastError}`);
    }
  }

  /** Registers this node under a lease kept alive; a lost lease registers again at the next probe. */
  private async register(): Promise<void> {
    const seg = this.services.ferryd.segment;
    const port = seg?.snapshot().ports.find((p) => p.port_id === this.config.underlayPort);
    if (!port) return; // the underlay MAC comes from ferryd: wait for it
    const rec: NodeRecord = {
      node_id: this.config.nodeId, tunnel_ip: this.config.tunnelIp, tunnel_plen: this.config.tunnelPlen,
      underlay_mac: port.mac, underlay_port: this.config.underlayPort,
    };
    const lease = this.client.lease(this.config.leaseTtl, { autoKeepAlive: true });
    lease.on('lost', (err) => {
      if (this.lease !== lease) return;
      this.counters.leasesLost++;
      this.registered = false;
      this.lease = null;
      this.log.warn(`cluster: registration lease lost (${err.message}); registering again when etcd answers`);
    });
    await lease.put(this.keys.node()).value(JSON.stringify(rec)).exec();
    this.lease = lease;
    this.registered = true;
    this.log.info(`cluster: registered as ${this.config.nodeId} (${this.config.tunnelIp}, underlay ${port.mac}), lease ${this.config.leaseTtl} s`);
  }

  /** Reads everything under the prefix, applies it, and watches from the revision after it. */
  private async fullResync(why: string): Promise<void> {
    this.resyncing = true;
    try {
      await this.watcher?.cancel().catch(() => undefined);
      this.watcher = null;
      const res = await this.client.getAll().prefix(`${this.config.prefix}/`).options({ deadline: Date.now() + 5000 }).exec();
      this.view.clear();
      for (const kv of res.kvs) this.note(this.view.apply(kv.key.toString(), kv.value.toString(), String(kv.mod_revision)));
      this.view.revision = String(res.header.revision);
      this.counters.fullResyncs++;
      this.log.info(`cluster: ${why}: ${this.view.entries.size} desired keys and ${this.view.nodes.size} nodes at revision ${this.view.revision}`);
      for (const ns of ALL_NS) this.dirty.add(ns);
      this.scheduleApply();
      await this.watchFrom(BigInt(this.view.revision) + 1n);
      this.synced = true;
      this.scheduleApply(); // held back until now: apply() waits for a whole view
    } finally {
      this.resyncing = false;
    }
  }

  private note(r: { changed: string | null; bad?: string }): void {
    if (r.bad) {
      this.counters.badKeys++;
      this.log.warn(`cluster: ignoring ${r.bad}`);
    }
    if (r.changed) this.dirty.add(r.changed);
  }

  /** etcd answers but the watch has not come back by itself: a new one from the revision after the last seen. */
  private async resumeWatch(): Promise<void> {
    const old = this.watcher;
    this.watcher = null;
    await old?.cancel().catch(() => undefined);
    this.counters.watchResumes++;
    this.log.info(`cluster: watching again from revision ${BigInt(this.view.revision) + 1n}`);
    await this.watchFrom(BigInt(this.view.revision) + 1n);
  }

  private async watchFrom(rev: bigint): Promise<void> {
    const w = await this.client.watch().prefix(`${this.config.prefix}/`).startRevision(String(rev)).create();
    this.watcher = w;
    this.watchDownSince = null;
    let wasDown = false;
    w.on('data', (res) => {
      if (this.watcher !== w) return;
      for (const ev of res.events) {
        this.counters.watchEvents++;
        const k = ev.kv.key.toString();
        this.note(this.view.apply(k, ev.type === 'Delete' ? null : ev.kv.value.toString(), String(ev.kv.mod_revision)));
      }
      if (res.header?.revision) this.view.revision = String(res.header.revision);
      this.scheduleApply();
    });
    w.on('disconnected', (err) => {
      if (this.watcher !== w) return;
      wasDown = true;
      this.watchDownSince ??= Date.now();
      this.lastError = `etcd watch: ${err.message}`;
    });
    w.on('connected', () => {
      if (!wasDown || this.watcher !== w) return;
      wasDown = false;
      this.watchDownSince = null;
      this.counters.watchResumes++;
      this.log.info(`cluster: watch resumed after revision ${this.view.revision}`);
    });
    w.on('error', (err) => {
      if (this.watcher !== w) return;
      // e.g. "required revision has been compacted": what was missed is gone from the history
      this.log.warn(`cluster: watch ended (${err.message}); reading everything again`);
      this.synced = false;
      this.watcher = null;
    });
  }

  // ---- applying the view ---------------------------------------------------------------------
  private markDirty(ns: string): void {
    this.dirty.add(ns);
    this.scheduleApply();
  }

  /** Applies what changed, once per turn of the event loop (a transaction's events together). */
  private scheduleApply(): void {
    if (this.applyScheduled) return;
    this.applyScheduled = true;
    setImmediate(() => {
      this.applyScheduled = false;
      this.applying = this.applying.then(() => this.apply(), () => this.apply());
    });
  }

  private async apply(): Promise<void> {
    const dirty = this.dirty;
    if (dirty.size === 0 || !this.synced) return; // nothing, or not before the first full read
    if (!this.services.ferryd.ready) return; // kept dirty: the 'ready' event applies everything
    this.dirty = new Set();
    const { flows, tunnels, conntrack } = this.services;
    // a step that found ferryd not ready changed nothing: its namespaces wait for 'ready'
    const step = async (what: string, nss: string[], fn: () => Promise<unknown>): Promise<void> => {
      try {
        if ((await fn()) === null) for (const n of nss) this.dirty.add(n);
      } catch (e) {
        this.counters.applyErrors++;
        this.lastError = `applying ${what}: ${(e as Error).message}`;
        this.log.warn(`cluster: ${this.lastError}`);
      }
    };
    const ct = ['ct-settings', 'ct-zone-limits', 'ct-timeout-policies'];
    if (ct.some((n) => dirty.has(n))) {
      await step('the conntrack settings', ct, async () => ((await conntrack.reconcile((ns) => this.view.merged(ns))) ? true : null));
    }
    const user = ['tunnels', 'neighbours', 'stt-options'].some((n) => dirty.has(n));
    if (user || dirty.has('nodes')) {
      await step('the tunnels and the mesh', ['tunnels', 'neighbours', 'stt-options', 'nodes'], () => tunnels.reconcile(
        user ? { tunnels: this.view.merged('tunnels'), neighbours: this.view.merged('neighbours'), options: this.view.merged('stt-options').get('options') } : null,
        this.mesh()));
    }
    if (dirty.has('flows')) await step('the flows', ['flows'], () => flows.reconcile(this.view.merged('flows')));
  }

  /** The mesh this node wants: a tunnel and a static neighbour per other registered node. */
  private mesh(): { tunnels: Omit<Tunnel, 'port'>[]; neighbours: StaticNeighbour[] } {
    const tunnels: Omit<Tunnel, 'port'>[] = [];
    const neighbours: StaticNeighbour[] = [];
    const local = parseIpv4(this.config.tunnelIp)!;
    for (const [id, n] of [...this.view.nodes].sort(([a], [b]) => a.localeCompare(b))) {
      if (id === this.config.nodeId) continue;
      const remote = parseIpv4(n.tunnel_ip);
      const mac = parseMac(n.underlay_mac);
      if (!remote || !mac || n.tunnel_ip === this.config.tunnelIp) {
        this.counters.badKeys++;
        continue;
      }
      tunnels.push({
        name: `peer-${id}`, localIp: local, localPlen: this.config.tunnelPlen, remoteIp: remote, key: this.config.meshKey,
        dstPort: 7471, underlayPort: this.config.underlayPort, underlayMtu: 1500, gateway: null, tos: 0, ttl: 64,
      });
      neighbours.push({ port: this.config.underlayPort, ip: remote, mac });
    }
    return { tunnels, neighbours };
  }

  /** Resolves once what is pending has been applied (tests, and REST answers that wait for it). */
  async settled(): Promise<void> {
    while (this.applyScheduled || this.dirty.size) {
      await new Promise((r) => setImmediate(r));
      await this.applying;
    }
    await this.applying;
  }

  get storeStats(): ClusterStore['stats'] | null {
    return this.store?.stats ?? null;
  }
}

function parseMac(s: string): number[] | null {
  const m = /^([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2})$/i.exec(s);
  return m ? m.slice(1, 7).map((x) => parseInt(x, 16)) : null;
}
