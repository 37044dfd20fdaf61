// ferry-control restarts without losing or duplicating anything: every acknowledged change is in
// the state directory; a restarted service starts from it and reconciles the running ferryd in
// one atomic bundle (flows it already had keep their slots, a change never acknowledged goes).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { FakeFerryd, uniqueName } from './fake-ferryd';
import { FerrydConnection } from '../src/ferryd';
import { buildServer } from '../src/server';
import { FileStateStore } from '../src/state/store';
import { MsgFlag, MsgType, Status } from '../src/gen/proto';

interface Control {
  ferryd: FerrydConnection;
  app: FastifyInstance;
  state: FileStateStore;
  close(): Promise<void>;
}

/** A ferry-control on fake's segment with its desired state in dir. */
async function control(fake: FakeFerryd, dir: string): Promise<Control> {
  const state = await FileStateStore.open(dir);
  const ferryd = new FerrydConnection({ shmName: fake.name, healthIntervalMs: 50 });
  const app = await buildServer({ ferryd, state });
  ferryd.start();
  await ferryd.whenReady(3000);
  return {
    ferryd, app, state,
    async close() {
      ferryd.stop();
      await app.close();
      await state.close();
    },
  };
}

const get = async (c: Control, url: string): Promise<unknown> => {
  const r = await c.app.inject({ url });
  assert.equal(r.statusCode, 200, `${url}: ${r.body}`);
  return r.json();
};

/** Everything the API shows of the desired state (counters and ferryd's live fields left out). */
async function desired(c: Control): Promise<unknown> {
  const flows = (await get(c, '/v1/flows')) as { items: Record<string, unknown>[] };
  const tunnels = (await get(c, '/v1/tunnels')) as { items: Record<string, unknown>[] };
  const limits = (await get(c, '/v1/conntrack/limits')) as Record<string, unknown>;
  return {
    flows: flows.items.map(({ id, table, priority, cookie, match, actions }) => ({ id, table, priority, cookie, match, actions })),
    tunnels: tunnels.items.map(({ stats: _s, ...t }) => t),
    limits: { max_conns: limits.max_conns, default_zone_limit: limits.default_zone_limit, zones: (limits.zones as { zone: number; limit: number }[]).map(({ zone, limit }) => ({ zone, limit })) },
    policies: await get(c, '/v1/conntrack/timeout-policies'),
    ctOptions: await get(c, '/v1/conntrack/options'),
    sttOptions: await get(c, '/v1/stt/options'),
  };
}

test('a restarted ferry-control starts from the state directory and reconciles the running ferryd without a gap or a duplicate', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-desired-'));
  const fake = new FakeFerryd({ name: uniqueName('desired'), ports: ['eth0', 'eth1'] }).start();
  try {
    const c1 = await control(fake, dir);
    const send = async (method: 'POST' | 'PUT' | 'DELETE', url: string, payload: unknown, text = false): Promise<void> => {
      const r = await c1.app.inject({ method, url, payload: payload as string, headers: text ? { 'content-type': 'text/plain' } : {} });
      assert.ok(r.statusCode < 300, `${method} ${url}: ${r.statusCode} ${r.body}`);
    };
    await send('POST', '/v1/tunnels', { name: 'stt0', local_ip: '192.0.2.1/24', remote_ip: 'flow', key: 'flow', underlay_port: 1 });
    await send('POST', '/v1/tunnels', { name: 'stt1', local_ip: '192.0.2.1', remote_ip: '198.51.100.7', key: '0x10', underlay_port: 1 });
    await send('POST', '/v1/flows', 'table=0,priority=10,in_port=eth0,actions=output:stt0\n'
      + 'table=0,priority=10,in_port=stt0,actions=output:eth0\n'
      + 'table=1,priority=7,cookie=0xabcdef0123456789,tcp,nw_src=10.0.0.0/8,tp_dst=80,actions=ct(commit,zone=5,table=2)\n'
      + 'table=2,priority=1,actions=drop\n', true);
    await send('POST', '/v1/flows', { table: 3, priority: 9, match: { eth_type: '0x0800', ipv4_dst: '10.1.2.3' }, actions: [{ type: 'output', port: 'eth1' }] });
    await send('POST', '/v1/flows/delete', { match: 'table=2,priority=1', strict: true });
    await send('PUT', '/v1/neighbours/1/192.0.2.254', { mac: '02:00:00:00:00:fe' });
    await send('PUT', '/v1/conntrack/limits', { max_conns: 5000, default_zone_limit: 100, zones: [{ zone: 5, limit: 10 }] });
    await send('PUT', '/v1/conntrack/timeout-policies/5', { tcp_established: 3600, udp_single: 20 });
    await send('PUT', '/v1/conntrack/options', { tcp_seq_check: false });
    await send('PUT', '/v1/stt/options', { reasm_timeout_ms: 250, neigh_retries: 5 });
    const before = await desired(c1);
    assert.equal((before as { flows: unknown[] }).flows.length, 4);
    const slots = new Map([...fake.flows].map(([id, f]) => [id, f.slot]));

    // ferry-control dies (the fake ferryd, like ferryd, keeps its tables); meanwhile ferryd holds
    // a flow whose change was never acknowledged (applied, then the service died before saving it)
    await c1.close();
    fake.flows.set(0x1234n, { slot: 900, table: 9, priority: 1, cookie: 0n });
    const sent = fake.received.length;

    const c2 = await control(fake, dir);
    try {
      assert.deepEqual(await desired(c2), before, 'the same desired state, read back from disk');
      assert.deepEqual([...fake.flows.keys()].sort(), [...slots.keys()].sort(), 'ferryd holds exactly the desired flows: the stray one went, none doubled');
      for (const [id, slot] of slots) assert.equal(fake.flows.get(id)!.slot, slot, 'a flow ferryd kept keeps its slot (and counters)');
      const flowMsgs = fake.received.slice(sent).filter((r) => ([MsgType.FLOW_ADD, MsgType.FLOW_DEL, MsgType.FLOW_CLEAR, MsgType.BUNDLE_COMMIT] as number[]).includes(r.type));
      assert.ok(flowMsgs.every((r) => r.type === MsgType.BUNDLE_COMMIT || (r.flags & MsgFlag.IN_BUNDLE) !== 0), 'every flow change inside the one bundle: no moment with an empty table');
      assert.equal(flowMsgs.filter((r) => r.type === MsgType.BUNDLE_COMMIT).length, 1);
      assert.deepEqual([...fake.tun.tunnels.keys()].sort(), [2, 3]);
      assert.equal(fake.ct.maxConns, 5000);
      assert.equal(fake.tun.neighbours.size, 1);

      // a change after the restart is durable too, and a fresh ferryd gets it all
      const r = await c2.app.inject({ method: 'DELETE', url: '/v1/tunnels/stt1' });
      assert.equal(r.statusCode, 204);
      await fake.restart();
      await c2.ferryd.whenReady(3000);
      assert.equal(fake.flows.size, 4);
      assert.deepEqual([...fake.tun.tunnels.keys()], [2]);
    } finally {
      await c2.close();
    }
    const c3 = await control(fake, dir);
    try {
      assert.deepEqual(((await get(c3, '/v1/tunnels')) as { items: { name: string }[] }).items.map((t) => t.name), ['stt0']);
    } finally {
      await c3.close();
    }
  } finally {
    await fake.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a change ferryd refuses leaves the desired state on disk as it was', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-desired-'));
  const fake = new FakeFerryd({ name: uniqueName('desired-ref'), ports: ['eth0', 'eth1'] }).start();
  try {
    const c1 = await control(fake, dir);
    let r = await c1.app.inject({ method: 'POST', url: '/v1/flows', headers: { 'content-type': 'text/plain' }, payload: 'priority=1,in_port=0,actions=output:1\n' });
    assert.equal(r.statusCode, 200, r.body);
    fake.rejecter = (req) => (req.type === MsgType.FLOW_ADD ? { status: Status.ENOSPC, message: 'flow table full' } : null);
    r = await c1.app.inject({ method: 'POST', url: '/v1/flows', headers: { 'content-type': 'text/plain' }, payload: 'priority=2,in_port=0,actions=output:1\npriority=3,in_port=1,actions=output:0\n' });
    assert.ok(r.statusCode >= 400, r.body);
    fake.rejecter = null;
    await c1.close();
    const reread = await FileStateStore.open(dir);
    assert.equal(reread.entries('flows').size, 1, 'only the acknowledged flow');
    await reread.close();
  } finally {
    await fake.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
