// Bulk loading end to end over real HTTP: 100,000 ovs-ofctl lines -> one bundle -> ferryd. Prints the rate.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { harness } from './helpers';
import { MsgType } from '../src/gen/proto';

const N = 100_000;

test(`bulk add of ${N} flows as one bundle (rate printed, not asserted)`, async () => {
  const h = await harness('bulk', { ports: ['eth0', 'eth1'], maxFlows: 131072 });
  h.fake.recordBodies = false;
  try {
    await h.app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = h.app.server.address() as AddressInfo;
    const lines: string[] = [];
    for (let i = 0; i < N; i++) {
      lines.push(`table=${i % 4},priority=${100 + (i % 7)},tcp,nw_src=10.${(i >>> 16) & 255}.${(i >>> 8) & 255}.${i & 255},tp_dst=${1 + (i % 60000)} actions=output:${i & 1}`);
    }
    const body = lines.join('\n') + '\n';
    const commitsBefore = h.fake.received.filter((r) => r.type === MsgType.BUNDLE_COMMIT).length;
    const t0 = process.hrtime.bigint();
    const res = await fetch(`http://127.0.0.1:${port}/v1/flows`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body });
    const out = await res.json() as { added: number; replaced: number };
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    assert.equal(res.status, 200, JSON.stringify(out));
    assert.deepEqual(out, { added: N, replaced: 0 });
    assert.equal(h.fake.flows.size, N, 'ferryd holds all of them');
    assert.equal(h.fake.received.filter((r) => r.type === MsgType.BUNDLE_COMMIT).length - commitsBefore, 1, 'one commit');
    const rate = Math.round(N / secs);
    process.stdout.write(`# bulk: ${N} flows in ${secs.toFixed(3)} s = ${rate} flows/s (HTTP text -> parse -> encode -> ring -> fake ferryd -> commit)\n`);
    const page = await (await fetch(`http://127.0.0.1:${port}/v1/flows?limit=3&table=3`)).json() as { items: unknown[]; next_cursor: string };
    assert.equal(page.items.length, 3);
    assert.ok(page.next_cursor);
  } finally {
    await h.close();
  }
});
