// The flows REST API against a fake ferryd: JSON and ovs-ofctl text, bundles, listing, deletes, events.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { harness, Harness, until } from './helpers';
import { FLOW_ADD, FLOW_KEY, MsgFlag, MsgType, Status } from '../src/gen/proto';
import { flowId, formatFlowId } from '../src/flows/flow-id';
import { compileFlow, parseFlowText } from '../src/flows/ofctl';

let h: Harness;
before(async () => {
  h = await harness('flows', { ports: ['eth0', 'eth1', 'tap0'] });
});
after(async () => h.close());

type Res = { statusCode: number; headers: Record<string, unknown>; body: string; json(): any };
const post = (payload: unknown, url = '/v1/flows'): Promise<Res> => h.app.inject({ method: 'POST', url, payload: payload as object });
const postText = (text: string, url = '/v1/flows', method: 'POST' | 'PUT' = 'POST'): Promise<Res> =>
  h.app.inject({ method, url, payload: text, headers: { 'content-type': 'text/plain' } });
const get = (url: string): Promise<Res> => h.app.inject({ url });
const idOf = (line: string): string => formatFlowId(compileFlow(parseFlowText(line), (r) => (typeof r === 'number' ? r : ['eth0', 'eth1', 'tap0'].indexOf(r))).id);
const keyBytes = (body: Buffer, field: keyof typeof FLOW_KEY.fields, len: number, mask = false): string => {
  const o = (mask ? FLOW_ADD.fields.mask.offset : FLOW_ADD.fields.key.offset) + FLOW_KEY.fields[field].offset;
  return body.subarray(o, o + len).toString('hex');
};
const clearAll = async (): Promise<void> => {
  assert.equal((await h.app.inject({ method: 'DELETE', url: '/v1/flows' })).statusCode, 200);
};
function problem(r: Res, status: number, pointer: string, detail: RegExp): void {
  assert.equal(r.statusCode, status, r.body);
  assert.match(String(r.headers['content-type']), /^application\/problem\+json/);
  const p = r.json();
  assert.equal(p.status, status);
  assert.equal(p.errors?.[0]?.pointer, pointer, r.body);
  assert.match(p.detail, detail);
}

test('POST one JSON flow: 201, Location, id from (table, priority, match), ferryd gets key/mask bytes', async () => {
  await clearAll();
  const r = await post({ priority: 100, cookie: '0x2a', match: { in_port: 'eth0', eth_type: '0x0800', nw_src: '10.1.2.0/24' }, actions: [{ type: 'output', port: 'eth1' }] });
  assert.equal(r.statusCode, 201, r.body);
  const f = r.json();
  assert.equal(f.id, idOf('priority=100,in_port=0,ip,nw_src=10.1.2.0/24 actions=drop'));
  assert.equal(r.headers.location, `/v1/flows/${f.id}`);
  assert.deepEqual(f.match, { eth_type: '0x0800', in_port: 0, ip_src: '10.1.2.0/24' });
  assert.deepEqual(f.actions, [{ type: 'output', port: 1 }]);
  assert.equal(f.cookie, '0x2a');
  assert.equal(f.text, 'cookie=0x2a, priority=100,ip,in_port=0,nw_src=10.1.2.0/24 actions=output:1');
  const sent = h.fake.received.filter((x) => x.type === MsgType.FLOW_ADD).at(-1)!;
  assert.equal(sent.flags, 0, 'a single flow is a plain request');
  assert.equal(sent.id, BigInt('0x' + f.id));
  assert.equal(keyBytes(sent.body!, 'nw_src', 4), '0a010200');
  assert.equal(keyBytes(sent.body!, 'nw_src', 4, true), 'ffffff00');
  assert.equal(keyBytes(sent.body!, 'in_port', 4), '00000000');
  assert.equal(sent.body!.readBigUInt64LE(FLOW_ADD.fields.cookie.offset), 0x2an);
  assert.ok(h.fake.flows.has(BigInt('0x' + f.id)));

  const again = await post({ priority: 100, match: { ip: true, in_port: 0, ip_src: '10.1.2.7/255.255.255.0' }, actions: [] });
  assert.equal(again.statusCode, 200, 'same (table, priority, match) replaces');
  assert.equal(again.json().id, f.id);
  assert.deepEqual(again.json().actions, []);
  assert.match(again.json().text, / actions=drop$/);
});

test('bad JSON flows are 400 problems naming the field', async () => {
  problem(await post({ match: {}, actions: [], bogus: 1 }), 400, '/bogus', /bogus.*not a known property/);
  problem(await post({ match: { tcp_dst: 80 }, actions: [] }), 400, '/match/tcp_dst', /^tcp_dst: requires ip_proto=6 \(add "tcp"\)$/);
  problem(await post({ match: { vlan: 3 }, actions: [] }), 400, '/match/vlan', /vlan: unknown field/);
  problem(await post({ match: { in_port: 9 }, actions: [] }), 400, '/match/in_port', /port 9 does not exist on ferryd; its ports are: 0 \(eth0\)/);
  problem(await post({ match: {}, actions: [{ type: 'output', port: 'eth9' }] }), 400, '/actions/0/port', /port "eth9" does not exist/);
  problem(await post({ match: {}, actions: [{ type: 'output' }] }), 400, '/actions/0/port', /required for an output action/);
  problem(await post({ match: {}, actions: [{ type: 'flood' }] }), 400, '/actions/0/type', /unknown action type "flood"/);
  problem(await post({ priority: 'high', match: {}, actions: [] }), 400, '/priority', /\/priority must be integer/);
  problem(await post({ match: {}, actions: [], cookie: '0x1ffffffffffffffff' }), 400, '/cookie', /64-bit/);
  problem(await post({ match: {} }), 400, '/actions', /\/actions is required/);
  problem(await post({ table: 2, match: {}, actions: [{ type: 'goto_table', table: 1 }] }), 400, '/actions/0/table', /after this flow's table 2/);
  problem(await post({ match: { ip: true }, actions: [{ type: 'set_field', field: 'tcp_dst', value: 80 }] }), 400, '/actions/0', /set_field tcp_dst: requires ip_proto=6/);
  const bad = await get('/v1/flows/xyz');
  assert.equal(bad.statusCode, 400);
  assert.equal(bad.json().errors[0].pointer, ':id');
});

test('text bulk: one bundle, {added, replaced}; a bad line names line and token and sends nothing', async () => {
  await clearAll();
  const before = h.fake.received.length;
  const text = '# web\n\npriority=10,tcp,tp_dst=80 actions=output:1\npriority=10,tcp,tp_dst=443 actions=output:1   # tls\ntable=1,ip actions=drop\n';
  const r = await postText(text);
  assert.equal(r.statusCode, 200, r.body);
  assert.deepEqual(r.json(), { added: 3, replaced: 0 });
  const sent = h.fake.received.slice(before);
  assert.deepEqual(sent.map((x) => [x.type, x.flags]), [
    [MsgType.FLOW_ADD, MsgFlag.IN_BUNDLE], [MsgType.FLOW_ADD, MsgFlag.IN_BUNDLE], [MsgType.FLOW_ADD, MsgFlag.IN_BUNDLE], [MsgType.BUNDLE_COMMIT, 0]]);
  assert.equal(h.fake.flows.size, 3);
  const again = await postText('priority=10,tcp,tcp_dst=80 actions=output:2\npriority=11,ip actions=drop');
  assert.deepEqual(again.json(), { added: 1, replaced: 1 });

  const n = h.fake.received.length;
  problem(await postText('ip actions=drop\n\n# x\ntcp_dst=80 actions=drop\n'), 400, '/lines/4/match/tcp_dst', /^line 4: tcp_dst: requires ip_proto=6 \(add "tcp"\)$/);
  problem(await postText('ip actions=output:1,goto_table:0'), 400, '/lines/1/actions/1/table', /^line 1: actions\[1\]: goto_table:0/);
  problem(await postText('ip actions=output:7'), 400, '/lines/1/actions/0/port', /port 7 does not exist/);
  assert.equal(h.fake.received.length, n, 'nothing reached ferryd');
  problem(await post([{ match: {}, actions: [] }, { match: { nw_src: '1.1.1.1' }, actions: [] }]), 400, '/1/match/nw_src', /^flows\[1\]: nw_src: requires eth_type=0x0800/);
});

test('a bulk ferryd refuses is all or nothing: aborted, nothing installed, state unchanged', async () => {
  await clearAll();
  await postText('priority=1,ip actions=drop\npriority=2,ip actions=drop');
  const fakeBefore = [...h.fake.flows.keys()].sort();
  const listBefore = (await get('/v1/flows')).json().items.map((f: { id: string }) => f.id);
  const aborted = h.fake.bundleStats.aborted;
  const victim = BigInt('0x' + idOf('priority=13,ip actions=drop'));
  h.fake.rejecter = (r) => (r.id === victim && r.type === MsgType.FLOW_ADD ? { status: Status.ENOPORT, message: 'actions[0]: output port 1 does not exist' } : null);
  try {
    const r = await post([
      { priority: 11, match: { ip: true }, actions: [] },
      { priority: 2, match: { ip: true }, actions: [{ type: 'output', port: 1 }] },
      { priority: 13, match: { ip: true }, actions: [{ type: 'output', port: 1 }] },
      { priority: 14, match: { ip: true }, actions: [] },
    ]);
    problem(r, 400, '/2/actions/0', /^flows\[2\]: ferryd refused it: ENOPORT: actions\[0\]: output port 1 does not exist$/);
    assert.equal(r.json().type, 'urn:ferry:problem:ferryd-enoport');
  } finally {
    h.fake.rejecter = null;
  }
  assert.equal(h.fake.bundleStats.aborted, aborted + 1);
  assert.deepEqual([...h.fake.flows.keys()].sort(), fakeBefore, "ferryd's table is unchanged");
  assert.deepEqual((await get('/v1/flows')).json().items.map((f: { id: string }) => f.id), listBefore, 'the desired state is unchanged');
  assert.equal(h.fake.staged.length, 0);

  // and if ferryd says EBUNDLE at commit, the same
  h.fake.respondMode = 'manual';
  const pending = postText('priority=20,ip actions=drop');
  await until(() => (h.fake.serve(), h.fake.received.at(-1)?.type === MsgType.FLOW_ADD), 2000, 'staged');
  const add = h.fake.received.at(-1)!;
  h.fake.respond(add.reqId, Status.OK, 5);
  await until(() => (h.fake.serve(), h.fake.received.at(-1)?.type === MsgType.BUNDLE_COMMIT), 2000, 'commit');
  h.fake.respond(h.fake.received.at(-1)!.reqId, Status.EBUNDLE, 0, 'staged request 1 failed');
  h.fake.respondMode = 'auto';
  h.fake.staged = [];
  const r = await pending;
  assert.equal(r.statusCode, 400, r.body);
  assert.match(r.json().detail, /EBUNDLE: staged request 1 failed/);
  assert.deepEqual((await get('/v1/flows')).json().items.map((f: { id: string }) => f.id), listBefore);
});

test('GET /v1/flows: filters, stable order, cursor pages, counters, ofctl text', async () => {
  await clearAll();
  const lines = [
    'table=0,priority=5,cookie=0x11,ip,nw_src=1.1.1.1 actions=drop',
    'table=0,priority=9,cookie=0x12,tcp,tp_dst=22 actions=output:2',
    'table=1,priority=9,cookie=0x21,udp actions=NORMAL',
    'table=1,priority=9,cookie=0x22,tcp actions=drop',
    'table=0,priority=9,cookie=0x13,tcp,tp_dst=23 actions=drop',
    'table=2,cookie=0x31,arp actions=CONTROLLER:64',
  ];
  assert.equal((await postText(lines.join('\n'))).statusCode, 200);
  const all = (await get('/v1/flows')).json();
  assert.equal(all.next_cursor, null);
  const keys = all.items.map((f: any) => [f.table, -f.priority, f.id]);
  assert.deepEqual(keys, [...keys].sort((a: any, b: any) => a[0] - b[0] || a[1] - b[1] || (a[2] < b[2] ? -1 : 1)));
  // pages of 2 give the same sequence
  const seen: string[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const p: any = (await get(`/v1/flows?limit=2${cursor ? `&cursor=${cursor}` : ''}`)).json();
    assert.ok(p.items.length <= 2);
    seen.push(...p.items.map((f: any) => f.id));
    cursor = p.next_cursor;
    pages++;
  } while (cursor);
  assert.equal(pages, 3);
  assert.deepEqual(seen, all.items.map((f: any) => f.id));
  const cookies = async (q: string): Promise<string[]> => (await get(`/v1/flows?${q}`)).json().items.map((f: any) => f.cookie).sort();
  assert.deepEqual(await cookies('table=1'), ['0x21', '0x22']);
  assert.deepEqual(await cookies('cookie=0x10&cookie_mask=0xf0'), ['0x11', '0x12', '0x13']);
  assert.deepEqual(await cookies('cookie=0x22'), ['0x22']);
  assert.deepEqual(await cookies(`match=${encodeURIComponent('tcp')}`), ['0x12', '0x13', '0x22']);
  assert.deepEqual(await cookies(`match=${encodeURIComponent('table=0,tcp,tp_dst=22')}`), ['0x12']);
  problem(await get('/v1/flows?match=tp_dst%3D1'), 400, '?match/match/tp_dst', /tp_dst: requires/);
  problem(await get('/v1/flows?limit=0'), 400, '?limit', /limit/);
  problem(await get('/v1/flows?cursor=nope'), 400, '?cursor', /cursor/);

  // counters: summed over workers, strings
  const f = all.items.find((x: any) => x.cookie === '0x12');
  const slot = h.fake.flows.get(BigInt('0x' + f.id))!.slot;
  const now = process.hrtime.bigint();
  h.fake.setFlowStats(0, slot, 10n, 1500n, now - 2_000_000_000n);
  h.fake.setFlowStats(1, slot, 2n ** 53n, 64n, now - 500_000_000n);
  const one = (await get(`/v1/flows/${f.id}`)).json();
  assert.equal(one.n_packets, (2n ** 53n + 10n).toString());
  assert.equal(one.n_bytes, '1564');
  assert.ok(one.idle_age_sec >= 0.4 && one.idle_age_sec < 5, String(one.idle_age_sec));
  assert.equal(all.items.find((x: any) => x.cookie === '0x11').idle_age_sec, null, 'never hit');

  const text = await get('/v1/flows?format=ofctl&table=0');
  assert.match(String(text.headers['content-type']), /^text\/plain/);
  const out = text.body.split('\n');
  assert.equal(out.length, 4);
  assert.equal(out[3], '');
  assert.match(out[0]!, /^ cookie=0x12, duration=\d+(\.\d+)?s, table=0, n_packets=9007199254741002, n_bytes=1564, priority=9,tcp,tp_dst=22 actions=output:2$/);
  assert.match(out[2]!, /^ cookie=0x11, duration=[0-9.]+s, table=0, n_packets=0, n_bytes=0, priority=5,ip,nw_src=1\.1\.1\.1 actions=drop$/);
  const accept = await h.app.inject({ url: '/v1/flows?table=2', headers: { accept: 'text/plain' } });
  assert.match(accept.body, /^ cookie=0x31, duration=[0-9.]+s, table=2, n_packets=0, n_bytes=0, arp actions=CONTROLLER:64\n$/);
});

test('deletes: by id, by cookie/mask, del-flows (non-strict and strict)', async () => {
  await clearAll();
  await postText([
    'cookie=0x1,priority=10,tcp,tp_dst=80 actions=drop',
    'cookie=0x2,priority=10,tcp,tp_dst=80,nw_src=1.1.1.1 actions=drop',
    'cookie=0x3,priority=20,tcp,tp_dst=80 actions=drop',
    'cookie=0x4,priority=10,udp actions=drop',
    'cookie=0x5,table=1,priority=10,tcp,tp_dst=80 actions=drop',
    'cookie=0x16,priority=1,ip actions=drop',
  ].join('\n'));
  const cookies = async (): Promise<string[]> => (await get('/v1/flows')).json().items.map((f: any) => f.cookie).sort();
  const id = idOf('priority=1,ip actions=drop');
  assert.equal((await h.app.inject({ method: 'DELETE', url: `/v1/flows/${id}` })).statusCode, 204);
  assert.ok(!h.fake.flows.has(BigInt('0x' + id)));
  problem(await h.app.inject({ method: 'DELETE', url: `/v1/flows/${id}` }), 404, undefined as never, new RegExp(id));

  // strict: exactly this table/priority/match
  let r = await post({ table: 0, priority: 10, match: 'tcp,tp_dst=80', strict: true }, '/v1/flows/delete');
  assert.deepEqual(r.json(), { deleted: 1 });
  assert.deepEqual(await cookies(), ['0x2', '0x3', '0x4', '0x5']);
  // non-strict: every flow at least as specific, any priority, in the table given
  r = await post({ table: 0, match: { tcp: true, tp_dst: 80 } }, '/v1/flows/delete');
  assert.deepEqual(r.json(), { deleted: 2 });
  assert.deepEqual(await cookies(), ['0x4', '0x5']);
  r = await h.app.inject({ method: 'DELETE', url: '/v1/flows?cookie=0x4&cookie_mask=0xf' });
  assert.deepEqual(r.json(), { deleted: 1 });
  assert.deepEqual(await cookies(), ['0x5']);
  assert.equal(h.fake.flows.size, 1);
  r = await h.app.inject({ method: 'DELETE', url: '/v1/flows' });
  assert.deepEqual(r.json(), { deleted: 1 });
  assert.equal(h.fake.flows.size, 0);
  problem(await post({ match: { bogus: 1 } }, '/v1/flows/delete'), 400, '/match/bogus', /unknown field/);
});

test('PUT /v1/tables/{t}/flows replaces one table atomically', async () => {
  await clearAll();
  await postText('table=0,ip actions=drop\ntable=1,priority=1,ip actions=drop\ntable=1,priority=2,ip actions=drop');
  const r = await postText('priority=2,ip actions=output:1\npriority=3,ip actions=drop\n', '/v1/tables/1/flows', 'PUT');
  assert.equal(r.statusCode, 200, r.body);
  assert.deepEqual(r.json(), { added: 1, replaced: 1, deleted: 1 });
  const items = (await get('/v1/flows')).json().items;
  assert.deepEqual(items.map((f: any) => [f.table, f.priority]), [[0, 32768], [1, 3], [1, 2]]);
  assert.equal(h.fake.flows.size, 3);
  problem(await h.app.inject({ method: 'PUT', url: '/v1/tables/1/flows', payload: [{ table: 2, match: {}, actions: [] }] }),
    400, '/0/table', /must be 1/);
  const empty = await h.app.inject({ method: 'PUT', url: '/v1/tables/1/flows', payload: [] });
  assert.deepEqual(empty.json(), { added: 0, replaced: 0, deleted: 2 });
  assert.equal(h.fake.flows.size, 1);
});

test('POST /v1/bundles: add and delete together, all or nothing', async () => {
  await clearAll();
  await postText('priority=1,ip actions=drop\npriority=2,ip actions=drop');
  const id1 = idOf('priority=1,ip actions=drop');
  const r = await post({ ops: [
    { op: 'add', flow: 'priority=3,ip actions=drop' },
    { op: 'add', flow: { priority: 4, match: { ip: true }, actions: [] } },
    { op: 'delete', id: id1 },
    { op: 'delete', priority: 3, match: 'ip', strict: true },
  ] }, '/v1/bundles');
  assert.equal(r.statusCode, 200, r.body);
  assert.deepEqual(r.json(), { added: 1, replaced: 0, deleted: 1 }, 'the net effect: priority 3 came and went');
  const prios = async (): Promise<number[]> => (await get('/v1/flows')).json().items.map((f: any) => f.priority);
  assert.deepEqual(await prios(), [4, 2]);
  const fakeBefore = [...h.fake.flows.keys()].sort();
  problem(await post({ ops: [{ op: 'add', flow: 'priority=5,ip actions=drop' }, { op: 'delete', id: id1 }] }, '/v1/bundles'),
    404, '/ops/1/id', /^ops\[1\]: no flow /);
  problem(await post({ ops: [{ op: 'add', flow: 'priority=5,ip actions=drop' }, { op: 'add', flow: 'priority=6,tp_src=1 actions=drop' }] }, '/v1/bundles'),
    400, '/ops/1/flow/match/tp_src', /^ops\[1\]: tp_src: requires/);
  h.fake.rejecter = (q) => (q.type === MsgType.FLOW_DEL ? { status: Status.EINVAL, message: 'no' } : null);
  try {
    problem(await post({ ops: [{ op: 'add', flow: 'priority=7,ip actions=drop' }, { op: 'delete', match: 'ip' }] }, '/v1/bundles'),
      400, '/ops/1', /^ops\[1\]: ferryd refused it: EINVAL: no$/);
  } finally {
    h.fake.rejecter = null;
  }
  assert.deepEqual([...h.fake.flows.keys()].sort(), fakeBefore);
  assert.deepEqual(await prios(), [4, 2]);
});

test('FLOW_REMOVED from ferryd drops the flow; PACKET_IN events are kept and served', async () => {
  await clearAll();
  const r = await post({ priority: 9, idle_timeout: 5, flags: ['send_flow_rem'], match: { ip: true }, actions: [{ type: 'controller' }] });
  assert.equal(r.statusCode, 201);
  const id = r.json().id;
  assert.equal(r.json().idle_timeout, 5);
  assert.deepEqual(r.json().flags, ['send_flow_rem']);
  assert.ok(h.fake.expireFlow(BigInt('0x' + id)));
  await until(async () => (await get(`/v1/flows/${id}`)).statusCode === 404, 2000, 'flow dropped');
  assert.equal((await get('/v1/flows')).json().items.length, 0);

  h.fake.postPacketIn({ inPort: 1, table: 3, cookie: 0xabn, reason: 1, data: Buffer.from('0102030405', 'hex'), totalLen: 60 });
  await until(async () => (await get('/v1/packet-ins')).json().total === 1, 2000, 'packet-in');
  const p = (await get('/v1/packet-ins')).json();
  assert.deepEqual({ ...p.items[0], seq: undefined, time_ns: undefined }, {
    seq: undefined, time_ns: undefined, in_port: 1, table: 3, cookie: '0xab', reason: 'action', total_len: 60, data: '0102030405',
  });
  assert.match((await get('/metrics')).body, /^ferry_packet_ins_total 1$/m);
  assert.match((await get('/metrics')).body, /^ferry_flows_removed_total 1$/m);
});

test('the flow id is the FNV-1a of the masked key (same as the parser computes)', async () => {
  await clearAll();
  const r = await post({ table: 4, priority: 77, match: { dl_type: 2048, nw_dst: '10.9.0.0/16' }, actions: [] });
  const f = compileFlow(parseFlowText('table=4,priority=77,ip,ip_dst=10.9.1.2/16 actions=drop'));
  assert.equal(r.json().id, formatFlowId(flowId(4, 77, f.key, f.mask)));
});
