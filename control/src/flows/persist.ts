// A flow as the desired-state store keeps it: the compiled form, compactly (keys and masks are
// mostly zero bytes, so only the runs that are not). Loading needs no ferryd and no recompiling:
// ports were resolved and checked when the flow was first added.
import { KEY_SIZE } from './ofctl';
import type { Action, CompiledFlow } from './ofctl';
import { flowIdParts, formatFlowId, parseFlowId } from './flow-id';
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

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

function hex(b: Uint8Array, from: number, to: number): string {
  let s = '';
  for (let i = from; i < to; i++) s += HEX[b[i]!];
  return s;
}

/** The actions' JSON and TLV base64, once per actions array: bulk loads share one per action text. */
const actionParts = new WeakMap<readonly Action[], { json: string; b64: string }>();

function partsOf(f: CompiledFlow): { json: string; b64: string } {
  let p = actionParts.get(f.actions);
  if (!p) {
    p = { json: JSON.stringify(f.actions), b64: Buffer.from(f.tlv).toString('base64') };
    actionParts.set(f.actions, p);
  }
  return p;
}

/** The flow's key and mask as [bytes, key offset, mask offset, length]: in its slab when it has one (no views). */
function keyMaskOf(f: CompiledFlow): [Uint8Array, number, Uint8Array, number, number] {
  if (f.at) return [f.at.km, f.at.off, f.at.km, f.at.off + KEY_SIZE, KEY_SIZE];
  return [f.key, 0, f.mask, 0, f.key.length];
}

/** Calls fn(start, end) for each run of bytes (0-based in the key) where key or mask is not zero. */
function eachRun(kb: Uint8Array, kOff: number, mb: Uint8Array, mOff: number, len: number, fn: (start: number, end: number) => void): void {
  let i = 0;
  while (i < len) {
    if (kb[kOff + i] === 0 && mb[mOff + i] === 0) {
      i++;
      continue;
    }
    const start = i;
    while (i < len && (kb[kOff + i] !== 0 || mb[mOff + i] !== 0)) i++;
    fn(start, i);
  }
}

export function flowRecord(f: CompiledFlow): FlowRecord {
  const r: [number, string, string][] = [];
  const [kb, kOff, mb, mOff, n] = keyMaskOf(f);
  eachRun(kb, kOff, mb, mOff, n, (start, end) => r.push([start, hex(kb, kOff + start, kOff + end), hex(mb, mOff + start, mOff + end)]));
  return {
    t: f.table, p: f.priority, i: f.idleTimeout, h: f.hardTimeout, fb: f.flagBits, f: f.flags,
    c: f.cookie.toString(16), r, n, a: f.actions, v: partsOf(f).b64,
  };
}

/**
 * JSON.stringify(flowRecord(f)), made straight from the flow: no record object, and the shared
 * parts (actions) serialized once per actions array. The bulk path makes one per flow.
 */
export function flowRecordText(f: CompiledFlow): string {
  const [kb, kOff, mb, mOff, n] = keyMaskOf(f);
  let runs = '';
  eachRun(kb, kOff, mb, mOff, n, (start, end) => {
    runs += `${runs ? ',' : ''}[${start},"${hex(kb, kOff + start, kOff + end)}","${hex(mb, mOff + start, mOff + end)}"]`;
  });
  const parts = partsOf(f);
  const flags = f.flags.length === 0 ? '[]' : JSON.stringify(f.flags);
  return `{"t":${f.table},"p":${f.priority},"i":${f.idleTimeout},"h":${f.hardTimeout},"fb":${f.flagBits},"f":${flags},"c":"${f.cookie.toString(16)}","r":[${runs}],"n":${n},"a":${parts.json},"v":"${parts.b64}"}`;
}

export const flowKey = (id: bigint): string => formatFlowId(id);

/** The stored flow back (not installed: slot null). Throws if the record does not hash to its id. */
export function flowFromRecord(idText: string, rec: FlowRecord): StoredFlow {
  const id = parseFlowId(idText);
  if (id === null) throw new Error(`flow key ${idText} is not a flow id`);
  const key = new Uint8Array(rec.n);
  const mask = new Uint8Array(rec.n);
  for (const [off, k, m] of rec.r) {
    key.set(Buffer.from(k, 'hex'), off);
    mask.set(Buffer.from(m, 'hex'), off);
  }
  const [hash, idHi] = flowIdParts(rec.t, rec.p, key, mask);
  if (hash !== id) throw new Error(`flow ${idText}: its table, priority and match hash to ${formatFlowId(hash)}`);
  return {
    id, idHi, table: rec.t, priority: rec.p, cookie: BigInt('0x' + rec.c), idleTimeout: rec.i, hardTimeout: rec.h,
    flags: rec.f, flagBits: rec.fb, key, mask, actions: rec.a, tlv: new Uint8Array(Buffer.from(rec.v, 'base64')),
    slot: null, installedNs: 0n,
  };
}
