// Request bodies: writers for the channel, laid out with the generated offsets.
import { FLOW_ADD, FLOW_DEL } from './gen/proto';
import { PackedKeyMask, unpackInto } from './flows/ofctl/packed';

/** Writes a request body at bodyOff and returns its length in bytes. */
export type BodyWriter = (dv: DataView, bodyOff: number) => number;

/** What FLOW_ADD carries (a compiled flow has all of it). */
export interface FlowAddBody {
  id: bigint;
  cookie: bigint;
  priority: number;
  table: number;
  flagBits: number;
  idleTimeout: number;
  hardTimeout: number;
  /** flow_key bytes, key already masked */
  readonly key: Uint8Array;
  readonly mask: Uint8Array;
  /** key and mask packed, when they are (written from the runs: no full arrays made) */
  readonly at?: PackedKeyMask;
  /** action TLVs; empty = drop */
  tlv: Uint8Array;
}

const FA = FLOW_ADD.fields;
const FD = FLOW_DEL.fields;

/** The ring's bytes as a Uint8Array, one per DataView (not one per record). */
const bytesOfViews = new WeakMap<DataView, Uint8Array>();

/** All of dv's bytes as a Uint8Array (made once per DataView). */
export function bytesOf(dv: DataView): Uint8Array {
  let all = bytesOfViews.get(dv);
  if (!all) bytesOfViews.set(dv, all = new Uint8Array(dv.buffer, dv.byteOffset, dv.byteLength));
  return all;
}

/** Writes f's FLOW_ADD body at off; returns its length. */
export function writeFlowAdd(dv: DataView, off: number, f: FlowAddBody): number {
  // the view below spans the whole segment: a part too long would run into the next record
  if (f.tlv.length > FA.actions.size) throw new Error(`${f.tlv.length} bytes of actions do not fit FLOW_ADD's ${FA.actions.size}`);
  if (!f.at && (f.key.length !== FA.key.size || f.mask.length !== FA.mask.size)) {
    throw new Error(`a flow key of ${f.key.length} bytes and mask of ${f.mask.length} is not flow_key's ${FA.key.size}`);
  }
  const all = bytesOf(dv);
  all.fill(0, off, off + FLOW_ADD.size); // padding and unused action bytes too
  dv.setBigUint64(off + FA.id.offset, f.id, true);
  dv.setBigUint64(off + FA.cookie.offset, f.cookie, true);
  dv.setUint16(off + FA.priority.offset, f.priority, true);
  dv.setUint8(off + FA.table_id.offset, f.table);
  dv.setUint8(off + FA.flags.offset, f.flagBits);
  dv.setUint16(off + FA.idle_timeout.offset, f.idleTimeout, true);
  dv.setUint16(off + FA.hard_timeout.offset, f.hardTimeout, true);
  dv.setUint16(off + FA.actions_len.offset, f.tlv.length, true);
  if (f.at) {
    unpackInto(f.at, all, off + FA.key.offset, all, off + FA.mask.offset); // the rest was zeroed above
  } else {
    all.set(f.key, off + FA.key.offset);
    all.set(f.mask, off + FA.mask.offset);
  }
  all.set(f.tlv, off + FA.actions.offset);
  return FLOW_ADD.size;
}

export function flowAddBody(f: FlowAddBody): BodyWriter {
  return (dv, off) => writeFlowAdd(dv, off, f);
}

/** Writes a FLOW_DEL body for id at off; returns its length. */
export function writeFlowDel(dv: DataView, off: number, id: bigint): number {
  dv.setBigUint64(off + FD.id.offset, id, true);
  return FLOW_DEL.size;
}

export function flowDelBody(id: bigint): BodyWriter {
  return (dv, off) => writeFlowDel(dv, off, id);
}
