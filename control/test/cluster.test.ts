// Cluster mode against a real etcd (one member, on loopback) and two fake ferryds: registration and
// the mesh it makes, REST writes going through etcd to every node, node-scoped writes, and what a
// node does while etcd is out of reach (keeps what it has, refuses and undoes writes, catches up).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { FakeFerryd, uniqueName } from './fake-ferryd';
import { until } from './helpers';
import { FerrydConnection } from '../src/ferryd';
import { buildServer } from '../src/server';
import { MemoryStateStore } from '../src/state/store';

const ETCD = '/usr/bin/etcd';
const skip = spawnSync(ETCD, ['--version']).error ? 'etcd not installed (scripts/install-deps.sh installs etcd-server)' : false;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      srv.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

class Etcd {
  proc: ChildProcess | null = null;
  log = '';
  constructor(readonly dir: string, readonly client: number, readonly peer: number) {}
  get url(): string { return `http://127.0.0.1:${this.client}`; }
  start(): void {
    this.proc = spawn(ETCD, ['--name', 'm0', '--data-dir', this.dir, '--listen-client-urls', this.url, '--advertise-client-urls', this.url,
      '--listen-peer-urls', `http://127.0.0.1:${this.peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${this.peer}`,
      '--initial-cluster', `m0=http://127.0.0.1:${this.peer}`, '--heartbeat-interval', '50', '--election-timeout', '500'], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.proc.stderr!.on('data', (d: Buffer) => { this.log = (this.log + d.toString()).slice(-4000); });
  }
  async healthy(): Promise<void> {
    await until(async () => {
      try {
        return (await fetch(`${this.url}/health`)).ok;
      } catch {
        return false;
      }
    }, 15000, `etcd healthy: ${this.log}`);
  }
  async stop(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode != null || p.signalCode != null) return;
    const gone = new Promise((r) => p.on('exit', r));
    p.kill('SIGKILL');
    await gone;
  }
}

interface Node { fake: FakeFerryd; ferryd: FerrydConnection; app: FastifyInstance; close(): Promise<void> }

/** A TCP relay to etcd that the test can cut and restore (a node losing etcd while others keep it). */
class Relay {
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();
  constructor(readonly port: number, readonly target: number) {}
  get url(): string { return `http://127.0.0.1:${this.port}`; }
  async open(): Promise<void> {
    this.server = net.createServer((c) => {
      const u = net.connect(this.target, '127.0.0.1');
      for (const s of [c, u]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => s.destroy());
      }
      c.pipe(u);
      u.pipe(c);
    });
    await new Promise<void>((r) => this.server!.listen(this.port, '127.0.0.1', () => r()));
  }
  async cut(): Promise<void> {
    const s = this.server;
    this.server = null;
    for (const x of this.sockets) x.destroy();
    if (s) await new Promise((r) => s.close(r));
  }
}

async function node(id: string, ip: string, etcd: Etcd | { url: string }, prefix: string): Promise<Node> {
  const fake = new FakeFerryd({ name: uniqueName(`cl-${id}`), ports: ['vm', 'underlay'] }).start();
  const ferryd = new FerrydConnection({ shmName: fake.name, healthIntervalMs: 50 });
  const app = await buildServer({
    ferryd, state: new MemoryStateStore(), logger: process.env.FERRY_TEST_LOG ? { level: 'info' } : false,
    cluster: { endpoints: [etcd.url], prefix, nodeId: id, tunnelIp: ip, tunnelPlen: 24, underlayPort: 1, meshKey: 'flow', leaseTtl: 2 },
  });
  ferryd.start();
  await app.ready();
  return {
    fake, ferryd, app,
    async close() {
      ferryd.stop();
      await app.close();
      await fake.stop();
    },
  };
}

const flowsOf = async (n: Node): Promise<string[]> =>
  ((await n.app.inject({ url: '/v1/flows' })).json() as { items: { text: string }[] }).items.map((f) => f.text.replace(/^.*?priority=/, 'priority=')).sort();

test('two nodes in cluster mode: a mesh from the registrations, one write reaching both, node scope, etcd lost and back', { skip }, async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-etcd-'));
  const etcd = new Etcd(dir, await freePort(), await freePort());
  etcd.start();
  const nodes: Node[] = [];
  try {
    await etcd.healthy();
    const prefix = `/ferry-test-${process.pid}`;
    const a = await node('a', '192.0.2.1', etcd, prefix);
    nodes.push(a);
    const b = await node('b', '192.0.2.2', etcd, prefix);
    nodes.push(b);

    // each registered, each has a tunnel to the other and a static neighbour for its underlay MAC
    const tunnelsOf = (n: Node) => [...n.fake.tun.tunnels.values()];
    await until(() => tunnelsOf(a).length === 1 && tunnelsOf(b).length === 1, 8000, 'mesh tunnels').catch(async (e: Error) => {
      throw new Error(`${e.message}: ${(await a.app.inject({ url: '/health' })).body} TUNNELS ${(await a.app.inject({ url: '/v1/tunnels' })).body} ${(await a.app.inject({ url: '/metrics' })).body.split('\n').filter((l) => l.startsWith('ferry_cluster')).join(' ')}`);
    });
    assert.deepEqual(tunnelsOf(a)[0]!.remote_ip, [192, 0, 2, 2]);
    assert.deepEqual(tunnelsOf(b)[0]!.remote_ip, [192, 0, 2, 1]);
    assert.equal(a.fake.tun.neighbours.size, 1);
    const health = (await a.app.inject({ url: '/health' })).json();
    assert.equal(health.cluster.etcd, 'up');
    assert.deepEqual(health.cluster.peers, ['b']);
    const listed = (await a.app.inject({ url: '/v1/tunnels' })).json().items.map((t: { name: string }) => t.name);
    assert.deepEqual(listed, ['peer-b']);

    // a flow set written once on a reaches b (through etcd), and ferryd on both
    let r = await a.app.inject({ method: 'POST', url: '/v1/flows', headers: { 'content-type': 'text/plain' }, payload: 'priority=10,in_port=0,actions=normal\npriority=9,in_port=1,actions=drop\n' });
    assert.equal(r.statusCode, 200, r.body);
    await until(async () => (await flowsOf(b)).length === 2, 5000, 'flows on b');
    assert.deepEqual(await flowsOf(b), await flowsOf(a));
    assert.equal(b.fake.flows.size, 2);
    // deleted on b: gone on a
    const id = (await b.app.inject({ url: '/v1/flows' })).json().items.find((f: { priority: number }) => f.priority === 9).id;
    assert.equal((await b.app.inject({ method: 'DELETE', url: `/v1/flows/${id}` })).statusCode, 204);
    await until(() => a.fake.flows.size === 1, 5000, 'delete reaches a');
    // node scope: only a
    r = await a.app.inject({ method: 'POST', url: '/v1/flows?scope=node', headers: { 'content-type': 'text/plain' }, payload: 'priority=20,in_port=1,actions=output:0\n' });
    assert.equal(r.statusCode, 200, r.body);
    await new Promise((res) => setTimeout(res, 300));
    assert.equal(a.fake.flows.size, 2);
    assert.equal(b.fake.flows.size, 1, 'a node-scoped flow stays on its node');
    // conntrack settings travel too
    r = await a.app.inject({ method: 'PUT', url: '/v1/conntrack/limits', payload: { max_conns: 777 } });
    assert.equal(r.statusCode, 200, r.body);
    await until(() => b.fake.ct.maxConns === 777, 5000, 'limit on b');

    // etcd gone: forwarding state stays, health says so, a write is refused and undone
    await etcd.stop();
    await until(async () => (await a.app.inject({ url: '/health' })).json().cluster?.etcd === 'down', 5000, 'etcd down in /health');
    const h = (await a.app.inject({ url: '/health' })).json();
    assert.equal(h.status, 'degraded');
    assert.equal(a.fake.flows.size, 2, 'a keeps its flows');
    r = await a.app.inject({ method: 'POST', url: '/v1/flows', headers: { 'content-type': 'text/plain' }, payload: 'priority=30,in_port=0,actions=drop\n' });
    assert.equal(r.statusCode, 503, r.body);
    await until(() => a.fake.flows.size === 2, 5000, 'the refused flow undone on a');
    const m = (await a.app.inject({ url: '/metrics' })).body;
    assert.match(m, /^ferry_cluster_etcd_up 0$/m);

    // etcd back: the watch resumes; a write on b reaches a
    etcd.start();
    await etcd.healthy();
    await until(async () => (await a.app.inject({ url: '/health' })).json().cluster?.etcd === 'up', 8000, 'etcd up again');
    r = await b.app.inject({ method: 'POST', url: '/v1/flows', headers: { 'content-type': 'text/plain' }, payload: 'priority=40,in_port=0,actions=drop\n' });
    assert.equal(r.statusCode, 200, r.body);
    await until(() => a.fake.flows.size === 3, 8000, 'a catches up after etcd returned').catch(async (e: Error) => {
      throw new Error(`${e.message}: ${(await a.app.inject({ url: '/health' })).body} ${(await a.app.inject({ url: '/metrics' })).body.split('\n').filter((l) => l.startsWith('ferry_cluster')).join(' ')} flows ${a.fake.flows.size}`);
    });

    // b leaves (a clean stop revokes its lease): a's mesh loses peer-b
    await b.close();
    nodes.splice(1, 1);
    await until(() => tunnelsOf(a).length === 0, 8000, 'peer-b removed from a');
  } finally {
    for (const n of nodes) await n.close().catch(() => undefined);
    await etcd.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a node that missed compacted history reads everything again when etcd returns', { skip }, async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-etcd-'));
  const etcd = new Etcd(dir, await freePort(), await freePort());
  etcd.start();
  const relay = new Relay(await freePort(), etcd.client);
  const nodes: Node[] = [];
  try {
    await etcd.healthy();
    await relay.open();
    const prefix = `/ferry-test-c-${process.pid}`;
    const a = await node('a', '192.0.2.1', { url: relay.url }, prefix); // a reaches etcd through the relay
    nodes.push(a);
    const b = await node('b', '192.0.2.2', etcd, prefix);
    nodes.push(b);
    await until(async () => (await a.app.inject({ url: '/health' })).json().cluster?.peers?.length === 1, 8000, 'a sees b');
    let r = await b.app.inject({ method: 'POST', url: '/v1/flows', headers: { 'content-type': 'text/plain' }, payload: 'priority=1,in_port=0,actions=drop\n' });
    assert.equal(r.statusCode, 200, r.body);
    await until(() => a.fake.flows.size === 1, 5000, 'first flow on a');

    await relay.cut();
    await until(async () => (await a.app.inject({ url: '/health' })).json().cluster?.etcd === 'down', 5000, 'a lost etcd');
    for (let i = 2; i <= 4; i++) {
      r = await b.app.inject({ method: 'POST', url: '/v1/flows', headers: { 'content-type': 'text/plain' }, payload: `priority=${i},in_port=0,actions=drop\n` });
      assert.equal(r.statusCode, 200, r.body);
    }
    // etcd forgets the history a missed
    const st = (await (await fetch(`${etcd.url}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key: Buffer.from('x').toString('base64') }) })).json()) as { header: { revision: string } };
    const c = await fetch(`${etcd.url}/v3/kv/compaction`, { method: 'POST', body: JSON.stringify({ revision: st.header.revision, physical: true }) });
    assert.equal(c.status, 200, await c.text());
    const resyncs = Number(/^ferry_cluster_full_resyncs_total (\d+)$/m.exec((await a.app.inject({ url: '/metrics' })).body)?.[1]);

    await relay.open();
    await until(() => a.fake.flows.size === 4, 10000, 'a caught up by a full resync').catch(async (e: Error) => {
      throw new Error(`${e.message}: flows ${a.fake.flows.size} ${(await a.app.inject({ url: '/health' })).body} ${(await a.app.inject({ url: '/metrics' })).body.split('\n').filter((l) => l.startsWith('ferry_cluster')).join(' ')}`);
    });
    const after = Number(/^ferry_cluster_full_resyncs_total (\d+)$/m.exec((await a.app.inject({ url: '/metrics' })).body)?.[1]);
    assert.equal(after, resyncs + 1, 'one full resync');
    assert.equal((await a.app.inject({ url: '/health' })).json().status, 'ok');
  } finally {
    for (const n of nodes) await n.close().catch(() => undefined);
    await relay.cut();
    await etcd.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

