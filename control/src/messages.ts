// Request bodies: writers for the channel, laid out with the generated offsets.
import { ACTIONS_MAX, FLOW_ADD, FLOW_DEL, FLOW_KEY } from './gen/proto';
import { packedKeyEnd, unpackInto } from './flows/ofctl/packed';
import type { FlowRows } from './flows/rows';
import { split64 } from './flows/flow-id';

/** Writes a request body at bodyOff and returns its length in bytes. */
export type BodyWriter = (dv: DataView, bodyOff: number) => number;

const FA = FLOW_ADD.fields;
const FD = FLOW_DEL.fields;
const KEY_SIZE = FLOW_KEY.size;
if (FA.actions.size !== ACTIONS_MAX) throw new Error(`FLOW_ADD's actions (${FA.actions.size}) are not ACTIONS_MAX (${ACTIONS_MAX})`);
if (FA.key.size !== KEY_SIZE || FA.mask.size !== KEY_SIZE) throw new Error(`FLOW_ADD's key and mask are not flow_key's ${KEY_SIZE} bytes`);

/** The ring's bytes as a Uint8Array, one per DataView (not one per record). */
const bytesOfViews = new WeakMap<DataView, Uint8Array>();

/** All of dv's bytes as a Uint8Array (made once per DataView). */
export function bytesOf(dv: DataView): Uint8Array {
  let all = bytesOfViews.get(dv);
  if (!all) bytesOfViews.set(dv, all = new Uint8Array(dv.buffer, dv.byteOffset, dv.byteLength));
  return all;
}

/** Writes the FLOW_ADD body of row i of rows at off; returns its length. */
export function writeFlowAdd(dv: DataView, off: number, rows: FlowRows, i: number): number {
  // the byte view below spans the whole segment: a part too long would run into the next record
  const tlv = rows.acts[i]!.tlv;
  if (tlv.length > FA.actions.size) throw new Error(`${tlv.length} bytes of actions do not fit FLOW_ADD's ${FA.actions.size}`);
  const at = rows.at(i);
  if (packedKeyEnd(at) > KEY_SIZE) throw new Error(`a packed key and mask reaching byte ${packedKeyEnd(at)} is not flow_key's ${KEY_SIZE}`);
  const all = bytesOf(dv);
  all.fill(0, off, off + FLOW_ADD.size); // padding and unused action bytes too
  dv.setUint32(off + FA.id.offset, rows.idLo[i]!, true);
  dv.setUint32(off + FA.id.offset + 4, rows.idHi[i]!, true);
  dv.setUint32(off + FA.cookie.offset, rows.cookieLo[i]!, true);
  dv.setUint32(off + FA.cookie.offset + 4, rows.cookieHi[i]!, true);
  dv.setUint16(off + FA.priority.offset, rows.priority[i]!, true);
  dv.setUint8(off + FA.table_id.offset, rows.table[i]!);
  dv.setUint8(off + FA.flags.offset, rows.flagBits[i]!);
  dv.setUint16(off + FA.idle_timeout.offset, rows.idle[i]!, true);
  dv.setUint16(off + FA.hard_timeout.offset, rows.hard[i]!, true);
  dv.setUint16(off + FA.actions_len.offset, tlv.length, true);
  unpackInto(at, all, off + FA.key.offset, all, off + FA.mask.offset); // the rest was zeroed above
  // a loop, not all.set: an action list is a few bytes, and set is a call into the runtime
  const actionsAt = off + FA.actions.offset;
  for (let k = 0; k < tlv.length; k++) all[actionsAt + k] = tlv[k]!;
  return FLOW_ADD.size;
}

export function flowAddBody(rows: FlowRows, i: number): BodyWriter {
  return (dv, off) => writeFlowAdd(dv, off, rows, i);
}

/** Writes a FLOW_DEL body for the id (lo, hi) at off; returns its length. */
export function writeFlowDel(dv: DataView, off: number, lo: number, hi: number): number {
  dv.setUint32(off + FD.id.offset, lo, true);
  dv.setUint32(off + FD.id.offset + 4, hi, true);
  return FLOW_DEL.size;
}

export function flowDelBody(id: bigint): BodyWriter {
  const halves = [0, 0];
  split64(id, halves);
  return (dv, off) => writeFlowDel(dv, off, halves[0]!, halves[1]!);
}
