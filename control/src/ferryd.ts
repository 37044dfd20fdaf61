// Connection manager: keeps ferry-control attached to the running ferryd, whatever ferryd does.
import { EventEmitter } from 'node:events';
import { ABI_VERSION, DpState, DpStateName } from './gen/proto';
import { AttachError, FerrydDownError } from './errors';
import { ControlChannel, ChannelResponse, MultiPartResult, PartHandler } from './channel';
import { Segment, attachSegment } from './shm/segment';
import { Doorbell, doorbellPath } from './doorbell';
import { shmStat } from './shm/libc';
import type { BodyWriter } from './messages';

export interface Log {
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

export interface FerrydOptions {
  /** Shared-memory name ferryd was started with (--shm-name), with or without the leading '/'. */
  shmName: string;
  /** Default request timeout of the channel (ms, default 2000). */
  requestTimeoutMs?: number;
  /** Health watch period (ms, default 200). */
  healthIntervalMs?: number;
  /** Heartbeat age at which ferryd counts as unhealthy (ms, default 1000). */
  heartbeatTimeoutMs?: number;
  log?: Log;
}

export type Health =
  | {
      ok: true;
      pid: number;
      state: string;
      heartbeat: bigint;
      heartbeatAgeMs: number;
      abiVersion: number;
      layoutHash: bigint;
    }
  | { ok: false; reason: string };

/** Brings a freshly attached ferryd to the desired state (e.g. installs every flow). */
export type ReplayHandler = (channel: ControlChannel, segment: Segment) => Promise<void>;

const silent: Log = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** true if a process with this pid exists (EPERM counts as existing). */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Events: 'attached' (segment), 'ready' (after replay), 'down' (reason), 'event' (FerryEvent from ferryd's event ring).
 */
export class FerrydConnection extends EventEmitter {
  readonly shmName: string;
  private readonly opts: Required<Omit<FerrydOptions, 'log' | 'shmName'>>;
  /** Where attach/detach/replay messages go (settable, e.g. to fastify's logger). */
  log: Log;
  private seg: Segment | null = null;
  private chan: ControlChannel | null = null;
  private bell: Doorbell | null = null;
  private bellWarned = false;
  private replayed = false;
  private replaying: Promise<void> | null = null;
  private replayHandler: ReplayHandler | null = null;
  /** Further replay steps, run in order before replayHandler (state the flows' traffic relies on). */
  private readonly replaySteps: { name: string; fn: ReplayHandler }[] = [];
  private replayError: string | null = null;
  private lastProblem: string;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private deadPid = 0; // pid we already failed requests for

  constructor(opts: FerrydOptions) {
    super();
    this.shmName = opts.shmName.replace(/^\//, '');
    this.opts = {
      requestTimeoutMs: opts.requestTimeoutMs ?? 2000,
      healthIntervalMs: opts.healthIntervalMs ?? 200,
      heartbeatTimeoutMs: opts.heartbeatTimeoutMs ?? 1000,
    };
    this.log = opts.log ?? silent;
    this.lastProblem = `no segment /${this.shmName}`;
  }

  setReplayHandler(fn: ReplayHandler): void {
    this.replayHandler = fn;
  }

  /**
   * Adds a replay step run, in the order added, before the flow table's replay handler: a new ferryd
   * gets e.g. its conntrack limits, timeout policies and options before its first flow. A step that
   * throws fails the replay (retried at the next health check), as the flow replay does.
   */
  addReplayStep(name: string, fn: ReplayHandler): void {
    this.replaySteps.push({ name, fn });
  }

  /** Attaches now if possible and watches ferryd every healthIntervalMs. */
  start(): void {
    this.stopped = false;
    this.check();
    if (!this.timer) {
      this.timer = setInterval(() => this.check(), this.opts.healthIntervalMs);
      this.timer.unref();
    }
  }

  /** Stops watching and fails pending requests. The mapping stays (it is never unmapped). */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.chan?.close(new FerrydDownError('ferry-control is shutting down'));
    this.bell?.close();
    this.bell = null;
  }

  /** The doorbell to the attached ferryd (doorbell.ts), or null while detached. */
  get doorbell(): Pick<Doorbell, 'live' | 'sent' | 'heard'> | null {
    return this.bell;
  }

  /** The attached segment (possibly of a ferryd that is not healthy), or null. */
  get segment(): Segment | null {
    return this.seg;
  }

  /** Attached, flows replayed, ferryd alive and RUNNING: requests may be sent. */
  get ready(): boolean {
    return this.notReadyReason() === null;
  }

  private notReadyReason(): string | null {
    const seg = this.seg;
    if (!seg || !this.chan) return this.lastProblem;
    const h = seg.header();
    if (h.pid !== seg.info.pid) return `ferryd restarted (pid ${seg.info.pid} -> ${h.pid}); reattaching`;
    if (!pidAlive(h.pid)) return `ferryd pid ${h.pid} is gone`;
    if (h.state !== DpState.RUNNING) return `ferryd is ${h.stateName}`;
    if (!this.replayed) return this.replayError ?? 'replaying the desired state (conntrack settings, flow table) to ferryd';
    return null;
  }

  /** ferryd's health right now (live header read). */
  health(): Health {
    const reason = this.notReadyReason();
    if (reason !== null) return { ok: false, reason };
    const seg = this.seg!;
    const h = seg.header();
    const ageMs = Number(process.hrtime.bigint() - h.heartbeatNs) / 1e6;
    if (ageMs >= this.opts.heartbeatTimeoutMs) return { ok: false, reason: `ferryd heartbeat is ${Math.round(ageMs)} ms old` };
    return {
      ok: true,
      pid: h.pid,
      state: h.stateName,
      heartbeat: h.heartbeat,
      heartbeatAgeMs: Math.max(0, Math.round(ageMs * 1000) / 1000),
      abiVersion: seg.info.abiVersion,
      layoutHash: seg.info.layoutHash,
    };
  }

  /** The channel to the healthy ferryd; throws FerrydDownError otherwise. */
  channel(): ControlChannel {
    const reason = this.notReadyReason();
    if (reason !== null) throw new FerrydDownError(`ferryd is not running: ${reason}`);
    return this.chan!;
  }

  /** request() on the current channel; rejects with FerrydDownError when ferryd is not ready. */
  request(type: number, body?: BodyWriter, opts?: { timeoutMs?: number; flags?: number }): Promise<ChannelResponse> {
    try {
      return this.channel().request(type, body, opts);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** requestParts() on the current channel (a multi-part answer); rejects with FerrydDownError when ferryd is not ready. */
  requestParts(type: number, body: BodyWriter | undefined, onPart: PartHandler, opts?: { timeoutMs?: number }): Promise<MultiPartResult> {
    try {
      return this.channel().requestParts(type, body, onPart, opts);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Resolves once ready (attached and replayed), rejects after timeoutMs. */
  whenReady(timeoutMs = 5000): Promise<void> {
    if (this.ready) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t0 = Date.now();
      const poll = setInterval(() => {
        if (this.ready) {
          clearInterval(poll);
          resolve();
        } else if (Date.now() - t0 > timeoutMs) {
          clearInterval(poll);
          reject(new FerrydDownError(`ferryd not ready after ${timeoutMs} ms: ${this.notReadyReason()}`));
        }
      }, 10);
    });
  }

  /** Connects bell (again); tells once per attach when ferryd has none (its channel is then polled). */
  private ringBell(bell: Doorbell): void {
    if (bell.connecting) return;
    void bell.connect().then((up) => {
      if (up || this.bell !== bell || this.bellWarned) return;
      this.bellWarned = true;
      this.log.warn(`no doorbell to ferryd on /${this.shmName} (${bell.problem ?? 'refused'}): its channel is polled`);
    });
  }

  /** One watch step: attach, notice restarts and deaths, replay. Called by the timer. */
  check(): void {
    if (this.stopped) return;
    if (!this.seg) {
      if (!this.tryAttach()) return;
    }
    if (this.bell && !this.bell.live) this.ringBell(this.bell); // ferryd may have opened it since
    const seg = this.seg!;
    let st;
    try {
      st = shmStat(this.shmName);
    } catch (e) {
      st = undefined; // cannot tell; keep the current mapping
      this.note(`cannot stat /${this.shmName}: ${(e as Error).message}`);
    }
    if (st === null) {
      this.detach(`no segment /${this.shmName}`);
      return;
    }
    if (st && (st.ino !== seg.identity.ino || st.dev !== seg.identity.dev)) {
      this.detach('ferryd created a new segment');
      if (!this.tryAttach()) return;
    }
    let h = this.seg!.header();
    if (h.pid !== this.seg!.info.pid) {
      this.detach(`ferryd pid changed (${this.seg!.info.pid} -> ${h.pid})`);
      if (!this.tryAttach()) return;
      h = this.seg!.header();
    }
    if (!pidAlive(h.pid) || h.state === DpState.STOPPING) {
      if (this.deadPid !== h.pid) {
        this.deadPid = h.pid;
        const why = h.state === DpState.STOPPING ? `ferryd pid ${h.pid} is stopping` : `ferryd pid ${h.pid} is gone`;
        this.log.warn(why);
        this.chan!.failAll(new FerrydDownError(`ferryd is not running: ${why}`));
        this.replayed = false; // whoever comes next gets the flows again
        this.emit('down', why);
      }
      return;
    }
    this.drainEvents();
    if (h.state === DpState.RUNNING && !this.replayed && !this.replaying) this.startReplay();
  }

  /** Hands ferryd's pending events to 'event' listeners (also called by the health watch). */
  drainEvents(): number {
    const chan = this.chan;
    if (!chan) return 0;
    try {
      return chan.drainEvents((ev) => this.emit('event', ev));
    } catch (e) {
      this.log.warn(`event ring: ${(e as Error).message}`);
      return 0;
    }
  }

  private note(problem: string): void {
    if (problem !== this.lastProblem) this.log.warn(problem);
    this.lastProblem = problem;
  }

  private tryAttach(): boolean {
    let seg: Segment;
    try {
      seg = attachSegment(this.shmName);
    } catch (e) {
      this.note(e instanceof AttachError ? e.message : `attach failed: ${(e as Error).message}`);
      return false;
    }
    this.seg = seg;
    const chan = new ControlChannel(seg, { timeoutMs: this.opts.requestTimeoutMs });
    this.chan = chan;
    // this ferryd's doorbell: requests wake it, and it says when answers are out
    this.bell?.close();
    const bell = new Doorbell(doorbellPath(this.shmName), () => chan.wake(), seg.identity.uid);
    this.bell = bell;
    this.bellWarned = false;
    chan.useDoorbell(bell);
    this.ringBell(bell);
    this.replayed = false;
    this.replaying = null;
    this.replayError = null;
    this.deadPid = 0;
    this.lastProblem = `ferryd on /${this.shmName} is not ready`;
    const { info, identity } = seg;
    this.log.info(
      `attached /${this.shmName}: ferryd pid ${info.pid}, ABI ${info.abiVersion} (ours ${ABI_VERSION}), ` +
      `${info.segmentSize} bytes, owner uid ${identity.uid}, mode ${identity.mode.toString(8)}, ` +
      `${info.nPorts} ports, ${info.nWorkers} workers, ${info.maxFlows} flow slots, state ${DpStateName[seg.header().state] ?? '?'}`);
    this.emit('attached', seg);
    return true;
  }

  private detach(reason: string): void {
    if (!this.seg) return;
    this.log.warn(`detaching from /${this.shmName}: ${reason}`);
    this.chan?.close(new FerrydDownError(`ferryd is not running: ${reason}`));
    this.bell?.close();
    this.bell = null;
    this.seg = null; // the mapping itself stays: never munmap
    this.chan = null;
    this.replayed = false;
    this.replaying = null;
    this.lastProblem = reason;
    this.emit('down', reason);
  }

  private startReplay(): void {
    const seg = this.seg!;
    const chan = this.chan!;
    const handler = this.replayHandler;
    const steps = [...this.replaySteps];
    let what = 'the flow table';
    const run = (async () => {
      for (const step of steps) {
        what = step.name;
        await step.fn(chan, seg);
      }
      what = 'the flow table';
      if (handler) await handler(chan, seg);
    })();
    this.replaying = run;
    run.then(
      () => {
        if (this.replaying !== run || this.chan !== chan) return;
        this.replaying = null;
        this.replayError = null;
        this.replayed = true;
        this.log.info(`ferryd pid ${seg.info.pid} is in the desired state`);
        this.emit('ready');
      },
      (e: Error) => {
        if (this.replaying !== run) return;
        this.replaying = null; // the next check retries
        this.replayError = `replaying ${what} to ferryd failed: ${e.message}`;
        this.log.warn(this.replayError);
      });
  }
}
