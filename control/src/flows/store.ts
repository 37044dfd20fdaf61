// The desired flow state: every flow the service holds, replayed into each new ferryd.
// In memory for now; the interface is what a persistent store would implement.

export type FlowActionSpec = { type: 'output'; port: number } | { type: 'drop' };

export interface StoredFlow {
  id: bigint;
  table: number;
  priority: number;
  /** Resolved port id; undefined = any. */
  inPort?: number;
  action: FlowActionSpec;
  cookie: bigint;
  /** ferryd's stats slot for the flow (from the FLOW_ADD response); null until installed. */
  slot: number | null;
  /** process.hrtime.bigint() when ferryd acknowledged the last install. */
  installedNs: bigint;
}

export class FlowStore {
  private readonly flows = new Map<bigint, StoredFlow>();

  get size(): number {
    return this.flows.size;
  }

  get(id: bigint): StoredFlow | undefined {
    return this.flows.get(id);
  }

  /** Inserts or replaces; returns true if the id was new. */
  put(f: StoredFlow): boolean {
    const isNew = !this.flows.has(f.id);
    this.flows.set(f.id, f);
    return isNew;
  }

  delete(id: bigint): boolean {
    return this.flows.delete(id);
  }

  clear(): void {
    this.flows.clear();
  }

  /** All flows, by table then descending priority then id. */
  all(): StoredFlow[] {
    return [...this.flows.values()].sort((a, b) =>
      a.table - b.table || b.priority - a.priority || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }
}
