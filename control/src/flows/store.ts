// The desired flow state: every flow the service holds, replayed into each new ferryd.
// In memory for now; the interface is what a persistent store would implement.
import type { CompiledFlow } from './ofctl';

export interface StoredFlow extends CompiledFlow {
  /** ferryd's stats slot for the flow (from the FLOW_ADD response); null until installed. */
  slot: number | null;
  /** process.hrtime.bigint() when ferryd acknowledged the last install. */
  installedNs: bigint;
}

/** The listing order: table, then priority descending, then id. */
export function compareFlows(a: { table: number; priority: number; id: bigint; idHi?: number }, b: { table: number; priority: number; id: bigint; idHi?: number }): number {
  return a.table - b.table || b.priority - a.priority || ((a.idHi ?? 0) - (b.idHi ?? 0)) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

export class FlowStore {
  private readonly flows = new Map<bigint, StoredFlow>();
  private sorted: StoredFlow[] | null = null;

  get size(): number {
    return this.flows.size;
  }

  get(id: bigint): StoredFlow | undefined {
    return this.flows.get(id);
  }

  has(id: bigint): boolean {
    return this.flows.has(id);
  }

  /** Inserts or replaces; returns true if the id was new. */
  put(f: StoredFlow): boolean {
    const isNew = !this.flows.has(f.id);
    this.flows.set(f.id, f);
    this.sorted = null;
    return isNew;
  }

  delete(id: bigint): boolean {
    const had = this.flows.delete(id);
    if (had) this.sorted = null;
    return had;
  }

  clear(): void {
    this.flows.clear();
    this.sorted = null;
  }

  /** All flows in listing order (cached until the next change; do not modify). */
  all(): readonly StoredFlow[] {
    return (this.sorted ??= [...this.flows.values()].sort(compareFlows));
  }

  values(): IterableIterator<StoredFlow> {
    return this.flows.values();
  }
}
