// Conntrack operations: dumps paged from ferryd (never the whole table in memory), flushes, counts,
// and the desired settings (limits, timeout policies, options) that every new ferryd is given.
import {
  CT_ZONE_NONE, CtLimitTarget, CtProtoIndexName, CtTcpStateName, MsgType, REQ_RING_SLOTS, Status,
} from '../gen/proto';
import type { ChannelResponse, ControlChannel, RequestSpec } from '../channel';
import { FerrydStatusError } from '../errors';
import type { FerrydConnection, Log } from '../ferryd';
import type { CtEntry, CtExpEntry } from '../gen/proto';
import { badRequest } from '../problem';
import { DesiredStateStore, MemoryStateStore, StateMirror, StateOrigin } from '../state/store';
import { ChangeQueue } from '../state/change-queue';
import { CtEventHub, CtEventHubOptions, CtEventStream } from './events';
import { CtFilterSpec } from './filter';
import { LimitsBody, OptionsBody, TIMEOUT_ATTRS, TimeoutPolicyBody } from './schema';
import {
  DumpPart, ExpDumpPart, StatsPage, ctDumpBody, ctExpDumpBody, ctFlushBody, ctLimitBody, ctOptionsBody, ctStatsBody, ctTimeoutPolicyBody,
  readDumpPart, readExpDumpPart, readStatsPage,
} from './wire';

export interface ConntrackOptions {
  log?: Log;
  /** Entries asked of ferryd per CT_DUMP (default 4096: ~700 response records, well inside the 1024-slot ring). */
  pageEntries?: number;
  events?: CtEventHubOptions;
  /** Where the desired state is kept durably (default: in memory). */
  state?: DesiredStateStore;
}

/** The desired state's namespaces (see state/store.ts). */
const NS = { settings: 'ct-settings', zoneLimits: 'ct-zone-limits', policies: 'ct-timeout-policies' } as const;

/** Where a dump goes on: ferryd's cursor, and entries of that request already given out. */
export interface DumpPosition {
  cursor: bigint;
  skip: number;
}

export interface StatsView {
  total: string;
  by_proto: Record<string, string>;
  by_tcp_state: Record<string, string>;
  zones: { zone: number; count: string }[];
  /** from the header: the global limit in force and the tracker's counters */
  max_conns: string;
  counters: { expired: string; flushed: string; sweeps: string; events_dropped: string };
}

export interface LimitsView {
  max_conns: number | null;
  default_zone_limit: number | null;
  zones: { zone: number; limit: number; count: string | null }[];
  /** live, from ferryd's header (null while it is down) */
  connections: string | null;
  max_conns_in_force: string | null;
}

export type PolicyView = { zone: number } & Record<string, number>;

export interface OptionsView {
  tcp_seq_check: boolean;
  events: boolean;
  /** ferryd publishes events now: events is on, or someone reads GET /v1/conntrack/events */
  events_in_effect: boolean;
  event_subscribers: number;
}

type Where = { pointer: string; what: string };
type Op = { spec: RequestSpec; at: Where; apply?: () => void };

const MAX_U64 = (1n << 64n) - 1n;
const CHUNK = REQ_RING_SLOTS / 2;

function ok(r: ChannelResponse, at?: Where): ChannelResponse {
  if (r.status !== Status.OK) throw new FerrydStatusError(r.status, r.statusName, r.message, at?.pointer, at ? `${at.what}: ` : '');
  return r;
}

/** "C" or "C+K" (cursor, entries of its answer already given out). */
export function parseCursor(s: string, pointer = '?cursor'): DumpPosition {
  const m = /^(\d{1,20})(?:\+(\d{1,10}))?$/.exec(s);
  const cursor = m ? BigInt(m[1]!) : -1n;
  const skip = m?.[2] !== undefined ? Number(m[2]) : 0;
  if (!m || cursor > MAX_U64 || skip > 0xffffffff) throw badRequest(pointer, 'is not a cursor this API gave out');
  return { cursor, skip };
}

export const formatCursor = (p: DumpPosition): string => (p.skip ? `${p.cursor}+${p.skip}` : String(p.cursor));

export class ConntrackService {
  readonly pageEntries: number;
  readonly events: CtEventHub;
  private readonly log?: Log;
  private readonly changes = new ChangeQueue((origin) => this.mirror.sync(this.desired(), origin));
  /** desired settings */
  private maxConns: number | null = null;
  private defaultZoneLimit: number | null = null;
  private readonly zoneLimits = new Map<number, number>();
  private readonly policies = new Map<number, Record<string, number>>();
  private readonly opts = { tcpSeqCheck: true, events: false };
  /** what ferryd was last told about events (null: nothing yet, or a new ferryd) */
  private sent: boolean | null = null;

  private get eventsSent(): boolean | null {
    return this.sent;
  }

  private set eventsSent(v: boolean | null) {
    this.sent = v;
    this.events.setFerrydPublishes(v === true);
  }

  private readonly mirror: StateMirror;

  constructor(private readonly ferryd: FerrydConnection, options: ConntrackOptions = {}) {
    this.log = options.log;
    const state = options.state ?? new MemoryStateStore();
    this.mirror = new StateMirror(state, Object.values(NS));
    this.restore(state);
    this.mirror.prime(this.desired());
    this.pageEntries = options.pageEntries ?? 4096;
    this.events = new CtEventHub(ferryd, options.events);
    ferryd.addReplayStep('the conntrack settings', (chan) => this.serial(() => this.replay(chan)));
    ferryd.on('down', () => { this.eventsSent = null; });
    this.events.on('change', () => {
      this.syncEvents().catch((e: Error) => this.log?.warn(`conntrack events: ${e.message}`));
    });
  }

  /** Runs fn after every earlier change, then makes what it changed durable before the caller hears back. */
  private serial<T>(fn: () => Promise<T>, origin: StateOrigin = 'request'): Promise<T> {
    return this.changes.run(fn, origin);
  }

  /** The desired settings as the store keeps them. */
  private desired(): Map<string, Map<string, unknown>> {
    const settings = new Map<string, unknown>([['options', { ...this.opts }]]);
    if (this.maxConns !== null) settings.set('max_conns', this.maxConns);
    if (this.defaultZoneLimit !== null) settings.set('default_zone_limit', this.defaultZoneLimit);
    return new Map<string, Map<string, unknown>>([
      [NS.settings, settings],
      [NS.zoneLimits, new Map([...this.zoneLimits].map(([z, l]) => [String(z), l]))],
      [NS.policies, new Map([...this.policies].map(([z, p]) => [String(z), p]))],
    ]);
  }

  /** The settings a previous ferry-control left (a restart starts from them). */
  private restore(state: DesiredStateStore): void {
    this.load((ns) => state.entries(ns));
  }

  /** Sets the desired settings from the store's entries (what they leave out goes back to ferryd's own). */
  private load(entries: (ns: string) => ReadonlyMap<string, unknown>): void {
    const s = entries(NS.settings);
    this.maxConns = null;
    this.defaultZoneLimit = null;
    this.zoneLimits.clear();
    this.policies.clear();
    this.opts.tcpSeqCheck = true;
    this.opts.events = false;
    if (typeof s.get('max_conns') === 'number') this.maxConns = s.get('max_conns') as number;
    if (typeof s.get('default_zone_limit') === 'number') this.defaultZoneLimit = s.get('default_zone_limit') as number;
    const o = s.get('options') as Partial<{ tcpSeqCheck: boolean; events: boolean }> | undefined;
    if (o) Object.assign(this.opts, o);
    for (const [z, l] of entries(NS.zoneLimits)) this.zoneLimits.set(Number(z), l as number);
    for (const [z, p] of entries(NS.policies)) this.policies.set(Number(z), p as Record<string, number>);
  }

  /**
   * Cluster mode: the desired settings become the fleet's (entries by namespace), ferryd following:
   * what was set and is no longer is removed, then everything desired is sent again (idempotent).
   */
  reconcile(entries: (ns: string) => ReadonlyMap<string, unknown>, origin: StateOrigin = 'cluster'): Promise<boolean> {
    return this.serial(async () => {
      if (!this.ferryd.ready) return false;
      const before = { max: this.maxConns, def: this.defaultZoneLimit, zones: new Set(this.zoneLimits.keys()), policies: new Set(this.policies.keys()) };
      this.load(entries);
      const chan = this.ferryd.channel();
      const at = (what: string): Where => ({ pointer: '', what });
      const ops: Op[] = [];
      if (before.max !== null && this.maxConns === null) ops.push(this.limitOp(CtLimitTarget.GLOBAL, 0, 0, true, at('max_conns')));
      if (before.def !== null && this.defaultZoneLimit === null) ops.push(this.limitOp(CtLimitTarget.DEFAULT_ZONE, 0, 0, false, at('default_zone_limit')));
      for (const z of before.zones) if (!this.zoneLimits.has(z)) ops.push(this.limitOp(CtLimitTarget.ZONE, z, 0, true, at(`limit of zone ${z}`)));
      for (const z of before.policies) {
        if (!this.policies.has(z)) ops.push({ spec: { type: MsgType.CT_SET_TIMEOUT_POLICY, body: ctTimeoutPolicyBody(z, [], true) }, at: at(`timeout policy of zone ${z}`) });
      }
      for (const e of await this.send(chan, ops)) this.log?.warn(`cluster: ${e.message}`);
      await this.replay(chan);
      return true;
    }, origin);
  }

  // ---- dumps -------------------------------------------------------------------------------
  /**
   * One CT_DUMP from pos for up to `want` entries. ferryd may give more than it was asked (it finishes
   * a hash chain) or fewer (its response ring filled up): what is beyond `want` is left for the next
   * call, which asks again from the same cursor and skips what was given out.
   */
  async dumpChunk(filter: CtFilterSpec, pos: DumpPosition, want: number): Promise<{ entries: CtEntry[]; next: DumpPosition | null }> {
    const max = Math.min(0xffffffff, want + pos.skip);
    const got: CtEntry[] = [];
    let last: DumpPart | null = null;
    const { last: r } = await this.ferryd.requestParts(MsgType.CT_DUMP, ctDumpBody(filter, pos.cursor, max), (part) => {
      if (part.status !== Status.OK) return; // the last part carries the refusal
      const p = readDumpPart(part);
      for (const e of p.entries) got.push(e);
      if (!part.more) last = p;
    });
    ok(r, { pointer: '', what: 'CT_DUMP' });
    const end = last as DumpPart | null;
    if (!end) throw new Error('ferryd answered CT_DUMP without a ct_dump_resp');
    const rest = got.slice(pos.skip);
    if (rest.length > want) return { entries: rest.slice(0, want), next: { cursor: pos.cursor, skip: pos.skip + want } };
    if (end.done) return { entries: rest, next: null };
    if (rest.length === 0 && end.nextCursor === pos.cursor) {
      throw new FerrydStatusError(Status.EINTERNAL, 'EINTERNAL', `CT_DUMP from cursor ${pos.cursor} neither gave entries nor moved on`);
    }
    return { entries: rest, next: { cursor: end.nextCursor, skip: 0 } };
  }

  /** Every entry selected, a ferryd page at a time (the next CT_DUMP is sent when the consumer asks). */
  async *entries(filter: CtFilterSpec, from: DumpPosition = { cursor: 0n, skip: 0 }): AsyncGenerator<CtEntry[]> {
    let pos: DumpPosition | null = from;
    while (pos) {
      const chunk = await this.dumpChunk(filter, pos, this.pageEntries);
      pos = chunk.next;
      if (chunk.entries.length || !pos) yield chunk.entries;
    }
  }

  /** A page of at most limit entries from cursor; next_cursor null when the table was walked to its end. */
  async page(filter: CtFilterSpec, limit: number, cursor?: string): Promise<{ entries: CtEntry[]; next_cursor: string | null }> {
    let pos: DumpPosition | null = cursor === undefined ? { cursor: 0n, skip: 0 } : parseCursor(cursor);
    const entries: CtEntry[] = [];
    while (pos && entries.length < limit) {
      const chunk = await this.dumpChunk(filter, pos, Math.min(limit - entries.length, this.pageEntries));
      for (const e of chunk.entries) entries.push(e);
      pos = chunk.next;
    }
    return { entries, next_cursor: pos ? formatCursor(pos) : null };
  }

  // ---- ALG expectations ---------------------------------------------------------------------
  /**
   * One CT_EXP_DUMP from pos (ferryd answers as much as its response ring has room for; the last part
   * says where to go on). zone, when given, is applied here; pos.skip counts the entries selected
   * from that cursor already given out. At most `want` are returned; the rest is left for the next
   * call, which asks again from the same cursor and skips them.
   */
  async expectationChunk(zone: number | undefined, pos: DumpPosition, want: number): Promise<{ entries: CtExpEntry[]; next: DumpPosition | null }> {
    const got: CtExpEntry[] = [];
    let last: ExpDumpPart | null = null;
    const { last: r } = await this.ferryd.requestParts(MsgType.CT_EXP_DUMP, ctExpDumpBody(Number(pos.cursor)), (part) => {
      if (part.status !== Status.OK) return; // the last part carries the refusal
      const p = readExpDumpPart(part);
      for (const e of p.entries) if (zone === undefined || e.zone === zone) got.push(e);
      if (!part.more) last = p;
    });
    ok(r, { pointer: '', what: 'CT_EXP_DUMP' });
    const end = last as ExpDumpPart | null;
    if (!end) throw new Error('ferryd answered CT_EXP_DUMP without a ct_exp_dump_resp');
    const rest = got.slice(pos.skip);
    if (rest.length > want) return { entries: rest.slice(0, want), next: { cursor: pos.cursor, skip: pos.skip + want } };
    if (end.done) return { entries: rest, next: null };
    if (BigInt(end.nextCursor) === pos.cursor) {
      throw new FerrydStatusError(Status.EINTERNAL, 'EINTERNAL', `CT_EXP_DUMP from cursor ${pos.cursor} did not move on and is not done`);
    }
    // a shorter answer than the one the skip was counted on (less room in the ring): the entries
    // still to skip come first from the next cursor
    return { entries: rest, next: { cursor: BigInt(end.nextCursor), skip: Math.max(0, pos.skip - got.length) } };
  }

  /** Every expectation (of zone, when given), one CT_EXP_DUMP answer at a time as the consumer asks. */
  async *expectations(zone?: number): AsyncGenerator<CtExpEntry[]> {
    let pos: DumpPosition | null = { cursor: 0n, skip: 0 };
    while (pos) {
      const chunk = await this.expectationChunk(zone, pos, Infinity);
      pos = chunk.next;
      if (chunk.entries.length || !pos) yield chunk.entries;
    }
  }

  /** A page of at most limit expectations from cursor; next_cursor null when ferryd's table was walked to its end. */
  async expectationPage(zone: number | undefined, limit: number, cursor?: string): Promise<{ entries: CtExpEntry[]; next_cursor: string | null }> {
    let pos: DumpPosition | null = cursor === undefined ? { cursor: 0n, skip: 0 } : parseCursor(cursor);
    if (pos.cursor > 0xffffffffn) throw badRequest('?cursor', 'is not a cursor this API gave out');
    const entries: CtExpEntry[] = [];
    while (pos && entries.length < limit) {
      const chunk = await this.expectationChunk(zone, pos, limit - entries.length);
      for (const e of chunk.entries) entries.push(e);
      pos = chunk.next;
    }
    return { entries, next_cursor: pos ? formatCursor(pos) : null };
  }

  /** Removes the entries selected; returns how many ferryd removed. */
  async flush(filter: CtFilterSpec): Promise<bigint> {
    const r = ok(await this.ferryd.request(MsgType.CT_FLUSH, ctFlushBody(filter)), { pointer: '', what: 'CT_FLUSH' });
    return r.value;
  }

  // ---- counts ------------------------------------------------------------------------------
  private async statsPage(zoneStart: number): Promise<StatsPage> {
    let page: StatsPage | null = null;
    const { last } = await this.ferryd.requestParts(MsgType.CT_STATS, ctStatsBody(zoneStart), (part) => {
      if (part.status === Status.OK && !part.more) page = readStatsPage(part);
    });
    ok(last, { pointer: '', what: 'CT_STATS' });
    if (!page) throw new Error('ferryd answered CT_STATS without a ct_stats_resp');
    const p = page as StatsPage;
    if (p.nextZone !== CT_ZONE_NONE && p.nextZone <= zoneStart) {
      throw new FerrydStatusError(Status.EINTERNAL, 'EINTERNAL', `CT_STATS from zone ${zoneStart} answered next_zone ${p.nextZone}`);
    }
    return p;
  }

  /** Totals by protocol and TCP state, and every zone with entries (paged through CT_STATS). */
  async stats(): Promise<StatsView> {
    const first = await this.statsPage(0);
    const zones = first.zones.map((z) => ({ zone: z.zone, count: String(z.count) }));
    for (let next = first.nextZone; next !== CT_ZONE_NONE;) {
      const p = await this.statsPage(next);
      for (const z of p.zones) zones.push({ zone: z.zone, count: String(z.count) });
      next = p.nextZone;
    }
    const named = (names: Record<number, string>, values: bigint[]): Record<string, string> =>
      Object.fromEntries(Object.entries(names).map(([i, n]) => [n, String(values[Number(i)] ?? 0n)]));
    const lower = Object.fromEntries(Object.entries(CtProtoIndexName).map(([i, n]) => [i, n.toLowerCase()]));
    const c = this.ferryd.channel().segment.ctTotals();
    return {
      total: first.total.toString(),
      by_proto: named(lower, first.byProto),
      by_tcp_state: named(CtTcpStateName, first.byTcpState),
      zones,
      max_conns: c.maxConns.toString(),
      counters: { expired: c.expired.toString(), flushed: c.flushed.toString(), sweeps: c.sweeps.toString(), events_dropped: c.eventsDropped.toString() },
    };
  }

  /** Live counts of these zones: one CT_STATS per run of zones it does not cover yet. */
  private async zoneCounts(zones: number[]): Promise<Map<number, number>> {
    const want = [...zones].sort((a, b) => a - b);
    const out = new Map<number, number>();
    let i = 0;
    while (i < want.length) {
      const p = await this.statsPage(want[i]!);
      const got = new Map(p.zones.map((z) => [z.zone, z.count]));
      const end = p.nextZone === CT_ZONE_NONE ? Infinity : p.nextZone;
      while (i < want.length && want[i]! < end) {
        out.set(want[i]!, got.get(want[i]!) ?? 0);
        i++;
      }
    }
    return out;
  }

  // ---- desired settings --------------------------------------------------------------------
  /** Sends ops in ring-sized groups (ferryd applies them in order); applies each one it accepted; returns its refusals. */
  private async send(chan: ControlChannel, ops: Op[]): Promise<FerrydStatusError[]> {
    const refused: FerrydStatusError[] = [];
    await chan.requestInGroups(ops.map((o) => o.spec), CHUNK, (a, first) => {
      for (let j = 0; j < a.status.length; j++) {
        const op = ops[first + j]!;
        const r = a.refused.get(j);
        if (!r) op.apply?.();
        else refused.push(new FerrydStatusError(r.status, r.statusName, r.message, op.at.pointer, `${op.at.what}: `));
      }
    });
    return refused;
  }

  private limitOp(target: number, zone: number, limit: number, clear: boolean, at: Where, apply?: () => void): Op {
    return { spec: { type: MsgType.CT_SET_LIMIT, body: ctLimitBody(target, zone, limit, clear) }, at, apply };
  }

  async limits(): Promise<LimitsView> {
    const zones = [...this.zoneLimits].sort(([a], [b]) => a - b);
    let counts: Map<number, number> | null = null;
    let totals: { conns: bigint; maxConns: bigint } | null = null;
    if (this.ferryd.ready) {
      totals = this.ferryd.segment!.ctTotals();
      try {
        counts = zones.length ? await this.zoneCounts(zones.map(([z]) => z)) : new Map();
      } catch (e) {
        this.log?.warn(`conntrack limits: zone counts unavailable: ${(e as Error).message}`);
      }
    }
    return {
      max_conns: this.maxConns,
      default_zone_limit: this.defaultZoneLimit,
      zones: zones.map(([zone, limit]) => ({ zone, limit, count: counts?.has(zone) ? String(counts.get(zone)) : null })),
      connections: totals ? totals.conns.toString() : null,
      max_conns_in_force: totals ? totals.maxConns.toString() : null,
    };
  }

  /** Applies the limits given (fields left out stay as they are; null removes a setting). */
  setLimits(body: LimitsBody): Promise<LimitsView> {
    const seen = new Set<number>();
    (body.zones ?? []).forEach((z, i) => {
      if (seen.has(z.zone)) throw badRequest(`/zones/${i}/zone`, `zone ${z.zone} is given twice`);
      seen.add(z.zone);
    });
    return this.serial(async () => {
      const chan = this.ferryd.channel();
      const ops: Op[] = [];
      if (body.max_conns !== undefined) {
        const v = body.max_conns;
        ops.push(this.limitOp(CtLimitTarget.GLOBAL, 0, v ?? 0, v === null, { pointer: '/max_conns', what: 'max_conns' }, () => { this.maxConns = v; }));
      }
      if (body.default_zone_limit !== undefined) {
        const v = body.default_zone_limit;
        ops.push(this.limitOp(CtLimitTarget.DEFAULT_ZONE, 0, v ?? 0, false, { pointer: '/default_zone_limit', what: 'default_zone_limit' }, () => { this.defaultZoneLimit = v; }));
      }
      (body.zones ?? []).forEach(({ zone, limit }, i) => {
        ops.push(this.limitOp(CtLimitTarget.ZONE, zone, limit ?? 0, limit === null, { pointer: `/zones/${i}/limit`, what: `zones[${i}]` }, () => {
          if (limit === null) this.zoneLimits.delete(zone);
          else this.zoneLimits.set(zone, limit);
        }));
      });
      const refused = await this.send(chan, ops);
      if (refused.length) throw refused[0]!;
      return this.limits();
    });
  }

  policyList(): PolicyView[] {
    return [...this.policies].sort(([a], [b]) => a - b).map(([zone, p]) => ({ zone, ...p }));
  }

  policy(zone: number): PolicyView | null {
    const p = this.policies.get(zone);
    return p ? { zone, ...p } : null;
  }

  private static seconds(p: Record<string, number>): number[] {
    return TIMEOUT_ATTRS.map((a) => p[a] ?? 0);
  }

  /** A zone's timeout policy becomes exactly body (attributes left out: ferryd's defaults). */
  setPolicy(zone: number, body: TimeoutPolicyBody): Promise<PolicyView> {
    const p: Record<string, number> = {};
    for (const a of TIMEOUT_ATTRS) if (body[a] !== undefined) p[a] = body[a]!;
    return this.serial(async () => {
      const r = await this.ferryd.request(MsgType.CT_SET_TIMEOUT_POLICY, ctTimeoutPolicyBody(zone, ConntrackService.seconds(p), false));
      ok(r, { pointer: '', what: `timeout policy of zone ${zone}` });
      this.policies.set(zone, p);
      return { zone, ...p };
    });
  }

  /** The zone goes back to ferryd's default timeouts (sent even when not in the desired state: a leftover is cleared too). */
  deletePolicy(zone: number): Promise<void> {
    return this.serial(async () => {
      const r = await this.ferryd.request(MsgType.CT_SET_TIMEOUT_POLICY, ctTimeoutPolicyBody(zone, [], true));
      ok(r, { pointer: '', what: `timeout policy of zone ${zone}` });
      this.policies.delete(zone);
    });
  }

  private eventsWanted(): boolean {
    return this.opts.events || this.events.size > 0;
  }

  options(): OptionsView {
    return {
      tcp_seq_check: this.opts.tcpSeqCheck,
      events: this.opts.events,
      events_in_effect: this.eventsSent === true,
      event_subscribers: this.events.size,
    };
  }

  setOptions(body: OptionsBody): Promise<OptionsView> {
    return this.serial(async () => {
      const tcpSeqCheck = body.tcp_seq_check ?? this.opts.tcpSeqCheck;
      const events = body.events ?? this.opts.events;
      const effective = events || this.events.size > 0;
      ok(await this.ferryd.request(MsgType.CT_SET_OPTIONS, ctOptionsBody(tcpSeqCheck, effective)), { pointer: '', what: 'options' });
      this.opts.tcpSeqCheck = tcpSeqCheck;
      this.opts.events = events;
      this.eventsSent = effective;
      return this.options();
    });
  }

  /** Tells ferryd to publish events or not, as subscribers and options want (no-op while it is down: the replay does it). */
  syncEvents(): Promise<void> {
    return this.serial(async () => {
      const want = this.eventsWanted();
      if (this.eventsSent === want || !this.ferryd.ready) return;
      ok(await this.ferryd.request(MsgType.CT_SET_OPTIONS, ctOptionsBody(this.opts.tcpSeqCheck, want)), { pointer: '', what: 'options' });
      this.eventsSent = want;
      this.log?.info(`conntrack events ${want ? 'on' : 'off'} in ferryd (${this.events.size} subscribers, events option ${this.opts.events})`);
    });
  }

  /** A new events subscriber; ferryd's events are on before this resolves. 503 while ferryd is down. */
  async openEvents(): Promise<CtEventStream> {
    this.ferryd.channel();
    const s = this.events.subscribe();
    try {
      await this.syncEvents();
    } catch (e) {
      s.destroy();
      throw e;
    }
    return s;
  }

  // ---- a new ferryd ------------------------------------------------------------------------
  /**
   * Gives a freshly attached ferryd the desired settings: options (events on if anyone listens), limits,
   * timeout policies. Refusals are logged and skipped (retrying would not change ferryd's mind);
   * a ferryd that does not answer fails the replay, which the connection manager retries.
   */
  async replay(chan: ControlChannel): Promise<void> {
    const events = this.eventsWanted();
    const at = (what: string): Where => ({ pointer: '', what });
    const ops: Op[] = [
      { spec: { type: MsgType.CT_SET_OPTIONS, body: ctOptionsBody(this.opts.tcpSeqCheck, events) }, at: at('options'), apply: () => { this.eventsSent = events; } },
    ];
    if (this.maxConns !== null) ops.push(this.limitOp(CtLimitTarget.GLOBAL, 0, this.maxConns, false, at('max_conns')));
    if (this.defaultZoneLimit !== null) ops.push(this.limitOp(CtLimitTarget.DEFAULT_ZONE, 0, this.defaultZoneLimit, false, at('default_zone_limit')));
    for (const [zone, limit] of this.zoneLimits) ops.push(this.limitOp(CtLimitTarget.ZONE, zone, limit, false, at(`limit of zone ${zone}`)));
    for (const [zone, p] of this.policies) {
      ops.push({ spec: { type: MsgType.CT_SET_TIMEOUT_POLICY, body: ctTimeoutPolicyBody(zone, ConntrackService.seconds(p), false) }, at: at(`timeout policy of zone ${zone}`) });
    }
    const refused = await this.send(chan, ops);
    for (const e of refused) this.log?.warn(`replay: ${e.message}`);
    this.log?.info(`replayed conntrack settings to ferryd: options, ${ops.length - 1} limits and timeout policies (${refused.length} refused)`);
  }
}
