// GET /v1/conntrack/expectations and ferryctl dump-conntrack-exp against the fake ferryd's ALG
// expectations: CT_EXP_DUMP answers of several MORE parts, cursor pages, the zone filter, the JSON
// view (v4/v6, ftp/tftp), dpctl/dump-conntrack-exp's line format, 503 while ferryd is down.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { harness, Harness, until } from './helpers';
import { CT_EXP_DUMP_REQ, CtAlg, MsgType, Status, readCtExpDumpReq } from '../src/gen/proto';
import { CliError, run } from '../src/cli/ferryctl';
import type { CtExpSpec } from './fake-conntrack';

let h: Harness;
let api: string;
before(async () => {
  h = await harness('ct-exp', {}, { conntrack: {} });
  await h.app.listen({ port: 0, host: '127.0.0.1' });
  api = `http://127.0.0.1:${(h.app.server.address() as AddressInfo).port}`;
});
after(async () => h.close());
beforeEach(() => {
  h.fake.ct.reset();
  h.fake.rejecter = null;
});

type Res = { statusCode: number; headers: Record<string, unknown>; body: string; json(): any };
const get = (url: string): Promise<Res> => h.app.inject({ url });
const ndjson = (r: Res): any[] => r.body.split('\n').filter(Boolean).map((l) => JSON.parse(l));
const ctl = (...args: string[]): Promise<string> => run(['--api', api, ...args], {});
const expDumps = () => h.fake.received.filter((x) => x.type === MsgType.CT_EXP_DUMP);
const cursorOf = (r: { body?: Buffer }): number => readCtExpDumpReq(new DataView(r.body!.buffer, r.body!.byteOffset, r.body!.byteLength), 0).cursor;

/** FTP data connection i: the server 10.0.0.1 announced port 30000+i to the client 10.0.0.2 (passive mode). */
const ftp = (i: number, more: Partial<CtExpSpec> = {}): CtExpSpec => ({
  src: '10.0.0.2', dst: '10.0.0.1', dport: 30000 + i, proto: 6, alg: CtAlg.FTP, timeout_ms: 59_500,
  parent: { src: '10.0.0.2', dst: '10.0.0.1', sport: 40000 + i, dport: 21 }, ...more,
});

test('20 expectations in one CT_EXP_DUMP of 3 parts come out whole and in order', async () => {
  for (let i = 0; i < 20; i++) h.fake.ct.addExpectation(ftp(i));
  const served0 = { ...h.fake.ct.served };
  const r = await get('/v1/conntrack/expectations');
  assert.equal(r.statusCode, 200, r.body);
  assert.match(String(r.headers['content-type']), /^application\/x-ndjson/);
  const rows = ndjson(r);
  assert.deepEqual(rows.map((x) => x.expected.dport), Array.from({ length: 20 }, (_, i) => 30000 + i), 'all, in table order, none twice');
  assert.deepEqual(rows.map((x) => x.parent.sport), Array.from({ length: 20 }, (_, i) => 40000 + i));
  assert.equal(h.fake.ct.served.expDumps - served0.expDumps, 1, 'one request');
  assert.equal(h.fake.ct.served.expParts - served0.expParts, 3, 'answered in parts of 8, 8 and 4');
  const req = expDumps().at(-1)!;
  assert.equal(req.len, CT_EXP_DUMP_REQ.size);
  assert.equal(cursorOf(req), 0);
  // the JSON page carries the same
  const page = (await get('/v1/conntrack/expectations?limit=100')).json();
  assert.equal(page.next_cursor, null);
  assert.deepEqual(page.entries, rows);
});

test('an answer cut short by the response ring goes on from next_cursor, in the stream and in pages', async () => {
  for (let i = 0; i < 20; i++) h.fake.ct.addExpectation(ftp(i));
  h.fake.ct.expPartLimit = 1; // 8 entries an answer
  const n0 = expDumps().length;
  const rows = ndjson(await get('/v1/conntrack/expectations'));
  assert.deepEqual(rows.map((x) => x.expected.dport - 30000), Array.from({ length: 20 }, (_, i) => i));
  assert.deepEqual(expDumps().slice(n0).map(cursorOf), [0, 9, 17], 'each request from the previous next_cursor');
  for (const [limit, parts] of [[5, 1], [3, 2], [7, Infinity], [20, 1]] as const) {
    h.fake.ct.expPartLimit = parts;
    const seen: number[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const r: Res = await get(`/v1/conntrack/expectations?limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      assert.equal(r.statusCode, 200, r.body);
      const page = r.json();
      assert.ok(page.entries.length <= limit);
      for (const e of page.entries) seen.push(e.expected.dport - 30000);
      cursor = page.next_cursor;
      // less room on the next request than on this one: what was given out is still skipped
      if (parts === 2) h.fake.ct.expPartLimit = pages % 2 ? 2 : 1;
      assert.ok(++pages < 30, 'paging ends');
    } while (cursor);
    assert.deepEqual(seen, Array.from({ length: 20 }, (_, i) => i), `limit ${limit}, ${parts} parts at most`);
  }
  const bad = await get('/v1/conntrack/expectations?limit=5&cursor=4294967296');
  assert.equal(bad.statusCode, 400, bad.body);
  assert.equal(bad.json().errors?.[0]?.pointer, '?cursor');
  assert.equal((await get('/v1/conntrack/expectations?limit=0')).statusCode, 400);
  assert.equal((await get('/v1/conntrack/expectations?src=10.0.0.1')).statusCode, 400, 'zone is the only filter');
});

test('an expectation in JSON: v4 and v6, ftp and tftp, zone, mark, label, timeout', async () => {
  h.fake.ct.addExpectation(ftp(1, { zone: 5, mark: 42, label: '0102', timeout_ms: 59_999 }));
  h.fake.ct.addExpectation({
    src: '192.0.2.69', dst: '198.51.100.7', dport: 51000, proto: 17, alg: CtAlg.TFTP, timeout_ms: 4_000,
    parent: { src: '198.51.100.7', dst: '192.0.2.69', sport: 51000, dport: 69 },
  });
  h.fake.ct.addExpectation({
    src: '2001:db8::21', dst: 'fd00::2', dport: 20, proto: 6, alg: CtAlg.FTP, zone: 7, timeout_ms: 300_000,
    parent: { src: 'fd00::2', dst: '2001:db8::21', sport: 45000, dport: 21 },
  });
  h.fake.ct.addExpectation({
    src: 'fd00::69', dst: 'fd00::1:2', dport: 33333, proto: 17, alg: CtAlg.TFTP, timeout_ms: 999,
    parent: { src: 'fd00::1:2', dst: 'fd00::69', sport: 33333, dport: 69 },
  });
  const [a, b, c, d] = ndjson(await get('/v1/conntrack/expectations'));
  assert.deepEqual(a, {
    zone: 5, proto: 'tcp', proto_num: 6, family: 'ipv4', alg: 'ftp',
    expected: { src: '10.0.0.2', dst: '10.0.0.1', dport: 30001 },
    parent: { src: '10.0.0.2', dst: '10.0.0.1', sport: 40001, dport: 21 },
    mark: 42, label: '0x00000000000000000000000000000102', timeout_ms: 59_999, timeout: 59,
  });
  assert.deepEqual(b, {
    zone: 0, proto: 'udp', proto_num: 17, family: 'ipv4', alg: 'tftp',
    expected: { src: '192.0.2.69', dst: '198.51.100.7', dport: 51000 },
    parent: { src: '198.51.100.7', dst: '192.0.2.69', sport: 51000, dport: 69 },
    mark: 0, label: '0x' + '0'.repeat(32), timeout_ms: 4000, timeout: 4,
  });
  assert.deepEqual([c.family, c.alg, c.proto, c.zone, c.expected, c.parent], ['ipv6', 'ftp', 'tcp', 7,
    { src: '2001:db8::21', dst: 'fd00::2', dport: 20 }, { src: 'fd00::2', dst: '2001:db8::21', sport: 45000, dport: 21 }]);
  assert.deepEqual([d.family, d.alg, d.proto, d.expected.dst, d.parent.src, d.timeout], ['ipv6', 'tftp', 'udp', 'fd00::1:2', 'fd00::1:2', 0]);
});

test('?zone selects one zone\'s expectations, across parts and pages', async () => {
  for (let i = 0; i < 30; i++) h.fake.ct.addExpectation(ftp(i, { zone: i % 3 }));
  const rows = ndjson(await get('/v1/conntrack/expectations?zone=1'));
  assert.deepEqual(rows.map((x) => x.expected.dport - 30000), [1, 4, 7, 10, 13, 16, 19, 22, 25, 28]);
  assert.ok(rows.every((x) => x.zone === 1));
  assert.deepEqual(ndjson(await get('/v1/conntrack/expectations?zone=9')), [], 'an empty zone: no lines');
  h.fake.ct.expPartLimit = 1;
  const seen: number[] = [];
  let cursor: string | null = null;
  do {
    const page: any = (await get(`/v1/conntrack/expectations?zone=2&limit=3${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`)).json();
    assert.ok(page.entries.every((x: any) => x.zone === 2));
    for (const e of page.entries) seen.push(e.expected.dport - 30000);
    cursor = page.next_cursor;
  } while (cursor);
  assert.deepEqual(seen, [2, 5, 8, 11, 14, 17, 20, 23, 26, 29]);
  const bad = await get('/v1/conntrack/expectations?zone=70000');
  assert.equal(bad.statusCode, 400);
  assert.equal(bad.json().errors?.[0]?.pointer, '?zone');
});

test('a refusal is a problem before the stream starts, an error line after', async () => {
  for (let i = 0; i < 20; i++) h.fake.ct.addExpectation(ftp(i));
  h.fake.rejecter = (r) => (r.type === MsgType.CT_EXP_DUMP ? { status: Status.EUNSUPPORTED, message: 'no ALGs here' } : null);
  let r = await get('/v1/conntrack/expectations');
  assert.equal(r.statusCode >= 400, true, r.body);
  assert.match(r.json().detail, /CT_EXP_DUMP: ferryd refused it: EUNSUPPORTED: no ALGs here/);
  h.fake.ct.expPartLimit = 1;
  let n = 0;
  h.fake.rejecter = (x) => (x.type === MsgType.CT_EXP_DUMP && ++n === 2 ? { status: Status.EINTERNAL, message: 'busy' } : null);
  r = await get('/v1/conntrack/expectations');
  assert.equal(r.statusCode, 200);
  const rows = ndjson(r);
  assert.equal(rows.length, 9, 'the first answer, then the error');
  assert.match(rows.at(-1).error.detail, /EINTERNAL: busy/);
});

test('ferryctl dump-conntrack-exp prints dpctl/dump-conntrack-exp lines', async () => {
  const ct = h.fake.ct;
  ct.addExpectation(ftp(1, { zone: 5 }));
  ct.addExpectation({
    src: '192.0.2.69', dst: '198.51.100.7', dport: 51000, proto: 17, alg: CtAlg.TFTP, timeout_ms: 4_900, mark: 7, label: '00ff01',
    parent: { src: '198.51.100.7', dst: '192.0.2.69', sport: 51000, dport: 69 },
  });
  ct.addExpectation({
    src: '2001:db8::21', dst: 'fd00::2', dport: 20, proto: 6, alg: CtAlg.FTP, zone: 7, timeout_ms: 300_000,
    parent: { src: 'fd00::2', dst: '2001:db8::21', sport: 45000, dport: 21 },
  });
  const all = [
    'tcp,orig=(src=10.0.0.2,dst=10.0.0.1,sport=0,dport=30001),zone=5,parent=(src=10.0.0.2,dst=10.0.0.1,sport=40001,dport=21),timeout=59,alg=ftp',
    'udp,orig=(src=192.0.2.69,dst=198.51.100.7,sport=0,dport=51000),mark=7,labels=0xff01,parent=(src=198.51.100.7,dst=192.0.2.69,sport=51000,dport=69),timeout=4,alg=tftp',
    'tcp,orig=(src=2001:db8::21,dst=fd00::2,sport=0,dport=20),zone=7,parent=(src=fd00::2,dst=2001:db8::21,sport=45000,dport=21),timeout=300,alg=ftp',
  ];
  assert.equal(await ctl('dump-conntrack-exp'), all.join('\n') + '\n');
  assert.equal(await ctl('dump-conntrack-exp', 'zone=7'), all[2] + '\n', 'OVS\'s zone=N');
  assert.equal(await ctl('dump-conntrack-exp', '-w', '5'), all[0] + '\n');
  assert.equal(await ctl('dump-conntrack-exp', '--zone', '3'), '');
  const json = (await ctl('dump-conntrack-exp', '--json')).trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(json.map((e) => e.alg), ['ftp', 'tftp', 'ftp']);
  await assert.rejects(ctl('dump-conntrack-exp', 'zone=1', 'zone=2'), (e: Error) => e instanceof CliError && /at most one zone=N/.test(e.message));
  await assert.rejects(ctl('dump-conntrack-exp', '-p', 'tcp'), /selects by zone only, not by --proto/);
  await assert.rejects(ctl('dump-conntrack-exp', 'zone=x'), /--zone/);
  // many: streamed through several answers
  ct.reset();
  ct.expPartLimit = 1;
  for (let i = 0; i < 20; i++) ct.addExpectation(ftp(i));
  const lines = (await ctl('dump-conntrack-exp')).trim().split('\n');
  assert.deepEqual(lines.map((l) => Number(/sport=0,dport=(\d+)/.exec(l)![1])), Array.from({ length: 20 }, (_, i) => 30000 + i));
});

test('while ferryd is down: 503 for expectations, and ferryctl says so', async () => {
  const d = await harness('ct-exp-down', {}, { conntrack: {} });
  try {
    d.fake.ct.addExpectation(ftp(1));
    assert.equal((await d.app.inject({ url: '/v1/conntrack/expectations' })).statusCode, 200);
    await d.fake.die();
    await until(async () => (await d.app.inject({ url: '/health' })).statusCode === 503, 2000, 'down');
    for (const u of ['/v1/conntrack/expectations', '/v1/conntrack/expectations?limit=5', '/v1/conntrack/expectations?zone=1']) {
      const r = await d.app.inject({ url: u });
      assert.equal(r.statusCode, 503, `${u}: ${r.body}`);
      assert.equal(r.json().type, 'urn:ferry:problem:ferryd-down');
    }
    await d.app.listen({ port: 0, host: '127.0.0.1' });
    const url = `http://127.0.0.1:${(d.app.server.address() as AddressInfo).port}`;
    await assert.rejects(run(['--api', url, 'dump-conntrack-exp'], {}), (e: Error) => e instanceof CliError && /ferryd is not running/.test(e.message));
  } finally {
    await d.close();
  }
});
