// A flow as the desired-state store keeps it: the compiled form, compactly (keys and masks are
// mostly zero bytes, so only the runs that are not). Loading needs no ferryd and no recompiling:
// ports were resolved and checked when the flow was first added.
import { ACTIONS_MAX } from '../gen/proto';
import { KEY_SIZE, PackedFlow, eachPackedRun, pack } from './ofctl';
import type { Action, CompiledFlow } from './ofctl';
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

/** The record's runs ([offset, key hex, mask hex]) are the flow's packed runs, written out. */
function eachRunHex(f: CompiledFlow, fn: (start: number, keyHex: string, maskHex: string) => void): void {
  const { buf } = f.at;
  eachPackedRun(f.at, (start, n, at) => fn(start, hex(buf, at, at + n), hex(buf, at + n, at + 2 * n)));
}

export function flowRecord(f: CompiledFlow): FlowRecord {
  const r: [number, string, string][] = [];
  eachRunHex(f, (start, k, m) => r.push([start, k, m]));
  return {
    t: f.table, p: f.priority, i: f.idleTimeout, h: f.hardTimeout, fb: f.flagBits, f: f.flags,
    c: f.cookie.toString(16), r, n: KEY_SIZE, a: f.actions, v: partsOf(f).b64,
  };
}

/**
 * JSON.stringify(flowRecord(f)), made straight from the flow: no record object, and the shared
 * parts (actions) serialized once per actions array. The bulk path makes one per flow.
 */
export function flowRecordText(f: CompiledFlow): string {
  let runs = '';
  eachRunHex(f, (start, k, m) => {
    runs += `${runs ? ',' : ''}[${start},"${k}","${m}"]`;
  });
  const parts = partsOf(f);
  const flags = f.flags.length === 0 ? '[]' : JSON.stringify(f.flags);
  return `{"t":${f.table},"p":${f.priority},"i":${f.idleTimeout},"h":${f.hardTimeout},"fb":${f.flagBits},"f":${flags},"c":"${f.cookie.toString(16)}","r":[${runs}],"n":${KEY_SIZE},"a":${parts.json},"v":"${parts.b64}"}`;
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
