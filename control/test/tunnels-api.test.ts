// /v1/tunnels, /v1/neighbours and /v1/stt/options against a fake ferryd: creation with defaults and
// the lowest free port, idempotent repeats, conflicts and invalid fields named, ferryd's refusals
// mapped to the field, counters, the neighbour table paged, options, and the replay to a restarted
// ferryd (tunnels before the flows that output to them).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { harness, until, Harness } from './helpers';
import { MsgType, NeighFlag, Status, TunnelFlag, readTunnelConfig } from '../src/gen/proto';
import { STT_DEFAULTS } from './fake-tunnels';
import { TunnelService } from '../src/tunnels/service';

type Res = { statusCode: number; headers: Record<string, unknown>; body: string; json(): any };
const send = (h: Harness, method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: unknown): Promise<Res> =>
  h.app.inject({ method, url, ...(payload !== undefined ? { payload: payload as object } : {}) });
function problem(r: Res, status: number, pointer: string, detail?: RegExp): void {
  assert.equal(r.statusCode, status, r.body);
  assert.match(String(r.headers['content-type']), /^application\/problem\+json/);
  assert.equal(r.json().errors?.[0]?.pointer, pointer, r.body);
  if (detail) assert.match(r.json().detail, detail);
}
const count = (h: Harness, type: number): number => h.fake.received.filter((r) => r.type === type).length;
const STT0 = { name: 'stt0', local_ip: '192.0.2.1/24', remote_ip: 'flow', key: 'flow', underlay_port: 0 };

test('POST creates a tunnel on the lowest free port with the defaults; a repeat is 200, a different one 409', async () => {
  const h = await harness('tun-create');
  try {
    let r = await send(h, 'POST', '/v1/tunnels', STT0);
    assert.equal(r.statusCode, 201, r.body);
    assert.equal(r.headers.location, '/v1/tunnels/stt0');
    assert.deepEqual(r.json(), {
      name: 'stt0', port: 2, local_ip: '192.0.2.1/24', remote_ip: 'flow', key: 'flow', dst_port: 7471, underlay_port: 0,
      underlay_mtu: 1500, gateway: null, tos: 0, ttl: 64,
      stats: { rx_packets: '0', rx_bytes: '0', tx_packets: '0', tx_bytes: '0', rx_dropped: '0', tx_dropped: '0' },
    });
    const c = h.fake.tun.tunnels.get(2)!;
    assert.deepEqual([c.flags, c.key, c.local_ip, c.local_plen, c.remote_ip, c.dst_port, c.underlay_port, c.underlay_mtu, c.ttl],
      [TunnelFlag.REMOTE_FLOW | TunnelFlag.KEY_FLOW, 0n, [192, 0, 2, 1], 24, [0, 0, 0, 0], 7471, 0, 1500, 64]);

    const sets = count(h, MsgType.TUNNEL_SET);
    r = await send(h, 'POST', '/v1/tunnels', STT0);
    assert.equal(r.statusCode, 200, 'the same configuration again: idempotent');
    assert.equal(r.json().port, 2);
    assert.equal((await send(h, 'POST', '/v1/tunnels', { ...STT0, port: 2, dst_port: 7471, ttl: 64 })).statusCode, 200, 'defaults spelled out are the same');
    assert.equal(count(h, MsgType.TUNNEL_SET), sets, 'nothing sent for a repeat');
    problem(await send(h, 'POST', '/v1/tunnels', { ...STT0, ttl: 10 }), 409, '/name', /exists with another configuration/);
    problem(await send(h, 'POST', '/v1/tunnels', { ...STT0, name: 'stt1', port: 2 }), 409, '/port', /stt0/);
    problem(await send(h, 'POST', '/v1/tunnels', { ...STT0, name: 'eth1' }), 409, '/name', /ethdev port 1/);

    // the next one gets port 3; a fixed remote, a hex key and a gateway
    r = await send(h, 'POST', '/v1/tunnels', { name: 'stt1', local_ip: '192.0.2.1', remote_ip: '198.51.100.7', key: '0x10', underlay_port: 1, gateway: '192.0.2.254', tos: 8, underlay_mtu: 9000 });
    assert.equal(r.statusCode, 201, r.body);
    assert.deepEqual([r.json().port, r.json().local_ip, r.json().key, r.json().gateway], [3, '192.0.2.1/32', '16', '192.0.2.254']);
    const c1 = h.fake.tun.tunnels.get(3)!;
    assert.deepEqual([c1.flags, c1.key, c1.remote_ip, c1.gateway, c1.local_plen, c1.tos, c1.underlay_mtu, c1.underlay_port], [0, 16n, [198, 51, 100, 7], [192, 0, 2, 254], 32, 8, 9000, 1]);
    assert.equal((await send(h, 'POST', '/v1/tunnels', { name: 'stt1', local_ip: '192.0.2.1/32', remote_ip: '198.51.100.7', key: '16', underlay_port: 1, gateway: '192.0.2.254', tos: 8, underlay_mtu: 9000 })).statusCode, 200,
      'the same key in decimal, the same /32');

    // deleting frees the port: the lowest free one is taken again
    assert.equal((await send(h, 'DELETE', '/v1/tunnels/stt0')).statusCode, 204);
    assert.ok(!h.fake.tun.tunnels.has(2));
    r = await send(h, 'POST', '/v1/tunnels', { ...STT0, name: 'stt2' });
    assert.equal(r.json().port, 2);
    r = await send(h, 'POST', '/v1/tunnels', { ...STT0, name: 'stt9', port: 31 });
    assert.equal(r.json().port, 31);
    assert.deepEqual((await send(h, 'GET', '/v1/tunnels')).json().items.map((t: { name: string; port: number }) => `${t.name}:${t.port}`), ['stt2:2', 'stt1:3', 'stt9:31']);
    problem(await send(h, 'DELETE', '/v1/tunnels/stt0'), 404, undefined as never);
  } finally {
    await h.close();
  }
});

test('invalid fields are 400s naming them; ferryd\'s refusals name the field its message names', async () => {
  const h = await harness('tun-400');
  try {
    const bad: [Record<string, unknown>, string][] = [
      [{ local_ip: '300.0.0.1' }, '/local_ip'], [{ local_ip: '192.0.2.1/33' }, '/local_ip'], [{ local_ip: '0.0.0.0/24' }, '/local_ip'],
      [{ local_ip: 'me' }, '/local_ip'], [{ remote_ip: 'x' }, '/remote_ip'], [{ remote_ip: '0.0.0.0' }, '/remote_ip'],
      [{ remote_ip: '192.0.2.1' }, '/remote_ip'], [{ remote_ip: '239.1.1.1' }, '/remote_ip'],
      [{ key: 'abc' }, '/key'], [{ key: '18446744073709551616' }, '/key'], [{ key: '0x1ffffffffffffffff' }, '/key'], [{ key: 5 }, '/key'],
      [{ dst_port: 0 }, '/dst_port'], [{ dst_port: 65536 }, '/dst_port'], [{ underlay_port: 5 }, '/underlay_port'],
      [{ underlay_mtu: 100 }, '/underlay_mtu'], [{ underlay_mtu: 9217 }, '/underlay_mtu'], [{ port: 1 }, '/port'], [{ port: 32 }, '/port'],
      [{ ttl: 0 }, '/ttl'], [{ tos: 256 }, '/tos'], [{ gateway: '224.0.0.1' }, '/gateway'], [{ gateway: '192.0.2.1' }, '/gateway'],
      [{ name: 'bad name' }, '/name'], [{ name: 'x'.repeat(33) }, '/name'], [{ name: '' }, '/name'], [{ bogus: 1 }, '/bogus'],
      [{ underlay_port: '0' }, '/underlay_port'],
    ];
    for (const [patch, pointer] of bad) {
      const r = await send(h, 'POST', '/v1/tunnels', { ...STT0, ...patch });
      problem(r, 400, pointer);
    }
    const { local_ip: _l, ...noLocal } = STT0;
    problem(await send(h, 'POST', '/v1/tunnels', noLocal), 400, '/local_ip', /required/);
    assert.equal(count(h, MsgType.TUNNEL_SET), 0, 'TS refused all of them before ferryd saw one');

    // ferryd's checks are the backstop: its "field: why" names the field
    h.fake.rejecter = (x) => (x.type === MsgType.TUNNEL_SET ? { status: Status.EINVAL, message: 'underlay_mtu: larger than the port\'s MTU' } : null);
    problem(await send(h, 'POST', '/v1/tunnels', STT0), 400, '/underlay_mtu', /larger than the port's MTU/);
    h.fake.rejecter = (x) => (x.type === MsgType.TUNNEL_SET ? { status: Status.ENOPORT, message: 'underlay_port: link is gone' } : null);
    problem(await send(h, 'POST', '/v1/tunnels', STT0), 400, '/underlay_port');
    h.fake.rejecter = (x) => (x.type === MsgType.TUNNEL_SET ? { status: Status.ENOSPC, message: 'no room' } : null);
    assert.equal((await send(h, 'POST', '/v1/tunnels', STT0)).statusCode, 507);
    h.fake.rejecter = null;
    assert.deepEqual((await send(h, 'GET', '/v1/tunnels')).json().items, [], 'refused tunnels are not kept');
    problem(await send(h, 'GET', '/v1/tunnels/bad!name'), 400, ':name');
    assert.equal((await send(h, 'GET', '/v1/tunnels/nope')).statusCode, 404);
  } finally {
    await h.close();
  }
});

test('PUT creates or replaces (a port left out stays; a new port moves it)', async () => {
  const h = await harness('tun-put');
  try {
    const { name: _n, ...cfg } = STT0;
    let r = await send(h, 'PUT', '/v1/tunnels/a', cfg);
    assert.equal(r.statusCode, 201, r.body);
    assert.equal(r.json().port, 2);
    assert.equal((await send(h, 'PUT', '/v1/tunnels/a', { ...cfg, name: 'a' })).statusCode, 200);
    r = await send(h, 'PUT', '/v1/tunnels/a', { ...cfg, ttl: 9, remote_ip: '203.0.113.9' });
    assert.equal(r.statusCode, 200);
    assert.deepEqual([r.json().port, r.json().ttl, r.json().remote_ip], [2, 9, '203.0.113.9']);
    assert.deepEqual([h.fake.tun.tunnels.get(2)!.ttl, h.fake.tun.tunnels.get(2)!.flags], [9, TunnelFlag.KEY_FLOW]);
    r = await send(h, 'PUT', '/v1/tunnels/a', { ...cfg, port: 7 });
    assert.equal(r.statusCode, 200);
    assert.deepEqual([...h.fake.tun.tunnels.keys()], [7], 'moved: the old port is gone');
    problem(await send(h, 'PUT', '/v1/tunnels/a', { ...cfg, name: 'b' }), 400, '/name');
    await send(h, 'PUT', '/v1/tunnels/b', cfg);
    problem(await send(h, 'PUT', '/v1/tunnels/b', { ...cfg, port: 7 }), 409, '/port');
    // a move ferryd refuses puts the old port back
    h.fake.rejecter = (x) => (x.type === MsgType.TUNNEL_SET && x.body!.readUInt32LE(0) === 9 ? { status: Status.EINVAL, message: 'ttl: no' } : null);
    problem(await send(h, 'PUT', '/v1/tunnels/a', { ...cfg, port: 9 }), 400, '/ttl');
    assert.ok(h.fake.tun.tunnels.has(7));
    assert.equal((await send(h, 'GET', '/v1/tunnels/a')).json().port, 7);
  } finally {
    await h.close();
  }
});

test('GET shows each tunnel port\'s counters summed over workers, as strings; null while ferryd is down', async () => {
  const h = await harness('tun-stats', { nWorkers: 2 });
  try {
    await send(h, 'POST', '/v1/tunnels', STT0);
    h.fake.setWorkerPort(0, 2, { rx_packets: 5n, rx_bytes: 500n, tx_packets: 7n, tx_bytes: 700n, rx_dropped: 1n });
    h.fake.setWorkerPort(1, 2, { rx_packets: 2n ** 53n, rx_bytes: 1n, tx_packets: 3n, tx_bytes: 300n, tx_dropped: 4n });
    h.fake.setWorkerPort(1, 3, { rx_packets: 99n }); // a port without a tunnel
    const stats = { rx_packets: String(2n ** 53n + 5n), rx_bytes: '501', tx_packets: '10', tx_bytes: '1000', rx_dropped: '1', tx_dropped: '4' };
    assert.deepEqual((await send(h, 'GET', '/v1/tunnels/stt0')).json().stats, stats);
    assert.deepEqual((await send(h, 'GET', '/v1/tunnels')).json().items[0].stats, stats);
    await h.fake.die();
    await until(async () => (await send(h, 'GET', '/health')).statusCode === 503, 2000, 'down');
    assert.equal((await send(h, 'GET', '/v1/tunnels/stt0')).json().stats, null);
    const r = await send(h, 'POST', '/v1/tunnels', { ...STT0, name: 'x' });
    assert.equal(r.statusCode, 503);
    assert.equal(r.json().type, 'urn:ferry:problem:ferryd-down');
    assert.equal((await send(h, 'GET', '/v1/neighbours')).statusCode, 503);
    assert.equal((await send(h, 'GET', '/v1/stt/options')).statusCode, 200, 'the desired options are readable');
  } finally {
    await h.close();
  }
});

test('neighbours: every NEIGH_DUMP page, static entries set and removed, invalid ones named', async () => {
  const h = await harness('tun-neigh');
  try {
    assert.deepEqual((await send(h, 'GET', '/v1/neighbours')).json(), { items: [] });
    const tun = h.fake.tun;
    for (let i = 1; i <= 30; i++) tun.learn(i % 2, `192.0.2.${i}`, `02:00:00:00:01:${i.toString(16).padStart(2, '0')}`, NeighFlag.REACHABLE, i * 10);
    tun.learn(0, '192.0.2.200', '00:00:00:00:00:00', NeighFlag.INCOMPLETE);
    tun.learn(1, '192.0.2.201', '00:00:00:00:00:00', NeighFlag.FAILED, 5000);
    tun.pageEntries = 10;
    const dumps = tun.served.dumps;
    let items = (await send(h, 'GET', '/v1/neighbours')).json().items;
    assert.equal(items.length, 32);
    assert.equal(tun.served.dumps - dumps, 4, '32 entries, 10 a page');
    assert.deepEqual(items[0], { port: 0, ip: '192.0.2.2', mac: '02:00:00:00:01:02', state: 'reachable', static: false, age_ms: 20 });
    assert.deepEqual(items.find((n: { ip: string }) => n.ip === '192.0.2.200'), { port: 0, ip: '192.0.2.200', mac: '00:00:00:00:00:00', state: 'incomplete', static: false, age_ms: 0 });
    assert.equal(items.find((n: { ip: string }) => n.ip === '192.0.2.201').state, 'failed');
    assert.deepEqual(items.map((n: { port: number }) => n.port), [...new Array(16).fill(0), ...new Array(16).fill(1)], 'by port, then address');

    let r = await send(h, 'PUT', '/v1/neighbours/0/192.0.2.254', { mac: '02:AA:bb:cc:dd:ee' });
    assert.equal(r.statusCode, 200, r.body);
    assert.deepEqual(r.json(), { port: 0, ip: '192.0.2.254', mac: '02:aa:bb:cc:dd:ee', state: 'reachable', static: true, age_ms: 0 });
    assert.deepEqual(tun.neighbours.get('0/192.0.2.254')!.mac, [2, 0xaa, 0xbb, 0xcc, 0xdd, 0xee]);
    items = (await send(h, 'GET', '/v1/neighbours')).json().items;
    assert.equal(items.find((n: { ip: string }) => n.ip === '192.0.2.254').static, true);

    problem(await send(h, 'PUT', '/v1/neighbours/0/192.0.2.254', { mac: '01:00:5e:00:00:01' }), 400, '/mac', /unicast/);
    problem(await send(h, 'PUT', '/v1/neighbours/0/192.0.2.254', { mac: '00:00:00:00:00:00' }), 400, '/mac');
    problem(await send(h, 'PUT', '/v1/neighbours/0/192.0.2.254', { mac: 'zz' }), 400, '/mac');
    problem(await send(h, 'PUT', '/v1/neighbours/0/192.0.2.999', { mac: '02:00:00:00:00:01' }), 400, ':ip');
    problem(await send(h, 'PUT', '/v1/neighbours/0/0.0.0.0', { mac: '02:00:00:00:00:01' }), 400, ':ip');
    problem(await send(h, 'PUT', '/v1/neighbours/5/192.0.2.9', { mac: '02:00:00:00:00:01' }), 400, ':port');
    problem(await send(h, 'PUT', '/v1/neighbours/0/192.0.2.9', {}), 400, '/mac');
    tun.capacity = tun.neighbours.size;
    assert.equal((await send(h, 'PUT', '/v1/neighbours/0/192.0.2.9', { mac: '02:00:00:00:00:01' })).statusCode, 507, 'ferryd: table full');

    assert.equal((await send(h, 'DELETE', '/v1/neighbours/0/192.0.2.254')).statusCode, 204);
    assert.ok(!tun.neighbours.has('0/192.0.2.254'));
    problem(await send(h, 'DELETE', '/v1/neighbours/0/192.0.2.254'), 404, undefined as never);
    assert.equal((await send(h, 'DELETE', '/v1/neighbours/1/192.0.2.1')).statusCode, 204, 'a learned one');
    // a dump that does not move on is an error, not a loop
    h.fake.rejecter = null;
    tun.pageEntries = 0;
    assert.equal((await send(h, 'GET', '/v1/neighbours')).statusCode, 502);
  } finally {
    await h.close();
  }
});

test('STT options: GET the defaults, PUT changes what it names', async () => {
  const h = await harness('tun-opts');
  try {
    assert.deepEqual((await send(h, 'GET', '/v1/stt/options')).json(), { reasm_timeout_ms: 100, reasm_mem_max: 4194304, neigh_timeout_s: 300, neigh_retries: 3 });
    let r = await send(h, 'PUT', '/v1/stt/options', { neigh_retries: 5, reasm_timeout_ms: 250 });
    assert.deepEqual(r.json(), { reasm_timeout_ms: 250, reasm_mem_max: 4194304, neigh_timeout_s: 300, neigh_retries: 5 });
    assert.deepEqual(h.fake.tun.options, { ...STT_DEFAULTS, neigh_retries: 5, reasm_timeout_ms: 250 });
    r = await send(h, 'PUT', '/v1/stt/options', { reasm_mem_max: 65536 });
    assert.deepEqual(r.json(), { reasm_timeout_ms: 250, reasm_mem_max: 65536, neigh_timeout_s: 300, neigh_retries: 5 });
    problem(await send(h, 'PUT', '/v1/stt/options', { neigh_retries: 11 }), 400, '/neigh_retries');
    problem(await send(h, 'PUT', '/v1/stt/options', { reasm_mem_max: 1000 }), 400, '/reasm_mem_max');
    problem(await send(h, 'PUT', '/v1/stt/options', { reasm_timeout_ms: 60001 }), 400, '/reasm_timeout_ms');
    problem(await send(h, 'PUT', '/v1/stt/options', { neigh_timeout_s: 0 }), 400, '/neigh_timeout_s');
    problem(await send(h, 'PUT', '/v1/stt/options', { mtu: 1 }), 400, '/mtu');
    h.fake.rejecter = (x) => (x.type === MsgType.STT_SET_OPTIONS ? { status: Status.EINVAL, message: 'neigh_timeout_s: too long for this build' } : null);
    problem(await send(h, 'PUT', '/v1/stt/options', { neigh_timeout_s: 80000 }), 400, '/neigh_timeout_s', /too long/);
    assert.equal((await send(h, 'GET', '/v1/stt/options')).json().neigh_timeout_s, 300, 'a refused value is not kept');
  } finally {
    await h.close();
  }
});

test('flows output to a tunnel port by name or number', async () => {
  const h = await harness('tun-flows');
  try {
    assert.equal((await send(h, 'POST', '/v1/tunnels', STT0)).statusCode, 201);
    const r = await h.app.inject({ method: 'POST', url: '/v1/flows', headers: { 'content-type': 'text/plain' }, payload: 'priority=5,in_port=0,actions=output:stt0\npriority=5,in_port=stt0,actions=output:0\n' });
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(h.fake.flows.size, 2);
    const bad = await h.app.inject({ method: 'POST', url: '/v1/flows', headers: { 'content-type': 'text/plain' }, payload: 'priority=5,in_port=1,actions=output:stt7\n' });
    assert.equal(bad.statusCode, 400);
    assert.match(bad.json().detail, /2 \(stt0\)/, 'the tunnel is among the ports listed');
  } finally {
    await h.close();
  }
});

test('a restarted ferryd gets STT options, tunnels and static neighbours after conntrack\'s settings and before the flows', async () => {
  const h = await harness('tun-replay', {}, { requestTimeoutMs: 300 });
  try {
    assert.equal((await send(h, 'PUT', '/v1/conntrack/options', { tcp_seq_check: false })).statusCode, 200);
    assert.equal((await send(h, 'POST', '/v1/tunnels', STT0)).statusCode, 201);
    assert.equal((await send(h, 'POST', '/v1/tunnels', { ...STT0, name: 'stt1', remote_ip: '198.51.100.1', key: '7', port: 9 })).statusCode, 201);
    assert.equal((await send(h, 'PUT', '/v1/neighbours/1/192.0.2.254', { mac: '02:00:00:00:00:fe' })).statusCode, 200);
    assert.equal((await send(h, 'PUT', '/v1/stt/options', { neigh_retries: 7 })).statusCode, 200);
    const flows = await h.app.inject({ method: 'POST', url: '/v1/flows', headers: { 'content-type': 'text/plain' }, payload: 'priority=5,in_port=0,actions=output:stt0\npriority=6,in_port=1,actions=output:9\n' });
    assert.equal(flows.statusCode, 200, flows.body);

    await h.fake.restart();
    assert.equal(h.fake.tun.tunnels.size, 0, 'the new ferryd starts empty');
    await until(async () => (await send(h, 'GET', '/health')).statusCode === 200, 3000, 'healthy again');
    const tun = h.fake.tun;
    assert.deepEqual([...tun.tunnels.keys()].sort((a, b) => a - b), [2, 9]);
    assert.equal(tun.tunnels.get(9)!.key, 7n);
    assert.deepEqual(tun.neighbours.get('1/192.0.2.254')!.mac, [2, 0, 0, 0, 0, 0xfe]);
    assert.equal(tun.options.neigh_retries, 7);
    assert.equal(h.fake.flows.size, 2, 'the flows to tunnel ports were accepted');

    const types = h.fake.received.map((r) => r.type);
    const at = (t: number): number => types.indexOf(t);
    const lastTunnel = types.lastIndexOf(MsgType.TUNNEL_SET);
    assert.ok(at(MsgType.CT_SET_OPTIONS) >= 0 && at(MsgType.CT_SET_OPTIONS) < at(MsgType.STT_SET_OPTIONS), `conntrack first: ${types.join(',')}`);
    assert.ok(at(MsgType.STT_SET_OPTIONS) < at(MsgType.TUNNEL_SET));
    assert.ok(lastTunnel < at(MsgType.NEIGH_SET));
    assert.ok(at(MsgType.NEIGH_SET) < at(MsgType.FLOW_CLEAR) && at(MsgType.FLOW_CLEAR) < at(MsgType.FLOW_ADD), `tunnels before the flows: ${types.join(',')}`);
    const sent = h.fake.received.filter((r) => r.type === MsgType.TUNNEL_SET).map((r) => readTunnelConfig(new DataView(r.body!.buffer, r.body!.byteOffset), 0).port);
    assert.deepEqual(sent, [2, 9]);
    const cleared = h.fake.received.filter((r) => r.type === MsgType.TUNNEL_DEL).map((r) => r.body!.readUInt32LE(0));
    assert.deepEqual(cleared, Array.from({ length: 30 }, (_, i) => i + 2).filter((p) => p !== 2 && p !== 9), 'every other tunnel port is cleared (nothing stale survives)');

    // a ferryd that does not answer fails the replay, which is retried until it does
    h.fake.respondMode = 'manual';
    await h.fake.restart();
    await until(() => h.fake.received.length > 0, 3000, 'the replay started');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal((await send(h, 'GET', '/health')).statusCode, 503);
    h.fake.respondMode = 'auto';
    await until(async () => (await send(h, 'GET', '/health')).statusCode === 200, 5000, 'healthy after a retry');
    assert.deepEqual([...h.fake.tun.tunnels.keys()].sort((a, b) => a - b), [2, 9]);
    assert.equal(h.fake.flows.size, 2);

    // a tunnel the new ferryd refuses is logged and skipped; the rest (and the flows that can be) go on
    h.fake.rejecter = (x) => (x.type === MsgType.TUNNEL_SET && x.body!.readUInt32LE(0) === 9 ? { status: Status.ENOPORT, message: 'port: not today' } : null);
    await h.fake.restart();
    await until(async () => (await send(h, 'GET', '/health')).statusCode === 200, 3000, 'healthy despite the refusal');
    assert.deepEqual([...h.fake.tun.tunnels.keys()], [2]);
    assert.equal(h.fake.flows.size, 1, 'the flow to the refused tunnel port is refused in turn');
    assert.equal((await send(h, 'GET', '/v1/tunnels')).json().items.length, 2, 'both stay desired');

    // a ferryd without tunnels (EUNSUPPORTED) is told nothing more, and still becomes healthy
    h.fake.rejecter = (x) => (x.type === MsgType.STT_SET_OPTIONS ? { status: Status.EUNSUPPORTED, message: 'this ferryd runs without tunnels' } : null);
    await h.fake.restart();
    await until(async () => (await send(h, 'GET', '/health')).statusCode === 200, 3000, 'healthy without tunnels');
    assert.equal(count(h, MsgType.TUNNEL_SET) + count(h, MsgType.TUNNEL_DEL) + count(h, MsgType.NEIGH_SET), 0);
  } finally {
    await h.close();
  }
});

test('reconciling the desired state (cluster mode): a tunnel ferryd no longer has is deleted without a refusal; another refusal is reported', async () => {
  const h = await harness('tun-reconcile');
  try {
    const t = new TunnelService(h.ferryd);
    assert.equal((await t.create(STT0)).created, true);
    const port = [...h.fake.tun.tunnels.keys()][0]!;
    h.fake.tun.tunnels.delete(port); // ferryd lost it meanwhile: its TUNNEL_DEL is answered ENOENT
    const none = { tunnels: new Map(), neighbours: new Map(), options: {} };
    const dels = (): number => h.fake.received.filter((r) => r.type === MsgType.TUNNEL_DEL).length;
    const before = dels();
    assert.deepEqual(await t.reconcile(none, null), { changed: 1, refused: [] });
    assert.equal(dels(), before + 1);
    // a refusal that is not "already gone" is reported, naming the tunnel
    assert.equal((await t.create(STT0)).created, true);
    h.fake.rejecter = (r) => (r.type === MsgType.TUNNEL_DEL ? { status: Status.EINTERNAL, message: 'in use' } : null);
    const r = await t.reconcile(none, null);
    assert.equal(r!.refused.length, 1);
    assert.match(r!.refused[0]!, /tunnel stt0 \(port \d+\).*in use/);
  } finally {
    h.fake.rejecter = null;
    await h.close();
  }
});
