// Match parsing: ovs-ofctl tokens or JSON members -> flow_key key/mask, with OVS's prerequisites.
import { FLOW_KEY } from '../../gen/proto';
import {
  FieldDef, ParsedValue, PortResolver, Prereq, SHORTHANDS, encodeField, fieldByName, fieldRegion, parseFieldValue, storageDef,
} from './fields';
import { FlowSyntaxError } from './values';
import { PackedKeyMask, pack } from './packed';

export const KEY_SIZE = FLOW_KEY.size;
const K = FLOW_KEY.fields;

/** One match item as the user gave it: a field (or shorthand) name and its text value (null for a bare word). */
export interface MatchItem {
  name: string;
  value: string | null;
  /** where the match is, for errors (e.g. ['match']): the item's path is base + name */
  base: readonly (string | number)[];
}

export const MATCH_BASE: readonly string[] = ['match'];

export function pathOf(it: MatchItem): (string | number)[] {
  return [...it.base, it.name];
}

export interface ParsedMatch {
  key: Uint8Array;
  mask: Uint8Array;
}

/** What the prerequisites look at: the exactly-matched eth_type, ip_proto and ct_nw_proto. */
export interface MatchContext {
  ethType?: number;
  ipProto?: number;
  ctNwProto?: number;
}

export function matchContext(key: Uint8Array, mask: Uint8Array): MatchContext {
  return matchContextAt(key, 0, mask, 0);
}

/** matchContext of the key at kOff in kb and the mask at mOff in mb. */
export function matchContextAt(kb: Uint8Array, kOff: number, mb: Uint8Array, mOff: number): MatchContext {
  const et = K.eth_type.offset;
  const ctx: MatchContext = {};
  if (mb[mOff + et] === 0xff && mb[mOff + et + 1] === 0xff) ctx.ethType = kb[kOff + et]! | (kb[kOff + et + 1]! << 8);
  if ((ctx.ethType === 0x0800 || ctx.ethType === 0x86dd) && mb[mOff + K.nw_proto.offset] === 0xff) ctx.ipProto = kb[kOff + K.nw_proto.offset];
  if (mb[mOff + K.ct_nw_proto.offset] === 0xff) ctx.ctNwProto = kb[kOff + K.ct_nw_proto.offset];
  return ctx;
}

const PROTO_NAME: Record<number, string> = { 6: 'tcp', 17: 'udp', 132: 'sctp' };

/** null if f's prerequisite holds in ctx, else what is missing (OVS lib/meta-flow.xml). */
export function prereqProblem(p: Prereq, ctx: MatchContext, fieldName = ''): string | null {
  const v6 = ctx.ethType === 0x86dd;
  const ip = ctx.ethType === 0x0800 || v6;
  switch (p) {
    case 'none': return null;
    case 'ipv4': return ctx.ethType === 0x0800 ? null : 'requires eth_type=0x0800 (add "ip")';
    case 'ipv6': return v6 ? null : 'requires eth_type=0x86dd (add "ipv6")';
    case 'ip': return ip ? null : 'requires eth_type=0x0800 or 0x86dd (add "ip" or "ipv6")';
    case 'arp': return ctx.ethType === 0x0806 ? null : 'requires eth_type=0x0806 (add "arp")';
    case 'l4':
      return ip && (ctx.ipProto === 6 || ctx.ipProto === 17 || ctx.ipProto === 132) ? null
        : v6 ? 'requires ip_proto=6, 17 or 132 (add "tcp6", "udp6" or "sctp6")'
          : 'requires ip_proto=6, 17 or 132 (add "tcp", "udp" or "sctp")';
    case 'tcp': case 'udp': case 'sctp': {
      const n = { tcp: 6, udp: 17, sctp: 132 }[p];
      return ip && ctx.ipProto === n ? null : `requires ip_proto=${n} (add "${p}${v6 ? '6' : ''}")`;
    }
    case 'icmp':
      // OVS prints ICMPv6 type/code as icmp_type/icmp_code too: accept them there so its output parses back
      if ((fieldName === 'icmp_type' || fieldName === 'icmp_code') && v6 && ctx.ipProto === 58) return null;
      return ctx.ethType === 0x0800 && ctx.ipProto === 1 ? null : 'requires eth_type=0x0800 and ip_proto=1 (add "icmp")';
    case 'icmpv6': return v6 && ctx.ipProto === 58 ? null : 'requires eth_type=0x86dd and ip_proto=58 (add "icmp6")';
    case 'ct_l4': return ctx.ctNwProto !== undefined ? null : 'requires ct_nw_proto';
  }
}

export function protoName(n: number): string | undefined {
  return PROTO_NAME[n];
}

const scratchV = new Uint8Array(16);
const scratchM = new Uint8Array(16);

// buildMatch merges into this (key at 0, mask at KEY_SIZE), then packs the result for the flow
const scratchKm = new Uint8Array(2 * KEY_SIZE);

// region offset -> token that set it, for the current buildMatch call. An array, not a Map:
// clearing a Map allocates its table again, once a flow in a bulk load. Its offsets lie in the
// merged range below, which buildMatch clears.
const owners: (string | undefined)[] = new Array(KEY_SIZE).fill(undefined);

// the bytes of scratchKm the current buildMatch merged into lie in [mergedFrom, mergedTo) (key and mask)
let mergedFrom: number = 0;
let mergedTo: number = KEY_SIZE;

/** ORs value/mask of f into km (key at 0, mask at KEY_SIZE); throws if a bit both already hold differs (two tokens disagree). */
function merge(km: Uint8Array, f: FieldDef, it: MatchItem, value: number | bigint, m: number | bigint): void {
  const [off, len] = fieldRegion(f);
  const k = off;
  const mk = KEY_SIZE + off;
  for (let i = 0; i < len; i++) {
    scratchV[i] = 0;
    scratchM[i] = 0;
  }
  encodeField(f, value, m, scratchV, scratchM, 0);
  if (off < mergedFrom) mergedFrom = off;
  if (off + len > mergedTo) mergedTo = off + len;
  for (let i = 0; i < len; i++) {
    if (((km[k + i]! ^ scratchV[i]!) & km[mk + i]! & scratchM[i]!) !== 0) {
      const other = owners[off] ?? 'another field';
      throw new FlowSyntaxError(pathOf(it), it.name, `conflicts with ${other}`);
    }
  }
  for (let i = 0; i < len; i++) {
    km[k + i] = km[k + i]! | scratchV[i]!;
    km[mk + i] = km[mk + i]! | scratchM[i]!;
  }
  if (owners[off] === undefined) owners[off] = it.name;
}

/** parseFieldValue of a match item; its path is made only for an error (not an array a field a line). */
function fieldValue(f: FieldDef, it: MatchItem, ports?: PortResolver): ParsedValue {
  try {
    return parseFieldValue(f, it.value!, NO_PATH, it.name, ports);
  } catch (e) {
    if (e instanceof FlowSyntaxError && e.path === NO_PATH) throw new FlowSyntaxError(pathOf(it), e.token, e.reason);
    throw e;
  }
}
const NO_PATH: (string | number)[] = [];

// the fields buildMatch matched and their items, for the prerequisite pass (reused, one call at a time)
const matchedFields: FieldDef[] = [];
const matchedItems: MatchItem[] = [];

const ETH_TYPE = fieldByName('eth_type')!;
const IP_PROTO = fieldByName('ip_proto')!;

/** Builds key/mask from items (and what the prerequisites saw); throws FlowSyntaxError naming the offending item. */
export function buildMatch(items: readonly MatchItem[], ports?: PortResolver): { packed: PackedKeyMask; ctx: MatchContext } {
  const km = scratchKm;
  // only what the last call merged is not zero (nor owned)
  for (let i = mergedFrom; i < mergedTo; i++) {
    km[i] = 0;
    km[KEY_SIZE + i] = 0;
    owners[i] = undefined;
  }
  mergedFrom = KEY_SIZE;
  mergedTo = 0;
  // the first nFields of these are this call's (reused arrays: no length reset, a runtime call)
  const fields = matchedFields;
  const items_ = matchedItems;
  let nFields = 0;

  for (const it of items) {
    const sh = SHORTHANDS.get(it.name);
    if (sh) {
      if (it.value !== null && it.value !== '') throw new FlowSyntaxError(pathOf(it), it.name, 'is a shorthand and takes no value');
      merge(km, ETH_TYPE, it, sh.ethType, 0xffff);
      if (sh.proto !== undefined) merge(km, IP_PROTO, it, sh.proto, 0xff);
      continue;
    }
    const f = fieldByName(it.name);
    if (!f) throw new FlowSyntaxError(pathOf(it), it.name, 'unknown field');
    if (it.value === null || it.value === '') throw new FlowSyntaxError(pathOf(it), it.name, 'needs a value');
    const pv = fieldValue(f, it, ports);
    merge(km, storageDef(f), it, pv.value, pv.mask);
    fields[nFields] = f;
    items_[nFields++] = it;
  }

  const ctx = matchContextAt(km, 0, km, KEY_SIZE);
  for (let i = 0; i < nFields; i++) {
    const f = fields[i]!;
    const p = prereqProblem(f.prereq, ctx, f.name);
    if (p) throw new FlowSyntaxError(pathOf(items_[i]!), items_[i]!.name, p);
  }
  return { packed: pack(km, mergedFrom, mergedTo), ctx };
}

/** Items of a JSON match object: values are strings or numbers; shorthands take true (or ""/null). */
export function jsonMatchItems(m: Record<string, unknown>, base: (string | number)[]): MatchItem[] {
  const out: MatchItem[] = [];
  for (const [name, v] of Object.entries(m)) {
    const path = [...base, name];
    if (SHORTHANDS.has(name)) {
      if (v !== true && v !== null && v !== '') throw new FlowSyntaxError(path, name, 'is a shorthand: give it true');
      out.push({ name, value: null, base });
    } else if (typeof v === 'string') {
      out.push({ name, value: v, base });
    } else if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) {
      out.push({ name, value: String(v), base });
    } else {
      if (!fieldByName(name)) throw new FlowSyntaxError(path, name, 'unknown field');
      throw new FlowSyntaxError(path, name, 'must be a string ("value" or "value/mask") or a non-negative integer');
    }
  }
  return out;
}

/** true if every bit sub constrains, sup constrains to the same value (sup is at least as specific). */
export function matchCovers(subKey: Uint8Array, subMask: Uint8Array, supKey: Uint8Array, supMask: Uint8Array): boolean {
  for (let i = 0; i < KEY_SIZE; i++) {
    const m = subMask[i]!;
    if (m === 0) continue;
    if ((supMask[i]! & m) !== m || (supKey[i]! & m) !== subKey[i]) return false;
  }
  return true;
}
