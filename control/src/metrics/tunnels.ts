// STT, ARP, neighbour and per-tunnel metric families, summed over workers. They read the tunnel
// counters once per scrape snapshot (cached by the snapshot object) so that every family of one
// scrape shows the same instant. No segment: no sample at all, rather than a misleading 0.
import { Counter, Gauge, Registry } from 'prom-client';
import { SttReasonName } from '../gen/proto';
import type { Segment, Snapshot } from '../shm/segment';
import { TunnelTotals, readTunnelTotals } from '../tunnels/stats';

export interface TunnelMetricsSource {
  /** The scrape's snapshot (null: no ferryd). */
  snapshot(): Snapshot | null;
  /** The segment that snapshot was taken of. */
  segment(): Segment | null;
  /** name -> port of every tunnel (null: no tunnel service). */
  tunnels(): [string, number][];
}

const STT_REASONS: [number, string][] = Object.entries(SttReasonName)
  .filter(([, name]) => !name.startsWith('RESERVED'))
  .map(([v, name]) => [Number(v), name.toLowerCase()]);

type Scalar = Exclude<keyof TunnelTotals, 'stt' | 'ports'>;

const COUNTERS: [string, string, Scalar][] = [
  ['ferry_stt_tx_frames_total', 'Inner frames STT encapsulated', 'stt_tx_frames'],
  ['ferry_stt_tx_segments_total', 'Outer STT segments sent (TSO super-packets handed to the NIC count once)', 'stt_tx_segments'],
  ['ferry_stt_rx_segments_total', 'Outer STT segments received for a local tunnel endpoint', 'stt_rx_segments'],
  ['ferry_stt_rx_frames_total', 'Inner frames reassembled and decapsulated', 'stt_rx_frames'],
  ['ferry_neighbour_misses_total', 'Encapsulations that found no resolved next hop (the frame was held)', 'neigh_misses'],
  ['ferry_neighbour_failures_total', 'Held frames dropped because the next hop did not answer ARP', 'neigh_failures'],
];

const GAUGES: [string, string, Scalar][] = [
  ['ferry_stt_reassembly_frames', 'Frames being reassembled from STT segments', 'stt_reasm_frames'],
  ['ferry_stt_reassembly_bytes', 'Mbuf memory the STT reassemblers hold, in bytes', 'stt_reasm_bytes'],
  ['ferry_neighbour_held_frames', 'Frames waiting for their next hop to be resolved', 'neigh_held'],
];

const ARP: [string, string, Scalar][] = [
  ['rx', 'request', 'arp_rx_requests'],
  ['tx', 'reply', 'arp_tx_replies'],
  ['tx', 'request', 'arp_tx_requests'],
  ['rx', 'reply', 'arp_rx_replies'],
];

const PER_TUNNEL: [string, string, 'rx_packets' | 'tx_packets' | 'rx_bytes' | 'tx_bytes'][] = [
  ['ferry_tunnel_rx_packets_total', 'Frames decapsulated from the tunnel into the pipeline', 'rx_packets'],
  ['ferry_tunnel_tx_packets_total', 'Frames encapsulated into the tunnel', 'tx_packets'],
  ['ferry_tunnel_rx_bytes_total', 'Bytes of inner frames decapsulated from the tunnel', 'rx_bytes'],
  ['ferry_tunnel_tx_bytes_total', 'Bytes of inner frames encapsulated into the tunnel', 'tx_bytes'],
];

export function registerTunnelMetrics(registry: Registry, src: TunnelMetricsSource): void {
  const registers = [registry];
  const cache = new WeakMap<Snapshot, TunnelTotals | null>();
  const totals = (): TunnelTotals | null => {
    const snap = src.snapshot();
    if (!snap) return null;
    if (!cache.has(snap)) {
      const seg = src.segment();
      cache.set(snap, seg ? readTunnelTotals(seg) : null);
    }
    return cache.get(snap)!;
  };

  for (const [name, help, field] of COUNTERS) {
    const c: Counter = new Counter({
      name, help, registers,
      collect: () => {
        c.reset();
        const t = totals();
        if (t) c.inc(Number(t[field]));
        else c.remove({});
      },
    });
  }
  for (const [name, help, field] of GAUGES) {
    const g: Gauge = new Gauge({
      name, help, registers,
      collect: () => {
        const t = totals();
        if (t) g.set(Number(t[field]));
        else g.remove({});
      },
    });
  }

  const errors: Counter<'reason'> = new Counter({
    name: 'ferry_stt_errors_total', help: 'STT encapsulation and decapsulation problems, by reason', labelNames: ['reason'], registers,
    collect: () => {
      errors.reset();
      const t = totals();
      if (t) for (const [i, reason] of STT_REASONS) errors.inc({ reason }, Number(t.stt[i] ?? 0n));
    },
  });

  const arp: Counter<'direction' | 'op'> = new Counter({
    name: 'ferry_arp_packets_total', help: 'ARP packets of the tunnels\' underlay, by direction and operation', labelNames: ['direction', 'op'], registers,
    collect: () => {
      arp.reset();
      const t = totals();
      if (t) for (const [direction, op, field] of ARP) arp.inc({ direction, op }, Number(t[field]));
    },
  });

  for (const [name, help, field] of PER_TUNNEL) {
    const c: Counter<'tunnel'> = new Counter({
      name, help, labelNames: ['tunnel'], registers,
      collect: () => {
        c.reset();
        const t = totals();
        if (!t) return;
        for (const [tunnel, port] of src.tunnels()) {
          const p = t.ports.get(port);
          if (p) c.inc({ tunnel }, Number(p[field]));
        }
      },
    });
  }
}
