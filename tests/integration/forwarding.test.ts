// A real ferryd forwarding real kernel traffic between two namespaces, programmed by a
// real ferry-control over REST; counters in /metrics must move by exactly what was sent.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Ferry, root, sh, waitFor } from './harness';

const P0 = 'net_af_packet0';
const P1 = 'net_af_packet1';

describe('ferryd + ferry-control over af_packet veths', () => {
  const ferry = new Ferry({ prefix: `fit${process.pid % 10000}`, vms: 2 });

  before(async () => {
    await ferry.start();
  });
  after(async () => {
    await ferry.stop();
  });

  test('GET /v1/ports lists the af_packet ports', async () => {
    const r = await ferry.json('GET', '/v1/ports');
    assert.equal(r.status, 200);
    assert.equal(r.body.items.length, 2);
    assert.deepEqual(r.body.items.map((p: any) => p.name), [P0, P1]);
    assert.equal(r.body.items[0].driver, 'net_af_packet');
    assert.match(r.body.items[0].mac, /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
    assert.equal(typeof r.body.items[0].stats.rx_packets, 'string');
  });

  test('with no flow every frame is a counted table miss', async () => {
    const miss0 = await ferry.metric('ferry_worker_drops_total', { worker: '0', reason: 'table_miss' });
    assert.equal(await ferry.frames(1, 2, 10), 0);
    await waitFor('drops counted', async () =>
      (await ferry.metric('ferry_worker_drops_total', { worker: '0', reason: 'table_miss' })) - miss0 === 10 ? true : undefined, 3000);
  });

  test('flows installed over REST forward, and counters move by exactly that much', async () => {
    for (const [from, to] of [[0, 1], [1, 0]]) {
      const r = await ferry.json('POST', '/v1/flows', {
        priority: 100, match: { in_port: from }, actions: [{ type: 'output', port: to }],
      });
      assert.equal(r.status, 201, JSON.stringify(r.body));
    }
    const rx0 = await ferry.metric('ferry_port_rx_packets_total', { port: P0 });
    const rxb0 = await ferry.metric('ferry_port_rx_bytes_total', { port: P0 });
    const tx1 = await ferry.metric('ferry_port_tx_packets_total', { port: P1 });
    const txb1 = await ferry.metric('ferry_port_tx_bytes_total', { port: P1 });

    assert.equal(await ferry.frames(1, 2, 50, 60), 50);

    assert.equal((await ferry.metric('ferry_port_rx_packets_total', { port: P0 })) - rx0, 50);
    assert.equal((await ferry.metric('ferry_port_rx_bytes_total', { port: P0 })) - rxb0, 50 * 60);
    assert.equal((await ferry.metric('ferry_port_tx_packets_total', { port: P1 })) - tx1, 50);
    assert.equal((await ferry.metric('ferry_port_tx_bytes_total', { port: P1 })) - txb1, 50 * 60);

    // and the other way
    assert.equal(await ferry.frames(2, 1, 7, 100), 7);

    const flows = await ferry.json('GET', '/v1/flows');
    const f0 = flows.body.items.find((f: any) => f.match.in_port === 0 || f.match.in_port === P0);
    assert.ok(f0, JSON.stringify(flows.body));
    assert.equal(f0.n_packets, '50');
    assert.equal(f0.n_bytes, String(50 * 60));
  });

  test('the same (table, priority, match) replaces the flow: now it drops', async () => {
    const r = await ferry.json('POST', '/v1/flows', {
      priority: 100, match: { in_port: 0 }, actions: [{ type: 'drop' }],
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const dropped = await ferry.metric('ferry_port_rx_dropped_total', { port: P0 });
    assert.equal(await ferry.frames(1, 2, 20), 0);
    assert.equal((await ferry.metric('ferry_port_rx_dropped_total', { port: P0 })) - dropped, 20);
    assert.equal((await ferry.json('GET', '/v1/flows')).body.items.length, 2);
  });

  test('kernel traffic crosses: ping between the namespaces', async () => {
    await ferry.json('POST', '/v1/flows', { priority: 100, match: { in_port: 0 }, actions: [{ type: 'output', port: 1 }] });
    sh(path.join(root, 'scripts/topology.sh'), ['addr', ferry.opts.prefix, '2']);
    const out = sh('ip', ['netns', 'exec', ferry.ns(1), 'ping', '-c', '3', '-i', '0.2', '-W', '2', '10.250.0.2']);
    assert.match(out, /3 received/);
  });

  test('a bad request gets 400 problem+json naming the field, and installs nothing', async () => {
    const before = (await ferry.json('GET', '/v1/flows')).body.items.length;
    const r = await fetch(`${ferry.api}/v1/flows`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ priority: 5, match: { in_port: 9 }, actions: [{ type: 'output', port: 1 }] }),
    });
    assert.equal(r.status, 400);
    assert.match(r.headers.get('content-type') ?? '', /application\/problem\+json/);
    const p = await r.json() as any;
    assert.equal(p.status, 400);
    assert.match(JSON.stringify(p), /in_port/);
    const r2 = await ferry.json('POST', '/v1/flows', { priority: 'high', match: {}, actions: [] });
    assert.equal(r2.status, 400);
    assert.match(JSON.stringify(r2.body), /priority/);
    assert.equal((await ferry.json('GET', '/v1/flows')).body.items.length, before);
  });

  test('DELETE /v1/flows/:id removes a flow and traffic stops', async () => {
    const list = (await ferry.json('GET', '/v1/flows')).body.items;
    const f = list.find((x: any) => x.match.in_port === 0 || x.match.in_port === P0);
    const r = await ferry.json('DELETE', `/v1/flows/${f.id}`);
    assert.equal(r.status, 204);
    assert.equal(await ferry.frames(1, 2, 5), 0);
    assert.equal((await ferry.json('DELETE', `/v1/flows/${f.id}`)).status, 404);
  });

  test('ferryd killed under the service: /health reports it within a second', async () => {
    assert.equal((await fetch(`${ferry.api}/health`)).status, 200);
    const t0 = Date.now();
    ferry.killFerryd('SIGKILL');
    await waitFor('unhealthy', async () => ((await fetch(`${ferry.api}/health`)).status === 503 ? true : undefined), 3000);
    const took = Date.now() - t0;
    assert.ok(took < 1500, `health turned after ${took} ms`);
    const body = await (await fetch(`${ferry.api}/health`)).json() as any;
    assert.equal(body.status, 'unhealthy');
    assert.ok(body.reason, JSON.stringify(body));
  });
});
