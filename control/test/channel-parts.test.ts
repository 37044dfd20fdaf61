// The channel's multi-part answers (CT_DUMP): parts with MORE are handed over in order until the
// one without; other requests interleave; late or unwanted parts never disturb anyone else.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeFerryd, uniqueName } from './fake-ferryd';
import { attachSegment } from '../src/shm/segment';
import { ControlChannel, ChannelPart } from '../src/channel';
import { TimeoutError } from '../src/errors';
import { MsgFlag, MsgType, RESPONSE, Status } from '../src/gen/proto';
import { until } from './helpers';

async function setup(tag: string) {
  const fake = new FakeFerryd({ name: uniqueName(tag), respond: 'manual' }).start();
  const chan = new ControlChannel(attachSegment(fake.name), { timeoutMs: 300 });
  return { fake, chan };
}

/** A part whose payload is 8 bytes: the u32 n and a u32 marker. */
function part(fake: FakeFerryd, reqId: bigint, n: number, more: boolean, status: number = Status.OK): void {
  assert.ok(fake.respondPart(reqId, {
    status, flags: more ? MsgFlag.MORE : 0, value: BigInt(n), payloadLen: 8,
    payload: (dv, off) => { dv.setUint32(off, n, true); dv.setUint32(off + 4, 0xfeed, true); },
  }));
}

const served = async (fake: FakeFerryd, n: number): Promise<void> => until(() => (fake.serve(), fake.received.length >= n), 2000, `${n} requests`);

test('parts arrive in order with their payload; the last one (no MORE) settles the request', async () => {
  const { fake, chan } = await setup('parts');
  try {
    const seen: { index: number; more: boolean; n: number; marker: number; len: number }[] = [];
    const p = chan.requestParts(MsgType.CT_DUMP, undefined, (x: ChannelPart) => {
      seen.push({ index: x.index, more: x.more, n: x.dv.getUint32(x.payloadOff, true), marker: x.dv.getUint32(x.payloadOff + 4, true), len: x.payloadLen });
    });
    await served(fake, 1);
    const id = fake.received[0]!.reqId;
    for (let i = 0; i < 4; i++) part(fake, id, i, true);
    part(fake, id, 4, false);
    const r = await p;
    assert.equal(r.parts, 5);
    assert.equal(r.last.value, 4n);
    assert.equal(r.last.status, Status.OK);
    assert.deepEqual(seen.map((s) => [s.index, s.more, s.n, s.marker, s.len]),
      [[0, true, 0, 0xfeed, 8], [1, true, 1, 0xfeed, 8], [2, true, 2, 0xfeed, 8], [3, true, 3, 0xfeed, 8], [4, false, 4, 0xfeed, 8]]);
    assert.equal(chan.pendingCount, 0);
    assert.equal(chan.stats.parts, 5);

    // requestCollect copies each payload out of the ring
    const c = chan.requestCollect(MsgType.CT_STATS);
    await served(fake, 2);
    part(fake, fake.received[1]!.reqId, 7, true);
    part(fake, fake.received[1]!.reqId, 8, false);
    const got = await c;
    assert.deepEqual(got.payloads.map((b) => b.readUInt32LE(0)), [7, 8]);
    assert.equal(got.payloads[0]!.length, 8);
  } finally {
    await fake.stop();
  }
});

test('a plain request answered between two parts of a dump settles on its own', async () => {
  const { fake, chan } = await setup('interleave');
  try {
    const parts: number[] = [];
    const dump = chan.requestParts(MsgType.CT_DUMP, undefined, (x) => { parts.push(x.dv.getUint32(x.payloadOff, true)); });
    const ping = chan.request(MsgType.PING);
    await served(fake, 2);
    const [d, pg] = [fake.received[0]!.reqId, fake.received[1]!.reqId];
    part(fake, d, 1, true);
    fake.respond(pg, Status.OK, 77);
    part(fake, d, 2, true);
    const pingR = await ping;
    assert.equal(pingR.aux, 77, 'the ping is answered while the dump goes on');
    assert.equal(chan.pendingCount, 1, 'the dump still waits');
    part(fake, d, 3, false);
    assert.equal((await dump).parts, 3);
    assert.deepEqual(parts, [1, 2, 3]);
    assert.equal(chan.stats.orphanResponses, 0);
  } finally {
    await fake.stop();
  }
});

test('each part restarts the deadline; parts after a timeout are orphans and break nothing', async () => {
  const { fake, chan } = await setup('late');
  try {
    // a slow but steady answer outlives the timeout
    const slow = chan.requestParts(MsgType.CT_DUMP, undefined, () => undefined, { timeoutMs: 150 });
    await served(fake, 1);
    const id = fake.received[0]!.reqId;
    for (let i = 0; i < 4; i++) {
      part(fake, id, i, true);
      await new Promise((r) => setTimeout(r, 80));
    }
    part(fake, id, 4, false);
    assert.equal((await slow).parts, 5, '5 parts over ~320 ms with a 150 ms timeout');

    // a stalled one times out; its late parts are dropped, and the next request is fine
    const stalled = chan.requestParts(MsgType.CT_DUMP, undefined, () => undefined, { timeoutMs: 100 });
    await served(fake, 2);
    const sid = fake.received[1]!.reqId;
    part(fake, sid, 0, true);
    await assert.rejects(stalled, TimeoutError);
    part(fake, sid, 1, true);
    part(fake, sid, 2, false);
    const ping = chan.request(MsgType.PING);
    await served(fake, 3);
    fake.respond(fake.received[2]!.reqId, Status.OK, 5);
    assert.equal((await ping).aux, 5);
    assert.equal(chan.stats.orphanResponses, 2, 'the two late parts');
    assert.equal(chan.stats.timeouts, 1);
  } finally {
    await fake.stop();
  }
});

test('a part handler that throws fails its request only; the rest of its parts are dropped', async () => {
  const { fake, chan } = await setup('throw');
  try {
    const bad = chan.requestParts(MsgType.CT_DUMP, undefined, (x) => {
      if (x.index === 1) throw new Error('cannot decode part 1');
    });
    const good = chan.requestParts(MsgType.CT_DUMP, undefined, () => undefined);
    await served(fake, 2);
    const [b, g] = [fake.received[0]!.reqId, fake.received[1]!.reqId];
    part(fake, b, 0, true);
    part(fake, g, 0, true);
    part(fake, b, 1, true);
    part(fake, b, 2, false);
    part(fake, g, 1, false);
    await assert.rejects(bad, /cannot decode part 1/);
    assert.equal((await good).parts, 2);
    assert.equal(chan.stats.orphanResponses, 1);
    assert.equal(chan.pendingCount, 0);
  } finally {
    await fake.stop();
  }
});

test('a refusal comes as a single part without payload; a stray MORE on a plain request settles it once', async () => {
  const { fake, chan } = await setup('refused');
  try {
    const parts: ChannelPart[] = [];
    const p = chan.requestParts(MsgType.CT_DUMP, undefined, (x) => { parts.push({ ...x }); });
    const plain = chan.request(MsgType.PING);
    await served(fake, 2);
    fake.respond(fake.received[0]!.reqId, Status.EINVAL, 0, 'bad filter');
    fake.respondPart(fake.received[1]!.reqId, { status: Status.OK, flags: MsgFlag.MORE });
    fake.respondPart(fake.received[1]!.reqId, { status: Status.OK });
    const r = await p;
    assert.equal(r.last.status, Status.EINVAL);
    assert.equal(r.last.message, 'bad filter');
    assert.equal(parts.length, 1);
    assert.equal(parts[0]!.payloadLen, 0, `a bare response (len ${RESPONSE.size}) has no payload`);
    assert.equal((await plain).status, Status.OK);
    await until(() => (chan.poll(), chan.stats.orphanResponses === 1), 1000, 'the stray part counted as an orphan');
  } finally {
    await fake.stop();
  }
});
