// The connection tracker in a real ferryd with real kernel traffic: a stateful
// firewall written as OVS users write it (ct(table=), ct_state matches, commit with a
// mark), where vm1 may open connections to vm2 and vm2 may only answer.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import path from 'node:path';
import { Ferry, root, sh, waitFor } from './harness';

const FERRYCTL = path.join(root, 'control/bin/ferryctl.js');

/** n_packets of the one dump-flows line containing what */
function packetsOf(dump: string, what: string): number {
  const line = dump.split('\n').find((l) => l.includes(what));
  assert.ok(line, `no flow with ${what} in:\n${dump}`);
  return Number(/n_packets=(\d+)/.exec(line!)![1]);
}

describe('connection tracking through ferryd', () => {
  const ferry = new Ferry({ prefix: `fct${process.pid % 10000}`, vms: 2, ip: true });
  const ctl = (...args: string[]): string =>
    execFileSync('node', [FERRYCTL, '--api', ferry.api, ...args], { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
  const ctlIn = (input: string, ...args: string[]): string =>
    execFileSync('node', [FERRYCTL, '--api', ferry.api, ...args], { encoding: 'utf8', input });

  before(async () => {
    await ferry.start();
    ctlIn([
      'table=0,priority=100,arp,actions=normal',
      'table=0,priority=90,ip,ct_state=-trk,actions=ct(table=1,zone=5)',
      'table=1,priority=100,ip,in_port=0,ct_state=+trk+new,actions=ct(commit,zone=5,exec(set_field:0x2a->ct_mark)),normal',
      'table=1,priority=101,ip,ct_state=+trk+est,ct_mark=0x2a,actions=normal',
      'table=1,priority=102,ip,ct_state=+trk+rel,actions=normal',
      'table=1,priority=103,ip,ct_state=+trk+inv,actions=drop',
      'table=1,priority=0,actions=drop',
    ].join('\n') + '\n', 'add-flows', '-');
  });
  after(async () => {
    await ferry.stop();
  });

  test('vm1 pings vm2: the request is new, the reply and later requests est', () => {
    const out = sh('ip', ['netns', 'exec', ferry.ns(1), 'ping', '-c', '3', '-i', '0.2', '-W', '2', '10.250.0.2']);
    assert.match(out, /3 received/);
    const dump = ctl('dump-flows');
    // one echo id: the first request opens the connection; the reply and every later packet is est
    assert.equal(packetsOf(dump, 'ct_state=+new+trk'), 1, dump);
    assert.equal(packetsOf(dump, 'ct_state=+est+trk'), 5, dump);
  });

  test('vm2 may not open a connection to vm1: its new packets end at the table miss', () => {
    const before = packetsOf(ctl('dump-flows'), 'priority=0 actions=drop');
    let out = '';
    try {
      out = sh('ip', ['netns', 'exec', ferry.ns(2), 'ping', '-c', '2', '-i', '0.2', '-W', '1', '10.250.0.1']);
    } catch (e) {
      out = String((e as { stdout?: string }).stdout ?? e);
    }
    assert.match(out, /0 received/);
    assert.equal(packetsOf(ctl('dump-flows'), 'priority=0 actions=drop') - before, 2);
  });

  test('a TCP connection from vm1 to vm2 carries data both ways and is tracked', async () => {
    // vm2 serves one connection: reads a line, answers it upper-cased
    const server = spawn('ip', ['netns', 'exec', ferry.ns(2), 'python3', '-c', [
      'import socket',
      's = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)',
      's.bind(("10.250.0.2", 7777)); s.listen(1); print("ready", flush=True)',
      'c, _ = s.accept(); d = c.recv(100); c.sendall(d.upper()); c.close()',
    ].join('\n')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let sout = '';
    server.stdout!.on('data', (d: Buffer) => (sout += d.toString()));
    await waitFor('server ready', async () => (sout.includes('ready') ? true : undefined), 5000);
    const got = sh('ip', ['netns', 'exec', ferry.ns(1), 'python3', '-c', [
      'import socket',
      'c = socket.create_connection(("10.250.0.2", 7777), timeout=5)',
      'c.sendall(b"hello ferry\\n"); print(c.recv(100).decode().strip())',
    ].join('\n')]);
    assert.equal(got.trim(), 'HELLO FERRY');
    await new Promise((r) => (server.exitCode != null ? r(null) : server.on('exit', r)));
    // no TCP segment was judged invalid (windows tracked right, checksums good)
    const dump = ctl('dump-flows');
    assert.equal(packetsOf(dump, 'ct_state=+inv+trk'), 0, dump);
    const ctPackets = await ferry.metric('ferry_ct_created_total').catch(() => NaN);
    if (!Number.isNaN(ctPackets)) assert.ok(ctPackets >= 2, `ferry_ct_created_total ${ctPackets}`);
  });

  test('the connections are in /v1/conntrack (filtered in ferryd), in stats, and flushed by filter', async () => {
    const text = await (await fetch(`${ferry.api}/v1/conntrack?zone=5&proto=tcp&dport=7777`)).text();
    const entries = text.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
    assert.equal(entries.length, 1, text);
    const e = entries[0];
    assert.equal(e.src, '10.250.0.1');
    assert.equal(e.dst, '10.250.0.2');
    assert.equal(e.mark, 42); // exec(set_field:0x2a->ct_mark) at commit
    assert.equal(e.seen_reply, true);
    assert.ok(Number(e.packets_orig) >= 3 && Number(e.packets_reply) >= 2, text);
    const stats = (await ferry.json('GET', '/v1/conntrack/stats')).body;
    assert.ok(Number(stats.by_proto.tcp) >= 1 && Number(stats.by_proto.icmp) >= 1, JSON.stringify(stats));
    assert.match(ctl('dump-conntrack', '-p', 'tcp'), /^tcp\s+6 \d+ \S+ src=10\.250\.0\.1 dst=10\.250\.0\.2 sport=\d+ dport=7777 /m);
    const del = await ferry.json('DELETE', '/v1/conntrack?proto=icmp');
    assert.ok(Number(del.body.deleted) >= 1, JSON.stringify(del.body));
    const left = await (await fetch(`${ferry.api}/v1/conntrack?proto=icmp`)).text();
    assert.equal(left.trim(), '');
  });

  test('an ICMP error about a tracked flow is related: vm1 sends UDP to a closed port of vm2', () => {
    const before = packetsOf(ctl('dump-flows'), 'ct_state=+rel+trk');
    // vm2 answers port unreachable; the error comes back to vm1 as rel
    sh('ip', ['netns', 'exec', ferry.ns(1), 'python3', '-c', [
      'import socket, time',
      's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
      's.sendto(b"x", ("10.250.0.2", 9)); time.sleep(0.5)',
    ].join('\n')]);
    assert.equal(packetsOf(ctl('dump-flows'), 'ct_state=+rel+trk') - before, 1);
  });
});
