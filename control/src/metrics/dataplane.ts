// Ferry's dataplane metric families beyond the original port/drop/ring set: worker cycles and
// bursts, EMC, recirculations, parse errors, flow-table lookups, port link/hw errors, heartbeat,
// and the connection tracker and IP reassembler.
// Every family reads the scrape's one snapshot through the `snapshot` callback.
import { Counter, Gauge, Registry } from 'prom-client';
import { CtInvalidReasonName, FragReasonName, ParseReasonName } from '../gen/proto';
import type { Snapshot, WorkerSnapshot, PortSnapshot, CtTotals } from '../shm/segment';

export const portLabel = (p: PortSnapshot): string => p.name || `port${p.port_id}`;

/** (index, label) of an enum's named values (RESERVED placeholders left out), names lower-cased. */
const reasons = (names: Record<number, string>): [number, string][] => Object.entries(names)
  .filter(([, name]) => !name.startsWith('RESERVED'))
  .map(([v, name]) => [Number(v), name.toLowerCase()]);

const PARSE_REASONS = reasons(ParseReasonName);
const CT_INVALID_REASONS = reasons(CtInvalidReasonName);
const FRAG_RESULTS = reasons(FragReasonName);

type WorkerCounter = [string, string, (w: WorkerSnapshot) => bigint];

const WORKER_COUNTERS: WorkerCounter[] = [
  ['ferry_worker_busy_cycles_total', 'TSC cycles a worker spent on loops that received packets', (w) => w.busy_cycles],
  ['ferry_worker_idle_cycles_total', 'TSC cycles a worker spent on empty polls', (w) => w.idle_cycles],
  ['ferry_worker_rx_bursts_total', 'Non-empty rx bursts a worker received', (w) => w.rx_bursts],
  ['ferry_worker_rx_packets_total', 'Packets a worker received (all its rx queues)', (w) => w.rx_packets],
  ['ferry_worker_recirculations_total', 'Pipeline passes after the first (ct(table=) re-entries)', (w) => w.recirculations],
  ['ferry_emc_hits_total', 'Packets whose pipeline result came from the worker\'s exact-match cache', (w) => w.emc_hits],
  ['ferry_emc_misses_total', 'Packets that missed the worker\'s exact-match cache', (w) => w.emc_misses],
  ['ferry_ct_packets_total', 'Packets a worker passed through the connection tracker', (w) => w.ct_packets],
  ['ferry_ct_created_total', 'Connections a worker committed to the tracker', (w) => w.ct_created],
  ['ferry_ct_limit_refused_total', 'Commits refused by the global or a zone connection limit', (w) => w.ct_limit_refused],
  ['ferry_ct_early_drops_total', 'Unreplied connections evicted to make room for new ones', (w) => w.ct_early_drops],
  ['ferry_ct_nat_created_total', 'Connections a worker committed with a translation (SNAT or DNAT)', (w) => w.ct_nat_created],
  ['ferry_ct_nat_exhausted_total', 'Commits refused because no free tuple was left in the nat() range; the packet continued untranslated', (w) => w.ct_nat_exhausted],
  ['ferry_ct_nat_rewrites_total', 'Packets whose headers a NAT translation rewrote', (w) => w.ct_nat_rewrites],
  ['ferry_ct_nat_rewrite_errors_total', 'Packets a NAT translation could not be written into (too short); their ct_state became inv|trk', (w) => w.ct_nat_rewrite_errors],
  ['ferry_ct_expectations_created_total', 'ALG expectations a worker set up (ct(commit,alg=ftp|tftp) saw a data connection announced)', (w) => w.ct_exp_created],
  ['ferry_ct_expectations_matched_total', 'New connections that matched an ALG expectation (ct_state rel)', (w) => w.ct_exp_matched],
];

const CT_HEADER_COUNTERS: [string, string, (c: CtTotals) => bigint][] = [
  ['ferry_ct_expired_total', 'Connections removed because their timeout passed', (c) => c.expired],
  ['ferry_ct_flushed_total', 'Connections removed by a flush (DELETE /v1/conntrack)', (c) => c.flushed],
  ['ferry_ct_events_dropped_total', 'Conntrack events lost because the event ring was full', (c) => c.eventsDropped],
  ['ferry_ct_sweeps_total', 'Cleanup passes over the whole connection table', (c) => c.sweeps],
  ['ferry_ct_expectations_expired_total', 'ALG expectations that timed out before a connection matched them', (c) => c.expExpired],
];

/** Registers the families on `registry`; `snapshot()` returns the scrape's snapshot (null: no ferryd). */
export function registerDataplaneMetrics(registry: Registry, snapshot: () => Snapshot | null): void {
  const registers = [registry];

  for (const [name, help, get] of WORKER_COUNTERS) {
    const c: Counter<'worker'> = new Counter({
      name, help, labelNames: ['worker'], registers,
      collect: () => {
        c.reset();
        for (const w of snapshot()?.workers ?? []) c.inc({ worker: String(w.worker) }, Number(get(w)));
      },
    });
  }

  const parseErrors: Counter<'worker' | 'reason'> = new Counter({
    name: 'ferry_parse_errors_total', help: 'Header problems the parser found, by worker and reason', labelNames: ['worker', 'reason'], registers,
    collect: () => {
      parseErrors.reset();
      for (const x of snapshot()?.workers ?? []) {
        for (const [r, reason] of PARSE_REASONS) parseErrors.inc({ worker: String(x.worker), reason }, Number(x.parse_errors[r] ?? 0n));
      }
    },
  });

  /** A per-worker counter family with one series per named index of an array field. */
  const workerArray = (name: string, help: string, label: 'reason' | 'result', names: [number, string][], get: (w: WorkerSnapshot) => bigint[]): void => {
    const c: Counter<'worker' | 'reason' | 'result'> = new Counter({
      name, help, labelNames: ['worker', label], registers,
      collect: () => {
        c.reset();
        for (const w of snapshot()?.workers ?? []) {
          const values = get(w);
          for (const [i, n] of names) c.inc({ worker: String(w.worker), [label]: n }, Number(values[i] ?? 0n));
        }
      },
    });
  };
  workerArray('ferry_ct_invalid_total', 'Packets the tracker marked invalid, by worker and reason', 'reason', CT_INVALID_REASONS, (w) => w.ct_invalid);
  workerArray('ferry_ip_fragments_total', 'IP fragments the reassembler handled, by worker and result', 'result', FRAG_RESULTS, (w) => w.frag);

  // header values: no sample at all without a segment, rather than a misleading 0
  const ctGauge = (name: string, help: string, get: (c: CtTotals) => bigint): void => {
    const g: Gauge = new Gauge({
      name, help, registers,
      collect: () => {
        const d = snapshot();
        if (d) g.set(Number(get(d.ct)));
        else g.remove({});
      },
    });
  };
  ctGauge('ferry_ct_connections', 'Connections in the tracker', (c) => c.conns);
  ctGauge('ferry_ct_connections_max', 'Global connection limit in force', (c) => c.maxConns);
  ctGauge('ferry_ct_expectations', 'ALG expectations waiting for their connection', (c) => c.expectations);
  // the leak check operators (and the soak) watch: at rest, in_use returns to its idle value
  const mbufs: Gauge<'state'> = new Gauge({
    name: 'ferry_mbufs', help: 'Packet buffers in ferryd\'s pools, by state (free includes per-lcore caches; in_use includes NIC rx rings)',
    labelNames: ['state'], registers,
    collect: () => {
      mbufs.reset();
      const d = snapshot();
      if (!d || d.mbufs.total === 0n) return;
      mbufs.set({ state: 'free' }, Number(d.mbufs.available));
      mbufs.set({ state: 'in_use' }, Number(d.mbufs.total - d.mbufs.available));
    },
  });
  for (const [name, help, get] of CT_HEADER_COUNTERS) {
    const c: Counter = new Counter({
      name, help, registers,
      collect: () => {
        c.reset();
        const d = snapshot();
        if (d) c.inc(Number(get(d.ct)));
        else c.remove({});
      },
    });
  }

  const lookups: Counter<'table' | 'result'> = new Counter({
    name: 'ferry_flow_table_lookups_total',
    help: 'Flow table lookups summed over workers, by result (tables that have seen lookups only)',
    labelNames: ['table', 'result'], registers,
    collect: () => {
      lookups.reset();
      for (const t of snapshot()?.tables ?? []) {
        lookups.inc({ table: String(t.table), result: 'match' }, Number(t.matches));
        lookups.inc({ table: String(t.table), result: 'miss' }, Number(t.misses));
      }
    },
  });

  const portCounter = (name: string, help: string, get: (p: PortSnapshot) => bigint): void => {
    const c: Counter<'port'> = new Counter({
      name, help, labelNames: ['port'], registers,
      collect: () => {
        c.reset();
        for (const p of snapshot()?.ports ?? []) c.inc({ port: portLabel(p) }, Number(get(p)));
      },
    });
  };
  portCounter('ferry_port_tx_errors_total', 'Packets the NIC failed to send (hw oerrors)', (p) => p.hw.oerrors);
  portCounter('ferry_port_rx_nombuf_total', 'Receive mbuf allocation failures (hw rx_nombuf)', (p) => p.hw.rx_nombuf);

  const portUp: Gauge<'port'> = new Gauge({
    name: 'ferry_port_up', help: '1 if the port\'s link is up', labelNames: ['port'], registers,
    collect: () => {
      portUp.reset();
      for (const p of snapshot()?.ports ?? []) portUp.set({ port: portLabel(p) }, p.link.up ? 1 : 0);
    },
  });

  const speed: Gauge<'port'> = new Gauge({
    name: 'ferry_port_speed_bytes', help: 'Link speed in bytes per second (ports reporting a speed only)', labelNames: ['port'], registers,
    collect: () => {
      speed.reset();
      for (const p of snapshot()?.ports ?? []) {
        if (p.link.speed_mbps > 0) speed.set({ port: portLabel(p) }, p.link.speed_mbps * 125000);
      }
    },
  });

  const hbAge: Gauge = new Gauge({
    name: 'ferry_heartbeat_age_seconds', help: 'Seconds since ferryd\'s main lcore last ticked its heartbeat', registers,
    collect: () => {
      hbAge.reset();
      const d = snapshot();
      if (!d) {
        hbAge.remove({}); // no segment: no sample rather than a misleading 0
        return;
      }
      const age = Number(d.takenNs - d.header.heartbeatNs) / 1e9;
      hbAge.set(Math.max(0, age));
    },
  });
}
