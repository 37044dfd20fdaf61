// Flows as columns: one typed array a field, a row a flow. A bulk load's 10^5 flows kept as 10^5
// objects (the flow, its packed key's handle, its id's BigInt, the map's entry) cost more than
// compiling them: every object lived through a few young-generation collections, each copying it,
// and the heap grew page by page for them (about 11 us a fresh 4 KB page on a VM). A batch of
// compiled flows and the desired flow table are both rows; a flow object (PackedFlow) is made only
// when one is asked for (a listing, a GET), and dies young.
import { FlowParts, NO_ACTION_SET, NO_PACKED, PackedFlow, actionSetOf, flagsOf } from './ofctl';
import type { ActionSet, CompiledFlow, PackedKeyMask } from './ofctl';
import { idTop52, join64, split64 } from './flow-id';

export type { ActionSet };

/** 16 hex digits of a 64-bit value given as halves (a flow id as the API shows it). */
export function hex64(lo: number, hi: number): string {
  return (hi.toString(16).padStart(8, '0')) + lo.toString(16).padStart(8, '0');
}

const halves = [0, 0];
/** what push() makes of a flow object before its row (reused) */
const objectParts = new FlowParts();

type TypedArray = Uint8Array | Uint16Array | Uint32Array | Int32Array | BigUint64Array;

/** A copy of a with room for n elements (n >= a.length). */
export function grown<T extends TypedArray>(a: T, n: number): T {
  const b = new (a.constructor as new (n: number) => T)(n);
  b.set(a as never);
  return b;
}

/** A copy of the first n elements of a, with room for c. */
function grownArray<T>(a: T[], n: number, c: number): T[] {
  const b = new Array<T>(c);
  for (let i = 0; i < n; i++) b[i] = a[i]!;
  return b;
}

const NO_SLOT = -1;

export class FlowRows {
  /** rows in use */
  n = 0;
  idLo: Uint32Array;
  idHi: Uint32Array;
  cookieLo: Uint32Array;
  cookieHi: Uint32Array;
  table: Uint8Array;
  flagBits: Uint8Array;
  priority: Uint16Array;
  idle: Uint16Array;
  hard: Uint16Array;
  /** the packed key and mask (packed.ts): slab[i] from packedOff[i], packedLen[i] bytes */
  packedOff: Int32Array;
  packedLen: Uint16Array;
  /** an op list's row: 1 deletes the id, 0 adds the flow */
  isDelete: Uint8Array;
  /** ferryd's stats slot, or -1 (not installed) */
  slot: Int32Array;
  /** process.hrtime.bigint() of the last install (0: never) */
  installedNs: BigUint64Array;
  /** one reference a row to a shared slab and a shared action set: no object of the row's own
   * (sized with the columns: appending to a JS array copies it as it grows) */
  slab: Buffer[];
  acts: ActionSet[];

  constructor(capacity = 16) {
    const c = Math.max(1, capacity);
    this.idLo = new Uint32Array(c);
    this.idHi = new Uint32Array(c);
    this.cookieLo = new Uint32Array(c);
    this.cookieHi = new Uint32Array(c);
    this.table = new Uint8Array(c);
    this.flagBits = new Uint8Array(c);
    this.priority = new Uint16Array(c);
    this.idle = new Uint16Array(c);
    this.hard = new Uint16Array(c);
    this.packedOff = new Int32Array(c);
    this.packedLen = new Uint16Array(c);
    this.isDelete = new Uint8Array(c);
    this.slot = new Int32Array(c);
    this.installedNs = new BigUint64Array(c);
    this.slab = new Array<Buffer>(c);
    this.acts = new Array<ActionSet>(c);
  }

  get capacity(): number {
    return this.idLo.length;
  }

  /** Makes room for n rows in all (one growth instead of doublings: fresh memory is dear). */
  reserve(n: number): void {
    if (n > this.capacity) this.grow(n);
  }

  private grow(atLeast = 0): void {
    const c = Math.max(2 * this.capacity, atLeast);
    this.idLo = grown(this.idLo, c);
    this.idHi = grown(this.idHi, c);
    this.cookieLo = grown(this.cookieLo, c);
    this.cookieHi = grown(this.cookieHi, c);
    this.table = grown(this.table, c);
    this.flagBits = grown(this.flagBits, c);
    this.priority = grown(this.priority, c);
    this.idle = grown(this.idle, c);
    this.hard = grown(this.hard, c);
    this.packedOff = grown(this.packedOff, c);
    this.packedLen = grown(this.packedLen, c);
    this.isDelete = grown(this.isDelete, c);
    this.slot = grown(this.slot, c);
    this.installedNs = grown(this.installedNs, c);
    this.slab = grownArray(this.slab, this.n, c);
    this.acts = grownArray(this.acts, this.n, c);
  }

  /** Rows of these flows (none installed). */
  static of(flows: readonly CompiledFlow[]): FlowRows {
    const rows = new FlowRows(flows.length);
    for (const f of flows) rows.push(f);
    return rows;
  }

  /** Appends a compiled flow (not installed); returns its row. */
  push(f: CompiledFlow & { slot?: number | null; installedNs?: bigint }): number {
    const p = objectParts;
    split64(f.id, p.id);
    split64(f.cookie, halves);
    p.cookieLo = halves[0]!;
    p.cookieHi = halves[1]!;
    p.table = f.table;
    p.priority = f.priority;
    p.idleTimeout = f.idleTimeout;
    p.hardTimeout = f.hardTimeout;
    p.flagBits = f.flagBits;
    p.packed = f.at;
    p.acts = actionSetOf(f.actions, f.tlv);
    const i = this.pushParts(p);
    p.packed = NO_PACKED; // keeps no flow's slab or actions alive
    p.acts = NO_ACTION_SET;
    this.slot[i] = f.slot ?? NO_SLOT;
    this.installedNs[i] = f.installedNs ?? 0n;
    return i;
  }

  /** Appends a flow compiled into parts (a bulk load's line: no flow object); returns its row. */
  pushParts(p: FlowParts): number {
    if (this.n === this.capacity) this.grow();
    const i = this.n++;
    this.idLo[i] = p.id[0]!;
    this.idHi[i] = p.id[1]!;
    this.cookieLo[i] = p.cookieLo;
    this.cookieHi[i] = p.cookieHi;
    this.table[i] = p.table;
    this.flagBits[i] = p.flagBits;
    this.priority[i] = p.priority;
    this.idle[i] = p.idleTimeout;
    this.hard[i] = p.hardTimeout;
    const at = p.packed;
    this.slab[i] = at.buf;
    this.packedOff[i] = at.off;
    this.packedLen[i] = at.len;
    this.acts[i] = p.acts;
    this.isDelete[i] = 0;
    this.slot[i] = NO_SLOT;
    this.installedNs[i] = 0n;
    return i;
  }

  /** Appends a delete's id only (an op list's delete row; nothing else of the row is read). */
  pushId(lo: number, hi: number): number {
    if (this.n === this.capacity) this.grow();
    const i = this.n++;
    this.idLo[i] = lo;
    this.idHi[i] = hi;
    this.slab[i] = EMPTY_SLAB;
    this.acts[i] = NO_ACTION_SET;
    this.packedOff[i] = 0;
    this.packedLen[i] = 0;
    this.isDelete[i] = 1;
    this.slot[i] = NO_SLOT;
    this.installedNs[i] = 0n;
    return i;
  }

  /** pushId of a 64-bit id. */
  pushDelete(id: bigint): number {
    split64(id, halves);
    return this.pushId(halves[0]!, halves[1]!);
  }

  /** Copies row j of src to row i of this (i may be this.n: appends). */
  copyRow(i: number, src: FlowRows, j: number): void {
    if (i === this.n) {
      if (this.n === this.capacity) this.grow();
      this.n++;
    }
    this.idLo[i] = src.idLo[j]!;
    this.idHi[i] = src.idHi[j]!;
    this.cookieLo[i] = src.cookieLo[j]!;
    this.cookieHi[i] = src.cookieHi[j]!;
    this.table[i] = src.table[j]!;
    this.flagBits[i] = src.flagBits[j]!;
    this.priority[i] = src.priority[j]!;
    this.idle[i] = src.idle[j]!;
    this.hard[i] = src.hard[j]!;
    this.slab[i] = src.slab[j]!;
    this.packedOff[i] = src.packedOff[j]!;
    this.packedLen[i] = src.packedLen[j]!;
    this.acts[i] = src.acts[j]!;
    this.isDelete[i] = src.isDelete[j]!;
    this.slot[i] = src.slot[j]!;
    this.installedNs[i] = src.installedNs[j]!;
  }

  /** A copy of these rows but those in skip; from, when given, gets the row each copied row came from. */
  copy(skip?: { has(row: number): boolean }, from?: number[]): FlowRows {
    const out = new FlowRows(this.n);
    for (let i = 0; i < this.n; i++) {
      if (skip?.has(i)) continue;
      out.copyRow(out.n, this, i);
      from?.push(i);
    }
    return out;
  }

  /** Drops the last row. */
  pop(): void {
    const i = --this.n;
    this.slab[i] = EMPTY_SLAB; // no slab kept alive by a row not in use
    this.acts[i] = NO_ACTION_SET;
  }

  clear(): void {
    this.n = 0;
    this.slab = new Array<Buffer>(this.capacity);
    this.acts = new Array<ActionSet>(this.capacity);
  }

  id(i: number): bigint {
    return join64(this.idLo[i]!, this.idHi[i]!);
  }

  idHex(i: number): string {
    return hex64(this.idLo[i]!, this.idHi[i]!);
  }

  cookie(i: number): bigint {
    return join64(this.cookieLo[i]!, this.cookieHi[i]!);
  }

  /** Row i's packed key and mask, in an object shared by every call (valid until the next). */
  at(i: number): PackedKeyMask {
    const a = sharedAt;
    a.buf = this.slab[i]!;
    a.off = this.packedOff[i]!;
    a.len = this.packedLen[i]!;
    return a;
  }

  /** Row i as a flow object of its own (for a listing or a GET: not on the bulk path). */
  flow(i: number): PackedFlow {
    const lo = this.idLo[i]!, hi = this.idHi[i]!;
    const a = this.acts[i]!;
    const f = new PackedFlow(join64(lo, hi), idTop52(lo, hi), this.table[i]!, this.priority[i]!, this.cookie(i), this.idle[i]!,
      this.hard[i]!, flagsOf(this.flagBits[i]!), this.flagBits[i]!, a.actions, a.tlv,
      { buf: this.slab[i]!, off: this.packedOff[i]!, len: this.packedLen[i]! });
    const s = this.slot[i]!;
    f.slot = s === NO_SLOT ? null : s;
    f.installedNs = this.installedNs[i]!;
    return f;
  }
}

const EMPTY_SLAB = NO_PACKED.buf;
const sharedAt: { buf: Buffer; off: number; len: number } = { buf: EMPTY_SLAB, off: 0, len: 0 };

/**
 * Ids to rows of a FlowRows: open addressing with linear probing over the ids' low words (an id is
 * an FNV hash: its low bits are as good as any). The index holds row numbers only; the ids stay in
 * the rows. Deletion shifts the probe run back (no tombstones to build up under churn).
 */
export class IdIndex {
  private slots: Int32Array; // row + 1; 0 = empty
  private mask: number;
  private used = 0;

  constructor(private readonly rows: FlowRows, capacity = 16) {
    let n = 16;
    while (n < 2 * capacity) n *= 2;
    this.slots = new Int32Array(n);
    this.mask = n - 1;
  }

  get size(): number {
    return this.used;
  }

  /** The slot holding id (lo, hi), or the empty slot where it would go. */
  private probe(lo: number, hi: number): number {
    const s = this.slots;
    const r = this.rows;
    let k = lo & this.mask;
    for (;;) {
      const v = s[k]!;
      if (v === 0 || (r.idLo[v - 1] === lo && r.idHi[v - 1] === hi)) return k;
      k = (k + 1) & this.mask;
    }
  }

  /** The row of id (lo, hi), or -1. */
  find(lo: number, hi: number): number {
    return this.slots[this.probe(lo, hi)]! - 1;
  }

  /** The row of id (lo, hi) if it is in the index; if not, records it at row and returns -1 (one probe for both). */
  findOrInsert(lo: number, hi: number, row: number): number {
    if (2 * (this.used + 1) > this.slots.length) this.rehash(2 * this.slots.length);
    const k = this.probe(lo, hi);
    const v = this.slots[k]!;
    if (v !== 0) return v - 1;
    this.slots[k] = row + 1;
    this.used++;
    return -1;
  }

  /** The id at row now lives at row to (after a row moved). */
  move(lo: number, hi: number, to: number): void {
    this.slots[this.probe(lo, hi)] = to + 1;
  }

  /** Forgets id (lo, hi); returns its row, or -1. */
  remove(lo: number, hi: number): number {
    const s = this.slots;
    let k = this.probe(lo, hi);
    const row = s[k]! - 1;
    if (row < 0) return -1;
    this.used--;
    // backward shift: pull later entries of the run into the hole if their home allows it
    let hole = k;
    for (;;) {
      k = (k + 1) & this.mask;
      const v = s[k]!;
      if (v === 0) break;
      const home = this.rows.idLo[v - 1]! & this.mask;
      // the entry may fill the hole if its home is not cyclically within (hole, k]
      if (((k - home) & this.mask) >= ((k - hole) & this.mask)) {
        s[hole] = v;
        hole = k;
      }
    }
    s[hole] = 0;
    return row;
  }

  clear(): void {
    this.slots.fill(0);
    this.used = 0;
  }

  /** Makes room for n ids in all without a rehash on the way. */
  reserve(n: number): void {
    let size = this.slots.length;
    while (2 * n > size) size *= 2;
    if (size > this.slots.length) this.rehash(size);
  }

  private rehash(n: number): void {
    const old = this.slots;
    this.slots = new Int32Array(n);
    this.mask = n - 1;
    for (const v of old) {
      if (v === 0) continue;
      let k = this.rows.idLo[v - 1]! & this.mask;
      while (this.slots[k] !== 0) k = (k + 1) & this.mask;
      this.slots[k] = v;
    }
  }
}
