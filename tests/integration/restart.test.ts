// Restarts lose nothing, on real processes: two ferryd nodes joined by an STT tunnel, their VMs
// pinging through conntrack. kill -9 of ferryd (the control service replays flows and tunnels to
// the new one), kill -9 of ferry-control (ferryd forwards on, without loss; the restarted service
// reconciles from its state directory without duplicating anything), and a bundle cut in the
// middle by ferryd dying (fault injection): all or nothing.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { waitFor } from './harness';
import { Ferry2, HvNode } from './harness2';

interface DesiredView { flows: string[]; tunnels: unknown[] }

/** The desired state a node's API shows (flow ids and whole tunnel configurations). */
async function desiredOf(n: HvNode): Promise<DesiredView> {
  const flows = (await n.json('GET', '/v1/flows?limit=10000')).body.items.map((f: { id: string }) => f.id).sort();
  const tunnels = (await n.json('GET', '/v1/tunnels')).body.items.map(({ stats: _s, ...t }: Record<string, unknown>) => t);
  return { flows, tunnels };
}

/** Idle mbufs in use: sampled a few times, the lowest (a burst in flight is not a leak). */
async function idleMbufsInUse(n: HvNode): Promise<number> {
  let low = Infinity;
  for (let i = 0; i < 5; i++) {
    low = Math.min(low, await n.metric('ferry_mbufs', { state: 'in_use' }));
    await new Promise((r) => setTimeout(r, 100));
  }
  return low;
}

describe('restarts lose nothing', () => {
  const topo = new Ferry2(`frs${process.pid % 10000}`);
  const [hv1, hv2] = topo.nodes;

  before(async () => {
    await topo.start();
    await topo.configure();
    // warm: neighbours resolved, connections tracked
    const r = topo.ping(1, 2, ['-c', '3', '-i', '0.2', '-W', '2']);
    assert.equal(r.received, 3, r.out + topo.logs());
  });
  after(async () => {
    await topo.stop();
  });

  test('kill -9 of ferryd under traffic: unhealthy within a second, then the new ferryd gets every flow and tunnel and traffic passes', async () => {
    const before = await desiredOf(hv1);
    assert.ok(before.flows.length >= 12 && before.tunnels.length === 1);
    // ferry-control and ferryd wake each other through the doorbell (the replay rang both ways)
    assert.equal(await hv1.metric('ferry_control_doorbell_up'), 1, 'the doorbell is up');
    assert.ok(await hv1.metric('ferry_control_doorbell_rings_total', { direction: 'sent' }) > 0);
    assert.ok(await hv1.metric('ferry_control_doorbell_rings_total', { direction: 'heard' }) > 0);
    // traffic while it dies
    const ping = spawn('ip', ['netns', 'exec', hv1.vmNs, 'ping', '-n', '-i', '0.05', '-w', '6', '10.251.0.2'], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 500));
    const t0 = Date.now();
    await hv1.kill('ferryd');
    await waitFor('hv1 unhealthy', async () => ((await fetch(`${hv1.api}/health`)).status === 503 ? true : undefined), 3000);
    const took = Date.now() - t0;
    assert.ok(took < 1000, `/health turned unhealthy after ${took} ms`);

    hv1.startFerryd();
    await hv1.waitHealthy();
    assert.deepEqual(await desiredOf(hv1), before, 'the desired state is unchanged');
    assert.equal(await hv1.metric('ferry_flows'), before.flows.length, 'the new ferryd holds every flow');
    // the new ferryd's doorbell: rung by the replay, ringing back
    await waitFor('the doorbell to the new ferryd', async () => ((await hv1.metric('ferry_control_doorbell_up')) === 1 ? true : undefined), 5000);
    assert.ok(await hv1.metric('ferry_control_doorbell_rings_total', { direction: 'heard' }) > 0);
    const tun = (await hv1.json('GET', '/v1/tunnels/stt0')).body;
    assert.ok(tun.stats, 'the tunnel port exists in the new ferryd (it has counters)');
    await new Promise((r) => ping.on('exit', r));
    const r = topo.ping(1, 2, ['-c', '5', '-i', '0.2', '-W', '2']);
    assert.equal(r.received, 5, `traffic passes again:\n${r.out}\n${topo.logs()}`);
  });

  test('kill -9 of ferry-control: ferryd forwards on without loss; the restarted service reconciles without duplicating', async () => {
    const before = await desiredOf(hv2);
    const flowsActive = await hv2.metric('ferry_flows');
    // the busiest flow: its counter must not start again from 0
    const items = (await hv2.json('GET', '/v1/flows?limit=10000')).body.items as { id: string; n_packets: string }[];
    const busiest = items.reduce((a, b) => (Number(b.n_packets) > Number(a.n_packets) ? b : a));
    const pkts0 = Number(busiest.n_packets);
    assert.ok(pkts0 > 0, 'some flow has carried the warm-up pings');
    const idle0 = await idleMbufsInUse(hv2);

    await hv2.kill('control');
    // while hv2 has no control service: every ping answered, both ways through hv2's ferryd
    const r = topo.ping(1, 2, ['-c', '40', '-i', '0.05', '-W', '2']);
    assert.equal(r.received, 40, `no loss while ferry-control is down:\n${r.out}\n${topo.logs()}`);

    hv2.startControl();
    await hv2.waitHealthy();
    assert.deepEqual(await desiredOf(hv2), before, 'the restarted service has the same desired state (from its state directory)');
    assert.equal(await hv2.metric('ferry_flows'), flowsActive, 'ferryd holds each flow once');
    assert.ok(Number((await hv2.json('GET', `/v1/flows/${busiest.id}`)).body.n_packets) >= pkts0, 'counters kept: the reconcile replaced the table in place');
    const again = topo.ping(2, 1, ['-c', '5', '-i', '0.2', '-W', '2']);
    assert.equal(again.received, 5, again.out);
    // the pings' mbufs all came back
    await waitFor('mbufs back to idle', async () => ((await idleMbufsInUse(hv2)) <= idle0 ? true : undefined), 5000)
      .catch(async () => assert.fail(`mbufs in use at idle: ${idle0} before, ${await idleMbufsInUse(hv2)} after`));
  });

  test('a bundle cut short by ferryd dying (fault injection) is all or nothing', async () => {
    const before = await desiredOf(hv1);
    // the replay to the restarted ferryd stages every desired flow in a bundle too: die 50 ops into the test's own
    await hv1.kill('ferryd', 'SIGTERM');
    hv1.startFerryd({ FERRY_FAULT_KILL_AT_BUNDLE_OP: String(before.flows.length + 50) });
    await hv1.waitHealthy();
    const lines = Array.from({ length: 200 }, (_, i) => `table=60,priority=${1000 + i},ip,nw_dst=172.16.${i >> 8}.${i & 255},actions=drop`).join('\n');
    const res = await fetch(`${hv1.api}/v1/flows`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: lines + '\n' });
    const body = await res.text();
    assert.equal(res.status, 503, `the request fails as ferryd dies mid-bundle: ${body}`);
    assert.match(res.headers.get('content-type') ?? '', /problem\+json/);
    await waitFor('ferryd gone', async () => (hv1.ferryd?.exitCode != null || hv1.ferryd?.signalCode != null ? true : undefined), 3000);

    hv1.startFerryd();
    await hv1.waitHealthy();
    assert.deepEqual(await desiredOf(hv1), before, 'none of the bundle is in the desired state');
    assert.equal(await hv1.metric('ferry_flows'), before.flows.length, 'and none of it is in ferryd');
    const r = topo.ping(1, 2, ['-c', '3', '-i', '0.2', '-W', '2']);
    assert.equal(r.received, 3, r.out);
    // and the same bundle goes through whole on a healthy ferryd
    const ok = await fetch(`${hv1.api}/v1/flows`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: lines + '\n' });
    assert.equal(ok.status, 200, await ok.text());
    assert.equal(await hv1.metric('ferry_flows'), before.flows.length + 200);
  });
});
