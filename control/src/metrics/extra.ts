// Counters the shared Snapshot does not carry: the rest of worker_stats (EMC, recirculations,
// packet-ins, parse errors) and table_stats[worker][table]. Read in the same pass as the scrape's
// Snapshot (see FerryMetrics.snapshot()), with the same 64-bit atomic loads; single writers.
import { N_TABLES, SHM_HEADER, TABLE_STATS, WORKER_STATS, ParseReason } from '../gen/proto';
import type { Segment } from '../shm/segment';

const WS = WORKER_STATS.fields;
const TS = TABLE_STATS.fields;
const N_PARSE_REASONS = Object.keys(ParseReason).length;

export interface WorkerExtra {
  worker: number;
  emc_hits: bigint;
  emc_misses: bigint;
  recirculations: bigint;
  packet_ins: bigint;
  /** Indexed by ParseReason. */
  parse_errors: bigint[];
}

export interface TableTotals {
  table: number;
  /** Summed over workers. */
  lookups: bigint;
  matches: bigint;
  misses: bigint;
}

export interface ExtraStats {
  workers: WorkerExtra[];
  /** Only tables with lookups > 0, ascending by table id. */
  tables: TableTotals[];
}

/** table_stats_off from the header, or null when it does not describe a region inside the segment. */
function tableStatsOff(seg: Segment): number | null {
  const off = Number(seg.loadU64(SHM_HEADER.fields.table_stats_off.offset));
  const len = seg.info.nWorkers * N_TABLES * TABLE_STATS.size;
  if (!Number.isSafeInteger(off) || off % 64 !== 0 || off < SHM_HEADER.size || off + len > seg.size) return null;
  return off;
}

export function readExtraStats(seg: Segment): ExtraStats {
  const { info } = seg;
  const workers: WorkerExtra[] = [];
  for (let w = 0; w < info.nWorkers; w++) {
    const base = info.workerStatsOff + w * WORKER_STATS.size;
    const parse_errors: bigint[] = [];
    for (let r = 0; r < N_PARSE_REASONS; r++) parse_errors.push(seg.loadU64(base + WS.parse_errors.offset + r * 8));
    workers.push({
      worker: w,
      emc_hits: seg.loadU64(base + WS.emc_hits.offset),
      emc_misses: seg.loadU64(base + WS.emc_misses.offset),
      recirculations: seg.loadU64(base + WS.recirculations.offset),
      packet_ins: seg.loadU64(base + WS.packet_ins.offset),
      parse_errors,
    });
  }

  const tables: TableTotals[] = [];
  const off = tableStatsOff(seg);
  if (off !== null) {
    for (let t = 0; t < N_TABLES; t++) {
      const sum: TableTotals = { table: t, lookups: 0n, matches: 0n, misses: 0n };
      for (let w = 0; w < info.nWorkers; w++) {
        const at = off + (w * N_TABLES + t) * TABLE_STATS.size;
        sum.lookups += seg.loadU64(at + TS.lookups.offset);
        sum.matches += seg.loadU64(at + TS.matches.offset);
        sum.misses += seg.loadU64(at + TS.misses.offset);
      }
      if (sum.lookups > 0n) tables.push(sum);
    }
  }
  return { workers, tables };
}
