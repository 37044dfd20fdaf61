// What this node knows of the fleet's store: every desired-state key that applies to it (all/ and
// its own node/ scope) with the revision it was last changed at, and the registered nodes. Fed by
// a full read and then the watch; read by the reconciler (merged per namespace) and by the store
// (the revisions its transactions check).
import type { ClusterKeys, NodeRecord, Scope } from './keys';

export interface ViewEntry {
  scope: Scope;
  ns: string;
  key: string;
  value: unknown;
  modRevision: string;
}

export class ClusterView {
  /** full etcd key -> entry (only keys that apply to this node) */
  readonly entries = new Map<string, ViewEntry>();
  readonly nodes = new Map<string, NodeRecord>();
  /** the revision the view is at */
  revision = '0';

  constructor(private readonly keys: ClusterKeys) {}

  clear(): void {
    this.entries.clear();
    this.nodes.clear();
  }

  /**
   * Applies a put (value: the JSON text) or a delete (null) of an etcd key; returns the namespace
   * it changed, 'nodes' for membership, or null (not ours, or unreadable: counted by the caller).
   */
  apply(k: string, text: string | null, modRevision: string): { changed: string | null; bad?: string } {
    const node = this.keys.parseNode(k);
    if (node !== null) {
      if (text === null) this.nodes.delete(node);
      else {
        try {
          const rec = JSON.parse(text) as NodeRecord;
          if (typeof rec.tunnel_ip !== 'string' || typeof rec.underlay_mac !== 'string') throw new Error('tunnel_ip and underlay_mac are required');
          this.nodes.set(node, { ...rec, node_id: node });
        } catch (e) {
          return { changed: null, bad: `${k}: ${(e as Error).message}` };
        }
      }
      return { changed: 'nodes' };
    }
    const d = this.keys.parseDesired(k);
    if (!d || (d.scope === 'node' && d.node !== this.keys.nodeId)) return { changed: null };
    if (text === null) {
      this.entries.delete(k);
      return { changed: d.ns };
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (e) {
      return { changed: null, bad: `${k}: not JSON (${(e as Error).message})` };
    }
    this.entries.set(k, { scope: d.scope, ns: d.ns, key: d.key, value, modRevision });
    return { changed: d.ns };
  }

  /** One namespace as this node wants it: all/ entries, overridden key by key by node/ ones. */
  merged(ns: string): Map<string, unknown> {
    const out = new Map<string, unknown>();
    for (const e of this.entries.values()) if (e.ns === ns && e.scope === 'all') out.set(e.key, e.value);
    for (const e of this.entries.values()) if (e.ns === ns && e.scope === 'node') out.set(e.key, e.value);
    return out;
  }

  /** The entry of (scope, ns, key), if the view has it. */
  get(scope: Scope, ns: string, key: string): ViewEntry | undefined {
    return this.entries.get(this.keys.desired(scope, ns, key));
  }

  /** Keys of a namespace in a scope. */
  keysOf(scope: Scope, ns: string): string[] {
    return [...this.entries.values()].filter((e) => e.scope === scope && e.ns === ns).map((e) => e.key);
  }
}
