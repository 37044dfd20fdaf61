// Prometheus metrics: default process metrics plus Ferry's, all from ONE segment snapshot per scrape.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { DropReasonName } from './gen/proto';
import type { FerrydConnection } from './ferryd';
import type { Snapshot, PortSnapshot } from './shm/segment';
import type { FlowService } from './flows/service';
import type { PacketInLog } from './packet-ins';
import type { ConntrackService } from './conntrack/service';
import { portLabel, registerDataplaneMetrics } from './metrics/dataplane';
import { registerTunnelMetrics } from './metrics/tunnels';
import type { TunnelService } from './tunnels/service';

export function packageVersion(): string {
  try {
    const pkg = JSON.parse(fs.readFileSync(path.resolve(__dirname, '../../../package.json'), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

// Drop reasons worth a series: the named ones, not the RESERVED placeholders.
const DROP_REASONS: [number, string][] = Object.entries(DropReasonName)
  .filter(([, name]) => !name.startsWith('RESERVED'))
  .map(([v, name]) => [Number(v), name.toLowerCase()]);

const PORT_COUNTERS: [string, string, (p: PortSnapshot) => bigint][] = [
  ['ferry_port_rx_packets_total', 'Packets received on the port (sum over workers)', (p) => p.sw.rx_packets],
  ['ferry_port_rx_bytes_total', 'Bytes received on the port (sum over workers)', (p) => p.sw.rx_bytes],
  ['ferry_port_tx_packets_total', 'Packets sent on the port (sum over workers)', (p) => p.sw.tx_packets],
  ['ferry_port_tx_bytes_total', 'Bytes sent on the port (sum over workers)', (p) => p.sw.tx_bytes],
  ['ferry_port_rx_dropped_total', 'Packets received on the port and dropped by the pipeline', (p) => p.sw.rx_dropped],
  ['ferry_port_tx_dropped_total', 'Packets for the port the NIC did not take', (p) => p.sw.tx_dropped],
  ['ferry_port_rx_missed_total', 'Packets the NIC dropped for lack of rx descriptors (hw imissed)', (p) => p.hw.imissed],
  ['ferry_port_rx_errors_total', 'Erroneous packets received (hw ierrors)', (p) => p.hw.ierrors],
];

export class FerryMetrics {
  readonly registry = new Registry();
  private scrape: { snap?: Snapshot | null } | null = null;
  private last: Promise<unknown> = Promise.resolve();
  private readonly prevCycles = new Map<number, { busy: bigint; idle: bigint }>();

  constructor(private readonly ferryd: FerrydConnection, version = packageVersion(), extra: { flows?: FlowService; packetIns?: PacketInLog; conntrack?: ConntrackService; tunnels?: TunnelService } = {}) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });

    for (const [name, help, get] of PORT_COUNTERS) {
      const c: Counter<'port'> = new Counter({
        name, help, labelNames: ['port'], registers,
        collect: () => {
          c.reset();
          for (const p of this.snapshot()?.ports ?? []) c.inc({ port: portLabel(p) }, Number(get(p)));
        },
      });
    }

    const drops: Counter<'worker' | 'reason'> = new Counter({
      name: 'ferry_worker_drops_total', help: 'Packets a worker dropped, by reason', labelNames: ['worker', 'reason'], registers,
      collect: () => {
        drops.reset();
        for (const w of this.snapshot()?.workers ?? []) {
          for (const [r, reason] of DROP_REASONS) drops.inc({ worker: String(w.worker), reason }, Number(w.drops[r] ?? 0n));
        }
      },
    });

    const busy: Gauge<'worker'> = new Gauge({
      name: 'ferry_worker_busy_ratio', help: 'Share of a worker\'s cycles spent on packets since the previous scrape', labelNames: ['worker'], registers,
      collect: () => {
        busy.reset();
        for (const w of this.snapshot()?.workers ?? []) {
          const prev = this.prevCycles.get(w.worker);
          let db = w.busy_cycles - (prev?.busy ?? 0n);
          let di = w.idle_cycles - (prev?.idle ?? 0n);
          if (db < 0n || di < 0n) { db = w.busy_cycles; di = w.idle_cycles; } // ferryd restarted
          this.prevCycles.set(w.worker, { busy: w.busy_cycles, idle: w.idle_cycles });
          const total = db + di;
          busy.set({ worker: String(w.worker) }, total > 0n ? Number(db) / Number(total) : 0);
        }
      },
    });

    const flows: Gauge = new Gauge({
      name: 'ferry_flows', help: 'Flows installed in the dataplane', registers,
      collect: () => flows.set(this.snapshot()?.header.flowsActive ?? 0),
    });

    const up: Gauge = new Gauge({
      name: 'ferry_up', help: '1 if ferryd is healthy', registers,
      collect: () => up.set(this.ferryd.health().ok ? 1 : 0),
    });

    const ringFull: Counter<'ring'> = new Counter({
      name: 'ferry_ring_full_total', help: 'Times a ring\'s producer found it full', labelNames: ['ring'], registers,
      collect: () => {
        ringFull.reset();
        const r = this.snapshot()?.rings;
        if (r) for (const [ring, s] of Object.entries(r)) ringFull.inc({ ring }, s.full_events);
      },
    });

    const bellUp: Gauge = new Gauge({
      name: 'ferry_control_doorbell_up', help: '1 while ferry-control and ferryd wake each other through the doorbell (else the rings are polled)', registers,
      collect: () => bellUp.set(this.ferryd.doorbell?.live ? 1 : 0),
    });
    const rings: Counter<'direction'> = new Counter({
      name: 'ferry_control_doorbell_rings_total', help: 'Doorbell rings: sent to ferryd after requests, heard from it after answers (since attaching)',
      labelNames: ['direction'], registers,
      collect: () => {
        rings.reset();
        const b = this.ferryd.doorbell;
        rings.inc({ direction: 'sent' }, b?.sent ?? 0);
        rings.inc({ direction: 'heard' }, b?.heard ?? 0);
      },
    });

    const depth: Gauge<'ring'> = new Gauge({
      name: 'ferry_ring_depth', help: 'Records waiting in a ring', labelNames: ['ring'], registers,
      collect: () => {
        depth.reset();
        const r = this.snapshot()?.rings;
        if (r) for (const [ring, s] of Object.entries(r)) depth.set({ ring }, s.depth);
      },
    });

    const { flows: flowService, packetIns, conntrack } = extra;
    if (conntrack) {
      const subs: Gauge = new Gauge({
        name: 'ferry_ct_event_subscribers', help: 'Open GET /v1/conntrack/events streams', registers,
        collect: () => subs.set(conntrack.events.size),
      });
      const dropped: Counter = new Counter({
        name: 'ferry_ct_event_subscribers_dropped_total', help: 'Conntrack event streams cut off for falling behind', registers,
        collect: () => { dropped.reset(); dropped.inc(conntrack.events.counters.subscribersDropped); },
      });
    }
    if (packetIns) {
      const pi: Counter = new Counter({
        name: 'ferry_packet_ins_total', help: 'Packets ferryd sent to ferry-control (controller action)', registers,
        collect: () => { pi.reset(); pi.inc(packetIns.total); },
      });
    }
    if (flowService) {
      const removed: Counter = new Counter({
        name: 'ferry_flows_removed_total', help: 'Flows ferryd removed on a timeout', registers,
        collect: () => { removed.reset(); removed.inc(flowService.counters.flowsRemoved); },
      });
      const desired: Gauge = new Gauge({
        name: 'ferry_flows_desired', help: 'Flows in ferry-control\'s desired state', registers,
        collect: () => desired.set(flowService.store.size),
      });
    }

    registerDataplaneMetrics(this.registry, () => this.snapshot());
    registerTunnelMetrics(this.registry, {
      snapshot: () => this.snapshot(), segment: () => this.ferryd.segment, tunnels: () => extra.tunnels?.byName() ?? [],
    });

    const build = new Gauge({ name: 'ferry_build_info', help: 'ferry-control build', labelNames: ['version'], registers });
    build.set({ version }, 1);
  }

  /** The scrape's snapshot (taken by the first metric collected), or a fresh one outside a scrape. */
  private snapshot(): Snapshot | null {
    const take = (): Snapshot | null => this.ferryd.segment?.snapshot() ?? null;
    if (!this.scrape) return take();
    if (this.scrape.snap === undefined) this.scrape.snap = take();
    return this.scrape.snap;
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** One scrape: every Ferry metric is read from the same snapshot. */
  render(): Promise<string> {
    // Scrapes are serialised so that concurrent ones cannot mix snapshots.
    const run = this.last.then(async () => {
      this.scrape = {};
      try {
        return await this.registry.metrics();
      } finally {
        this.scrape = null;
      }
    });
    this.last = run.catch(() => undefined);
    return run;
  }
}
