// Records of ferryd's event ring: flows it removed (timeouts), packets sent to the controller, and
// connections the tracker created or destroyed (when its events are on).
import { CT_EVENT, CtEntry, EVENT_FLOW_REMOVED, EVENT_HDR, EVENT_PACKET_IN, EventType, readCtEntry } from './gen/proto';

export interface FlowRemovedEvent {
  type: 'flow_removed';
  seq: bigint;
  /** CLOCK_MONOTONIC ns when ferryd posted it */
  timeNs: bigint;
  id: bigint;
  cookie: bigint;
  packets: bigint;
  bytes: bigint;
  durationNs: bigint;
  reason: number;
  table: number;
  priority: number;
}

export interface PacketInEvent {
  type: 'packet_in';
  seq: bigint;
  timeNs: bigint;
  cookie: bigint;
  inPort: number;
  totalLen: number;
  table: number;
  reason: number;
  data: Buffer;
}

/** CT_NEW / CT_DESTROY: a connection entered or left ferryd's tracker. */
export interface CtEventRecord {
  type: 'ct';
  kind: 'new' | 'destroy';
  seq: bigint;
  timeNs: bigint;
  entry: CtEntry;
  /** CtDestroyReason (CT_DESTROY only) */
  reason: number;
}

export interface UnknownEvent {
  type: 'unknown';
  code: number;
  seq: bigint;
  timeNs: bigint;
}

export type FerryEvent = FlowRemovedEvent | PacketInEvent | CtEventRecord | UnknownEvent;

const EH = EVENT_HDR.fields;
const FR = EVENT_FLOW_REMOVED.fields;
const PI = EVENT_PACKET_IN.fields;

/** Decodes the event record at off (slotSize bytes available). */
export function decodeEvent(dv: DataView, off: number, slotSize: number): FerryEvent {
  const code = dv.getUint16(off + EH.type.offset, true);
  const len = dv.getUint32(off + EH.len.offset, true);
  const seq = dv.getBigUint64(off + EH.seq.offset, true);
  const timeNs = dv.getBigUint64(off + EH.time_ns.offset, true);
  const b = off + EVENT_HDR.size;
  const room = slotSize - EVENT_HDR.size;
  if (code === EventType.FLOW_REMOVED && len >= EVENT_FLOW_REMOVED.size && room >= EVENT_FLOW_REMOVED.size) {
    return {
      type: 'flow_removed', seq, timeNs,
      id: dv.getBigUint64(b + FR.id.offset, true),
      cookie: dv.getBigUint64(b + FR.cookie.offset, true),
      packets: dv.getBigUint64(b + FR.packets.offset, true),
      bytes: dv.getBigUint64(b + FR.bytes.offset, true),
      durationNs: dv.getBigUint64(b + FR.duration_ns.offset, true),
      reason: dv.getUint8(b + FR.reason.offset),
      table: dv.getUint8(b + FR.table_id.offset),
      priority: dv.getUint16(b + FR.priority.offset, true),
    };
  }
  if (code === EventType.PACKET_IN && len >= PI.data.offset && room >= EVENT_PACKET_IN.size) {
    const dataLen = Math.min(dv.getUint16(b + PI.data_len.offset, true), PI.data.size);
    return {
      type: 'packet_in', seq, timeNs,
      cookie: dv.getBigUint64(b + PI.cookie.offset, true),
      inPort: dv.getUint32(b + PI.in_port.offset, true),
      totalLen: dv.getUint32(b + PI.total_len.offset, true),
      table: dv.getUint8(b + PI.table_id.offset),
      reason: dv.getUint8(b + PI.reason.offset),
      data: Buffer.from(new Uint8Array(dv.buffer, dv.byteOffset + b + PI.data.offset, dataLen)),
    };
  }
  if ((code === EventType.CT_NEW || code === EventType.CT_DESTROY) && len >= CT_EVENT.size && room >= CT_EVENT.size) {
    return {
      type: 'ct', kind: code === EventType.CT_NEW ? 'new' : 'destroy', seq, timeNs,
      entry: readCtEntry(dv, b + CT_EVENT.fields.entry.offset),
      reason: dv.getUint8(b + CT_EVENT.fields.reason.offset),
    };
  }
  return { type: 'unknown', code, seq, timeNs };
}
