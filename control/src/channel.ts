// The request/response channel to ferryd over the segment's rings.
import { performance } from 'node:perf_hooks';
import { MSG_HDR, RESPONSE, MsgFlag, MsgType, MsgTypeName, Status, StatusName, readCString } from './gen/proto';
import { FerrydDownError, RingFullError, TimeoutError } from './errors';
import type { Segment } from './shm/segment';
import type { RingConsumer, RingProducer } from './shm/ring';
import type { BodyWriter } from './messages';
import { FerryEvent, decodeEvent } from './events';
import type { Doorbell } from './doorbell';

const DOORBELL_FALLBACK_MS = 5;

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

/**
 * One part of a multi-part answer (CT_DUMP), handed to the part callback while the record is still
 * in the response ring: dv and the payload range are valid only during the call (copy what you keep).
 */
export interface ChannelPart extends ChannelResponse {
  /** msg_hdr.flags had MORE: further parts with the same req_id follow. */
  more: boolean;
  /** 0-based index of this part within the answer. */
  index: number;
  dv: DataView;
  /** Byte offset in dv of what follows the response struct (ct_dump_resp, ct_stats_resp). */
  payloadOff: number;
  /** Bytes of it the record carries (msg_hdr.len minus the response struct; 0 when none). */
  payloadLen: number;
}

/** Called for every part of a multi-part answer, in order; a throw fails the request (later parts are dropped). */
export type PartHandler = (part: ChannelPart) => void;

export interface MultiPartResult {
  /** The last part (no MORE). Its status is the answer's. */
  last: ChannelResponse;
  parts: number;
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
  /** With a live doorbell, how often the response ring is read anyway (a lost ring, deadlines). */
  doorbellFallbackMs?: number;
}

export interface ChannelStats {
  requests: number;
  responses: number;
  timeouts: number;
  orphanResponses: number;
  /** Parts of multi-part answers received (the last parts included). */
  parts: number;
  ringFull: number;
  events: number;
}

/** One write of a batch: requests lo.. (answered.length of them), all settled through p. */
interface PendingRun {
  lo: number;
  /** how many are not answered yet */
  left: number;
  /** 1 for each request answered (a second answer to one is an orphan) */
  answered: Uint8Array;
  p: Pending;
}

interface Pending {
  type: number;
  deadline: number;
  timeoutMs: number;
  resolve(r: ChannelResponse): void;
  reject(e: Error): void;
  /** A multi-part request: every part goes here, and each one restarts the deadline. */
  onPart?: PartHandler;
  parts?: number;
  /** A request of a batch: answered in place, no response object (only refusals get one). */
  answer?: (reqId: number, status: number, aux: number, dv: DataView, respOff: number) => void;
}

/** The answers to a batch, by the index of each request in it. */
export interface BatchAnswers {
  status: Uint32Array;
  /** FLOW_ADD: the flow's stats slot */
  aux: Uint32Array;
  /** the whole response of every request not answered OK */
  refused: Map<number, ChannelResponse>;
}

/** A batch's request i: its type, flags (msg_hdr.flags, default 0), and the body written at bodyOff (returns its length). */
export interface BatchSpec {
  type(i: number): number;
  flags?(i: number): number;
  write(i: number, dv: DataView, bodyOff: number): number;
}

const HDR = MSG_HDR.fields;
const RESP = RESPONSE.fields;

/** The RESPONSE struct at b, as an object. */
function responseAt(dv: DataView, b: number, reqId: number): ChannelResponse {
  const status = dv.getUint32(b + RESP.status.offset, true);
  return {
    reqId,
    status,
    statusName: StatusName[status] ?? `STATUS_${status}`,
    aux: dv.getUint32(b + RESP.aux.offset, true),
    value: dv.getBigUint64(b + RESP.value.offset, true),
    message: dv.getUint8(b + RESP.message.offset) === 0 ? '' : readCString(dv, b + RESP.message.offset, RESP.message.size),
  };
}
const MAX_SAFE_ID = Number.MAX_SAFE_INTEGER;

// Request ids are unique within the process, across channels (a reattach gets a new channel).
let lastReqId = 0;
function nextReqId(): number {
  lastReqId = lastReqId >= MAX_SAFE_ID ? 1 : lastReqId + 1;
  return lastReqId;
}

/** The request id of the record at off (two words, no BigInt: ours are below 2^53, and a larger
 * one, which is no request of ours, stays larger than any of them). */
function readReqId(dv: DataView, off: number): number {
  return dv.getUint32(off + HDR.req_id.offset + 4, true) * 0x100000000 + dv.getUint32(off + HDR.req_id.offset, true);
}

export class ControlChannel {
  readonly timeoutMs: number;
  private readonly spinMs: number;
  private readonly fallbackMs: number;
  private readonly req: RingProducer;
  private readonly resp: RingConsumer;
  private readonly events: RingConsumer;
  private readonly maxBody: number;
  private readonly pending = new Map<number, Pending>();
  /** the writes of batches still answering: a run of ids each, not an entry an id (10^5 of them a bulk load) */
  private runs: PendingRun[] = [];
  private scheduled = false;
  private timer: NodeJS.Timeout | null = null;
  private immediate: NodeJS.Immediate | null = null;
  private bell: Doorbell | null = null;
  private lastActivity = 0;
  private nextDeadline = Infinity;
  private closedWith: Error | null = null;
  readonly stats: ChannelStats = { requests: 0, responses: 0, timeouts: 0, orphanResponses: 0, parts: 0, ringFull: 0, events: 0 };

  constructor(readonly segment: Segment, opts: ChannelOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? 2000;
    this.spinMs = opts.spinMs ?? 2;
    this.fallbackMs = opts.doorbellFallbackMs ?? DOORBELL_FALLBACK_MS;
    this.req = segment.requestRing();
    this.resp = segment.responseRing();
    this.events = segment.eventRing();
    this.maxBody = this.req.slotSize - MSG_HDR.size;
  }

  /** Requests waiting for their response. */
  get pendingCount(): number {
    let n = this.pending.size;
    for (const r of this.runs) n += r.left;
    return n;
  }

  /** The batch request reqId, taken as answered; undefined if it is none (or was answered already). */
  private takeFromRun(reqId: number): Pending | undefined {
    for (let k = 0; k < this.runs.length; k++) {
      const r = this.runs[k]!;
      const j = reqId - r.lo;
      if (j < 0 || j >= r.answered.length) continue;
      if (r.answered[j]) return undefined;
      r.answered[j] = 1;
      if (--r.left === 0) this.runs.splice(k, 1);
      return r.p;
    }
    return undefined;
  }

  get closed(): boolean {
    return this.closedWith !== null;
  }

  private writeRecord(dv: DataView, off: number, reqId: number, spec: RequestSpec): void {
    const len = spec.body ? spec.body(dv, off + MSG_HDR.size) : 0;
    this.writeHeader(dv, off, reqId, spec.type, spec.flags ?? 0, len);
  }

  /** The record's header, once its body of len bytes is written (a body too big throws: nothing is published). */
  private writeHeader(dv: DataView, off: number, reqId: number, type: number, flags: number, len: number): void {
    if (len < 0 || len > this.maxBody) throw new Error(`request body of ${len} bytes does not fit a ${this.req.slotSize}-byte slot`);
    dv.setUint16(off + HDR.type.offset, type, true);
    dv.setUint16(off + HDR.flags.offset, flags, true);
    dv.setUint32(off + HDR.len.offset, len, true);
    // a request id is below 2^53: two words, no BigInt a request
    dv.setUint32(off + HDR.req_id.offset, reqId >>> 0, true);
    dv.setUint32(off + HDR.req_id.offset + 4, Math.floor(reqId / 0x100000000), true);
  }

  private track(reqId: number, spec: RequestSpec, now: number, onPart?: PartHandler): Promise<ChannelResponse> {
    const timeoutMs = spec.timeoutMs ?? this.timeoutMs;
    const deadline = now + timeoutMs;
    if (deadline < this.nextDeadline) this.nextDeadline = deadline;
    return new Promise<ChannelResponse>((resolve, reject) => {
      this.pending.set(reqId, { type: spec.type, deadline, timeoutMs, resolve, reject, ...(onPart ? { onPart, parts: 0 } : {}) });
    });
  }

  /** Sends one request; resolves with ferryd's response (whatever its status). */
  request(type: number, body?: BodyWriter, opts: { timeoutMs?: number; flags?: number } = {}): Promise<ChannelResponse> {
    return this.submit({ type, body, timeoutMs: opts.timeoutMs, flags: opts.flags });
  }

  /**
   * Sends one request whose answer comes in parts (RESPONSE records with the request's id, MORE set on
   * all but the last). onPart sees every part while it is in the ring; the promise resolves with the
   * last part once it arrived. The timeout applies to the wait for each part (every part restarts it),
   * so a long answer is not cut short while ferryd keeps producing. A part arriving after the request
   * failed (timeout, a throwing onPart) is counted as an orphan and dropped.
   */
  requestParts(type: number, body: BodyWriter | undefined, onPart: PartHandler, opts: { timeoutMs?: number } = {}): Promise<MultiPartResult> {
    let parts = 0;
    const counting: PartHandler = (part) => {
      parts = part.index + 1;
      onPart(part);
    };
    return this.submit({ type, body, timeoutMs: opts.timeoutMs }, counting).then((last) => ({ last, parts }));
  }

  /** requestParts() collecting a copy of every part's payload. */
  async requestCollect(type: number, body?: BodyWriter, opts: { timeoutMs?: number } = {}): Promise<{ last: ChannelResponse; payloads: Buffer[] }> {
    const payloads: Buffer[] = [];
    const { last } = await this.requestParts(type, body, (p) => {
      payloads.push(Buffer.from(new Uint8Array(p.dv.buffer, p.dv.byteOffset + p.payloadOff, p.payloadLen)));
    }, opts);
    return { last, payloads };
  }

  private submit(spec: RequestSpec, onPart?: PartHandler): Promise<ChannelResponse> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    const reqId = nextReqId();
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
    const p = this.track(reqId, spec, now, onPart);
    this.afterSend(now);
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
      this.afterSend(now);
    }
    return { submitted, responses };
  }

  /**
   * Sends specs in groups of at most groupSize (ferryd applies them in order), handing each group's
   * answers to onGroup with the index of its first spec once all of them are in. A group waits for
   * room in the ring as a batch does; a timeout or channel failure rejects (the groups before it
   * were answered and handed on).
   */
  async requestInGroups(specs: readonly RequestSpec[], groupSize: number,
    onGroup: (answers: BatchAnswers, first: number) => void): Promise<void> {
    for (let first = 0; first < specs.length; first += groupSize) {
      const group = specs.slice(first, first + groupSize);
      const timeoutMs = Math.max(...group.map((s) => s.timeoutMs ?? this.timeoutMs));
      onGroup(await this.requestBatch(group.length, {
        type: (i) => group[i]!.type,
        flags: (i) => group[i]!.flags ?? 0,
        write: (i, dv, off) => group[i]!.body?.(dv, off) ?? 0,
      }, { timeoutMs }), first);
    }
  }

  /**
   * Sends count requests (bulk loads: 10^5 FLOW_ADDs) as fast as the ring takes them, waiting for
   * ferryd's answers to make room, and resolves once every one is answered (whatever its status).
   * Nothing is made per request but its pending entry: answers land in typed arrays, and only
   * refusals are kept whole. Rejects on the first timeout (an answer, or room in a ring that others
   * keep full, not coming for timeoutMs), a channel failure, or a body that does not fit; what was
   * sent by then may still be applied (the caller aborts its bundle).
   */
  requestBatch(count: number, spec: BatchSpec, opts: { timeoutMs?: number } = {}): Promise<BatchAnswers> {
    const answers: BatchAnswers = { status: new Uint32Array(count), aux: new Uint32Array(count), refused: new Map() };
    if (count === 0) return Promise.resolve(answers);
    if (this.closedWith) return Promise.reject(this.closedWith);
    const timeoutMs = opts.timeoutMs ?? this.timeoutMs;
    return new Promise<BatchAnswers>((resolve, reject) => {
      let sent = 0;
      let answered = 0;
      let settled = false;
      let waiting = false;
      let lastProgress = performance.now();
      /** [first request id, index of its request, how many] of each write */
      const runs: [number, number, number][] = [];
      const indexOf = (reqId: number): number => {
        for (let r = runs.length - 1; r >= 0; r--) {
          const [lo, first, n] = runs[r]!;
          if (reqId >= lo && reqId < lo + n) return first + (reqId - lo);
        }
        return -1;
      };
      const fail = (e: Error): void => {
        if (settled) return;
        settled = true;
        this.runs = this.runs.filter((r) => r.p.reject !== fail);
        reject(e);
      };
      const answer = (reqId: number, status: number, aux: number, dv: DataView, b: number): void => {
        const i = indexOf(reqId);
        if (settled || i < 0) return;
        answers.status[i] = status;
        answers.aux[i] = aux;
        if (status !== Status.OK) answers.refused.set(i, responseAt(dv, b, reqId));
        answered++;
        if (answered === count) {
          settled = true;
          resolve(answers);
        } else if (waiting && sent - answered <= this.req.slots >> 1) {
          // the ring has room again: send more once this poll is over
          waiting = false;
          queueMicrotask(send);
        }
      };
      const entry = (): Pending => ({ type: spec.type(sent), deadline: performance.now() + timeoutMs, timeoutMs, resolve: () => undefined, reject: fail, answer });
      const send = (): void => {
        if (settled) return;
        if (this.closedWith) return fail(this.closedWith);
        if (lastReqId + (count - sent) >= MAX_SAFE_ID) lastReqId = 0; // ids of one write stay consecutive
        const lo = lastReqId + 1;
        let k: number;
        try {
          k = this.req.writeBatch(count - sent, (j, dv, off) => {
            const i = sent + j;
            this.writeHeader(dv, off, nextReqId(), spec.type(i), spec.flags?.(i) ?? 0, spec.write(i, dv, off + MSG_HDR.size));
          });
        } catch (e) {
          return fail(e as Error); // nothing of this write was published
        }
        if (k > 0) {
          lastProgress = performance.now();
          runs.push([lo, sent, k]);
          const p = entry();
          if (p.deadline < this.nextDeadline) this.nextDeadline = p.deadline;
          this.runs.push({ lo, left: k, answered: new Uint8Array(k), p });
          sent += k;
          this.stats.requests += k;
          this.afterSend(performance.now());
        }
        if (sent < count) {
          this.stats.ringFull++;
          // our answers to come will make room; if few of ours are out, others' records fill it:
          // try again shortly, for as long as a request may wait for its answer
          if (sent - answered > this.req.slots >> 1) waiting = true;
          else if (performance.now() - lastProgress > timeoutMs) fail(new RingFullError('request'));
          else setTimeout(send, 1);
        }
      };
      send();
    });
  }

  /** Drains the response ring now, settling matching requests. Returns the records consumed. */
  poll(): number {
    let now = 0;
    const n = this.resp.drain((dv, off) => {
      const type = dv.getUint16(off + HDR.type.offset, true);
      const reqId = readReqId(dv, off);
      const p = type !== MsgType.RESPONSE ? undefined : this.pending.get(reqId) ?? (this.runs.length ? this.takeFromRun(reqId) : undefined);
      if (!p) {
        this.stats.orphanResponses++;
        return;
      }
      const b = off + MSG_HDR.size;
      const status = dv.getUint32(b + RESP.status.offset, true);
      if (p.answer) { // a batch's request: takeFromRun settled its entry
        p.answer(reqId, status, dv.getUint32(b + RESP.aux.offset, true), dv, b);
        return;
      }
      const r = responseAt(dv, b, reqId);
      if (!p.onPart) {
        this.pending.delete(reqId); // a plain request: the first record settles it (a stray MORE included)
        p.resolve(r);
        return;
      }
      const more = (dv.getUint16(off + HDR.flags.offset, true) & MsgFlag.MORE) !== 0;
      const len = Math.min(dv.getUint32(off + HDR.len.offset, true), this.resp.slotSize - MSG_HDR.size);
      this.stats.parts++;
      try {
        p.onPart({ ...r, more, index: p.parts!++, dv, payloadOff: b + RESPONSE.size, payloadLen: Math.max(0, len - RESPONSE.size) });
      } catch (e) {
        this.pending.delete(reqId); // the rest of its parts become orphans
        p.reject(e as Error);
        return;
      }
      if (more) {
        now ||= performance.now();
        p.deadline = now + p.timeoutMs;
        return;
      }
      this.pending.delete(reqId);
      p.resolve(r);
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
    for (const r of [...this.runs]) {
      if (r.p.deadline <= now) {
        this.runs.splice(this.runs.indexOf(r), 1);
        this.stats.timeouts += r.left;
        const first = r.lo + r.answered.indexOf(0);
        r.p.reject(new TimeoutError(first, r.p.timeoutMs, `${MsgTypeName[r.p.type] ?? `type ${r.p.type}`} request`));
      } else if (r.p.deadline < next) {
        next = r.p.deadline;
      }
    }
    this.nextDeadline = next;
  }

  private readonly tick = (): void => {
    this.scheduled = false;
    this.timer = null;
    this.immediate = null;
    try {
      this.poll();
    } catch (e) {
      this.failAll(new FerrydDownError(`response ring unusable: ${(e as Error).message}`));
      return;
    }
    this.expire(performance.now());
    this.schedule();
  };

  /** Requests are on the ring: wake ferryd, and watch for the answers. */
  private afterSend(now: number): void {
    this.lastActivity = now;
    this.bell?.ring();
    this.schedule();
  }

  /**
   * With a live doorbell ferryd says when answers are out (wake()): a timer only catches a
   * lost ring and deadlines. Without one, the ring is polled: every turn of the event loop
   * for spinMs after activity, then every millisecond.
   */
  private schedule(): void {
    if (this.scheduled || (this.pending.size === 0 && this.runs.length === 0)) return;
    this.scheduled = true;
    if (this.bell?.live) this.timer = setTimeout(this.tick, this.fallbackMs);
    else if (performance.now() - this.lastActivity < this.spinMs) this.immediate = setImmediate(this.tick);
    else this.timer = setTimeout(this.tick, 1);
  }

  /** Uses bell to wake ferryd after requests, and to be woken when answers are out. */
  useDoorbell(bell: Doorbell): void {
    this.bell = bell;
  }

  /** ferryd rang: read the response ring now. */
  wake(): void {
    if (this.closedWith) return;
    if (this.scheduled) {
      if (this.timer) clearTimeout(this.timer);
      if (this.immediate) clearImmediate(this.immediate);
    }
    this.tick();
  }

  /** Rejects every pending request with err (the channel stays usable). */
  failAll(err: Error): void {
    const all = [...this.pending.values(), ...this.runs.map((r) => r.p)];
    this.pending.clear();
    this.runs = [];
    this.nextDeadline = Infinity;
    for (const p of all) p.reject(err);
  }

  /** Rejects pending and future requests with err. */
  close(err: Error = new FerrydDownError()): void {
    this.closedWith = err;
    this.failAll(err);
  }
}
