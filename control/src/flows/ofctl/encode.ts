// Action TLVs for ferryd: act_hdr {type, len, pad} + body, len a multiple of 8, laid out with the
// generated offset tables.
import {
  ACT_CONTROLLER, ACT_CT, ACT_GOTO_TABLE, ACT_HDR, ACT_OUTPUT, ACT_PUSH_VLAN, ACT_RESUBMIT, ACT_SET_FIELD,
  ActionType, TABLE_NONE,
} from '../../gen/proto';

const H = ACT_HDR.fields;
const roundUp8 = (n: number): number => (n + 7) & ~7;

const EMPTY = new Uint8Array(0);
const TLV_SLAB = 64 * 1024;
let tlvSlab = new Uint8Array(TLV_SLAB);
let tlvUsed = 0;
let scratch = new Uint8Array(1024);
let scratchDv = new DataView(scratch.buffer);

/** Builds one action list at a time in a shared scratch buffer; finish() copies it out. */
export class TlvBuilder {
  private buf = scratch;
  private dv = scratchDv;
  len = 0;

  /** Appends an action of size bytes (rounded up to 8, zeroed) and returns its offset. */
  begin(type: number, size: number): number {
    const total = roundUp8(size);
    if (this.len + total > this.buf.length) {
      const nb = new Uint8Array(Math.max(this.buf.length * 2, this.len + total));
      nb.set(this.buf);
      this.buf = scratch = nb;
      this.dv = scratchDv = new DataView(nb.buffer);
    }
    const at = this.len;
    this.buf.fill(0, at, at + total);
    this.dv.setUint16(at + H.type.offset, type, true);
    this.dv.setUint16(at + H.len.offset, total, true);
    this.len += total;
    return at;
  }

  get view(): DataView {
    return this.dv;
  }

  get bytes(): Uint8Array {
    return this.buf;
  }

  bare(type: number): void {
    this.begin(type, ACT_HDR.size);
  }

  output(port: number, maxLen = 0): void {
    const at = this.begin(ActionType.OUTPUT, ACT_OUTPUT.size);
    this.dv.setUint32(at + ACT_OUTPUT.fields.port.offset, port, true);
    this.dv.setUint16(at + ACT_OUTPUT.fields.max_len.offset, maxLen, true);
  }

  gotoTable(table: number): void {
    const at = this.begin(ActionType.GOTO_TABLE, ACT_GOTO_TABLE.size);
    this.dv.setUint8(at + ACT_GOTO_TABLE.fields.table_id.offset, table);
  }

  resubmit(inPort: number, table: number): void {
    const at = this.begin(ActionType.RESUBMIT, ACT_RESUBMIT.size);
    this.dv.setUint32(at + ACT_RESUBMIT.fields.in_port.offset, inPort, true);
    this.dv.setUint8(at + ACT_RESUBMIT.fields.table_id.offset, table);
  }

  /** value/mask are the field's flow_key bytes, left-aligned (at most 16). */
  setField(field: number, value: Uint8Array, mask: Uint8Array): void {
    const at = this.begin(ActionType.SET_FIELD, ACT_SET_FIELD.size);
    const F = ACT_SET_FIELD.fields;
    this.dv.setUint16(at + F.field.offset, field, true);
    this.buf.set(value.subarray(0, 16), at + F.value.offset);
    this.buf.set(mask.subarray(0, 16), at + F.mask.offset);
  }

  pushVlan(tpid: number): void {
    const at = this.begin(ActionType.PUSH_VLAN, ACT_PUSH_VLAN.size);
    this.dv.setUint16(at + ACT_PUSH_VLAN.fields.tpid.offset, tpid, true);
  }

  controller(maxLen: number, reason: number): void {
    const at = this.begin(ActionType.CONTROLLER, ACT_CONTROLLER.size);
    this.dv.setUint16(at + ACT_CONTROLLER.fields.max_len.offset, maxLen, true);
    this.dv.setUint8(at + ACT_CONTROLLER.fields.reason.offset, reason);
  }

  note(data: readonly number[]): void {
    const at = this.begin(ActionType.NOTE, ACT_HDR.size + data.length);
    this.buf.set(data, at + ACT_HDR.size);
  }

  ct(c: CtTlv): void {
    const at = this.begin(ActionType.CT, ACT_CT.size);
    const F = ACT_CT.fields;
    const dv = this.dv;
    dv.setUint16(at + F.flags.offset, c.flags, true);
    dv.setUint16(at + F.zone.offset, c.zone, true);
    dv.setUint8(at + F.zone_reg.offset, c.zoneReg);
    dv.setUint8(at + F.zone_reg_ofs.offset, c.zoneRegOfs);
    dv.setUint8(at + F.table_id.offset, c.table ?? TABLE_NONE);
    dv.setUint8(at + F.alg.offset, c.alg);
    dv.setUint32(at + F.mark.offset, c.mark >>> 0, true);
    dv.setUint32(at + F.mark_mask.offset, c.markMask >>> 0, true);
    this.buf.set(c.label, at + F.label.offset);
    this.buf.set(c.labelMask, at + F.label_mask.offset);
    this.buf.set(c.natMin, at + F.nat_addr_min.offset);
    this.buf.set(c.natMax, at + F.nat_addr_max.offset);
    dv.setUint16(at + F.nat_port_min.offset, c.natPortMin, true);
    dv.setUint16(at + F.nat_port_max.offset, c.natPortMax, true);
    dv.setUint8(at + F.nat_is_ipv6.offset, c.natIpv6 ? 1 : 0);
  }

  /** The list, copied out of the scratch buffer (into a shared slab: no ArrayBuffer per flow). */
  finish(): Uint8Array {
    const n = this.len;
    if (n === 0) return EMPTY;
    if (n > TLV_SLAB) return this.buf.slice(0, n);
    if (tlvUsed + n > TLV_SLAB) {
      tlvSlab = new Uint8Array(TLV_SLAB);
      tlvUsed = 0;
    }
    const out = tlvSlab.subarray(tlvUsed, tlvUsed + n);
    out.set(this.buf.subarray(0, n));
    tlvUsed += n;
    return out;
  }
}

export interface CtTlv {
  flags: number;
  zone: number;
  zoneReg: number;
  zoneRegOfs: number;
  table?: number;
  alg: number;
  mark: number;
  markMask: number;
  label: Uint8Array;
  labelMask: Uint8Array;
  natMin: Uint8Array;
  natMax: Uint8Array;
  natPortMin: number;
  natPortMax: number;
  natIpv6: boolean;
}
