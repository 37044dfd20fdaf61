// The control channel's doorbell (dataplane/ctl/doorbell.h): the rings in shared memory
// carry every message; a byte on ferryd's unix socket /dev/shm/<segment>.doorbell, beside
// the segment, only wakes the other side.
// ferry-control rings after it puts requests on the ring (ferryd wakes from its nap at
// once) and ferryd rings after it posts answers (ferry-control reads the response ring on
// the socket's 'data' event instead of polling it on a timer). Without a doorbell (an
// older ferryd, a refused connection) the channel polls as before: only latency is lost.
import net from 'node:net';

/** The doorbell of segment name, in dir (ferryd's: /dev/shm). */
export function doorbellPath(name: string, dir = '/dev/shm'): string {
  return `${dir}/${name}.doorbell`;
}
const ONE = Buffer.from([1]);

export class Doorbell {
  private sock: net.Socket | null = null;
  private connected = false;
  private ringQueued = false;
  private closed = false;
  /** Rings heard from ferryd, and rings sent to it. */
  heard = 0;
  sent = 0;

  /** onRing: ferryd has posted something on the rings (or the doorbell went down). */
  constructor(readonly path: string, private readonly onRing: () => void) {}

  /** Connects (again) to ferryd's doorbell; resolves true once connected, false if there is none. */
  connect(): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    this.sock?.destroy();
    this.connected = false;
    return new Promise((resolve) => {
      const sock = net.createConnection({ path: this.path });
      this.sock = sock;
      sock.unref(); // the doorbell alone keeps no process alive
      sock.on('connect', () => {
        if (this.sock !== sock) return;
        this.connected = true;
        resolve(true);
      });
      sock.on('data', () => {
        this.heard++;
        this.onRing();
      });
      const down = (): void => {
        if (this.sock === sock && this.connected) {
          this.connected = false;
          this.onRing(); // whoever waits on a ring goes back to polling
        }
        resolve(false);
      };
      sock.on('error', down);
      sock.on('close', down);
    });
  }

  /** Whether ferryd will hear rings and send its own (else the channel polls). */
  get live(): boolean {
    return this.connected;
  }

  /** Wakes ferryd: once per turn of the event loop, however many requests were put. */
  ring(): void {
    if (!this.connected || this.ringQueued) return;
    this.ringQueued = true;
    queueMicrotask(() => {
      this.ringQueued = false;
      if (this.connected && this.sock) {
        this.sock.write(ONE);
        this.sent++;
      }
    });
  }

  close(): void {
    this.closed = true;
    this.connected = false;
    this.sock?.destroy();
    this.sock = null;
  }
}
