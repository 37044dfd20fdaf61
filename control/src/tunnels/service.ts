// STT tunnels, the underlay's neighbours and the STT options: the desired state (tunnels, static
// neighbours, options) is kept here, checked before ferryd sees it, and given to every new ferryd
// before its flows (flows may output to tunnel ports; ferryd refuses them while the port is not there).
import { MAX_PORTS, MsgType, NeighFlag, REQ_RING_SLOTS, Status, TunnelConfig, TunnelFlag } from '../gen/proto';
import type { ChannelResponse, ControlChannel, RequestSpec } from '../channel';
import { FerrydStatusError } from '../errors';
import type { FerrydConnection, Log } from '../ferryd';
import { HttpProblem, badRequest, notFound } from '../problem';
import {
  NeighbourView, SttOptionsView, TunnelView, formatIpv4, formatMac, ipv4Number, localPrefix, neighState, parseKey, unicastIpv4,
  unicastMac,
} from './format';
import { DEFAULTS, OPTION_DEFAULTS, SttOptionsBody, TunnelBody, TunnelPutBody } from './schema';
import { readTunnelPort } from './stats';
import { DesiredStateStore, MemoryStateStore, StateMirror, StateOrigin } from '../state/store';
import { ChangeQueue } from '../state/change-queue';
import { NeighPage, neighBody, neighDumpBody, readNeighPart, sttOptionsBody, tunnelDelBody, tunnelSetBody } from './wire';

export interface TunnelServiceOptions {
  log?: Log;
  /** Where the desired state is kept durably (default: in memory). */
  state?: DesiredStateStore;
}

/** The desired state's namespaces (see state/store.ts). */
const NS = { tunnels: 'tunnels', neighbours: 'neighbours', options: 'stt-options' } as const;

/** A tunnel as stored: its key (a 64-bit value) as a decimal string. */
type TunnelRecord = Omit<Tunnel, 'key'> & { key: string };
const tunnelRecord = (t: Tunnel): TunnelRecord => ({ ...t, key: t.key === 'flow' ? 'flow' : t.key.toString() });
const tunnelFromRecord = (r: TunnelRecord): Tunnel => ({ ...r, key: r.key === 'flow' ? 'flow' : BigInt(r.key) });

/** A tunnel as desired (checked and normalised). */
export interface Tunnel {
  name: string;
  port: number;
  localIp: number[];
  localPlen: number;
  remoteIp: number[] | 'flow';
  key: bigint | 'flow';
  dstPort: number;
  underlayPort: number;
  underlayMtu: number;
  gateway: number[] | null;
  tos: number;
  ttl: number;
}

export interface StaticNeighbour {
  port: number;
  ip: number[];
  mac: number[];
}

type Where = { pointer: string; what: string };
type Op = { spec: RequestSpec; at: Where; /** also fine: e.g. ENOENT for a delete of nothing */ alsoOk?: number };

const CHUNK = REQ_RING_SLOTS / 2;
/** NEIGH_DUMP requests one listing may take (a bound, not an expectation). */
const MAX_NEIGH_PAGES = 1 << 16;

/** The body fields a refusal's "field: why" message may name. */
const TUNNEL_FIELDS = new Set(['port', 'local_ip', 'local_plen', 'remote_ip', 'key', 'dst_port', 'underlay_port', 'underlay_mtu', 'gateway', 'tos', 'ttl', 'flags']);
const OPTION_FIELDS = new Set(Object.keys(OPTION_DEFAULTS));

/** ferryd's refusal as an error whose pointer is the field its message names ("underlay_port: ..."). */
function refusal(r: ChannelResponse, pointerOf: (field: string) => string | undefined, what = ''): FerrydStatusError {
  const field = /^([a-z_]+):/.exec(r.message)?.[1];
  const pointer = (field !== undefined ? pointerOf(field) : undefined) ?? '';
  return new FerrydStatusError(r.status, r.statusName, r.message, pointer, what ? `${what}: ` : '');
}

const tunnelPointer = (f: string): string | undefined => (f === 'local_plen' ? '/local_ip' : f === 'flags' ? '' : TUNNEL_FIELDS.has(f) ? `/${f}` : undefined);
const neighPointer = (f: string): string | undefined => ({ port: ':port', ip: ':ip', mac: '/mac' } as Record<string, string>)[f];
const optionPointer = (f: string): string | undefined => (OPTION_FIELDS.has(f) ? `/${f}` : undefined);

function conflict(pointer: string, detail: string): HttpProblem {
  return new HttpProblem(409, detail, [{ pointer, message: detail }], 'urn:ferry:problem:conflict', 'Conflict');
}

/** The comparable form of a tunnel's configuration (what makes two requests "the same"). */
const canonical = (t: Tunnel): string => JSON.stringify(tunnelConfig(t), (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));

export function tunnelConfig(t: Tunnel): TunnelConfig {
  return {
    port: t.port,
    flags: (t.remoteIp === 'flow' ? TunnelFlag.REMOTE_FLOW : 0) | (t.key === 'flow' ? TunnelFlag.KEY_FLOW : 0),
    key: t.key === 'flow' ? 0n : t.key,
    local_ip: t.localIp,
    remote_ip: t.remoteIp === 'flow' ? [0, 0, 0, 0] : t.remoteIp,
    gateway: t.gateway ?? [0, 0, 0, 0],
    local_plen: t.localPlen,
    tos: t.tos,
    ttl: t.ttl,
    pad0: 0,
    dst_port: t.dstPort,
    underlay_port: t.underlayPort,
    underlay_mtu: t.underlayMtu,
    pad1: 0,
  };
}

export class TunnelService {
  private readonly log?: Log;
  private readonly changes = new ChangeQueue((origin) => this.mirror.sync(this.desired(), origin));
  private readonly tunnels = new Map<string, Tunnel>();
  private readonly statics = new Map<string, StaticNeighbour>();
  private readonly opts: SttOptionsView = { ...OPTION_DEFAULTS };
  /** Cluster mode: the tunnels to the fleet's peers and their underlay neighbours, made from the
   * membership; kept out of the stored desired state (every node makes its own). */
  private readonly meshTunnels = new Set<string>();
  private readonly meshNeighbours = new Set<string>();

  private readonly mirror: StateMirror;

  constructor(private readonly ferryd: FerrydConnection, options: TunnelServiceOptions = {}) {
    this.log = options.log;
    const state = options.state ?? new MemoryStateStore();
    this.mirror = new StateMirror(state, Object.values(NS));
    this.restore(state);
    this.mirror.prime(this.desired());
    // Replay steps run in the order they were added, all of them before the flow table's replay
    // handler: a new ferryd gets its tunnel ports before any flow that outputs to them.
    ferryd.addReplayStep('the tunnels, static neighbours and STT options', (chan) => this.serial(() => this.replay(chan)));
  }

  /** Runs fn after every earlier change, then makes what it changed durable before the caller hears back. */
  private serial<T>(fn: () => Promise<T>, origin: StateOrigin = 'request'): Promise<T> {
    return this.changes.run(fn, origin);
  }

  /** The desired state as the store keeps it. */
  private desired(): Map<string, Map<string, unknown>> {
    return new Map<string, Map<string, unknown>>([
      [NS.tunnels, new Map([...this.tunnels].filter(([k]) => !this.meshTunnels.has(k)).map(([k, t]) => [k, tunnelRecord(t)]))],
      [NS.neighbours, new Map([...this.statics].filter(([k]) => !this.meshNeighbours.has(k)))],
      [NS.options, new Map([['options', { ...this.opts }]])],
    ]);
  }

  /** The desired state a previous ferry-control left (a restart starts from it). */
  private restore(state: DesiredStateStore): void {
    for (const [k, v] of state.entries(NS.tunnels)) this.tunnels.set(k, tunnelFromRecord(v as TunnelRecord));
    for (const [k, v] of state.entries(NS.neighbours)) this.statics.set(k, v as StaticNeighbour);
    const o = state.entries(NS.options).get('options') as Partial<SttOptionsView> | undefined;
    if (o) Object.assign(this.opts, o);
    if (this.tunnels.size || this.statics.size) this.log?.info(`desired state: ${this.tunnels.size} tunnels and ${this.statics.size} static neighbours from ${state.where}`);
  }

  // ---- tunnels -----------------------------------------------------------------------------
  /** The tunnel ports as flows name them (output:NAME or output:PORT). */
  ports(): { port_id: number; name: string }[] {
    return [...this.tunnels.values()].map((t) => ({ port_id: t.port, name: t.name }));
  }

  /** name -> port of every tunnel (the metrics' label). */
  byName(): [string, number][] {
    return [...this.tunnels.values()].sort((a, b) => a.port - b.port).map((t) => [t.name, t.port]);
  }

  private view(t: Tunnel): TunnelView {
    const seg = this.ferryd.ready ? this.ferryd.segment : null;
    const c = seg ? readTunnelPort(seg, t.port) : null;
    return {
      name: t.name,
      port: t.port,
      local_ip: `${formatIpv4(t.localIp)}/${t.localPlen}`,
      remote_ip: t.remoteIp === 'flow' ? 'flow' : formatIpv4(t.remoteIp),
      key: t.key === 'flow' ? 'flow' : t.key.toString(),
      dst_port: t.dstPort,
      underlay_port: t.underlayPort,
      underlay_mtu: t.underlayMtu,
      gateway: t.gateway ? formatIpv4(t.gateway) : null,
      tos: t.tos,
      ttl: t.ttl,
      stats: c && {
        rx_packets: c.rx_packets.toString(), rx_bytes: c.rx_bytes.toString(), tx_packets: c.tx_packets.toString(),
        tx_bytes: c.tx_bytes.toString(), rx_dropped: c.rx_dropped.toString(), tx_dropped: c.tx_dropped.toString(),
      },
    };
  }

  list(): TunnelView[] {
    return [...this.tunnels.values()].sort((a, b) => a.port - b.port).map((t) => this.view(t));
  }

  get(name: string): TunnelView {
    const t = this.tunnels.get(name);
    if (!t) throw notFound(`no tunnel "${name}"`);
    return this.view(t);
  }

  /** Checks what a body says on its own (addresses, key); the port is settled against ferryd later. */
  private parse(name: string, b: Omit<TunnelPutBody, 'name'>): Omit<Tunnel, 'port'> & { port?: number } {
    const local = localPrefix(b.local_ip, '/local_ip');
    const remoteIp = b.remote_ip === 'flow' ? 'flow' : unicastIpv4(b.remote_ip, '/remote_ip');
    const gateway = b.gateway === undefined ? null : unicastIpv4(b.gateway, '/gateway');
    if (remoteIp !== 'flow' && ipv4Number(remoteIp) === ipv4Number(local.ip)) throw badRequest('/remote_ip', 'must not be local_ip');
    if (gateway && ipv4Number(gateway) === ipv4Number(local.ip)) throw badRequest('/gateway', 'must not be local_ip');
    return {
      name,
      port: b.port,
      localIp: local.ip,
      localPlen: local.plen,
      remoteIp,
      key: parseKey(b.key ?? DEFAULTS.key, '/key'),
      dstPort: b.dst_port ?? DEFAULTS.dst_port,
      underlayPort: b.underlay_port,
      underlayMtu: b.underlay_mtu ?? DEFAULTS.underlay_mtu,
      gateway,
      tos: b.tos ?? DEFAULTS.tos,
      ttl: b.ttl ?? DEFAULTS.ttl,
    };
  }

  /** The port a tunnel gets (given, kept, or the lowest free one), checked against ferryd's ethdevs and the other tunnels. */
  private settle(chan: ControlChannel, spec: Omit<Tunnel, 'port'> & { port?: number }, keep?: number): Tunnel {
    const nPorts = chan.segment.info.nPorts;
    const ethdevs = chan.segment.snapshot().ports;
    const clash = ethdevs.find((p) => p.name === spec.name);
    if (clash) throw conflict('/name', `"${spec.name}" is the name of ethdev port ${clash.port_id}; a tunnel needs a name of its own`);
    if (spec.underlayPort >= nPorts) {
      throw badRequest('/underlay_port', `port ${spec.underlayPort} is not an ethdev (ferryd has ${nPorts}: ${ethdevs.map((p) => `${p.port_id} (${p.name})`).join(', ') || 'none'})`);
    }
    const owner = new Map([...this.tunnels.values()].filter((t) => t.name !== spec.name).map((t) => [t.port, t.name]));
    let port = spec.port ?? keep;
    if (port === undefined) {
      for (let p = nPorts; p < MAX_PORTS && port === undefined; p++) if (!owner.has(p)) port = p;
      if (port === undefined) throw conflict('/port', `every tunnel port (${nPorts}..${MAX_PORTS - 1}) is taken`);
    }
    if (port < nPorts) {
      throw badRequest('/port', `port ${port} is ethdev ${ethdevs[port]?.name ?? port}; tunnel ports are ${nPorts}..${MAX_PORTS - 1}`);
    }
    const other = owner.get(port);
    if (other !== undefined) throw conflict('/port', `port ${port} is used by tunnel "${other}"`);
    return { ...spec, port };
  }

  private async sendSet(chan: ControlChannel, t: Tunnel): Promise<void> {
    const r = await chan.request(MsgType.TUNNEL_SET, tunnelSetBody(tunnelConfig(t)));
    if (r.status !== Status.OK) throw refusal(r, tunnelPointer);
  }

  /** POST: creates a tunnel; the same name with the same configuration is a no-op (created false). */
  create(body: TunnelBody): Promise<{ created: boolean; tunnel: TunnelView }> {
    const spec = this.parse(body.name, body);
    return this.serial(async () => {
      const chan = this.ferryd.channel();
      const have = this.tunnels.get(spec.name);
      if (have && canonical({ ...spec, port: spec.port ?? have.port }) === canonical(have)) return { created: false, tunnel: this.view(have) };
      const t = this.settle(chan, spec, have?.port); // an invalid field or a taken port before "exists"
      if (have) throw conflict('/name', `tunnel "${spec.name}" exists with another configuration (PUT /v1/tunnels/${spec.name} replaces it)`);
      await this.sendSet(chan, t);
      this.tunnels.set(t.name, t);
      this.log?.info(`tunnel ${t.name} on port ${t.port} created`);
      return { created: true, tunnel: this.view(t) };
    });
  }

  /** PUT: creates the tunnel or replaces its configuration (a port left out stays the same). */
  put(name: string, body: TunnelPutBody): Promise<{ created: boolean; tunnel: TunnelView }> {
    if (body.name !== undefined && body.name !== name) throw badRequest('/name', `must be the path's name "${name}" (or left out)`);
    const spec = this.parse(name, body);
    return this.serial(async () => {
      const chan = this.ferryd.channel();
      const have = this.tunnels.get(name);
      const t = this.settle(chan, spec, have?.port);
      if (have && canonical(t) === canonical(have)) return { created: false, tunnel: this.view(have) };
      if (have && have.port !== t.port) {
        // moving: the old port goes first (never two ports taking the same traffic); it comes back if the new one is refused
        const d = await chan.request(MsgType.TUNNEL_DEL, tunnelDelBody(have.port));
        if (d.status !== Status.OK && d.status !== Status.ENOENT) throw refusal(d, () => undefined, `removing port ${have.port}`);
        try {
          await this.sendSet(chan, t);
        } catch (e) {
          await this.sendSet(chan, have).catch((e2: Error) => this.log?.warn(`tunnel ${name}: putting port ${have.port} back failed: ${e2.message}`));
          throw e;
        }
      } else {
        await this.sendSet(chan, t);
      }
      this.tunnels.set(name, t);
      this.log?.info(`tunnel ${name} on port ${t.port} ${have ? 'replaced' : 'created'}`);
      return { created: !have, tunnel: this.view(t) };
    });
  }

  delete(name: string): Promise<void> {
    return this.serial(async () => {
      const t = this.tunnels.get(name);
      if (!t) throw notFound(`no tunnel "${name}"`);
      const r = await this.ferryd.request(MsgType.TUNNEL_DEL, tunnelDelBody(t.port));
      // ENOENT: ferryd did not have it (it refused it at a replay); it leaves the desired state all the same
      if (r.status !== Status.OK && r.status !== Status.ENOENT) throw refusal(r, () => undefined);
      this.tunnels.delete(name);
      this.log?.info(`tunnel ${name} on port ${t.port} deleted`);
    });
  }

  // ---- neighbours --------------------------------------------------------------------------
  /** ferryd's neighbour table, every NEIGH_DUMP page of it. */
  async neighbours(): Promise<NeighbourView[]> {
    const out: NeighbourView[] = [];
    let cursor = 0;
    for (let pages = 1; ; pages++) {
      const entries: NeighbourView[] = [];
      let page: NeighPage | null = null;
      const { last } = await this.ferryd.requestParts(MsgType.NEIGH_DUMP, neighDumpBody(cursor), (part) => {
        if (part.status !== Status.OK) return; // the last part carries the refusal
        const p = readNeighPart(part);
        for (const e of p.entries) {
          entries.push({
            port: e.port, ip: formatIpv4(e.ip), mac: formatMac(e.mac), state: neighState(e.flags),
            static: (e.flags & NeighFlag.STATIC) !== 0, age_ms: e.age_ms,
          });
        }
        if (!part.more) page = p;
      });
      if (last.status !== Status.OK) throw refusal(last, () => undefined, 'NEIGH_DUMP');
      const end = page as NeighPage | null;
      if (!end) throw new Error('ferryd answered NEIGH_DUMP without a neigh_dump_resp');
      for (const e of entries) out.push(e);
      if (end.done) break;
      if (end.nextCursor === cursor || pages >= MAX_NEIGH_PAGES) {
        throw new FerrydStatusError(Status.EINTERNAL, 'EINTERNAL', `NEIGH_DUMP from cursor ${cursor} did not move on (next_cursor ${end.nextCursor})`);
      }
      cursor = end.nextCursor;
    }
    const ip = (s: string): number => ipv4Number(s.split('.').map(Number));
    return out.sort((a, b) => a.port - b.port || ip(a.ip) - ip(b.ip));
  }

  private neighTarget(port: number, ipText: string): { port: number; ip: number[]; key: string } {
    const ip = unicastIpv4(ipText, ':ip');
    return { port, ip, key: `${port}/${formatIpv4(ip)}` };
  }

  /** A static neighbour (replaces a learned one; kept and replayed). */
  setNeighbour(port: number, ipText: string, macText: string): Promise<NeighbourView> {
    const n = this.neighTarget(port, ipText);
    const mac = unicastMac(macText, '/mac');
    return this.serial(async () => {
      const chan = this.ferryd.channel();
      const nPorts = chan.segment.info.nPorts;
      if (port >= nPorts) throw badRequest(':port', `port ${port} is not an ethdev (ferryd has ${nPorts})`);
      const r = await chan.request(MsgType.NEIGH_SET, neighBody(port, n.ip, mac, NeighFlag.STATIC));
      if (r.status !== Status.OK) throw refusal(r, neighPointer);
      this.statics.set(n.key, { port, ip: n.ip, mac });
      return { port, ip: formatIpv4(n.ip), mac: formatMac(mac), state: 'reachable', static: true, age_ms: 0 };
    });
  }

  /** Removes a neighbour (static or learned); 404 when ferryd has none there and none is desired. */
  deleteNeighbour(port: number, ipText: string): Promise<void> {
    const n = this.neighTarget(port, ipText);
    return this.serial(async () => {
      const r = await this.ferryd.request(MsgType.NEIGH_DEL, neighBody(port, n.ip));
      const desired = this.statics.delete(n.key);
      if (r.status === Status.ENOENT && !desired) throw notFound(`no neighbour ${formatIpv4(n.ip)} on port ${port}`);
      if (r.status !== Status.OK && r.status !== Status.ENOENT) throw refusal(r, neighPointer);
    });
  }

  // ---- options -----------------------------------------------------------------------------
  options(): SttOptionsView {
    return { ...this.opts };
  }

  setOptions(body: SttOptionsBody): Promise<SttOptionsView> {
    return this.serial(async () => {
      const want: SttOptionsView = { ...this.opts };
      for (const k of Object.keys(OPTION_DEFAULTS) as (keyof SttOptionsView)[]) if (body[k] !== undefined) want[k] = body[k]!;
      const r = await this.ferryd.request(MsgType.STT_SET_OPTIONS, sttOptionsBody(want));
      if (r.status !== Status.OK) throw refusal(r, optionPointer);
      Object.assign(this.opts, want);
      return this.options();
    });
  }

  // ---- cluster mode ------------------------------------------------------------------------
  /**
   * Makes the desired tunnels, static neighbours and options these (null: leave that part), and
   * the mesh (the tunnels to the fleet's peers, mesh: null leaves it), ferryd following with only
   * what differs. A mesh tunnel keeps its port; a new one gets the lowest free port (it waits for
   * ferryd to know how many ethdevs there are). null while ferryd is not ready: nothing changed
   * (the caller tries again when it is).
   */
  reconcile(
    user: { tunnels: ReadonlyMap<string, unknown>; neighbours: ReadonlyMap<string, unknown>; options: unknown } | null,
    mesh: { tunnels: Omit<Tunnel, 'port'>[]; neighbours: StaticNeighbour[] } | null,
    origin: StateOrigin = 'cluster',
  ): Promise<{ changed: number; refused: string[] } | null> {
    return this.serial(async () => {
      if (!this.ferryd.ready) return null;
      const oldTunnels = new Map(this.tunnels);
      const oldStatics = new Map(this.statics);
      const oldOpts = JSON.stringify(this.opts);
      if (user) {
        for (const k of [...this.tunnels.keys()]) if (!this.meshTunnels.has(k)) this.tunnels.delete(k);
        for (const [k, v] of user.tunnels) if (!this.meshTunnels.has(k)) this.tunnels.set(k, tunnelFromRecord(v as TunnelRecord));
        for (const k of [...this.statics.keys()]) if (!this.meshNeighbours.has(k)) this.statics.delete(k);
        for (const [k, v] of user.neighbours) this.statics.set(k, v as StaticNeighbour);
        Object.assign(this.opts, OPTION_DEFAULTS, (user.options ?? {}) as Partial<SttOptionsView>);
      }
      const refused: string[] = [];
      if (mesh) {
        const seg = this.ferryd.segment;
        const nPorts = seg ? seg.info.nPorts : null;
        const wanted = new Set(mesh.tunnels.map((t) => t.name));
        for (const k of [...this.meshTunnels]) if (!wanted.has(k)) { this.tunnels.delete(k); this.meshTunnels.delete(k); }
        for (const t of mesh.tunnels) {
          const have = this.tunnels.get(t.name);
          if (have && !this.meshTunnels.has(t.name)) { refused.push(`mesh tunnel ${t.name}: a tunnel of that name is in the desired state`); continue; }
          let port = have?.port;
          if (port === undefined) {
            if (nPorts === null) continue; // the port is settled once ferryd is attached
            const used = new Set([...this.tunnels.values()].map((x) => x.port));
            for (let p = nPorts; p < MAX_PORTS && port === undefined; p++) if (!used.has(p)) port = p;
            if (port === undefined) { refused.push(`mesh tunnel ${t.name}: every tunnel port is taken`); continue; }
          }
          this.tunnels.set(t.name, { ...t, port });
          this.meshTunnels.add(t.name);
        }
        const wantedN = new Set(mesh.neighbours.map((n) => `${n.port}/${formatIpv4(n.ip)}`));
        for (const k of [...this.meshNeighbours]) if (!wantedN.has(k)) { this.statics.delete(k); this.meshNeighbours.delete(k); }
        for (const n of mesh.neighbours) {
          const k = `${n.port}/${formatIpv4(n.ip)}`;
          this.statics.set(k, n);
          this.meshNeighbours.add(k);
        }
      }
      // ferryd: what differs, ports in order (a tunnel moving to a port another leaves works out)
      const chan = this.ferryd.channel();
      const ops: Op[] = [];
      const at = (what: string): Where => ({ pointer: '', what });
      if (JSON.stringify(this.opts) !== oldOpts) ops.push({ spec: { type: MsgType.STT_SET_OPTIONS, body: sttOptionsBody(this.opts) }, at: at('STT options') });
      const oldByPort = new Map([...oldTunnels.values()].map((t) => [t.port, t]));
      const newByPort = new Map([...this.tunnels.values()].map((t) => [t.port, t]));
      for (const [port, t] of oldByPort) {
        if (!newByPort.has(port)) ops.push({ spec: { type: MsgType.TUNNEL_DEL, body: tunnelDelBody(port) }, at: at(`tunnel ${t.name} (port ${port})`), alsoOk: Status.ENOENT });
      }
      for (const [port, t] of newByPort) {
        const was = oldByPort.get(port);
        if (!was || canonical(was) !== canonical(t)) ops.push({ spec: { type: MsgType.TUNNEL_SET, body: tunnelSetBody(tunnelConfig(t)) }, at: at(`tunnel ${t.name} (port ${port})`) });
      }
      for (const [k, n] of oldStatics) {
        if (!this.statics.has(k)) ops.push({ spec: { type: MsgType.NEIGH_DEL, body: neighBody(n.port, n.ip) }, at: at(`neighbour ${k}`), alsoOk: Status.ENOENT });
      }
      for (const [k, n] of this.statics) {
        const was = oldStatics.get(k);
        if (!was || JSON.stringify(was) !== JSON.stringify(n)) ops.push({ spec: { type: MsgType.NEIGH_SET, body: neighBody(n.port, n.ip, n.mac, NeighFlag.STATIC) }, at: at(`neighbour ${k}`) });
      }
      for (const e of await this.send(chan, ops)) refused.push(e.message);
      for (const r of refused) this.log?.warn(`cluster: ${r}`);
      return { changed: ops.length, refused };
    }, origin);
  }

  /** The mesh tunnels by name (cluster mode). */
  meshTunnelNames(): string[] {
    return [...this.meshTunnels].sort();
  }

  // ---- a new ferryd ------------------------------------------------------------------------
  /** Sends ops in ring-sized groups (ferryd applies them in order); returns the refusals. */
  private async send(chan: ControlChannel, ops: Op[]): Promise<FerrydStatusError[]> {
    const refused: FerrydStatusError[] = [];
    await chan.requestInGroups(ops.map((o) => o.spec), CHUNK, (a, first) => a.refused.forEach((r, j) => {
      const op = ops[first + j]!;
      if (r.status !== op.alsoOk) refused.push(refusal(r, () => undefined, op.at.what));
    }));
    return refused;
  }

  /**
   * Gives a freshly attached ferryd the STT options, its tunnel ports exactly as desired (every other
   * tunnel port deleted: a ferryd that outlived a previous ferry-control keeps nothing stale; this runs
   * before the flow table's replay, which comes after every replay step) and the static neighbours.
   * Refusals are logged and skipped; a ferryd that does not answer fails the replay, which the
   * connection manager retries.
   */
  async replay(chan: ControlChannel): Promise<void> {
    const at = (what: string): Where => ({ pointer: '', what });
    const o = await chan.request(MsgType.STT_SET_OPTIONS, sttOptionsBody(this.opts));
    if (o.status === Status.EUNSUPPORTED) { // a ferryd built or started without tunnels: nothing more to tell it
      const msg = `replay: ferryd does not do tunnels (${o.message}); ${this.tunnels.size} tunnels and ${this.statics.size} static neighbours not given`;
      if (this.tunnels.size || this.statics.size) this.log?.warn(msg);
      return;
    }
    if (o.status !== Status.OK) this.log?.warn(`replay: ${refusal(o, () => undefined, 'STT options').message}`);
    const ops: Op[] = [];
    const byPort = new Map([...this.tunnels.values()].map((t) => [t.port, t]));
    const nPorts = chan.segment.info.nPorts;
    const ports = [...[...byPort.keys()].filter((p) => p < nPorts).sort((a, b) => a - b), ...Array.from({ length: MAX_PORTS - nPorts }, (_, i) => nPorts + i)];
    for (const port of ports) { // a tunnel on what is now an ethdev is sent all the same: ferryd's refusal is logged
      const t = byPort.get(port);
      ops.push(t
        ? { spec: { type: MsgType.TUNNEL_SET, body: tunnelSetBody(tunnelConfig(t)) }, at: at(`tunnel ${t.name} (port ${t.port})`) }
        : { spec: { type: MsgType.TUNNEL_DEL, body: tunnelDelBody(port) }, at: at(`clearing tunnel port ${port}`), alsoOk: Status.ENOENT });
    }
    for (const n of this.statics.values()) {
      ops.push({ spec: { type: MsgType.NEIGH_SET, body: neighBody(n.port, n.ip, n.mac, NeighFlag.STATIC) }, at: at(`neighbour ${formatIpv4(n.ip)} on port ${n.port}`) });
    }
    const refused = await this.send(chan, ops);
    for (const e of refused) this.log?.warn(`replay: ${e.message}`);
    if (this.tunnels.size || this.statics.size) {
      this.log?.info(`replayed ${this.tunnels.size} tunnels and ${this.statics.size} static neighbours to ferryd (${refused.length} refused)`);
    }
  }
}
