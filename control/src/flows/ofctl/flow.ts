// Whole flows: an ovs-ofctl line or a JSON flow -> a compiled flow (key/mask, canonical actions,
// TLVs, id), and back to canonical JSON.
import { DEFAULT_PRIORITY, FlowFlag } from '../../gen/proto';
import { flowIdWordsPacked, idTop52, join64, parseCookie, formatCookie, split64 } from '../flow-id';
import { Action, normalizeActions } from './actions';
import { parseActionsText } from './actions-text';
import { JsonMatch, describeMatch } from './describe';
import { PortResolver } from './fields';
import { KEY_SIZE, MATCH_BASE, MatchContext, MatchItem, buildMatch, jsonMatchItems } from './match';
import { NO_PACKED, PackedKeyMask, packedKey, packedMask } from './packed';
import type { Action as ActionT } from './actions';
import { FlowSyntaxError, nameTable } from './values';

const NO_FLAGS: string[] = [];
const NO_PORTS: PortResolver = () => { throw new Error('unreachable'); };
/** A flow's actions and their TLVs (shared by every flow compiled from the same action text). */
export interface ActionSet {
  readonly actions: ActionT[];
  readonly tlv: Uint8Array;
}

/** One action set per actions array: flows whose actions are one array share one set. */
const actionSets = new WeakMap<readonly ActionT[], ActionSet>();
export function actionSetOf(actions: ActionT[], tlv: Uint8Array): ActionSet {
  let a = actionSets.get(actions);
  if (a === undefined || a.tlv !== tlv) actionSets.set(actions, a = { actions, tlv });
  return a;
}
/**
 * Compiled action lists by port resolver (one per request: never stale), then action text, then
 * context (contextKey). Two levels, not one key string: a bulk load would build and hash a string
 * a flow.
 */
interface ActionCache {
  entries: number;
  byText: Map<string, Map<number, ActionSet>>;
}
const actionCache = new WeakMap<PortResolver, ActionCache>();
const ACTION_CACHE_ENTRIES = 4096;

/** What the actions' checks see of a flow, as one number: table, and eth_type, ip_proto, ct_nw_proto or that they are not matched. */
function contextKey(table: number, ctx: MatchContext): number {
  const ethType = ctx.ethType ?? 0x10000;
  const ipProto = ctx.ipProto ?? 0x100;
  const ctNwProto = ctx.ctNwProto ?? 0x100;
  return ((table * 0x20000 + ethType) * 0x200 + ipProto) * 0x200 + ctNwProto; // 8 + 17 + 9 + 9 bits: exact in a double
}
export const FLOW_FLAGS = nameTable<number>({ send_flow_rem: FlowFlag.SEND_FLOW_REM, reset_counts: FlowFlag.RESET_COUNTS });
/** FLOW_FLAGS by name, for every bulk line's bare words (a Map: no keyed lookup of a fresh string) */
const FLAG_BITS: ReadonlyMap<string, number> = new Map(Object.entries(FLOW_FLAGS));

const flagLists = new Map<number, string[]>();

/** The flag names of flag bits, in FLOW_FLAGS order (one shared array per value: do not modify). */
export function flagsOf(bits: number): string[] {
  let l = flagLists.get(bits);
  if (l === undefined) {
    l = bits === 0 ? NO_FLAGS : Object.entries(FLOW_FLAGS).filter(([, b]) => bits & b).map(([k]) => k);
    flagLists.set(bits, l);
  }
  return l;
}

/** A flow as given (text line or JSON), before validation against fields and ports. */
export interface FlowInput {
  table?: unknown;
  priority?: unknown;
  cookie?: unknown;
  idle_timeout?: unknown;
  hard_timeout?: unknown;
  flags?: unknown;
  items: MatchItem[];
  /** raw actions; undefined when the input had none */
  actions?: unknown[];
  /** ovs-ofctl action text, parsed by compileFlow (which can then reuse the result for identical lists) */
  actionsText?: string;
}

/** A validated flow: what ferryd gets and what the API shows. */
export interface CompiledFlow {
  id: bigint;
  /** the id's top 52 bits as a number (cheap ordering) */
  idHi: number;
  table: number;
  priority: number;
  cookie: bigint;
  idleTimeout: number;
  hardTimeout: number;
  flags: string[];
  flagBits: number;
  readonly key: Uint8Array;
  readonly mask: Uint8Array;
  actions: Action[];
  tlv: Uint8Array;
  /** key and mask, packed: what the id, the journal text and the FLOW_ADD are made from */
  readonly at: PackedKeyMask;
}

/**
 * A compiled flow (compileFlow, or read back from the desired state): its key and mask stay packed
 * (packed.ts), and key and mask are arrays made when asked for (listing, printing), not with every
 * flow of a bulk load. The fields a stored flow adds (slot, installedNs) are there from the start:
 * one object shape.
 */
export class PackedFlow implements CompiledFlow {
  slot: number | null = null;
  installedNs = 0n;
  constructor(
    public id: bigint, public idHi: number, public table: number, public priority: number, public cookie: bigint,
    public idleTimeout: number, public hardTimeout: number, public flags: string[], public flagBits: number,
    public actions: Action[], public tlv: Uint8Array, readonly at: PackedKeyMask,
  ) {}
  get key(): Uint8Array {
    return packedKey(this.at);
  }
  get mask(): Uint8Array {
    return packedMask(this.at);
  }
}

/** Canonical JSON of a flow (what GET shows and POST takes back). */
export interface FlowJson {
  table: number;
  priority: number;
  cookie: string;
  idle_timeout: number;
  hard_timeout: number;
  flags: string[];
  match: JsonMatch;
  actions: Action[];
}

/** [start of the separator before "actions=", index after "="], or null. */
function findActions(line: string): [number, number] | null {
  let i = line.indexOf('actions=');
  while (i >= 0) {
    const c = i === 0 ? ' ' : line[i - 1];
    if (c === ' ' || c === ',' || c === '\t') return [Math.max(0, i - 1), i + 8];
    i = line.indexOf('actions=', i + 1);
  }
  const m = /(?:^|[\s,])action=/.exec(line);
  return m ? [m.index, m.index + m[0].length] : null;
}

const STATS_WORDS = new Set(['duration', 'n_packets', 'n_bytes', 'idle_age', 'hard_age']);

/** ',', ' ', and \t \n \v \f \r: what /[\s,]/ matches in ASCII. */
const isSeparator = (c: number): boolean => c === 0x2c || c === 0x20 || (c >= 0x09 && c <= 0x0d);

/** head.split(/[\s,]+/), without the regular expression for ASCII text. */
export function splitTokens(head: string): string[] {
  const out: string[] = [];
  let start = 0;
  for (let i = 0; i < head.length; i++) {
    const c = head.charCodeAt(i);
    if (c > 0x7f) return head.split(/[\s,]+/); // Unicode spaces: the regular expression knows them
    if (isSeparator(c)) {
      if (i > start || out.length === 0) out.push(head.slice(start, i));
      start = i + 1;
    }
  }
  out.push(head.slice(start));
  return out;
}

/** true if s has a character outside ASCII from start to end. */
function nonAscii(s: string, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (s.charCodeAt(i) > 0x7f) return true;
  return false;
}

/** The value of a decimal-only word (table=, priority=, ...); the range is compileFlow's to check. */
function decimalOf(name: string, value: string | null): number {
  let ok = value !== null && value.length > 0;
  for (let i = 0; ok && i < value!.length; i++) {
    const c = value!.charCodeAt(i);
    ok = c >= 0x30 && c <= 0x39;
  }
  if (!ok) throw new FlowSyntaxError([name], name, 'needs a decimal number');
  return Number(value);
}

/**
 * Splits an ovs-ofctl flow line into its parts. Stats words (duration, n_packets, ...) that
 * dump-flows prints are accepted and ignored, so dump-flows output parses back.
 */
export function parseFlowText(line: string, opts: { actions: 'required' | 'forbidden' | 'optional' } = { actions: 'required' }): FlowInput {
  const am = findActions(line);
  let head = line;
  const input: FlowInput = { items: [] };
  if (am) {
    const at = am[1];
    head = line.slice(0, am[0]);
    if (opts.actions === 'forbidden') throw new FlowSyntaxError(['actions'], 'actions', 'are not allowed here');
    input.actionsText = line.slice(at);
  } else if (opts.actions === 'required') {
    throw new FlowSyntaxError(['actions'], 'actions', 'is required (e.g. "actions=drop")');
  }
  if (nonAscii(head, 0, head.length)) {
    // Unicode spaces separate too: the regular expression knows them
    for (const tok of splitTokens(head)) {
      if (tok === '') continue;
      const eq = tok.indexOf('=');
      addToken(input, eq < 0 ? tok : tok.slice(0, eq), eq < 0 ? null : tok.slice(eq + 1));
    }
    return input;
  }
  // ASCII (every bulk line): name and value are cut from the line, no token strings in between
  for (let i = 0; i < head.length;) {
    if (isSeparator(head.charCodeAt(i))) {
      i++;
      continue;
    }
    const start = i;
    let eq = -1;
    for (; i < head.length; i++) {
      const c = head.charCodeAt(i);
      if (isSeparator(c)) break;
      if (c === 0x3d && eq < 0) eq = i;
    }
    addToken(input, head.slice(start, eq < 0 ? i : eq), eq < 0 ? null : head.slice(eq + 1, i));
  }
  return input;
}

/** One word of a flow line's head (before actions=): name, and the text after its first "=" (null: none). */
function addToken(input: FlowInput, name: string, value: string | null): void {
  switch (name) {
    case 'table': input.table = decimalOf(name, value); return;
    case 'priority': input.priority = decimalOf(name, value); return;
    case 'idle_timeout': input.idle_timeout = decimalOf(name, value); return;
    case 'hard_timeout': input.hard_timeout = decimalOf(name, value); return;
    case 'cookie':
      if (value === null) throw new FlowSyntaxError([name], name, 'needs a value');
      input.cookie = value;
      return;
    default:
      if (STATS_WORDS.has(name)) return;
      if (value === null && FLAG_BITS.has(name)) {
        ((input.flags ??= []) as string[]).push(name);
        return;
      }
      input.items.push({ name, value, base: MATCH_BASE });
  }
}

/** A JSON flow (already shape-checked by its schema) as a FlowInput. */
export function jsonFlowInput(body: Record<string, unknown>): FlowInput {
  const m = body.match;
  if (m !== undefined && (typeof m !== 'object' || m === null || Array.isArray(m))) throw new FlowSyntaxError(['match'], 'match', 'must be an object');
  return {
    table: body.table, priority: body.priority, cookie: body.cookie, idle_timeout: body.idle_timeout,
    hard_timeout: body.hard_timeout, flags: body.flags,
    items: jsonMatchItems((m ?? {}) as Record<string, unknown>, ['match']),
    actions: body.actions as unknown[] | undefined,
  };
}

function int(v: unknown, dflt: number, max: number, name: string): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) throw new FlowSyntaxError([name], name, `must be an integer 0..${max}`);
  return v;
}

/** Parses a cookie "V" or, when allowed, "V/M". */
export function cookieOf(v: unknown, allowMask: boolean): { cookie: bigint; mask: bigint } {
  if (v === undefined) return { cookie: 0n, mask: 0n };
  if (typeof v !== 'string' && typeof v !== 'number') throw new FlowSyntaxError(['cookie'], 'cookie', 'must be a string');
  const [a, b] = String(v).split('/');
  const c = parseCookie(a!);
  const m = b === undefined ? 0xffffffffffffffffn : parseCookie(b);
  if (c === null || m === null || (b !== undefined && !allowMask)) {
    throw new FlowSyntaxError(['cookie'], 'cookie', `must be a 64-bit value in hex ("0x...") or decimal${allowMask ? ', optionally /MASK' : ''}`);
  }
  return { cookie: c, mask: m };
}

/**
 * A flow compiled but not made an object: what a bulk load writes into its row (FlowRows.pushParts).
 * One is reused line after line, so compiling a line makes no flow, id or cookie of its own.
 */
export class FlowParts {
  /** the id's low and high 32 bits */
  readonly id = new Uint32Array(2);
  table = 0;
  priority = 0;
  idleTimeout = 0;
  hardTimeout = 0;
  cookieLo = 0;
  cookieHi = 0;
  flagBits = 0;
  packed: PackedKeyMask = NO_PACKED;
  acts: ActionSet = NO_ACTION_SET;
}
/** No actions: what a row or record that holds no flow points at (keeps no flow's actions alive). */
export const NO_ACTION_SET: ActionSet = { actions: [], tlv: new Uint8Array(0) };

/** Validates a flow input into out (ports resolved through ports when given); throws FlowSyntaxError. */
export function compileFlowParts(input: FlowInput, ports: PortResolver | undefined, out: FlowParts): void {
  const table = int(input.table, 0, 254, 'table');
  const priority = int(input.priority, DEFAULT_PRIORITY, 65535, 'priority');
  out.idleTimeout = int(input.idle_timeout, 0, 65535, 'idle_timeout');
  out.hardTimeout = int(input.hard_timeout, 0, 65535, 'hard_timeout');
  if (input.cookie === undefined) {
    out.cookieLo = 0;
    out.cookieHi = 0;
  } else {
    split64(cookieOf(input.cookie, false).cookie, cookieHalves);
    out.cookieLo = cookieHalves[0]!;
    out.cookieHi = cookieHalves[1]!;
  }
  let flagBits = 0;
  if (input.flags !== undefined) {
    if (!Array.isArray(input.flags)) throw new FlowSyntaxError(['flags'], 'flags', 'must be a list');
    for (const [i, f] of (input.flags as unknown[]).entries()) {
      const bit = typeof f === 'string' ? FLAG_BITS.get(f) : undefined;
      if (bit === undefined) throw new FlowSyntaxError(['flags', i], 'flags', `must be ${Object.keys(FLOW_FLAGS).join(' or ')}`);
      flagBits |= bit;
    }
  }
  const { packed, ctx } = buildMatch(input.items, ports);
  if (input.actionsText !== undefined) {
    // identical action text in the same context compiles identically: bulk loads reuse it
    let cache = actionCache.get(ports ?? NO_PORTS);
    if (!cache) actionCache.set(ports ?? NO_PORTS, cache = { entries: 0, byText: new Map() });
    const ck = contextKey(table, ctx);
    let byContext = cache.byText.get(input.actionsText);
    let hit = byContext?.get(ck);
    if (!hit) {
      const { actions, tlv } = normalizeActions(parseActionsText(input.actionsText), { table, match: ctx, ports });
      hit = actionSetOf(actions, tlv);
      if (cache.entries < ACTION_CACHE_ENTRIES) {
        if (!byContext) cache.byText.set(input.actionsText, byContext = new Map());
        byContext.set(ck, hit);
        cache.entries++;
      }
    }
    out.acts = hit;
  } else {
    if (input.actions === undefined) throw new FlowSyntaxError(['actions'], 'actions', 'is required');
    const { actions, tlv } = normalizeActions(input.actions, { table, match: ctx, ports });
    out.acts = actionSetOf(actions, tlv);
  }
  flowIdWordsPacked(table, priority, packed, KEY_SIZE, out.id);
  out.table = table;
  out.priority = priority;
  out.flagBits = flagBits;
  out.packed = packed;
}

const scratchParts = new FlowParts();
const cookieHalves = new Uint32Array(2);

/** Validates a flow input into a compiled flow (ports resolved through ports when given). */
export function compileFlow(input: FlowInput, ports?: PortResolver): CompiledFlow {
  const p = scratchParts;
  compileFlowParts(input, ports, p);
  const lo = p.id[0]!, hi = p.id[1]!;
  // a flow's flags array is its own (the API hands it out)
  const flags = p.flagBits === 0 ? NO_FLAGS : [...flagsOf(p.flagBits)];
  const f = new PackedFlow(join64(lo, hi), idTop52(lo, hi), p.table, p.priority, join64(p.cookieLo, p.cookieHi), p.idleTimeout,
    p.hardTimeout, flags, p.flagBits,
    p.acts.actions, p.acts.tlv, p.packed);
  p.packed = NO_PACKED; // the scratch keeps no flow's slab or actions alive
  p.acts = NO_ACTION_SET;
  return f;
}

export function flowJson(f: CompiledFlow): FlowJson {
  return {
    table: f.table,
    priority: f.priority,
    cookie: formatCookie(f.cookie),
    idle_timeout: f.idleTimeout,
    hard_timeout: f.hardTimeout,
    flags: [...f.flags],
    match: describeMatch(f.key, f.mask).json,
    actions: f.actions,
  };
}

/**
 * Calls fn(line number, text) for each flow line of a bulk body (1-based numbers; comments and
 * blank lines skipped). No array of lines: a bulk load of 10^5 flows keeps none of them.
 */
export function eachFlowLine(text: string, fn: (lineNo: number, line: string) => void): void {
  let pos = 0;
  for (let n = 1; pos <= text.length; n++) {
    let end = text.indexOf('\n', pos);
    if (end < 0) end = text.length;
    let l = text.slice(pos, end);
    pos = end + 1;
    const hash = l.indexOf('#');
    if (hash >= 0) l = l.slice(0, hash);
    l = l.trim();
    if (l !== '') fn(n, l);
  }
}
