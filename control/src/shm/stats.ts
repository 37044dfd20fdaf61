// Reading ferryd's statistics regions: seqlocked port info/hw stats, single-writer worker counters.
import {
  PORT_INFO, PORT_HW_STATS, WORKER_STATS, WORKER_PORT_STATS, FLOW_STATS, TABLE_STATS, N_TABLES, DropReason, ParseReason,
  SHM_HEADER, CT_INVALID_REASONS, FRAG_REASONS, readPortInfo, readPortHwStats, PortInfo, PortHwStats,
} from '../gen/proto';
import type { Segment, LiveHeader } from './segment';

const SEQLOCK_RETRIES = 64;
const WS = WORKER_STATS.fields;
const WPS = WORKER_PORT_STATS.fields;
const FS = FLOW_STATS.fields;
const TS = TABLE_STATS.fields;
const SH = SHM_HEADER.fields;
const N_DROP_REASONS = Object.keys(DropReason).length;
const N_PARSE_REASONS = Object.keys(ParseReason).length;

export interface PortCounters {
  rx_packets: bigint;
  rx_bytes: bigint;
  tx_packets: bigint;
  tx_bytes: bigint;
  rx_dropped: bigint;
  tx_dropped: bigint;
}
export type PortHwCounters = Omit<PortHwStats, 'seq' | 'pad0'>;

export interface PortSnapshot {
  port_id: number;
  name: string;
  driver: string;
  mac: string;
  socket_id: number;
  link: { up: boolean; speed_mbps: number; full_duplex: boolean };
  mtu: number;
  rx_queues: number;
  tx_queues: number;
  rx_desc: number;
  tx_desc: number;
  rss: boolean;
  promiscuous: boolean;
  /** Summed over workers. */
  sw: PortCounters;
  hw: PortHwCounters;
  /** false if the seqlock never settled within the retry budget (values may be torn). */
  consistent: boolean;
}

export interface WorkerSnapshot {
  worker: number;
  lcore_id: number;
  n_rxq: number;
  loops: bigint;
  busy_loops: bigint;
  busy_cycles: bigint;
  idle_cycles: bigint;
  rx_packets: bigint;
  rx_bursts: bigint;
  emc_hits: bigint;
  emc_misses: bigint;
  recirculations: bigint;
  packet_ins: bigint;
  /** Indexed by DropReason. */
  drops: bigint[];
  /** Indexed by ParseReason. */
  parse_errors: bigint[];
  ct_packets: bigint;
  ct_created: bigint;
  ct_limit_refused: bigint;
  ct_early_drops: bigint;
  ct_nat_created: bigint;
  ct_nat_exhausted: bigint;
  ct_nat_rewrites: bigint;
  ct_nat_rewrite_errors: bigint;
  /** ALG expectations set up, and new connections that matched one */
  ct_exp_created: bigint;
  ct_exp_matched: bigint;
  /** Indexed by CtInvalidReason (CT_INVALID_REASONS slots). */
  ct_invalid: bigint[];
  /** Indexed by FragReason (FRAG_REASONS slots). */
  frag: bigint[];
}

/** The connection tracker's counters in the header (the main lcore keeps them). */
export interface CtTotals {
  conns: bigint;
  maxConns: bigint;
  expired: bigint;
  flushed: bigint;
  eventsDropped: bigint;
  sweeps: bigint;
  /** ALG expectations pending, and those that timed out unused */
  expectations: bigint;
  expExpired: bigint;
}

/** One flow table's counters, summed over workers. */
export interface TableTotals {
  table: number;
  lookups: bigint;
  matches: bigint;
  misses: bigint;
}

export interface RingSnapshot {
  depth: number;
  full_events: number;
}

export interface Snapshot {
  /** process.hrtime.bigint() when taken (same clock as ferryd's CLOCK_MONOTONIC). */
  takenNs: bigint;
  header: LiveHeader;
  ports: PortSnapshot[];
  workers: WorkerSnapshot[];
  /** Only tables with lookups > 0, ascending by table id. */
  tables: TableTotals[];
  rings: { request: RingSnapshot; response: RingSnapshot; event: RingSnapshot };
  ct: CtTotals;
  /** ferryd's packet pools: mbufs in all, and free ones (per-lcore caches included). */
  mbufs: { total: bigint; available: bigint };
  /** Counters of a flow stats slot summed over workers (reads the live segment). */
  flowCounters(slot: number): FlowCounters;
}

export interface FlowCounters {
  packets: bigint;
  bytes: bigint;
  /** Latest hit over all workers, CLOCK_MONOTONIC ns; 0n if never hit. */
  lastHitNs: bigint;
}

/** Reads a seqlocked struct: seq even and unchanged across the copy, else retry (bounded). */
function seqlockRead<T>(seg: Segment, off: number, read: () => T): { value: T; consistent: boolean } {
  const u32 = seg.view.u32;
  const idx = off >>> 2; // seq is the first field of both seqlocked structs
  let value = read();
  for (let i = 0; i < SEQLOCK_RETRIES; i++) {
    const s1 = Atomics.load(u32, idx);
    if (s1 & 1) continue;
    value = read();
    const s2 = Atomics.load(u32, idx);
    if (s1 === s2) return { value, consistent: true };
  }
  return { value, consistent: false };
}

const macString = (b: number[]): string => b.map((x) => x.toString(16).padStart(2, '0')).join(':');

/** n consecutive u64 counters (an array field of a shared struct) */
function readU64s(seg: Segment, off: number, n: number): bigint[] {
  const out: bigint[] = [];
  for (let i = 0; i < n; i++) out.push(seg.loadU64(off + i * 8));
  return out;
}

export function zeroPortCounters(): PortCounters {
  return { rx_packets: 0n, rx_bytes: 0n, tx_packets: 0n, tx_bytes: 0n, rx_dropped: 0n, tx_dropped: 0n };
}

/** Adds worker w's counters of port p (an ethdev or a tunnel port) to t. */
export function addWorkerPort(seg: Segment, w: number, p: number, t: PortCounters): void {
  const c = readWorkerPort(seg, seg.info.workerStatsOff + w * WORKER_STATS.size + WS.ports.offset + p * WORKER_PORT_STATS.size);
  t.rx_packets += c.rx_packets;
  t.rx_bytes += c.rx_bytes;
  t.tx_packets += c.tx_packets;
  t.tx_bytes += c.tx_bytes;
  t.rx_dropped += c.rx_dropped;
  t.tx_dropped += c.tx_dropped;
}

function readWorkerPort(seg: Segment, off: number): PortCounters {
  return {
    rx_packets: seg.loadU64(off + WPS.rx_packets.offset),
    rx_bytes: seg.loadU64(off + WPS.rx_bytes.offset),
    tx_packets: seg.loadU64(off + WPS.tx_packets.offset),
    tx_bytes: seg.loadU64(off + WPS.tx_bytes.offset),
    rx_dropped: seg.loadU64(off + WPS.rx_dropped.offset),
    tx_dropped: seg.loadU64(off + WPS.tx_dropped.offset),
  };
}

export function readSnapshot(seg: Segment): Snapshot {
  const { info, view } = seg;
  const takenNs = process.hrtime.bigint();
  const header = seg.header();

  const workers: WorkerSnapshot[] = [];
  const swTotals: PortCounters[] = [];
  for (let p = 0; p < info.nPorts; p++) swTotals.push(zeroPortCounters());
  for (let w = 0; w < info.nWorkers; w++) {
    const base = info.workerStatsOff + w * WORKER_STATS.size;
    const drops = readU64s(seg, base + WS.drops.offset, N_DROP_REASONS);
    const parse_errors = readU64s(seg, base + WS.parse_errors.offset, N_PARSE_REASONS);
    const ct_invalid = readU64s(seg, base + WS.ct_invalid.offset, CT_INVALID_REASONS);
    const frag = readU64s(seg, base + WS.frag.offset, FRAG_REASONS);
    workers.push({
      worker: w,
      lcore_id: view.dv.getUint32(base + WS.lcore_id.offset, true),
      n_rxq: view.dv.getUint32(base + WS.n_rxq.offset, true),
      loops: seg.loadU64(base + WS.loops.offset),
      busy_loops: seg.loadU64(base + WS.busy_loops.offset),
      busy_cycles: seg.loadU64(base + WS.busy_cycles.offset),
      idle_cycles: seg.loadU64(base + WS.idle_cycles.offset),
      rx_packets: seg.loadU64(base + WS.rx_packets.offset),
      rx_bursts: seg.loadU64(base + WS.rx_bursts.offset),
      emc_hits: seg.loadU64(base + WS.emc_hits.offset),
      emc_misses: seg.loadU64(base + WS.emc_misses.offset),
      recirculations: seg.loadU64(base + WS.recirculations.offset),
      packet_ins: seg.loadU64(base + WS.packet_ins.offset),
      drops,
      parse_errors,
      ct_packets: seg.loadU64(base + WS.ct_packets.offset),
      ct_created: seg.loadU64(base + WS.ct_created.offset),
      ct_limit_refused: seg.loadU64(base + WS.ct_limit_refused.offset),
      ct_early_drops: seg.loadU64(base + WS.ct_early_drops.offset),
      ct_nat_created: seg.loadU64(base + WS.ct_nat_created.offset),
      ct_nat_exhausted: seg.loadU64(base + WS.ct_nat_exhausted.offset),
      ct_nat_rewrites: seg.loadU64(base + WS.ct_nat_rewrites.offset),
      ct_nat_rewrite_errors: seg.loadU64(base + WS.ct_nat_rewrite_errors.offset),
      ct_exp_created: seg.loadU64(base + WS.ct_exp_created.offset),
      ct_exp_matched: seg.loadU64(base + WS.ct_exp_matched.offset),
      ct_invalid,
      frag,
    });
    for (let p = 0; p < info.nPorts; p++) addWorkerPort(seg, w, p, swTotals[p]!);
  }

  const ports: PortSnapshot[] = [];
  for (let p = 0; p < info.nPorts; p++) {
    const infoOff = info.portInfoOff + p * PORT_INFO.size;
    const hwOff = info.portHwStatsOff + p * PORT_HW_STATS.size;
    const pi = seqlockRead<PortInfo>(seg, infoOff, () => readPortInfo(view.dv, infoOff));
    const hw = seqlockRead<PortHwStats>(seg, hwOff, () => readPortHwStats(view.dv, hwOff));
    const { seq: _s, pad0: _p, ...hwCounters } = hw.value;
    const v = pi.value;
    ports.push({
      port_id: v.port_id,
      name: v.name,
      driver: v.driver,
      mac: macString(v.mac),
      socket_id: v.socket_id,
      link: { up: v.link_up !== 0, speed_mbps: v.link_speed_mbps, full_duplex: v.link_full_duplex !== 0 },
      mtu: v.mtu,
      rx_queues: v.n_rxq,
      tx_queues: v.n_txq,
      rx_desc: v.nb_rxd,
      tx_desc: v.nb_txd,
      rss: v.rss !== 0,
      promiscuous: v.promiscuous !== 0,
      sw: swTotals[p]!,
      hw: hwCounters,
      consistent: pi.consistent && hw.consistent,
    });
  }

  const ring = (r: { depth(): number; fullEvents(): number }): RingSnapshot => ({ depth: r.depth(), full_events: r.fullEvents() });
  return {
    takenNs,
    header,
    ports,
    workers,
    tables: readTableTotals(seg),
    rings: { request: ring(seg.requestRing()), response: ring(seg.responseRing()), event: ring(seg.eventRing()) },
    ct: readCtTotals(seg),
    mbufs: { total: seg.loadU64(SH.mbufs_total.offset), available: seg.loadU64(SH.mbufs_available.offset) },
    flowCounters: (slot) => readFlowCounters(seg, slot),
  };
}

export function readCtTotals(seg: Segment): CtTotals {
  return {
    conns: seg.loadU64(SH.ct_conns.offset),
    maxConns: seg.loadU64(SH.ct_max_conns.offset),
    expired: seg.loadU64(SH.ct_expired.offset),
    flushed: seg.loadU64(SH.ct_flushed.offset),
    eventsDropped: seg.loadU64(SH.ct_events_dropped.offset),
    sweeps: seg.loadU64(SH.ct_sweeps.offset),
    expectations: seg.loadU64(SH.ct_expectations.offset),
    expExpired: seg.loadU64(SH.ct_exp_expired.offset),
  };
}

/** table_stats[worker][table] summed over workers; only tables that have seen lookups. */
function readTableTotals(seg: Segment): TableTotals[] {
  const { info } = seg;
  const tables: TableTotals[] = [];
  for (let t = 0; t < N_TABLES; t++) {
    const sum: TableTotals = { table: t, lookups: 0n, matches: 0n, misses: 0n };
    for (let w = 0; w < info.nWorkers; w++) {
      const at = info.tableStatsOff + (w * N_TABLES + t) * TABLE_STATS.size;
      sum.lookups += seg.loadU64(at + TS.lookups.offset);
      sum.matches += seg.loadU64(at + TS.matches.offset);
      sum.misses += seg.loadU64(at + TS.misses.offset);
    }
    if (sum.lookups > 0n) tables.push(sum);
  }
  return tables;
}

export function readFlowCounters(seg: Segment, slot: number): FlowCounters {
  const { info } = seg;
  if (!Number.isInteger(slot) || slot < 0 || slot >= info.maxFlows) {
    return { packets: 0n, bytes: 0n, lastHitNs: 0n };
  }
  let packets = 0n;
  let bytes = 0n;
  let lastHitNs = 0n;
  for (let w = 0; w < info.nWorkers; w++) {
    const off = info.flowStatsOff + (w * info.maxFlows + slot) * FLOW_STATS.size;
    packets += seg.loadU64(off + FS.packets.offset);
    bytes += seg.loadU64(off + FS.bytes.offset);
    const hit = seg.loadU64(off + FS.last_hit_ns.offset);
    if (hit > lastHitNs) lastHitNs = hit;
  }
  return { packets, bytes, lastHitNs };
}
