// ferryctl dump-conntrack / flush-conntrack / conntrack-stats: conntrack -L's line format, filters
// as long options or conntrack's short ones, against ferry-control's API on a fake ferryd.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { harness, Harness } from './helpers';
import { CtEntryFlag, CtFilterFlag, CtTcpState, MsgType, readCtDumpReq, readCtFilter } from '../src/gen/proto';
import { CliError, run } from '../src/cli/ferryctl';

const FERRYCTL = path.resolve(__dirname, '../../../control/bin/ferryctl.js');
let h: Harness;
let api: string;
before(async () => {
  h = await harness('ferryctl-ct', {}, { conntrack: { pageEntries: 4 } });
  await h.app.listen({ port: 0, host: '127.0.0.1' });
  api = `http://127.0.0.1:${(h.app.server.address() as AddressInfo).port}`;
});
after(async () => h.close());
beforeEach(() => h.fake.ct.reset());

const ctl = (...args: string[]): Promise<string> => run(['--api', api, ...args], {});
const EST = CtTcpState.ESTABLISHED;

function table(): void {
  const ct = h.fake.ct;
  ct.add({ src: '10.0.0.1', dst: '10.0.0.2', sport: 1234, dport: 80, zone: 5, state_orig: EST, state_reply: EST, flags: CtEntryFlag.SEEN_REPLY,
    timeout_ms: 431_999_500, packets_orig: 3n, bytes_orig: 180n, packets_reply: 2n, bytes_reply: 120n });
  ct.add({ src: '10.0.0.1', dst: '10.0.0.53', proto: 17, sport: 5000, dport: 53, timeout_ms: 29_000, packets_orig: 1n, bytes_orig: 60n });
  ct.add({ src: '10.0.0.1', dst: '10.0.0.2', proto: 1, sport: 7, dport: 7, icmp_type: 8, icmp_code: 0, flags: CtEntryFlag.SEEN_REPLY,
    timeout_ms: 29_000, packets_orig: 1n, bytes_orig: 84n, packets_reply: 1n, bytes_reply: 84n, mark: 9 });
  ct.add({ src: 'fd00::1', dst: 'fd00::2', proto: 58, sport: 3, dport: 3, icmp_type: 128, icmp_code: 0, timeout_ms: 30_000, zone: 2 });
  ct.add({ src: '192.0.2.1', dst: '192.0.2.2', proto: 47, timeout_ms: 600_000, flags: CtEntryFlag.SEEN_REPLY, packets_orig: 5n, bytes_orig: 500n });
  ct.add({ src: '10.0.0.3', dst: '10.0.0.2', sport: 999, dport: 22, state_orig: CtTcpState.SYN_SENT, state_reply: CtTcpState.CLOSED, timeout_ms: 119_000 });
}

test('dump-conntrack prints conntrack -L lines', async () => {
  table();
  const out = await ctl('dump-conntrack');
  assert.equal(out, [
    'tcp      6 431999 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=1234 dport=80 packets=3 bytes=180 src=10.0.0.2 dst=10.0.0.1 sport=80 dport=1234 packets=2 bytes=120 [ASSURED] mark=0 zone=5 use=1',
    'udp      17 29 src=10.0.0.1 dst=10.0.0.53 sport=5000 dport=53 packets=1 bytes=60 [UNREPLIED] src=10.0.0.53 dst=10.0.0.1 sport=53 dport=5000 packets=0 bytes=0 mark=0 use=1',
    'icmp     1 29 src=10.0.0.1 dst=10.0.0.2 type=8 code=0 id=7 packets=1 bytes=84 src=10.0.0.2 dst=10.0.0.1 type=0 code=0 id=7 packets=1 bytes=84 [ASSURED] mark=9 use=1',
    'icmpv6   58 30 src=fd00::1 dst=fd00::2 type=128 code=0 id=3 packets=1 bytes=60 [UNREPLIED] src=fd00::2 dst=fd00::1 type=129 code=0 id=3 packets=0 bytes=0 mark=0 zone=2 use=1',
    'unknown  47 600 src=192.0.2.1 dst=192.0.2.2 packets=5 bytes=500 src=192.0.2.2 dst=192.0.2.1 packets=0 bytes=0 [ASSURED] mark=0 use=1',
    'tcp      6 119 SYN_SENT src=10.0.0.3 dst=10.0.0.2 sport=999 dport=22 packets=1 bytes=60 [UNREPLIED] src=10.0.0.2 dst=10.0.0.3 sport=22 dport=999 packets=0 bytes=0 mark=0 use=1',
  ].join('\n') + '\n');
  // --json: the API's NDJSON as it is
  const json = (await ctl('dump-conntrack', '--json')).trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(json.length, 6);
  assert.equal(json[0].state, 'ESTABLISHED');
});

test('dump-conntrack prints a NATed connection\'s translated reply tuple; flush-conntrack --either-dir -d finds it', async () => {
  const ct = h.fake.ct;
  ct.add({ src: '10.0.0.5', dst: '198.51.100.1', sport: 5555, dport: 443, state_orig: EST, state_reply: EST,
    flags: CtEntryFlag.SEEN_REPLY | CtEntryFlag.SNAT, timeout_ms: 431_999_000, packets_orig: 3n, bytes_orig: 180n, packets_reply: 2n, bytes_reply: 120n,
    reply: { src: '198.51.100.1', dst: '203.0.113.1', sport: 443, dport: 40001 } });
  ct.add({ src: '192.0.2.10', dst: '203.0.113.80', proto: 17, sport: 33000, dport: 53, flags: CtEntryFlag.DNAT, timeout_ms: 30_000, zone: 3,
    reply: { src: '10.0.0.53', sport: 5353 } });
  ct.add({ src: '10.0.0.5', dst: '198.51.100.1', proto: 1, sport: 7, dport: 7, icmp_type: 8, icmp_code: 0, flags: CtEntryFlag.SEEN_REPLY | CtEntryFlag.SNAT,
    timeout_ms: 29_000, packets_orig: 1n, bytes_orig: 84n, packets_reply: 1n, bytes_reply: 84n, reply: { dst: '203.0.113.1', sport: 1024, dport: 1024 } });
  assert.equal(await ctl('dump-conntrack'), [
    'tcp      6 431999 ESTABLISHED src=10.0.0.5 dst=198.51.100.1 sport=5555 dport=443 packets=3 bytes=180 src=198.51.100.1 dst=203.0.113.1 sport=443 dport=40001 packets=2 bytes=120 [ASSURED] mark=0 use=1',
    'udp      17 30 src=192.0.2.10 dst=203.0.113.80 sport=33000 dport=53 packets=1 bytes=60 [UNREPLIED] src=10.0.0.53 dst=192.0.2.10 sport=5353 dport=33000 packets=0 bytes=0 mark=0 zone=3 use=1',
    'icmp     1 29 src=10.0.0.5 dst=198.51.100.1 type=8 code=0 id=7 packets=1 bytes=84 src=198.51.100.1 dst=203.0.113.1 type=0 code=0 id=1024 packets=1 bytes=84 [ASSURED] mark=0 use=1',
  ].join('\n') + '\n');
  const json = (await ctl('dump-conntrack', '--json')).trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(json.map((e) => e.nat), ['snat', 'dnat', 'snat']);
  // conntrack -L users flush NATed connections by the translated address
  assert.equal(await ctl('flush-conntrack', '--either-dir', '-d', '203.0.113.1'), '2 flow entries have been deleted.\n');
  const r = h.fake.received.filter((x) => x.type === MsgType.CT_FLUSH).at(-1)!;
  const f = readCtFilter(new DataView(r.body!.buffer, r.body!.byteOffset, r.body!.byteLength), 0);
  assert.equal(f.flags, CtFilterFlag.DST | CtFilterFlag.IP_VERSION | CtFilterFlag.EITHER_DIR);
  assert.deepEqual(f.dst.slice(0, 4), [203, 0, 113, 1]);
  assert.match(await ctl('dump-conntrack'), /^udp {6}17 30 src=192\.0\.2\.10 .* src=10\.0\.0\.53 dst=192\.0\.2\.10 sport=5353 dport=33000 /);
  assert.equal(await ctl('flush-conntrack', '--either-dir', '-s', '10.0.0.53', '--sport', '5353'), '1 flow entries have been deleted.\n');
});

test('filters as long options or conntrack\'s short ones reach ferryd\'s ct_filter', async () => {
  table();
  const lastFilter = () => {
    const r = h.fake.received.filter((x) => x.type === MsgType.CT_DUMP).at(-1)!;
    return readCtDumpReq(new DataView(r.body!.buffer, r.body!.byteOffset, r.body!.byteLength), 0).filter;
  };
  let out = await ctl('dump-conntrack', '-p', 'tcp', '-s', '10.0.0.0/24', '-w', '5');
  assert.match(out, /^tcp {6}6 431999 ESTABLISHED src=10\.0\.0\.1 .* zone=5 use=1\n$/);
  const f = lastFilter();
  assert.equal(f.flags, CtFilterFlag.PROTO | CtFilterFlag.SRC | CtFilterFlag.ZONE | CtFilterFlag.IP_VERSION);
  assert.deepEqual([f.proto, f.src_plen, f.zone], [6, 24, 5]);
  out = await ctl('dump-conntrack', '--dst', '10.0.0.2', '--dport', '22', '--state', 'syn_sent');
  assert.match(out, /^tcp {6}6 119 SYN_SENT src=10\.0\.0\.3 /);
  assert.equal(out.split('\n').length, 2);
  out = await ctl('dump-conntrack', '-d', '10.0.0.1', '--either-dir', '--orig-port-src', '80');
  assert.match(out, /sport=1234 dport=80/, 'the reply direction 10.0.0.2:80 -> 10.0.0.1 matched');
  assert.ok(lastFilter().flags & CtFilterFlag.EITHER_DIR);
  out = await ctl('dump-conntrack', '-f', 'ipv6');
  assert.match(out, /^icmpv6 /);
  out = await ctl('dump-conntrack', '-m', '9/0xff');
  assert.match(out, /^icmp {5}1 .* mark=9 use=1\n$/);
  assert.equal(await ctl('dump-conntrack', '-w', '77'), '', 'nothing selected: no lines');
});

test('flush-conntrack deletes what the filter selects; conntrack-stats counts', async () => {
  table();
  let s = await ctl('conntrack-stats');
  assert.equal(s, [
    'connections=6 max=3000000',
    'by protocol: tcp=2 udp=1 icmp=1 icmpv6=1 sctp=0 other=1',
    'by tcp state: SYN_SENT=1 ESTABLISHED=1',
    'by zone: 0=4 2=1 5=1',
    'counters: expired=0 flushed=0 sweeps=0 events_dropped=0',
  ].join('\n') + '\n');
  assert.equal(await ctl('flush-conntrack', '-p', 'udp'), '1 flow entries have been deleted.\n');
  assert.equal(h.fake.ct.entries.size, 5);
  assert.equal(await ctl('flush-conntrack'), '5 flow entries have been deleted.\n');
  s = await ctl('conntrack-stats');
  assert.match(s, /^connections=0 max=3000000\n.*\nby tcp state: -\nby zone: -\ncounters: expired=0 flushed=6 /s);
});

test('bad filters name the option; commands check their arguments', async () => {
  await assert.rejects(ctl('dump-conntrack', '--src', 'nope'), (e: Error) => e instanceof CliError && /^--src: "nope" is not an IPv4 or IPv6 address/.test(e.message));
  await assert.rejects(ctl('dump-conntrack', '--either-dir'), /--either-dir: needs at least one of src, dst, sport, dport/);
  await assert.rejects(ctl('flush-conntrack', '-p', 'tcpx'), /--proto: "tcpx" is not tcp/);
  await assert.rejects(ctl('dump-conntrack', 'extra'), /dump-conntrack: wants no arguments/);
});

test('the ferryctl binary streams dump-conntrack to stdout', async () => {
  for (let i = 0; i < 30; i++) h.fake.ct.add({ src: '10.0.0.1', dst: '10.0.0.2', proto: 17, sport: 1000 + i, dport: 53 });
  const r = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [FERRYCTL, '--api', api, 'dump-conntrack', '-p', 'udp'], (err, stdout, stderr) => resolve({ code: err ? 1 : 0, stdout, stderr }));
  });
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.length, 30);
  assert.deepEqual(lines.map((l) => Number(/sport=(\d+)/.exec(l)![1])), Array.from({ length: 30 }, (_, i) => 1000 + i));
});
