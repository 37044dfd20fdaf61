// Issue 9's proof: a 3-member etcd cluster on 127.0.0.1 and three Ferry nodes in cluster mode in
// network namespaces joined by an underlay bridge. A flow set written once (on one node) reaches all
// three; VMs on different nodes talk across the STT mesh the registrations make; losing an etcd
// member changes nothing; a stopped node leaves the others' meshes within its lease time and comes
// back with its state when restarted.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from './harness';
import { EtcdCluster } from './etcd';
import { Mesh } from './harness-mesh';

const LEASE_TTL = 3;
/** A learning switch over the VM port and the mesh tunnels (NORMAL's split horizon keeps a full mesh loop-free). */
const FLEET_FLOWS = 'table=0,priority=0,actions=normal\n';

describe('an STT mesh whose desired state lives in etcd', () => {
  let etcd: EtcdCluster;
  let mesh: Mesh;

  before(async () => {
    etcd = await EtcdCluster.start({ members: 3 });
    mesh = new Mesh(`fcl${process.pid % 10000}`, 3, { etcd: etcd.endpoints, etcdPrefix: `/ferry-it-${process.pid}`, leaseTtl: LEASE_TTL, meshKey: '4096' });
    await mesh.start();
  });
  after(async () => {
    await mesh?.stop();
    await etcd?.stop();
  });

  test('every node registered and has a tunnel to each of the others', async () => {
    for (const n of mesh.nodes) {
      await waitFor(`${n.id}: two peers`, async () => ((await n.tunnelNames()).length === 2 ? true : undefined), 10000);
      const others = mesh.nodes.filter((o) => o !== n).map((o) => `peer-${o.id}`).sort();
      assert.deepEqual(await n.tunnelNames(), others);
      const h = (await n.json('GET', '/health')).body;
      assert.equal(h.cluster.etcd, 'up');
      assert.equal(await n.metric('ferry_cluster_peers'), 2);
    }
  });

  test('a flow set written once on hv1 reaches all three, and VMs on different nodes talk across the mesh', async () => {
    const r = await mesh.node(1).json('POST', '/v1/flows', FLEET_FLOWS);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    for (const n of mesh.nodes) {
      await waitFor(`${n.id}: the flow`, async () => ((await n.metric('ferry_flows')) === 1 ? true : undefined), 10000);
    }
    for (const [a, b] of [[1, 2], [1, 3], [2, 3], [3, 1]] as const) {
      const p = mesh.ping(a, b);
      assert.equal(p.received, 3, `vm${a} -> vm${b}:\n${p.out}\n${mesh.logs()}`);
    }
    // and it crossed the tunnels: STT frames counted on both ends
    assert.ok((await mesh.node(1).metric('ferry_stt_tx_frames_total')) > 0, 'hv1 encapsulated');
    assert.ok((await mesh.node(3).metric('ferry_stt_rx_frames_total')) > 0, 'hv3 decapsulated');
  });

  test('stopping one etcd member changes nothing', async () => {
    await etcd.stopMember(1);
    const r = await mesh.node(2).json('POST', '/v1/flows', 'table=0,priority=50,ip,nw_dst=10.252.9.9,actions=drop\n');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    for (const n of mesh.nodes) {
      await waitFor(`${n.id}: the second flow`, async () => ((await n.metric('ferry_flows')) === 2 ? true : undefined), 10000);
      assert.equal((await n.json('GET', '/health')).body.cluster.etcd, 'up');
    }
    const p = mesh.ping(2, 3);
    assert.equal(p.received, 3, p.out);
    await etcd.startMember(1);
  });

  test('a stopped node leaves the others\' meshes within its lease time, and comes back with its state', async () => {
    const hv3 = mesh.node(3);
    const t0 = Date.now();
    await hv3.kill(); // kill -9: no goodbye, the lease runs out
    for (const n of [mesh.node(1), mesh.node(2)]) {
      await waitFor(`${n.id}: peer-hv3 gone`, async () => (!(await n.tunnelNames()).includes('peer-hv3') ? true : undefined), (LEASE_TTL + 3) * 1000);
    }
    const took = (Date.now() - t0) / 1000;
    assert.ok(took <= LEASE_TTL + 2, `removed after ${took.toFixed(1)} s (lease ${LEASE_TTL} s)`);
    // vm1 <-> vm2 unaffected
    assert.equal(mesh.ping(1, 2).received, 3);

    await hv3.start();
    for (const n of [mesh.node(1), mesh.node(2)]) {
      await waitFor(`${n.id}: peer-hv3 back`, async () => ((await n.tunnelNames()).includes('peer-hv3') ? true : undefined), 10000);
    }
    await waitFor('hv3: its flows back', async () => ((await hv3.metric('ferry_flows')) === 2 ? true : undefined), 10000);
    assert.deepEqual(await hv3.tunnelNames(), ['peer-hv1', 'peer-hv2']);
    const p = mesh.ping(1, 3);
    assert.equal(p.received, 3, `${p.out}\n${mesh.logs()}`);
  });
});
