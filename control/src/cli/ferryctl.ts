// ferryctl: ovs-ofctl's flow commands against ferry-control's REST API.
import * as fs from 'node:fs';
import { parseArgs } from 'node:util';

const USAGE = `usage: ferryctl [--api URL] COMMAND [ARGS]
  add-flow FLOW              add or replace one flow (ovs-ofctl syntax)
  add-flows FILE             add flows from FILE (- for stdin), one per line, as one atomic bundle
  del-flows [MATCH] [--strict]
                             delete flows (all when no MATCH); --strict: exactly this match and priority
  dump-flows [MATCH] [--table T]
                             print flows as ovs-ofctl dump-flows does
  replace-flows FILE         make the flow tables hold exactly the flows in FILE (- for stdin)
options:
  --api URL                  ferry-control's address (default http://127.0.0.1:8080, or $FERRY_API)`;

export class CliError extends Error {}

interface Problem { detail?: string; title?: string; status?: number }

async function call(api: string, method: string, path: string, body?: { text?: string; json?: unknown }): Promise<Response> {
  const headers: Record<string, string> = { accept: 'application/json' };
  let payload: string | undefined;
  if (body?.text !== undefined) {
    headers['content-type'] = 'text/plain; charset=utf-8';
    payload = body.text;
  } else if (body?.json !== undefined) {
    headers['content-type'] = 'application/json';
    payload = JSON.stringify(body.json);
  }
  let res: Response;
  try {
    res = await fetch(api.replace(/\/$/, '') + path, { method, headers, body: payload });
  } catch (e) {
    throw new CliError(`cannot reach ferry-control at ${api}: ${(e as Error & { cause?: Error }).cause?.message ?? (e as Error).message}`);
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

async function tablesInUse(api: string): Promise<Set<number>> {
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

/** Runs one ferryctl invocation; returns what to print on stdout. */
export async function run(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<string> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        api: { type: 'string' },
        strict: { type: 'boolean', default: false },
        table: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    throw new CliError(`${(e as Error).message}\n${USAGE}`);
  }
  const { values, positionals } = parsed;
  if (values.help) return USAGE + '\n';
  const api = values.api ?? env.FERRY_API ?? 'http://127.0.0.1:8080';
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
    case undefined:
      throw new CliError(`no command\n${USAGE}`);
    default:
      throw new CliError(`unknown command "${cmd}"\n${USAGE}`);
  }
}

/** The command line entry: prints the output, or the error and exits 1. */
export function main(argv: string[]): void {
  run(argv).then(
    (out) => { process.stdout.write(out); },
    (e: Error) => {
      process.stderr.write(`ferryctl: ${e instanceof CliError ? e.message : e.stack ?? e.message}\n`);
      process.exitCode = 1;
    });
}

if (require.main === module) main(process.argv.slice(2));
