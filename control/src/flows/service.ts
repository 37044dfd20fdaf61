// Flow operations: compile (ovs-ofctl text or JSON), program ferryd (plain requests or atomic bundles,
// one at a time), keep the desired state, and show it.
import { MsgFlag, MsgType, Status } from '../gen/proto';
import { FerrydStatusError } from '../errors';
import type { BatchAnswers, ChannelResponse, ControlChannel } from '../channel';
import type { FerrydConnection, Log } from '../ferryd';
import type { FerryEvent } from '../events';
import { flowAddBody, flowDelBody, writeFlowAdd, writeFlowDel } from '../messages';
import { HttpProblem, badRequest, notFound, ProblemError } from '../problem';
import type { PortSnapshot } from '../shm/segment';
import { formatCookie, formatFlowId, parseFlowId } from './flow-id';
import {
  CompiledFlow, FlowInput, FlowJson, FlowParts, FlowSyntaxError, PortResolver, KEY_SIZE, buildMatch, compileFlow, compileFlowParts, cookieOf, flowJson, packedKey, packedMask, unpackInto,
  eachFlowLine, formatFlow, jsonFlowInput, jsonMatchItems, matchCovers, parseFlowText,
} from './ofctl';
import { checkFlowBody, FlowSelector } from './schema';
import { FlowStore, StoredFlow, compareFlows } from './store';
import { FlowRows, IdIndex } from './rows';
import { DesiredStateStore, MemoryStateStore, StateOrigin } from '../state/store';
import { ChangeQueue } from '../state/change-queue';
import { FLOWS_NS, FlowRecord, flowFromRecord, flowRecordText } from './persist';
import { validationErrors } from '../problem';

/** A flow as the API shows it. 64-bit counters are strings; null while ferryd is unavailable. */
export interface FlowView extends FlowJson {
  id: string;
  n_packets: string | null;
  n_bytes: string | null;
  duration_sec: number;
  idle_age_sec: number | null;
  text: string;
}

/** A selection of flows (del-flows / dump-flows). */
export interface Selection {
  table?: number;
  cookie?: bigint;
  cookieMask?: bigint;
  /** the match to compare with: strict = equal (with priority), else flows at least as specific */
  match?: { key: Uint8Array; mask: Uint8Array };
  priority?: number;
  strict?: boolean;
}

type Where = { pointer: string; where: string };
/** Where op i of a change came from in its request (made only when it is refused). */
type At = (i: number) => Where;
const NOWHERE: Where = { pointer: '', where: '' };
const nowhere: At = () => NOWHERE;

export interface BulkResult { added: number; replaced: number; deleted: number }

const COMMIT_TIMEOUT_MS = 60_000;
const round3 = (x: number): number => Math.round(x * 1000) / 1000;
const esc = (s: string | number): string => String(s).replace(/~/g, '~0').replace(/\//g, '~1');

function ok(r: ChannelResponse, at?: Where): ChannelResponse {
  if (r.status !== Status.OK) throw statusError(r, at);
  return r;
}

/** A refusal of ferryd, pointing at the item (and its action when ferryd's message names one). */
function statusError(r: ChannelResponse, at?: Where): FerrydStatusError {
  let pointer = at?.pointer;
  const m = /^actions\[(\d+)\]/.exec(r.message);
  if (pointer !== undefined && m) pointer += `/actions/${m[1]}`;
  return new FerrydStatusError(r.status, r.statusName, r.message, pointer, at?.where ?? '');
}

/** A FlowSyntaxError as a 400 problem: pointer = base + its path, detail = where + its message. */
export function syntaxProblem(e: FlowSyntaxError, base: string, where: string): HttpProblem {
  const pointer = base + e.path.map((p) => '/' + esc(p)).join('');
  return badRequest(pointer, e.reason, `${where}${e.message}`);
}

const scratchKey = new Uint8Array(KEY_SIZE);
const scratchMask = new Uint8Array(KEY_SIZE);
const scratchPair: [Uint8Array, Uint8Array] = [scratchKey, scratchMask];

/** f's key and mask, unpacked into arrays shared by every call (valid until the next): a selection
 * over 10^5 flows makes no arrays. */
function keyMaskOf(f: CompiledFlow): [Uint8Array, Uint8Array] {
  scratchKey.fill(0);
  scratchMask.fill(0);
  unpackInto(f.at, scratchKey, 0, scratchMask, 0);
  return scratchPair;
}


export class FlowService {
  /** Every change to ferryd goes through here, one at a time (ferryd keeps one open bundle). */
  private readonly changes = new ChangeQueue((origin) => this.persist(origin));
  readonly counters = { flowsRemoved: 0, bundles: 0, bundleFailures: 0, reconcileRefused: 0 };

  constructor(
    private readonly ferryd: FerrydConnection,
    readonly store: FlowStore = new FlowStore(),
    private readonly log?: Log,
    private readonly state: DesiredStateStore = new MemoryStateStore(),
  ) {
    this.restore();
    // the service keeps its flows: the durable store writes their changes but keeps no copy
    state.own?.(FLOWS_NS, () => this.store.records());
    ferryd.setReplayHandler((chan) => this.serial(() => this.replay(chan)));
    ferryd.on('event', (ev: FerryEvent) => this.onEvent(ev));
  }

  /** The flows of the durable desired state (a restarted ferry-control starts from them). */
  private restore(): void {
    let bad = 0;
    for (const [k, v] of this.state.entries(FLOWS_NS)) {
      try {
        this.store.restore(flowFromRecord(k, v as FlowRecord));
      } catch (e) {
        bad++;
        this.log?.error(`desired state: flow ${k} cannot be read back (${(e as Error).message}); left out`);
      }
    }
    if (this.store.size || bad) this.log?.info(`desired state: ${this.store.size} flows from ${this.state.where}${bad ? ` (${bad} unreadable)` : ''}`);
  }

  /**
   * Runs fn after every earlier change; then commits what it changed to the durable store before
   * the caller hears back (a failed fn may have changed the store too: e.g. flows ferryd had
   * timed out). A change is acknowledged only once it would survive a crash.
   */
  private serial<T>(fn: () => Promise<T>, origin: StateOrigin = 'request'): Promise<T> {
    return this.changes.run(fn, origin);
  }

  private async persist(origin: StateOrigin): Promise<void> {
    const changes = this.store.takeChanges();
    if (changes.length) await this.state.commit(changes, origin);
  }

  /**
   * Makes the desired flows exactly these entries (the desired state's 'flows' namespace, as the
   * fleet's store holds it in cluster mode), ferryd following in one bundle: what is new or
   * different is added, what is not there is deleted, what is the same is left alone (its counters
   * too). null while ferryd is not ready: nothing changed (the caller tries again when it is).
   */
  reconcile(entries: ReadonlyMap<string, unknown>, origin: StateOrigin = 'cluster'): Promise<BulkResult | null> {
    return this.serial(async () => {
      if (!this.ferryd.ready) return null;
      const want = new Map<bigint, StoredFlow>();
      for (const [k, v] of entries) {
        try {
          const f = flowFromRecord(k, v as FlowRecord);
          want.set(f.id, f);
        } catch (e) {
          this.counters.reconcileRefused++;
          this.log?.error(`desired state: flow ${k} cannot be read (${(e as Error).message}); left out`);
        }
      }
      const ops = new FlowRows(want.size);
      for (const f of this.store.values()) if (!want.has(f.id)) ops.pushDelete(f.id);
      for (const [id, f] of want) {
        const have = this.store.get(id);
        if (!have || flowRecordText(have) !== flowRecordText(f)) ops.push(f);
      }
      return this.commit(this.ferryd.channel(), ops, nowhere);
    }, origin);
  }

  // ---- compiling requests ----------------------------------------------------------------
  /** Ports flows may name besides ferryd's ethdevs: the tunnel ports (set by the tunnel service). */
  extraPorts: () => readonly { port_id: number; name: string }[] = () => [];

  /** Port numbers or names against ferryd's ports (and the tunnel ports). */
  portResolver(ethdevs: readonly PortSnapshot[]): PortResolver {
    const ports: readonly { port_id: number; name: string }[] = [...ethdevs, ...this.extraPorts()];
    return (ref, path, token) => {
      const byId = (n: number): { port_id: number } | undefined => ports.find((p) => p.port_id === n);
      const found = typeof ref === 'number' ? byId(ref) : ports.find((p) => p.name === ref);
      if (found) return found.port_id;
      const known = ports.map((p) => `${p.port_id} (${p.name})`).join(', ') || 'none';
      const what = typeof ref === 'number' ? `port ${ref}` : `port "${ref}"`;
      throw new FlowSyntaxError(path, token, `${what} does not exist on ferryd; its ports are: ${known}`);
    };
  }

  /** ferryd's ports (503 while it is down: names cannot be resolved nor ports checked). */
  ports(): PortResolver {
    return this.portResolver(this.ferryd.channel().segment.snapshot().ports);
  }

  /** One JSON flow at pointer base (e.g. "" or "/3"). */
  compileJson(body: unknown, base: string, where: string, ports: PortResolver, defaultTable?: number): CompiledFlow {
    if (!checkFlowBody.Check(body)) {
      const errors = validationErrors([...checkFlowBody.Errors(body)] as never, 'body').map((e) => ({ ...e, pointer: base + e.pointer }));
      throw new HttpProblem(400, `${where}invalid flow: ` + errors.map((e) => `${e.pointer || '(root)'} ${e.message}`).join('; '),
        errors, 'urn:ferry:problem:invalid-request', 'Invalid request');
    }
    try {
      const input = jsonFlowInput(body as Record<string, unknown>);
      if (input.table === undefined && defaultTable !== undefined) input.table = defaultTable;
      return compileFlow(input, ports);
    } catch (e) {
      if (e instanceof FlowSyntaxError) throw syntaxProblem(e, base, where);
      throw e;
    }
  }

  /** ovs-ofctl lines (one flow each; # comments). Errors point at /lines/N/... */
  compileText(text: string, ports: PortResolver, defaultTable?: number): { flows: FlowRows; at: At } {
    // each flow goes into its row at once: the compiled object dies young (a bulk load keeps no
    // 10^5 objects for the collector to copy)
    let lines = 1;
    for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) lines++;
    const flows = new FlowRows(lines);
    const lineNos = new Int32Array(lines);
    const lineAt = (n: number): Where => ({ pointer: `/lines/${n}`, where: `line ${n}: ` });
    const parts = new FlowParts();
    eachFlowLine(text, (n, line) => {
      try {
        const input = parseFlowText(line);
        if (input.table === undefined && defaultTable !== undefined) input.table = defaultTable;
        compileFlowParts(input, ports, parts);
        lineNos[flows.pushParts(parts)] = n;
      } catch (e) {
        if (e instanceof FlowSyntaxError) {
          const w = lineAt(n);
          throw syntaxProblem(e, w.pointer, w.where);
        }
        throw e;
      }
    });
    return { flows, at: (i) => lineAt(lineNos[i]!) };
  }

  /** A POST/PUT body: one JSON flow, a JSON array, or text. */
  compileBody(body: unknown, defaultTable?: number): { flows: FlowRows; at: At; single: boolean } {
    const ports = this.ports();
    if (typeof body === 'string') return { ...this.compileText(body, ports, defaultTable), single: false };
    if (Array.isArray(body)) {
      const at: At = (i) => ({ pointer: `/${i}`, where: `flows[${i}]: ` });
      const flows = new FlowRows(body.length);
      body.forEach((b, i) => flows.push(this.compileJson(b, at(i).pointer, at(i).where, ports, defaultTable)));
      return { flows, at, single: false };
    }
    return { flows: FlowRows.of([this.compileJson(body, '', '', ports, defaultTable)]), at: nowhere, single: true };
  }

  /** A del-flows / dump-flows selection; match may be JSON or ovs-ofctl text (with table=, priority=, cookie=V/M). */
  compileSelection(s: FlowSelector, base: string): Selection {
    const ports = this.ferryd.segment ? this.portResolver(this.ferryd.segment.snapshot().ports) : undefined;
    const sel: Selection = { table: s.table, priority: s.priority, strict: s.strict };
    try {
      let input: FlowInput = { items: [] };
      if (typeof s.match === 'string') input = parseFlowText(s.match, { actions: 'forbidden' });
      else if (s.match) input.items = jsonMatchItems(s.match, ['match']);
      const num = (v: unknown, max: number, name: string): number | undefined => {
        if (v === undefined) return undefined;
        if (typeof v !== 'number' || v > max) throw new FlowSyntaxError([name], name, `must be an integer 0..${max}`);
        return v;
      };
      sel.table ??= num(input.table, 254, 'table');
      sel.priority ??= num(input.priority, 65535, 'priority');
      const ck = s.cookie ?? (input.cookie as string | undefined);
      if (ck !== undefined) {
        const c = cookieOf(ck, true);
        sel.cookie = c.cookie;
        sel.cookieMask = c.mask;
        if (s.cookie_mask !== undefined) sel.cookieMask = cookieOf(s.cookie_mask, false).cookie;
      } else if (s.cookie_mask !== undefined) {
        throw new FlowSyntaxError(['cookie_mask'], 'cookie_mask', 'needs cookie');
      }
      if (input.items.length || sel.strict) {
        const m = buildMatch(input.items, ports);
        sel.match = { key: packedKey(m.packed), mask: packedMask(m.packed) };
      }
    } catch (e) {
      if (e instanceof FlowSyntaxError) throw syntaxProblem(e, base, '');
      throw e;
    }
    return sel;
  }

  // ---- reading -----------------------------------------------------------------------------
  selects(f: StoredFlow, s: Selection): boolean {
    if (s.table !== undefined && f.table !== s.table) return false;
    if (s.cookie !== undefined) {
      const m = s.cookieMask ?? 0xffffffffffffffffn;
      if ((f.cookie & m) !== (s.cookie & m)) return false;
    }
    if (s.strict) {
      if (f.priority !== (s.priority ?? 32768)) return false;
      const m = s.match!;
      const [key, mask] = keyMaskOf(f);
      for (let i = 0; i < m.key.length; i++) if (m.key[i] !== key[i] || m.mask[i] !== mask[i]) return false;
      return true;
    }
    if (!s.match) return true;
    const [key, mask] = keyMaskOf(f);
    return matchCovers(s.match.key, s.match.mask, key, mask);
  }

  private lookup(idHex: string): StoredFlow {
    const id = parseFlowId(idHex);
    const f = id === null ? undefined : this.store.get(id);
    if (!f) throw notFound(`no flow ${idHex}`);
    return f;
  }

  get(idHex: string): FlowView {
    return this.view(this.lookup(idHex));
  }

  /** A page of the flows selected, in (table, priority desc, id) order, after cursor. */
  list(s: Selection, limit = 1000, cursor?: string): { items: StoredFlow[]; next_cursor: string | null } {
    const all = this.store.all();
    let start = 0;
    if (cursor !== undefined) {
      const m = /^(\d+)\.(\d+)\.([0-9a-f]{16})$/.exec(cursor);
      if (!m) throw badRequest('?cursor', 'is not a cursor this API gave out');
      const aid = BigInt('0x' + m[3]);
      const after = { table: Number(m[1]), priority: Number(m[2]), id: aid, idHi: Number(aid >> 12n) };
      let lo = 0, hi = all.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (compareFlows(all[mid]!, after) <= 0) lo = mid + 1; else hi = mid;
      }
      start = lo;
    }
    const items: StoredFlow[] = [];
    let i = start;
    for (; i < all.length && items.length < limit; i++) if (this.selects(all[i]!, s)) items.push(all[i]!);
    let more = false;
    for (; i < all.length; i++) if (this.selects(all[i]!, s)) { more = true; break; }
    const last = items.at(-1);
    return { items, next_cursor: more && last ? `${last.table}.${last.priority}.${formatFlowId(last.id)}` : null };
  }

  private stats(f: StoredFlow): { packets: bigint; bytes: bigint; lastHitNs: bigint } | null {
    const seg = this.ferryd.ready ? this.ferryd.segment : null;
    return seg && f.slot !== null ? seg.flowCounters(f.slot) : null;
  }

  view(f: StoredFlow): FlowView {
    const now = process.hrtime.bigint();
    const c = this.stats(f);
    return {
      id: formatFlowId(f.id),
      ...flowJson(f),
      n_packets: c ? c.packets.toString() : null,
      n_bytes: c ? c.bytes.toString() : null,
      duration_sec: f.installedNs > 0n ? round3(Number(now - f.installedNs) / 1e9) : 0,
      idle_age_sec: c && c.lastHitNs > 0n ? round3(Math.max(0, Number(now - c.lastHitNs)) / 1e9) : null,
      text: formatFlow(f),
    };
  }

  /** The dump-flows line of f (with duration and counters). */
  dumpLine(f: StoredFlow): string {
    const c = this.stats(f);
    const dur = f.installedNs > 0n ? Number(process.hrtime.bigint() - f.installedNs) / 1e9 : 0;
    return formatFlow(f, { durationSec: dur, packets: c?.packets ?? 0n, bytes: c?.bytes ?? 0n });
  }

  // ---- programming ferryd ----------------------------------------------------------------
  /** Installs or replaces one flow (row 0 of one) with a plain FLOW_ADD. created = the id was new. */
  add(one: FlowRows): Promise<{ flow: FlowView; created: boolean }> {
    return this.serial(async () => {
      const chan = this.ferryd.channel();
      const r = ok(await chan.request(MsgType.FLOW_ADD, flowAddBody(one, 0)), { pointer: '', where: '' });
      const created = this.store.putRow(one, 0, r.aux, process.hrtime.bigint());
      return { flow: this.view(this.store.get(one.id(0))!), created };
    });
  }

  /** Adds (or replaces) all flows in one bundle: all or nothing. */
  addMany(flows: FlowRows, at: At): Promise<BulkResult> {
    return this.serial(async () => this.commit(this.ferryd.channel(), flows, at));
  }

  async remove(idHex: string): Promise<void> {
    const f = this.lookup(idHex);
    await this.serial(async () => {
      const r = await this.ferryd.request(MsgType.FLOW_DEL, flowDelBody(f.id));
      if (r.status !== Status.ENOENT) ok(r); // ENOENT: ferryd did not have it; gone either way
      this.store.delete(f.id);
    });
  }

  /** del-flows: everything selected, in one bundle (FLOW_CLEAR when everything is selected). */
  deleteWhere(s: Selection): Promise<BulkResult> {
    return this.serial(async () => {
      const chan = this.ferryd.channel();
      const all = s.table === undefined && s.cookie === undefined && !s.match;
      if (all) {
        const n = this.store.size;
        ok(await chan.request(MsgType.FLOW_CLEAR));
        this.store.clear();
        return { added: 0, replaced: 0, deleted: n };
      }
      const ids = new FlowRows();
      for (const f of this.store.values()) if (this.selects(f, s)) ids.pushDelete(f.id);
      return this.commit(chan, ids, nowhere);
    });
  }

  /** replace-flows for one table: afterwards the table holds exactly flows. */
  replaceTable(table: number, flows: FlowRows, at: At): Promise<BulkResult> {
    for (let i = 0; i < flows.n; i++) {
      if (flows.table[i] !== table) {
        const w = at(i);
        throw badRequest(`${w.pointer}/table`, `must be ${table}, the table being replaced`, `${w.where}table: must be ${table}, the table being replaced`);
      }
    }
    return this.serial(async () => {
      const keep = new IdIndex(flows, flows.n);
      for (let i = 0; i < flows.n; i++) keep.findOrInsert(flows.idLo[i]!, flows.idHi[i]!, i);
      const ops = new FlowRows(flows.n);
      const have = this.store.table;
      for (let r = 0; r < have.n; r++) {
        if (have.table[r] === table && keep.find(have.idLo[r]!, have.idHi[r]!) < 0) ops.pushId(have.idLo[r]!, have.idHi[r]!);
      }
      const dels = ops.n;
      for (let i = 0; i < flows.n; i++) ops.copyRow(ops.n, flows, i);
      return this.commit(this.ferryd.channel(), ops, (i) => (i < dels ? NOWHERE : at(i - dels)));
    });
  }

  /** POST /v1/bundles: ops resolved in order against the state the earlier ops leave. */
  bundle(list: BundleOpInput[]): Promise<BulkResult> {
    return this.serial(async () => {
      const chan = this.ferryd.channel();
      const working = new Map<bigint, CompiledFlow>();
      for (const f of this.store.values()) working.set(f.id, f);
      const out = new FlowRows(list.length);
      const wheres: Where[] = [];
      for (const op of list) {
        if (op.kind === 'add') {
          working.set(op.flow.id, op.flow);
          out.push(op.flow);
          wheres.push(op.at);
        } else if (op.kind === 'delete-id') {
          const id = parseFlowId(op.id)!;
          if (!working.has(id)) throw new HttpProblem(404, `${op.at.where}no flow ${op.id}`, [{ pointer: `${op.at.pointer}/id`, message: `no flow ${op.id}` }]);
          working.delete(id);
          out.pushDelete(id);
          wheres.push(op.at);
        } else {
          for (const f of [...working.values()]) {
            if (this.selects(f as StoredFlow, op.sel)) {
              working.delete(f.id);
              out.pushDelete(f.id);
              wheres.push(op.at);
            }
          }
        }
      }
      return this.commit(chan, out, (i) => wheres[i]!);
    });
  }

  /**
   * Sends ops as one bundle and commits it; on any refusal aborts and throws, leaving ferryd and the
   * store as they were. Deletes of flows ferryd no longer has (it timed them out meanwhile) are
   * dropped and the bundle retried once.
   */
  private async commit(chan: ControlChannel, ops: FlowRows, at: At, retry = true): Promise<BulkResult> {
    const res: BulkResult = { added: 0, replaced: 0, deleted: 0 };
    if (ops.n === 0) return res;
    this.counters.bundles++;
    const answers = await this.stage(chan, ops);
    if (answers.refused.size) {
      const failed = [...answers.refused.keys()].sort((a, b) => a - b);
      await this.abort(chan);
      this.counters.bundleFailures++;
      const onlyGone = failed.every((i) => ops.isDelete[i] === 1 && answers.status[i] === Status.ENOENT);
      if (onlyGone && retry) {
        for (const i of failed) this.store.deleteId(ops.idLo[i]!, ops.idHi[i]!);
        const from: number[] = [];
        const kept = ops.copy(new Set(failed), from);
        return this.commit(chan, kept, (j) => at(from[j]!), false);
      }
      const i = failed[0]!;
      throw statusError(answers.refused.get(i)!, at(i));
    }
    const c = await chan.request(MsgType.BUNDLE_COMMIT, undefined, { timeoutMs: Math.max(chan.timeoutMs, COMMIT_TIMEOUT_MS) });
    if (c.status !== Status.OK) {
      this.counters.bundleFailures++;
      throw statusError(c);
    }
    // the result is the net effect: a flow added then deleted in the same bundle counts for nothing.
    // touched[j] is the net effect on the id of op j, where j is the id's first op in the bundle.
    const now = process.hrtime.bigint();
    const EXISTED = 1, ADDED = 2, FIRST = 4;
    const firstOp = new IdIndex(ops, ops.n);
    const touched = new Uint8Array(ops.n);
    this.store.reserve(ops.n);
    for (let i = 0; i < ops.n; i++) {
      const lo = ops.idLo[i]!, hi = ops.idHi[i]!;
      let j = firstOp.findOrInsert(lo, hi, i);
      const first = j < 0;
      if (first) j = i;
      // whether the id was there before the bundle is what its first op found
      if (ops.isDelete[i]) {
        const was = this.store.deleteId(lo, hi);
        touched[j] = (first ? FIRST | (was ? EXISTED : 0) : touched[j]!) & ~ADDED;
      } else {
        const isNew = this.store.putRow(ops, i, answers.aux[i]!, now);
        touched[j] = (first ? FIRST | (isNew ? 0 : EXISTED) : touched[j]!) | ADDED;
      }
    }
    for (let j = 0; j < ops.n; j++) {
      const t = touched[j]!;
      if (!(t & FIRST)) continue;
      const exists = (t & ADDED) !== 0; // the id's last op: an add leaves it there, a delete not
      if (!(t & EXISTED) && exists) res.added++;
      else if (t & EXISTED && !exists) res.deleted++;
      else if (t & EXISTED && exists && t & ADDED) res.replaced++;
    }
    return res;
  }

  /** Sends ops with IN_BUNDLE through the ring as fast as ferryd takes them; resolves with every answer. */
  private async stage(chan: ControlChannel, ops: FlowRows): Promise<BatchAnswers> {
    try {
      return await chan.requestBatch(ops.n, {
        type: (i) => (ops.isDelete[i] ? MsgType.FLOW_DEL : MsgType.FLOW_ADD),
        flags: () => MsgFlag.IN_BUNDLE,
        write: (i, dv, off) => (ops.isDelete[i] ? writeFlowDel(dv, off, ops.idLo[i]!, ops.idHi[i]!) : writeFlowAdd(dv, off, ops, i)),
      });
    } catch (e) {
      await this.abort(chan);
      throw e;
    }
  }

  /**
   * Drops ferryd's open bundle. A batch that just failed may still fill the ring with its own
   * requests: the abort goes as a batch of one, which waits for room (as long as a request may wait
   * for its answer) rather than leave the bundle open for the next change to commit.
   */
  private async abort(chan: ControlChannel): Promise<void> {
    try {
      const a = await chan.requestBatch(1, { type: () => MsgType.BUNDLE_ABORT, write: () => 0 });
      const r = a.refused.get(0);
      if (r) this.log?.warn(`BUNDLE_ABORT: ${r.statusName} ${r.message}`);
    } catch (e) {
      this.log?.warn(`BUNDLE_ABORT failed: ${(e as Error).message}`);
    }
  }

  /**
   * Brings ferryd to the desired state in one step: a bundle that replaces its whole table (a
   * bundled FLOW_CLEAR) with every stored flow. A fresh ferryd gets its flows; a ferryd that kept
   * forwarding while ferry-control restarted swaps old table for desired table atomically, flows
   * it already had keeping their slots and counters, anything it held that is not desired (a
   * change never acknowledged) going. Flows ferryd refuses are logged and left out.
   */
  async replay(chan: ControlChannel): Promise<void> {
    await this.abort(chan); // a bundle a killed ferry-control left open in a running ferryd
    this.store.clearSlots();
    const have = this.store.table;
    let flows = have.copy();
    let committed = false;
    for (let round = 0; round < 3 && !committed; round++) {
      ok(await chan.request(MsgType.FLOW_CLEAR, undefined, { flags: MsgFlag.IN_BUNDLE }));
      const answers = await this.stage(chan, flows);
      const bad = answers.refused;
      if (bad.size) {
        await this.abort(chan);
        for (const [i, r] of bad) this.log?.warn(`replay: ferryd refused flow ${flows.idHex(i)}: ${r.statusName} ${r.message}`);
        flows = flows.copy(bad);
        continue;
      }
      ok(await chan.request(MsgType.BUNDLE_COMMIT, undefined, { timeoutMs: Math.max(chan.timeoutMs, COMMIT_TIMEOUT_MS) }));
      committed = true;
      const now = process.hrtime.bigint();
      for (let i = 0; i < flows.n; i++) this.store.setInstalled(flows.idLo[i]!, flows.idHi[i]!, answers.aux[i]!, now);
    }
    if (!committed) {
      // nothing of ours is in: at least nothing stale either
      ok(await chan.request(MsgType.FLOW_CLEAR));
      this.log?.error('replay: ferryd kept refusing flows; its flow table is left empty');
    }
    let installed = 0;
    for (let i = 0; i < have.n; i++) if (have.slot[i]! >= 0) installed++;
    this.log?.info(`replayed ${installed} of ${this.store.size} flows to ferryd`);
  }

  // ---- events ------------------------------------------------------------------------------
  /** FLOW_REMOVED: ferryd timed a flow out; it leaves the desired state (unless re-added since). */
  onEvent(ev: FerryEvent): void {
    if (ev.type !== 'flow_removed') return;
    const f = this.store.get(ev.id);
    if (f && f.installedNs <= ev.timeNs) {
      this.store.delete(ev.id);
      this.serial(async () => undefined).catch((e: Error) => this.log?.error(`desired state: recording flow ${formatFlowId(ev.id)}'s removal failed: ${e.message}`));
      this.counters.flowsRemoved++;
      this.log?.info(`ferryd removed flow ${formatFlowId(ev.id)} (cookie ${formatCookie(ev.cookie)}, reason ${ev.reason})`);
    }
  }
}

export type BundleOpInput =
  | { kind: 'add'; flow: CompiledFlow; at: Where }
  | { kind: 'delete-id'; id: string; at: Where }
  | { kind: 'delete'; sel: Selection; at: Where };

export type { Where, ProblemError };
