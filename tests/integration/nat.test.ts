// NAT in a real ferryd with real kernel traffic: a gateway written as OVS users write it
// (ct(nat,table=) first, ct(commit,nat(src|dst=...)) for new connections), where vm1 is
// an inside client and vm2 an outside server. vm1's connections to vm2 are SNATed to
// 10.250.0.100:20000-20099; vm1's connections to the virtual IP 10.250.0.200 are DNATed
// to vm2. The translated addresses exist nowhere but in ferryd: static neighbour entries
// send frames for them to the right port (ferryd answers no ARP for them), and only
// ferryd's rewrite makes the kernels on both ends accept what they receive.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import path from 'node:path';
import { Ferry, root, sh, stopProc, waitFor, metricSum } from './harness';

const FERRYCTL = path.join(root, 'control/bin/ferryctl.js');

const SNAT_IP = '10.250.0.100';
const SNAT_PORTS = [20000, 20099];
const SMALL_SNAT_IP = '10.250.0.101'; // zone 10: a range of two ports, to run out of
const VIP = '10.250.0.200';
const PORT = 7001; // vm2's TCP and UDP service
const SMALL_PORT = 7100; // vm2's UDP service behind the two-port range

/** vm2's service: answers each TCP connection and UDP datagram with the peer address it
 * saw ("ip:port"), and prints every peer as "tcp ip:port" / "udp ip:port". */
const SERVER = [
  'import selectors, socket, sys',
  'port = int(sys.argv[1])',
  't = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)',
  't.bind(("10.250.0.2", port)); t.listen(16)',
  'u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("10.250.0.2", port))',
  'sel = selectors.DefaultSelector(); sel.register(t, selectors.EVENT_READ); sel.register(u, selectors.EVENT_READ)',
  'print("ready", flush=True)',
  'while True:',
  '    for key, _ in sel.select():',
  '        if key.fileobj is t:',
  '            c, peer = t.accept(); c.settimeout(2)',
  '            print("tcp %s:%d" % peer, flush=True)',
  '            try:',
  '                c.recv(100); c.sendall(("%s:%d\\n" % peer).encode())',
  '            except OSError:',
  '                pass',
  '            c.close()',
  '        else:',
  '            d, peer = u.recvfrom(100)',
  '            print("udp %s:%d" % peer, flush=True)',
  '            u.sendto(("%s:%d\\n" % peer).encode(), peer)',
].join('\n');

/** vm1's client: n sockets (all kept open), each connected to host:port, sending a line
 * and reading one answer; prints [{local, peer, answer}] (answer: the text, "timeout", or
 * "refused" when an ICMP error reached the socket). */
const CLIENT = [
  'import json, socket, sys',
  'proto, host, port, n, wait = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])',
  'socks, out = [], []',
  'for i in range(n):',
  '    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)',
  '    s.settimeout(wait); socks.append(s); r = {}',
  '    try:',
  '        s.connect((host, port)); s.send(b"hello\\n"); r["answer"] = s.recv(100).decode().strip()',
  '    except (socket.timeout, TimeoutError):',
  '        r["answer"] = "timeout"',
  '    except ConnectionRefusedError:',
  '        r["answer"] = "refused"',
  '    r["local"] = "%s:%d" % s.getsockname()',
  '    try:',
  '        r["peer"] = "%s:%d" % s.getpeername()',
  '    except OSError:',
  '        r["peer"] = None',
  '    out.append(r)',
  'print(json.dumps(out))',
].join('\n');

interface ClientResult { local: string; peer: string | null; answer: string }

interface Entry {
  zone: number; proto: string; src: string; dst: string; sport: number; dport: number;
  reply: { src: string; dst: string; sport: number; dport: number };
  nat?: string; seen_reply: boolean; packets_orig: string; packets_reply: string;
}

/** n_packets of the one dump-flows line containing every one of what */
function packetsOf(dump: string, ...what: string[]): number {
  const lines = dump.split('\n').filter((l) => what.every((w) => l.includes(w)));
  assert.equal(lines.length, 1, `not one flow with ${what.join(' ')} in:\n${dump}`);
  return Number(/n_packets=(\d+)/.exec(lines[0]!)![1]);
}

const portOf = (hostPort: string): number => Number(hostPort.split(':')[1]);

describe('NAT through ferryd', () => {
  const ferry = new Ferry({ prefix: `fnat${process.pid % 10000}`, vms: 2, ip: true });
  const servers: ChildProcess[] = [];
  const ctl = (...args: string[]): string =>
    execFileSync('node', [FERRYCTL, '--api', ferry.api, ...args], { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
  const ctlIn = (input: string, ...args: string[]): string =>
    execFileSync('node', [FERRYCTL, '--api', ferry.api, ...args], { encoding: 'utf8', input });

  /** starts SERVER in vm2 on port; seen() is the peers it printed */
  async function serve(port: number): Promise<{ seen: () => string[] }> {
    const p = spawn('ip', ['netns', 'exec', ferry.ns(2), 'python3', '-c', SERVER, String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
    servers.push(p);
    let out = '';
    p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    await waitFor(`vm2 server on ${port}`, async () => {
      if (p.exitCode != null) throw new Error(`server exited: ${out}`);
      return out.includes('ready') ? true : undefined;
    }, 5000);
    return { seen: () => out.split('\n').filter((l) => /^(tcp|udp) /.test(l)) };
  }

  /** waits until the server has printed line (its output is read while the test waits, not while a client runs) */
  async function sawPeer(srv: { seen: () => string[] }, line: string): Promise<void> {
    await waitFor(`vm2's server to print "${line}"`, async () => (srv.seen().includes(line) ? true : undefined), 3000)
      .catch(() => assert.fail(`vm2's server did not see "${line}", only:\n${srv.seen().join('\n')}`));
  }

  function client(proto: 'tcp' | 'udp', host: string, port: number, n = 1, wait = 3): ClientResult[] {
    return JSON.parse(sh('ip', ['netns', 'exec', ferry.ns(1), 'python3', '-c', CLIENT, proto, host, String(port), String(n), String(wait)]));
  }

  /** the sum of a worker counter over all workers */
  const total = (name: string): Promise<number> => metricSum(ferry.api, name);

  /** waits until a counter has moved by delta since base, then checks it moved by no more */
  async function expectDelta(name: string, base: number, delta: number): Promise<void> {
    await waitFor(`${name} += ${delta}`, async () => ((await total(name)) - base >= delta ? true : undefined), 3000).catch(() => undefined);
    assert.equal((await total(name)) - base, delta, name);
  }

  async function conntrack(query: string): Promise<Entry[]> {
    const r = await fetch(`${ferry.api}/v1/conntrack?${query}`);
    assert.equal(r.status, 200);
    return (await r.text()).trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Entry);
  }

  let server: { seen: () => string[] };

  before(async () => {
    await ferry.start();
    // frames for the translated addresses go to the port behind which ferryd un-translates them
    sh('ip', ['-n', ferry.ns(2), 'neigh', 'replace', SNAT_IP, 'lladdr', '02:fe:00:00:00:01', 'dev', 'eth0']);
    sh('ip', ['-n', ferry.ns(2), 'neigh', 'replace', SMALL_SNAT_IP, 'lladdr', '02:fe:00:00:00:01', 'dev', 'eth0']);
    sh('ip', ['-n', ferry.ns(1), 'neigh', 'replace', VIP, 'lladdr', '02:fe:00:00:00:02', 'dev', 'eth0']);
    ctlIn([
      'table=0,priority=100,arp,actions=normal',
      // zone 10, committed straight away (a ct(commit,nat) of a known connection applies its translation)
      `table=0,priority=95,udp,in_port=0,nw_dst=10.250.0.2,tp_dst=${SMALL_PORT},actions=ct(commit,zone=10,nat(src=${SMALL_SNAT_IP}:30000-30001)),output:1`,
      `table=0,priority=95,ip,in_port=1,nw_dst=${SMALL_SNAT_IP},actions=ct(zone=10,nat,table=2)`,
      'table=2,priority=10,ip,ct_state=+est+trk,actions=output:0',
      'table=2,priority=0,actions=drop',
      // zone 9: the gateway
      'table=0,priority=90,ip,actions=ct(zone=9,nat,table=1)',
      `table=1,priority=100,ip,in_port=0,ct_state=+new+trk,nw_dst=${VIP},actions=ct(commit,zone=9,nat(dst=10.250.0.2)),output:1`,
      `table=1,priority=90,ip,in_port=0,ct_state=+new+trk,nw_dst=10.250.0.2,actions=ct(commit,zone=9,nat(src=${SNAT_IP}:${SNAT_PORTS[0]}-${SNAT_PORTS[1]})),output:1`,
      // established both ways; the +snat/+dnat flows forward the same and count which header ct(nat) rewrote
      // (one priority each: ferryd refuses overlapping flows at one priority)
      'table=1,priority=81,ip,in_port=0,ct_state=+est+trk+snat,actions=output:1',
      'table=1,priority=82,ip,in_port=0,ct_state=+est+trk+dnat,actions=output:1',
      'table=1,priority=80,ip,in_port=0,ct_state=+est+trk,actions=output:1',
      'table=1,priority=81,ip,in_port=1,ct_state=+est+trk+snat,actions=output:0',
      'table=1,priority=82,ip,in_port=1,ct_state=+est+trk+dnat,actions=output:0',
      'table=1,priority=80,ip,in_port=1,ct_state=+est+trk,actions=output:0',
      'table=1,priority=70,ip,in_port=1,ct_state=+rel+trk,actions=output:0',
      'table=1,priority=0,actions=drop',
    ].join('\n') + '\n', 'add-flows', '-');
    server = await serve(PORT);
  });
  after(async () => {
    for (const p of servers) await stopProc(p, 'SIGKILL');
    await ferry.stop();
  });

  test('vm1 pings vm2 through SNAT: one translated connection, every packet rewritten once', async () => {
    const created = await total('ferry_ct_nat_created_total');
    const rewrites = await total('ferry_ct_nat_rewrites_total');
    const out = sh('ip', ['netns', 'exec', ferry.ns(1), 'ping', '-c', '3', '-i', '0.2', '-W', '2', '10.250.0.2']);
    assert.match(out, /3 received/);
    await expectDelta('ferry_ct_nat_created_total', created, 1);
    await expectDelta('ferry_ct_nat_rewrites_total', rewrites, 6); // 3 requests, 3 replies
    // vm2 answered 10.250.0.100 (it never heard of 10.250.0.1): the entry says so
    const e = await conntrack('zone=9&proto=icmp');
    assert.equal(e.length, 1, JSON.stringify(e));
    assert.equal(e[0]!.src, '10.250.0.1');
    assert.equal(e[0]!.dst, '10.250.0.2');
    assert.equal(e[0]!.nat, 'snat');
    assert.equal(e[0]!.reply.src, '10.250.0.2');
    assert.equal(e[0]!.reply.dst, SNAT_IP);
    assert.equal(e[0]!.seen_reply, true);
    assert.equal(e[0]!.packets_orig, '3');
    assert.equal(e[0]!.packets_reply, '3');
  });

  test('ct_state after ct(nat) says which header it rewrote, as in OVS: SNAT requests +snat, their replies +dnat', () => {
    const dump = ctl('dump-flows', '--table', '1');
    // ping: requests 2 and 3 are est (the first was new); all three replies are est
    const reqSnat = packetsOf(dump, 'in_port=0', '+snat', 'priority=81');
    const reqDnat = packetsOf(dump, 'in_port=0', '+dnat', 'priority=82');
    const rplSnat = packetsOf(dump, 'in_port=1', '+snat', 'priority=81');
    const rplDnat = packetsOf(dump, 'in_port=1', '+dnat', 'priority=82');
    const untranslated = packetsOf(dump, 'in_port=1', 'priority=80');
    assert.deepEqual({ reqSnat, reqDnat, rplSnat, rplDnat, untranslated }, { reqSnat: 2, reqDnat: 0, rplSnat: 0, rplDnat: 3, untranslated: 0 }, dump);
  });

  test('TCP from vm1 to vm2 through SNAT: vm2 sees 10.250.0.100 and a port of the range', async () => {
    const [r] = client('tcp', '10.250.0.2', PORT);
    assert.equal(r!.peer, `10.250.0.2:${PORT}`);
    const m = /^10\.250\.0\.100:(\d+)$/.exec(r!.answer);
    assert.ok(m, `vm2 saw ${r!.answer} (client ${r!.local})`);
    const seenPort = Number(m![1]);
    assert.ok(seenPort >= SNAT_PORTS[0]! && seenPort <= SNAT_PORTS[1]!, `port ${seenPort}`);
    await sawPeer(server, `tcp ${r!.answer}`);
    // the entry ties the two ends together
    const e = await conntrack(`zone=9&proto=tcp&dst=10.250.0.2&dport=${PORT}`);
    assert.equal(e.length, 1, JSON.stringify(e));
    assert.equal(e[0]!.nat, 'snat');
    assert.equal(`${e[0]!.src}:${e[0]!.sport}`, r!.local);
    assert.deepEqual(e[0]!.reply, { src: '10.250.0.2', dst: SNAT_IP, sport: PORT, dport: seenPort });
    assert.ok(Number(e[0]!.packets_orig) >= 4 && Number(e[0]!.packets_reply) >= 3, JSON.stringify(e[0]));
  });

  test('UDP from vm1 to vm2 through SNAT: vm2 sees 10.250.0.100, the answer reaches the connected socket', async () => {
    const [r] = client('udp', '10.250.0.2', PORT);
    const m = /^10\.250\.0\.100:(\d+)$/.exec(r!.answer);
    assert.ok(m, `vm2 saw ${r!.answer} (client ${r!.local})`);
    const seenPort = Number(m![1]);
    assert.ok(seenPort >= SNAT_PORTS[0]! && seenPort <= SNAT_PORTS[1]!, `port ${seenPort}`);
    const e = await conntrack(`zone=9&proto=udp&dst=10.250.0.2&dport=${PORT}`);
    assert.equal(e.length, 1, JSON.stringify(e));
    assert.equal(e[0]!.nat, 'snat');
    assert.equal(`${e[0]!.src}:${e[0]!.sport}`, r!.local);
    assert.deepEqual(e[0]!.reply, { src: '10.250.0.2', dst: SNAT_IP, sport: PORT, dport: seenPort });
  });

  test('DNAT: vm1 talks to 10.250.0.200, vm2 serves it and sees vm1 as it is', async () => {
    for (const proto of ['tcp', 'udp'] as const) {
      const [r] = client(proto, VIP, PORT);
      // the socket is connected to the virtual IP: the answer came back from it
      assert.equal(r!.peer, `${VIP}:${PORT}`, proto);
      assert.equal(r!.answer, r!.local, `${proto}: vm2 saw ${r!.answer}, vm1's socket is ${r!.local}`);
      await sawPeer(server, `${proto} ${r!.local}`);
      const e = await conntrack(`zone=9&proto=${proto}&dst=${VIP}`);
      assert.equal(e.length, 1, JSON.stringify(e));
      assert.equal(e[0]!.nat, 'dnat');
      assert.equal(`${e[0]!.src}:${e[0]!.sport}`, r!.local);
      assert.deepEqual(e[0]!.reply, { src: '10.250.0.2', dst: '10.250.0.1', sport: PORT, dport: e[0]!.sport });
    }
  });

  test('an ICMP error through SNAT: port unreachable to 10.250.0.100 reaches vm1\'s UDP socket as ECONNREFUSED', async () => {
    const rel = packetsOf(ctl('dump-flows', '--table', '1'), 'ct_state=+rel+trk');
    const rewrites = await total('ferry_ct_nat_rewrites_total');
    // the kernel accepts the error only when its outer destination and quoted packet are vm1's own again
    const [r] = client('udp', '10.250.0.2', 9);
    assert.equal(r!.answer, 'refused', JSON.stringify(r));
    assert.equal(packetsOf(ctl('dump-flows', '--table', '1'), 'ct_state=+rel+trk') - rel, 1);
    await expectDelta('ferry_ct_nat_rewrites_total', rewrites, 2); // the datagram, the error
    const e = await conntrack('zone=9&proto=udp&dport=9');
    assert.equal(e.length, 1, JSON.stringify(e));
    assert.equal(e[0]!.nat, 'snat');
    assert.equal(e[0]!.reply.dst, SNAT_IP);
  });

  test('a range of two ports: two connections are translated, the third goes on untranslated and is counted', async () => {
    const small = await serve(SMALL_PORT);
    const exhausted = await total('ferry_ct_nat_exhausted_total');
    assert.equal(exhausted, 0);
    const created = await total('ferry_ct_nat_created_total');
    const rs = client('udp', '10.250.0.2', SMALL_PORT, 3, 1);
    const answers = rs.map((r) => r.answer);
    assert.match(answers[0]!, /^10\.250\.0\.101:3000[01]$/, JSON.stringify(rs));
    assert.match(answers[1]!, /^10\.250\.0\.101:3000[01]$/, JSON.stringify(rs));
    assert.notEqual(answers[0], answers[1]);
    // no tuple left: vm2 gets the third untranslated, and its answer to 10.250.0.1 belongs to no connection
    assert.equal(answers[2], 'timeout', JSON.stringify(rs));
    await sawPeer(small, `udp ${rs[2]!.local}`);
    await expectDelta('ferry_ct_nat_exhausted_total', exhausted, 1);
    await expectDelta('ferry_ct_nat_created_total', created, 2);
    assert.equal((await conntrack('zone=10')).length, 2);
    // the ports are free again once the connections are gone
    const del = await ferry.json('DELETE', '/v1/conntrack?zone=10');
    assert.equal(del.body.deleted, '2', JSON.stringify(del.body));
    const [again] = client('udp', '10.250.0.2', SMALL_PORT, 1, 2);
    assert.match(again!.answer, /^10\.250\.0\.101:3000[01]$/, JSON.stringify(again));
  });

  test('metrics: translations created and packets rewritten, none failed', async () => {
    // ping, TCP, UDP, TCP and UDP to the VIP, UDP to port 9, 2 + 1 in zone 10
    assert.equal(await total('ferry_ct_nat_created_total'), 9);
    assert.ok((await total('ferry_ct_nat_rewrites_total')) >= 30, String(await total('ferry_ct_nat_rewrites_total')));
    assert.equal(await total('ferry_ct_nat_rewrite_errors_total'), 0);
    assert.equal(await total('ferry_ct_nat_exhausted_total'), 1);
  });

  test('dump-conntrack shows the reply tuple; a flush by the translated address takes the SNATed connections only', async () => {
    const line = ctl('dump-conntrack', '-w', '9', '-p', 'tcp', '-d', '10.250.0.2');
    assert.match(line, new RegExp(`^tcp\\s+6 \\d+ \\S+ src=10\\.250\\.0\\.1 dst=10\\.250\\.0\\.2 sport=\\d+ dport=${PORT} .*` +
      `src=10\\.250\\.0\\.2 dst=10\\.250\\.0\\.100 sport=${PORT} dport=(\\d+) .*zone=9`, 'm'), line);
    const json = ctl('dump-conntrack', '-w', '9', '--json').trim().split('\n').map((l) => JSON.parse(l) as Entry);
    const snat = json.filter((e) => e.nat === 'snat');
    const dnat = json.filter((e) => e.nat === 'dnat');
    assert.equal(snat.length, 4, JSON.stringify(json)); // icmp, tcp, udp, udp to port 9
    assert.equal(dnat.length, 2, JSON.stringify(json));
    assert.equal(json.length, 6, JSON.stringify(json));
    // the original direction never has the translated address ...
    assert.equal((await conntrack(`zone=9&dst=${SNAT_IP}`)).length, 0);
    // ... the reply direction does
    assert.equal((await conntrack(`zone=9&dst=${SNAT_IP}&either_dir=true`)).length, 4);
    assert.equal(ctl('flush-conntrack', '--either-dir', '-d', SNAT_IP), '4 flow entries have been deleted.\n');
    const left = await conntrack('zone=9');
    assert.deepEqual(left.map((e) => e.nat), ['dnat', 'dnat'], JSON.stringify(left));
    assert.equal((await conntrack('zone=10')).length, 1); // 10.250.0.101's connection was not selected
    // and a new connection is translated afresh
    const [r] = client('tcp', '10.250.0.2', PORT);
    assert.match(r!.answer, /^10\.250\.0\.100:\d+$/);
  });
});
