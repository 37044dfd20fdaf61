import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { harness, Harness } from './helpers';
import { flowId, formatFlowId } from '../src/flows/flow-id';

let h: Harness;
before(async () => {
  h = await harness('flows', { ports: ['eth0', 'eth1', 'tap0'] });
});
after(async () => h.close());

const post = (payload: unknown) => h.app.inject({ method: 'POST', url: '/v1/flows', payload: payload as object });

test('POST /v1/flows adds a flow: 201, Location, deterministic id, ferryd programmed', async () => {
  const r = await post({ priority: 100, match: { in_port: 'eth0' }, actions: [{ type: 'output', port: 'eth1' }], cookie: '0x2a' });
  assert.equal(r.statusCode, 201, r.body);
  const f = r.json();
  assert.match(f.id, /^[0-9a-f]{16}$/);
  assert.equal(f.id, formatFlowId(flowId({ table: 0, priority: 100, inPort: 0 })));
  assert.equal(r.headers.location, `/v1/flows/${f.id}`);
  assert.deepEqual(f.match, { in_port: 0 });
  assert.deepEqual(f.actions, [{ type: 'output', port: 1 }]);
  assert.equal(f.table, 0);
  assert.equal(f.cookie, '0x000000000000002a');
  const sent = h.fake.received.filter((x) => x.flowAdd).at(-1)!.flowAdd!;
  assert.deepEqual(sent, { id: BigInt('0x' + f.id), priority: 100, table_id: 0, action: 1, in_port: 0, out_port: 1 });
  assert.ok(h.fake.flows.has(BigInt('0x' + f.id)));
});

test('the same (table, priority, match) replaces the flow: 200, same id', async () => {
  const a = await post({ priority: 200, match: { in_port: 1 }, actions: [{ type: 'drop' }] });
  assert.equal(a.statusCode, 201);
  const b = await post({ priority: 200, match: { in_port: 'eth1' }, actions: [{ type: 'output', port: 2 }] });
  assert.equal(b.statusCode, 200, b.body);
  assert.equal(b.json().id, a.json().id);
  assert.deepEqual(b.json().actions, [{ type: 'output', port: 2 }]);
  const c = await post({ priority: 201, match: { in_port: 1 }, actions: [{ type: 'drop' }] });
  assert.equal(c.statusCode, 201);
  assert.notEqual(c.json().id, a.json().id, 'another priority is another flow');
  const d = await post({ priority: 200, match: { in_port: 0 }, actions: [{ type: 'drop' }] });
  assert.equal(d.statusCode, 201);
  assert.notEqual(d.json().id, a.json().id, 'another match is another flow');
  const e = await post({ table: 1, priority: 200, match: { in_port: 1 }, actions: [{ type: 'drop' }] });
  assert.equal(e.statusCode, 201);
  assert.notEqual(e.json().id, a.json().id, 'another table is another flow');
  const all = (await h.app.inject({ url: '/v1/flows' })).json().items;
  assert.equal(all.filter((f: { id: string }) => f.id === a.json().id).length, 1);
});

test('GET /v1/flows lists flows with counters summed over workers (as strings)', async () => {
  const r = await post({ table: 3, priority: 5, match: {}, actions: [{ type: 'drop' }] });
  assert.equal(r.statusCode, 201);
  const id = BigInt('0x' + r.json().id);
  const slot = h.fake.flows.get(id)!;
  const now = process.hrtime.bigint();
  h.fake.setFlowStats(0, slot, 10n, 1500n, now - 2_000_000_000n);
  h.fake.setFlowStats(1, slot, 2n ** 53n, 64n, now - 500_000_000n);
  const list = (await h.app.inject({ url: '/v1/flows' })).json().items as Record<string, unknown>[];
  const f = list.find((x) => x.id === r.json().id)!;
  assert.equal(f.n_packets, (2n ** 53n + 10n).toString());
  assert.equal(f.n_bytes, '1564');
  assert.equal(f.table, 3);
  assert.deepEqual(f.match, {});
  assert.ok(typeof f.duration_sec === 'number' && f.duration_sec >= 0);
  assert.ok(typeof f.idle_age_sec === 'number' && f.idle_age_sec >= 0.4 && f.idle_age_sec < 5, String(f.idle_age_sec));
  const one = await h.app.inject({ url: `/v1/flows/${r.json().id}` });
  assert.equal(one.statusCode, 200);
  assert.equal(one.json().n_bytes, '1564');
  const never = list.find((x) => x.id !== r.json().id)!;
  assert.equal(never.idle_age_sec, null, 'never hit');
});

test('DELETE /v1/flows/:id removes it from ferryd and the store; unknown id is a 404 problem', async () => {
  const r = await post({ priority: 7, match: {}, actions: [{ type: 'drop' }] });
  const id = r.json().id;
  const d = await h.app.inject({ method: 'DELETE', url: `/v1/flows/${id}` });
  assert.equal(d.statusCode, 204);
  assert.ok(!h.fake.flows.has(BigInt('0x' + id)));
  const again = await h.app.inject({ method: 'DELETE', url: `/v1/flows/${id}` });
  assert.equal(again.statusCode, 404);
  assert.match(String(again.headers['content-type']), /^application\/problem\+json/);
  assert.equal(again.json().status, 404);
  assert.match(again.json().detail, new RegExp(id));
  assert.equal((await h.app.inject({ url: `/v1/flows/${id}` })).statusCode, 404);
});

function problem(r: { statusCode: number; headers: Record<string, unknown>; json(): any }, pointer: string, detail: RegExp): void {
  assert.equal(r.statusCode, 400, JSON.stringify(r.json()));
  assert.match(String(r.headers['content-type']), /^application\/problem\+json/);
  const p = r.json();
  assert.equal(p.status, 400);
  assert.equal(p.instance, '/v1/flows');
  assert.ok(p.type && p.title);
  assert.equal(p.errors[0].pointer, pointer, JSON.stringify(p));
  assert.match(p.detail, detail);
}

test('bad bodies are 400 problems naming the field', async () => {
  problem(await post({ match: {}, actions: [{ type: 'drop' }], bogus: 1 }), '/bogus', /\/bogus.*not a known property/);
  problem(await post({ match: { in_port: 0, vlan: 3 }, actions: [{ type: 'drop' }] }), '/match/vlan', /\/match\/vlan/);
  problem(await post({ match: {}, actions: [{ type: 'output', port: 'eth9' }] }), '/actions/0/port', /port "eth9" does not exist.*eth0/);
  problem(await post({ match: {}, actions: [{ type: 'output', port: 17 }] }), '/actions/0/port', /port 17 does not exist/);
  problem(await post({ match: { in_port: 'nope' }, actions: [{ type: 'drop' }] }), '/match/in_port', /port "nope" does not exist/);
  problem(await post({ priority: 'high', match: {}, actions: [{ type: 'drop' }] }), '/priority', /\/priority must be integer/);
  problem(await post({ priority: 70000, match: {}, actions: [{ type: 'drop' }] }), '/priority', /\/priority/);
  problem(await post({ match: {} }), '/actions', /\/actions is required/);
  problem(await post({ match: {}, actions: [{ type: 'output' }] }), '/actions/0/port', /required for an output action/);
  problem(await post({ match: {}, actions: [{ type: 'flood' }] }), '/actions/0/type', /\/actions\/0\/type/);
  problem(await post({ match: {}, actions: [{ type: 'drop' }], cookie: '0x1ffffffffffffffff' }), '/cookie', /64-bit/);
  const bad = await h.app.inject({ url: '/v1/flows/xyz' });
  assert.equal(bad.statusCode, 400);
  assert.equal(bad.json().errors[0].pointer, ':id');
  const nf = await h.app.inject({ url: '/v1/nothing' });
  assert.equal(nf.statusCode, 404);
  assert.match(String(nf.headers['content-type']), /^application\/problem\+json/);
});

test('DELETE /v1/flows clears ferryd and the store', async () => {
  await post({ priority: 9, match: {}, actions: [{ type: 'drop' }] });
  const r = await h.app.inject({ method: 'DELETE', url: '/v1/flows' });
  assert.equal(r.statusCode, 204);
  assert.equal(h.fake.flows.size, 0);
  assert.deepEqual((await h.app.inject({ url: '/v1/flows' })).json(), { items: [] });
});
