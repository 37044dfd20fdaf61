// Action lists: validation against the flow (table, match prerequisites, ports), the canonical JSON
// form, and the TLV bytes for ferryd, in one pass.
import { ACTIONS_MAX, CtAlg, CtFlag, FieldId, PORT_IN_PORT, TABLE_NONE, ActionType } from '../../gen/proto';
import { FieldDef, PortResolver, encodeField, fieldByName, parseFieldValue, storageDef } from './fields';
import { MatchContext, prereqProblem } from './match';
import { formatValue } from './describe';
import { TlvBuilder } from './encode';
import { RawAction } from './actions-text';
import { FlowSyntaxError, Val, nameTable, allOnes, formatHexBytes, formatIpv4, formatIpv6, parseHexBytes, parseIpv4, parseIpv6 } from './values';

export interface SetFieldAction { type: 'set_field'; field: string; value: string }
export interface NatSpec { type?: 'src' | 'dst'; range?: string; persistent?: true; hash?: true; random?: true }
export interface CtAction {
  type: 'ct'; commit?: true; force?: true; table?: number; zone?: number | string; nat?: NatSpec;
  exec?: SetFieldAction[]; alg?: 'ftp' | 'tftp';
}
export type Action =
  | { type: 'output'; port: number | 'in_port' }
  | { type: 'normal' } | { type: 'pop_vlan' } | { type: 'dec_ttl' } | { type: 'ct_clear' } | { type: 'notrack' }
  | { type: 'controller'; max_len?: number; reason?: string }
  | { type: 'goto_table'; table: number }
  | { type: 'resubmit'; port?: number; table?: number }
  | SetFieldAction
  | { type: 'push_vlan'; ethertype: string }
  | CtAction
  | { type: 'note'; data: string };

export interface ActionContext {
  table: number;
  match: MatchContext;
  ports?: PortResolver;
}

/** OpenFlow packet-in reasons (OFPR_*), as ovs-ofctl spells them. */
export const CONTROLLER_REASONS = nameTable<number>({
  no_match: 0, action: 1, invalid_ttl: 2, action_set: 3, group: 4, packet_out: 5,
});
export const CONTROLLER_REASON_NAME: Record<number, string> = Object.fromEntries(Object.entries(CONTROLLER_REASONS).map(([k, v]) => [v, k]));

const KNOWN = new Set(['output', 'drop', 'normal', 'pop_vlan', 'dec_ttl', 'ct_clear', 'notrack', 'controller', 'goto_table',
  'resubmit', 'set_field', 'push_vlan', 'ct', 'note']);
const BARE_TYPES = nameTable<number>({
  normal: ActionType.NORMAL, pop_vlan: ActionType.POP_VLAN, dec_ttl: ActionType.DEC_TTL, ct_clear: ActionType.CT_CLEAR,
  notrack: ActionType.NOTRACK,
});
const ALLOWED = nameTable<readonly string[]>({
  output: ['port'], drop: [], normal: [], pop_vlan: [], dec_ttl: [], ct_clear: [], notrack: [],
  controller: ['max_len', 'reason'], goto_table: ['table'], resubmit: ['port', 'table'], set_field: ['field', 'value'],
  push_vlan: ['ethertype'], ct: ['commit', 'force', 'table', 'zone', 'nat', 'exec', 'alg'], note: ['data'],
});

type Path = (string | number)[];

function intOf(v: unknown, max: number, path: Path, tok: string, what: string): number {
  const n = typeof v === 'string' && /^(0x[0-9a-f]+|[0-9]+)$/i.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > max) throw new FlowSyntaxError(path, tok, `${what} must be an integer 0..${max}`);
  return n;
}

interface SetFieldParsed { def: FieldDef; name: string; value: Val; mask: Val; text: string }

/** set_field target and value; name comes back canonical (tcp_src for tp_src under tcp, ...). */
function parseSetField(a: RawAction, ctx: ActionContext, path: Path, tok: string, inCt: boolean): SetFieldParsed {
  const fname = a.field;
  if (typeof fname !== 'string') throw new FlowSyntaxError([...path, 'field'], tok, 'set_field needs a field');
  const raw = typeof a.value === 'number' ? String(a.value) : a.value;
  if (typeof raw !== 'string' || raw === '') throw new FlowSyntaxError([...path, 'value'], tok, 'set_field needs a value');
  const f = fieldByName(fname);
  const ctField = fname === 'ct_mark' || fname === 'ct_label';
  if (!f || (inCt ? !ctField : f.setField === undefined)) {
    throw new FlowSyntaxError([...path, 'field'], tok, inCt ? `ct(exec()) can only set ct_mark or ct_label, not "${fname}"`
      : ctField ? `${fname} can only be set inside ct(commit,exec(...))` : `set_field cannot write "${fname}"`);
  }
  const pv = parseFieldValue(f, raw, [...path, 'value'], tok);
  if (!inCt) {
    const p = prereqProblem(f.prereq, ctx.match, f.name);
    if (p) throw new FlowSyntaxError(path, tok, `set_field ${fname}: ${p}`);
  }
  const def = storageDef(f);
  let name = def.name;
  if (name === 'tp_src' || name === 'tp_dst') {
    const p = ctx.match.ipProto;
    const pre = p === 6 ? 'tcp' : p === 17 ? 'udp' : p === 132 ? 'sctp' : 'tp';
    name = `${pre}_${name.slice(3)}`;
  }
  return { def, name, value: pv.value, mask: pv.mask, text: formatValue(def, pv.value, pv.mask) };
}

function regZone(s: string): { reg: number; ofs: number; text: string } | null {
  const m = /^(?:NXM_NX_REG|reg)([0-7])\[(\d+)\.\.(\d+)\]$/i.exec(s);
  if (!m) return null;
  const lo = Number(m[2]);
  const hi = Number(m[3]);
  if (hi - lo !== 15 || hi > 31) return null;
  return { reg: Number(m[1]), ofs: lo, text: `NXM_NX_REG${m[1]}[${lo}..${hi}]` };
}

interface NatRange { v6: boolean; min: Uint8Array; max: Uint8Array; pmin: number; pmax: number; text: string }

function natRange(s: string, path: Path, tok: string): NatRange {
  const bad = (): never => { throw new FlowSyntaxError(path, tok, `bad nat range "${s}" (IP[-IP][:PORT[-PORT]], IPv6 in [] when a port follows)`); };
  let a: string, b: string | undefined, p1: string | undefined, p2: string | undefined;
  let m = /^\[([^\]]+)\](?:-\[([^\]]+)\])?(?::(\d+)(?:-(\d+))?)?$/.exec(s);
  if (m) [, a, b, p1, p2] = m as unknown as [string, string, string | undefined, string | undefined, string | undefined];
  else if ((m = /^([0-9.]+)(?:-([0-9.]+))?(?::(\d+)(?:-(\d+))?)?$/.exec(s))) [, a, b, p1, p2] = m as unknown as [string, string, string | undefined, string | undefined, string | undefined];
  else if (/^[0-9a-fA-F:.]+(-[0-9a-fA-F:.]+)?$/.test(s) && s.includes(':')) [a, b] = s.split('-') as [string, string | undefined];
  else return bad();
  const min = new Uint8Array(16);
  const max = new Uint8Array(16);
  const v4a = parseIpv4(a!);
  const v6 = v4a === null;
  const put = (buf: Uint8Array, x: string): string => {
    if (!v6) {
      const v = parseIpv4(x);
      if (v === null) bad();
      new DataView(buf.buffer).setUint32(0, v!, false);
      return formatIpv4(v!);
    }
    const v = parseIpv6(x);
    if (v === null) bad();
    for (let i = 0; i < 16; i++) buf[i] = Number((v! >> BigInt((15 - i) * 8)) & 0xffn);
    return formatIpv6(v!);
  };
  const ta = put(min, a!);
  const tb = b !== undefined ? put(max, b) : undefined;
  if (b === undefined) max.set(min);
  const pmin = p1 === undefined ? 0 : Number(p1);
  const pmax = p2 === undefined ? pmin : Number(p2);
  if (pmin > 65535 || pmax > 65535 || pmax < pmin) bad();
  const bracket = v6 && p1 !== undefined;
  const addr = (t: string): string => (bracket ? `[${t}]` : t);
  let text = addr(ta) + (tb !== undefined && tb !== ta ? '-' + addr(tb) : '');
  if (p1 !== undefined) text += `:${pmin}${pmax !== pmin ? '-' + pmax : ''}`;
  return { v6, min, max, pmin, pmax, text };
}

function normCt(a: RawAction, ctx: ActionContext, path: Path, tok: string, tlv: TlvBuilder): CtAction {
  const out: CtAction = { type: 'ct' };
  let flags = 0;
  const bool = (k: 'commit' | 'force'): boolean => {
    const v = a[k];
    if (v === undefined || v === false) return false;
    if (v !== true) throw new FlowSyntaxError([...path, k], tok, `${k} must be true`);
    return true;
  };
  if (bool('commit')) { out.commit = true; flags |= CtFlag.COMMIT; }
  if (bool('force')) { out.force = true; flags |= CtFlag.FORCE; }
  let table: number | undefined;
  if (a.table !== undefined) out.table = table = intOf(a.table, 254, [...path, 'table'], tok, 'ct table');
  let zone = 0, zoneReg = 0, zoneRegOfs = 0;
  if (a.zone !== undefined) {
    const rz = typeof a.zone === 'string' && !/^[0-9]/.test(a.zone) ? regZone(a.zone) : null;
    if (rz) {
      flags |= CtFlag.ZONE_FROM_REG;
      zoneReg = rz.reg;
      zoneRegOfs = rz.ofs;
      out.zone = rz.text;
    } else if (typeof a.zone === 'string' && !/^[0-9]/.test(a.zone)) {
      throw new FlowSyntaxError([...path, 'zone'], tok, `zone must be 0..65535 or NXM_NX_REGi[lo..hi] (16 bits), not "${a.zone}"`);
    } else {
      zone = intOf(a.zone, 65535, [...path, 'zone'], tok, 'ct zone');
      if (zone !== 0) out.zone = zone; // OVS prints no zone=0
    }
  }
  const natMin = new Uint8Array(16);
  const natMax = new Uint8Array(16);
  let pmin = 0, pmax = 0, natV6 = false;
  if (a.nat !== undefined) {
    const n = a.nat as Record<string, unknown>;
    const np = [...path, 'nat'];
    if (typeof n !== 'object' || n === null || Array.isArray(n)) throw new FlowSyntaxError(np, tok, 'nat must be an object');
    for (const k of Object.keys(n)) {
      if (!['type', 'range', 'persistent', 'hash', 'random'].includes(k)) throw new FlowSyntaxError([...np, k], tok, `unknown nat member "${k}"`);
    }
    flags |= CtFlag.NAT;
    const spec: NatSpec = {};
    if (n.type !== undefined) {
      if (n.type !== 'src' && n.type !== 'dst') throw new FlowSyntaxError([...np, 'type'], tok, 'nat type must be "src" or "dst"');
      spec.type = n.type;
      flags |= n.type === 'src' ? CtFlag.NAT_SRC : CtFlag.NAT_DST;
    }
    if (n.range !== undefined) {
      if (!spec.type) throw new FlowSyntaxError([...np, 'range'], tok, 'a nat range needs src= or dst=');
      if (typeof n.range !== 'string') throw new FlowSyntaxError([...np, 'range'], tok, 'nat range must be a string');
      const r = natRange(n.range, [...np, 'range'], tok);
      const want = r.v6 ? 'ipv6' : 'ipv4';
      const p = prereqProblem(want, ctx.match);
      if (p) throw new FlowSyntaxError([...np, 'range'], tok, `nat to ${r.v6 ? 'IPv6' : 'IPv4'} ${p}`);
      natMin.set(r.min); natMax.set(r.max); pmin = r.pmin; pmax = r.pmax; natV6 = r.v6;
      spec.range = r.text;
    }
    for (const [k, bit] of [['persistent', CtFlag.NAT_PERSISTENT], ['hash', CtFlag.NAT_HASH], ['random', CtFlag.NAT_RANDOM]] as const) {
      if (n[k] === undefined || n[k] === false) continue;
      if (n[k] !== true) throw new FlowSyntaxError([...np, k], tok, `${k} must be true`);
      if (!spec.type) throw new FlowSyntaxError([...np, k], tok, `nat ${k} needs src or dst`);
      spec[k] = true;
      flags |= bit;
    }
    out.nat = spec;
  }
  let mark = 0, markMask = 0;
  const label = new Uint8Array(16);
  const labelMask = new Uint8Array(16);
  if (a.exec !== undefined) {
    if (!Array.isArray(a.exec)) throw new FlowSyntaxError([...path, 'exec'], tok, 'exec must be a list of set_field actions');
    const ex: SetFieldAction[] = [];
    const seen = new Set<string>();
    a.exec.forEach((e: unknown, j: number) => {
      const ep = [...path, 'exec', j];
      const et = `${tok}.exec[${j}]`;
      const r = e as RawAction;
      if (typeof r !== 'object' || r === null || r.type !== 'set_field') throw new FlowSyntaxError(ep, et, 'ct(exec()) takes set_field actions only');
      const sf = parseSetField(r, ctx, ep, et, true);
      if (seen.has(sf.name)) throw new FlowSyntaxError(ep, et, `${sf.name} is set twice`);
      seen.add(sf.name);
      if (sf.name === 'ct_mark') {
        mark = Number(sf.value);
        markMask = Number(sf.mask);
      } else {
        const v = new Uint8Array(16);
        const m = new Uint8Array(16);
        encodeField(sf.def, sf.value, sf.mask, v, m, 0, false);
        label.set(v);
        labelMask.set(m);
      }
      ex.push({ type: 'set_field', field: sf.name, value: sf.text });
    });
    if (ex.length && !out.commit) throw new FlowSyntaxError([...path, 'exec'], tok, 'setting ct_mark or ct_label requires commit');
    ex.sort((x, y) => (x.field === 'ct_mark' ? -1 : 1) - (y.field === 'ct_mark' ? -1 : 1));
    if (ex.length) out.exec = ex;
  }
  let alg = CtAlg.NONE as number;
  if (a.alg !== undefined) {
    if (a.alg !== 'ftp' && a.alg !== 'tftp') throw new FlowSyntaxError([...path, 'alg'], tok, 'alg must be ftp or tftp');
    alg = a.alg === 'ftp' ? CtAlg.FTP : CtAlg.TFTP;
    out.alg = a.alg;
  }
  tlv.ct({ flags, zone, zoneReg, zoneRegOfs, table, alg, mark, markMask, label, labelMask, natMin, natMax, natPortMin: pmin, natPortMax: pmax, natIpv6: natV6 });
  return out;
}

function portRef(v: unknown, ctx: ActionContext, path: Path, tok: string): number | 'in_port' {
  if (typeof v === 'string' && v.toLowerCase() === 'in_port') return 'in_port';
  if (typeof v === 'number' || (typeof v === 'string' && v !== '')) {
    if (ctx.ports) return ctx.ports(typeof v === 'string' && /^[0-9]+$/.test(v) ? Number(v) : v, path, tok);
    if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < PORT_IN_PORT) return v;
  }
  throw new FlowSyntaxError(path, tok, 'needs a port number or name');
}

/** Validates raw actions for a flow; returns the canonical list and ferryd's TLV bytes. */
export function normalizeActions(raw: readonly unknown[], ctx: ActionContext, base: Path = ['actions']): { actions: Action[]; tlv: Uint8Array } {
  const tlv = new TlvBuilder();
  const out: Action[] = [];
  raw.forEach((r0, i) => {
    const path = [...base, i];
    const tok = `actions[${i}]`;
    const a = r0 as RawAction;
    if (typeof a !== 'object' || a === null || typeof a.type !== 'string') throw new FlowSyntaxError(path, tok, 'must be an object with a "type"');
    if (!KNOWN.has(a.type)) throw new FlowSyntaxError([...path, 'type'], tok, `unknown action type "${a.type}"`);
    for (const k of Object.keys(a)) {
      if (k !== 'type' && !ALLOWED[a.type]!.includes(k)) throw new FlowSyntaxError([...path, k], tok, `is not allowed for a ${a.type} action`);
    }
    if (out.at(-1)?.type === 'goto_table') throw new FlowSyntaxError(path, tok, 'nothing may follow goto_table');
    switch (a.type) {
      case 'drop':
        if (raw.length !== 1) throw new FlowSyntaxError(path, tok, 'drop cannot be combined with other actions');
        return;
      case 'output': {
        if (a.port === undefined) throw new FlowSyntaxError([...path, 'port'], tok, 'is required for an output action');
        const p = portRef(a.port, ctx, [...path, 'port'], tok);
        tlv.output(p === 'in_port' ? PORT_IN_PORT : p);
        out.push({ type: 'output', port: p });
        return;
      }
      case 'goto_table': {
        const t = intOf(a.table, 254, [...path, 'table'], tok, 'goto_table table');
        if (t <= ctx.table) throw new FlowSyntaxError([...path, 'table'], tok, `goto_table:${t} must go to a table after this flow's table ${ctx.table}`);
        if (i !== raw.length - 1) throw new FlowSyntaxError(path, tok, 'goto_table must be the last action');
        tlv.gotoTable(t);
        out.push({ type: 'goto_table', table: t });
        return;
      }
      case 'resubmit': {
        if (a.port === undefined && a.table === undefined) throw new FlowSyntaxError(path, tok, 'resubmit needs a port or a table');
        const p = a.port === undefined ? 'in_port' : portRef(a.port, ctx, [...path, 'port'], tok);
        const t = a.table === undefined ? undefined : intOf(a.table, 254, [...path, 'table'], tok, 'resubmit table');
        tlv.resubmit(p === 'in_port' ? PORT_IN_PORT : p, t ?? TABLE_NONE);
        const o: Action = { type: 'resubmit' };
        if (p !== 'in_port') o.port = p;
        if (t !== undefined) o.table = t;
        out.push(o);
        return;
      }
      case 'set_field': {
        const sf = parseSetField(a, ctx, path, tok, false);
        const v = new Uint8Array(16);
        const m = new Uint8Array(16);
        encodeField(sf.def, sf.value, sf.mask, v, m, 0, false);
        tlv.setField(sf.def.setField ?? FieldId.IP_DSCP, v, m);
        out.push({ type: 'set_field', field: sf.name, value: sf.text });
        return;
      }
      case 'push_vlan': {
        const e = intOf(a.ethertype, 0xffff, [...path, 'ethertype'], tok, 'push_vlan ethertype');
        if (e !== 0x8100 && e !== 0x88a8) throw new FlowSyntaxError([...path, 'ethertype'], tok, 'push_vlan takes 0x8100 or 0x88a8');
        tlv.pushVlan(e);
        out.push({ type: 'push_vlan', ethertype: '0x' + e.toString(16) });
        return;
      }
      case 'controller': {
        const ml = a.max_len === undefined ? 65535 : intOf(a.max_len, 65535, [...path, 'max_len'], tok, 'controller max_len');
        let reason = 1;
        if (a.reason !== undefined) {
          const r = typeof a.reason === 'string' ? CONTROLLER_REASONS[a.reason] : undefined;
          if (r === undefined) throw new FlowSyntaxError([...path, 'reason'], tok, `reason must be one of ${Object.keys(CONTROLLER_REASONS).join(', ')}`);
          reason = r;
        }
        tlv.controller(ml, reason);
        const o: Action = { type: 'controller' };
        if (ml !== 65535) o.max_len = ml;
        if (reason !== 1) o.reason = CONTROLLER_REASON_NAME[reason];
        out.push(o);
        return;
      }
      case 'note': {
        const d = typeof a.data === 'string' ? parseHexBytes(a.data) : null;
        if (!d) throw new FlowSyntaxError([...path, 'data'], tok, 'note wants hex bytes, e.g. "01.02.ab"');
        tlv.note(d);
        out.push({ type: 'note', data: formatHexBytes(d) });
        return;
      }
      case 'ct':
        out.push(normCt(a, ctx, path, tok, tlv));
        return;
      default:
        tlv.bare(BARE_TYPES[a.type]!);
        out.push({ type: a.type } as Action);
    }
  });
  if (tlv.len > ACTIONS_MAX) throw new FlowSyntaxError(base, 'actions', `too long: ${tlv.len} bytes encoded, ferryd takes at most ${ACTIONS_MAX}`);
  return { actions: out, tlv: tlv.finish() };
}

export { allOnes };
