// Conntrack limits, timeout policies and options (kept as desired state, replayed to a restarted
// ferryd before the flows), and the live events stream with its fan-out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { harness, until, Harness } from './helpers';
import { CtEntryFlag, CtTcpState, CtTm, EventType, MsgType, Status } from '../src/gen/proto';
import { CtEventHub } from '../src/conntrack/events';
import type { CtEventRecord, FerryEvent } from '../src/events';
import { DEFAULT_MAX_CONNS } from './fake-conntrack';

type Res = { statusCode: number; headers: Record<string, unknown>; body: string; json(): any };
const send = (h: Harness, method: 'GET' | 'PUT' | 'DELETE', url: string, payload?: unknown): Promise<Res> =>
  h.app.inject({ method, url, ...(payload !== undefined ? { payload: payload as object } : {}) });
function problem(r: Res, status: number, pointer: string, detail?: RegExp): void {
  assert.equal(r.statusCode, status, r.body);
  assert.match(String(r.headers['content-type']), /^application\/problem\+json/);
  assert.equal(r.json().errors?.[0]?.pointer, pointer, r.body);
  if (detail) assert.match(r.json().detail, detail);
}

test('limits: PUT applies what it names (null removes), GET shows them with live zone counts', async () => {
  const h = await harness('ct-limits');
  try {
    let r = await send(h, 'GET', '/v1/conntrack/limits');
    assert.deepEqual(r.json(), { max_conns: null, default_zone_limit: null, zones: [], connections: '0', max_conns_in_force: String(DEFAULT_MAX_CONNS) });
    for (let z = 0; z < 100; z++) h.fake.ct.add({ src: '10.0.0.1', dst: '10.0.0.2', sport: z, dport: 80, zone: z });
    h.fake.ct.add({ src: '10.0.0.1', dst: '10.0.0.2', sport: 1000, dport: 80, zone: 95 });
    r = await send(h, 'PUT', '/v1/conntrack/limits', { max_conns: 1000, default_zone_limit: 50, zones: [{ zone: 1, limit: 10 }, { zone: 95, limit: 0 }, { zone: 4000, limit: 7 }] });
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(h.fake.ct.maxConns, 1000);
    assert.equal(h.fake.ct.defaultZoneLimit, 50);
    assert.deepEqual([...h.fake.ct.zoneLimits].sort(([a], [b]) => a - b), [[1, 10], [95, 0], [4000, 7]]);
    const stats0 = h.fake.ct.served.stats;
    r = await send(h, 'GET', '/v1/conntrack/limits');
    assert.deepEqual(r.json(), {
      max_conns: 1000, default_zone_limit: 50, connections: '101', max_conns_in_force: '1000',
      zones: [{ zone: 1, limit: 10, count: '1' }, { zone: 95, limit: 0, count: '2' }, { zone: 4000, limit: 7, count: '0' }],
    });
    assert.equal(h.fake.ct.served.stats - stats0, 2, 'zones 1..80 in one CT_STATS, 95 (and past it) in another');

    r = await send(h, 'PUT', '/v1/conntrack/limits', { zones: [{ zone: 1, limit: null }] });
    assert.equal(r.statusCode, 200, r.body);
    assert.deepEqual(r.json().zones.map((z: { zone: number }) => z.zone), [95, 4000]);
    assert.equal(r.json().max_conns, 1000, 'fields left out stay');
    assert.ok(!h.fake.ct.zoneLimits.has(1));
    r = await send(h, 'PUT', '/v1/conntrack/limits', { max_conns: null, default_zone_limit: null });
    assert.deepEqual([r.json().max_conns, r.json().default_zone_limit], [null, null]);
    assert.equal(h.fake.ct.maxConns, DEFAULT_MAX_CONNS, 'GLOBAL clear=1: back to ferryd\'s own');
    assert.equal(h.fake.ct.defaultZoneLimit, 0, 'unlimited');

    problem(await send(h, 'PUT', '/v1/conntrack/limits', { max_conns: 0 }), 400, '/max_conns');
    problem(await send(h, 'PUT', '/v1/conntrack/limits', { default_zone_limit: 'many' }), 400, '/default_zone_limit');
    problem(await send(h, 'PUT', '/v1/conntrack/limits', { zones: [{ zone: 70000, limit: 1 }] }), 400, '/zones/0/zone');
    problem(await send(h, 'PUT', '/v1/conntrack/limits', { zones: [{ zone: 3 }] }), 400, '/zones/0/limit');
    problem(await send(h, 'PUT', '/v1/conntrack/limits', { zones: [{ zone: 3, limit: 1 }, { zone: 3, limit: 2 }] }), 400, '/zones/1/zone', /given twice/);
    problem(await send(h, 'PUT', '/v1/conntrack/limits', { bogus: 1 }), 400, '/bogus');
    // ferryd refuses one: those before it are applied (and kept), the refusal names its place
    h.fake.rejecter = (x) => (x.type === MsgType.CT_SET_LIMIT && x.body!.readUInt16LE(2) === 9 ? { status: Status.EINVAL, message: 'no' } : null);
    problem(await send(h, 'PUT', '/v1/conntrack/limits', { zones: [{ zone: 8, limit: 1 }, { zone: 9, limit: 1 }] }), 400, '/zones/1/limit', /zones\[1\]: ferryd refused it: EINVAL: no/);
    assert.deepEqual((await send(h, 'GET', '/v1/conntrack/limits')).json().zones.map((z: { zone: number }) => z.zone), [8, 95, 4000]);
  } finally {
    await h.close();
  }
});

test('timeout policies: PUT a zone\'s (attributes by OVS name, seconds), GET, DELETE', async () => {
  const h = await harness('ct-tp');
  try {
    let r = await send(h, 'PUT', '/v1/conntrack/timeout-policies/5', { tcp_established: 3600, udp_single: 20, icmp_reply: 5 });
    assert.equal(r.statusCode, 200, r.body);
    assert.deepEqual(r.json(), { zone: 5, tcp_established: 3600, udp_single: 20, icmp_reply: 5 });
    const secs = new Array<number>(11).fill(0);
    secs[CtTm.TCP_ESTABLISHED] = 3600;
    secs[CtTm.UDP_SINGLE] = 20;
    secs[CtTm.ICMP_REPLY] = 5;
    assert.deepEqual(h.fake.ct.policies.get(5), secs, 'seconds by ct_tm, 0 = default');
    await send(h, 'PUT', '/v1/conntrack/timeout-policies/2', { tcp_syn_sent: 30 });
    r = await send(h, 'GET', '/v1/conntrack/timeout-policies');
    assert.deepEqual(r.json(), { items: [{ zone: 2, tcp_syn_sent: 30 }, { zone: 5, tcp_established: 3600, udp_single: 20, icmp_reply: 5 }] });
    r = await send(h, 'PUT', '/v1/conntrack/timeout-policies/5', { icmp_first: 10 });
    assert.deepEqual(r.json(), { zone: 5, icmp_first: 10 }, 'a PUT replaces the zone\'s policy');
    assert.deepEqual((await send(h, 'GET', '/v1/conntrack/timeout-policies/5')).json(), { zone: 5, icmp_first: 10 });
    assert.equal((await send(h, 'GET', '/v1/conntrack/timeout-policies/6')).statusCode, 404);
    assert.equal((await send(h, 'DELETE', '/v1/conntrack/timeout-policies/5')).statusCode, 204);
    assert.ok(!h.fake.ct.policies.has(5));
    const clear = h.fake.received.filter((x) => x.type === MsgType.CT_SET_TIMEOUT_POLICY).at(-1)!;
    assert.deepEqual([clear.body!.readUInt16LE(0), clear.body![2]], [5, 1], 'zone 5, clear=1');
    assert.deepEqual((await send(h, 'GET', '/v1/conntrack/timeout-policies')).json().items.map((p: { zone: number }) => p.zone), [2]);

    problem(await send(h, 'PUT', '/v1/conntrack/timeout-policies/5', { tcp_bogus: 1 }), 400, '/tcp_bogus', /not a known property/);
    problem(await send(h, 'PUT', '/v1/conntrack/timeout-policies/5', { tcp_close: 0 }), 400, '/tcp_close');
    problem(await send(h, 'PUT', '/v1/conntrack/timeout-policies/5', { tcp_close: 5_000_000 }), 400, '/tcp_close');
    problem(await send(h, 'PUT', '/v1/conntrack/timeout-policies/5', { tcp_close: '5' }), 400, '/tcp_close');
    problem(await send(h, 'PUT', '/v1/conntrack/timeout-policies/70000', {}), 400, ':zone');
    h.fake.rejecter = (x) => (x.type === MsgType.CT_SET_TIMEOUT_POLICY ? { status: Status.ENOSPC, message: 'no policy slot left' } : null);
    r = await send(h, 'PUT', '/v1/conntrack/timeout-policies/9', { tcp_close: 5 });
    assert.equal(r.statusCode, 507, r.body);
    assert.match(r.json().detail, /no policy slot left/);
    assert.equal((await send(h, 'GET', '/v1/conntrack/timeout-policies/9')).statusCode, 404, 'a refused policy is not kept');
  } finally {
    await h.close();
  }
});

test('options: GET defaults, PUT changes what it names', async () => {
  const h = await harness('ct-opt');
  try {
    assert.deepEqual((await send(h, 'GET', '/v1/conntrack/options')).json(), { tcp_seq_check: true, events: false, events_in_effect: false, event_subscribers: 0 });
    let r = await send(h, 'PUT', '/v1/conntrack/options', { tcp_seq_check: false });
    assert.deepEqual(r.json(), { tcp_seq_check: false, events: false, events_in_effect: false, event_subscribers: 0 });
    assert.equal(h.fake.ct.tcpSeqCheck, false);
    r = await send(h, 'PUT', '/v1/conntrack/options', { events: true });
    assert.deepEqual(r.json(), { tcp_seq_check: false, events: true, events_in_effect: true, event_subscribers: 0 });
    assert.equal(h.fake.ct.events, true);
    problem(await send(h, 'PUT', '/v1/conntrack/options', { events: 'yes' }), 400, '/events');
    problem(await send(h, 'PUT', '/v1/conntrack/options', { nat: true }), 400, '/nat');
  } finally {
    await h.close();
  }
});

/**
 * Opens an NDJSON stream and collects its lines as they come. node:http on a connection of its own
 * (fetch's pool opens a spare connection after a cancel, which would hold up the server's close).
 */
function openStream(url: string): Promise<{ status: number; type: string; lines: any[]; close(): void }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false }, (res) => {
      const lines: any[] = [];
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        buf += d;
        const parts = buf.split('\n');
        buf = parts.pop()!;
        for (const l of parts) if (l) lines.push(JSON.parse(l));
      });
      res.on('error', () => undefined);
      resolve({ status: res.statusCode!, type: String(res.headers['content-type']), lines, close: () => req.destroy() });
    });
    req.on('error', reject);
  });
}

test('events: the first subscriber turns ferryd\'s events on, every subscriber gets every event, the last one off', async () => {
  const h = await harness('ct-ev');
  try {
    await h.app.listen({ port: 0, host: '127.0.0.1' });
    const url = `http://127.0.0.1:${(h.app.server.address() as AddressInfo).port}/v1/conntrack/events`;
    assert.equal(h.fake.ct.events, false, 'off in ferryd until someone listens');
    h.fake.ct.add({ src: '10.0.0.1', dst: '10.0.0.2' });
    const a = await openStream(url);
    assert.equal(a.status, 200);
    assert.match(a.type, /^application\/x-ndjson/);
    assert.equal(h.fake.ct.events, true, 'on before the response started');
    const b = await openStream(url);
    // a DNATed connection: 10.0.0.3:80 is answered by 10.0.0.9:8080
    const e = h.fake.ct.add({
      src: '10.0.0.1', dst: '10.0.0.3', sport: 1234, dport: 80, zone: 5, state_orig: CtTcpState.SYN_SENT,
      flags: CtEntryFlag.DNAT, reply: { src: '10.0.0.9', sport: 8080 },
    });
    h.fake.ct.add({ src: 'fd00::1', dst: 'fd00::2', proto: 17, sport: 53, dport: 53, zone: 6 });
    await until(() => a.lines.length >= 2 && b.lines.length >= 2, 2000, 'CT_NEW on both streams');
    assert.equal(a.lines[0].type, 'new');
    assert.equal(a.lines[0].reason, undefined);
    assert.equal(a.lines[0].entry.dst, '10.0.0.3');
    assert.equal(a.lines[0].entry.state, 'SYN_SENT');
    assert.deepEqual(a.lines[0].entry.reply, { src: '10.0.0.9', dst: '10.0.0.1', sport: 8080, dport: 1234 }, 'the translated reply tuple');
    assert.equal(a.lines[0].entry.nat, 'dnat');
    assert.deepEqual(a.lines[1].entry.reply, { src: 'fd00::2', dst: 'fd00::1', sport: 53, dport: 53 });
    assert.ok(!('nat' in a.lines[1].entry), 'no nat field without a translation');
    assert.ok(Math.abs(Date.parse(a.lines[0].time) - Date.now()) < 5000, 'time is wall-clock ISO');
    assert.deepEqual(b.lines, a.lines);
    assert.equal((await send(h, 'DELETE', '/v1/conntrack?zone=6')).json().deleted, '1');
    h.fake.ct.expire(e.id);
    await until(() => a.lines.length >= 4, 2000, 'CT_DESTROY events');
    assert.deepEqual(a.lines.slice(2).map((l) => [l.type, l.reason, l.entry.zone]), [['destroy', 'flushed', 6], ['destroy', 'expired', 5]]);
    assert.deepEqual([a.lines[3].entry.nat, a.lines[3].entry.reply.src], ['dnat', '10.0.0.9'], 'a destroy event carries the translation too');
    assert.deepEqual((await send(h, 'GET', '/v1/conntrack/options')).json(), { tcp_seq_check: true, events: false, events_in_effect: true, event_subscribers: 2 });
    assert.match((await send(h, 'GET', '/metrics')).body, /^ferry_ct_event_subscribers 2$/m);

    a.close();
    await until(async () => (await send(h, 'GET', '/v1/conntrack/options')).json().event_subscribers === 1, 2000, 'one left');
    assert.equal(h.fake.ct.events, true, 'still one subscriber');
    b.close();
    await until(() => h.fake.ct.events === false, 2000, 'events off after the last subscriber');

    // with the events option on, they stay on without subscribers
    await send(h, 'PUT', '/v1/conntrack/options', { events: true });
    (await openStream(url)).close();
    await until(async () => (await send(h, 'GET', '/v1/conntrack/options')).json().event_subscribers === 0, 2000, 'gone');
    assert.equal(h.fake.ct.events, true);
  } finally {
    await h.close();
  }
});

test('a subscriber that does not read is dropped with an overflow line, the others keep everything', async () => {
  const source = Object.assign(new EventEmitter(), { drained: 0, drainEvents(): number { this.drained++; return 0; } });
  const hub = new CtEventHub(source, { maxQueued: 5, highWaterMark: 256, drainIntervalMs: 5, dropGraceMs: 50 });
  const slow = hub.subscribe();
  const fast = hub.subscribe();
  const got: string[] = [];
  fast.on('data', (d: Buffer) => got.push(...d.toString().split('\n').filter(Boolean)));
  const ev = (i: number): CtEventRecord => ({
    type: 'ct', kind: 'new', seq: BigInt(i), timeNs: process.hrtime.bigint(), reason: 0,
    entry: {
      src: [10, 0, 0, 1, ...new Array<number>(12).fill(0)], dst: [10, 0, 0, 2, ...new Array<number>(12).fill(0)], sport: i, dport: 80, zone: 0,
      proto: 6, ip_version: 4, state_orig: 4, state_reply: 4, flags: 1, mark: 0, timeout_ms: 1000, label: new Array<number>(16).fill(0),
      icmp_type: 0, icmp_code: 0, tm: 2, pad0: 0, pad1: 0, packets_orig: 1n, bytes_orig: 1n, packets_reply: 1n, bytes_reply: 1n,
      first_seen_ns: 1n, last_seen_ns: 1n, reply_src: [10, 0, 0, 2, ...new Array<number>(12).fill(0)],
      reply_dst: [10, 0, 0, 1, ...new Array<number>(12).fill(0)], reply_sport: 80, reply_dport: i, pad2: 0,
    },
  });
  for (let i = 0; i < 40; i++) {
    source.emit('event', ev(i) as FerryEvent);
    await new Promise((r) => setImmediate(r));
  }
  assert.equal(hub.size, 1, 'the slow one is gone');
  assert.equal(hub.counters.subscribersDropped, 1);
  assert.equal(got.length, 40, 'the fast one got all 40');
  assert.deepEqual(got.map((l) => JSON.parse(l).entry.sport), Array.from({ length: 40 }, (_, i) => i));
  // the slow one finds what it had, then the overflow line, then the end
  const rest: string[] = [];
  slow.on('data', (d: Buffer) => rest.push(...d.toString().split('\n').filter(Boolean)));
  await new Promise((r) => slow.once('close', r));
  const last = JSON.parse(rest.at(-1)!);
  assert.equal(last.type, 'overflow');
  assert.match(last.detail, /more than 5 events behind/);
  assert.ok(rest.length < 40, `the slow one did not get everything (${rest.length})`);
  await until(() => source.drained > 0, 1000, 'the ring is drained while anyone listens');
  fast.destroy();
  await new Promise((r) => setImmediate(r));
  assert.equal(hub.size, 0);
});

test('a restarted ferryd gets limits, timeout policies, options (events on for a listener) before the flows', async () => {
  const h = await harness('ct-replay');
  try {
    await h.app.listen({ port: 0, host: '127.0.0.1' });
    const port = (h.app.server.address() as AddressInfo).port;
    assert.equal((await send(h, 'PUT', '/v1/conntrack/limits', { max_conns: 1000, default_zone_limit: 50, zones: [{ zone: 5, limit: 10 }, { zone: 7, limit: 0 }] })).statusCode, 200);
    assert.equal((await send(h, 'PUT', '/v1/conntrack/timeout-policies/5', { tcp_established: 3600, udp_single: 20 })).statusCode, 200);
    assert.equal((await send(h, 'PUT', '/v1/conntrack/options', { tcp_seq_check: false })).statusCode, 200);
    assert.equal((await h.app.inject({ method: 'POST', url: '/v1/flows', payload: { priority: 1, match: {}, actions: [] } })).statusCode, 201);
    const sub = await openStream(`http://127.0.0.1:${port}/v1/conntrack/events`);
    await h.fake.restart();
    assert.equal(h.fake.ct.maxConns, DEFAULT_MAX_CONNS, 'the new ferryd starts from its defaults');
    await until(async () => (await send(h, 'GET', '/health')).statusCode === 200, 3000, 'healthy again');
    const ct = h.fake.ct;
    assert.equal(ct.maxConns, 1000);
    assert.equal(ct.defaultZoneLimit, 50);
    assert.deepEqual([...ct.zoneLimits].sort(([x], [y]) => x - y), [[5, 10], [7, 0]]);
    const secs = new Array<number>(11).fill(0);
    secs[CtTm.TCP_ESTABLISHED] = 3600;
    secs[CtTm.UDP_SINGLE] = 20;
    assert.deepEqual(ct.policies.get(5), secs);
    assert.equal(ct.tcpSeqCheck, false);
    assert.equal(ct.events, true, 'someone listens');
    const types = h.fake.received.map((r) => r.type);
    const firstFlow = types.indexOf(MsgType.FLOW_CLEAR);
    assert.ok(firstFlow > 0, 'the flows were replayed');
    const isCt = (t: number): boolean => t >= MsgType.CT_DUMP && t <= MsgType.CT_SET_OPTIONS;
    const ctMsgs = types.slice(0, firstFlow).filter(isCt).length;
    assert.ok(types.slice(0, ctMsgs).every(isCt), `conntrack first (then the tunnel step): ${types.join(',')}`);
    assert.equal(ctMsgs, 1 + 1 + 1 + 2 + 1, 'options, global, default, 2 zones, 1 policy');
    // and the subscriber keeps getting the new ferryd's events
    ct.add({ src: '10.1.1.1', dst: '10.1.1.2' });
    await until(() => sub.lines.some((l) => l.entry?.src === '10.1.1.1'), 2000, 'an event from the new ferryd');
    sub.close();
    // a setting ferryd now refuses is logged and skipped, not retried forever
    h.fake.rejecter = (x) => (x.type === MsgType.CT_SET_TIMEOUT_POLICY ? { status: Status.ENOSPC, message: 'full' } : null);
    await h.fake.restart();
    await until(async () => (await send(h, 'GET', '/health')).statusCode === 200, 3000, 'healthy despite the refusal');
    assert.equal(h.fake.ct.maxConns, 1000);
  } finally {
    await h.close();
  }
});

test('while ferryd is down: 503 for dumps, flushes, settings and events; the desired state is still readable', async () => {
  const h = await harness('ct-down');
  try {
    await send(h, 'PUT', '/v1/conntrack/limits', { max_conns: 10 });
    await h.fake.die();
    await until(async () => (await send(h, 'GET', '/health')).statusCode === 503, 2000, 'down');
    for (const [m, u, p] of [['GET', '/v1/conntrack'], ['GET', '/v1/conntrack?limit=5'], ['DELETE', '/v1/conntrack'], ['GET', '/v1/conntrack/stats'],
      ['PUT', '/v1/conntrack/limits', { max_conns: 5 }], ['PUT', '/v1/conntrack/options', { events: true }], ['GET', '/v1/conntrack/events']] as const) {
      const r = await send(h, m, u, p);
      assert.equal(r.statusCode, 503, `${m} ${u}: ${r.body}`);
      assert.equal(r.json().type, 'urn:ferry:problem:ferryd-down');
    }
    const l = (await send(h, 'GET', '/v1/conntrack/limits')).json();
    assert.deepEqual([l.max_conns, l.connections, l.zones], [10, null, []]);
    assert.equal((await send(h, 'GET', '/v1/conntrack/options')).statusCode, 200);
    assert.equal((await send(h, 'GET', '/v1/conntrack/timeout-policies')).statusCode, 200);
  } finally {
    await h.close();
  }
});

test('CT events on the ring decode to their type, entry and reason', async () => {
  const h = await harness('ct-decode');
  try {
    const seen: FerryEvent[] = [];
    h.ferryd.on('event', (ev: FerryEvent) => seen.push(ev));
    const e = h.fake.ct.add({ src: '10.0.0.1', dst: '10.0.0.2', sport: 5, dport: 6, zone: 9, mark: 3, flags: CtEntryFlag.SNAT, reply: { dst: '192.0.2.7', dport: 40001 } });
    h.fake.ct.post(EventType.CT_DESTROY, e, 2, true);
    h.fake.ct.post(EventType.CT_NEW, e, 0, true);
    await until(() => (h.ferryd.drainEvents(), seen.length >= 2), 1000, 'events');
    const [d, n] = seen as CtEventRecord[];
    assert.deepEqual([d!.type, d!.kind, d!.reason, d!.entry.zone, d!.entry.mark, d!.entry.sport], ['ct', 'destroy', 2, 9, 3, 5]);
    assert.deepEqual([n!.kind, n!.entry.dst.slice(0, 4)], ['new', [10, 0, 0, 2]]);
    assert.deepEqual([n!.entry.flags, n!.entry.reply_src.slice(0, 4), n!.entry.reply_dst.slice(0, 4), n!.entry.reply_sport, n!.entry.reply_dport],
      [CtEntryFlag.SNAT, [10, 0, 0, 2], [192, 0, 2, 7], 6, 40001]);
  } finally {
    await h.close();
  }
});
