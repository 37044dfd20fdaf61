// The request/response channel to ferryd over the segment's rings.
import { performance } from 'node:perf_hooks';
import { MSG_HDR, RESPONSE, MsgType, MsgTypeName, StatusName, readCString } from './gen/proto';
import { FerrydDownError, RingFullError, TimeoutError } from './errors';
import type { Segment } from './shm/segment';
import type { RingConsumer, RingProducer } from './shm/ring';
import type { BodyWriter } from './messages';
import { FerryEvent, decodeEvent } from './events';

export type { BodyWriter } from './messages';

export interface ChannelResponse {
  reqId: number;
  /** Status enum value (Status.OK, ...). */
  status: number;
  statusName: string;
  /** FLOW_ADD: the flow's stats slot. */
  aux: number;
  value: bigint;
  message: string;
}

export interface RequestSpec {
  type: number;
  body?: BodyWriter;
  timeoutMs?: number;
  /** msg_hdr.flags (MsgFlag.IN_BUNDLE) */
  flags?: number;
}

export interface ChannelOptions {
  /** Default time a request may wait for its response (ms). */
  timeoutMs?: number;
  /** How long after the last activity polling uses setImmediate before dropping to setTimeout(1). */
  spinMs?: number;
}

export interface ChannelStats {
  requests: number;
  responses: number;
  timeouts: number;
  orphanResponses: number;
  ringFull: number;
  events: number;
}

interface Pending {
  type: number;
  deadline: number;
  timeoutMs: number;
  resolve(r: ChannelResponse): void;
  reject(e: Error): void;
}

const HDR = MSG_HDR.fields;
const RESP = RESPONSE.fields;
const MAX_SAFE_ID = Number.MAX_SAFE_INTEGER;

// Request ids are unique within the process, across channels (a reattach gets a new channel).
let lastReqId = 0;
function nextReqId(): number {
  lastReqId = lastReqId >= MAX_SAFE_ID ? 1 : lastReqId + 1;
  return lastReqId;
}

export class ControlChannel {
  readonly timeoutMs: number;
  private readonly spinMs: number;
  private readonly req: RingProducer;
  private readonly resp: RingConsumer;
  private readonly events: RingConsumer;
  private readonly maxBody: number;
  private readonly pending = new Map<number, Pending>();
  private scheduled = false;
  private lastActivity = 0;
  private nextDeadline = Infinity;
  private closedWith: Error | null = null;
  readonly stats: ChannelStats = { requests: 0, responses: 0, timeouts: 0, orphanResponses: 0, ringFull: 0, events: 0 };

  constructor(readonly segment: Segment, opts: ChannelOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? 2000;
    this.spinMs = opts.spinMs ?? 2;
    this.req = segment.requestRing();
    this.resp = segment.responseRing();
    this.events = segment.eventRing();
    this.maxBody = this.req.slotSize - MSG_HDR.size;
  }

  /** Requests waiting for their response. */
  get pendingCount(): number {
    return this.pending.size;
  }

  get closed(): boolean {
    return this.closedWith !== null;
  }

  private writeRecord(dv: DataView, off: number, reqId: number, spec: RequestSpec): void {
    const len = spec.body ? spec.body(dv, off + MSG_HDR.size) : 0;
    if (len < 0 || len > this.maxBody) throw new Error(`request body of ${len} bytes does not fit a ${this.req.slotSize}-byte slot`);
    dv.setUint16(off + HDR.type.offset, spec.type, true);
    dv.setUint16(off + HDR.flags.offset, spec.flags ?? 0, true);
    dv.setUint32(off + HDR.len.offset, len, true);
    dv.setBigUint64(off + HDR.req_id.offset, BigInt(reqId), true);
  }

  private track(reqId: number, spec: RequestSpec, now: number): Promise<ChannelResponse> {
    const timeoutMs = spec.timeoutMs ?? this.timeoutMs;
    const deadline = now + timeoutMs;
    if (deadline < this.nextDeadline) this.nextDeadline = deadline;
    return new Promise<ChannelResponse>((resolve, reject) => {
      this.pending.set(reqId, { type: spec.type, deadline, timeoutMs, resolve, reject });
    });
  }

  /** Sends one request; resolves with ferryd's response (whatever its status). */
  request(type: number, body?: BodyWriter, opts: { timeoutMs?: number; flags?: number } = {}): Promise<ChannelResponse> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    const reqId = nextReqId();
    const spec: RequestSpec = { type, body, timeoutMs: opts.timeoutMs, flags: opts.flags };
    let written: boolean;
    try {
      written = this.req.tryWrite((dv, off) => this.writeRecord(dv, off, reqId, spec));
    } catch (e) {
      return Promise.reject(e); // a body that does not fit: nothing was published
    }
    if (!written) {
      this.stats.ringFull++;
      return Promise.reject(new RingFullError('request'));
    }
    this.stats.requests++;
    const now = performance.now();
    const p = this.track(reqId, spec, now);
    this.lastActivity = now;
    this.schedule();
    return p;
  }

  /** Writes as many of specs as fit into the request ring, publishes them with one head
   * store, and returns their request ids (specs[i] got ids[i]). */
  private writeMany(specs: readonly RequestSpec[]): number[] {
    if (this.closedWith) throw this.closedWith;
    const ids: number[] = [];
    const submitted = this.req.writeBatch(specs.length, (i, dv, off) => {
      const id = nextReqId();
      ids.push(id);
      this.writeRecord(dv, off, id, specs[i]!);
    });
    if (submitted < specs.length) this.stats.ringFull++;
    this.stats.requests += submitted;
    return ids;
  }

  /**
   * Writes as many of specs as fit into the request ring and publishes them with one head store.
   * responses[i] belongs to specs[i] for i < submitted; the rest were not sent.
   */
  requestMany(specs: readonly RequestSpec[]): { submitted: number; responses: Promise<ChannelResponse>[] } {
    const ids = this.writeMany(specs);
    const submitted = ids.length;
    const now = performance.now();
    const responses = ids.map((id, i) => this.track(id, specs[i]!, now));
    if (submitted > 0) {
      this.lastActivity = now;
      this.schedule();
    }
    return { submitted, responses };
  }

  /**
   * Like requestMany, but one promise for the whole group (no promise per request: bulk loads send
   * 10^5 of them). done resolves with the responses in order once all arrived; rejects on the first
   * timeout or failure.
   */
  requestGroup(specs: readonly RequestSpec[]): { submitted: number; done: Promise<ChannelResponse[]> } {
    const ids = this.writeMany(specs);
    const submitted = ids.length;
    if (submitted === 0) return { submitted, done: Promise.resolve([]) };
    const now = performance.now();
    const results = new Array<ChannelResponse>(submitted);
    let remaining = submitted;
    let settled = false;
    const done = new Promise<ChannelResponse[]>((resolve, reject) => {
      const fail = (e: Error): void => {
        if (settled) return;
        settled = true;
        for (const id of ids) this.pending.delete(id);
        reject(e);
      };
      ids.forEach((id, i) => {
        const spec = specs[i]!;
        const timeoutMs = spec.timeoutMs ?? this.timeoutMs;
        const deadline = now + timeoutMs;
        if (deadline < this.nextDeadline) this.nextDeadline = deadline;
        this.pending.set(id, {
          type: spec.type, deadline, timeoutMs, reject: fail,
          resolve: (r) => {
            results[i] = r;
            if (--remaining === 0 && !settled) {
              settled = true;
              resolve(results);
            }
          },
        });
      });
    });
    this.lastActivity = now;
    this.schedule();
    return { submitted, done };
  }

  /** Drains the response ring now, settling matching requests. Returns the records consumed. */
  poll(): number {
    const n = this.resp.drain((dv, off) => {
      const type = dv.getUint16(off + HDR.type.offset, true);
      const reqId = Number(dv.getBigUint64(off + HDR.req_id.offset, true));
      const p = this.pending.get(reqId);
      if (!p || type !== MsgType.RESPONSE) {
        this.stats.orphanResponses++;
        return;
      }
      this.pending.delete(reqId);
      const b = off + MSG_HDR.size;
      const status = dv.getUint32(b + RESP.status.offset, true);
      p.resolve({
        reqId,
        status,
        statusName: StatusName[status] ?? `STATUS_${status}`,
        aux: dv.getUint32(b + RESP.aux.offset, true),
        value: dv.getBigUint64(b + RESP.value.offset, true),
        message: dv.getUint8(b + RESP.message.offset) === 0 ? '' : readCString(dv, b + RESP.message.offset, RESP.message.size),
      });
    });
    this.stats.responses += n;
    if (n > 0) this.lastActivity = performance.now();
    return n;
  }

  /** Drains the event ring, handing each decoded record to onEvent; returns the records consumed. */
  drainEvents(onEvent?: (ev: FerryEvent) => void): number {
    const slot = this.events.slotSize;
    const got: FerryEvent[] = [];
    const n = this.events.drain((dv, off) => {
      if (onEvent) got.push(decodeEvent(dv, off, slot));
    });
    for (const ev of got) onEvent!(ev); // after tail moved on: a throwing handler cannot replay records
    this.stats.events += n;
    return n;
  }

  private expire(now: number): void {
    if (now < this.nextDeadline) return;
    let next = Infinity;
    for (const [id, p] of this.pending) {
      if (p.deadline <= now) {
        this.pending.delete(id);
        this.stats.timeouts++;
        p.reject(new TimeoutError(id, p.timeoutMs, `${MsgTypeName[p.type] ?? `type ${p.type}`} request`));
      } else if (p.deadline < next) {
        next = p.deadline;
      }
    }
    this.nextDeadline = next;
  }

  private readonly tick = (): void => {
    this.scheduled = false;
    try {
      this.poll();
    } catch (e) {
      this.failAll(new FerrydDownError(`response ring unusable: ${(e as Error).message}`));
      return;
    }
    this.expire(performance.now());
    this.schedule();
  };

  private schedule(): void {
    if (this.scheduled || this.pending.size === 0) return;
    this.scheduled = true;
    if (performance.now() - this.lastActivity < this.spinMs) setImmediate(this.tick);
    else setTimeout(this.tick, 1);
  }

  /** Rejects every pending request with err (the channel stays usable). */
  failAll(err: Error): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    this.nextDeadline = Infinity;
    for (const p of all) p.reject(err);
  }

  /** Rejects pending and future requests with err. */
  close(err: Error = new FerrydDownError()): void {
    this.closedWith = err;
    this.failAll(err);
  }
}
