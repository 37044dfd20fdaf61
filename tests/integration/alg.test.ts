// The connection tracker's ALGs in a real ferryd with real servers: vsftpd and tftpd-hpa in
// vm2, curl in vm1, behind a stateful firewall written as OVS users write it. The firewall
// admits only new connections from vm1 to TCP 21 (committed with alg=ftp) and UDP 69
// (committed with alg=tftp), established traffic, and new connections that are related
// (+new+rel, in either direction). Every other new connection is dropped, so an FTP data
// connection (passive or active) and a TFTP answer (from a new server port) pass only
// because the helper read the control traffic and expects them; without alg= they fail.
// FTP is also run through NAT, where the helper rewrites the address the control connection
// carries and the data connection gets the translation its expectation carries (committed
// with a bare ct(commit,nat)):
//   SNAT (vm1 hidden behind 10.250.0.100), passive: the data connection is SNATed like the
//     control one; active: curl's PORT/EPRT naming 10.250.0.1 reaches vsftpd naming
//     10.250.0.100, and vsftpd's connection to 10.250.0.100 is DNATed back to vm1.
//   DNAT (vm1 dials the virtual IP 10.250.0.200, vsftpd sees 10.250.0.2), passive: the 227
//     naming 10.250.0.2 reaches curl naming 10.250.0.200 (curl is told to use it), and the
//     data connection to 10.250.0.200 is DNATed to vsftpd; active: vsftpd's connection from
//     10.250.0.2 to vm1 is SNATed to 10.250.0.200.
// Each proves the rewrite on both ends (curl -v's transcript, vsftpd's protocol log), the
// translation in the conntrack dump (nat and reply tuple), and an intact download (the
// control connection goes on after the edit that changed its length: seq/ack shifted).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Ferry, root, sh, waitFor, metricSum } from './harness';

const FERRYCTL = path.join(root, 'control/bin/ferryctl.js');

const SERVER = '10.250.0.2';
const CLIENT = '10.250.0.1';
const SNAT_IP = '10.250.0.100';
const VIP = '10.250.0.200'; // the FTP server's virtual address, DNATed to SERVER
const VM1_MAC = '02:fe:00:00:00:01';
const VM2_MAC = '02:fe:00:00:00:02';
const PASV_PORTS = [30000, 30100];
const FTP_MARK = 0x21; // committed on the FTP control connection, inherited by its data connections
const TFTP_MARK = 0x45;

const FTP_COMMIT = `ct(commit,zone=7,alg=ftp,exec(set_field:${FTP_MARK}->ct_mark))`;
const FTP_COMMIT_NO_ALG = `ct(commit,zone=7,exec(set_field:${FTP_MARK}->ct_mark))`;
const TFTP_COMMIT = `ct(commit,zone=7,alg=tftp,exec(set_field:${TFTP_MARK}->ct_mark))`;
const TFTP_COMMIT_NO_ALG = `ct(commit,zone=7,exec(set_field:${TFTP_MARK}->ct_mark))`;
const ftpFlow = (commit: string): string => `table=1,priority=100,tcp,tp_dst=21,ct_state=+trk+new,in_port=0,actions=${commit},normal`;
const tftpFlow = (commit: string): string => `table=1,priority=100,udp,tp_dst=69,ct_state=+trk+new,in_port=0,actions=${commit},normal`;

/** the stateful firewall: vm1 may open FTP and TFTP sessions; what they announce may follow */
const FIREWALL = [
  'table=0,priority=100,arp,actions=normal',
  'table=0,priority=90,ip,actions=ct(table=1,zone=7)',
  ftpFlow(FTP_COMMIT),
  tftpFlow(TFTP_COMMIT),
  'table=1,priority=95,ip,ct_state=+trk+new+rel,actions=ct(commit,zone=7),normal',
  // an expected connection stays related once committed: its later packets are +est+rel
  'table=1,priority=91,ip,ct_state=+trk+est+rel,actions=normal',
  'table=1,priority=90,ip,ct_state=+trk+est,actions=normal',
  'table=1,priority=80,ip,ct_state=+trk+rel,actions=normal',
  // the new connections no helper expects, dropped apart to be counted: what the control tests drop
  'table=1,priority=1,tcp,in_port=0,ct_state=+trk+new-rel,actions=drop',
  'table=1,priority=1,udp,in_port=1,ct_state=+trk+new-rel,actions=drop',
  'table=1,priority=0,actions=drop',
].join('\n') + '\n';

/** the same gateway with vm1 hidden behind 10.250.0.100 (SNAT of the control and the data connection) */
const SNAT_FIREWALL = [
  'table=0,priority=100,arp,actions=normal',
  'table=0,priority=90,ip,actions=ct(table=1,zone=7,nat)',
  `table=1,priority=100,tcp,tp_dst=21,ct_state=+trk+new,in_port=0,actions=ct(commit,zone=7,alg=ftp,nat(src=${SNAT_IP}),exec(set_field:${FTP_MARK}->ct_mark)),normal`,
  `table=1,priority=95,ip,ct_state=+trk+new+rel,in_port=0,actions=ct(commit,zone=7,nat(src=${SNAT_IP})),normal`,
  // active FTP: vsftpd's connection to 10.250.0.100, DNATed back to vm1 as its expectation says
  'table=1,priority=95,ip,ct_state=+trk+new+rel,in_port=1,actions=ct(commit,zone=7,nat),normal',
  'table=1,priority=90,ip,ct_state=+trk+est,actions=normal',
  // TCP and UDP dropped apart: tftpd may still be resending the answers (OACK) the TFTP
  // control test had dropped
  'table=1,priority=1,tcp,actions=drop',
  'table=1,priority=1,udp,actions=drop',
  'table=1,priority=0,actions=drop',
].join('\n') + '\n';

/** a gateway in front of vsftpd: vm1 reaches it at 10.250.0.200 (DNAT of the control and the
 * data connection, whichever side opens it); vm1 may not open anything to 10.250.0.2 itself */
const DNAT_FIREWALL = [
  'table=0,priority=100,arp,actions=normal',
  'table=0,priority=90,ip,actions=ct(table=1,zone=7,nat)',
  `table=1,priority=100,tcp,nw_dst=${VIP},tp_dst=21,ct_state=+trk+new,in_port=0,actions=ct(commit,zone=7,alg=ftp,nat(dst=${SERVER}),exec(set_field:${FTP_MARK}->ct_mark)),normal`,
  'table=1,priority=95,ip,ct_state=+trk+new+rel,actions=ct(commit,zone=7,nat),normal',
  'table=1,priority=90,ip,ct_state=+trk+est,actions=normal',
  'table=1,priority=1,tcp,actions=drop',
  'table=1,priority=1,udp,actions=drop', // as in SNAT_FIREWALL
  'table=1,priority=0,actions=drop',
].join('\n') + '\n';

/** vm1's raw FTP client: logs in, asks for passive mode, prints every answer (and its own
 * address), then waits for a line on stdin before it says QUIT */
const RAW_FTP = [
  'import socket, sys',
  `s = socket.create_connection(("${SERVER}", 21), timeout=5)`,
  'f = s.makefile("rb")',
  'def answer():',
  '    l = f.readline().decode().strip()',
  '    print(l, flush=True)',
  '    return l',
  'def cmd(c):',
  '    s.sendall((c + "\\r\\n").encode())',
  '    return answer()',
  'print("local %s:%d" % s.getsockname(), flush=True)',
  'answer()',
  'if cmd("USER anonymous").startswith("331"):',
  '    cmd("PASS x")',
  'cmd("PASV")',
  'sys.stdin.readline()',
  'cmd("QUIT")',
].join('\n');

interface Entry {
  zone: number; proto: string; src: string; dst: string; sport: number; dport: number;
  reply: { src: string; dst: string; sport: number; dport: number };
  nat?: string; mark: number; seen_reply: boolean;
}

interface Expectation {
  zone: number; proto: string; family: string; alg: string;
  expected: { src: string; dst: string; dport: number };
  parent: { src: string; dst: string; sport: number; dport: number };
  mark: number; timeout_ms: number; timeout: number;
}

/** n_packets of the one dump-flows line containing every one of what */
function packetsOf(dump: string, ...what: string[]): number {
  const lines = dump.split('\n').filter((l) => what.every((w) => l.includes(w)));
  assert.equal(lines.length, 1, `not one flow with ${what.join(' ')} in:\n${dump}`);
  return Number(/n_packets=(\d+)/.exec(lines[0]!)![1]);
}

/** n_packets summed over the dump-flows lines containing every one of what (none: 0) */
function packetsAll(dump: string, ...what: string[]): number {
  return dump.split('\n').filter((l) => what.every((w) => l.includes(w)))
    .reduce((n, l) => n + Number(/n_packets=(\d+)/.exec(l)![1]), 0);
}

/** the port an FTP announcement names: "p1,p2" (PORT, 227) or "p" (EPRT, 229), as the regexp caught it */
const portOf = (m: RegExpExecArray): number => (m[2] !== undefined ? Number(m[1]) * 256 + Number(m[2]) : Number(m[1]));

const sha256 = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');
const key = (e: Entry): string => `${e.proto} ${e.src}:${e.sport}>${e.dst}:${e.dport}`;

describe('ALGs (ftp, tftp) through ferryd', () => {
  const ferry = new Ferry({ prefix: `falg${process.pid % 10000}`, vms: 2, ip: true });
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-alg-'));
  const ftpRoot = path.join(dir, 'root');
  const file = path.join(ftpRoot, 'file.bin');
  const vsftpdLog = path.join(dir, 'vsftpd.log');
  const servers: ChildProcess[] = [];
  let fileSum = '';
  let downloads = 0;

  const ctl = (...args: string[]): string =>
    execFileSync('node', [FERRYCTL, '--api', ferry.api, ...args], { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
  const ctlIn = (input: string, ...args: string[]): string =>
    execFileSync('node', [FERRYCTL, '--api', ferry.api, ...args], { encoding: 'utf8', input });

  /** starts a server in vm2 in a process group of its own (its session children go with it), output to log */
  function startServer(name: string, argv: string[]): void {
    const fd = openSync(path.join(dir, `${name}.out`), 'a');
    const p = spawn('ip', ['netns', 'exec', ferry.ns(2), ...argv], { stdio: ['ignore', fd, fd], detached: true });
    closeSync(fd);
    servers.push(p);
  }

  async function listening(what: string, ssArgs: string, local: string): Promise<void> {
    await waitFor(what, async () => {
      const out = (n: string): string => (existsSync(path.join(dir, `${n}.out`)) ? readFileSync(path.join(dir, `${n}.out`), 'utf8') : '');
      for (const p of servers) if (p.exitCode != null) throw new Error(`a server exited: ${out('vsftpd')} ${out('tftpd')}`);
      return sh('ip', ['netns', 'exec', ferry.ns(2), 'ss', ssArgs]).includes(local) ? true : undefined;
    }, 5000);
  }

  /** curl in vm1; the exit code, stderr, and whether the file it wrote is the server's */
  function curl(url: string, ...opts: string[]): { rc: number; err: string; intact: boolean } {
    const out = path.join(dir, `download-${++downloads}`);
    const r = spawnSync('ip', ['netns', 'exec', ferry.ns(1), 'curl', '-sS', ...opts, url, '-o', out], { encoding: 'utf8', cwd: dir });
    const intact = existsSync(out) && sha256(out) === fileSum;
    rmSync(out, { force: true });
    return { rc: r.status ?? -1, err: r.stderr, intact };
  }

  /** the sum of a counter over all workers */
  const total = (name: string): Promise<number> => metricSum(ferry.api, name);

  async function counters(): Promise<{ created: number; matched: number }> {
    return { created: await total('ferry_ct_expectations_created_total'), matched: await total('ferry_ct_expectations_matched_total') };
  }

  async function conntrack(query: string): Promise<Entry[]> {
    const r = await fetch(`${ferry.api}/v1/conntrack?${query}`);
    assert.equal(r.status, 200);
    return (await r.text()).trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Entry);
  }

  async function expectations(query = ''): Promise<Expectation[]> {
    const r = await fetch(`${ferry.api}/v1/conntrack/expectations${query}`);
    assert.equal(r.status, 200);
    return (await r.text()).trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Expectation);
  }

  /** waits until vsftpd's log has line (it is written by the session processes, not in step with curl) */
  async function logged(re: RegExp, n: number): Promise<void> {
    const count = (): number => (existsSync(vsftpdLog) ? readFileSync(vsftpdLog, 'utf8').split('\n').filter((l) => re.test(l)).length : 0);
    await waitFor(`${n} vsftpd log lines ${re}`, async () => (count() >= n ? true : undefined), 3000)
      .catch(() => assert.fail(`vsftpd logged ${count()} lines ${re}, not ${n}:\n${readFileSync(vsftpdLog, 'utf8').slice(-3000)}`));
  }
  const logCount = (re: RegExp): number =>
    (existsSync(vsftpdLog) ? readFileSync(vsftpdLog, 'utf8').split('\n').filter((l) => re.test(l)).length : 0);
  /** the last line of vsftpd's log that matches re, matched */
  const lastLogged = (re: RegExp): RegExpExecArray => {
    const lines = readFileSync(vsftpdLog, 'utf8').split('\n').filter((l) => re.test(l));
    assert.ok(lines.length, `no vsftpd log line ${re}`);
    return re.exec(lines[lines.length - 1]!)!;
  };

  before(async () => {
    // the server's tree: one file of known content, readable by vsftpd's and tftpd's unprivileged users
    mkdirSync(ftpRoot);
    mkdirSync(path.join(dir, 'empty'));
    for (const d of [dir, ftpRoot, path.join(dir, 'empty')]) chmodSync(d, 0o755);
    const content = randomBytes(200 * 1024);
    writeFileSync(file, content, { mode: 0o644 });
    fileSum = createHash('sha256').update(content).digest('hex');
    writeFileSync(path.join(dir, 'vsftpd.conf'), [
      'listen=YES', 'listen_ipv6=NO', `listen_address=${SERVER}`, 'listen_port=21', 'background=NO',
      'anonymous_enable=YES', 'local_enable=NO', 'write_enable=NO', `anon_root=${ftpRoot}`, 'no_anon_password=YES',
      'pasv_enable=YES', `pasv_min_port=${PASV_PORTS[0]}`, `pasv_max_port=${PASV_PORTS[1]}`,
      'port_enable=YES', 'connect_from_port_20=YES',
      'seccomp_sandbox=NO', 'isolate=NO', 'isolate_network=NO', `secure_chroot_dir=${path.join(dir, 'empty')}`,
      'xferlog_enable=YES', `xferlog_file=${path.join(dir, 'xferlog')}`, 'dual_log_enable=YES', 'log_ftp_protocol=YES',
      `vsftpd_log_file=${vsftpdLog}`, 'data_connection_timeout=10', 'idle_session_timeout=30',
      '',
    ].join('\n'));

    await ferry.start();
    ctlIn(FIREWALL, 'add-flows', '-');
    startServer('vsftpd', ['/usr/sbin/vsftpd', path.join(dir, 'vsftpd.conf')]);
    startServer('tftpd', ['/usr/sbin/in.tftpd', '--foreground', '--listen', '--address', `${SERVER}:69`, '--secure', ftpRoot]);
    await listening('vsftpd on 10.250.0.2:21', '-ltn', `${SERVER}:21`);
    await listening('in.tftpd on 10.250.0.2:69', '-lun', `${SERVER}:69`);
  });

  after(async () => {
    for (const p of servers) {
      if (p.exitCode != null || p.signalCode != null || p.pid === undefined) continue;
      const gone = new Promise((r) => p.on('exit', r));
      try {
        process.kill(-p.pid, 'SIGKILL'); // the server and its session processes
      } catch { /* already gone */ }
      await gone;
    }
    await ferry.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** one FTP download from vm1 with curl's opts; checks the data connection was the related one */
  async function ftpDownload(mode: { opts: string[]; command: RegExp; active: boolean }): Promise<void> {
    const dump0 = ctl('dump-flows', '--table', '1');
    const c0 = await counters();
    const before = new Set((await conntrack('zone=7&proto=tcp')).map(key));
    const commands = logCount(mode.command);
    const r = curl(`ftp://${SERVER}/file.bin`, '--max-time', '10', ...mode.opts);
    assert.equal(r.rc, 0, `curl: ${r.err}`);
    assert.ok(r.intact, 'the downloaded file differs from the server\'s');
    await logged(mode.command, commands + 1); // curl used the mode asked for
    // one data connection, found by the expectation: +new+rel once, then +est+rel; nothing dropped
    const dump = ctl('dump-flows', '--table', '1');
    const delta = (...what: string[]): number => packetsOf(dump, ...what) - packetsOf(dump0, ...what);
    assert.equal(delta('ct_state=+new+rel+trk'), 1, dump);
    assert.equal(delta('tp_dst=21'), 1, dump);
    assert.ok(delta('ct_state=+est+rel+trk') >= 100, dump); // 200 KB of data, its ACKs
    assert.equal(delta('priority=0 '), 0, dump);
    assert.equal(delta('priority=1,', 'tcp'), 0, dump);
    assert.deepEqual(await counters(), { created: c0.created + 1, matched: c0.matched + 1 });
    assert.equal(await total('ferry_ct_expectations'), 0);
    // the tracker has the control connection and the data connection, which has its parent's mark
    const fresh = (await conntrack('zone=7&proto=tcp')).filter((e) => !before.has(key(e)));
    assert.equal(fresh.length, 2, JSON.stringify(fresh));
    const control = fresh.find((e) => e.dport === 21);
    const data = fresh.find((e) => e.dport !== 21);
    assert.ok(control && data, JSON.stringify(fresh));
    assert.equal(control.src, CLIENT);
    assert.equal(control.mark, FTP_MARK);
    assert.equal(data.mark, FTP_MARK, JSON.stringify(data));
    assert.equal(data.seen_reply, true);
    if (mode.active) {
      assert.deepEqual([data.src, data.sport, data.dst], [SERVER, 20, CLIENT], JSON.stringify(data));
    } else {
      assert.deepEqual([data.src, data.dst], [CLIENT, SERVER], JSON.stringify(data));
      assert.ok(data.dport >= PASV_PORTS[0]! && data.dport <= PASV_PORTS[1]!, JSON.stringify(data));
    }
  }

  /** one FTP download from vm1 through the NAT gateway in place, with curl -v: checks what every NAT
   * case shares (the file intact, vsftpd logged each of logs and a QUIT once more, one data connection, expected:
   * +new+rel once then established, nothing dropped, both with the control connection's mark) and
   * gives curl's transcript and the two connections */
  async function natDownload(url: string, opts: string[], logs: RegExp[]): Promise<{ verbose: string; control: Entry; data: Entry }> {
    const dump0 = ctl('dump-flows', '--table', '1');
    const c0 = await counters();
    const before = new Set((await conntrack('zone=7&proto=tcp')).map(key));
    // every session ends with QUIT, read by vsftpd after any edit shifted the stream
    logs = [...logs, /FTP command: Client "[\d.]+", "QUIT"/];
    const seen = logs.map(logCount);
    const r = curl(url, '--max-time', '10', '-v', ...opts);
    assert.equal(r.rc, 0, `curl ${opts.join(' ')}: ${r.err}`);
    assert.ok(r.intact, `the downloaded file differs from the server's:\n${r.err}`);
    for (const [i, re] of logs.entries()) await logged(re, seen[i]! + 1);
    const dump = ctl('dump-flows', '--table', '1');
    const delta = (...what: string[]): number => packetsAll(dump, ...what) - packetsAll(dump0, ...what);
    assert.equal(delta('ct_state=+new+rel+trk'), 1, dump);
    assert.equal(delta('tp_dst=21'), 1, dump);
    assert.ok(delta('ct_state=+est+trk') >= 100, dump); // 200 KB of data, its ACKs
    assert.equal(delta('priority=1,tcp'), 0, dump);
    assert.equal(delta('priority=0 '), 0, dump);
    assert.deepEqual(await counters(), { created: c0.created + 1, matched: c0.matched + 1 });
    assert.equal(await total('ferry_ct_expectations'), 0);
    const fresh = (await conntrack('zone=7&proto=tcp')).filter((e) => !before.has(key(e)));
    assert.equal(fresh.length, 2, JSON.stringify(fresh));
    const control = fresh.find((e) => e.dport === 21);
    const data = fresh.find((e) => e.dport !== 21);
    assert.ok(control && data, JSON.stringify(fresh));
    assert.equal(control.mark, FTP_MARK, JSON.stringify(control));
    assert.equal(data.mark, FTP_MARK, JSON.stringify(data));
    assert.equal(data.seen_reply, true, JSON.stringify(data));
    return { verbose: r.err, control, data };
  }

  test('passive FTP with EPSV (229): the data connection is expected, related, and the file arrives intact', async () => {
    await ftpDownload({ opts: [], command: /FTP response: Client "10\.250\.0\.1", "229 Entering Extended Passive Mode \(\|\|\|\d+\|\)"/, active: false });
  });

  test('passive FTP with PASV (227)', async () => {
    await ftpDownload({ opts: ['--disable-epsv'], command: /FTP response: Client "10\.250\.0\.1", "227 Entering Passive Mode \(10,250,0,2,\d+,\d+\)/, active: false });
  });

  test('active FTP with EPRT: vsftpd connects from port 20 to vm1, a new connection the other way', async () => {
    await ftpDownload({ opts: ['--ftp-port', CLIENT], command: /FTP command: Client "10\.250\.0\.1", "EPRT \|1\|10\.250\.0\.1\|\d+\|"/, active: true });
  });

  test('active FTP with PORT', async () => {
    await ftpDownload({ opts: ['--ftp-port', CLIENT, '--disable-eprt'], command: /FTP command: Client "10\.250\.0\.1", "PORT 10,250,0,1,\d+,\d+"/, active: true });
  });

  test('control: the same firewall without alg=ftp drops the data connection (plain +new), so the download fails', async () => {
    ctl('add-flow', ftpFlow(FTP_COMMIT_NO_ALG));
    try {
      const dump0 = ctl('dump-flows', '--table', '1');
      const c0 = await counters();
      const answers = logCount(/"229 Entering Extended Passive Mode/);
      // curl tries the EPSV port, then falls back to PASV and tries that: both connections are dropped
      const r = curl(`ftp://${SERVER}/file.bin`, '--connect-timeout', '2', '--max-time', '4');
      assert.notEqual(r.rc, 0, 'the download went through without the ALG');
      assert.ok(!r.intact);
      // the control connection worked (vsftpd answered EPSV); only the data connection was refused
      await logged(/"229 Entering Extended Passive Mode/, answers + 1);
      const dump = ctl('dump-flows', '--table', '1');
      const delta = (...what: string[]): number => packetsOf(dump, ...what) - packetsOf(dump0, ...what);
      assert.equal(delta('tp_dst=21'), 1, dump);
      assert.equal(delta('ct_state=+new+rel+trk'), 0, dump);
      // vm1's SYN to the announced port (and its retries): a plain new connection, dropped
      assert.ok(delta('priority=1,', 'tcp') >= 1, dump);
      assert.equal(delta('priority=0 '), 0, dump);
      assert.deepEqual(await counters(), c0);
      const data = (await conntrack('zone=7&proto=tcp')).filter((e) => e.dport >= PASV_PORTS[0]! && e.dport <= PASV_PORTS[1]! && e.seen_reply === false);
      assert.equal(data.length, 0, JSON.stringify(data)); // dropped before any commit
    } finally {
      ctl('add-flow', ftpFlow(FTP_COMMIT));
    }
    assert.match(ctl('dump-flows', '--table', '1'), /tp_dst=21 actions=ct\(commit,zone=7,exec\(set_field:0x21->ct_mark\),alg=ftp\),NORMAL/);
  });

  test('TFTP: the server\'s answer from a new port is expected and the file arrives intact; without alg=tftp it is dropped', async () => {
    const dump0 = ctl('dump-flows', '--table', '1');
    const c0 = await counters();
    const before = new Set((await conntrack('zone=7&proto=udp')).map(key));
    const r = curl(`tftp://${SERVER}/file.bin`, '--max-time', '10');
    assert.equal(r.rc, 0, `curl: ${r.err}`);
    assert.ok(r.intact, 'the downloaded file differs from the server\'s');
    let dump = ctl('dump-flows', '--table', '1');
    let delta = (...what: string[]): number => packetsOf(dump, ...what) - packetsOf(dump0, ...what);
    assert.equal(delta('tp_dst=69'), 1, dump);
    assert.equal(delta('ct_state=+new+rel+trk'), 1, dump);
    assert.ok(delta('ct_state=+est+rel+trk') >= 400, dump); // 400 blocks of 512 bytes and their ACKs
    assert.equal(delta('priority=0 '), 0, dump);
    assert.equal(delta('priority=1,', 'udp'), 0, dump);
    assert.deepEqual(await counters(), { created: c0.created + 1, matched: c0.matched + 1 });
    const fresh = (await conntrack('zone=7&proto=udp')).filter((e) => !before.has(key(e)));
    const request = fresh.find((e) => e.dport === 69);
    const answer = fresh.find((e) => e.src === SERVER);
    assert.ok(request && answer && fresh.length === 2, JSON.stringify(fresh));
    assert.equal(request.src, CLIENT);
    assert.notEqual(answer.sport, 69);
    assert.equal(answer.dst, CLIENT);
    assert.equal(answer.dport, request.sport); // back to the client's port
    assert.equal(answer.mark, TFTP_MARK);

    ctl('add-flow', tftpFlow(TFTP_COMMIT_NO_ALG));
    try {
      const dump1 = ctl('dump-flows', '--table', '1');
      const c1 = await counters();
      const r2 = curl(`tftp://${SERVER}/file.bin`, '--max-time', '3');
      assert.notEqual(r2.rc, 0, 'the TFTP download went through without the ALG');
      assert.ok(!r2.intact);
      dump = ctl('dump-flows', '--table', '1');
      delta = (...what: string[]): number => packetsOf(dump, ...what) - packetsOf(dump1, ...what);
      assert.ok(delta('tp_dst=69') >= 1, dump);
      assert.equal(delta('ct_state=+new+rel+trk'), 0, dump);
      // the server's answer from its new port (and its retransmissions): plain new, dropped
      assert.ok(delta('priority=1,', 'udp') >= 1, dump);
      assert.deepEqual(await counters(), c1);
    } finally {
      ctl('add-flow', tftpFlow(TFTP_COMMIT));
    }
  });

  test('an expectation is listed (REST, dump-conntrack-exp, gauge) between PASV and the data connection, and leaves with its parent on a flush', async () => {
    assert.deepEqual(await expectations(), []);
    const expired = await total('ferry_ct_expectations_expired_total');
    const c = spawn('ip', ['netns', 'exec', ferry.ns(1), 'python3', '-c', RAW_FTP], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    c.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise((r) => c.on('exit', r));
    try {
      const pasv = await waitFor('the 227 answer', async () => {
        if (c.exitCode != null) throw new Error(`the FTP client exited: ${out}`);
        return /^227 .*\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)/m.exec(out) ?? undefined;
      }, 5000);
      const port = Number(pasv[5]) * 256 + Number(pasv[6]);
      const local = /^local ([\d.]+):(\d+)$/m.exec(out)!;
      assert.equal(local[1], CLIENT);
      const sport = Number(local[2]);
      // the helper read the 227 from the server: vm1 may now connect to that port
      const exp = await waitFor('the expectation', async () => ((await expectations()).length ? await expectations() : undefined), 2000);
      assert.equal(exp.length, 1, JSON.stringify(exp));
      const e = exp[0]!;
      assert.equal(e.zone, 7);
      assert.equal(e.proto, 'tcp');
      assert.equal(e.family, 'ipv4');
      assert.equal(e.alg, 'ftp');
      assert.deepEqual(e.expected, { src: CLIENT, dst: SERVER, dport: port });
      assert.deepEqual(e.parent, { src: CLIENT, dst: SERVER, sport, dport: 21 });
      assert.equal(e.mark, FTP_MARK);
      assert.ok(e.timeout_ms > 50000 && e.timeout_ms <= 60000, JSON.stringify(e));
      const stable = (x: Expectation[]): unknown[] => x.map(({ timeout_ms: _ms, timeout: _s, ...rest }) => rest); // the clock runs
      assert.deepEqual(stable(await expectations('?zone=7')), stable(exp));
      assert.deepEqual(await expectations('?zone=8'), []);
      const page = (await ferry.json('GET', '/v1/conntrack/expectations?limit=10')).body;
      assert.equal(page.entries.length, 1, JSON.stringify(page));
      assert.equal(page.entries[0].expected.dport, port);
      assert.equal(await total('ferry_ct_expectations'), 1);
      const line = ctl('dump-conntrack-exp');
      assert.match(line, new RegExp(`^tcp,orig=\\(src=10\\.250\\.0\\.1,dst=10\\.250\\.0\\.2,sport=0,dport=${port}\\),zone=7,mark=${FTP_MARK},` +
        `parent=\\(src=10\\.250\\.0\\.1,dst=10\\.250\\.0\\.2,sport=${sport},dport=21\\),timeout=(5\\d|60),alg=ftp\\n$`), line);
      assert.equal(ctl('dump-conntrack-exp', 'zone=7'), line);
      assert.equal(ctl('dump-conntrack-exp', 'zone=8'), '');
      c.stdin!.write('quit\n');
      await exited;
      assert.match(out, /^221 /m, out);
    } finally {
      if (c.exitCode == null && c.signalCode == null) {
        c.kill('SIGKILL');
        await exited;
      }
    }
    // the control connection is closed but still tracked: its expectation stays until the entry goes
    assert.equal((await expectations()).length, 1);
    const del = await ferry.json('DELETE', '/v1/conntrack?zone=7');
    assert.equal(del.status, 200, JSON.stringify(del.body));
    assert.ok(Number(del.body.deleted) >= 1, JSON.stringify(del.body));
    assert.deepEqual(await expectations(), []);
    assert.equal(ctl('dump-conntrack-exp'), '');
    await waitFor('the gauge to fall to 0', async () => ((await total('ferry_ct_expectations')) === 0 ? true : undefined), 2000)
      .catch(async () => assert.fail(`ferry_ct_expectations ${await total('ferry_ct_expectations')}`));
    // removed with its parent, not timed out
    assert.equal(await total('ferry_ct_expectations_expired_total'), expired);
  });

  test('passive FTP through SNAT: vsftpd sees vm1 as 10.250.0.100, the data connection is expected and translated too', async () => {
    // frames for the translated address go to the port behind which ferryd un-translates them
    sh('ip', ['-n', ferry.ns(2), 'neigh', 'replace', SNAT_IP, 'lladdr', '02:fe:00:00:00:01', 'dev', 'eth0']);
    ctlIn(SNAT_FIREWALL, 'replace-flows', '-');
    await ferry.json('DELETE', '/v1/conntrack?zone=7');
    for (const mode of [{ opts: [] as string[], answer: /"229 Entering Extended Passive Mode/ }, { opts: ['--disable-epsv'], answer: /"227 Entering Passive Mode \(10,250,0,2,/ }]) {
      const dump0 = ctl('dump-flows', '--table', '1');
      const c0 = await counters();
      const connects = logCount(/CONNECT: Client "10\.250\.0\.100"/);
      const answers = logCount(new RegExp(`Client "10\\.250\\.0\\.100", ${mode.answer.source}`));
      const before = new Set((await conntrack('zone=7&proto=tcp')).map(key));
      const r = curl(`ftp://${SERVER}/file.bin`, '--max-time', '10', ...mode.opts);
      assert.equal(r.rc, 0, `curl ${mode.opts.join(' ')}: ${r.err}`);
      assert.ok(r.intact, 'the downloaded file differs from the server\'s');
      await logged(/CONNECT: Client "10\.250\.0\.100"/, connects + 1);
      await logged(new RegExp(`Client "10\\.250\\.0\\.100", ${mode.answer.source}`), answers + 1);
      const dump = ctl('dump-flows', '--table', '1');
      const delta = (...what: string[]): number => packetsOf(dump, ...what) - packetsOf(dump0, ...what);
      assert.equal(delta('ct_state=+new+rel+trk', 'in_port=0'), 1, dump);
      assert.equal(delta('priority=1,tcp'), 0, dump);
      assert.deepEqual(await counters(), { created: c0.created + 1, matched: c0.matched + 1 });
      const fresh = (await conntrack('zone=7&proto=tcp')).filter((e) => !before.has(key(e)));
      assert.equal(fresh.length, 2, JSON.stringify(fresh));
      for (const e of fresh) {
        // vm1 -> vm2 as sent; vm2 answers 10.250.0.100
        assert.deepEqual([e.src, e.dst, e.nat, e.reply.src, e.reply.dst, e.mark], [CLIENT, SERVER, 'snat', SERVER, SNAT_IP, FTP_MARK], JSON.stringify(e));
      }
      const data = fresh.find((e) => e.dport !== 21)!;
      assert.ok(data.dport >= PASV_PORTS[0]! && data.dport <= PASV_PORTS[1]!, JSON.stringify(data));
    }
    assert.equal(logCount(/OK DOWNLOAD: Client "10\.250\.0\.100", "\/file\.bin", 204800 bytes/), 2);
  });

  test('active FTP through SNAT: curl\'s PORT and EPRT naming 10.250.0.1 reach vsftpd naming 10.250.0.100, and its connection there is DNATed back to vm1', async () => {
    sh('ip', ['-n', ferry.ns(2), 'neigh', 'replace', SNAT_IP, 'lladdr', VM1_MAC, 'dev', 'eth0']);
    ctlIn(SNAT_FIREWALL, 'replace-flows', '-');
    await ferry.json('DELETE', '/v1/conntrack?zone=7');
    const downloads = logCount(/OK DOWNLOAD: Client "10\.250\.0\.100"/);
    for (const mode of [
      { opts: ['--disable-eprt'], sent: /^> PORT 10,250,0,1,(\d+),(\d+)\r?$/m, got: /FTP command: Client "10\.250\.0\.100", "PORT 10,250,0,100,(\d+),(\d+)"/ },
      { opts: [], sent: /^> EPRT \|1\|10\.250\.0\.1\|(\d+)\|\r?$/m, got: /FTP command: Client "10\.250\.0\.100", "EPRT \|1\|10\.250\.0\.100\|(\d+)\|"/ },
    ]) {
      const { verbose, control, data } = await natDownload(`ftp://${SERVER}/file.bin`, ['--ftp-port', CLIENT, ...mode.opts], [mode.got]);
      // curl sent its own address; vsftpd read the translated one, with the same port
      const sent = mode.sent.exec(verbose);
      assert.ok(sent, verbose);
      const port = portOf(sent);
      assert.equal(portOf(lastLogged(mode.got)), port);
      assert.deepEqual([control.src, control.dst, control.nat, control.reply.src, control.reply.dst], [CLIENT, SERVER, 'snat', SERVER, SNAT_IP], JSON.stringify(control));
      // vsftpd's connection from port 20 to 10.250.0.100, which vm1 answers from the port curl named
      assert.deepEqual([data.src, data.sport, data.dst, data.dport, data.nat], [SERVER, 20, SNAT_IP, port, 'dnat'], JSON.stringify(data));
      assert.deepEqual(data.reply, { src: CLIENT, sport: port, dst: SERVER, dport: 20 }, JSON.stringify(data));
    }
    assert.equal(logCount(/OK DOWNLOAD: Client "10\.250\.0\.100", "\/file\.bin", 204800 bytes/), downloads + 2);
  });

  test('passive FTP to a virtual IP (DNAT): the 227 naming 10.250.0.2 reaches curl naming 10.250.0.200, and the data connection there is DNATed to vsftpd', async () => {
    // vm1 reaches 10.250.0.200 at vm2's MAC; vsftpd listens on 10.250.0.2 only
    sh('ip', ['-n', ferry.ns(1), 'neigh', 'replace', VIP, 'lladdr', VM2_MAC, 'dev', 'eth0']);
    ctlIn(DNAT_FIREWALL, 'replace-flows', '-');
    await ferry.json('DELETE', '/v1/conntrack?zone=7');
    for (const mode of [
      // curl uses the 227's address (not the control connection's): had it stayed 10.250.0.2, the
      // connection there would be a plain new one, dropped
      { opts: ['--disable-epsv', '--no-ftp-skip-pasv-ip'], got: /^< 227 Entering Passive Mode \(10,250,0,200,(\d+),(\d+)\)/m,
        sent: /FTP response: Client "10\.250\.0\.1", "227 Entering Passive Mode \(10,250,0,2,(\d+),(\d+)\)/ },
      { opts: [], got: /^< 229 Entering Extended Passive Mode \(\|\|\|(\d+)\|\)/m,
        sent: /FTP response: Client "10\.250\.0\.1", "229 Entering Extended Passive Mode \(\|\|\|(\d+)\|\)/ },
    ]) {
      const { verbose, control, data } = await natDownload(`ftp://${VIP}/file.bin`, mode.opts, [/CONNECT: Client "10\.250\.0\.1"/, mode.sent]);
      const got = mode.got.exec(verbose);
      assert.ok(got, verbose);
      const port = portOf(got);
      assert.equal(portOf(lastLogged(mode.sent)), port);
      assert.ok(port >= PASV_PORTS[0]! && port <= PASV_PORTS[1]!, String(port));
      assert.match(verbose, new RegExp(`Connecting to 10\\.250\\.0\\.200 \\(10\\.250\\.0\\.200\\) port ${port}`), verbose);
      assert.doesNotMatch(verbose, /Skip .* for data connection/, verbose); // curl took the 227's address
      // vsftpd saw vm1 as itself, at its own address
      assert.deepEqual([control.src, control.dst, control.nat], [CLIENT, VIP, 'dnat'], JSON.stringify(control));
      assert.deepEqual(control.reply, { src: SERVER, sport: 21, dst: CLIENT, dport: control.sport }, JSON.stringify(control));
      assert.deepEqual([data.src, data.dst, data.dport, data.nat], [CLIENT, VIP, port, 'dnat'], JSON.stringify(data));
      assert.deepEqual(data.reply, { src: SERVER, sport: port, dst: CLIENT, dport: data.sport }, JSON.stringify(data));
    }
  });

  test('active FTP to a virtual IP (DNAT): vsftpd\'s connection from 10.250.0.2 to vm1 is SNATed to 10.250.0.200, PORT and EPRT', async () => {
    sh('ip', ['-n', ferry.ns(1), 'neigh', 'replace', VIP, 'lladdr', VM2_MAC, 'dev', 'eth0']);
    ctlIn(DNAT_FIREWALL, 'replace-flows', '-');
    await ferry.json('DELETE', '/v1/conntrack?zone=7');
    for (const mode of [
      { opts: ['--disable-eprt'], sent: /^> PORT 10,250,0,1,(\d+),(\d+)\r?$/m, got: /FTP command: Client "10\.250\.0\.1", "PORT 10,250,0,1,(\d+),(\d+)"/ },
      { opts: [], sent: /^> EPRT \|1\|10\.250\.0\.1\|(\d+)\|\r?$/m, got: /FTP command: Client "10\.250\.0\.1", "EPRT \|1\|10\.250\.0\.1\|(\d+)\|"/ },
    ]) {
      const { verbose, control, data } = await natDownload(`ftp://${VIP}/file.bin`, ['--ftp-port', CLIENT, ...mode.opts], [mode.got]);
      const sent = mode.sent.exec(verbose);
      assert.ok(sent, verbose);
      const port = portOf(sent);
      assert.equal(portOf(lastLogged(mode.got)), port); // vm1's own address needs no edit
      assert.deepEqual([control.src, control.dst, control.nat, control.reply.src, control.reply.dst], [CLIENT, VIP, 'dnat', SERVER, CLIENT], JSON.stringify(control));
      // vsftpd's connection from 10.250.0.2:20 to vm1 comes to vm1 from 10.250.0.200, which vm1 answers
      assert.deepEqual([data.src, data.sport, data.dst, data.dport, data.nat], [SERVER, 20, CLIENT, port, 'snat'], JSON.stringify(data));
      assert.deepEqual(data.reply, { src: CLIENT, sport: port, dst: VIP, dport: 20 }, JSON.stringify(data));
    }
  });
});
