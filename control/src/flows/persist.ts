// A flow as the desired-state store keeps it: the compiled form, compactly (keys and masks are
// mostly zero bytes, so only the runs that are not). Loading needs no ferryd and no recompiling:
// ports were resolved and checked when the flow was first added.
import { ACTIONS_MAX } from '../gen/proto';
import { KEY_SIZE, PackedFlow, flagsOf, pack } from './ofctl';
import type { Action, CompiledFlow } from './ofctl';
import { FlowRows } from './rows';
import { flowIdPartsPacked, formatFlowId, parseFlowId } from './flow-id';
import type { StoredFlow } from './store';

export const FLOWS_NS = 'flows';

export interface FlowRecord {
  /** table, priority, idle and hard timeout, flag bits */
  t: number;
  p: number;
  i: number;
  h: number;
  fb: number;
  f: string[];
  /** cookie, hex */
  c: string;
  /** [offset, key bytes hex, mask bytes hex] for each run where key or mask is not zero */
  r: [number, string, string][];
  /** length of key (= of mask) */
  n: number;
  a: Action[];
  /** the actions' TLV bytes, base64 */
  v: string;
}

/** The actions' JSON and TLV base64 (and, for writeFlowRowRecord, the record's tail from "a" on as
 * UTF-8), once per actions array: bulk loads share one per action text. */
const actionParts = new WeakMap<readonly Action[], { json: string; b64: string; tail?: Buffer }>();

function partsOf(actions: readonly Action[], tlv: Uint8Array): { json: string; b64: string; tail?: Buffer } {
  let p = actionParts.get(actions);
  if (!p) {
    p = { json: JSON.stringify(actions), b64: Buffer.from(tlv).toString('base64') };
    actionParts.set(actions, p);
  }
  return p;
}

/** The one flow that flowRecordText writes from (a row of its own, reused). */
const oneRow = new FlowRows(1);
/** Where flowRowText writes a record before it becomes a string (grown for a record that needs it). */
let scratch = Buffer.allocUnsafe(16 * 1024);

/** The journal record of f (a FlowRecord's JSON), written as writeFlowRowRecord writes it (one writer of the format). */
export function flowRecordText(f: CompiledFlow): string {
  oneRow.push(f);
  const text = flowRowText(oneRow, 0);
  oneRow.pop(); // holds no slab nor actions of f's
  return text;
}

/** flowRecordText of row i of rows (what a snapshot of the desired state holds). */
export function flowRowText(rows: FlowRows, i: number): string {
  for (;;) {
    const end = writeFlowRowRecord(rows, i, scratch, 0, scratch.length);
    if (end >= 0) return scratch.toString('utf8', 0, end);
    scratch = Buffer.allocUnsafe(2 * scratch.length);
  }
}

// ---- the same text as bytes, for the journal (no string a flow) ----------------------------
const ascii = (t: string): Uint8Array => Uint8Array.from(t, (c) => c.charCodeAt(0));
const HEX_CODES = ascii('0123456789abcdef');
const T_HEAD = ascii('{"t":');
const P = ascii(',"p":');
const I = ascii(',"i":');
const H = ascii(',"h":');
const FB = ascii(',"fb":');
const F = ascii(',"f":');
const C = ascii(',"c":"');
const R = ascii('","r":[');
const N = ascii(`],"n":${KEY_SIZE},"a":`);
/** the longest a record's fixed parts, numbers and cookie take (the runs and the tail are counted apart) */
const FIXED_MOST = 192;
const flagsJson = new Map<number, Uint8Array>();

function putBytes(buf: Uint8Array, pos: number, b: Uint8Array): number {
  buf.set(b, pos);
  return pos + b.length;
}

/** Writes n >= 0 (an integer below 2^32) in decimal. */
function putUint(buf: Uint8Array, pos: number, n: number): number {
  if (n < 10) {
    buf[pos] = 48 + n;
    return pos + 1;
  }
  let digits = 1;
  for (let x = n; x >= 10; x = Math.floor(x / 10)) digits++;
  for (let k = pos + digits - 1; k >= pos; k--) {
    buf[k] = 48 + (n % 10);
    n = Math.floor(n / 10);
  }
  return pos + digits;
}

/** Writes bytes [from, to) of src as lower-case hex. */
function putHexBytes(buf: Uint8Array, pos: number, src: Uint8Array, from: number, to: number): number {
  for (let i = from; i < to; i++) {
    const b = src[i]!;
    buf[pos++] = HEX_CODES[b >>> 4]!;
    buf[pos++] = HEX_CODES[b & 15]!;
  }
  return pos;
}

/** Writes a 32-bit word as 8 hex digits (pad) or without leading zeros (at least one digit). */
function putHex32(buf: Uint8Array, pos: number, w: number, pad: boolean): number {
  let k = 28;
  if (!pad) while (k > 0 && (w >>> k) === 0) k -= 4;
  for (; k >= 0; k -= 4) buf[pos++] = HEX_CODES[(w >>> k) & 15]!;
  return pos;
}

/** Writes a 64-bit value given as halves as 16 hex digits (a flow id as a key). */
export function putHex64(buf: Uint8Array, pos: number, lo: number, hi: number): number {
  return putHex32(buf, putHex32(buf, pos, hi, true), lo, true);
}

// the record's head, {"t":..,"p":..,"i":..,"h":..,"fb":..,"f":[..],"c":" of the last flow written:
// the flows of a bulk load mostly share it, and one copy costs less than its ten pieces
const lastHead = { table: -1, priority: -1, idle: -1, hard: -1, flagBits: -1, bytes: new Uint8Array(0) };
const headScratch = new Uint8Array(FIXED_MOST);

/** The bytes of a record's head up to its cookie's opening quote (shared: valid until the next call). */
function headOf(table: number, priority: number, idle: number, hard: number, fb: number): Uint8Array {
  const h = lastHead;
  if (h.table === table && h.priority === priority && h.idle === idle && h.hard === hard && h.flagBits === fb) return h.bytes;
  let fj = flagsJson.get(fb);
  if (fj === undefined) flagsJson.set(fb, fj = ascii(JSON.stringify(flagsOf(fb))));
  const b = headScratch;
  let pos = 0;
  const numbers: [Uint8Array, number][] = [[T_HEAD, table], [P, priority], [I, idle], [H, hard], [FB, fb]];
  for (const [name, n] of numbers) pos = putUint(b, putBytes(b, pos, name), n);
  pos = putBytes(b, putBytes(b, pos, F), fj);
  pos = putBytes(b, pos, C);
  h.table = table;
  h.priority = priority;
  h.idle = idle;
  h.hard = hard;
  h.flagBits = fb;
  h.bytes = b.slice(0, pos);
  return h.bytes;
}

/**
 * Writes the record of row i of rows (JSON.stringify(flowRecord) of its flow) as UTF-8 at pos, if it fits before end; returns the position after it,
 * or -1 when it does not fit (nothing a caller can use was written). The journal's bulk path: no
 * string is made for a flow.
 */
export function writeFlowRowRecord(rows: FlowRows, i: number, buf: Uint8Array, pos: number, end: number): number {
  const a = rows.acts[i]!;
  const parts = partsOf(a.actions, a.tlv);
  const tail = (parts.tail ??= Buffer.from(`${parts.json},"v":"${parts.b64}"}`, 'utf8'));
  const plen = rows.packedLen[i]!;
  // runs: each [start,"key hex","mask hex"] is at most 12 bytes besides its hex (2 a byte of packed data)
  if (pos + FIXED_MOST + 2 * plen + 6 * plen + tail.length > end) return -1;
  pos = putBytes(buf, pos, headOf(rows.table[i]!, rows.priority[i]!, rows.idle[i]!, rows.hard[i]!, rows.flagBits[i]!));
  const chi = rows.cookieHi[i]!;
  pos = chi === 0 ? putHex32(buf, pos, rows.cookieLo[i]!, false) : putHex32(buf, putHex32(buf, pos, chi, false), rows.cookieLo[i]!, true);
  pos = putBytes(buf, pos, R);
  const src = rows.slab[i]!;
  for (let r = rows.packedOff[i]!, last = r + plen; r < last;) {
    const n = src[r + 1]!;
    if (r !== rows.packedOff[i]) buf[pos++] = 0x2c; // ,
    buf[pos++] = 0x5b; // [
    pos = putUint(buf, pos, src[r]!);
    buf[pos++] = 0x2c;
    buf[pos++] = 0x22; // "
    pos = putHexBytes(buf, pos, src, r + 2, r + 2 + n);
    buf[pos++] = 0x22;
    buf[pos++] = 0x2c;
    buf[pos++] = 0x22;
    pos = putHexBytes(buf, pos, src, r + 2 + n, r + 2 + 2 * n);
    buf[pos++] = 0x22;
    buf[pos++] = 0x5d; // ]
    r += 2 + 2 * n;
  }
  pos = putBytes(buf, pos, N);
  return putBytes(buf, pos, tail);
}

export const flowKey = (id: bigint): string => formatFlowId(id);

function tlvOf(idText: string, b64: string): Uint8Array {
  const tlv = new Uint8Array(Buffer.from(b64, 'base64'));
  if (tlv.length > ACTIONS_MAX) throw new Error(`flow ${idText}: ${tlv.length} bytes of actions, more than the ${ACTIONS_MAX} ferryd takes`);
  return tlv;
}

/** The stored flow back (not installed: slot null). Throws if the record does not hash to its id. */
export function flowFromRecord(idText: string, rec: FlowRecord): StoredFlow {
  const id = parseFlowId(idText);
  if (id === null) throw new Error(`flow key ${idText} is not a flow id`);
  // a record of another flow_key layout, or actions ferryd cannot take: refused here, not sent
  if (rec.n !== KEY_SIZE) throw new Error(`flow ${idText}: a key of ${rec.n} bytes, not flow_key's ${KEY_SIZE}`);
  const km = new Uint8Array(2 * KEY_SIZE); // key, then mask
  for (const [off, k, m] of rec.r) {
    km.set(Buffer.from(k, 'hex'), off);
    km.set(Buffer.from(m, 'hex'), KEY_SIZE + off);
  }
  const packed = pack(km);
  const [hash, idHi] = flowIdPartsPacked(rec.t, rec.p, packed, KEY_SIZE);
  if (hash !== id) throw new Error(`flow ${idText}: its table, priority and match hash to ${formatFlowId(hash)}`);
  return new PackedFlow(id, idHi, rec.t, rec.p, BigInt('0x' + rec.c), rec.i, rec.h, rec.f, rec.fb, rec.a, tlvOf(idText, rec.v), packed);
}
