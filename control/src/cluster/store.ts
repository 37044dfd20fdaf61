// The desired-state store of a node in cluster mode. A change made through this node's REST API
// is written to etcd in one transaction that checks every key's revision is the one this node last
// saw (one writer per key, nothing overwritten unseen), and cached locally; a change that came from
// etcd (the watch) is only cached. The local cache (a FileStateStore) is what a restarted
// ferry-control starts from when etcd is out of reach.
//
// The services apply a request to ferryd before they commit it: when the etcd write fails (etcd
// out of reach, or someone else changed a key first) the request fails, and onRejected() asks the
// agent to bring the node back to what etcd holds, through the same reconcile path as the watch.
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Etcd3 } from 'etcd3';
import { HttpProblem } from '../problem';
import { expandChanges } from '../state/store';
import type { DesiredStateStore, StateChanges, StateOrigin, StateRecords, StateValue } from '../state/store';
import type { ClusterKeys, Scope } from './keys';
import type { ClusterView } from './view';

/** The scope a request writes to (?scope=node: this node only; default all). */
export const requestScope = new AsyncLocalStorage<Scope>();

export class ClusterStore implements DesiredStateStore {
  readonly where: string;
  /** Called after an etcd write failed, with the reason (the agent resyncs the node). */
  onRejected: (why: string) => void = () => undefined;
  readonly stats = { commits: 0, conflicts: 0, unavailable: 0 };

  constructor(
    private readonly client: Etcd3,
    private readonly keys: ClusterKeys,
    private readonly view: ClusterView,
    private readonly cache: DesiredStateStore,
    private readonly writeTimeoutMs = 3000,
  ) {
    this.where = `etcd ${keys.prefix} (cached in ${cache.where})`;
  }

  entries(ns: string): ReadonlyMap<string, StateValue> {
    return this.cache.entries(ns);
  }

  own(ns: string, records: StateRecords): void {
    this.cache.own?.(ns, records);
  }

  async commit(changes: StateChanges, origin: StateOrigin = 'request'): Promise<void> {
    if (origin === 'cluster' || changes.length === 0) return this.cache.commit(changes, origin);
    const scope = requestScope.getStore() ?? 'all';
    const puts: { k: string; v: string; was?: string }[] = [];
    const dels: { k: string; was: string }[] = [];
    /** text: the value's JSON, null for a delete */
    const plan = (ns: string, key: string, text: string | null): void => {
      // a key a node-scoped entry already holds stays node-scoped; a delete goes wherever it is
      const atNode = this.view.get('node', ns, key);
      const atAll = this.view.get('all', ns, key);
      if (text === null) {
        for (const [s, e] of [['node', atNode], ['all', atAll]] as const) if (e) dels.push({ k: this.keys.desired(s, ns, key), was: e.modRevision });
        return;
      }
      const s: Scope = atNode ? 'node' : scope;
      puts.push({ k: this.keys.desired(s, ns, key), v: text, was: (s === 'node' ? atNode : atAll)?.modRevision });
    };
    for (const c of expandChanges(changes)) {
      if (c.key === null) {
        for (const s of ['node', 'all'] as const) for (const key of this.view.keysOf(s, c.ns)) plan(c.ns, key, null);
      } else {
        plan(c.ns, c.key, c.text ?? (c.value === null ? null : JSON.stringify(c.value)));
      }
    }
    // the last change of a key wins (a bundle may add then delete the same flow)
    const last = new Map<string, { k: string; v?: string; was?: string }>();
    for (const p of puts) last.set(p.k, p);
    for (const d of dels) last.set(d.k, { k: d.k, was: d.was });
    let txn = null as ReturnType<Etcd3['if']> | null;
    const ops = [];
    for (const op of last.values()) {
      const cmp: [string, 'Mod' | 'Create', '==', string | number] = op.was !== undefined ? [op.k, 'Mod', '==', op.was] : [op.k, 'Create', '==', 0];
      txn = txn ? txn.and(...cmp) : this.client.if(...cmp);
      ops.push(op.v !== undefined ? this.client.put(op.k).value(op.v) : this.client.delete().key(op.k));
    }
    if (!txn) return this.cache.commit(changes, origin);
    let res;
    try {
      res = await txn.then(...ops).options({ deadline: Date.now() + this.writeTimeoutMs }).commit();
    } catch (e) {
      this.stats.unavailable++;
      const why = `etcd is out of reach (${(e as Error).message}); the change was not made`;
      this.onRejected(why);
      throw new HttpProblem(503, why, undefined, 'urn:ferry:problem:etcd-unavailable', 'The fleet store is unavailable', { 'retry-after': '1' });
    }
    if (!res.succeeded) {
      this.stats.conflicts++;
      const why = 'another writer changed this desired state since this node last saw it; the change was not made (retry)';
      this.onRejected(why);
      throw new HttpProblem(409, why, undefined, 'urn:ferry:problem:conflict', 'Conflict');
    }
    this.stats.commits++;
    const rev = String(res.header.revision);
    for (const op of last.values()) this.view.apply(op.k, op.v ?? null, rev);
    await this.cache.commit(changes, origin);
  }

  async close(): Promise<void> {
    await this.cache.close();
  }
}
