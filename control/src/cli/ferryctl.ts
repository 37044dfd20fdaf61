// ferryctl: ovs-ofctl's flow commands, conntrack's table commands and the tunnel commands against
// ferry-control's REST API.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import { loadToken } from '../auth';
import { CtEntryView, CtExpectationView, conntrackLine, expectationLine } from '../conntrack/format';
import { NeighbourView, TunnelView, neighbourLines, tunnelLines } from '../tunnels/format';

const USAGE = `usage: ferryctl [--api URL] [--token-file FILE] [--cacert FILE] COMMAND [ARGS]
  add-flow FLOW              add or replace one flow (ovs-ofctl syntax)
  add-flows FILE             add flows from FILE (- for stdin), one per line, as one atomic bundle
  del-flows [MATCH] [--strict]
                             delete flows (all when no MATCH); --strict: exactly this match and priority
  dump-flows [MATCH] [--table T]
                             print flows as ovs-ofctl dump-flows does
  replace-flows FILE         make the flow tables hold exactly the flows in FILE (- for stdin)
  dump-conntrack [FILTER]    print connections as conntrack -L does (--json: the API's NDJSON)
  flush-conntrack [FILTER]   delete the connections selected (all without a FILTER), as conntrack -D / -F
  dump-conntrack-exp [zone=N]
                             print the ALG (ftp, tftp) expectations as ovs-appctl dpctl/dump-conntrack-exp
                             does, then timeout= and alg=; also --zone N [-w]; --json: the API's NDJSON
  conntrack-stats            connection counts by protocol, TCP state and zone, and the tracker's counters
  show-tunnels               the STT tunnels, their ports and counters
  add-tunnel NAME KEY=VALUE...
                             add an STT tunnel, e.g. add-tunnel stt0 local_ip=192.0.2.1/24 remote_ip=flow key=flow
                             underlay_port=0 (also port, dst_port, underlay_mtu, gateway, tos, ttl)
  del-tunnel NAME            delete a tunnel
  show-neighbours            the underlay's neighbour (ARP) table, as ip neigh prints it
options:
  --api URL                  ferry-control's address (default http://127.0.0.1:8080, or $FERRY_API);
                             https://... when it was started with --tls-cert
  --token-file FILE          send "Authorization: Bearer TOKEN", TOKEN being FILE's content (chmod 600 FILE);
                             without it, $FERRY_TOKEN when set
  --cacert FILE              trust the PEM certificate(s) in FILE for https (a self-signed server's own
                             certificate, or its CA); default $FERRY_CACERT, else the system's CAs
conntrack FILTER (conntrack's short forms in brackets):
  --zone N [-w]  --proto tcp|udp|icmp|icmpv6|sctp|N [-p]  --src ADDR[/LEN] [-s]  --dst ADDR[/LEN] [-d]
  --sport N  --dport N  --state ESTABLISHED|TIME_WAIT|...  --mark V[/M] [-m]  --label V[/M] [-l]
  --family ipv4|ipv6 [-f]  --either-dir (src/dst/ports match the reply tuple too; for a NATed connection
  that is the translated one: flush-conntrack --either-dir -d ADDR finds connections SNATed to ADDR)`;

export class CliError extends Error {}

interface Problem { detail?: string; title?: string; status?: number }

/** Where ferry-control is and how to talk to it. */
interface Api {
  url: string;
  token?: string;
  /** https.Agent with --cacert's CA for https URLs. Neither keeps connections alive: the process ends when done. */
  agent: http.Agent;
}

function apiOf(url: string, token: string | undefined, cacert: string | undefined): Api {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new CliError(`--api wants a URL such as http://127.0.0.1:8080, got "${url}"`);
  }
  if (u.protocol === 'http:') return { url, token, agent: new http.Agent() };
  if (u.protocol !== 'https:') throw new CliError(`--api wants an http:// or https:// URL, got "${url}"`);
  let ca: Buffer | undefined;
  if (cacert !== undefined) {
    try {
      ca = fs.readFileSync(cacert);
    } catch (e) {
      throw new CliError(`--cacert ${cacert}: ${(e as Error).message}`);
    }
  }
  return { url, token, agent: new https.Agent(ca ? { ca } : {}) };
}

// Responses that may not have a body (the Response constructor refuses one).
const NO_BODY = new Set([204, 205, 304]);

/**
 * One HTTP exchange as a fetch Response. node:http rather than fetch: fetch (undici) cannot be
 * given a CA to trust without the undici package, and a self-signed server certificate needs one.
 */
function exchange(api: Api, method: string, path: string, headers: Record<string, string>, payload?: string): Promise<Response> {
  const url = new URL(api.url.replace(/\/$/, '') + path);
  const lib = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = lib.request(url, { method, headers, agent: api.agent }, (res) => {
      const h = new Headers();
      for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) h.append(res.rawHeaders[i]!, res.rawHeaders[i + 1]!);
      const status = res.statusCode ?? 502;
      let body: ReadableStream<Uint8Array> | null = null;
      if (NO_BODY.has(status)) res.resume();
      else body = Readable.toWeb(res) as ReadableStream<Uint8Array>;
      resolve(new Response(body, { status, statusText: res.statusMessage ?? '', headers: h }));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** Why a connection failed, with a hint when it is the server's certificate. */
function reachError(api: Api, e: Error & { code?: string }): CliError {
  const certificate = /CERT|SELF_SIGNED|VERIFY/.test(e.code ?? '');
  return new CliError(`cannot reach ferry-control at ${api.url}: ${e.message}` +
    (certificate ? ' (to trust its certificate give --cacert FILE or set $FERRY_CACERT)' : ''));
}

async function call(api: Api, method: string, path: string, body?: { text?: string; json?: unknown }): Promise<Response> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (api.token !== undefined) headers.authorization = `Bearer ${api.token}`;
  let payload: string | undefined;
  if (body?.text !== undefined) {
    headers['content-type'] = 'text/plain; charset=utf-8';
    payload = body.text;
  } else if (body?.json !== undefined) {
    headers['content-type'] = 'application/json';
    payload = JSON.stringify(body.json);
  }
  if (payload !== undefined) headers['content-length'] = String(Buffer.byteLength(payload));
  let res: Response;
  try {
    res = await exchange(api, method, path, headers, payload);
  } catch (e) {
    throw reachError(api, e as Error);
  }
  if (res.status === 401) {
    await res.body?.cancel();
    throw new CliError(api.token === undefined
      ? 'ferry-control refused the token (none was given): set FERRY_TOKEN or --token-file FILE'
      : 'ferry-control refused the token (not the one it was started with): set FERRY_TOKEN or --token-file FILE');
  }
  if (!res.ok) {
    let p: Problem = {};
    try { p = (await res.json()) as Problem; } catch { /* not a problem body */ }
    throw new CliError(p.detail ?? `${method} ${path}: HTTP ${res.status} ${p.title ?? res.statusText}`);
  }
  return res;
}

function readInput(file: string): string {
  try {
    return fs.readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (e) {
    throw new CliError(`${file}: ${(e as Error).message}`);
  }
}

/** Groups flow lines by their table=N (0 when absent), keeping comments out. */
function linesByTable(text: string): Map<number, string[]> {
  const out = new Map<number, string[]>();
  for (const raw of text.split('\n')) {
    const l = raw.replace(/#.*/, '').trim();
    if (!l) continue;
    const m = /(?:^|[\s,])table=(\d+)/.exec(l.split(/(?:^|[\s,])actions?=/)[0]!);
    const t = m ? Number(m[1]) : 0;
    if (!out.has(t)) out.set(t, []);
    out.get(t)!.push(l);
  }
  return out;
}

async function tablesInUse(api: Api): Promise<Set<number>> {
  const tables = new Set<number>();
  let cursor: string | null = null;
  do {
    const q: string = `/v1/flows?limit=10000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const page = (await (await call(api, 'GET', q)).json()) as { items: { table: number }[]; next_cursor: string | null };
    for (const f of page.items) tables.add(f.table);
    cursor = page.next_cursor;
  } while (cursor);
  return tables;
}

type CtFlags = Partial<Record<'zone' | 'proto' | 'src' | 'dst' | 'sport' | 'dport' | 'orig-port-src' | 'orig-port-dst' | 'state' | 'mark' | 'label' | 'family', string>> & { 'either-dir'?: boolean };

/** The conntrack filter options as the API's query parameters. */
function ctQuery(v: CtFlags): URLSearchParams {
  const q = new URLSearchParams();
  const put = (k: string, x: string | undefined): void => { if (x !== undefined) q.set(k, x); };
  put('zone', v.zone);
  put('proto', v.proto);
  put('src', v.src);
  put('dst', v.dst);
  put('sport', v.sport ?? v['orig-port-src']);
  put('dport', v.dport ?? v['orig-port-dst']);
  put('state', v.state);
  put('mark', v.mark);
  put('label', v.label);
  put('family', v.family);
  if (v['either-dir']) q.set('either_dir', 'true');
  return q;
}

/** An API problem about a query parameter, told with the option's name ("?either_dir" -> "--either-dir"). */
const optionNames = (msg: string): string => msg.replace(/\?([a-z_]+)/g, (_, p: string) => `--${p.replace(/_/g, '-')}`);

async function ctCall(api: Api, method: string, path: string): Promise<Response> {
  try {
    return await call(api, method, path);
  } catch (e) {
    throw e instanceof CliError ? new CliError(optionNames(e.message)) : e;
  }
}

/**
 * dump-conntrack, dump-conntrack-exp: reads the NDJSON stream of path line by line and hands out each
 * formatted line as it comes.
 */
async function dumpNdjson<T>(api: Api, path: string, q: URLSearchParams, format: ((v: T) => string) | null, out: (s: string) => void): Promise<void> {
  const res = await ctCall(api, 'GET', `${path}${q.size ? `?${q}` : ''}`);
  if (!res.body) return;
  const decoder = new TextDecoder();
  let pending = '';
  const line = (l: string): void => {
    if (!l) return;
    const v = JSON.parse(l) as T & { error?: Problem };
    if (v.error) throw new CliError(`the dump stopped: ${v.error.detail ?? v.error.title ?? 'error'}`);
    out(format ? format(v) + '\n' : l + '\n');
  };
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    pending += decoder.decode(chunk, { stream: true });
    const parts = pending.split('\n');
    pending = parts.pop()!;
    for (const l of parts) line(l);
  }
  line(pending + decoder.decode());
}

interface CtStats {
  total: string; max_conns: string; by_proto: Record<string, string>; by_tcp_state: Record<string, string>;
  zones: { zone: number; count: string }[]; counters: Record<string, string>;
}

function formatCtStats(s: CtStats): string {
  const kv = (o: Record<string, string>, all: boolean): string =>
    Object.entries(o).filter(([, v]) => all || v !== '0').map(([k, v]) => `${k}=${v}`).join(' ') || '-';
  return [
    `connections=${s.total} max=${s.max_conns}`,
    `by protocol: ${kv(s.by_proto, true)}`,
    `by tcp state: ${kv(s.by_tcp_state, false)}`,
    `by zone: ${s.zones.map((z) => `${z.zone}=${z.count}`).join(' ') || '-'}`,
    `counters: ${kv(s.counters, true)}`,
  ].join('\n') + '\n';
}

const TUNNEL_NUMBERS = new Set(['port', 'dst_port', 'underlay_port', 'underlay_mtu', 'tos', 'ttl']);

/** add-tunnel's KEY=VALUE settings as a POST /v1/tunnels body (numbers where the API wants them). */
export function tunnelBody(name: string, settings: readonly string[]): Record<string, unknown> {
  const body: Record<string, unknown> = { name };
  for (const kv of settings) {
    const i = kv.indexOf('=');
    if (i <= 0) throw new CliError(`add-tunnel: "${kv}" is not KEY=VALUE`);
    const k = kv.slice(0, i);
    const v = kv.slice(i + 1);
    if (Object.hasOwn(body, k)) throw new CliError(`add-tunnel: ${k} is given twice`);
    body[k] = TUNNEL_NUMBERS.has(k) && /^\d{1,10}$/.test(v) ? Number(v) : v;
  }
  return body;
}

/**
 * Runs one ferryctl invocation; returns what to print on stdout. With out, dump-conntrack hands its
 * lines there as they arrive (a large table is never held whole) and returns ''.
 */
export async function run(argv: string[], env: NodeJS.ProcessEnv = process.env, out?: (s: string) => void): Promise<string> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        api: { type: 'string' },
        'token-file': { type: 'string' },
        cacert: { type: 'string' },
        strict: { type: 'boolean', default: false },
        table: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        json: { type: 'boolean', default: false },
        zone: { type: 'string', short: 'w' },
        proto: { type: 'string', short: 'p' },
        src: { type: 'string', short: 's' },
        dst: { type: 'string', short: 'd' },
        sport: { type: 'string' },
        dport: { type: 'string' },
        'orig-port-src': { type: 'string' },
        'orig-port-dst': { type: 'string' },
        state: { type: 'string' },
        mark: { type: 'string', short: 'm' },
        label: { type: 'string', short: 'l' },
        family: { type: 'string', short: 'f' },
        'either-dir': { type: 'boolean', default: false },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    throw new CliError(`${(e as Error).message}\n${USAGE}`);
  }
  const { values, positionals } = parsed;
  if (values.help) return USAGE + '\n';
  let token: string | undefined;
  try {
    token = loadToken(values['token-file'], env);
  } catch (e) {
    throw new CliError((e as Error).message);
  }
  const api = apiOf(values.api ?? env.FERRY_API ?? 'http://127.0.0.1:8080', token, values.cacert ?? (env.FERRY_CACERT || undefined));
  const [cmd, ...args] = positionals;
  const need = (n: number, what: string): void => {
    if (args.length !== n) throw new CliError(`${cmd}: wants ${what}\n${USAGE}`);
  };
  switch (cmd) {
    case 'add-flow':
      need(1, 'one FLOW');
      await call(api, 'POST', '/v1/flows', { text: args[0]! });
      return '';
    case 'add-flows':
      need(1, 'a FILE (or -)');
      await call(api, 'POST', '/v1/flows', { text: readInput(args[0]!) });
      return '';
    case 'del-flows': {
      if (args.length > 1) throw new CliError(`del-flows: wants at most one MATCH\n${USAGE}`);
      if (args.length === 0 && !values.strict) {
        await call(api, 'DELETE', '/v1/flows');
        return '';
      }
      await call(api, 'POST', '/v1/flows/delete', { json: { match: args[0] ?? '', strict: values.strict } });
      return '';
    }
    case 'dump-flows': {
      if (args.length > 1) throw new CliError(`dump-flows: wants at most one MATCH\n${USAGE}`);
      const q = new URLSearchParams({ format: 'ofctl' });
      if (args[0]) q.set('match', args[0]);
      if (values.table !== undefined) q.set('table', values.table);
      return (await call(api, 'GET', `/v1/flows?${q}`)).text();
    }
    case 'replace-flows': {
      need(1, 'a FILE (or -)');
      const wanted = linesByTable(readInput(args[0]!));
      const tables = new Set([...wanted.keys(), ...(await tablesInUse(api))]);
      for (const t of [...tables].sort((a, b) => a - b)) {
        const lines = wanted.get(t) ?? [];
        await call(api, 'PUT', `/v1/tables/${t}/flows`, { text: lines.join('\n') + '\n# end\n' });
      }
      return '';
    }
    case 'dump-conntrack': {
      need(0, 'no arguments, only filter options');
      let text = '';
      await dumpNdjson<CtEntryView>(api, '/v1/conntrack', ctQuery(values), values.json ? null : conntrackLine, out ?? ((l) => { text += l; }));
      return text;
    }
    case 'dump-conntrack-exp': {
      // OVS's form is a positional zone=N; --zone / -w as dump-conntrack's
      const q = new URLSearchParams();
      let zone = values.zone;
      for (const a of args) {
        const m = /^zone=(.*)$/.exec(a);
        if (!m || zone !== undefined) throw new CliError(`dump-conntrack-exp: wants at most one zone=N (or --zone N)\n${USAGE}`);
        zone = m[1]!;
      }
      const others = (['proto', 'src', 'dst', 'sport', 'dport', 'orig-port-src', 'orig-port-dst', 'state', 'mark', 'label', 'family'] as const)
        .filter((k) => values[k] !== undefined);
      if (others.length || values['either-dir']) throw new CliError(`dump-conntrack-exp: selects by zone only, not by --${others[0] ?? 'either-dir'}`);
      if (zone !== undefined) q.set('zone', zone);
      let text = '';
      await dumpNdjson<CtExpectationView>(api, '/v1/conntrack/expectations', q, values.json ? null : expectationLine, out ?? ((l) => { text += l; }));
      return text;
    }
    case 'flush-conntrack': {
      need(0, 'no arguments, only filter options');
      const q = ctQuery(values);
      const r = (await (await ctCall(api, 'DELETE', `/v1/conntrack${q.size ? `?${q}` : ''}`)).json()) as { deleted: string };
      return `${r.deleted} flow entries have been deleted.\n`;
    }
    case 'conntrack-stats':
      need(0, 'no arguments');
      return formatCtStats((await (await call(api, 'GET', '/v1/conntrack/stats')).json()) as CtStats);
    case 'show-tunnels':
      need(0, 'no arguments');
      return tunnelLines(((await (await call(api, 'GET', '/v1/tunnels')).json()) as { items: TunnelView[] }).items);
    case 'add-tunnel': {
      if (args.length < 1) throw new CliError(`add-tunnel: wants NAME and KEY=VALUE settings\n${USAGE}`);
      await call(api, 'POST', '/v1/tunnels', { json: tunnelBody(args[0]!, args.slice(1)) });
      return '';
    }
    case 'del-tunnel':
      need(1, 'one NAME');
      await call(api, 'DELETE', `/v1/tunnels/${encodeURIComponent(args[0]!)}`);
      return '';
    case 'show-neighbours':
    case 'show-neighbors':
      need(0, 'no arguments');
      return neighbourLines(((await (await call(api, 'GET', '/v1/neighbours')).json()) as { items: NeighbourView[] }).items);
    case undefined:
      throw new CliError(`no command\n${USAGE}`);
    default:
      throw new CliError(`unknown command "${cmd}"\n${USAGE}`);
  }
}

/** The command line entry: prints the output, or the error and exits 1. */
export function main(argv: string[]): void {
  run(argv, process.env, (s) => { process.stdout.write(s); }).then(
    (out) => { process.stdout.write(out); },
    (e: Error) => {
      process.stderr.write(`ferryctl: ${e instanceof CliError ? e.message : e.stack ?? e.message}\n`);
      process.exitCode = 1;
    });
}

if (require.main === module) main(process.argv.slice(2));
