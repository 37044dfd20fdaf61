// Flows as ovs-ofctl dump-flows prints them (OVS ofputil_flow_stats_format / ofpacts_format).
import { DEFAULT_PRIORITY } from '../../gen/proto';
import type { Action, CtAction } from './actions';
import { describeMatch } from './describe';

export function formatAction(a: Action): string {
  switch (a.type) {
    case 'output': return a.port === 'in_port' ? 'IN_PORT' : `output:${a.port}`;
    case 'normal': return 'NORMAL';
    case 'controller':
      if (a.reason === undefined || a.reason === 'action') return `CONTROLLER:${a.max_len ?? 65535}`;
      return `controller(reason=${a.reason}${a.max_len !== undefined ? `,max_len=${a.max_len}` : ''})`;
    case 'goto_table': return `goto_table:${a.table}`;
    case 'resubmit':
      if (a.port !== undefined && a.table === undefined) return `resubmit:${a.port}`;
      return `resubmit(${a.port ?? ''},${a.table ?? ''})`;
    case 'set_field': return `set_field:${a.value}->${a.field}`;
    case 'push_vlan': return `push_vlan:${a.ethertype}`;
    case 'note': return `note:${a.data}`;
    case 'ct': return formatCt(a);
    default: return a.type; // pop_vlan, dec_ttl, ct_clear, notrack
  }
}

function formatCt(a: CtAction): string {
  const p: string[] = [];
  if (a.commit) p.push('commit');
  if (a.force) p.push('force');
  if (a.table !== undefined) p.push(`table=${a.table}`);
  if (a.zone !== undefined) p.push(`zone=${a.zone}`);
  if (a.nat) {
    const n = a.nat;
    if (n.type) {
      const q = [n.range !== undefined ? `${n.type}=${n.range}` : n.type];
      if (n.persistent) q.push('persistent');
      if (n.hash) q.push('hash');
      if (n.random) q.push('random');
      p.push(`nat(${q.join(',')})`);
    } else {
      p.push('nat');
    }
  }
  if (a.exec?.length) p.push(`exec(${a.exec.map(formatAction).join(',')})`);
  if (a.alg) p.push(`alg=${a.alg}`);
  return `ct(${p.join(',')})`;
}

export function formatActions(actions: readonly Action[]): string {
  return actions.length === 0 ? 'drop' : actions.map(formatAction).join(',');
}

/** What the formatter needs of a flow. */
export interface FlowLike {
  table: number;
  priority: number;
  cookie: bigint;
  idleTimeout: number;
  hardTimeout: number;
  flags: readonly string[];
  key: Uint8Array;
  mask: Uint8Array;
  actions: readonly Action[];
}

export interface LineStats {
  durationSec: number;
  packets: bigint;
  bytes: bigint;
}

/** ofp_print_duration: seconds, then milliseconds when there are any. */
export function formatDuration(sec: number): string {
  const ms = Math.max(0, Math.round(sec * 1000));
  const s = Math.floor(ms / 1000);
  const frac = ms % 1000;
  return frac ? `${s}.${String(frac).padStart(3, '0')}s` : `${s}s`;
}

/** The match part: "priority=N," (when not the default) then the fields. */
export function formatMatch(priority: number, key: Uint8Array, mask: Uint8Array): string {
  const parts = describeMatch(key, mask).text;
  if (priority !== DEFAULT_PRIORITY) parts.unshift(`priority=${priority}`);
  return parts.join(',');
}

/**
 * One flow as dump-flows prints it. With stats: " cookie=0x0, duration=1.5s, table=0, n_packets=0,
 * n_bytes=0, idle_timeout=10, priority=100,ip actions=drop"; without (add-flow syntax): cookie and
 * table only when not zero, no leading space.
 */
export function formatFlow(f: FlowLike, stats?: LineStats | null): string {
  let s = stats ? ' ' : '';
  if (stats || f.cookie !== 0n) s += `cookie=0x${f.cookie.toString(16)}, `;
  if (stats) s += `duration=${formatDuration(stats.durationSec)}, `;
  if (stats || f.table !== 0) s += `table=${f.table}, `;
  if (stats) s += `n_packets=${stats.packets}, n_bytes=${stats.bytes}, `;
  if (f.idleTimeout) s += `idle_timeout=${f.idleTimeout}, `;
  if (f.hardTimeout) s += `hard_timeout=${f.hardTimeout}, `;
  for (const fl of f.flags) s += `${fl} `; // ofp_print_flow_flags: space-separated
  const m = formatMatch(f.priority, f.key, f.mask);
  if (m) s += m + ' ';
  return s + 'actions=' + formatActions(f.actions);
}
