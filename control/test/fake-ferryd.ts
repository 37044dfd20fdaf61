// A stand-in for ferryd in tests: a real POSIX shm segment laid out as ferryd lays it out
// (with the generated writers), a responder on the request ring, a heartbeat, and ways to die.
// The ring side here is written independently of control/src/shm/ring.ts on purpose.
import * as fs from 'node:fs';
import { spawn, ChildProcess } from 'node:child_process';
import {
  ABI_VERSION, LAYOUT_HASH, SHM_MAGIC, SHM_HEADER, RING_CTL, MSG_HDR, FLOW_ADD, FLOW_DEL, RESPONSE, FLOW_KEY,
  PORT_INFO, PORT_HW_STATS, WORKER_STATS, WORKER_PORT_STATS, FLOW_STATS, TABLE_STATS, N_TABLES, ACT_HDR, ACT_OUTPUT,
  ACT_GOTO_TABLE, EVENT_HDR, EVENT_FLOW_REMOVED, EVENT_PACKET_IN, PACKET_IN_DATA,
  MSG_SLOT_SIZE, EVENT_SLOT_SIZE, REQ_RING_SLOTS, RESP_RING_SLOTS, EVENT_RING_SLOTS, PORT_IN_PORT,
  DpState, MsgType, MsgFlag, Status, ActionType, EventType,
  writeShmHeader, writeRingCtl, writePortInfo, writePortHwStats, writeResponse, writeMsgHdr, writeFlowStats,
  writeEventHdr, writeEventFlowRemoved, readMsgHdr, PortHwStats, WorkerPortStats,
} from '../src/gen/proto';
import { shmOpen, mapShared } from '../src/shm/libc';
import { FakeConntrack } from './fake-conntrack';
import { FakeTunnels } from './fake-tunnels';

const up = (n: number, a = 64): number => Math.ceil(n / a) * a;

/** The single u64 worker counters a test may set (setWorker). */
const WORKER_U64S = [
  'busy_cycles', 'idle_cycles', 'ct_packets', 'ct_created', 'ct_limit_refused', 'ct_early_drops',
  'ct_nat_created', 'ct_nat_exhausted', 'ct_nat_rewrites', 'ct_nat_rewrite_errors', 'ct_exp_created', 'ct_exp_matched',
] as const;
export type WorkerCounters = Partial<Record<(typeof WORKER_U64S)[number], bigint>> & { drops?: bigint[] };
const R = RING_CTL.fields;

export interface FakeOptions {
  name: string;
  ports?: string[];
  nWorkers?: number;
  maxFlows?: number;
  abiVersion?: number;
  layoutHash?: bigint;
  magic?: bigint;
  mode?: number;
  /** 'auto' answers every request; 'manual' records them for respond(); 'paused' does not consume the ring. */
  respond?: 'auto' | 'manual' | 'paused';
  state?: number;
}

export interface ReceivedRequest {
  type: number;
  flags: number;
  len: number;
  reqId: bigint;
  /** FLOW_ADD / FLOW_DEL: the flow id */
  id?: bigint;
  /** FLOW_ADD: table_id, priority, cookie */
  table?: number;
  priority?: number;
  cookie?: bigint;
  /** FLOW_ADD: what ferryd's validation said (null = fine) */
  verdict?: { status: number; message: string } | null;
  /** a copy of the body (unless recordBodies is off) */
  body?: Buffer;
}

/** A flow ferryd holds (committed). */
export interface FakeFlow {
  slot: number;
  table: number;
  priority: number;
  cookie: bigint;
  /** the FLOW_ADD body it came with (unless recordBodies is off) */
  body?: Buffer;
}

/** What a test can make ferryd answer for a request instead (null = validate normally). */
export type Rejecter = (r: ReceivedRequest) => { status: number; message: string } | null;

interface Staged { r: ReceivedRequest; ok: boolean; slot: number }

interface Region { reqRing: number; respRing: number; eventRing: number; portInfo: number; portHw: number; workers: number; flowStats: number; tableStats: number; size: number }

export function computeLayout(nPorts: number, nWorkers: number, maxFlows: number): Region {
  let off = up(SHM_HEADER.size);
  const ring = (slots: number, slotSize: number): number => {
    const at = off;
    off = up(at + up(RING_CTL.size) + slots * slotSize);
    return at;
  };
  const reqRing = ring(REQ_RING_SLOTS, MSG_SLOT_SIZE);
  const respRing = ring(RESP_RING_SLOTS, MSG_SLOT_SIZE);
  const eventRing = ring(EVENT_RING_SLOTS, EVENT_SLOT_SIZE);
  const region = (len: number): number => {
    const at = off;
    off = up(at + len);
    return at;
  };
  const portInfo = region(nPorts * PORT_INFO.size);
  const portHw = region(nPorts * PORT_HW_STATS.size);
  const workers = region(nWorkers * WORKER_STATS.size);
  const flowStats = region(nWorkers * maxFlows * FLOW_STATS.size);
  const tableStats = region(nWorkers * N_TABLES * TABLE_STATS.size);
  return { reqRing, respRing, eventRing, portInfo, portHw, workers, flowStats, tableStats, size: up(off, 4096) };
}

export class FakeFerryd {
  readonly name: string;
  readonly opts: Required<FakeOptions>;
  buf!: Buffer;
  dv!: DataView;
  u32!: Uint32Array;
  layout!: Region;
  respondMode: 'auto' | 'manual' | 'paused';
  readonly received: ReceivedRequest[] = [];
  /** Flows ferryd holds (visible to the workers), by id. */
  readonly flows = new Map<bigint, FakeFlow>();
  /** The open bundle's staged requests. */
  staged: Staged[] = [];
  /** Bundles committed / rolled back / aborted. */
  readonly bundleStats = { committed: 0, rolledBack: 0, aborted: 0 };
  /** Keep FLOW_ADD/FLOW_DEL requests (with bodies) in received; off for bulk loads, which only count them. */
  recordBodies = true;
  /** FLOW_ADD/FLOW_DEL requests not kept because recordBodies is off */
  bulkReceived = 0;
  /** Optional: refuse some requests with a status of the test's choosing. */
  rejecter: Rejecter | null = null;
  /** The connection tracker (CT_* requests, ct header counters, CT events). */
  readonly ct = new FakeConntrack(this);
  /** Tunnels, neighbours and STT options (TUNNEL_*, NEIGH_*, STT_SET_OPTIONS). */
  readonly tun = new FakeTunnels(this);
  private freeSlots: number[] = [];
  private nextSlot = 0;
  private eventSeq = 0n;
  private sleeper: ChildProcess | null = null;
  private loop: NodeJS.Timeout | null = null;
  private beat: NodeJS.Timeout | null = null;
  private heartbeat = 0n;

  constructor(opts: FakeOptions) {
    this.name = opts.name.replace(/^\//, '');
    this.opts = {
      name: this.name,
      ports: opts.ports ?? ['eth0', 'eth1'],
      nWorkers: opts.nWorkers ?? 2,
      maxFlows: opts.maxFlows ?? 1024,
      abiVersion: opts.abiVersion ?? ABI_VERSION,
      layoutHash: opts.layoutHash ?? LAYOUT_HASH,
      magic: opts.magic ?? SHM_MAGIC,
      mode: opts.mode ?? 0o600,
      respond: opts.respond ?? 'auto',
      state: opts.state ?? DpState.RUNNING,
    };
    this.respondMode = this.opts.respond;
  }

  get path(): string {
    return `/dev/shm/${this.name}`;
  }

  /** ferryd's pid: a real child process, so that killing it is a real death. */
  get pid(): number {
    return this.sleeper?.pid ?? 0;
  }

  /** Creates the segment (a new file, hence a new inode) and starts answering and heartbeating. */
  start(): this {
    this.sleeper = spawn('sleep', ['600'], { stdio: 'ignore' });
    this.sleeper.unref();
    const { ports, nWorkers, maxFlows } = this.opts;
    this.layout = computeLayout(ports.length, nWorkers, maxFlows);
    const L = this.layout;
    try { fs.unlinkSync(this.path); } catch { /* none */ }
    const fd0 = fs.openSync(this.path, 'wx', 0o600);
    fs.ftruncateSync(fd0, L.size);
    fs.fchmodSync(fd0, this.opts.mode);
    fs.closeSync(fd0);
    const fd = shmOpen(this.name, true);
    this.buf = mapShared(fd, L.size);
    fs.closeSync(fd);
    this.dv = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
    this.u32 = new Uint32Array(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength >>> 2);

    const ring = (off: number, slots: number, slotSize: number): void =>
      writeRingCtl(this.dv, off, { head: 0, full_events: 0, tail: 0, slots, slot_size: slotSize, slots_off: up(RING_CTL.size) });
    ring(L.reqRing, REQ_RING_SLOTS, MSG_SLOT_SIZE);
    ring(L.respRing, RESP_RING_SLOTS, MSG_SLOT_SIZE);
    ring(L.eventRing, EVENT_RING_SLOTS, EVENT_SLOT_SIZE);
    ports.forEach((name, p) => writePortInfo(this.dv, L.portInfo + p * PORT_INFO.size, {
      seq: 2, port_id: p, socket_id: 0, name, driver: 'net_fake', mac: [0x02, 0, 0, 0, 0, p], link_up: 1,
      link_full_duplex: 1, link_speed_mbps: 10000, mtu: 1500, n_rxq: nWorkers, n_txq: nWorkers, nb_rxd: 1024, nb_txd: 1024,
      rss: 1, promiscuous: 1,
    }));
    for (let w = 0; w < nWorkers; w++) this.dv.setUint32(L.workers + w * WORKER_STATS.size + WORKER_STATS.fields.lcore_id.offset, w + 1, true);
    const now = process.hrtime.bigint();
    writeShmHeader(this.dv, 0, {
      magic: 0n, abi_version: this.opts.abiVersion, header_size: SHM_HEADER.size, layout_hash: this.opts.layoutHash,
      segment_size: BigInt(L.size), pid: this.pid, state: this.opts.state, heartbeat: 0n, heartbeat_ns: now, start_ns: now,
      tsc_hz: 2_000_000_000n, n_ports: ports.length, n_workers: nWorkers, max_flows: maxFlows, housekeeping_us: 100_000,
      req_ring_off: BigInt(L.reqRing), resp_ring_off: BigInt(L.respRing), event_ring_off: BigInt(L.eventRing),
      port_info_off: BigInt(L.portInfo), port_hw_stats_off: BigInt(L.portHw), worker_stats_off: BigInt(L.workers),
      flow_stats_off: BigInt(L.flowStats), table_stats_off: BigInt(L.tableStats), flows_active: 0, flows_generation: 0,
      visible_version: 0n, ct_conns: 0n, ct_max_conns: 0n, ct_expired: 0n, ct_flushed: 0n, ct_events_dropped: 0n, ct_sweeps: 0n,
      ct_expectations: 0n, ct_exp_expired: 0n,
      mbufs_total: 8192n, mbufs_available: 8000n,
    });
    this.ct.reset();
    this.tun.reset();
    this.dv.setBigUint64(SHM_HEADER.fields.magic.offset, this.opts.magic, true); // magic last, as ferryd does
    this.flows.clear();
    this.staged = [];
    this.stagedState.clear();
    this.freeSlots = [];
    this.nextSlot = 0;
    this.eventSeq = 0n;
    this.loop = setInterval(() => this.serve(), 1);
    this.startHeartbeat();
    return this;
  }

  startHeartbeat(): void {
    if (this.beat) return;
    const tick = (): void => {
      this.heartbeat++;
      this.dv.setBigUint64(SHM_HEADER.fields.heartbeat.offset, this.heartbeat, true);
      this.dv.setBigUint64(SHM_HEADER.fields.heartbeat_ns.offset, process.hrtime.bigint(), true);
    };
    tick();
    this.beat = setInterval(tick, 50);
  }

  stopHeartbeat(): void {
    if (this.beat) clearInterval(this.beat);
    this.beat = null;
  }

  setState(state: number): void {
    this.dv.setUint32(SHM_HEADER.fields.state.offset, state, true);
  }

  /** Kills the pid ferryd's header names (the segment stays, like a crashed ferryd's). */
  async die(): Promise<void> {
    this.stopLoops();
    const s = this.sleeper;
    if (s && s.exitCode === null && s.signalCode === null) {
      const exited = new Promise((r) => s.once('exit', r));
      s.ref(); // keep the loop alive until the exit is seen
      s.kill('SIGKILL');
      await exited;
    }
  }

  private stopLoops(): void {
    if (this.loop) clearInterval(this.loop);
    this.loop = null;
    this.stopHeartbeat();
  }

  /** Stops everything and unlinks the segment (our mapping stays valid). */
  async stop(): Promise<void> {
    await this.die();
    try { fs.unlinkSync(this.path); } catch { /* gone */ }
  }

  /** Like a ferryd restart under the same name: a new segment, a new pid, no flows. */
  async restart(): Promise<void> {
    await this.stop();
    this.received.length = 0;
    this.start();
  }

  // ---- rings (independent implementation) --------------------------------------------------
  private idx(ringOff: number, field: 'head' | 'tail' | 'full_events'): number {
    return (ringOff + R[field].offset) >>> 2;
  }

  private slotOff(ringOff: number, i: number): number {
    const slots = this.dv.getUint32(ringOff + R.slots.offset, true);
    const size = this.dv.getUint32(ringOff + R.slot_size.offset, true);
    const base = ringOff + this.dv.getUint32(ringOff + R.slots_off.offset, true);
    return base + ((i >>> 0) % slots) * size;
  }

  reqHead(): number { return Atomics.load(this.u32, this.idx(this.layout.reqRing, 'head')); }
  reqTail(): number { return Atomics.load(this.u32, this.idx(this.layout.reqRing, 'tail')); }

  /** Consumes every request now; answers them if respondMode is 'auto'. */
  serve(): number {
    if (this.respondMode === 'paused') return 0;
    const ring = this.layout.reqRing;
    const head = Atomics.load(this.u32, this.idx(ring, 'head'));
    let tail = this.u32[this.idx(ring, 'tail')]!;
    const batch: ReceivedRequest[] = [];
    while (tail !== head) {
      const off = this.slotOff(ring, tail);
      const H = MSG_HDR.fields;
      const h = { type: this.dv.getUint16(off + H.type.offset, true), flags: this.dv.getUint16(off + H.flags.offset, true), len: this.dv.getUint32(off + H.len.offset, true), req_id: this.dv.getBigUint64(off + H.req_id.offset, true) };
      const b = off + MSG_HDR.size;
      const r: ReceivedRequest = { type: h.type, flags: h.flags, len: h.len, reqId: h.req_id };
      if ((h.type === MsgType.FLOW_ADD && h.len >= FLOW_ADD.size) || (h.type === MsgType.FLOW_DEL && h.len >= FLOW_DEL.size)) {
        r.id = this.dv.getBigUint64(b, true);
      }
      if (h.type === MsgType.FLOW_ADD && h.len >= FLOW_ADD.size) {
        r.table = this.dv.getUint8(b + FLOW_ADD.fields.table_id.offset);
        r.priority = this.dv.getUint16(b + FLOW_ADD.fields.priority.offset, true);
        r.cookie = this.dv.getBigUint64(b + FLOW_ADD.fields.cookie.offset, true);
        r.verdict = this.validateAdd(b);
      }
      if (this.recordBodies) r.body = Buffer.from(this.buf.subarray(b, b + Math.min(h.len, MSG_SLOT_SIZE - MSG_HDR.size)));
      batch.push(r);
      tail = (tail + 1) >>> 0;
    }
    Atomics.store(this.u32, this.idx(ring, 'tail'), tail);
    for (const r of batch) {
      if (this.recordBodies || (r.type !== MsgType.FLOW_ADD && r.type !== MsgType.FLOW_DEL)) this.received.push(r);
      else this.bulkReceived++;
    }
    if (this.respondMode === 'auto') for (const r of batch) this.answer(r);
    return batch.length;
  }

  /** The FLOW_ADD bodies received (last one last). */
  flowAdds(): Buffer[] {
    return this.received.filter((r) => r.type === MsgType.FLOW_ADD && r.body).map((r) => r.body!);
  }

  /** ferryd's checks of a FLOW_ADD (as the real one does them): tables, ports in the match and in actions. */
  private validateAdd(base: number): { status: number; message: string } | null {
    const F0 = FLOW_ADD.fields;
    const dv = this.dv;
    const F = {
      table_id: { offset: base + F0.table_id.offset }, mask: { offset: base + F0.mask.offset }, key: { offset: base + F0.key.offset },
      actions_len: { offset: base + F0.actions_len.offset }, actions: { offset: base + F0.actions.offset },
    };
    const table = dv.getUint8(F.table_id.offset);
    if (table >= N_TABLES) return { status: Status.ENOTABLE, message: `table ${table} does not exist` };
    const portOk = (p: number): boolean => p < this.opts.ports.length || this.tun.tunnels.has(p);
    const inPortMask = dv.getUint32(F.mask.offset + FLOW_KEY.fields.in_port.offset, true);
    const inPort = dv.getUint32(F.key.offset + FLOW_KEY.fields.in_port.offset, true);
    if (inPortMask && !portOk(inPort)) return { status: Status.ENOPORT, message: `match: in_port ${inPort} does not exist` };
    const len = dv.getUint16(F.actions_len.offset, true);
    let at = 0;
    for (let i = 0; at < len; i++) {
      const o = F.actions.offset + at;
      const type = dv.getUint16(o + ACT_HDR.fields.type.offset, true);
      const alen = dv.getUint16(o + ACT_HDR.fields.len.offset, true);
      if (alen < 8 || alen % 8 || at + alen > len) return { status: Status.EINVAL, message: `actions[${i}]: bad length ${alen}` };
      if (type === ActionType.OUTPUT) {
        const p = dv.getUint32(o + ACT_OUTPUT.fields.port.offset, true);
        if (p !== PORT_IN_PORT && !portOk(p)) return { status: Status.ENOPORT, message: `actions[${i}]: output port ${p} does not exist` };
      }
      if (type === ActionType.GOTO_TABLE && dv.getUint8(o + ACT_GOTO_TABLE.fields.table_id.offset) <= table) {
        return { status: Status.EINVAL, message: `actions[${i}]: goto_table must go forward` };
      }
      at += alen;
    }
    return null;
  }

  /** The open bundle's view: id -> exists after the staged requests (and the slot a staged add got). */
  private stagedState = new Map<bigint, { exists: boolean; slot?: number }>();
  /** A bundled FLOW_CLEAR was staged: the commit drops every flow the bundle did not add. */
  private sweep = false;

  private slotFor(id: bigint): number {
    const have = this.flows.get(id);
    if (have) return have.slot;
    const staged = this.stagedState.get(id);
    if (staged?.slot !== undefined) return staged.slot;
    return this.freeSlots.pop() ?? this.nextSlot++;
  }

  private flowOf(r: ReceivedRequest, slot: number): FakeFlow {
    return { slot, table: r.table!, priority: r.priority!, cookie: r.cookie!, body: r.body };
  }

  /** Whether id exists once the staged requests so far are applied. */
  private existsStaged(id: bigint): boolean {
    return this.stagedState.get(id)?.exists ?? this.flows.has(id);
  }

  private stage(r: ReceivedRequest, ok: boolean, slot: number): void {
    this.staged.push({ r, ok, slot });
    if (!ok) return;
    const prev = this.stagedState.get(r.id!);
    if (r.type === MsgType.FLOW_ADD) this.stagedState.set(r.id!, { exists: true, slot });
    else this.stagedState.set(r.id!, { exists: false, slot: prev?.slot });
  }

  private answer(r: ReceivedRequest): void {
    const forced = this.rejecter?.(r) ?? null;
    const inBundle = (r.flags & MsgFlag.IN_BUNDLE) !== 0;
    switch (r.type) {
      case MsgType.PING:
        this.respond(r.reqId, Status.OK);
        return;
      case MsgType.FLOW_ADD: {
        const bad = forced ?? r.verdict ?? null;
        const slot = bad ? 0 : this.slotFor(r.id!);
        if (inBundle) {
          this.stage(r, !bad, slot);
        } else if (!bad) {
          this.flows.set(r.id!, this.flowOf(r, slot));
          this.publishFlowCount();
        }
        this.respond(r.reqId, bad ? bad.status : Status.OK, slot, bad?.message ?? '');
        return;
      }
      case MsgType.FLOW_DEL: {
        const bad = forced ?? (this.existsStaged(r.id!) ? null : { status: Status.ENOENT, message: 'no such flow' });
        if (inBundle) {
          this.stage(r, !bad, 0);
        } else if (!bad) {
          this.dropFlow(r.id!);
          this.publishFlowCount();
        }
        this.respond(r.reqId, bad ? bad.status : Status.OK, 0, bad?.message ?? '');
        return;
      }
      case MsgType.FLOW_CLEAR:
        if (inBundle) { // the bundle replaces the table at commit (ferryd's sweeping bundle)
          this.sweep = true;
          this.respond(r.reqId, Status.OK);
          return;
        }
        for (const id of [...this.flows.keys()]) this.dropFlow(id);
        this.publishFlowCount();
        this.respond(r.reqId, Status.OK);
        return;
      case MsgType.BUNDLE_COMMIT: {
        const staged = this.staged;
        const sweep = this.sweep;
        this.staged = [];
        this.stagedState.clear();
        this.sweep = false;
        const failed = staged.filter((s) => !s.ok).length;
        if (failed) {
          this.bundleStats.rolledBack++;
          this.respond(r.reqId, Status.EBUNDLE, 0, `${failed} of ${staged.length} staged requests failed; bundle rolled back`);
          return;
        }
        if (sweep) {
          const added = new Set(staged.filter((s) => s.r.type === MsgType.FLOW_ADD).map((s) => s.r.id!));
          for (const id of [...this.flows.keys()]) if (!added.has(id)) this.dropFlow(id);
        }
        for (const s of staged) {
          if (s.r.type === MsgType.FLOW_ADD) this.flows.set(s.r.id!, this.flowOf(s.r, s.slot));
          else this.dropFlow(s.r.id!);
        }
        this.bundleStats.committed++;
        this.publishFlowCount();
        this.respond(r.reqId, Status.OK);
        return;
      }
      case MsgType.BUNDLE_ABORT:
        this.sweep = false;
        this.staged = [];
        this.stagedState.clear();
        this.bundleStats.aborted++;
        this.respond(r.reqId, Status.OK);
        return;
      default:
        if (forced) {
          this.respond(r.reqId, forced.status, 0, forced.message);
          return;
        }
        if (this.ct.answer(r)) return;
        if (this.tun.answer(r)) return;
        this.respond(r.reqId, Status.EUNSUPPORTED, 0, `unknown request type ${r.type}`);
    }
  }

  private dropFlow(id: bigint): void {
    const f = this.flows.get(id);
    if (!f) return;
    this.flows.delete(id);
    this.freeSlots.push(f.slot);
  }

  /** Times a flow out as ferryd does: removes it and posts FLOW_REMOVED. */
  expireFlow(id: bigint, reason = 0): boolean {
    const f = this.flows.get(id);
    if (!f) return false;
    this.dropFlow(id);
    this.publishFlowCount();
    return this.postEvent(EventType.FLOW_REMOVED, EVENT_FLOW_REMOVED.size, (dv, b) => writeEventFlowRemoved(dv, b, {
      id, cookie: f.cookie, packets: 0n, bytes: 0n, duration_ns: 1_000_000_000n, reason, table_id: f.table,
      priority: f.priority, pad0: 0,
    }));
  }

  /** Posts a PACKET_IN event. */
  postPacketIn(p: { inPort: number; table: number; cookie: bigint; reason: number; data: Buffer; totalLen?: number }): boolean {
    const P = EVENT_PACKET_IN.fields;
    return this.postEvent(EventType.PACKET_IN, EVENT_PACKET_IN.size, (dv, b) => {
      dv.setBigUint64(b + P.cookie.offset, p.cookie, true);
      dv.setUint32(b + P.in_port.offset, p.inPort, true);
      dv.setUint32(b + P.total_len.offset, p.totalLen ?? p.data.length, true);
      dv.setUint8(b + P.table_id.offset, p.table);
      dv.setUint8(b + P.reason.offset, p.reason);
      const n = Math.min(p.data.length, PACKET_IN_DATA);
      dv.setUint16(b + P.data_len.offset, n, true);
      this.buf.set(p.data.subarray(0, n), b + P.data.offset);
    });
  }

  /** Writes an event record (event_hdr + body) on the event ring; false if full. */
  postEvent(type: number, len: number, body: (dv: DataView, bodyOff: number) => void): boolean {
    const ring = this.layout.eventRing;
    const slots = this.dv.getUint32(ring + R.slots.offset, true);
    const head = this.u32[this.idx(ring, 'head')]!;
    if (((head - Atomics.load(this.u32, this.idx(ring, 'tail'))) >>> 0) >= slots) return false;
    const off = this.slotOff(ring, head);
    this.buf.fill(0, off, off + EVENT_SLOT_SIZE);
    writeEventHdr(this.dv, off, { type, flags: 0, len, seq: ++this.eventSeq, time_ns: process.hrtime.bigint() });
    body(this.dv, off + EVENT_HDR.size);
    Atomics.store(this.u32, this.idx(ring, 'head'), (head + 1) >>> 0);
    return true;
  }

  private publishFlowCount(): void {
    this.dv.setUint32(SHM_HEADER.fields.flows_active.offset, this.flows.size, true);
    const g = SHM_HEADER.fields.flows_generation.offset;
    this.dv.setUint32(g, this.dv.getUint32(g, true) + 1, true);
  }

  /** Free slots in the response ring. */
  responseRoom(): number {
    const ring = this.layout.respRing;
    const slots = this.dv.getUint32(ring + R.slots.offset, true);
    return slots - ((this.u32[this.idx(ring, 'head')]! - Atomics.load(this.u32, this.idx(ring, 'tail'))) >>> 0);
  }

  /**
   * Posts a response record with a payload after the response struct (CT_DUMP, CT_STATS) and msg_hdr
   * flags (MORE); false if the response ring is full.
   */
  respondPart(reqId: bigint, r: { status: number; flags?: number; value?: bigint; message?: string; payloadLen?: number; payload?: (dv: DataView, off: number) => void }): boolean {
    const ring = this.layout.respRing;
    if (this.responseRoom() <= 0) {
      const fi = this.idx(ring, 'full_events');
      this.u32[fi] = this.u32[fi]! + 1;
      return false;
    }
    const head = this.u32[this.idx(ring, 'head')]!;
    const off = this.slotOff(ring, head);
    this.buf.fill(0, off, off + MSG_SLOT_SIZE);
    const payloadLen = r.payload ? r.payloadLen ?? 0 : 0;
    writeMsgHdr(this.dv, off, { type: MsgType.RESPONSE, flags: r.flags ?? 0, len: RESPONSE.size + payloadLen, req_id: reqId });
    writeResponse(this.dv, off + MSG_HDR.size, { status: r.status, aux: 0, value: r.value ?? 0n, message: r.message ?? '' });
    r.payload?.(this.dv, off + MSG_HDR.size + RESPONSE.size);
    Atomics.store(this.u32, this.idx(ring, 'head'), (head + 1) >>> 0);
    return true;
  }

  /** Posts a response record; false if the response ring is full. */
  respond(reqId: bigint, status: number, aux = 0, message = '', value = 0n): boolean {
    const ring = this.layout.respRing;
    const slots = this.dv.getUint32(ring + R.slots.offset, true);
    const head = this.u32[this.idx(ring, 'head')]!;
    if (((head - Atomics.load(this.u32, this.idx(ring, 'tail'))) >>> 0) >= slots) {
      const fi = this.idx(ring, 'full_events');
      this.u32[fi] = this.u32[fi]! + 1;
      return false;
    }
    const off = this.slotOff(ring, head);
    writeMsgHdr(this.dv, off, { type: MsgType.RESPONSE, flags: 0, len: RESPONSE.size, req_id: reqId });
    if (message === '') { // the common case, without string encoding
      const b = off + MSG_HDR.size;
      this.dv.setUint32(b + RESPONSE.fields.status.offset, status, true);
      this.dv.setUint32(b + RESPONSE.fields.aux.offset, aux, true);
      this.dv.setBigUint64(b + RESPONSE.fields.value.offset, value, true);
      this.dv.setUint8(b + RESPONSE.fields.message.offset, 0);
    } else {
      writeResponse(this.dv, off + MSG_HDR.size, { status, aux, value, message });
    }
    Atomics.store(this.u32, this.idx(ring, 'head'), (head + 1) >>> 0);
    return true;
  }

  // ---- statistics --------------------------------------------------------------------------
  setWorkerPort(worker: number, port: number, c: Partial<WorkerPortStats>): void {
    const base = this.layout.workers + worker * WORKER_STATS.size + WORKER_STATS.fields.ports.offset + port * WORKER_PORT_STATS.size;
    for (const [k, v] of Object.entries(c)) {
      this.dv.setBigUint64(base + WORKER_PORT_STATS.fields[k as keyof WorkerPortStats].offset, v, true);
    }
  }

  setWorker(worker: number, c: WorkerCounters): void {
    const base = this.layout.workers + worker * WORKER_STATS.size;
    const F = WORKER_STATS.fields;
    for (const k of WORKER_U64S) {
      const v = c[k];
      if (v !== undefined) this.dv.setBigUint64(base + F[k].offset, v, true);
    }
    c.drops?.forEach((d, i) => this.dv.setBigUint64(base + F.drops.offset + i * 8, d, true));
  }

  /** Writes a port's hw stats under the seqlock. */
  setHwStats(port: number, s: Partial<Omit<PortHwStats, 'seq' | 'pad0'>>): void {
    const off = this.layout.portHw + port * PORT_HW_STATS.size;
    const i = off >>> 2;
    const seq = this.u32[i]!;
    Atomics.store(this.u32, i, seq + 1);
    writePortHwStats(this.dv, off, {
      seq: seq + 1, pad0: 0, updated_ns: process.hrtime.bigint(), ipackets: 0n, opackets: 0n, ibytes: 0n, obytes: 0n,
      imissed: 0n, ierrors: 0n, oerrors: 0n, rx_nombuf: 0n, ...s,
    });
    Atomics.store(this.u32, i, seq + 2);
  }

  /** Holds a port's hw stats seqlock odd (a writer in the middle of an update). */
  holdHwSeqlock(port: number): () => void {
    const i = (this.layout.portHw + port * PORT_HW_STATS.size) >>> 2;
    const seq = this.u32[i]!;
    Atomics.store(this.u32, i, seq | 1);
    return () => Atomics.store(this.u32, i, (seq | 1) + 1);
  }

  setFlowStats(worker: number, slot: number, packets: bigint, bytes: bigint, lastHitNs = 0n): void {
    const off = this.layout.flowStats + (worker * this.opts.maxFlows + slot) * FLOW_STATS.size;
    writeFlowStats(this.dv, off, { packets, bytes, last_hit_ns: lastHitNs, pad0: 0n });
  }
}

let counter = 0;
/** A segment name unique to this test process. */
export function uniqueName(tag: string): string {
  return `ferry-test-${tag}-${process.pid}-${++counter}`;
}
