// Shared by the observability tests: a real ferryd on two net_null ports (forwarding to each other)
// with a real ferry-control attached, and helpers around Prometheus text and promtool.
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { freePort, root, waitFor } from '../integration/harness';

const FERRYD = path.join(root, 'dataplane/build/ferryd');
const CONTROL = path.join(root, 'control/bin/ferry-control.js');

export function stopProc(p: ChildProcess, sig: NodeJS.Signals = 'SIGINT'): Promise<void> {
  if (p.exitCode != null || p.signalCode != null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => p.kill('SIGKILL'), 5000);
    p.on('exit', () => { clearTimeout(t); resolve(); });
    p.kill(sig);
  });
}

export interface FerryStack {
  api: string;
  /** host:port of ferry-control, for a scrape target */
  target: string;
  stop(): Promise<void>;
}

/** ferryd (net_null0 <-> net_null1 by two in_port flows) + ferry-control, healthy; stop() cleans up everything. */
export async function startFerryStack(tag: string): Promise<FerryStack> {
  const shm = `ferry-obs-${tag}-${process.pid}-${Math.floor(Math.random() * 1e6)}`;
  const fd = spawn(FERRYD, ['--no-huge', '-m', '256', '--no-pci', '--file-prefix', shm, '-l', '0,1',
    '--vdev', 'net_null0', '--vdev', 'net_null1', '--log-level=error', '--', '--shm-name', shm, '--pmd-sleep-us', '100'],
  { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  fd.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  fd.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const port = await freePort();
  const target = `127.0.0.1:${port}`;
  const api = `http://${target}`;
  const ctl = spawn('node', [CONTROL, '--shm-name', shm, '--listen', target], { stdio: ['ignore', 'ignore', 'pipe'] });
  const stop = async (): Promise<void> => {
    await stopProc(ctl, 'SIGTERM');
    await stopProc(fd);
    rmSync(`/dev/shm/${shm}`, { force: true });
    rmSync(`/var/run/dpdk/${shm}`, { recursive: true, force: true });
  };
  try {
    await waitFor('ferry-control healthy', async () => {
      if (fd.exitCode != null) throw new Error(`ferryd exited: ${log}`);
      try {
        return (await fetch(`${api}/health`)).status === 200 ? true : undefined;
      } catch {
        return undefined;
      }
    }, 20000);
    const r = await fetch(`${api}/v1/flows`, {
      method: 'POST', headers: { 'content-type': 'text/plain' },
      body: 'priority=1,in_port=0,actions=output:1\npriority=1,in_port=1,actions=output:0\n',
    });
    if (r.status >= 300) throw new Error(`adding flows: ${r.status} ${await r.text()}`);
  } catch (e) {
    await stop();
    throw e;
  }
  return { api, target, stop };
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
