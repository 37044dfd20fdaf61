// The desired flow state: every flow the service holds, replayed into each new ferryd. It
// records its changes for the durable desired-state store (state/store.ts), which the flow
// service commits before it acknowledges a request.
//
// The flows are rows (rows.ts), found by id through an open-addressed index; a flow object is made
// only when one is asked for. A deleted row is filled by the last one, so rows stay dense.
import type { CompiledFlow } from './ofctl';
import type { StateChange, StateChangeRun } from '../state/store';
import { FLOWS_NS, flowRowText, putHex64, writeFlowRowRecord } from './persist';
import { FlowRows, IdIndex, grown, hex64 } from './rows';
import { split64 } from './flow-id';

export interface StoredFlow extends CompiledFlow {
  /** ferryd's stats slot for the flow (from the FLOW_ADD response); null until installed. */
  slot: number | null;
  /** process.hrtime.bigint() when ferryd acknowledged the last install. */
  installedNs: bigint;
}

/** The listing order: table, then priority descending, then id. */
export function compareFlows(a: { table: number; priority: number; id: bigint; idHi?: number }, b: { table: number; priority: number; id: bigint; idHi?: number }): number {
  return a.table - b.table || b.priority - a.priority || ((a.idHi ?? 0) - (b.idHi ?? 0)) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

const SET = 1, DEL = 2;

/**
 * The flow changes since the last commit, in order, as one run for the desired-state store: a set
 * points at the row of an op list (never changed once committed) and its text is made only as the
 * store writes it; a delete keeps its id.
 */
class FlowChangeRun implements StateChangeRun {
  readonly ns = FLOWS_NS;
  count = 0;
  private kind = new Uint8Array(64);
  private lo = new Uint32Array(64);
  private hi = new Uint32Array(64);
  private row = new Int32Array(64);
  /** a set's op list, as its index in batches (a bundle's sets share one: no reference a change) */
  private batchOf = new Int32Array(64);
  private batches: FlowRows[] = [];

  /** Makes room for n changes in all (a bundle's: one growth, not doublings). */
  reserve(n: number): void {
    if (n <= this.kind.length) return;
    this.kind = grown(this.kind, n);
    this.lo = grown(this.lo, n);
    this.hi = grown(this.hi, n);
    this.row = grown(this.row, n);
    this.batchOf = grown(this.batchOf, n);
  }

  add(kind: number, lo: number, hi: number, batch: FlowRows | null, row: number): void {
    if (this.count === this.kind.length) this.reserve(2 * this.count);
    const i = this.count++;
    this.kind[i] = kind;
    this.lo[i] = lo;
    this.hi[i] = hi;
    this.row[i] = row;
    if (batch) {
      if (this.batches[this.batches.length - 1] !== batch) this.batches.push(batch);
      this.batchOf[i] = this.batches.length - 1;
    }
  }

  key(i: number): string {
    return hex64(this.lo[i]!, this.hi[i]!);
  }

  text(i: number): string | null {
    return this.kind[i] === SET ? flowRowText(this.batches[this.batchOf[i]!]!, this.row[i]!) : null;
  }

  writeRecord(i: number, buf: Uint8Array, pos: number, end: number): number {
    if (pos + 24 > end) return -1;
    buf[pos++] = 0x22; // "
    pos = putHex64(buf, pos, this.lo[i]!, this.hi[i]!);
    buf[pos++] = 0x22;
    buf[pos++] = 0x2c; // ,
    if (this.kind[i] === SET) return writeFlowRowRecord(this.batches[this.batchOf[i]!]!, this.row[i]!, buf, pos, end);
    if (pos + 4 > end) return -1;
    buf[pos] = 0x6e; // null
    buf[pos + 1] = 0x75;
    buf[pos + 2] = 0x6c;
    buf[pos + 3] = 0x6c;
    return pos + 4;
  }
}

const halves = new Uint32Array(2);

export class FlowStore {
  /** the flows; rows[0..size) */
  private readonly rows = new FlowRows(1024);
  private readonly index = new IdIndex(this.rows, 1024);
  private sorted: StoredFlow[] | null = null;
  private changes: (StateChange | StateChangeRun)[] = [];
  private run = new FlowChangeRun();

  get size(): number {
    return this.rows.n;
  }

  private rowOf(id: bigint): number {
    split64(id, halves);
    return this.index.find(halves[0]!, halves[1]!);
  }

  get(id: bigint): StoredFlow | undefined {
    const r = this.rowOf(id);
    return r < 0 ? undefined : this.rows.flow(r);
  }

  has(id: bigint): boolean {
    return this.rowOf(id) >= 0;
  }

  hasId(lo: number, hi: number): boolean {
    return this.index.find(lo, hi) >= 0;
  }

  /** Makes room for n more flows (a bundle about to be applied). */
  reserve(n: number): void {
    this.rows.reserve(this.rows.n + n);
    this.index.reserve(this.rows.n + n);
    this.run.reserve(this.run.count + n);
  }

  /** Copies row i of batch into the row of its id (a new row if the id is new); returns that row. */
  private place(batch: FlowRows, i: number): number {
    const lo = batch.idLo[i]!, hi = batch.idHi[i]!;
    let r = this.index.findOrInsert(lo, hi, this.rows.n);
    if (r < 0) r = this.rows.n;
    this.rows.copyRow(r, batch, i);
    this.sorted = null;
    return r;
  }

  /** Row i of batch, installed at slot at time now: inserts or replaces; returns true if the id was new. */
  putRow(batch: FlowRows, i: number, slot: number, now: bigint): boolean {
    const size = this.rows.n;
    const r = this.place(batch, i);
    this.rows.slot[r] = slot;
    this.rows.installedNs[r] = now;
    this.run.add(SET, batch.idLo[i]!, batch.idHi[i]!, batch, i);
    return this.rows.n > size;
  }

  /** Removes the flow of id (lo, hi); returns whether it was there. */
  deleteId(lo: number, hi: number): boolean {
    const r = this.index.remove(lo, hi);
    if (r < 0) return false;
    const last = this.rows.n - 1;
    if (r !== last) {
      this.rows.copyRow(r, this.rows, last);
      this.index.move(this.rows.idLo[r]!, this.rows.idHi[r]!, r);
    }
    this.rows.pop();
    this.sorted = null;
    this.run.add(DEL, lo, hi, null, -1);
    return true;
  }

  delete(id: bigint): boolean {
    split64(id, halves);
    return this.deleteId(halves[0]!, halves[1]!);
  }

  clear(): void {
    this.rows.clear();
    this.index.clear();
    this.sorted = null;
    this.changes = [{ ns: FLOWS_NS, key: null, value: null }];
    this.run = new FlowChangeRun();
  }

  /** Loads a flow from the durable state (not a change). */
  restore(f: StoredFlow): void {
    this.place(FlowRows.of([f]), 0);
  }

  /** Sets the install of the flow of id (lo, hi): its ferryd slot (-1: none) and time. */
  setInstalled(lo: number, hi: number, slot: number, now: bigint): void {
    const r = this.index.find(lo, hi);
    if (r < 0) return;
    this.rows.slot[r] = slot;
    this.rows.installedNs[r] = now;
    this.sorted = null;
  }

  /** Every flow marked not installed (a new ferryd holds none of them yet). */
  clearSlots(): void {
    this.rows.slot.fill(-1, 0, this.rows.n);
    this.sorted = null;
  }

  /** The changes since the last call, for the durable store. */
  takeChanges(): (StateChange | StateChangeRun)[] {
    const c = this.changes;
    if (this.run.count) c.push(this.run);
    this.changes = [];
    this.run = new FlowChangeRun();
    return c;
  }

  /** All flows in listing order (cached until the next change; do not modify). */
  all(): readonly StoredFlow[] {
    return (this.sorted ??= this.values().sort(compareFlows));
  }

  /** Every flow, as objects of their own (in no order). */
  values(): StoredFlow[] {
    const out: StoredFlow[] = [];
    for (let i = 0; i < this.rows.n; i++) out.push(this.rows.flow(i));
    return out;
  }

  /** The flows as rows (read only: the store's own; valid until the next change). */
  get table(): FlowRows {
    return this.rows;
  }

  /** (key, record text) of every flow: what a snapshot of the desired state holds. */
  *records(): IterableIterator<[string, string]> {
    for (let i = 0; i < this.rows.n; i++) yield [this.rows.idHex(i), flowRowText(this.rows, i)];
  }
}
