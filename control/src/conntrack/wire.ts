// Conntrack request bodies and the payloads of their answers, laid out with the generated offsets.
import {
  CT_DUMP_ENTRIES, CT_DUMP_REQ, CT_FILTER, CT_DUMP_RESP, CT_ENTRY, CT_EXP_DUMP_ENTRIES, CT_EXP_DUMP_REQ, CT_EXP_DUMP_RESP, CT_EXP_ENTRY,
  CT_LIMIT_REQ, CT_OPTIONS_REQ, CT_STATS_REQ, CT_STATS_RESP, CT_STATS_ZONES, CT_TIMEOUT_POLICY_REQ, CT_ZONE_COUNT, CtEntry, CtExpEntry,
  readCtEntry, readCtExpEntry,
} from '../gen/proto';
import type { BodyWriter } from '../messages';
import type { ChannelPart } from '../channel';
import { CtFilterSpec, writeFilter } from './filter';

const DQ = CT_DUMP_REQ.fields;
const DR = CT_DUMP_RESP.fields;
const SR = CT_STATS_RESP.fields;
const ZC = CT_ZONE_COUNT.fields;

const zeroed = (dv: DataView, off: number, size: number): void => {
  new Uint8Array(dv.buffer, dv.byteOffset + off, size).fill(0);
};

export function ctDumpBody(f: CtFilterSpec, cursor: bigint, maxEntries: number): BodyWriter {
  return (dv, off) => {
    zeroed(dv, off, CT_DUMP_REQ.size);
    writeFilter(dv, off + DQ.filter.offset, f);
    dv.setBigUint64(off + DQ.cursor.offset, cursor, true);
    dv.setUint32(off + DQ.max_entries.offset, maxEntries, true);
    return CT_DUMP_REQ.size;
  };
}

export function ctFlushBody(f: CtFilterSpec): BodyWriter {
  return (dv, off) => {
    writeFilter(dv, off, f);
    return CT_FILTER.size;
  };
}

export function ctStatsBody(zoneStart: number): BodyWriter {
  return (dv, off) => {
    zeroed(dv, off, CT_STATS_REQ.size);
    dv.setUint32(off + CT_STATS_REQ.fields.zone_start.offset, zoneStart, true);
    return CT_STATS_REQ.size;
  };
}

export function ctLimitBody(target: number, zone: number, limit: number, clear: boolean): BodyWriter {
  const L = CT_LIMIT_REQ.fields;
  return (dv, off) => {
    zeroed(dv, off, CT_LIMIT_REQ.size);
    dv.setUint8(off + L.target.offset, target);
    dv.setUint8(off + L.clear.offset, clear ? 1 : 0);
    dv.setUint16(off + L.zone.offset, zone, true);
    dv.setUint32(off + L.limit.offset, limit, true);
    return CT_LIMIT_REQ.size;
  };
}

/** seconds by ct_tm (0 = ferryd's default); clear: back to the defaults. */
export function ctTimeoutPolicyBody(zone: number, seconds: readonly number[], clear: boolean): BodyWriter {
  const T = CT_TIMEOUT_POLICY_REQ.fields;
  return (dv, off) => {
    zeroed(dv, off, CT_TIMEOUT_POLICY_REQ.size);
    dv.setUint16(off + T.zone.offset, zone, true);
    dv.setUint8(off + T.clear.offset, clear ? 1 : 0);
    for (let i = 0; i < T.seconds.size / 4; i++) dv.setUint32(off + T.seconds.offset + i * 4, seconds[i] ?? 0, true);
    return CT_TIMEOUT_POLICY_REQ.size;
  };
}

export function ctOptionsBody(tcpSeqCheck: boolean, events: boolean): BodyWriter {
  const O = CT_OPTIONS_REQ.fields;
  return (dv, off) => {
    zeroed(dv, off, CT_OPTIONS_REQ.size);
    dv.setUint8(off + O.tcp_seq_check.offset, tcpSeqCheck ? 1 : 0);
    dv.setUint8(off + O.events.offset, events ? 1 : 0);
    return CT_OPTIONS_REQ.size;
  };
}

/** What one CT_DUMP answer part carries. */
export interface DumpPart {
  entries: CtEntry[];
  nextCursor: bigint;
  done: boolean;
}

/** Decodes the ct_dump_resp of a part (entries copied out of the ring). */
export function readDumpPart(p: ChannelPart): DumpPart {
  if (p.payloadLen < DR.entries.offset) throw new Error(`CT_DUMP answer part ${p.index} carries ${p.payloadLen} payload bytes, not a ct_dump_resp`);
  const b = p.payloadOff;
  const n = p.dv.getUint16(b + DR.n_entries.offset, true);
  const fit = Math.floor((p.payloadLen - DR.entries.offset) / CT_ENTRY.size);
  if (n > CT_DUMP_ENTRIES || n > fit) throw new Error(`CT_DUMP answer part ${p.index} says ${n} entries; it has room for ${Math.min(fit, CT_DUMP_ENTRIES)}`);
  const entries: CtEntry[] = [];
  for (let i = 0; i < n; i++) entries.push(readCtEntry(p.dv, b + DR.entries.offset + i * CT_ENTRY.size));
  return { entries, nextCursor: p.dv.getBigUint64(b + DR.next_cursor.offset, true), done: p.dv.getUint8(b + DR.done.offset) !== 0 };
}

export function ctExpDumpBody(cursor: number): BodyWriter {
  return (dv, off) => {
    zeroed(dv, off, CT_EXP_DUMP_REQ.size);
    dv.setUint32(off + CT_EXP_DUMP_REQ.fields.cursor.offset, cursor, true);
    return CT_EXP_DUMP_REQ.size;
  };
}

/** What one CT_EXP_DUMP answer part carries (next_cursor and done count on the last part only). */
export interface ExpDumpPart {
  entries: CtExpEntry[];
  nextCursor: number;
  done: boolean;
}

/** Decodes the ct_exp_dump_resp of a part (entries copied out of the ring). */
export function readExpDumpPart(p: ChannelPart): ExpDumpPart {
  const E = CT_EXP_DUMP_RESP.fields;
  if (p.payloadLen < E.entries.offset) throw new Error(`CT_EXP_DUMP answer part ${p.index} carries ${p.payloadLen} payload bytes, not a ct_exp_dump_resp`);
  const b = p.payloadOff;
  const n = p.dv.getUint16(b + E.n_entries.offset, true);
  const fit = Math.floor((p.payloadLen - E.entries.offset) / CT_EXP_ENTRY.size);
  if (n > CT_EXP_DUMP_ENTRIES || n > fit) throw new Error(`CT_EXP_DUMP answer part ${p.index} says ${n} entries; it has room for ${Math.min(fit, CT_EXP_DUMP_ENTRIES)}`);
  const entries: CtExpEntry[] = [];
  for (let i = 0; i < n; i++) entries.push(readCtExpEntry(p.dv, b + E.entries.offset + i * CT_EXP_ENTRY.size));
  return { entries, nextCursor: p.dv.getUint32(b + E.next_cursor.offset, true), done: p.dv.getUint8(b + E.done.offset) !== 0 };
}

/** What one CT_STATS answer carries. */
export interface StatsPage {
  total: bigint;
  byProto: bigint[];
  byTcpState: bigint[];
  nextZone: number;
  zones: { zone: number; count: number }[];
}

export function readStatsPage(p: ChannelPart): StatsPage {
  if (p.payloadLen < SR.zones.offset) throw new Error(`CT_STATS answer carries ${p.payloadLen} payload bytes, not a ct_stats_resp`);
  const dv = p.dv;
  const b = p.payloadOff;
  const n = dv.getUint16(b + SR.n_zones.offset, true);
  const fit = Math.floor((p.payloadLen - SR.zones.offset) / CT_ZONE_COUNT.size);
  if (n > CT_STATS_ZONES || n > fit) throw new Error(`CT_STATS answer says ${n} zones; it has room for ${Math.min(fit, CT_STATS_ZONES)}`);
  const u64s = (at: number, count: number): bigint[] => Array.from({ length: count }, (_, i) => dv.getBigUint64(b + at + i * 8, true));
  const zones: { zone: number; count: number }[] = [];
  for (let i = 0; i < n; i++) {
    const z = b + SR.zones.offset + i * CT_ZONE_COUNT.size;
    zones.push({ zone: dv.getUint16(z + ZC.zone.offset, true), count: dv.getUint32(z + ZC.count.offset, true) });
  }
  return {
    total: dv.getBigUint64(b + SR.total.offset, true),
    byProto: u64s(SR.by_proto.offset, SR.by_proto.size / 8),
    byTcpState: u64s(SR.by_tcp_state.offset, SR.by_tcp_state.size / 8),
    nextZone: dv.getUint32(b + SR.next_zone.offset, true),
    zones,
  };
}
