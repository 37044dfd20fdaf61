// GET /v1/conntrack/events: ferryd's CT_NEW / CT_DESTROY events fanned out to every open stream.
// Each subscriber is an NDJSON Readable with a bounded backlog: one that does not keep up is told
// so (a last "overflow" line) and dropped, never buffered without bound.
import { EventEmitter } from 'node:events';
import { Readable } from 'node:stream';
import type { FerryEvent, CtEventRecord } from '../events';
import { CtEntryView, destroyReason, entryView, isoAt, nowClock } from './format';

/** One line of the events stream. */
export interface CtEventView {
  type: 'new' | 'destroy';
  /** CT_DESTROY: expired, flushed, evicted, replaced */
  reason?: string;
  /** when ferryd posted it (ISO 8601) */
  time: string;
  entry: CtEntryView;
}

/** Where events come from: the FerrydConnection ('event' listeners, drainEvents()). */
export interface EventSource {
  on(event: 'event', fn: (ev: FerryEvent) => void): unknown;
  drainEvents(): number;
}

export interface CtEventHubOptions {
  /** Lines a subscriber may have waiting beyond its stream buffer before it is dropped (default 4096). */
  maxQueued?: number;
  /** Stream buffer of a subscriber in bytes (default 64 KiB). */
  highWaterMark?: number;
  /** How often the event ring is drained while anyone listens (ms, default 10; the health watch's 200 ms is too slow for busy trackers). */
  drainIntervalMs?: number;
  /** How long a dropped subscriber gets to read its last line before its connection is cut (ms, default 5000). */
  dropGraceMs?: number;
}

export function eventView(ev: CtEventRecord, clock = nowClock()): CtEventView {
  return {
    type: ev.kind,
    ...(ev.kind === 'destroy' ? { reason: destroyReason(ev.reason) } : {}),
    time: isoAt(ev.timeNs, clock),
    entry: entryView(ev.entry, clock),
  };
}

/** One subscriber: an NDJSON stream fed by the hub. */
export class CtEventStream extends Readable {
  private readonly backlog: string[] = [];
  private blocked = false;
  private ended = false;

  constructor(private readonly maxQueued: number, highWaterMark: number) {
    super({ highWaterMark });
  }

  /** Hands a line to the subscriber; false if its backlog is full (it is not keeping up). */
  offer(line: string): boolean {
    if (this.ended) return true;
    if (!this.blocked && this.backlog.length === 0) {
      this.blocked = !this.push(line);
      return true;
    }
    if (this.backlog.length >= this.maxQueued) return false;
    this.backlog.push(line);
    return true;
  }

  override _read(): void {
    this.blocked = false;
    while (this.backlog.length) {
      if (!this.push(this.backlog.shift()!)) {
        this.blocked = true;
        return;
      }
    }
  }

  /** Ends the stream with a last line (its backlog is given up). */
  finish(last?: string): void {
    if (this.ended) return;
    this.ended = true;
    this.backlog.length = 0;
    if (last !== undefined) this.push(last);
    this.push(null);
  }

  get queued(): number {
    return this.backlog.length;
  }
}

/**
 * Fans conntrack events out. 'change' (subscriber count) is emitted when a subscriber comes or goes,
 * so that the service can turn ferryd's events on for the first and off after the last.
 */
export class CtEventHub extends EventEmitter {
  private readonly subs = new Set<CtEventStream>();
  private readonly opts: Required<CtEventHubOptions>;
  private timer: NodeJS.Timeout | null = null;
  private ferrydPublishes = false;
  readonly counters = { events: 0, subscribersDropped: 0 };

  constructor(private readonly source: EventSource, opts: CtEventHubOptions = {}) {
    super();
    this.opts = {
      maxQueued: opts.maxQueued ?? 4096,
      highWaterMark: opts.highWaterMark ?? 64 * 1024,
      drainIntervalMs: opts.drainIntervalMs ?? 10,
      dropGraceMs: opts.dropGraceMs ?? 5000,
    };
    source.on('event', (ev) => {
      if (ev.type === 'ct') this.publish(ev);
    });
  }

  get size(): number {
    return this.subs.size;
  }

  /** A new subscriber; it leaves the hub when its stream closes (the client went away) or is dropped. */
  subscribe(): CtEventStream {
    const s = new CtEventStream(this.opts.maxQueued, this.opts.highWaterMark);
    this.subs.add(s);
    s.once('close', () => this.remove(s));
    this.schedule();
    this.emit('change', this.subs.size);
    return s;
  }

  /**
   * Whether ferryd publishes conntrack events. While it does, the ring is drained often even without a
   * subscriber: CT events share the ring with FLOW_REMOVED and PACKET_IN, which must not be crowded out.
   */
  setFerrydPublishes(on: boolean): void {
    this.ferrydPublishes = on;
    this.schedule();
  }

  /** Ends every subscription (shutdown). */
  closeAll(): void {
    for (const s of [...this.subs]) {
      this.remove(s);
      s.finish();
    }
  }

  publish(ev: CtEventRecord): void {
    this.counters.events++;
    if (this.subs.size === 0) return;
    const line = JSON.stringify(eventView(ev)) + '\n';
    for (const s of this.subs) {
      if (!s.offer(line)) this.drop(s);
    }
  }

  private drop(s: CtEventStream): void {
    this.counters.subscribersDropped++;
    this.remove(s);
    s.finish(JSON.stringify({
      type: 'overflow',
      detail: `this subscriber fell more than ${this.opts.maxQueued} events behind and was disconnected; reconnect and read faster`,
    }) + '\n');
    setTimeout(() => s.destroy(), this.opts.dropGraceMs).unref(); // a client that reads nothing at all
  }

  private remove(s: CtEventStream): void {
    if (!this.subs.delete(s)) return;
    this.schedule();
    this.emit('change', this.subs.size);
  }

  /** Drains the event ring often while anyone listens or ferryd publishes conntrack events. */
  private schedule(): void {
    const fast = this.subs.size > 0 || this.ferrydPublishes;
    if (fast && !this.timer) {
      this.timer = setInterval(() => this.source.drainEvents(), this.opts.drainIntervalMs);
      this.timer.unref();
    } else if (!fast && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }
}
