// ferryd's STT, ARP and neighbour counters and the tunnel ports' counters, read from worker_stats
// and summed over workers (single-writer u64s, atomic loads, as shm/stats.ts reads the others).
import { MAX_PORTS, STT_REASONS, WORKER_STATS } from '../gen/proto';
import type { PortCounters, Segment } from '../shm/segment';
import { addWorkerPort, zeroPortCounters } from '../shm/stats';

const WS = WORKER_STATS.fields;

export interface TunnelTotals {
  stt_tx_frames: bigint;
  stt_tx_segments: bigint;
  stt_rx_segments: bigint;
  stt_rx_frames: bigint;
  /** gauges */
  stt_reasm_frames: bigint;
  stt_reasm_bytes: bigint;
  /** indexed by SttReason */
  stt: bigint[];
  arp_rx_requests: bigint;
  arp_tx_replies: bigint;
  arp_tx_requests: bigint;
  arp_rx_replies: bigint;
  neigh_misses: bigint;
  neigh_failures: bigint;
  /** gauge */
  neigh_held: bigint;
  /** worker_stats.ports[p] summed, for p = n_ports..MAX_PORTS-1 (the tunnel ports) */
  ports: Map<number, PortCounters>;
}

const SCALARS = [
  'stt_tx_frames', 'stt_tx_segments', 'stt_rx_segments', 'stt_rx_frames', 'stt_reasm_frames', 'stt_reasm_bytes',
  'arp_rx_requests', 'arp_tx_replies', 'arp_tx_requests', 'arp_rx_replies', 'neigh_misses', 'neigh_failures', 'neigh_held',
] as const;

export function readTunnelTotals(seg: Segment): TunnelTotals {
  const { nWorkers, nPorts, workerStatsOff } = seg.info;
  const t = { stt: new Array<bigint>(STT_REASONS).fill(0n), ports: new Map<number, PortCounters>() } as TunnelTotals;
  for (const k of SCALARS) t[k] = 0n;
  for (let p = nPorts; p < MAX_PORTS; p++) t.ports.set(p, zeroPortCounters());
  for (let w = 0; w < nWorkers; w++) {
    const base = workerStatsOff + w * WORKER_STATS.size;
    for (const k of SCALARS) t[k] += seg.loadU64(base + WS[k].offset);
    for (let i = 0; i < STT_REASONS; i++) t.stt[i]! += seg.loadU64(base + WS.stt.offset + i * 8);
    for (const [p, c] of t.ports) addWorkerPort(seg, w, p, c);
  }
  return t;
}

/** One tunnel port's counters, summed over workers. */
export function readTunnelPort(seg: Segment, port: number): PortCounters {
  const c = zeroPortCounters();
  if (port < 0 || port >= MAX_PORTS) return c;
  for (let w = 0; w < seg.info.nWorkers; w++) addWorkerPort(seg, w, port, c);
  return c;
}
