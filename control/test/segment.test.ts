import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { FakeFerryd, uniqueName } from './fake-ferryd';
import { attachSegment, refStructs } from '../src/shm/segment';
import { AttachError } from '../src/errors';
import { ABI_VERSION, LAYOUT_HASH, SHM_HEADER } from '../src/gen/proto';

async function withFake(opts: ConstructorParameters<typeof FakeFerryd>[0], fn: (f: FakeFerryd) => void | Promise<void>): Promise<void> {
  const fake = new FakeFerryd(opts).start();
  try {
    await fn(fake);
  } finally {
    await fake.stop();
  }
}

function refused(name: string, code: string, re: RegExp): void {
  assert.throws(() => attachSegment(name), (e: unknown) => {
    assert.ok(e instanceof AttachError, String(e));
    assert.equal(e.code, code);
    assert.match(e.message, re);
    return true;
  });
}

test('attach decodes the header (ref-struct-di) and maps the whole segment', async () => {
  await withFake({ name: uniqueName('seg'), ports: ['a', 'b', 'c'], nWorkers: 3, maxFlows: 64 }, (fake) => {
    const seg = attachSegment('/' + fake.name);
    assert.equal(seg.info.abiVersion, ABI_VERSION);
    assert.equal(seg.info.layoutHash, LAYOUT_HASH);
    assert.equal(seg.info.nPorts, 3);
    assert.equal(seg.info.nWorkers, 3);
    assert.equal(seg.info.maxFlows, 64);
    assert.equal(seg.info.pid, fake.pid);
    assert.equal(seg.info.flowStatsOff, fake.layout.flowStats);
    assert.equal(seg.size, fake.layout.size);
    assert.equal(seg.identity.ino, fs.statSync(fake.path).ino);
    assert.equal(refStructs['shm_header'].size, SHM_HEADER.size, 'ref-struct-di agrees with the generated table');
    const h = seg.header();
    assert.equal(h.stateName, 'RUNNING');
    assert.ok(h.heartbeat >= 1n);
  });
});

test('ABI mismatch is refused with both versions named', async () => {
  await withFake({ name: uniqueName('abi'), abiVersion: ABI_VERSION + 1 }, (fake) => {
    refused(fake.name, 'ABI', new RegExp(`ferryd speaks ABI ${ABI_VERSION + 1}, this ferry-control speaks ${ABI_VERSION}`));
  });
});

test('layout hash mismatch is refused', async () => {
  await withFake({ name: uniqueName('hash'), layoutHash: LAYOUT_HASH ^ 1n }, (fake) => {
    refused(fake.name, 'LAYOUT', /layout mismatch.*layout hash/);
  });
});

test('bad magic is refused', async () => {
  await withFake({ name: uniqueName('magic'), magic: 0x1234n }, (fake) => refused(fake.name, 'MAGIC', /magic 0x0000000000001234/));
});

test('world-writable and group-writable segments are refused, naming the owner', async () => {
  await withFake({ name: uniqueName('ww'), mode: 0o666 }, (fake) => refused(fake.name, 'EPERM', new RegExp(`world-writable \\(mode 0666, owner uid ${process.getuid!()}\\)`)));
  await withFake({ name: uniqueName('gw'), mode: 0o620 }, (fake) => refused(fake.name, 'EPERM', /group-writable/));
});

test('segment_size larger than the file is refused', async () => {
  await withFake({ name: uniqueName('size') }, (fake) => {
    fake.dv.setBigUint64(SHM_HEADER.fields.segment_size.offset, BigInt(fake.layout.size + 4096), true);
    refused(fake.name, 'SIZE', /says it is \d+ bytes but the file has/);
  });
});

test('a missing segment is reported as such', () => {
  refused(uniqueName('missing'), 'ENOENT', /^no segment \/ferry-test-missing-/);
});

test('snapshot: port info, hw stats under the seqlock, counters summed over workers', async () => {
  await withFake({ name: uniqueName('snap'), ports: ['p0', 'p1'], nWorkers: 3 }, (fake) => {
    fake.setWorkerPort(0, 1, { rx_packets: 10n, rx_bytes: 1000n, tx_dropped: 1n });
    fake.setWorkerPort(2, 1, { rx_packets: 5n, rx_bytes: 2n ** 60n });
    fake.setHwStats(1, { ipackets: 16n, imissed: 3n, ierrors: 2n });
    fake.setWorker(1, { drops: [7n, 8n] });
    const seg = attachSegment(fake.name);
    const s = seg.snapshot();
    assert.equal(s.ports.length, 2);
    const p1 = s.ports[1]!;
    assert.equal(p1.name, 'p1');
    assert.equal(p1.driver, 'net_fake');
    assert.equal(p1.mac, '02:00:00:00:00:01');
    assert.deepEqual(p1.link, { up: true, speed_mbps: 10000, full_duplex: true });
    assert.equal(p1.sw.rx_packets, 15n);
    assert.equal(p1.sw.rx_bytes, 1000n + 2n ** 60n);
    assert.equal(p1.sw.tx_dropped, 1n);
    assert.equal(p1.hw.ipackets, 16n);
    assert.equal(p1.hw.imissed, 3n);
    assert.ok(p1.consistent);
    assert.equal(s.ports[0]!.sw.rx_packets, 0n);
    assert.deepEqual(s.workers[1]!.drops.slice(0, 3), [7n, 8n, 0n]);
    // a writer stuck mid-update: the reader gives up after bounded retries and says so
    const release = fake.holdHwSeqlock(0);
    assert.equal(seg.snapshot().ports[0]!.consistent, false);
    release();
    assert.equal(seg.snapshot().ports[0]!.consistent, true);
  });
});

test('flow counters are summed over workers per slot', async () => {
  await withFake({ name: uniqueName('fc'), nWorkers: 2, maxFlows: 16 }, (fake) => {
    fake.setFlowStats(0, 5, 3n, 300n, 100n);
    fake.setFlowStats(1, 5, 4n, 400n, 250n);
    fake.setFlowStats(1, 6, 99n, 99n, 999n);
    const c = attachSegment(fake.name).flowCounters(5);
    assert.deepEqual(c, { packets: 7n, bytes: 700n, lastHitNs: 250n });
  });
});
