import { test } from 'node:test';
import assert from 'node:assert/strict';
import { harness, until, sleep } from './helpers';
import { REQ_RING_SLOTS, MsgType, MsgFlag, LAYOUT_HASH, ABI_VERSION } from '../src/gen/proto';

const flow = { priority: 10, match: { in_port: 0 }, actions: [{ type: 'output', port: 1 }] };

test('/health is ok while ferryd heartbeats, unhealthy within 1 s after it stops', async () => {
  const h = await harness('health');
  try {
    const ok = await h.app.inject({ url: '/health' });
    assert.equal(ok.statusCode, 200, ok.body);
    const body = ok.json();
    assert.equal(body.status, 'ok');
    assert.equal(body.ferryd.pid, h.fake.pid);
    assert.equal(body.ferryd.state, 'RUNNING');
    assert.equal(body.ferryd.abi_version, ABI_VERSION);
    assert.equal(body.ferryd.layout_hash, '0x' + LAYOUT_HASH.toString(16).padStart(16, '0'));
    assert.ok(body.ferryd.heartbeat_age_ms < 1000);
    h.fake.stopHeartbeat();
    const t0 = Date.now();
    await until(async () => (await h.app.inject({ url: '/health' })).statusCode === 503, 1500, 'unhealthy');
    assert.ok(Date.now() - t0 <= 1200, `took ${Date.now() - t0} ms`);
    const bad = (await h.app.inject({ url: '/health' })).json();
    assert.equal(bad.status, 'unhealthy');
    assert.match(bad.reason, /^ferryd heartbeat is \d+ ms old$/);
    h.fake.startHeartbeat();
    assert.equal((await h.app.inject({ url: '/health' })).statusCode, 200);
    await h.fake.die();
    await until(async () => (await h.app.inject({ url: '/health' })).statusCode === 503, 1000, 'dead');
    assert.match((await h.app.inject({ url: '/health' })).json().reason, new RegExp(`ferryd pid ${h.fake.pid} is gone`));
  } finally {
    await h.close();
  }
});

test('/metrics and /v1/ports show what ferryd wrote, from one snapshot', async () => {
  const h = await harness('metrics', { ports: ['eth0', 'eth1'], nWorkers: 2 });
  try {
    h.fake.setWorkerPort(0, 0, { rx_packets: 100n, rx_bytes: 6400n, tx_packets: 3n, tx_bytes: 192n, rx_dropped: 4n, tx_dropped: 5n });
    h.fake.setWorkerPort(1, 0, { rx_packets: 23n, rx_bytes: 1000n });
    h.fake.setWorkerPort(1, 1, { tx_packets: 77n });
    h.fake.setHwStats(0, { ipackets: 130n, imissed: 7n, ierrors: 2n });
    h.fake.setWorker(1, { busy_cycles: 300n, idle_cycles: 100n, drops: [11n, 12n, 13n, 14n, 99n] });
    const r = await h.app.inject({ url: '/metrics' });
    assert.equal(r.statusCode, 200);
    assert.match(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    const m = r.body;
    const has = (line: string): void => assert.ok(m.split('\n').includes(line), `missing: ${line}`);
    has('ferry_port_rx_packets_total{port="eth0"} 123');
    has('ferry_port_rx_bytes_total{port="eth0"} 7400');
    has('ferry_port_tx_packets_total{port="eth0"} 3');
    has('ferry_port_tx_packets_total{port="eth1"} 77');
    has('ferry_port_tx_bytes_total{port="eth0"} 192');
    has('ferry_port_rx_dropped_total{port="eth0"} 4');
    has('ferry_port_tx_dropped_total{port="eth0"} 5');
    has('ferry_port_rx_missed_total{port="eth0"} 7');
    has('ferry_port_rx_errors_total{port="eth0"} 2');
    has('ferry_worker_drops_total{worker="1",reason="table_miss"} 11');
    has('ferry_worker_drops_total{worker="1",reason="bad_out_port"} 14');
    assert.ok(!m.includes('reserved'), 'RESERVED reasons are not exported');
    has('ferry_worker_busy_ratio{worker="1"} 0.75');
    has('ferry_up 1');
    has('ferry_flows 0');
    has('ferry_ring_depth{ring="request"} 0');
    has('ferry_ring_full_total{ring="request"} 0');
    assert.match(m, /^ferry_build_info\{version="[^"]+"\} 1$/m);
    assert.match(m, /^process_cpu_user_seconds_total /m, 'default metrics too');

    const ports = (await h.app.inject({ url: '/v1/ports' })).json().items;
    assert.equal(ports.length, 2);
    assert.equal(ports[0].name, 'eth0');
    assert.equal(ports[0].mac, '02:00:00:00:00:00');
    assert.deepEqual(ports[0].stats.rx_packets, '123');
    assert.deepEqual(ports[0].stats.hw.ipackets, '130');
    assert.deepEqual(ports[0].stats.hw.imissed, '7');
    assert.deepEqual(ports[0].link, { up: true, speed_mbps: 10000, full_duplex: true });
  } finally {
    await h.close();
  }
});

test('ferryd not answering in time: 504 problem', async () => {
  const h = await harness('t504', {}, { requestTimeoutMs: 150 });
  try {
    h.fake.respondMode = 'manual';
    const r = await h.app.inject({ method: 'POST', url: '/v1/flows', payload: flow });
    assert.equal(r.statusCode, 504, r.body);
    assert.match(String(r.headers['content-type']), /^application\/problem\+json/);
    assert.match(r.json().detail, /did not answer FLOW_ADD request \d+ within 150 ms/);
    assert.equal((await h.app.inject({ url: '/v1/flows' })).json().items.length, 0, 'not recorded');
  } finally {
    await h.close();
  }
});

test('full request ring: 503 problem with Retry-After: 1', async () => {
  const h = await harness('t503');
  try {
    h.fake.respondMode = 'paused';
    const chan = h.ferryd.channel();
    const { submitted, responses } = chan.requestMany(Array.from({ length: REQ_RING_SLOTS }, () => ({ type: MsgType.PING })));
    assert.equal(submitted, REQ_RING_SLOTS);
    const r = await h.app.inject({ method: 'POST', url: '/v1/flows', payload: flow });
    assert.equal(r.statusCode, 503, r.body);
    assert.equal(r.headers['retry-after'], '1');
    assert.match(r.json().detail, /ring to ferryd is full/);
    h.fake.respondMode = 'auto';
    await Promise.all(responses);
    assert.equal((await h.app.inject({ method: 'POST', url: '/v1/flows', payload: flow })).statusCode, 201);
  } finally {
    await h.close();
  }
});

test('requests pending on a ferryd that dies fail with 503 "ferryd is not running"', async () => {
  const h = await harness('dies');
  try {
    h.fake.respondMode = 'manual';
    const pending = h.app.inject({ method: 'POST', url: '/v1/flows', payload: flow });
    await until(() => (h.fake.serve(), h.fake.received.some((r) => r.type === MsgType.FLOW_ADD)), 1000, 'request seen');
    await h.fake.die();
    const r = await pending;
    assert.equal(r.statusCode, 503, r.body);
    assert.match(r.json().detail, /ferryd is not running/);
    const again = await h.app.inject({ method: 'POST', url: '/v1/flows', payload: flow });
    assert.equal(again.statusCode, 503);
    assert.match(again.json().detail, /ferryd is not running: ferryd pid \d+ is gone/);
  } finally {
    await h.close();
  }
});

test('restart under the same name: reattach and replay the desired flows before healthy', async () => {
  const h = await harness('restart', { ports: ['eth0', 'eth1'] });
  try {
    const ids: string[] = [];
    for (let p = 1; p <= 3; p++) {
      const r = await h.app.inject({ method: 'POST', url: '/v1/flows', payload: { priority: p, match: { in_port: 'eth0' }, actions: [{ type: 'output', port: 'eth1' }] } });
      assert.equal(r.statusCode, 201);
      ids.push(r.json().id);
    }
    const oldPid = h.fake.pid;
    await h.fake.restart();
    assert.notEqual(h.fake.pid, oldPid);
    assert.equal(h.fake.flows.size, 0, 'the new ferryd starts empty');
    await until(async () => (await h.app.inject({ url: '/health' })).statusCode === 200, 3000, 'healthy again');
    assert.equal((await h.app.inject({ url: '/health' })).json().ferryd.pid, h.fake.pid);
    assert.deepEqual([...h.fake.flows.keys()].map((k) => k.toString(16).padStart(16, '0')).sort(), [...ids].sort(), 'all flows replayed');
    // the conntrack settings go first (options only, nothing else was configured), then the tunnel
    // step (STT options, tunnel ports cleared: none is desired), then the flows
    assert.deepEqual(h.fake.received.slice(0, 1).map((r) => r.type), [MsgType.CT_SET_OPTIONS], 'conntrack settings before the flows');
    const abort = h.fake.received.findIndex((r) => r.type === MsgType.BUNDLE_ABORT);
    assert.ok(h.fake.received.slice(1, abort).every((r) => r.type === MsgType.STT_SET_OPTIONS || r.type === MsgType.TUNNEL_DEL), 'the tunnel step');
    const flowMsgs = h.fake.received.slice(abort);
    // a bundle left open by a killed ferry-control goes first; then one bundle that replaces the
    // whole table (a bundled FLOW_CLEAR) with every flow
    assert.deepEqual(flowMsgs.map((r) => [r.type, r.flags]),
      [[MsgType.BUNDLE_ABORT, 0], [MsgType.FLOW_CLEAR, MsgFlag.IN_BUNDLE], ...ids.map(() => [MsgType.FLOW_ADD, MsgFlag.IN_BUNDLE]), [MsgType.BUNDLE_COMMIT, 0]],
      'then one bundle of every flow, replacing the table');
    // counters come from the new segment, via the slots ferryd gave at replay
    const slot = h.fake.flows.get(BigInt('0x' + ids[0]))!.slot;
    h.fake.setFlowStats(0, slot, 5n, 50n);
    const f = (await h.app.inject({ url: `/v1/flows/${ids[0]}` })).json();
    assert.equal(f.n_packets, '5');
    // and new changes work on the new ferryd
    assert.equal((await h.app.inject({ method: 'DELETE', url: `/v1/flows/${ids[1]}` })).statusCode, 204);
    assert.equal(h.fake.flows.size, 2);
  } finally {
    await h.close();
  }
});

test('ferryd absent at start: unhealthy "no segment", then attaches when it appears', async () => {
  const h = await harness('late', {}, { startFake: false });
  try {
    const r = await h.app.inject({ url: '/health' });
    assert.equal(r.statusCode, 503);
    assert.equal(r.json().reason, `no segment /${h.fake.name}`);
    const p = await h.app.inject({ method: 'POST', url: '/v1/flows', payload: flow });
    assert.equal(p.statusCode, 503);
    assert.equal((await h.app.inject({ url: '/metrics' })).body.includes('ferry_up 0'), true);
    await sleep(120);
    h.fake.start();
    await until(async () => (await h.app.inject({ url: '/health' })).statusCode === 200, 2000, 'healthy');
    assert.equal((await h.app.inject({ method: 'POST', url: '/v1/flows', payload: flow })).statusCode, 201);
  } finally {
    await h.close();
  }
});

test('an ABI-mismatched ferryd keeps /health unhealthy with the reason', async () => {
  const h = await harness('abi', { abiVersion: 9, respond: 'manual' });
  try {
    await sleep(100);
    const r = await h.app.inject({ url: '/health' });
    assert.equal(r.statusCode, 503);
    assert.equal(r.json().reason, `ABI mismatch: ferryd speaks ABI 9, this ferry-control speaks ${ABI_VERSION}`);
  } finally {
    await h.close();
  }
});

test('a bulk load that times out with the ring still full of its requests aborts its bundle once there is room: the next load commits only its own flows', async () => {
  const h = await harness('abort-full', {}, { requestTimeoutMs: 300 });
  try {
    const lines = (n: number, from: number): string =>
      Array.from({ length: n }, (_, i) => `table=1,priority=5,ip,nw_src=10.1.${(from + i) >> 8}.${(from + i) & 255},actions=drop`).join('\n');
    h.fake.respondMode = 'paused'; // ferryd stops reading: the batch fills the ring and waits
    const slow = h.app.inject({ method: 'POST', url: '/v1/flows', headers: { 'content-type': 'text/plain' }, payload: lines(REQ_RING_SLOTS + 200, 0) });
    // its requests time out; the abort then waits for room (up to the request timeout)
    await until(() => h.ferryd.channel().stats.timeouts > 0, 5000, 'the batch to time out');
    h.fake.respondMode = 'auto';
    const r = await slow;
    assert.equal(r.statusCode, 504, r.body);
    await until(() => h.fake.received.some((q) => q.type === MsgType.BUNDLE_ABORT), 2000, 'BUNDLE_ABORT');
    assert.equal(h.fake.staged.length, 0, 'nothing left staged');
    const ok = await h.app.inject({ method: 'POST', url: '/v1/flows', headers: { 'content-type': 'text/plain' }, payload: lines(10, 5000) });
    assert.equal(ok.statusCode, 200, ok.body);
    assert.equal(h.fake.flows.size, 10, 'only the second load\'s flows were committed');
  } finally {
    await h.close();
  }
});
