// Attaching to ferryd's POSIX shared-memory segment: open, check, map once, and read it.
import * as fs from 'node:fs';
import * as ref from '@2060.io/ref-napi';
import refStructDi from 'ref-struct-di';
import refArrayDi from 'ref-array-di';
import {
  ABI_VERSION, LAYOUT_HASH, SHM_MAGIC, SHM_HEADER, MSG_HDR, RESPONSE, EVENT_HDR, MAX_PORTS, MAX_WORKERS,
  PORT_INFO, PORT_HW_STATS, WORKER_STATS, FLOW_STATS, TABLE_STATS, N_TABLES, FLOW_ADD, defineRefStructs, DpStateName,
} from '../gen/proto';
import { AttachError } from '../errors';
import { mapShared, shmOpen } from './libc';
import {
  RingConsumer, RingProducer, ShmView, checkRingGeometry, readRingGeometry, viewOf, RingGeometry,
} from './ring';
import { CtTotals, FlowCounters, Snapshot, readCtTotals, readFlowCounters, readSnapshot } from './stats';

export type { CtTotals, FlowCounters, Snapshot, PortSnapshot, WorkerSnapshot, PortCounters, PortHwCounters } from './stats';

// ref-struct-di types of every struct; the header type decodes the header once per attach.
const StructType = refStructDi(ref);
const ArrayType = refArrayDi(ref);
export const refStructs = defineRefStructs(StructType, ArrayType);

const H = SHM_HEADER.fields;
const u64 = (x: unknown): bigint => BigInt(String(x)); // ref returns a string above 2^53
const hex64 = (v: bigint): string => '0x' + v.toString(16).padStart(16, '0');

/** Static facts of a segment, decoded once at attach. */
export interface SegmentInfo {
  readonly abiVersion: number;
  readonly layoutHash: bigint;
  readonly segmentSize: number;
  readonly pid: number; // ferryd's pid when we attached
  readonly startNs: bigint;
  readonly tscHz: bigint;
  readonly nPorts: number;
  readonly nWorkers: number;
  readonly maxFlows: number;
  readonly housekeepingUs: number;
  readonly reqRingOff: number;
  readonly respRingOff: number;
  readonly eventRingOff: number;
  readonly portInfoOff: number;
  readonly portHwStatsOff: number;
  readonly workerStatsOff: number;
  readonly flowStatsOff: number;
  readonly tableStatsOff: number;
}

/** Header fields ferryd keeps changing. */
export interface LiveHeader {
  readonly pid: number;
  readonly state: number;
  readonly stateName: string;
  readonly heartbeat: bigint;
  readonly heartbeatNs: bigint;
  readonly flowsActive: number;
  readonly flowsGeneration: number;
}

/** Identity of the segment file, to notice that ferryd created a new one. */
export interface SegmentIdentity {
  readonly dev: number;
  readonly ino: number;
  readonly uid: number;
  readonly mode: number;
}

function decodeHeader(bytes: Buffer): SegmentInfo & { magic: bigint; headerSize: number; state: number } {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const h: any = new refStructs['shm_header'](bytes);
  return {
    magic: u64(h.magic),
    abiVersion: Number(h.abi_version),
    headerSize: Number(h.header_size),
    layoutHash: u64(h.layout_hash),
    segmentSize: Number(u64(h.segment_size)),
    pid: Number(h.pid),
    state: Number(h.state),
    startNs: u64(h.start_ns),
    tscHz: u64(h.tsc_hz),
    nPorts: Number(h.n_ports),
    nWorkers: Number(h.n_workers),
    maxFlows: Number(h.max_flows),
    housekeepingUs: Number(h.housekeeping_us),
    reqRingOff: Number(u64(h.req_ring_off)),
    respRingOff: Number(u64(h.resp_ring_off)),
    eventRingOff: Number(u64(h.event_ring_off)),
    portInfoOff: Number(u64(h.port_info_off)),
    portHwStatsOff: Number(u64(h.port_hw_stats_off)),
    workerStatsOff: Number(u64(h.worker_stats_off)),
    flowStatsOff: Number(u64(h.flow_stats_off)),
    tableStatsOff: Number(u64(h.table_stats_off)),
  };
}

/** Checks the header bytes read from the file, before anything is mapped. */
function validateHeader(name: string, hdr: ReturnType<typeof decodeHeader>, fileSize: number): void {
  if (hdr.magic !== SHM_MAGIC) {
    throw new AttachError(`segment /${name} has magic ${hex64(hdr.magic)}, not ${hex64(SHM_MAGIC)} (not a ferryd segment, or still initialising)`, 'MAGIC');
  }
  if (hdr.abiVersion !== ABI_VERSION) {
    throw new AttachError(`ABI mismatch: ferryd speaks ABI ${hdr.abiVersion}, this ferry-control speaks ${ABI_VERSION}`, 'ABI');
  }
  if (hdr.layoutHash !== LAYOUT_HASH) {
    throw new AttachError(`layout mismatch: ferryd's layout hash is ${hex64(hdr.layoutHash)}, this ferry-control's is ${hex64(LAYOUT_HASH)} (built from a different proto/layout.json)`, 'LAYOUT');
  }
  if (hdr.headerSize !== SHM_HEADER.size) {
    throw new AttachError(`segment /${name} header_size is ${hdr.headerSize}, expected ${SHM_HEADER.size}`, 'LAYOUT');
  }
  if (hdr.segmentSize > fileSize || hdr.segmentSize < SHM_HEADER.size) {
    throw new AttachError(`segment /${name} says it is ${hdr.segmentSize} bytes but the file has ${fileSize}`, 'SIZE');
  }
  if (hdr.nPorts > MAX_PORTS) throw new AttachError(`segment /${name} has n_ports ${hdr.nPorts} > ${MAX_PORTS}`, 'LAYOUT');
  if (hdr.nWorkers > MAX_WORKERS) throw new AttachError(`segment /${name} has n_workers ${hdr.nWorkers} > ${MAX_WORKERS}`, 'LAYOUT');
  const regions: [string, number, number][] = [
    ['port_info', hdr.portInfoOff, hdr.nPorts * PORT_INFO.size],
    ['port_hw_stats', hdr.portHwStatsOff, hdr.nPorts * PORT_HW_STATS.size],
    ['worker_stats', hdr.workerStatsOff, hdr.nWorkers * WORKER_STATS.size],
    ['flow_stats', hdr.flowStatsOff, hdr.nWorkers * hdr.maxFlows * FLOW_STATS.size],
    ['table_stats', hdr.tableStatsOff, hdr.nWorkers * N_TABLES * TABLE_STATS.size],
  ];
  for (const [what, off, len] of regions) {
    if (off % 64 !== 0 || off < SHM_HEADER.size || off + len > hdr.segmentSize) {
      throw new AttachError(`segment /${name}: ${what} region [${off}, +${len}) is misplaced`, 'LAYOUT');
    }
  }
}

/** A mapped, validated ferryd segment. Create with attachSegment(). */
export class Segment {
  readonly view: ShmView;
  private readonly u64: BigUint64Array;
  private reqRing?: RingProducer;
  private respRing?: RingConsumer;
  private evRing?: RingConsumer;

  constructor(readonly name: string, buf: Buffer, readonly info: SegmentInfo, readonly identity: SegmentIdentity) {
    this.view = viewOf(buf);
    this.u64 = new BigUint64Array(buf.buffer, buf.byteOffset, buf.byteLength >>> 3);
  }

  get size(): number {
    return this.info.segmentSize;
  }

  /** Geometry of the ring whose ring_ctl is at off. */
  ringAt(off: number): RingGeometry {
    return readRingGeometry(this.view, off);
  }

  /** Control -> ferryd (we produce). */
  requestRing(): RingProducer {
    return (this.reqRing ??= new RingProducer(this.view, this.info.reqRingOff));
  }

  /** ferryd -> control (we consume). */
  responseRing(): RingConsumer {
    return (this.respRing ??= new RingConsumer(this.view, this.info.respRingOff));
  }

  /** ferryd -> control events (we consume). */
  eventRing(): RingConsumer {
    return (this.evRing ??= new RingConsumer(this.view, this.info.eventRingOff));
  }

  /** u64 at a byte offset (8-aligned), with an atomic load. */
  loadU64(off: number): bigint {
    return Atomics.load(this.u64, off >>> 3);
  }

  /** The header fields ferryd keeps updating. */
  header(): LiveHeader {
    const dv = this.view.dv;
    const state = Atomics.load(this.view.u32, H.state.offset >>> 2);
    return {
      pid: Atomics.load(this.view.u32, H.pid.offset >>> 2),
      state,
      stateName: DpStateName[state] ?? `UNKNOWN(${state})`,
      heartbeat: this.loadU64(H.heartbeat.offset),
      heartbeatNs: this.loadU64(H.heartbeat_ns.offset),
      flowsActive: dv.getUint32(H.flows_active.offset, true),
      flowsGeneration: dv.getUint32(H.flows_generation.offset, true),
    };
  }

  /** Ports (info + hw stats under their seqlocks + summed worker counters), workers and rings, in one pass. */
  snapshot(): Snapshot {
    return readSnapshot(this);
  }

  /** The connection tracker's header counters (connections, limit in force, expirations, ...). */
  ctTotals(): CtTotals {
    return readCtTotals(this);
  }

  /** Counters of one flow stats slot, summed over workers. */
  flowCounters(slot: number): FlowCounters {
    return readFlowCounters(this, slot);
  }
}

/**
 * Opens /name, checks it (permissions, magic, ABI version, layout hash, size) and maps it.
 * Throws AttachError with a message fit for /health. Nothing is mapped unless every check passes.
 */
export function attachSegment(name: string): Segment {
  const bare = name.replace(/^\//, '');
  let fd: number;
  try {
    fd = shmOpen(bare, true);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new AttachError(`no segment /${bare}`, 'ENOENT');
    if (code === 'EACCES') throw new AttachError(`no permission to open segment /${bare}`, 'EPERM');
    throw new AttachError((e as Error).message, 'OTHER');
  }
  try {
    const st = fs.fstatSync(fd);
    const mode = st.mode & 0o7777;
    if (mode & 0o022) {
      throw new AttachError(
        `segment /${bare} is ${mode & 0o002 ? 'world' : 'group'}-writable (mode ${mode.toString(8).padStart(4, '0')}, owner uid ${st.uid}); refusing to use it`,
        'EPERM');
    }
    if (st.size < SHM_HEADER.size) throw new AttachError(`segment /${bare} is only ${st.size} bytes (ferryd still initialising?)`, 'SIZE');
    const bytes = Buffer.alloc(SHM_HEADER.size);
    fs.readSync(fd, bytes, 0, SHM_HEADER.size, 0);
    const hdr = decodeHeader(bytes);
    validateHeader(bare, hdr, st.size);

    let buf: Buffer;
    try {
      buf = mapShared(fd, hdr.segmentSize);
    } catch (e) {
      throw new AttachError(`segment /${bare}: ${(e as Error).message}`, 'MMAP');
    }
    const seg = new Segment(bare, buf, hdr, { dev: st.dev, ino: st.ino, uid: st.uid, mode });
    // Ring control blocks are checked on the mapping (the header only gives their offsets).
    const minReq = MSG_HDR.size + FLOW_ADD.size; // flow_add is the largest request body
    const checks: [string, number, number][] = [
      ['request', hdr.reqRingOff, minReq],
      ['response', hdr.respRingOff, MSG_HDR.size + RESPONSE.size],
      ['event', hdr.eventRingOff, EVENT_HDR.size],
    ];
    for (const [what, off, min] of checks) {
      try {
        checkRingGeometry(seg.ringAt(off), hdr.segmentSize, min, what);
      } catch (e) {
        // The mapping stays (we never unmap); it is small and this only happens on a broken ferryd.
        throw new AttachError(`segment /${bare}: ${(e as Error).message}`, 'LAYOUT');
      }
    }
    return seg;
  } finally {
    fs.closeSync(fd);
  }
}

export { hex64 };
