// The OpenFlow pipeline in a real ferryd with real kernel traffic, programmed the way
// OVS users do it: ovs-ofctl text through ferryctl, multiple tables, dump-flows.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { Ferry, root, sh, waitFor } from './harness';

const FERRYCTL = path.join(root, 'control/bin/ferryctl.js');

describe('OpenFlow pipeline through ferryd', () => {
  const ferry = new Ferry({ prefix: `fpl${process.pid % 10000}`, vms: 2, ip: true });
  const ctl = (...args: string[]): string =>
    execFileSync('node', [FERRYCTL, '--api', ferry.api, ...args], { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
  const ctlIn = (input: string, ...args: string[]): string =>
    execFileSync('node', [FERRYCTL, '--api', ferry.api, ...args], { encoding: 'utf8', input });

  before(async () => {
    await ferry.start();
  });
  after(async () => {
    await ferry.stop();
  });

  test('ferryctl add-flows: arp by normal, ip through table 1 with dec_ttl; ping shows the TTL', async () => {
    ctlIn([
      '# two tables, as an OVS user writes them',
      'table=0,priority=100,arp,actions=normal',
      'table=0,priority=90,ip,actions=goto_table:1',
      'table=1,priority=10,ip,nw_dst=10.250.0.2,actions=dec_ttl,output:1',
      'table=1,priority=10,ip,nw_dst=10.250.0.1,actions=dec_ttl,output:0',
    ].join('\n') + '\n', 'add-flows', '-');
    const out = sh('ip', ['netns', 'exec', ferry.ns(1), 'ping', '-c', '3', '-i', '0.2', '-W', '2', '10.250.0.2']);
    assert.match(out, /3 received/);
    // the request lost one hop on the way there (vm2 answers with its own TTL 64, which loses one on the way back)
    assert.match(out, /ttl=63/);
  });

  test('dump-flows prints ovs-ofctl lines with counters that moved', () => {
    const dump = ctl('dump-flows');
    const lines = dump.trim().split('\n');
    assert.equal(lines.length, 4, dump);
    const t1 = lines.find((l) => l.includes('nw_dst=10.250.0.2'));
    assert.ok(t1, dump);
    assert.match(t1!, /^ cookie=0x0, duration=[0-9.]+s, table=1, n_packets=3, n_bytes=294, priority=10,ip,nw_dst=10\.250\.0\.2 actions=dec_ttl,output:1$/);
    assert.match(dump, /table=0, n_packets=\d+, n_bytes=\d+, priority=100,arp actions=NORMAL/);
  });

  test('a bad flow names its token, and replace-table is all or nothing', async () => {
    assert.throws(() => ctl('add-flow', 'table=0,priority=5,tcp_dst=80,actions=drop'), /tcp_dst: requires ip_proto=6/);
    const before = ctl('dump-flows');
    const r = await fetch(`${ferry.api}/v1/tables/1/flows`, {
      method: 'PUT', headers: { 'content-type': 'text/plain' },
      body: 'priority=10,ip,nw_dst=10.250.0.2,actions=output:1\npriority=11,ip,actions=output:9\n',
    });
    assert.equal(r.status, 400);
    const p = await r.json() as { detail: string };
    assert.match(p.detail, /port 9/);
    const after = ctl('dump-flows');
    assert.equal(after.replace(/duration=[0-9.]+s, /g, ''), before.replace(/duration=[0-9.]+s, /g, ''));
  });

  test('controller(max_len=64) punts frames to /v1/packet-ins', async () => {
    ctl('add-flow', 'table=0,priority=200,dl_type=0x88b5,actions=controller(max_len=64)');
    const before = (await ferry.json('GET', '/v1/packet-ins')).body.total;
    assert.equal(await ferry.frames(1, 2, 5), 0);
    await waitFor('packet-ins', async () =>
      (await ferry.json('GET', '/v1/packet-ins')).body.total - before === 5 ? true : undefined, 3000);
    const items = (await ferry.json('GET', '/v1/packet-ins')).body.items;
    const last = items[items.length - 1];
    assert.equal(last.in_port, 0);
    assert.equal(last.total_len, 60);
  });

  test('set_field rewrites the frame, and an idle timeout removes the flow', async () => {
    ctl('add-flow', 'table=0,priority=250,idle_timeout=2,dl_type=0x88b5,actions=set_field:02:fe:00:00:00:09->eth_dst,output:1');
    assert.match(ctl('dump-flows'), /idle_timeout=2, priority=250,dl_type=0x88b5 actions=set_field:02:fe:00:00:00:09->eth_dst,output:1/);
    assert.equal(await ferry.frames(1, 2, 4, 60, '02:fe:00:00:00:09'), 4); /* arrived rewritten */
    await waitFor('flow idle-expired', async () => (ctl('dump-flows').includes('priority=250') ? undefined : true), 6000);
  });
});
