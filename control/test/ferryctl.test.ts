// ferryctl against a real ferry-control process (spawned) attached to a fake ferryd.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ChildProcess, execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { FakeFerryd, uniqueName } from './fake-ferryd';
import { until } from './helpers';

const root = path.resolve(__dirname, '../../..');
const CONTROL = path.join(root, 'control/bin/ferry-control.js');
const FERRYCTL = path.join(root, 'control/bin/ferryctl.js');

let fake: FakeFerryd;
let server: ChildProcess;
let api: string;
let tmp: string;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/** Runs ferryctl (asynchronously: the fake ferryd lives in this process's event loop). */
function ferryctl(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [FERRYCTL, '--api', api, ...args], (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferryctl-'));
  fake = new FakeFerryd({ name: uniqueName('ctl'), ports: ['eth0', 'eth1'] }).start();
  const port = await freePort();
  api = `http://127.0.0.1:${port}`;
  server = spawn(process.execPath, [CONTROL, '--shm-name', fake.name, '--listen', `127.0.0.1:${port}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  server.stderr!.on('data', (d) => { log += d; });
  await until(async () => {
    try {
      return (await fetch(`${api}/health`)).status === 200;
    } catch {
      return false;
    }
  }, 10_000, `ferry-control healthy (log: ${log})`);
});

after(async () => {
  server?.kill('SIGTERM');
  await fake?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('add-flow, dump-flows in ovs-ofctl format, filters', async () => {
  let r = await ferryctl('add-flow', 'priority=100,ip,nw_src=10.0.0.0/24,idle_timeout=10,actions=ct(commit,zone=5,table=1)');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '');
  r = await ferryctl('add-flow', 'table=1,tcp,tp_dst=80,cookie=0x2a actions=output:1');
  assert.equal(r.code, 0, r.stderr);
  const id = [...fake.flows.values()].find((f) => f.table === 1)!;
  fake.setFlowStats(0, id.slot, 10n, 600n);
  r = await ferryctl('dump-flows');
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.split('\n');
  assert.equal(lines.length, 3, r.stdout);
  assert.match(lines[0]!, /^ cookie=0x0, duration=\d+(\.\d{1,3})?s, table=0, n_packets=0, n_bytes=0, idle_timeout=10, priority=100,ip,nw_src=10\.0\.0\.0\/24 actions=ct\(commit,table=1,zone=5\)$/);
  assert.match(lines[1]!, /^ cookie=0x2a, duration=\d+(\.\d{1,3})?s, table=1, n_packets=10, n_bytes=600, tcp,tp_dst=80 actions=output:1$/);
  assert.equal(lines[2], '');
  r = await ferryctl('dump-flows', '--table', '1');
  assert.equal(r.stdout.split('\n').length, 2);
  r = await ferryctl('dump-flows', 'tcp');
  assert.match(r.stdout, /^ cookie=0x2a.*\n$/);
});

test('add-flows FILE, del-flows (non-strict and --strict), replace-flows', async () => {
  assert.equal((await ferryctl('del-flows')).code, 0);
  assert.equal(fake.flows.size, 0);
  const file = path.join(tmp, 'flows.txt');
  fs.writeFileSync(file, '# test\npriority=10,tcp,tp_dst=22 actions=drop\npriority=20,tcp,tp_dst=22,nw_src=1.1.1.1 actions=drop\npriority=30,udp actions=NORMAL\n');
  let r = await ferryctl('add-flows', file);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(fake.flows.size, 3);
  r = await ferryctl('del-flows', '--strict', 'priority=10,tcp,tp_dst=22');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(fake.flows.size, 2);
  r = await ferryctl('del-flows', 'tcp');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(fake.flows.size, 1);
  assert.match((await ferryctl('dump-flows')).stdout, /priority=30,udp actions=NORMAL\n$/);

  fs.writeFileSync(file, 'table=2,ip actions=drop\npriority=5,arp actions=NORMAL\n');
  r = await ferryctl('replace-flows', file);
  assert.equal(r.code, 0, r.stderr);
  const out = (await ferryctl('dump-flows')).stdout;
  assert.doesNotMatch(out, /udp/);
  assert.match(out, /table=0, .*priority=5,arp actions=NORMAL/);
  assert.match(out, /table=2, .*ip actions=drop/);
  assert.equal(fake.flows.size, 2);
});

test('errors print the problem detail and exit 1', async () => {
  let r = await ferryctl('add-flow', 'tcp_dst=80 actions=drop');
  assert.equal(r.code, 1);
  assert.equal(r.stderr, 'ferryctl: line 1: tcp_dst: requires ip_proto=6 (add "tcp")\n');
  r = await ferryctl('add-flow', 'ip actions=output:7');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^ferryctl: line 1: actions\[0\]: port 7 does not exist on ferryd; its ports are: 0 \(eth0\), 1 \(eth1\)\n$/);
  r = await ferryctl('frobnicate');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /unknown command "frobnicate"/);
  const dead = await new Promise<{ code: number; stderr: string }>((resolve) => {
    execFile(process.execPath, [FERRYCTL, '--api', 'http://127.0.0.1:1', 'dump-flows'], (err, _o, stderr) => resolve({ code: err ? 1 : 0, stderr }));
  });
  assert.equal(dead.code, 1);
  assert.match(dead.stderr, /cannot reach ferry-control at http:\/\/127\.0\.0\.1:1/);
});
