// Cluster mode's families: is etcd there, where the node is in its history, how it caught up.
import { Counter, Gauge, Registry } from 'prom-client';
import type { ClusterAgent } from './agent';

export function registerClusterMetrics(registry: Registry, agent: ClusterAgent): void {
  const registers = [registry];
  const gauge = (name: string, help: string, get: () => number): void => {
    const g: Gauge = new Gauge({ name, help, registers, collect: () => g.set(get()) });
  };
  gauge('ferry_cluster_etcd_up', '1 while etcd answers this node, 0 while it is out of reach (forwarding goes on)', () => (agent.isEtcdUp ? 1 : 0));
  gauge('ferry_cluster_registered', '1 while this node\'s registration lease is held', () => (agent.health().registered ? 1 : 0));
  gauge('ferry_cluster_revision', 'etcd revision this node has applied', () => Number(agent.view.revision));
  gauge('ferry_cluster_peers', 'Other nodes registered in the fleet (each a mesh tunnel)', () => agent.health().peers.length);
  gauge('ferry_cluster_desired_keys', 'Desired-state keys in etcd that apply to this node', () => agent.view.entries.size);
  const counter = (name: string, help: string, get: () => number): void => {
    const c: Counter = new Counter({ name, help, registers, collect: () => { c.reset(); c.inc(get()); } });
  };
  counter('ferry_cluster_watch_events_total', 'Changes received from the etcd watch', () => agent.counters.watchEvents);
  counter('ferry_cluster_full_resyncs_total', 'Full reads of the fleet\'s state (start, or the watched revision was compacted)', () => agent.counters.fullResyncs);
  counter('ferry_cluster_watch_resumes_total', 'Watches resumed from the last revision seen after etcd came back', () => agent.counters.watchResumes);
  counter('ferry_cluster_apply_errors_total', 'Desired-state changes this node could not apply', () => agent.counters.applyErrors);
  counter('ferry_cluster_write_conflicts_total', 'REST changes refused because another writer changed the key first', () => agent.storeStats?.conflicts ?? 0);
  counter('ferry_cluster_write_unavailable_total', 'REST changes refused because etcd was out of reach', () => agent.storeStats?.unavailable ?? 0);
}
