// The desired flow state: every flow the service holds, replayed into each new ferryd. It
// records its changes for the durable desired-state store (state/store.ts), which the flow
// service commits before it acknowledges a request.
import type { CompiledFlow } from './ofctl';
import type { StateChange, StateValue } from '../state/store';
import { FLOWS_NS, flowKey, flowRecordText } from './persist';

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

/**
 * The desired-state change of a flow added or replaced: its JSON text is made when the store
 * writes it, and its value only if a store asks (the file store does not), so a bulk load holds
 * neither for long. The flow itself does not change once compiled (slot and time are not in it).
 */
class FlowSet {
  readonly ns = FLOWS_NS;
  readonly key: string;
  constructor(private readonly flow: StoredFlow) {
    this.key = flowKey(flow.id);
  }
  get text(): string {
    return flowRecordText(this.flow);
  }
  get value(): StateValue {
    return JSON.parse(this.text) as StateValue;
  }
}

export class FlowStore {
  private readonly flows = new Map<bigint, StoredFlow>();
  private sorted: StoredFlow[] | null = null;
  private changes: StateChange[] = [];

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
    this.changes.push(new FlowSet(f));
    return isNew;
  }

  delete(id: bigint): boolean {
    const had = this.flows.delete(id);
    if (had) {
      this.sorted = null;
      this.changes.push({ ns: FLOWS_NS, key: flowKey(id), value: null });
    }
    return had;
  }

  clear(): void {
    this.flows.clear();
    this.sorted = null;
    this.changes = [{ ns: FLOWS_NS, key: null, value: null }];
  }

  /** Loads a flow from the durable state (not a change). */
  restore(f: StoredFlow): void {
    this.flows.set(f.id, f);
    this.sorted = null;
  }

  /** The changes since the last call, for the durable store. */
  takeChanges(): StateChange[] {
    const c = this.changes;
    this.changes = [];
    return c;
  }

  /** All flows in listing order (cached until the next change; do not modify). */
  all(): readonly StoredFlow[] {
    return (this.sorted ??= [...this.flows.values()].sort(compareFlows));
  }

  values(): IterableIterator<StoredFlow> {
    return this.flows.values();
  }
}
