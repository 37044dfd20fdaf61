// A stand-in for ferryd in tests: a real POSIX shm segment laid out as ferryd lays it out
// (with the generated writers), a responder on the request ring, a heartbeat, and ways to die.
// The ring side here is written independently of control/src/shm/ring.ts on purpose.
import * as fs from 'node:fs';
import { spawn, ChildProcess } from 'node:child_process';
import {
  ABI_VERSION, LAYOUT_HASH, SHM_MAGIC, SHM_HEADER, RING_CTL, MSG_HDR, FLOW_ADD, FLOW_DEL, RESPONSE,
  PORT_INFO, PORT_HW_STATS, WORKER_STATS, WORKER_PORT_STATS, FLOW_STATS,
  MSG_SLOT_SIZE, EVENT_SLOT_SIZE, REQ_RING_SLOTS, RESP_RING_SLOTS, EVENT_RING_SLOTS, PORT_ANY,
  DpState, MsgType, Status, FlowAction,
  writeShmHeader, writeRingCtl, writePortInfo, writePortHwStats, writeResponse, writeMsgHdr, writeFlowStats,
  readFlowAdd, readMsgHdr, PortHwStats, WorkerPortStats,
} from '../src/gen/proto';
import { shmOpen, mapShared } from '../src/shm/libc';

const up = (n: number, a = 64): number => Math.ceil(n / a) * a;
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
  len: number;
  reqId: bigint;
  flowAdd?: ReturnType<typeof readFlowAdd>;
  flowDelId?: bigint;
}

interface Region { reqRing: number; respRing: number; eventRing: number; portInfo: number; portHw: number; workers: number; flowStats: number; size: number }

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
  return { reqRing, respRing, eventRing, portInfo, portHw, workers, flowStats, size: up(off, 4096) };
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
  /** Flow id -> stats slot, as ferryd would keep it. */
  readonly flows = new Map<bigint, number>();
  private nextSlot = 0;
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
      flow_stats_off: BigInt(L.flowStats), flows_active: 0, flows_generation: 0,
    });
    this.dv.setBigUint64(SHM_HEADER.fields.magic.offset, this.opts.magic, true); // magic last, as ferryd does
    this.flows.clear();
    this.nextSlot = 0;
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
      const h = readMsgHdr(this.dv, off);
      const r: ReceivedRequest = { type: h.type, len: h.len, reqId: h.req_id };
      if (h.type === MsgType.FLOW_ADD && h.len >= FLOW_ADD.size) r.flowAdd = readFlowAdd(this.dv, off + MSG_HDR.size);
      if (h.type === MsgType.FLOW_DEL && h.len >= FLOW_DEL.size) r.flowDelId = this.dv.getBigUint64(off + MSG_HDR.size, true);
      batch.push(r);
      tail = (tail + 1) >>> 0;
    }
    Atomics.store(this.u32, this.idx(ring, 'tail'), tail);
    this.received.push(...batch);
    if (this.respondMode === 'auto') for (const r of batch) this.answer(r);
    return batch.length;
  }

  private answer(r: ReceivedRequest): void {
    const portOk = (p: number): boolean => p < this.opts.ports.length;
    switch (r.type) {
      case MsgType.PING:
        this.respond(r.reqId, Status.OK);
        return;
      case MsgType.FLOW_ADD: {
        const f = r.flowAdd!;
        if ((f.in_port !== PORT_ANY && !portOk(f.in_port)) || (f.action === FlowAction.OUTPUT && !portOk(f.out_port))) {
          this.respond(r.reqId, Status.ENOPORT, 0, 'no such port');
          return;
        }
        let slot = this.flows.get(f.id);
        if (slot === undefined) slot = this.nextSlot++;
        this.flows.set(f.id, slot);
        this.publishFlowCount();
        this.respond(r.reqId, Status.OK, slot);
        return;
      }
      case MsgType.FLOW_DEL:
        if (!this.flows.delete(r.flowDelId!)) {
          this.respond(r.reqId, Status.ENOENT, 0, 'no such flow');
          return;
        }
        this.publishFlowCount();
        this.respond(r.reqId, Status.OK);
        return;
      case MsgType.FLOW_CLEAR:
        this.flows.clear();
        this.publishFlowCount();
        this.respond(r.reqId, Status.OK);
        return;
      default:
        this.respond(r.reqId, Status.EUNSUPPORTED, 0, `unknown request type ${r.type}`);
    }
  }

  private publishFlowCount(): void {
    this.dv.setUint32(SHM_HEADER.fields.flows_active.offset, this.flows.size, true);
    const g = SHM_HEADER.fields.flows_generation.offset;
    this.dv.setUint32(g, this.dv.getUint32(g, true) + 1, true);
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
    writeResponse(this.dv, off + MSG_HDR.size, { status, aux, value, message });
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

  setWorker(worker: number, c: { busy_cycles?: bigint; idle_cycles?: bigint; drops?: bigint[] }): void {
    const base = this.layout.workers + worker * WORKER_STATS.size;
    const F = WORKER_STATS.fields;
    if (c.busy_cycles !== undefined) this.dv.setBigUint64(base + F.busy_cycles.offset, c.busy_cycles, true);
    if (c.idle_cycles !== undefined) this.dv.setBigUint64(base + F.idle_cycles.offset, c.idle_cycles, true);
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
