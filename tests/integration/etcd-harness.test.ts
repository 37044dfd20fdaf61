// Self-test of the cluster-test scaffolding: scripts/topology-mesh.sh (N hypervisor
// namespaces on an underlay bridge, one VM each) and EtcdCluster (a 3-member etcd on
// 127.0.0.1): both come up as promised and leave nothing behind.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { root, sh, waitFor } from './harness';
import { EtcdCluster } from './etcd';

const MESH = path.join(root, 'scripts/topology-mesh.sh');

const netnsList = (): string[] =>
  sh('ip', ['netns', 'list']).split('\n').map((l) => l.split(' ')[0]!).filter(Boolean);

const inNs = (ns: string, ...cmd: string[]): string => sh('ip', ['netns', 'exec', ns, ...cmd]);

describe('topology-mesh.sh', () => {
  const P = `fmh${process.pid % 10000}`;
  const N = 3;
  const expected = [...Array.from({ length: N }, (_, i) => [`${P}-hv${i + 1}`, `${P}-vm${i + 1}`]).flat(), `${P}-ul`];
  const ours = (): string[] => netnsList().filter((n) => n.startsWith(`${P}-`)).sort();

  after(() => { sh(MESH, ['down', P]); });

  test('up N=3: namespaces, veths, bridge; hv1 and hv3 reach each other over the underlay; down removes all', () => {
    sh(MESH, ['up', P, String(N)]);
    sh(MESH, ['up', P, String(N)]); // idempotent: an earlier run's leftovers are removed first
    assert.deepEqual(ours(), [...expected].sort());

    for (let k = 1; k <= N; k++) {
      const hv = `${P}-hv${k}`, vm = `${P}-vm${k}`;
      const hvLinks = JSON.parse(sh('ip', ['-j', '-n', hv, 'link', 'show'])) as { ifname: string; operstate: string; mtu: number }[];
      for (const ifc of [`${P}-v${k}`, `${P}-u${k}`]) {
        const l = hvLinks.find((x) => x.ifname === ifc);
        assert.ok(l, `${ifc} in ${hv}: ${JSON.stringify(hvLinks)}`);
        assert.equal(l.mtu, 1500);
      }
      const eth0 = (JSON.parse(sh('ip', ['-j', '-n', vm, 'addr', 'show', 'dev', 'eth0'])) as
        { address: string; mtu: number; addr_info: { family: string; local: string; prefixlen: number }[] }[])[0]!;
      assert.equal(eth0.address, `02:fe:02:00:00:0${k}`);
      assert.equal(eth0.mtu, 1500);
      assert.deepEqual(eth0.addr_info.map((a) => `${a.family} ${a.local}/${a.prefixlen}`), [`inet 10.252.0.${k}/24`]);
      assert.match(inNs(hv, 'ethtool', '-k', `${P}-u${k}`), /tx-checksumming: off/);
      assert.equal(inNs(vm, 'sysctl', '-n', 'net.ipv6.conf.all.disable_ipv6').trim(), '1');
    }
    const ports = (JSON.parse(sh('ip', ['-j', '-n', `${P}-ul`, 'link', 'show', 'master', 'br0'])) as { ifname: string }[])
      .map((l) => l.ifname).sort();
    assert.deepEqual(ports, Array.from({ length: N }, (_, i) => `${P}-b${i + 1}`));

    // L2 across the bridge: temporary addresses on the underlay ends of hv1 and hv3
    const ul = (k: number): [string, string] => [`${P}-hv${k}`, `${P}-u${k}`];
    for (const k of [1, 3]) inNs(ul(k)[0], 'ip', 'addr', 'add', `192.168.252.${k}/24`, 'dev', ul(k)[1]);
    try {
      const out = inNs(ul(1)[0], 'ping', '-n', '-c', '2', '-i', '0.2', '-W', '2', '192.168.252.3');
      assert.match(out, / 2 received/);
    } finally {
      for (const k of [1, 3]) inNs(ul(k)[0], 'ip', 'addr', 'del', `192.168.252.${k}/24`, 'dev', ul(k)[1]);
    }

    sh(MESH, ['down', P]);
    assert.deepEqual(ours(), []);
    sh(MESH, ['down', P]); // never fails, also with nothing there
  });
});

/** pids of processes whose command line contains s. */
function pidsWith(s: string): number[] {
  const pids: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(s)) pids.push(Number(d));
    } catch { /* gone */ }
  }
  return pids;
}

describe('EtcdCluster', () => {
  let etcd: EtcdCluster | undefined;
  after(async () => { await etcd?.stop(); });

  test('3 members: replicate, survive a stopped member, catch it up, stop cleanly', async () => {
    const c = etcd = await EtcdCluster.start();
    assert.equal(c.endpoints.length, 3);
    assert.equal(new Set(c.endpoints).size, 3);
    const members = JSON.parse(await c.etcdctl(['member', 'list', '-w', 'json'], { member: 0 })) as { members: unknown[] };
    assert.equal(members.members.length, 3, c.logs());

    // put through member 0 (etcdctl), read through member 2 (etcdctl, and the HTTP gateway)
    await c.etcdctl(['put', '/ferry-it/a', 'one'], { member: 0 });
    assert.equal(await c.etcdctl(['get', '--print-value-only', '/ferry-it/a'], { member: 2 }), 'one\n');
    assert.equal(await c.get(2, '/ferry-it/a'), 'one');

    // member 1 stopped: 2 of 3 is a quorum, writes go on
    await c.stopMember(1);
    assert.equal(c.isRunning(1), false);
    await waitFor('a put with member 1 stopped', async () => { await c.put(0, '/ferry-it/b', 'two'); return true; }, 10000);
    assert.equal(await c.get(2, '/ferry-it/b'), 'two');

    // member 1 back: catches up from its own data dir and the leader
    await c.startMember(1);
    await waitFor('member 1 has /ferry-it/b', async () =>
      (await c.get(1, '/ferry-it/b', { serializable: true })) === 'two' ? true : undefined, 10000);
    assert.equal(await c.etcdctl(['get', '--print-value-only', '/ferry-it/b'], { member: 1 }), 'two\n');

    const dirs = [...c.dataDirs];
    assert.ok(dirs.every((d) => existsSync(d)));
    assert.ok(pidsWith(c.token).length >= 3, `etcd processes with ${c.token}`);
    await c.stop();
    etcd = undefined;
    assert.deepEqual(pidsWith(c.token), [], 'etcd processes left');
    assert.deepEqual(dirs.filter((d) => existsSync(d)), [], 'data dirs left');
    await c.stop(); // again: never throws
  });
});
