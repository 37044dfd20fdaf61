// GET/DELETE /v1/conntrack and /v1/conntrack/stats against the fake ferryd's tracker: NDJSON streamed
// over several CT_DUMPs of several parts, cursor pages, every filter pushed down, problems naming the
// parameter, flushes, counts.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { harness, Harness } from './helpers';
import { CT_DUMP_REQ, CtEntryFlag, CtFilterFlag, CtTcpState, CtTm, MsgType, Status, readCtDumpReq, readCtFilter } from '../src/gen/proto';
import type { CtSpec } from './fake-conntrack';

let h: Harness;
const PAGE = 8;
before(async () => {
  h = await harness('ct-api', {}, { conntrack: { pageEntries: PAGE } });
});
after(async () => h.close());
beforeEach(() => {
  h.fake.ct.reset();
  h.fake.ct.dumpOverrun = 0;
  h.fake.ct.partLimit = Infinity;
  h.fake.rejecter = null;
});

type Res = { statusCode: number; headers: Record<string, unknown>; body: string; json(): any };
const get = (url: string): Promise<Res> => h.app.inject({ url });
const ndjson = (r: Res): any[] => r.body.split('\n').filter(Boolean).map((l) => JSON.parse(l));
function problem(r: Res, pointer: string, detail: RegExp): void {
  assert.equal(r.statusCode, 400, r.body);
  assert.match(String(r.headers['content-type']), /^application\/problem\+json/);
  const p = r.json();
  assert.equal(p.errors?.[0]?.pointer, pointer, r.body);
  assert.match(p.detail, detail);
}
/** The ct_filter of the last CT_DUMP (or CT_FLUSH) ferryd received. */
function lastFilter(type: number = MsgType.CT_DUMP) {
  const r = h.fake.received.filter((x) => x.type === type).at(-1)!;
  const dv = new DataView(r.body!.buffer, r.body!.byteOffset, r.body!.byteLength);
  return type === MsgType.CT_DUMP ? readCtDumpReq(dv, 0).filter : readCtFilter(dv, 0);
}

const tcp = (i: number, more: Partial<CtSpec> = {}): CtSpec => ({
  src: `10.0.${i >> 8}.${i & 255}`, dst: '10.9.0.1', sport: 10000 + i, dport: 80, proto: 6,
  state_orig: CtTcpState.ESTABLISHED, state_reply: CtTcpState.ESTABLISHED, flags: CtEntryFlag.SEEN_REPLY, ...more,
});

test('GET /v1/conntrack streams NDJSON, one entry a line, page by page from ferryd', async () => {
  for (let i = 0; i < 50; i++) h.fake.ct.add(tcp(i));
  const dumps0 = h.fake.ct.served.dumps;
  const r = await get('/v1/conntrack');
  assert.equal(r.statusCode, 200, r.body);
  assert.match(String(r.headers['content-type']), /^application\/x-ndjson/);
  const rows = ndjson(r);
  assert.equal(rows.length, 50);
  assert.deepEqual(rows.map((x) => x.sport), Array.from({ length: 50 }, (_, i) => 10000 + i), 'in table order, none twice');
  const dumps = h.fake.ct.served.dumps - dumps0;
  assert.ok(dumps >= Math.ceil(50 / PAGE), `${dumps} CT_DUMPs for 50 entries in pages of ${PAGE}`);
  const reqs = h.fake.received.filter((x) => x.type === MsgType.CT_DUMP).slice(-dumps);
  const dv = (b: Buffer) => new DataView(b.buffer, b.byteOffset, b.byteLength);
  assert.ok(reqs.every((x) => readCtDumpReq(dv(x.body!), 0).max_entries === PAGE), 'max_entries is the page size, never 0');
  assert.equal(reqs[0]!.len, CT_DUMP_REQ.size);
});

test('an entry in JSON: tuple, states, flags, mark, label, timeout, counters as strings, ISO times', async () => {
  const t0 = Date.now();
  h.fake.ct.add(tcp(1, {
    zone: 5, state_orig: CtTcpState.FIN_WAIT_2, state_reply: CtTcpState.TIME_WAIT, mark: 42, label: '0102', timeout_ms: 119_999,
    tm: CtTm.TCP_TIME_WAIT, packets_orig: 3n, bytes_orig: 180n, packets_reply: 2n, bytes_reply: 120n,
    first_seen_ns: process.hrtime.bigint() - 5_000_000_000n,
  }));
  h.fake.ct.add({ src: 'fd00::1', dst: 'fd00::2', proto: 17, sport: 53, dport: 5353, flags: 0, zone: 0 });
  h.fake.ct.add({ src: '10.0.0.1', dst: '10.0.0.2', proto: 1, sport: 7, dport: 7, icmp_type: 8, icmp_code: 0, flags: CtEntryFlag.SEEN_REPLY });
  const [a, b, c] = ndjson(await get('/v1/conntrack'));
  assert.deepEqual({ ...a, first_seen: undefined, last_seen: undefined }, {
    zone: 5, proto: 'tcp', proto_num: 6, family: 'ipv4', src: '10.0.0.1', dst: '10.9.0.1', sport: 10001, dport: 80,
    reply: { src: '10.9.0.1', dst: '10.0.0.1', sport: 80, dport: 10001 }, state: 'TIME_WAIT', state_orig: 'FIN_WAIT_2', state_reply: 'TIME_WAIT', seen_reply: true, assured: true, be_liberal: false,
    mark: 42, label: '0x00000000000000000000000000000102', timeout: 119, timeout_attr: 'tcp_time_wait',
    packets_orig: '3', bytes_orig: '180', packets_reply: '2', bytes_reply: '120', first_seen: undefined, last_seen: undefined,
  });
  const age = (t0 - Date.parse(a.first_seen)) / 1000;
  assert.ok(age > 4 && age < 7, `first_seen is ~5 s ago (${age})`);
  assert.ok(Math.abs(Date.parse(a.last_seen) - t0) < 2000, 'last_seen is now');
  assert.equal(b.family, 'ipv6');
  assert.equal(b.src, 'fd00::1');
  assert.equal(b.proto, 'udp');
  assert.equal(b.state, undefined, 'no TCP state for udp');
  assert.equal(b.seen_reply, false);
  assert.equal(b.assured, false);
  assert.equal(c.proto, 'icmp');
  assert.equal(c.icmp_type, 8);
  assert.equal(c.icmp_code, 0);
  assert.equal(c.sport, 7);
});

test('?limit pages with next_cursor; ferryd giving more than asked, or stopping early, loses and repeats nothing', async () => {
  for (let i = 0; i < 23; i++) h.fake.ct.add(tcp(i));
  for (const [overrun, partLimit] of [[0, Infinity], [3, Infinity], [0, 1], [5, 2]] as const) {
    h.fake.ct.dumpOverrun = overrun;
    h.fake.ct.partLimit = partLimit;
    const seen: number[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const r: Res = await get(`/v1/conntrack?limit=5${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      assert.equal(r.statusCode, 200, r.body);
      const page = r.json();
      assert.ok(page.entries.length <= 5);
      for (const e of page.entries) seen.push(e.sport - 10000);
      cursor = page.next_cursor;
      assert.ok(++pages < 30, 'paging ends');
    } while (cursor);
    assert.deepEqual(seen, Array.from({ length: 23 }, (_, i) => i), `overrun ${overrun}, ${partLimit} parts at most`);
    // and the NDJSON stream under the same conditions
    assert.deepEqual(ndjson(await get('/v1/conntrack')).map((e) => e.sport - 10000), seen);
  }
  problem(await get('/v1/conntrack?limit=5&cursor=abc'), '?cursor', /cursor/);
  problem(await get('/v1/conntrack?limit=5&cursor=99999999999999999999'), '?cursor', /not a cursor/);
  problem(await get('/v1/conntrack?limit=0'), '?limit', /limit/);
});

test('every filter is pushed down into ct_filter and selects what it should', async () => {
  const ct = h.fake.ct;
  ct.add(tcp(1, { zone: 5, mark: 0x12, label: 'ff00' }));
  ct.add(tcp(2, { zone: 6, state_orig: CtTcpState.SYN_SENT, state_reply: CtTcpState.CLOSED, flags: 0 }));
  ct.add({ src: '192.168.1.10', dst: '10.0.0.1', proto: 17, sport: 53, dport: 40000, zone: 5, mark: 0x13 });
  ct.add({ src: 'fd00::1', dst: 'fd00:1::2', proto: 58, sport: 9, dport: 9, icmp_type: 128 });
  ct.add({ src: '10.9.0.1', dst: '10.0.0.1', proto: 132, sport: 80, dport: 10001 });
  const sel = async (q: string): Promise<string[]> => {
    const r = await get(`/v1/conntrack?${q}`);
    assert.equal(r.statusCode, 200, `${q}: ${r.body}`);
    return ndjson(r).map((e) => `${e.proto}:${e.src}:${e.sport}`);
  };
  assert.deepEqual(await sel('zone=5'), ['tcp:10.0.0.1:10001', 'udp:192.168.1.10:53']);
  assert.equal(lastFilter().flags, CtFilterFlag.ZONE);
  assert.equal(lastFilter().zone, 5);
  assert.deepEqual(await sel('proto=udp'), ['udp:192.168.1.10:53']);
  assert.deepEqual(await sel('proto=132'), ['sctp:10.9.0.1:80']);
  assert.deepEqual(await sel('proto=ICMPv6'), ['icmpv6:fd00::1:9']);
  assert.deepEqual(await sel('src=10.0.0.0/24'), ['tcp:10.0.0.1:10001', 'tcp:10.0.0.2:10002']);
  let f = lastFilter();
  assert.equal(f.flags, CtFilterFlag.SRC | CtFilterFlag.IP_VERSION, 'an address implies its family');
  assert.deepEqual([f.src.slice(0, 4), f.src_plen, f.ip_version], [[10, 0, 0, 0], 24, 4]);
  assert.deepEqual(await sel('dst=fd00:1::/32'), ['icmpv6:fd00::1:9']);
  f = lastFilter();
  assert.deepEqual([f.dst.slice(0, 4), f.dst_plen, f.ip_version], [[0xfd, 0, 0, 1], 32, 6]);
  assert.deepEqual(await sel('src=10.0.0.1/8'), ['tcp:10.0.0.1:10001', 'tcp:10.0.0.2:10002', 'sctp:10.9.0.1:80'], 'host bits past the prefix are ignored');
  assert.deepEqual(await sel('sport=53'), ['udp:192.168.1.10:53']);
  assert.deepEqual(await sel('dport=80'), ['tcp:10.0.0.1:10001', 'tcp:10.0.0.2:10002']);
  assert.deepEqual(await sel('state=ESTABLISHED'), ['tcp:10.0.0.1:10001']);
  f = lastFilter();
  assert.equal(f.flags, CtFilterFlag.TCP_STATE | CtFilterFlag.PROTO, 'a state implies tcp');
  assert.deepEqual([f.tcp_state, f.proto], [CtTcpState.ESTABLISHED, 6]);
  assert.deepEqual(await sel('state=syn-sent'), ['tcp:10.0.0.2:10002']);
  assert.deepEqual(await sel('mark=0x12'), ['tcp:10.0.0.1:10001']);
  assert.deepEqual(await sel('mark=0x12/0xfe'), ['tcp:10.0.0.1:10001', 'udp:192.168.1.10:53']);
  f = lastFilter();
  assert.deepEqual([f.mark, f.mark_mask], [0x12, 0xfe]);
  assert.deepEqual(await sel('label=0xff00'), ['tcp:10.0.0.1:10001']);
  assert.deepEqual(await sel('label=0x0100/0x0100'), ['tcp:10.0.0.1:10001']);
  f = lastFilter();
  assert.deepEqual([f.label.slice(14), f.label_mask.slice(14), f.label_mask.slice(0, 14).every((b) => b === 0)], [[1, 0], [1, 0], true]);
  assert.deepEqual(await sel('family=ipv6'), ['icmpv6:fd00::1:9']);
  assert.deepEqual(await sel('family=ipv4&proto=tcp&zone=6'), ['tcp:10.0.0.2:10002']);
  // either direction: the sctp entry's reply direction is 10.0.0.1:10001 -> 10.9.0.1:80
  assert.deepEqual(await sel('src=10.0.0.1&sport=10001'), ['tcp:10.0.0.1:10001']);
  assert.deepEqual(await sel('src=10.0.0.1&sport=10001&either_dir=true'), ['tcp:10.0.0.1:10001', 'sctp:10.9.0.1:80']);
  assert.ok(lastFilter().flags & CtFilterFlag.EITHER_DIR);
  assert.deepEqual(await sel('dst=10.0.0.1&either_dir=1'), ['tcp:10.0.0.1:10001', 'udp:192.168.1.10:53', 'sctp:10.9.0.1:80']);
});

test('bad filter values are 400 problems naming the parameter', async () => {
  problem(await get('/v1/conntrack?zone=70000'), '?zone', /zone/);
  problem(await get('/v1/conntrack?zone=x'), '?zone', /zone/);
  problem(await get('/v1/conntrack?proto=bogus'), '?proto', /"bogus" is not tcp, udp/);
  problem(await get('/v1/conntrack?proto=300'), '?proto', /protocol number 0\.\.255/);
  problem(await get('/v1/conntrack?src=10.0.0.300'), '?src', /not an IPv4 or IPv6 address/);
  problem(await get('/v1/conntrack?dst=1.2.3.4/33'), '?dst', /prefix length "33" is not 0\.\.32/);
  problem(await get('/v1/conntrack?src=fd00::/129'), '?src', /0\.\.128/);
  problem(await get('/v1/conntrack?src=10.0.0.1&dst=fd00::1'), '?dst', /IPv6 but \?src is IPv4/);
  problem(await get('/v1/conntrack?family=ipv6&src=10.0.0.1'), '?src', /IPv4 but \?family is IPv6/);
  problem(await get('/v1/conntrack?family=ipx'), '?family', /family/);
  problem(await get('/v1/conntrack?sport=65536'), '?sport', /sport/);
  problem(await get('/v1/conntrack?dport=http'), '?dport', /dport/);
  problem(await get('/v1/conntrack?state=OPEN'), '?state', /"OPEN" is not a TCP state \(CLOSED, LISTEN/);
  problem(await get('/v1/conntrack?state=ESTABLISHED&proto=udp'), '?state', /tcp only/);
  problem(await get('/v1/conntrack?mark=0x1ffffffff'), '?mark', /32-bit/);
  problem(await get('/v1/conntrack?mark=1/2/3'), '?mark', /32-bit/);
  problem(await get('/v1/conntrack?label=xyz'), '?label', /128-bit hex/);
  problem(await get('/v1/conntrack?label=0x' + '1'.repeat(33)), '?label', /128-bit hex/);
  problem(await get('/v1/conntrack?either_dir=true'), '?either_dir', /needs at least one of src, dst, sport, dport/);
  problem(await get('/v1/conntrack?either_dir=maybe'), '?either_dir', /either_dir/);
  problem(await get('/v1/conntrack?bogus=1'), '?bogus', /not a known property/);
  problem(await h.app.inject({ method: 'DELETE', url: '/v1/conntrack?src=nope' }), '?src', /not an IPv4 or IPv6 address/);
  assert.equal(h.fake.received.filter((x) => x.type === MsgType.CT_FLUSH).length, 0, 'nothing was sent for a bad filter');
});

test('a NATed entry: reply is the translated tuple and nat names the translation, in the stream and in pages', async () => {
  const F = CtEntryFlag;
  // SNAT: 10.0.0.5:5555 -> 198.51.100.1:443 leaves as 203.0.113.1:40001
  h.fake.ct.add(tcp(5, {
    src: '10.0.0.5', dst: '198.51.100.1', sport: 5555, dport: 443, flags: F.SEEN_REPLY | F.SNAT,
    reply: { src: '198.51.100.1', dst: '203.0.113.1', sport: 443, dport: 40001 },
  }));
  // DNAT: 192.0.2.10 -> 203.0.113.80:80 is served by 10.0.0.80:8080
  h.fake.ct.add({ src: '192.0.2.10', dst: '203.0.113.80', proto: 6, sport: 33000, dport: 80, flags: F.DNAT, reply: { src: '10.0.0.80', sport: 8080 } });
  h.fake.ct.add(tcp(7));
  // an ICMP echo SNATed with a new id
  h.fake.ct.add({ src: '10.0.0.5', dst: '198.51.100.1', proto: 1, sport: 7, dport: 7, icmp_type: 8, flags: F.SEEN_REPLY | F.SNAT, reply: { dst: '203.0.113.1', sport: 1024, dport: 1024 } });
  h.fake.ct.add({ src: 'fd00::5', dst: '2001:db8::1', proto: 17, sport: 5353, dport: 53, flags: F.SNAT, reply: { dst: '2001:db8:ffff::1', dport: 61000 } });
  const rows = ndjson(await get('/v1/conntrack'));
  assert.equal(rows.length, 5);
  const [snat, dnat, plain, icmp, v6] = rows;
  assert.deepEqual([snat.src, snat.dst, snat.sport, snat.dport], ['10.0.0.5', '198.51.100.1', 5555, 443], 'the original tuple is untouched');
  assert.deepEqual(snat.reply, { src: '198.51.100.1', dst: '203.0.113.1', sport: 443, dport: 40001 });
  assert.equal(snat.nat, 'snat');
  assert.deepEqual(dnat.reply, { src: '10.0.0.80', dst: '192.0.2.10', sport: 8080, dport: 33000 });
  assert.equal(dnat.nat, 'dnat');
  assert.deepEqual(plain.reply, { src: '10.9.0.1', dst: '10.0.0.7', sport: 80, dport: 10007 }, 'not NATed: the original turned round');
  assert.ok(!('nat' in plain), 'no nat field without a translation');
  assert.deepEqual(icmp.reply, { src: '198.51.100.1', dst: '203.0.113.1', sport: 1024, dport: 1024 }, 'ICMP: the reply\'s echo id in both');
  assert.deepEqual([icmp.sport, icmp.dport, icmp.nat], [7, 7, 'snat']);
  assert.deepEqual(v6.reply, { src: '2001:db8::1', dst: '2001:db8:ffff::1', sport: 53, dport: 61000 });
  // the JSON page shows the same
  const page = (await get('/v1/conntrack?limit=10')).json();
  assert.deepEqual(page.entries.map((e: any) => [e.reply, e.nat]), rows.map((e) => [e.reply, e.nat]));
});

test('either_dir selects and flushes NATed connections by their translated address and port', async () => {
  const F = CtEntryFlag;
  h.fake.ct.add(tcp(5, {
    src: '10.0.0.5', dst: '198.51.100.1', sport: 5555, dport: 443, flags: F.SEEN_REPLY | F.SNAT,
    reply: { src: '198.51.100.1', dst: '203.0.113.1', sport: 443, dport: 40001 },
  }));
  h.fake.ct.add({ src: '192.0.2.10', dst: '203.0.113.80', proto: 6, sport: 33000, dport: 80, flags: F.DNAT, reply: { src: '10.0.0.80', sport: 8080 } });
  h.fake.ct.add(tcp(7));
  h.fake.ct.add({ src: '10.0.0.5', dst: '198.51.100.1', proto: 1, sport: 7, dport: 7, icmp_type: 8, flags: F.SNAT, reply: { dst: '203.0.113.1', sport: 1024, dport: 1024 } });
  const sel = async (q: string): Promise<string[]> => {
    const r = await get(`/v1/conntrack?${q}`);
    assert.equal(r.statusCode, 200, `${q}: ${r.body}`);
    return ndjson(r).map((e) => `${e.proto}:${e.src}:${e.sport}`);
  };
  // the translated source is the reply's destination: nothing has it in the original direction
  assert.deepEqual(await sel('dst=203.0.113.1'), []);
  assert.deepEqual(await sel('dst=203.0.113.1&either_dir=true'), ['tcp:10.0.0.5:5555', 'icmp:10.0.0.5:7']);
  let f = lastFilter();
  assert.equal(f.flags, CtFilterFlag.DST | CtFilterFlag.IP_VERSION | CtFilterFlag.EITHER_DIR);
  assert.deepEqual([f.dst.slice(0, 4), f.dst_plen], [[203, 0, 113, 1], 32]);
  assert.deepEqual(await sel('dst=203.0.113.1&dport=40001&either_dir=true'), ['tcp:10.0.0.5:5555'], 'the translated port too');
  f = lastFilter();
  assert.deepEqual([f.flags & CtFilterFlag.EITHER_DIR, f.dport], [CtFilterFlag.EITHER_DIR, 40001]);
  // the translated destination of a DNAT is the reply's source
  assert.deepEqual(await sel('src=10.0.0.80&sport=8080&either_dir=1'), ['tcp:192.0.2.10:33000']);
  assert.deepEqual(await sel('src=10.0.0.80'), []);

  // conntrack -D --either-dir -d <translated address>: flush what was SNATed to 203.0.113.1
  let r = await h.app.inject({ method: 'DELETE', url: '/v1/conntrack?dst=203.0.113.1&either_dir=true' });
  assert.equal(r.statusCode, 200, r.body);
  assert.deepEqual(r.json(), { deleted: '2' });
  f = lastFilter(MsgType.CT_FLUSH);
  assert.equal(f.flags, CtFilterFlag.DST | CtFilterFlag.IP_VERSION | CtFilterFlag.EITHER_DIR);
  assert.deepEqual(f.dst.slice(0, 4), [203, 0, 113, 1]);
  assert.deepEqual(ndjson(await get('/v1/conntrack')).map((e) => e.nat ?? null), ['dnat', null], 'the DNAT and the plain one are left');
  r = await h.app.inject({ method: 'DELETE', url: '/v1/conntrack?src=10.0.0.80&either_dir=true' });
  assert.deepEqual(r.json(), { deleted: '1' });
  assert.deepEqual(ndjson(await get('/v1/conntrack')).map((e) => e.sport), [10007]);
  problem(await h.app.inject({ method: 'DELETE', url: '/v1/conntrack?dst=203.0.113.1&either_dir=sometimes' }), '?either_dir', /either_dir/);
});

test('DELETE /v1/conntrack flushes what the filter selects, or everything', async () => {
  for (let i = 0; i < 10; i++) h.fake.ct.add(tcp(i, { zone: i % 2 }));
  h.fake.ct.add({ src: '10.1.1.1', dst: '10.2.2.2', proto: 17, sport: 1, dport: 2, zone: 1 });
  let r = await h.app.inject({ method: 'DELETE', url: '/v1/conntrack?zone=1&proto=tcp' });
  assert.equal(r.statusCode, 200, r.body);
  assert.deepEqual(r.json(), { deleted: '5' });
  assert.equal(lastFilter(MsgType.CT_FLUSH).flags, CtFilterFlag.ZONE | CtFilterFlag.PROTO);
  assert.equal(h.fake.ct.entries.size, 6);
  assert.ok([...h.fake.ct.entries.values()].every((e) => e.zone === 0 || e.proto === 17));
  r = await h.app.inject({ method: 'DELETE', url: '/v1/conntrack' });
  assert.deepEqual(r.json(), { deleted: '6' });
  assert.equal(lastFilter(MsgType.CT_FLUSH).flags, 0, 'no filter: all');
  assert.equal(h.fake.ct.entries.size, 0);
  assert.equal(ndjson(await get('/v1/conntrack')).length, 0);
});

test('GET /v1/conntrack/stats: totals by protocol and TCP state, every zone (paged past 80)', async () => {
  const ct = h.fake.ct;
  for (let z = 0; z < 100; z++) ct.add(tcp(z, { zone: z * 3 }));
  ct.add(tcp(200, { zone: 3, state_orig: CtTcpState.TIME_WAIT, state_reply: CtTcpState.FIN_WAIT_2 }));
  ct.add({ src: '1.1.1.1', dst: '2.2.2.2', proto: 17, zone: 3 });
  ct.add({ src: 'fd00::1', dst: 'fd00::2', proto: 58 });
  ct.add({ src: '1.1.1.1', dst: '2.2.2.2', proto: 47 });
  const stats0 = ct.served.stats;
  const r = await get('/v1/conntrack/stats');
  assert.equal(r.statusCode, 200, r.body);
  const s = r.json();
  assert.equal(s.total, '104');
  assert.deepEqual(s.by_proto, { tcp: '101', udp: '1', icmp: '0', icmpv6: '1', sctp: '0', other: '1' });
  assert.equal(s.by_tcp_state.ESTABLISHED, '100');
  assert.equal(s.by_tcp_state.TIME_WAIT, '1');
  assert.equal(s.by_tcp_state.CLOSED, '0');
  assert.equal(Object.keys(s.by_tcp_state).length, 11);
  assert.equal(s.zones.length, 100);
  assert.deepEqual(s.zones[0], { zone: 0, count: '3' });
  assert.deepEqual(s.zones[1], { zone: 3, count: '3' });
  assert.deepEqual(s.zones.at(-1), { zone: 297, count: '1' });
  assert.equal(ct.served.stats - stats0, 2, '100 zones take two CT_STATS of 80');
  assert.equal(s.max_conns, '3000000');
  assert.deepEqual(s.counters, { expired: '0', flushed: '0', sweeps: '0', events_dropped: '0' });
});

test('a refusal is a problem before the stream starts, an error line after', async () => {
  h.fake.ct.add(tcp(1));
  h.fake.rejecter = (r) => (r.type === MsgType.CT_DUMP ? { status: Status.EINVAL, message: 'filter refused' } : null);
  let r = await get('/v1/conntrack?zone=1');
  assert.equal(r.statusCode, 400, r.body);
  assert.match(r.json().detail, /CT_DUMP: ferryd refused it: EINVAL: filter refused/);
  // the second CT_DUMP of a stream is refused: the stream ends with an error line
  for (let i = 2; i < 20; i++) h.fake.ct.add(tcp(i));
  let n = 0;
  h.fake.rejecter = (x) => (x.type === MsgType.CT_DUMP && ++n === 2 ? { status: Status.EINTERNAL, message: 'table busy' } : null);
  r = await get('/v1/conntrack');
  assert.equal(r.statusCode, 200);
  const rows = ndjson(r);
  assert.equal(rows.length, PAGE + 1);
  assert.match(rows.at(-1).error.detail, /EINTERNAL: table busy/);
  assert.equal(rows.at(-1).error.status, 502);
});
