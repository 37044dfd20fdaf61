// Single-producer single-consumer rings of fixed-size records over the shared mapping.
// head is written by the producer only, tail by the consumer only; both are free-running u32.
import { RING_CTL } from '../gen/proto';

/** Views of one mapping, built once and shared by everything reading it. */
export interface ShmView {
  readonly buf: Buffer;
  readonly dv: DataView;
  readonly u32: Uint32Array;
}

export function viewOf(buf: Buffer): ShmView {
  if (buf.byteOffset % 8 !== 0) throw new Error('mapping is not 8-byte aligned');
  return {
    buf,
    dv: new DataView(buf.buffer, buf.byteOffset, buf.byteLength),
    u32: new Uint32Array(buf.buffer, buf.byteOffset, buf.byteLength >>> 2),
  };
}

const F = RING_CTL.fields;

/** Geometry of a ring as ferryd set it up; checked against the segment at attach. */
export interface RingGeometry {
  readonly off: number;
  readonly slots: number;
  readonly slotSize: number;
  readonly slotsOff: number;
}

export function readRingGeometry(v: ShmView, off: number): RingGeometry {
  return {
    off,
    slots: v.dv.getUint32(off + F.slots.offset, true),
    slotSize: v.dv.getUint32(off + F.slot_size.offset, true),
    slotsOff: v.dv.getUint32(off + F.slots_off.offset, true),
  };
}

/** Throws unless the ring lies inside size bytes and has a sane shape. */
export function checkRingGeometry(g: RingGeometry, size: number, minSlotSize: number, what: string): void {
  const { off, slots, slotSize, slotsOff } = g;
  if (off % 64 !== 0) throw new Error(`${what} ring offset ${off} is not cache-line aligned`);
  if (slots === 0 || (slots & (slots - 1)) !== 0) throw new Error(`${what} ring has ${slots} slots, not a power of two`);
  if (slotSize < minSlotSize || slotSize % 8 !== 0) throw new Error(`${what} ring slot size ${slotSize} is unusable`);
  if (slotsOff < RING_CTL.size || slotsOff % 8 !== 0) throw new Error(`${what} ring slots_off ${slotsOff} is unusable`);
  if (off + slotsOff + slots * slotSize > size) throw new Error(`${what} ring runs past the end of the segment`);
}

abstract class RingBase {
  readonly slots: number;
  readonly slotSize: number;
  protected readonly mask: number;
  protected readonly base: number; // byte offset of slot 0 in the mapping
  protected readonly headIdx: number; // u32 indices into v.u32
  protected readonly tailIdx: number;
  protected readonly fullIdx: number;

  constructor(protected readonly v: ShmView, readonly off: number) {
    const g = readRingGeometry(v, off);
    this.slots = g.slots;
    this.slotSize = g.slotSize;
    this.mask = g.slots - 1;
    this.base = off + g.slotsOff;
    this.headIdx = (off + F.head.offset) >>> 2;
    this.tailIdx = (off + F.tail.offset) >>> 2;
    this.fullIdx = (off + F.full_events.offset) >>> 2;
  }

  /** Byte offset in the mapping of the record for free-running index i. */
  recordOffset(i: number): number {
    return this.base + (i & this.mask) * this.slotSize;
  }

  /** Records produced and not yet consumed. */
  depth(): number {
    return (Atomics.load(this.v.u32, this.headIdx) - Atomics.load(this.v.u32, this.tailIdx)) >>> 0;
  }

  /** Times the producer found the ring full. */
  fullEvents(): number {
    return Atomics.load(this.v.u32, this.fullIdx);
  }
}

/** Writes a record body at recOff (plain stores); the ring publishes it afterwards. */
export type RecordWriter = (dv: DataView, recOff: number) => void;

export class RingProducer extends RingBase {
  /** Free slots right now. */
  free(): number {
    const head = this.v.u32[this.headIdx]!; // our own index: a plain load is enough
    return this.slots - ((head - Atomics.load(this.v.u32, this.tailIdx)) >>> 0);
  }

  private noteFull(): void {
    this.v.u32[this.fullIdx] = (this.v.u32[this.fullIdx]! + 1) >>> 0;
  }

  /** Writes one record and publishes it; false (and full_events+1) if the ring is full. */
  tryWrite(write: RecordWriter): boolean {
    const head = this.v.u32[this.headIdx]!;
    const used = (head - Atomics.load(this.v.u32, this.tailIdx)) >>> 0;
    if (used >= this.slots) {
      this.noteFull();
      return false;
    }
    write(this.v.dv, this.recordOffset(head));
    Atomics.store(this.v.u32, this.headIdx, (head + 1) >>> 0);
    return true;
  }

  /**
   * Writes up to n records (write(i, ...) for i = 0..) and publishes head once.
   * Returns how many were written; fewer than n means the ring filled up (full_events+1).
   */
  writeBatch(n: number, write: (i: number, dv: DataView, recOff: number) => void): number {
    const head = this.v.u32[this.headIdx]!;
    const free = this.slots - ((head - Atomics.load(this.v.u32, this.tailIdx)) >>> 0);
    const k = Math.max(0, Math.min(n, free));
    for (let i = 0; i < k; i++) write(i, this.v.dv, this.recordOffset((head + i) >>> 0));
    if (k > 0) Atomics.store(this.v.u32, this.headIdx, (head + k) >>> 0);
    if (k < n) this.noteFull();
    return k;
  }
}

export class RingConsumer extends RingBase {
  /**
   * Hands every record between tail and head (at most max) to read, then stores tail once.
   * Returns the number of records consumed.
   */
  drain(read: (dv: DataView, recOff: number) => void, max = Infinity): number {
    const tail = this.v.u32[this.tailIdx]!; // our own index
    const head = Atomics.load(this.v.u32, this.headIdx);
    let n = (head - tail) >>> 0;
    if (n > this.slots) throw new Error(`ring at ${this.off} is corrupt: ${n} records for ${this.slots} slots`);
    if (n > max) n = max;
    for (let i = 0; i < n; i++) read(this.v.dv, this.recordOffset((tail + i) >>> 0));
    if (n > 0) Atomics.store(this.v.u32, this.tailIdx, (tail + n) >>> 0);
    return n;
  }
}
