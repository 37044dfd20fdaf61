// ferryctl add-tunnel / del-tunnel / show-tunnels / show-neighbours against ferry-control's API on
// a fake ferryd.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { harness, Harness } from './helpers';
import { NeighFlag, TunnelFlag } from '../src/gen/proto';
import { CliError, run, tunnelBody } from '../src/cli/ferryctl';

const FERRYCTL = path.resolve(__dirname, '../../../control/bin/ferryctl.js');
let h: Harness;
let api: string;
before(async () => {
  h = await harness('ferryctl-tun');
  await h.app.listen({ port: 0, host: '127.0.0.1' });
  api = `http://127.0.0.1:${(h.app.server.address() as AddressInfo).port}`;
});
after(async () => h.close());

const ctl = (...args: string[]): Promise<string> => run(['--api', api, ...args], {});

test('add-tunnel KEY=VALUE... creates the tunnel; show-tunnels prints it with its counters; del-tunnel removes it', async () => {
  assert.equal(await ctl('show-tunnels'), 'no tunnels\n');
  assert.equal(await ctl('add-tunnel', 'stt0', 'local_ip=192.0.2.1/24', 'remote_ip=flow', 'key=flow', 'underlay_port=0'), '');
  const c = h.fake.tun.tunnels.get(2)!;
  assert.deepEqual([c.flags, c.local_plen, c.underlay_port], [TunnelFlag.REMOTE_FLOW | TunnelFlag.KEY_FLOW, 24, 0]);
  await ctl('add-tunnel', 'stt1', 'local_ip=192.0.2.1/24', 'remote_ip=198.51.100.2', 'key=0x2a', 'underlay_port=1', 'port=7', 'ttl=32', 'gateway=192.0.2.254');
  assert.equal(h.fake.tun.tunnels.get(7)!.key, 42n);
  h.fake.setWorkerPort(0, 7, { rx_packets: 3n, rx_bytes: 180n, tx_packets: 5n, tx_bytes: 300n });
  assert.equal(await ctl('show-tunnels'), [
    'stt0 (port 2): type=stt local_ip=192.0.2.1/24 remote_ip=flow key=flow dst_port=7471 underlay_port=0 underlay_mtu=1500 tos=0 ttl=64',
    '    rx pkts=0 bytes=0 drop=0  tx pkts=0 bytes=0 drop=0',
    'stt1 (port 7): type=stt local_ip=192.0.2.1/24 remote_ip=198.51.100.2 key=42 dst_port=7471 underlay_port=1 underlay_mtu=1500 gateway=192.0.2.254 tos=0 ttl=32',
    '    rx pkts=3 bytes=180 drop=0  tx pkts=5 bytes=300 drop=0',
  ].join('\n') + '\n');
  // the same again is fine (idempotent); another configuration under the name is not
  await ctl('add-tunnel', 'stt0', 'local_ip=192.0.2.1/24', 'remote_ip=flow', 'key=flow', 'underlay_port=0');
  await assert.rejects(ctl('add-tunnel', 'stt0', 'local_ip=192.0.2.1/24', 'remote_ip=flow', 'underlay_port=0'), /exists with another configuration/);
  assert.equal(await ctl('del-tunnel', 'stt1'), '');
  assert.ok(!h.fake.tun.tunnels.has(7));
  await assert.rejects(ctl('del-tunnel', 'stt1'), (e: Error) => e instanceof CliError && /no tunnel "stt1"/.test(e.message));
  await ctl('del-tunnel', 'stt0');
});

test('add-tunnel reports what the API refuses, naming the field; arguments are checked', async () => {
  await assert.rejects(ctl('add-tunnel', 'stt0', 'local_ip=192.0.2.300', 'remote_ip=flow', 'underlay_port=0'), /\/local_ip: "192\.0\.2\.300" is not an IPv4 address/);
  await assert.rejects(ctl('add-tunnel', 'stt0', 'local_ip=192.0.2.1', 'remote_ip=flow', 'underlay_port=9'), /\/underlay_port: port 9 is not an ethdev/);
  await assert.rejects(ctl('add-tunnel', 'stt0', 'local_ip=192.0.2.1', 'remote_ip=flow', 'underlay_port=0', 'ttl=many'), /\/ttl/);
  await assert.rejects(ctl('add-tunnel', 'stt0', 'local_ip=192.0.2.1', 'remote_ip=flow', 'underlay_port=0', 'colour=blue'), /\/colour is not a known property/);
  await assert.rejects(ctl('add-tunnel', 'stt0', 'local_ip'), /"local_ip" is not KEY=VALUE/);
  await assert.rejects(ctl('add-tunnel'), /add-tunnel: wants NAME/);
  await assert.rejects(ctl('del-tunnel'), /del-tunnel: wants one NAME/);
  await assert.rejects(ctl('show-tunnels', 'x'), /show-tunnels: wants no arguments/);
  assert.deepEqual(tunnelBody('t', ['port=3', 'dst_port=7471', 'key=5', 'gateway=10.0.0.1']), { name: 't', port: 3, dst_port: 7471, key: '5', gateway: '10.0.0.1' });
  assert.throws(() => tunnelBody('t', ['ttl=1', 'ttl=2']), /ttl is given twice/);
  assert.equal(h.fake.tun.tunnels.size, 0);
});

test('show-neighbours prints the table as ip neigh does (the ferryctl binary)', async () => {
  h.fake.tun.learn(0, '192.0.2.7', '02:00:00:00:00:07', NeighFlag.REACHABLE, 1500);
  h.fake.tun.learn(1, '198.51.100.9', '00:00:00:00:00:00', NeighFlag.INCOMPLETE);
  await h.app.inject({ method: 'PUT', url: '/v1/neighbours/0/192.0.2.254', payload: { mac: '02:00:00:00:00:fe' } });
  const r = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [FERRYCTL, '--api', api, 'show-neighbours'], (err, stdout, stderr) => resolve({ code: err ? 1 : 0, stdout, stderr }));
  });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, [
    '192.0.2.7 dev port0 lladdr 02:00:00:00:00:07 REACHABLE age 1.5s',
    '192.0.2.254 dev port0 lladdr 02:00:00:00:00:fe PERMANENT',
    '198.51.100.9 dev port1 INCOMPLETE age 0.0s',
  ].join('\n') + '\n');
});
