// One change at a time, each made durable before its caller hears back: the discipline the
// flow, conntrack and tunnel services share (ferryd keeps one open bundle; the desired state
// must never acknowledge what a crash would lose).
import type { StateOrigin } from './store';

export class ChangeQueue {
  private tail: Promise<unknown> = Promise.resolve();

  /** durable: commits what a change did; it runs after a failed change too (it may have changed things). */
  constructor(private readonly durable: (origin: StateOrigin) => Promise<void>) {}

  /** Runs fn after every earlier change, then makes what it changed durable before resolving. */
  run<T>(fn: () => Promise<T>, origin: StateOrigin = 'request'): Promise<T> {
    const run = this.tail.then(fn, fn).then(
      async (v) => {
        await this.durable(origin);
        return v;
      },
      async (e: unknown) => {
        await this.durable(origin);
        throw e;
      },
    );
    this.tail = run.catch(() => undefined);
    return run;
  }
}
