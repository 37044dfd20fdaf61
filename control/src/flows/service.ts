// Flow operations: validate against ferryd's ports, program ferryd, keep the desired state.
import { FlowAction, MsgType, PORT_ANY, Status } from '../gen/proto';
import { FerrydStatusError } from '../errors';
import type { ControlChannel, ChannelResponse } from '../channel';
import type { FerrydConnection, Log } from '../ferryd';
import { flowAddBody, flowDelBody, FlowAddBody } from '../messages';
import { badRequest, notFound } from '../problem';
import type { PortSnapshot } from '../shm/segment';
import { flowId, formatCookie, formatFlowId, parseCookie, parseFlowId } from './flow-id';
import type { FlowBody } from './schema';
import { FlowStore, StoredFlow, FlowActionSpec } from './store';

export const DEFAULT_TABLE = 0;
export const DEFAULT_PRIORITY = 32768;
const REPLAY_BATCH = 256;

/** A flow as the API shows it. 64-bit counters are strings; null while ferryd is unavailable. */
export interface FlowView {
  id: string;
  table: number;
  priority: number;
  match: { in_port?: number };
  actions: FlowActionSpec[];
  cookie: string;
  n_packets: string | null;
  n_bytes: string | null;
  duration_sec: number;
  idle_age_sec: number | null;
}

function ok(r: ChannelResponse): ChannelResponse {
  if (r.status !== Status.OK) throw new FerrydStatusError(r.status, r.statusName, r.message);
  return r;
}

export function toFlowAddBody(f: StoredFlow): FlowAddBody {
  return {
    id: f.id,
    priority: f.priority,
    tableId: f.table,
    action: f.action.type === 'output' ? FlowAction.OUTPUT : FlowAction.DROP,
    inPort: f.inPort ?? PORT_ANY,
    outPort: f.action.type === 'output' ? f.action.port : PORT_ANY,
  };
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;

export class FlowService {
  constructor(
    private readonly ferryd: FerrydConnection,
    readonly store: FlowStore = new FlowStore(),
    private readonly log?: Log,
  ) {
    ferryd.setReplayHandler((chan) => this.replay(chan));
  }

  /** Resolves a port given by number or name against ferryd's ports; 400 naming pointer if unknown. */
  private resolvePort(ref: number | string, ports: PortSnapshot[], pointer: string): number {
    const byId = (n: number): PortSnapshot | undefined => ports.find((p) => p.port_id === n);
    const found = typeof ref === 'number' ? byId(ref) : ports.find((p) => p.name === ref) ?? (/^\d+$/.test(ref) ? byId(Number(ref)) : undefined);
    if (found) return found.port_id;
    const known = ports.map((p) => `${p.port_id} (${p.name})`).join(', ') || 'none';
    const what = typeof ref === 'number' ? `port ${ref}` : `port "${ref}"`;
    throw badRequest(pointer, `${what} does not exist on ferryd`, `${pointer}: ${what} does not exist on ferryd; its ports are: ${known}`);
  }

  /** Validates a request body into a flow (ids, defaults, resolved ports); does not store it. */
  private parse(body: FlowBody, ports: PortSnapshot[]): StoredFlow {
    const table = body.table ?? DEFAULT_TABLE;
    const priority = body.priority ?? DEFAULT_PRIORITY;
    const inPort = body.match.in_port === undefined ? undefined : this.resolvePort(body.match.in_port, ports, '/match/in_port');
    const a = body.actions[0]!;
    let action: FlowActionSpec;
    if (a.type === 'output') {
      if (a.port === undefined) throw badRequest('/actions/0/port', 'is required for an output action');
      action = { type: 'output', port: this.resolvePort(a.port, ports, '/actions/0/port') };
    } else {
      if (a.port !== undefined) throw badRequest('/actions/0/port', 'is not allowed for a drop action');
      action = { type: 'drop' };
    }
    let cookie = 0n;
    if (body.cookie !== undefined) {
      const c = parseCookie(body.cookie);
      if (c === null) throw badRequest('/cookie', 'must be a 64-bit value in hex ("0x...") or decimal');
      cookie = c;
    }
    return { id: flowId({ table, priority, inPort }), table, priority, inPort, action, cookie, slot: null, installedNs: 0n };
  }

  /** Installs or replaces a flow (acknowledged by ferryd first). created = the id was new. */
  async add(body: FlowBody): Promise<{ flow: FlowView; created: boolean }> {
    const chan = this.ferryd.channel(); // 503 when ferryd is down: ports cannot be validated
    const flow = this.parse(body, chan.segment.snapshot().ports);
    const r = ok(await chan.request(MsgType.FLOW_ADD, flowAddBody(toFlowAddBody(flow))));
    flow.slot = r.aux;
    flow.installedNs = process.hrtime.bigint();
    const created = this.store.put(flow);
    return { flow: this.view(flow), created };
  }

  private lookup(idHex: string): StoredFlow {
    const id = parseFlowId(idHex);
    const f = id === null ? undefined : this.store.get(id);
    if (!f) throw notFound(`no flow ${idHex}`);
    return f;
  }

  get(idHex: string): FlowView {
    return this.view(this.lookup(idHex));
  }

  list(): FlowView[] {
    return this.store.all().map((f) => this.view(f));
  }

  async remove(idHex: string): Promise<void> {
    const f = this.lookup(idHex);
    const r = await this.ferryd.request(MsgType.FLOW_DEL, flowDelBody(f.id));
    if (r.status !== Status.ENOENT) ok(r); // ENOENT: ferryd did not have it; gone either way
    this.store.delete(f.id);
  }

  async clear(): Promise<void> {
    ok(await this.ferryd.request(MsgType.FLOW_CLEAR));
    this.store.clear();
  }

  view(f: StoredFlow): FlowView {
    const now = process.hrtime.bigint();
    const seg = this.ferryd.ready ? this.ferryd.segment : null;
    const c = seg && f.slot !== null ? seg.flowCounters(f.slot) : null;
    return {
      id: formatFlowId(f.id),
      table: f.table,
      priority: f.priority,
      match: f.inPort === undefined ? {} : { in_port: f.inPort },
      actions: [f.action],
      cookie: formatCookie(f.cookie),
      n_packets: c ? c.packets.toString() : null,
      n_bytes: c ? c.bytes.toString() : null,
      duration_sec: f.installedNs > 0n ? round3(Number(now - f.installedNs) / 1e9) : 0,
      idle_age_sec: c && c.lastHitNs > 0n ? round3(Math.max(0, Number(now - c.lastHitNs)) / 1e9) : null,
    };
  }

  /** Brings a fresh ferryd to the desired state: clear, then every stored flow in batches. */
  async replay(chan: ControlChannel): Promise<void> {
    ok(await chan.request(MsgType.FLOW_CLEAR));
    const flows = this.store.all();
    let i = 0;
    let failed = 0;
    while (i < flows.length) {
      const batch = flows.slice(i, i + REPLAY_BATCH);
      const { submitted, responses } = chan.requestMany(batch.map((f) => ({ type: MsgType.FLOW_ADD, body: flowAddBody(toFlowAddBody(f)) })));
      if (submitted === 0) {
        await new Promise((r) => setTimeout(r, 1));
        continue;
      }
      const rs = await Promise.all(responses);
      const now = process.hrtime.bigint();
      rs.forEach((r, j) => {
        const f = batch[j]!;
        if (r.status === Status.OK) {
          f.slot = r.aux;
          f.installedNs = now;
        } else {
          f.slot = null;
          failed++;
          this.log?.warn(`replay: ferryd refused flow ${formatFlowId(f.id)}: ${r.statusName} ${r.message}`);
        }
      });
      i += submitted;
    }
    this.log?.info(`replayed ${flows.length - failed} of ${flows.length} flows to ferryd`);
  }
}
