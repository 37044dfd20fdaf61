// ovs-ofctl action syntax -> JSON actions (not yet validated: actions.ts normalises both inputs).
import { FlowSyntaxError, nameTable } from './values';

export type RawAction = Record<string, unknown> & { type: string };

/** Splits s at top-level seps (not inside (), [] ). */
export function splitTop(s: string, sep = ','): string[] {
  const out: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '(' || c === '[') depth++;
    else if (c === ')' || c === ']') depth--;
    else if (c === sep && depth === 0) {
      out.push(s.slice(start, i));
      start = i + 1;
    }
  }
  out.push(s.slice(start));
  return out;
}

const LEGACY_SET = nameTable<string>({
  mod_dl_src: 'eth_src', mod_dl_dst: 'eth_dst', mod_nw_src: 'ip_src', mod_nw_dst: 'ip_dst',
  mod_tp_src: 'tp_src', mod_tp_dst: 'tp_dst', mod_vlan_vid: 'vlan_vid', mod_vlan_pcp: 'vlan_pcp',
  mod_nw_tos: 'nw_tos', mod_nw_ecn: 'ip_ecn', mod_nw_ttl: 'nw_ttl', set_tunnel: 'tun_id', set_tunnel64: 'tun_id',
});

const BARE = nameTable<string>({
  normal: 'normal', pop_vlan: 'pop_vlan', strip_vlan: 'pop_vlan', dec_ttl: 'dec_ttl', ct_clear: 'ct_clear',
  notrack: 'notrack', in_port: 'output', drop: 'drop', controller: 'controller', ct: 'ct',
});

const TOKEN = /^([A-Za-z_][A-Za-z0-9_]*)(?:\((.*)\)|:(.*))?$/s;

function num(s: string): number | string {
  return /^[0-9]+$/.test(s) ? Number(s) : s;
}

/** Parses "set_field" style "VALUE->FIELD". */
function setFieldOf(arg: string, path: (string | number)[], tok: string): RawAction {
  const i = arg.lastIndexOf('->');
  if (i < 0) throw new FlowSyntaxError(path, tok, 'set_field wants VALUE->FIELD');
  return { type: 'set_field', field: arg.slice(i + 2).trim(), value: arg.slice(0, i).trim() };
}

/** key=value pairs and bare words of an argument list like "max_len=10,reason=no_match". */
function kv(s: string): [string, string | null][] {
  if (s.trim() === '') return [];
  return splitTop(s).map((p) => {
    const t = p.trim();
    const eq = t.indexOf('=');
    return eq < 0 ? [t, null] : [t.slice(0, eq).trim(), t.slice(eq + 1).trim()];
  });
}

function parseCt(args: string, path: (string | number)[], tok: string): RawAction {
  const a: RawAction = { type: 'ct' };
  for (const part of splitTop(args)) {
    const t = part.trim();
    if (t === '') continue;
    const m = TOKEN.exec(t);
    const name = m?.[1]?.toLowerCase();
    if (t === 'commit' || t === 'force') a[t] = true;
    else if (name === 'exec' && m![2] !== undefined) a.exec = parseActionsText(m![2], [...path, 'exec'], `${tok}.exec`);
    else if (name === 'nat' && m![3] === undefined) {
      const nat: Record<string, unknown> = {};
      for (const [k, v] of kv(m![2] ?? '')) {
        if ((k === 'src' || k === 'dst') && nat.type === undefined) {
          nat.type = k;
          if (v !== null) nat.range = v;
        } else if ((k === 'random' || k === 'persistent' || k === 'hash') && v === null) nat[k] = true;
        else throw new FlowSyntaxError([...path, 'nat'], `${tok}.nat`, `unknown nat argument "${k}${v === null ? '' : '=' + v}"`);
      }
      a.nat = nat;
    } else {
      const eq = t.indexOf('=');
      const k = eq < 0 ? t : t.slice(0, eq);
      const v = eq < 0 ? '' : t.slice(eq + 1);
      if (k === 'zone') a.zone = num(v);
      else if (k === 'table') a.table = num(v);
      else if (k === 'alg') a.alg = v;
      else throw new FlowSyntaxError(path, tok, `unknown ct argument "${t}"`);
    }
  }
  return a;
}

function parseOne(t: string, path: (string | number)[], tok: string): RawAction {
  if (/^[0-9]+$/.test(t)) return { type: 'output', port: Number(t) };
  const m = TOKEN.exec(t);
  if (!m) throw new FlowSyntaxError(path, tok, `cannot parse action "${t}"`);
  const name = m[1]!.toLowerCase();
  const paren = m[2];
  const arg = m[3];
  const noArgs = paren === undefined && arg === undefined;
  const legacy = LEGACY_SET[name];
  if (legacy) {
    if (arg === undefined) throw new FlowSyntaxError(path, tok, `${name} wants ${name}:VALUE`);
    return { type: 'set_field', field: legacy, value: arg.trim() };
  }
  switch (name) {
    case 'output':
      if (arg === undefined) throw new FlowSyntaxError(path, tok, 'output wants output:PORT');
      return { type: 'output', port: num(arg.trim()) };
    case 'in_port':
      if (noArgs) return { type: 'output', port: 'in_port' };
      break;
    case 'goto_table':
      if (arg === undefined) throw new FlowSyntaxError(path, tok, 'goto_table wants goto_table:TABLE');
      return { type: 'goto_table', table: num(arg.trim()) };
    case 'resubmit': {
      if (arg !== undefined) return { type: 'resubmit', port: num(arg.trim()) };
      if (paren === undefined) throw new FlowSyntaxError(path, tok, 'resubmit wants resubmit:PORT or resubmit([PORT],[TABLE])');
      const [p, tb, ...rest] = splitTop(paren).map((x) => x.trim());
      if (rest.length) throw new FlowSyntaxError(path, tok, `resubmit takes at most PORT,TABLE, got "${paren}"`);
      const r: RawAction = { type: 'resubmit' };
      if (p) r.port = num(p);
      if (tb) r.table = num(tb);
      return r;
    }
    case 'set_field':
    case 'load':
      if (name === 'set_field' && arg !== undefined) return setFieldOf(arg, path, tok);
      throw new FlowSyntaxError(path, tok, 'set_field wants set_field:VALUE->FIELD');
    case 'push_vlan':
      if (arg === undefined) throw new FlowSyntaxError(path, tok, 'push_vlan wants push_vlan:ETHERTYPE');
      return { type: 'push_vlan', ethertype: arg.trim() };
    case 'controller': {
      const c: RawAction = { type: 'controller' };
      if (arg !== undefined) c.max_len = num(arg.trim());
      for (const [k, v] of kv(paren ?? '')) {
        if (k === 'max_len') c.max_len = num(v ?? '');
        else if (k === 'reason') c.reason = v ?? '';
        else throw new FlowSyntaxError(path, tok, `unknown controller argument "${k}"`);
      }
      return c;
    }
    case 'note':
      if (arg === undefined) throw new FlowSyntaxError(path, tok, 'note wants note:HEX[.HEX...]');
      return { type: 'note', data: arg.trim() };
    case 'ct':
      if (arg === undefined) return parseCt(paren ?? '', path, tok);
      break;
    default:
      if (noArgs && BARE[name]) return { type: BARE[name]! };
      if (noArgs) return { type: 'output', port: m[1]! }; // a port name (resolved later)
  }
  if (noArgs && BARE[name]) return { type: BARE[name]! };
  throw new FlowSyntaxError(path, tok, `unknown action "${t}"`);
}

/** Parses an ovs-ofctl action list ("drop", "output:1,ct(commit)", ...). */
export function parseActionsText(s: string, base: (string | number)[] = ['actions'], tokBase = 'actions'): RawAction[] {
  const t = s.trim();
  if (t === '') throw new FlowSyntaxError(base, tokBase, 'is empty (use "drop")');
  const parts = splitTop(t);
  return parts.map((p, i) => {
    const x = p.trim();
    if (x === '') throw new FlowSyntaxError([...base, i], `${tokBase}[${i}]`, 'empty action');
    return parseOne(x, [...base, i], `${tokBase}[${i}]`);
  });
}
