import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeFerryd, uniqueName } from './fake-ferryd';
import { attachSegment } from '../src/shm/segment';
import { MSG_HDR, MsgType, REQ_RING_SLOTS, RESP_RING_SLOTS, RING_CTL } from '../src/gen/proto';

function writePing(reqId: number) {
  return (dv: DataView, off: number): void => {
    dv.setUint16(off + MSG_HDR.fields.type.offset, MsgType.PING, true);
    dv.setUint32(off + MSG_HDR.fields.len.offset, 0, true);
    dv.setBigUint64(off + MSG_HDR.fields.req_id.offset, BigInt(reqId), true);
  };
}

test('request ring: fills at the real slot count, wraps around, and keeps order', async () => {
  const fake = new FakeFerryd({ name: uniqueName('ring'), respond: 'manual' }).start();
  try {
    const seg = attachSegment(fake.name);
    const ring = seg.requestRing();
    assert.equal(ring.slots, REQ_RING_SLOTS);
    let id = 0;
    for (let i = 0; i < REQ_RING_SLOTS; i++) assert.ok(ring.tryWrite(writePing(++id)), `write ${i}`);
    assert.equal(ring.free(), 0);
    assert.equal(ring.tryWrite(writePing(999999)), false, 'a full ring refuses');
    assert.equal(ring.fullEvents(), 1);
    assert.equal(fake.serve(), REQ_RING_SLOTS);
    // three more rounds of 700: the slot index wraps twice
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 700; i++) assert.ok(ring.tryWrite(writePing(++id)));
      assert.equal(ring.depth(), 700);
      assert.equal(fake.serve(), 700);
    }
    assert.deepEqual(fake.received.map((r) => Number(r.reqId)), Array.from({ length: id }, (_, i) => i + 1));
    assert.equal(fake.reqHead(), id);
  } finally {
    await fake.stop();
  }
});

test('request ring: free-running u32 indices wrap past 2^32; writeBatch publishes what fits', async () => {
  const fake = new FakeFerryd({ name: uniqueName('ring32'), respond: 'manual' }).start();
  try {
    const start = 0xffffff00;
    const ctl = fake.layout.reqRing;
    fake.dv.setUint32(ctl + RING_CTL.fields.head.offset, start, true);
    fake.dv.setUint32(ctl + RING_CTL.fields.tail.offset, start, true);
    const seg = attachSegment(fake.name);
    const ring = seg.requestRing();
    const n = ring.writeBatch(REQ_RING_SLOTS + 10, (i, dv, off) => writePing(i + 1)(dv, off));
    assert.equal(n, REQ_RING_SLOTS, 'only what fits is written');
    assert.equal(ring.fullEvents(), 1, 'a short batch counts as a full event');
    assert.equal(fake.reqHead(), (start + REQ_RING_SLOTS) >>> 0, 'head wrapped past 2^32');
    assert.equal(fake.serve(), REQ_RING_SLOTS);
    assert.equal(fake.received.length, REQ_RING_SLOTS);
    assert.deepEqual(fake.received.slice(0, 3).map((r) => Number(r.reqId)), [1, 2, 3]);
    assert.equal(Number(fake.received.at(-1)!.reqId), REQ_RING_SLOTS);
    assert.equal(ring.depth(), 0);
  } finally {
    await fake.stop();
  }
});

test('response ring: consumer drains in batches across the wrap and stores tail once per batch', async () => {
  const fake = new FakeFerryd({ name: uniqueName('resp'), respond: 'manual' }).start();
  try {
    const seg = attachSegment(fake.name);
    const ring = seg.responseRing();
    assert.equal(ring.slots, RESP_RING_SLOTS);
    const seen: number[] = [];
    let next = 0;
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 600; i++) assert.ok(fake.respond(BigInt(++next), 0));
      const got = ring.drain((dv, off) => seen.push(Number(dv.getBigUint64(off + MSG_HDR.fields.req_id.offset, true))));
      assert.equal(got, 600);
    }
    assert.deepEqual(seen, Array.from({ length: next }, (_, i) => i + 1));
    // the producer side sees the ring full when nobody consumes
    for (let i = 0; i < RESP_RING_SLOTS; i++) assert.ok(fake.respond(1n, 0));
    assert.equal(fake.respond(1n, 0), false);
    assert.equal(ring.fullEvents(), 1);
    assert.equal(ring.depth(), RESP_RING_SLOTS);
    assert.equal(ring.drain(() => undefined, 10), 10, 'max bounds a drain');
  } finally {
    await fake.stop();
  }
});
