// Shared by the observability tests: a real ferryd on two net_null ports (forwarding to each other)
// with a real ferry-control attached, and helpers around Prometheus text and promtool.
import { spawnSync } from 'node:child_process';
import { NullFerry, startNullFerry } from '../integration/harness';

export { stopProc } from '../integration/harness';
export type { NullFerry as FerryStack } from '../integration/harness';

/** ferryd (net_null0 <-> net_null1 by two in_port flows) + ferry-control, healthy; stop() cleans up everything. */
export function startFerryStack(tag: string): Promise<NullFerry> {
  return startNullFerry({ tag: `obs-${tag}`, extra: ['--pmd-sleep-us', '100'],
    flows: 'priority=1,in_port=0,actions=output:1\npriority=1,in_port=1,actions=output:0\n' });
}

/** Only the ferry_* families of an exposition (prom-client's default metrics trip promtool's lint). */
export function ferryOnly(text: string): string {
  return text.split('\n').filter((l) => {
    const m = /^(?:# (?:HELP|TYPE) )?([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(l);
    return m !== null && m[1]!.startsWith('ferry_');
  }).join('\n') + '\n';
}

/** Names of the metric families with at least one sample. */
export function sampledNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const l of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{| )/.exec(l);
    if (m) names.add(m[1]!);
  }
  return names;
}

export function promtool(args: string[], input?: string): { status: number | null; out: string } {
  const r = spawnSync('promtool', args, { input, encoding: 'utf8' });
  if (r.error) throw r.error;
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}
