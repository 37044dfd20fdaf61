// Whole flows: an ovs-ofctl line or a JSON flow -> a compiled flow (key/mask, canonical actions,
// TLVs, id), and back to canonical JSON.
import { DEFAULT_PRIORITY, FlowFlag } from '../../gen/proto';
import { flowIdPartsPacked, parseCookie, formatCookie } from '../flow-id';
import { Action, normalizeActions } from './actions';
import { parseActionsText } from './actions-text';
import { JsonMatch, describeMatch } from './describe';
import { PortResolver } from './fields';
import { KEY_SIZE, MATCH_BASE, MatchItem, buildMatch, jsonMatchItems } from './match';
import { PackedKeyMask, packedKey, packedMask } from './packed';
import type { Action as ActionT } from './actions';
import { FlowSyntaxError } from './values';

const NO_FLAGS: string[] = [];
const NO_PORTS: PortResolver = () => { throw new Error('unreachable'); };
/** compiled action lists by port resolver (one per request: never stale) and text + context */
const actionCache = new WeakMap<PortResolver, Map<string, { actions: ActionT[]; tlv: Uint8Array }>>();
export const FLOW_FLAGS: Record<string, number> = { send_flow_rem: FlowFlag.SEND_FLOW_REM, reset_counts: FlowFlag.RESET_COUNTS };

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

/** head.split(/[\s,]+/), without the regular expression for ASCII text (every bulk line goes through here). */
export function splitTokens(head: string): string[] {
  const out: string[] = [];
  let start = 0;
  for (let i = 0; i < head.length; i++) {
    const c = head.charCodeAt(i);
    if (c > 0x7f) return head.split(/[\s,]+/); // Unicode spaces: the regular expression knows them
    // ',', ' ', and \t \n \v \f \r: what \s and ',' match in ASCII
    if (c === 0x2c || c === 0x20 || (c >= 0x09 && c <= 0x0d)) {
      if (i > start || out.length === 0) out.push(head.slice(start, i));
      start = i + 1;
    }
  }
  out.push(head.slice(start));
  return out;
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
  const flags: string[] = [];
  for (const tok of splitTokens(head)) {
    if (tok === '') continue;
    const eq = tok.indexOf('=');
    const name = eq < 0 ? tok : tok.slice(0, eq);
    const value = eq < 0 ? null : tok.slice(eq + 1);
    switch (name) {
      case 'table': case 'priority': case 'idle_timeout': case 'hard_timeout': {
        if (value === null || !/^[0-9]+$/.test(value)) throw new FlowSyntaxError([name], name, 'needs a decimal number');
        input[name] = Number(value);
        continue;
      }
      case 'cookie':
        if (value === null) throw new FlowSyntaxError([name], name, 'needs a value');
        input.cookie = value;
        continue;
      default:
        if (STATS_WORDS.has(name)) continue;
        if (value === null && FLOW_FLAGS[name] !== undefined) {
          flags.push(name);
          continue;
        }
        input.items.push({ name, value, base: MATCH_BASE });
    }
  }
  if (flags.length) input.flags = flags;
  return input;
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

/** Validates a flow input into a compiled flow (ports resolved through ports when given). */
export function compileFlow(input: FlowInput, ports?: PortResolver): CompiledFlow {
  const table = int(input.table, 0, 254, 'table');
  const priority = int(input.priority, DEFAULT_PRIORITY, 65535, 'priority');
  const idleTimeout = int(input.idle_timeout, 0, 65535, 'idle_timeout');
  const hardTimeout = int(input.hard_timeout, 0, 65535, 'hard_timeout');
  const { cookie } = cookieOf(input.cookie, false);
  let flagBits = 0;
  let flags: string[] = NO_FLAGS;
  if (input.flags !== undefined) {
    flags = [];
    if (!Array.isArray(input.flags)) throw new FlowSyntaxError(['flags'], 'flags', 'must be a list');
    for (const [i, f] of (input.flags as unknown[]).entries()) {
      const bit = typeof f === 'string' ? FLOW_FLAGS[f] : undefined;
      if (bit === undefined) throw new FlowSyntaxError(['flags', i], 'flags', `must be ${Object.keys(FLOW_FLAGS).join(' or ')}`);
      flagBits |= bit;
    }
    flags.push(...flagsOf(flagBits));
  }
  const { packed, ctx } = buildMatch(input.items, ports);
  let res: { actions: ActionT[]; tlv: Uint8Array };
  if (input.actionsText !== undefined) {
    // identical action text in the same context compiles identically: bulk loads reuse it
    let cache = actionCache.get(ports ?? NO_PORTS);
    if (!cache) actionCache.set(ports ?? NO_PORTS, cache = new Map());
    const ck = `${table}|${ctx.ethType}|${ctx.ipProto}|${ctx.ctNwProto}|${input.actionsText}`;
    let hit = cache.get(ck);
    if (!hit) {
      hit = normalizeActions(parseActionsText(input.actionsText), { table, match: ctx, ports });
      if (cache.size < 4096) cache.set(ck, hit);
    }
    res = hit;
  } else {
    if (input.actions === undefined) throw new FlowSyntaxError(['actions'], 'actions', 'is required');
    res = normalizeActions(input.actions, { table, match: ctx, ports });
  }
  const { actions, tlv } = res;
  const [id, idHi] = flowIdPartsPacked(table, priority, packed, KEY_SIZE);
  return new PackedFlow(id, idHi, table, priority, cookie, idleTimeout, hardTimeout, flags, flagBits, actions, tlv, packed);
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
