// The control channel's doorbell (dataplane/ctl/doorbell.h): the rings in shared memory
// carry every message; a byte on ferryd's unix socket /dev/shm/<segment>.doorbell, beside
// the segment, only wakes the other side.
// ferry-control rings after it puts requests on the ring (ferryd wakes from its nap at
// once) and ferryd rings after it posts answers (ferry-control reads the response ring on
// the socket's 'data' event instead of polling it on a timer). Without a doorbell (an
// older ferryd, a refused connection) the channel polls as before: only latency is lost.
import fs from 'node:fs';
import net from 'node:net';

/** The doorbell of segment name, in dir (ferryd's: /dev/shm). */
export function doorbellPath(name: string, dir = '/dev/shm'): string {
  return `${dir}/${name}.doorbell`;
}
const ONE = Buffer.from([1]);
/** How long ferryd has to take a new connection in (its first ring) before the channel polls. */
const HELLO_TIMEOUT_MS = 2000;

export class Doorbell {
  private sock: net.Socket | null = null;
  /** ferryd took us in: its first ring arrived on this connection */
  private greeted = false;
  private ringQueued = false;
  private closed = false;
  /** A connect() in progress (resolves once; callers need not start another). */
  connecting: Promise<boolean> | null = null;
  /** Why the last connect() failed (for the log), or null. */
  problem: string | null = null;
  /** Rings heard from ferryd, and rings sent to it. */
  heard = 0;
  sent = 0;

  /**
   * onRing: ferryd has posted something on the rings (or the doorbell went down).
   * ownerUid: the uid the socket file must belong to (the segment's owner): /dev/shm is
   * writable by everyone, so a name there proves nothing by itself.
   */
  constructor(readonly path: string, private readonly onRing: () => void, private readonly ownerUid?: number) {}

  /** Connects (again) to ferryd's doorbell; resolves true once ferryd took us in, false otherwise. */
  connect(): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    if (this.connecting) return this.connecting;
    this.sock?.destroy();
    this.sock = null;
    this.greeted = false;
    this.problem = null;
    if (this.ownerUid !== undefined) {
      let st: fs.Stats;
      try {
        st = fs.lstatSync(this.path);
      } catch (e) {
        this.problem = `${this.path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
        return Promise.resolve(false);
      }
      if (!st.isSocket() || st.uid !== this.ownerUid) {
        this.problem = `${this.path} is not a socket of uid ${this.ownerUid} (the segment's owner): not used`;
        return Promise.resolve(false);
      }
    }
    const p = new Promise<boolean>((resolve) => {
      const sock = net.createConnection({ path: this.path });
      this.sock = sock;
      sock.unref(); // the doorbell alone keeps no process alive
      const timer = setTimeout(() => {
        this.problem = `ferryd did not take the doorbell connection in within ${HELLO_TIMEOUT_MS} ms`;
        sock.destroy();
      }, HELLO_TIMEOUT_MS);
      timer.unref();
      sock.on('data', () => {
        if (this.sock !== sock) return;
        if (!this.greeted) {
          this.greeted = true; // the first ring: taken in
          clearTimeout(timer);
          resolve(true);
          return;
        }
        this.heard++;
        this.onRing();
      });
      const down = (e?: Error): void => {
        clearTimeout(timer);
        if (e && !this.problem) this.problem = `${this.path}: ${e.message}`;
        if (this.sock === sock && this.greeted) {
          this.greeted = false;
          this.onRing(); // whoever waits on a ring goes back to polling
        }
        resolve(false);
      };
      sock.on('error', down);
      sock.on('close', () => down());
    });
    this.connecting = p;
    void p.then(() => { if (this.connecting === p) this.connecting = null; });
    return p;
  }

  /** Whether ferryd hears rings and sends its own (else the channel polls). */
  get live(): boolean {
    return this.greeted;
  }

  /** Wakes ferryd: once per turn of the event loop, however many requests were put, and
   * not while an earlier ring is still unread (ferryd will read the rings anyway). */
  ring(): void {
    if (!this.greeted || this.ringQueued) return;
    this.ringQueued = true;
    queueMicrotask(() => {
      this.ringQueued = false;
      if (this.greeted && this.sock && this.sock.writableLength === 0) {
        this.sock.write(ONE);
        this.sent++;
      }
    });
  }

  close(): void {
    this.closed = true;
    this.greeted = false;
    this.sock?.destroy();
    this.sock = null;
  }
}
