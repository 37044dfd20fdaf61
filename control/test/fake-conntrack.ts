// The fake ferryd's connection tracker: an in-memory table answering CT_DUMP (in MORE parts, with
// cursors), CT_EXP_DUMP (its ALG expectations, likewise), CT_FLUSH, CT_STATS (paged zones),
// CT_SET_LIMIT / _TIMEOUT_POLICY / _OPTIONS, keeping the header's ct counters and posting CT_NEW /
// CT_DESTROY events when they are on. Filters are matched here independently of
// control/src/conntrack/filter.ts, on the wire's ct_filter.
import {
  CT_DUMP_ENTRIES, CT_DUMP_REQ, CT_DUMP_RESP, CT_ENTRY, CT_EVENT, CT_EXP_DUMP_ENTRIES, CT_EXP_DUMP_REQ, CT_EXP_DUMP_RESP, CT_EXP_ENTRY,
  CT_FILTER, CT_STATS_RESP, CT_STATS_ZONES, CT_ZONE_NONE, CtAlg, CtEntry, CtExpEntry, CtFilter, CtFilterFlag, CtLimitTarget,
  CtTimeoutPolicyReq, EventType, MsgFlag, MsgType, SHM_HEADER, Status, readCtDumpReq, readCtExpDumpReq, readCtFilter, readCtLimitReq,
  readCtOptionsReq, readCtStatsReq, readCtTimeoutPolicyReq, writeCtEntry, writeCtEvent, writeCtExpEntry, writeCtStatsResp,
} from '../src/gen/proto';
import type { FakeFerryd, ReceivedRequest } from './fake-ferryd';

/** The fake ferryd's capacity (--ct-max): the global limit in force by default and at most. */
export const DEFAULT_MAX_CONNS = 3_000_000;

/** A connection as a test writes it: addresses as text, the rest optional. */
export interface CtSpec {
  src: string;
  dst: string;
  proto?: number;
  sport?: number;
  dport?: number;
  zone?: number;
  state_orig?: number;
  state_reply?: number;
  flags?: number;
  mark?: number;
  /** hex, 32 digits or fewer (network order) */
  label?: string;
  timeout_ms?: number;
  icmp_type?: number;
  icmp_code?: number;
  tm?: number;
  packets_orig?: bigint;
  bytes_orig?: bigint;
  packets_reply?: bigint;
  bytes_reply?: bigint;
  first_seen_ns?: bigint;
  last_seen_ns?: bigint;
  /** the reply direction's tuple (a translated one with flags SNAT or DNAT); by default the original turned round */
  reply?: { src?: string; dst?: string; sport?: number; dport?: number };
}

/** An ALG expectation as a test writes it: the expected connection (any source port) and its parent's original tuple. */
export interface CtExpSpec {
  src: string;
  dst: string;
  dport: number;
  /** default tcp */
  proto?: number;
  zone?: number;
  /** CtAlg; default FTP */
  alg?: number;
  timeout_ms?: number;
  mark?: number;
  /** hex, 32 digits or fewer (network order) */
  label?: string;
  parent: { src: string; dst: string; sport: number; dport: number };
}

export interface FakeCtExp extends CtExpEntry {
  /** position in the expectation table: CT_EXP_DUMP cursors count these */
  id: number;
}

export interface FakeCtEntry extends CtEntry {
  /** position in the table: cursors count these */
  id: number;
}

/** Address text to 16 bytes (v4 in the first 4) and its version; a small parser of its own. */
export function addrBytes(s: string): { bytes: number[]; version: 4 | 6 } {
  const out = new Array<number>(16).fill(0);
  if (/^\d+\.\d+\.\d+\.\d+$/.test(s)) {
    s.split('.').forEach((x, i) => { out[i] = Number(x); });
    return { bytes: out, version: 4 };
  }
  const [head, tail] = s.includes('::') ? s.split('::') : [s, undefined];
  const hs = head ? head.split(':') : [];
  const ts = tail ? tail.split(':') : [];
  const groups = [...hs, ...new Array<string>(8 - hs.length - ts.length).fill('0'), ...ts];
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[2 * i] = v >> 8;
    out[2 * i + 1] = v & 0xff;
  });
  return { bytes: out, version: 6 };
}

function prefixMatch(addr: readonly number[], want: readonly number[], plen: number): boolean {
  for (let bit = 0; bit < plen; bit++) {
    const m = 0x80 >> (bit & 7);
    if ((addr[bit >> 3]! & m) !== (want[bit >> 3]! & m)) return false;
  }
  return true;
}

/** Whether entry e is selected by the ct_filter f (as ferryd decides it). */
export function filterMatches(e: CtEntry, f: CtFilter): boolean {
  const has = (flag: number): boolean => (f.flags & flag) !== 0;
  if (has(CtFilterFlag.ZONE) && e.zone !== f.zone) return false;
  if (has(CtFilterFlag.PROTO) && e.proto !== f.proto) return false;
  if (has(CtFilterFlag.IP_VERSION) && e.ip_version !== f.ip_version) return false;
  if (has(CtFilterFlag.TCP_STATE) && (e.proto !== 6 || Math.max(e.state_orig, e.state_reply) !== f.tcp_state)) return false;
  if (has(CtFilterFlag.MARK) && ((e.mark & f.mark_mask) >>> 0) !== ((f.mark & f.mark_mask) >>> 0)) return false;
  if (has(CtFilterFlag.LABEL) && e.label.some((b, i) => (b & f.label_mask[i]!) !== (f.label[i]! & f.label_mask[i]!))) return false;
  const tuple = (src: number[], dst: number[], sport: number, dport: number): boolean =>
    (!has(CtFilterFlag.SRC) || prefixMatch(src, f.src, f.src_plen)) &&
    (!has(CtFilterFlag.DST) || prefixMatch(dst, f.dst, f.dst_plen)) &&
    (!has(CtFilterFlag.SPORT) || sport === f.sport) &&
    (!has(CtFilterFlag.DPORT) || dport === f.dport);
  // either direction: the reply tuple as the entry holds it (translated for a NATed connection)
  return tuple(e.src, e.dst, e.sport, e.dport) ||
    (has(CtFilterFlag.EITHER_DIR) && tuple(e.reply_src, e.reply_dst, e.reply_sport, e.reply_dport));
}

const protoIndex = (p: number): number => ({ 6: 0, 17: 1, 1: 2, 58: 3, 132: 4 } as Record<number, number>)[p] ?? 5;
const H = SHM_HEADER.fields;

export class FakeConntrack {
  readonly entries = new Map<number, FakeCtEntry>();
  private nextId = 1;
  maxConns = DEFAULT_MAX_CONNS;
  defaultZoneLimit = 0;
  readonly zoneLimits = new Map<number, number>();
  readonly policies = new Map<number, number[]>();
  tcpSeqCheck = true;
  events = false;
  /** Entries given beyond max_entries (a hash chain finished), to exercise control's skip. */
  dumpOverrun = 0;
  /** Entries per CT_DUMP part (at most CT_DUMP_ENTRIES). */
  partEntries = CT_DUMP_ENTRIES;
  /** At most this many parts per answer, as if the response ring had only that much room (the answer then stops early). */
  partLimit = Infinity;
  /** CT_DUMP / CT_STATS / CT_EXP_DUMP requests answered, and the parts of the dumps */
  readonly served = { dumps: 0, parts: 0, stats: 0, expDumps: 0, expParts: 0 };
  readonly counters = { expired: 0n, flushed: 0n, sweeps: 0n, eventsDropped: 0n, expExpired: 0n };
  /** ALG expectations, by id */
  readonly expectations = new Map<number, FakeCtExp>();
  private nextExpId = 1;
  /** At most this many parts per CT_EXP_DUMP answer (as if the response ring had only that much room). */
  expPartLimit = Infinity;

  constructor(private readonly fd: FakeFerryd) {}

  /** A new ferryd: empty table, defaults. */
  reset(): void {
    this.entries.clear();
    this.nextId = 1;
    this.maxConns = DEFAULT_MAX_CONNS;
    this.defaultZoneLimit = 0;
    this.zoneLimits.clear();
    this.policies.clear();
    this.tcpSeqCheck = true;
    this.events = false;
    this.counters.expired = this.counters.flushed = this.counters.sweeps = this.counters.eventsDropped = this.counters.expExpired = 0n;
    this.expectations.clear();
    this.nextExpId = 1;
    this.expPartLimit = Infinity;
    this.publish();
  }

  /** Commits a connection (posts CT_NEW when events are on). */
  add(s: CtSpec): FakeCtEntry {
    const a = addrBytes(s.src);
    const now = process.hrtime.bigint();
    const label = Buffer.from((s.label ?? '').replace(/^0x/, '').padStart(32, '0'), 'hex');
    const sport = s.sport ?? 0;
    const dport = s.dport ?? 0;
    const r = s.reply ?? {};
    const e: FakeCtEntry = {
      id: this.nextId++, src: a.bytes, dst: addrBytes(s.dst).bytes, sport, dport, zone: s.zone ?? 0,
      proto: s.proto ?? 6, ip_version: a.version, state_orig: s.state_orig ?? 0, state_reply: s.state_reply ?? 0, flags: s.flags ?? 0,
      mark: s.mark ?? 0, timeout_ms: s.timeout_ms ?? 30_000, label: [...label], icmp_type: s.icmp_type ?? 0, icmp_code: s.icmp_code ?? 0,
      tm: s.tm ?? 0, pad0: 0, pad1: 0, packets_orig: s.packets_orig ?? 1n, bytes_orig: s.bytes_orig ?? 60n,
      packets_reply: s.packets_reply ?? 0n, bytes_reply: s.bytes_reply ?? 0n, first_seen_ns: s.first_seen_ns ?? now, last_seen_ns: s.last_seen_ns ?? now,
      reply_src: addrBytes(r.src ?? s.dst).bytes, reply_dst: addrBytes(r.dst ?? s.src).bytes, reply_sport: r.sport ?? dport, reply_dport: r.dport ?? sport, pad2: 0,
    };
    this.entries.set(e.id, e);
    this.publish();
    this.post(EventType.CT_NEW, e, 0);
    return e;
  }

  /** Sets up an expectation (as an ALG would), in table order after the others. */
  addExpectation(s: CtExpSpec): FakeCtExp {
    const a = addrBytes(s.src);
    const label = Buffer.from((s.label ?? '').replace(/^0x/, '').padStart(32, '0'), 'hex');
    const e: FakeCtExp = {
      id: this.nextExpId++, src: a.bytes, dst: addrBytes(s.dst).bytes, dport: s.dport, zone: s.zone ?? 0, proto: s.proto ?? 6,
      ip_version: a.version, alg: s.alg ?? CtAlg.FTP, pad0: 0, timeout_ms: s.timeout_ms ?? 60_000, mark: s.mark ?? 0,
      parent_src: addrBytes(s.parent.src).bytes, parent_dst: addrBytes(s.parent.dst).bytes, parent_sport: s.parent.sport,
      parent_dport: s.parent.dport, label: [...label],
    };
    this.expectations.set(e.id, e);
    this.publish();
    return e;
  }

  /** Times an expectation out unused. */
  expireExpectation(id: number): boolean {
    if (!this.expectations.delete(id)) return false;
    this.counters.expExpired++;
    this.publish();
    return true;
  }

  /** Times an entry out (CT_DESTROY EXPIRED when events are on). */
  expire(id: number): boolean {
    const e = this.entries.get(id);
    if (!e) return false;
    this.entries.delete(id);
    this.counters.expired++;
    this.publish();
    this.post(EventType.CT_DESTROY, e, 0);
    return true;
  }

  /** Posts an event if events are on; counts it dropped when the ring is full. */
  post(type: number, e: CtEntry, reason: number, force = false): boolean {
    if (!this.events && !force) return false;
    const ok = this.fd.postEvent(type, CT_EVENT.size, (dv, b) => writeCtEvent(dv, b, { entry: e, reason, pad0: [] }));
    if (!ok) {
      this.counters.eventsDropped++;
      this.publish();
    }
    return ok;
  }

  /** The header's ct fields, as ferryd's main lcore copies them. */
  publish(): void {
    const dv = this.fd.dv;
    if (!dv) return;
    dv.setBigUint64(H.ct_conns.offset, BigInt(this.entries.size), true);
    dv.setBigUint64(H.ct_max_conns.offset, BigInt(this.maxConns), true);
    dv.setBigUint64(H.ct_expired.offset, this.counters.expired, true);
    dv.setBigUint64(H.ct_flushed.offset, this.counters.flushed, true);
    dv.setBigUint64(H.ct_events_dropped.offset, this.counters.eventsDropped, true);
    dv.setBigUint64(H.ct_sweeps.offset, this.counters.sweeps, true);
    dv.setBigUint64(H.ct_expectations.offset, BigInt(this.expectations.size), true);
    dv.setBigUint64(H.ct_exp_expired.offset, this.counters.expExpired, true);
  }

  private body(r: ReceivedRequest, size: number): DataView | null {
    if (!r.body || r.len < size) return null;
    return new DataView(r.body.buffer, r.body.byteOffset, r.body.byteLength);
  }

  /** Answers a CT_* request; false for any other type. */
  answer(r: ReceivedRequest): boolean {
    const einval = (msg: string): true => {
      this.fd.respond(r.reqId, Status.EINVAL, 0, msg);
      return true;
    };
    switch (r.type) {
      case MsgType.CT_DUMP: {
        const dv = this.body(r, CT_DUMP_REQ.size);
        if (!dv) return einval('short CT_DUMP');
        this.dump(r.reqId, readCtDumpReq(dv, 0));
        return true;
      }
      case MsgType.CT_EXP_DUMP: {
        const dv = this.body(r, CT_EXP_DUMP_REQ.size);
        if (!dv) return einval('short CT_EXP_DUMP');
        this.expDump(r.reqId, readCtExpDumpReq(dv, 0).cursor);
        return true;
      }
      case MsgType.CT_FLUSH: {
        const dv = this.body(r, CT_FILTER.size);
        if (!dv) return einval('short CT_FLUSH');
        const f = readCtFilter(dv, 0);
        let n = 0n;
        for (const e of [...this.entries.values()]) {
          if (!filterMatches(e, f)) continue;
          this.entries.delete(e.id);
          n++;
          this.post(EventType.CT_DESTROY, e, 1);
        }
        this.counters.flushed += n;
        this.publish();
        this.fd.respond(r.reqId, Status.OK, 0, '', n);
        return true;
      }
      case MsgType.CT_STATS: {
        const dv = this.body(r, 8);
        if (!dv) return einval('short CT_STATS');
        this.stats(r.reqId, readCtStatsReq(dv, 0).zone_start);
        return true;
      }
      case MsgType.CT_SET_LIMIT: {
        const dv = this.body(r, 8);
        if (!dv) return einval('short CT_SET_LIMIT');
        const q = readCtLimitReq(dv, 0);
        if (q.target === CtLimitTarget.GLOBAL) {
          // as ferryd: 0 (or more than it reserved) is its capacity; clear does not matter here
          this.maxConns = q.limit === 0 || q.limit > DEFAULT_MAX_CONNS ? DEFAULT_MAX_CONNS : q.limit;
        } else if (q.target === CtLimitTarget.DEFAULT_ZONE) {
          this.defaultZoneLimit = q.clear ? 0 : q.limit;
        } else if (q.target === CtLimitTarget.ZONE) {
          if (q.clear) this.zoneLimits.delete(q.zone);
          else this.zoneLimits.set(q.zone, q.limit);
        } else {
          return einval(`bad target ${q.target}`);
        }
        this.publish();
        this.fd.respond(r.reqId, Status.OK);
        return true;
      }
      case MsgType.CT_SET_TIMEOUT_POLICY: {
        const dv = this.body(r, 48);
        if (!dv) return einval('short CT_SET_TIMEOUT_POLICY');
        const q: CtTimeoutPolicyReq = readCtTimeoutPolicyReq(dv, 0);
        if (q.clear) this.policies.delete(q.zone);
        else this.policies.set(q.zone, q.seconds);
        this.fd.respond(r.reqId, Status.OK);
        return true;
      }
      case MsgType.CT_SET_OPTIONS: {
        const dv = this.body(r, 8);
        if (!dv) return einval('short CT_SET_OPTIONS');
        const q = readCtOptionsReq(dv, 0);
        this.tcpSeqCheck = q.tcp_seq_check !== 0;
        this.events = q.events !== 0;
        this.fd.respond(r.reqId, Status.OK);
        return true;
      }
      default:
        return false;
    }
  }

  /** Entries from cursor (an id) on, matching, at least max (plus dumpOverrun), in parts with MORE. */
  private dump(reqId: bigint, q: { filter: CtFilter; cursor: bigint; max_entries: number }): void {
    this.served.dumps++;
    const ids = [...this.entries.keys()].sort((a, b) => a - b);
    const out: FakeCtEntry[] = [];
    let next = Number(q.cursor);
    const stopAt = q.max_entries === 0 ? Infinity : q.max_entries + this.dumpOverrun;
    for (const id of ids) {
      if (id < next) continue;
      if (out.length >= stopAt) break;
      next = id + 1;
      const e = this.entries.get(id)!;
      if (filterMatches(e, q.filter)) out.push(e);
    }
    // the answer must fit the room there is: stop early and let control go on from the cursor
    const per = Math.min(this.partEntries, CT_DUMP_ENTRIES);
    const room = Math.min(this.partLimit, this.fd.responseRoom());
    if (room <= 0) return; // the real ferryd waits for room; tests do not get here
    let done = !ids.some((id) => id >= next);
    if (Math.ceil(out.length / per) > room) {
      out.length = room * per;
      next = out.at(-1)!.id + 1;
      done = false;
    }
    const nParts = Math.max(1, Math.ceil(out.length / per));
    for (let p = 0; p < nParts; p++) {
      const chunk = out.slice(p * per, (p + 1) * per);
      const last = p === nParts - 1;
      this.served.parts++;
      this.fd.respondPart(reqId, {
        status: Status.OK, flags: last ? 0 : MsgFlag.MORE, payloadLen: CT_DUMP_RESP.size,
        payload: (dv, off) => {
          const D = CT_DUMP_RESP.fields;
          dv.setBigUint64(off + D.next_cursor.offset, last && !done ? BigInt(next) : 0n, true);
          dv.setUint16(off + D.n_entries.offset, chunk.length, true);
          dv.setUint8(off + D.done.offset, last && done ? 1 : 0);
          chunk.forEach((e, i) => writeCtEntry(dv, off + D.entries.offset + i * CT_ENTRY.size, e));
        },
      });
    }
  }

  /**
   * Expectations from cursor (an id) on, as many as the room in the response ring (or expPartLimit)
   * takes, CT_EXP_DUMP_ENTRIES a part, MORE on all but the last; the last says where to go on, or done.
   */
  private expDump(reqId: bigint, cursor: number): void {
    this.served.expDumps++;
    const out = [...this.expectations.values()].filter((e) => e.id >= cursor).sort((a, b) => a.id - b.id);
    const room = Math.min(this.expPartLimit, this.fd.responseRoom());
    if (room <= 0) return; // the real ferryd waits for room; tests do not get here
    let done = true;
    let next = 0;
    if (Math.ceil(out.length / CT_EXP_DUMP_ENTRIES) > room) {
      out.length = room * CT_EXP_DUMP_ENTRIES;
      next = out.at(-1)!.id + 1;
      done = false;
    }
    const nParts = Math.max(1, Math.ceil(out.length / CT_EXP_DUMP_ENTRIES));
    const E = CT_EXP_DUMP_RESP.fields;
    for (let p = 0; p < nParts; p++) {
      const chunk = out.slice(p * CT_EXP_DUMP_ENTRIES, (p + 1) * CT_EXP_DUMP_ENTRIES);
      const last = p === nParts - 1;
      this.served.expParts++;
      this.fd.respondPart(reqId, {
        status: Status.OK, flags: last ? 0 : MsgFlag.MORE, payloadLen: CT_EXP_DUMP_RESP.size,
        payload: (dv, off) => {
          dv.setUint32(off + E.next_cursor.offset, last ? next : 0, true);
          dv.setUint16(off + E.n_entries.offset, chunk.length, true);
          dv.setUint8(off + E.done.offset, last && done ? 1 : 0);
          chunk.forEach((e, i) => writeCtExpEntry(dv, off + E.entries.offset + i * CT_EXP_ENTRY.size, e));
        },
      });
    }
  }

  private stats(reqId: bigint, zoneStart: number): void {
    this.served.stats++;
    const byProto = new Array<bigint>(6).fill(0n);
    const byState = new Array<bigint>(11).fill(0n);
    const zones = new Map<number, number>();
    for (const e of this.entries.values()) {
      byProto[protoIndex(e.proto)]!++;
      if (e.proto === 6) byState[Math.max(e.state_orig, e.state_reply)]!++;
      zones.set(e.zone, (zones.get(e.zone) ?? 0) + 1);
    }
    const from = [...zones.keys()].filter((z) => z >= zoneStart).sort((a, b) => a - b);
    const page = from.slice(0, CT_STATS_ZONES);
    const nextZone = from.length > CT_STATS_ZONES ? from[CT_STATS_ZONES]! : CT_ZONE_NONE;
    this.fd.respondPart(reqId, {
      status: Status.OK, payloadLen: CT_STATS_RESP.size,
      payload: (dv, off) => writeCtStatsResp(dv, off, {
        total: BigInt(this.entries.size), by_proto: byProto, by_tcp_state: byState, next_zone: nextZone, n_zones: page.length, pad0: 0,
        zones: page.map((zone) => ({ zone, pad0: 0, count: zones.get(zone)! })),
      }),
    });
  }
}
