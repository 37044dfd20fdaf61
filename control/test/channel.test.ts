import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeFerryd, uniqueName } from './fake-ferryd';
import { attachSegment } from '../src/shm/segment';
import { ControlChannel } from '../src/channel';
import { RingFullError, TimeoutError, FerrydDownError } from '../src/errors';
import { MsgType, MsgFlag, REQ_RING_SLOTS, Status, FLOW_ADD, FLOW_KEY, readFlowAdd } from '../src/gen/proto';
import { flowAddBody, writeFlowAdd } from '../src/messages';
import { PackedFlow, pack } from '../src/flows/ofctl';
import { FlowRows } from '../src/flows/rows';

/** One flow as rows: key/mask given whole (key at 0, mask at FLOW_KEY.size), or packed runs as they are. */
function oneFlow(id: bigint, km: Uint8Array | { buf: Buffer; off: number; len: number }, tlv: Uint8Array,
  more: { cookie?: bigint; priority?: number; table?: number; flagBits?: number; idle?: number; hard?: number } = {}): FlowRows {
  const at = km instanceof Uint8Array ? pack(km) : km;
  return FlowRows.of([new PackedFlow(id, 0, more.table ?? 0, more.priority ?? 1, more.cookie ?? 0n, more.idle ?? 0, more.hard ?? 0,
    more.flagBits ? ['send_flow_rem'] : [], more.flagBits ?? 0, [], tlv, at)]);
}
import { until } from './helpers';

async function setup(tag: string, respond: 'auto' | 'manual' | 'paused') {
  const fake = new FakeFerryd({ name: uniqueName(tag), respond }).start();
  const chan = new ControlChannel(attachSegment(fake.name), { timeoutMs: 300 });
  return { fake, chan };
}

test('responses are matched to requests by req_id, in any order', async () => {
  const { fake, chan } = await setup('ooo', 'manual');
  try {
    const ps = [chan.request(MsgType.PING), chan.request(MsgType.PING), chan.request(MsgType.PING)];
    await until(() => (fake.serve(), fake.received.length === 3));
    const ids = fake.received.map((r) => r.reqId);
    assert.equal(new Set(ids).size, 3, 'ids are unique');
    // answer in reverse order, with aux telling which request each answer was for
    for (let i = 2; i >= 0; i--) fake.respond(ids[i]!, Status.OK, 100 + i, `answer ${i}`);
    const rs = await Promise.all(ps);
    rs.forEach((r, i) => {
      assert.equal(r.reqId, Number(ids[i]));
      assert.equal(r.aux, 100 + i);
      assert.equal(r.message, `answer ${i}`);
      assert.equal(r.statusName, 'OK');
    });
    assert.equal(chan.pendingCount, 0);
  } finally {
    await fake.stop();
  }
});

test('the request record carries type, len and the body', async () => {
  const { fake, chan } = await setup('body', 'auto');
  try {
    const km = new Uint8Array(2 * FLOW_KEY.size); // key, then mask
    km[FLOW_KEY.fields.nw_proto.offset] = 6;
    km[FLOW_KEY.size + FLOW_KEY.fields.nw_proto.offset] = 0xff;
    const tlv = Uint8Array.of(10, 0, 8, 0, 0, 0, 0, 0); // NORMAL
    const one = oneFlow(0xfeedfacecafebeefn, km, tlv, { cookie: 0x1234n, priority: 7, table: 3, flagBits: 1, idle: 10, hard: 20 });
    const r = await chan.request(MsgType.FLOW_ADD, flowAddBody(one, 0), { flags: MsgFlag.IN_BUNDLE });
    assert.equal(r.status, Status.OK);
    const got = fake.received[0]!;
    assert.equal(got.type, MsgType.FLOW_ADD);
    assert.equal(got.flags, MsgFlag.IN_BUNDLE);
    assert.equal(got.len, FLOW_ADD.size);
    const body = got.body!;
    const f = readFlowAdd(new DataView(body.buffer, body.byteOffset, body.byteLength), 0);
    assert.equal(f.id, 0xfeedfacecafebeefn);
    assert.equal(f.cookie, 0x1234n);
    assert.equal(f.priority, 7);
    assert.equal(f.table_id, 3);
    assert.equal(f.flags, 1);
    assert.equal(f.idle_timeout, 10);
    assert.equal(f.hard_timeout, 20);
    assert.equal(f.actions_len, 8);
    assert.equal(f.key.nw_proto, 6);
    assert.equal(f.mask.nw_proto, 0xff);
    assert.deepEqual(f.actions.slice(0, 10), [10, 0, 8, 0, 0, 0, 0, 0, 0, 0]);
  } finally {
    await fake.stop();
  }
});

test('an unanswered request rejects with TimeoutError; a late answer is ignored', async () => {
  const { fake, chan } = await setup('timeout', 'manual');
  try {
    const t0 = Date.now();
    await assert.rejects(chan.request(MsgType.PING, undefined, { timeoutMs: 100 }), TimeoutError);
    assert.ok(Date.now() - t0 >= 95, 'not before the deadline');
    fake.serve();
    fake.respond(fake.received[0]!.reqId, Status.OK);
    const p = chan.request(MsgType.PING);
    fake.serve();
    fake.respond(fake.received[1]!.reqId, Status.OK, 42);
    assert.equal((await p).aux, 42);
    assert.equal(chan.stats.orphanResponses, 1);
    assert.equal(chan.stats.timeouts, 1);
  } finally {
    await fake.stop();
  }
});

test('a full request ring rejects at once with RingFullError', async () => {
  const { fake, chan } = await setup('full', 'paused');
  try {
    const { submitted, responses } = chan.requestMany(Array.from({ length: REQ_RING_SLOTS + 5 }, () => ({ type: MsgType.PING })));
    assert.equal(submitted, REQ_RING_SLOTS);
    assert.equal(responses.length, REQ_RING_SLOTS);
    await assert.rejects(chan.request(MsgType.PING), RingFullError);
    // ferryd catches up: everything submitted is answered
    fake.respondMode = 'auto';
    fake.serve();
    const rs = await Promise.all(responses);
    assert.equal(rs.length, REQ_RING_SLOTS);
    assert.ok(rs.every((r) => r.status === Status.OK));
    assert.equal((await chan.request(MsgType.PING)).status, Status.OK);
  } finally {
    await fake.stop();
  }
});

test('close() fails pending and later requests', async () => {
  const { fake, chan } = await setup('close', 'manual');
  try {
    const p = chan.request(MsgType.PING);
    chan.close(new FerrydDownError('ferryd is not running: test'));
    await assert.rejects(p, /ferryd is not running: test/);
    await assert.rejects(chan.request(MsgType.PING), FerrydDownError);
  } finally {
    await fake.stop();
  }
});

test('a batch larger than the ring goes out as ferryd makes room; answers land by index, refusals kept whole', async () => {
  const { fake, chan } = await setup('batch', 'manual');
  try {
    const n = REQ_RING_SLOTS * 2 + 7;
    const p = chan.requestBatch(n, {
      type: (i) => (i % 2 ? MsgType.PING : MsgType.FLOW_DEL),
      flags: (i) => (i % 3 ? MsgFlag.IN_BUNDLE : 0),
      write: (i, dv, off) => {
        if (i % 2) return 0;
        dv.setBigUint64(off, BigInt(i), true);
        return 8;
      },
    }, { timeoutMs: 20_000 }); // the answers come from this test, however slow the machine
    // ferryd takes what the ring holds; nothing more is sent until answers come back
    await until(() => (fake.serve(), fake.received.length === REQ_RING_SLOTS));
    await new Promise((r) => setTimeout(r, 20));
    fake.serve();
    assert.equal(fake.received.length, REQ_RING_SLOTS, 'the batch waits for room');
    let answered = 0;
    const answerAll = (): void => {
      for (; answered < fake.received.length; answered++) {
        const r = fake.received[answered]!;
        // request 5 is refused: its index comes from the order the requests were sent in
        if (answered === 5) fake.respond(r.reqId, Status.EEXIST, 0, 'flow 5 refused');
        else fake.respond(r.reqId, Status.OK, 1000 + answered);
      }
    };
    await until(() => (fake.serve(), answerAll(), fake.received.length === n));
    const a = await p;
    assert.equal(a.status.length, n);
    for (let i = 0; i < n; i++) {
      const r = fake.received[i]!;
      assert.equal(r.type, i % 2 ? MsgType.PING : MsgType.FLOW_DEL, `type of ${i}`);
      assert.equal(r.flags, i % 3 ? MsgFlag.IN_BUNDLE : 0, `flags of ${i}`);
      if (i % 2 === 0) assert.equal(r.body!.readBigUInt64LE(0), BigInt(i), `body of ${i}`);
      if (i === 5) continue;
      assert.equal(a.status[i], Status.OK);
      assert.equal(a.aux[i], 1000 + i, `aux of ${i}`);
    }
    assert.equal(a.status[5], Status.EEXIST);
    assert.deepEqual([...a.refused.keys()], [5]);
    assert.equal(a.refused.get(5)!.message, 'flow 5 refused');
    assert.equal(chan.pendingCount, 0);
  } finally {
    await fake.stop();
  }
});

test('a batch rejects on a timeout and on a body too big for a slot, and leaves nothing pending', async () => {
  const { fake, chan } = await setup('batch-fail', 'manual');
  try {
    await assert.rejects(chan.requestBatch(3, { type: () => MsgType.PING, write: () => 0 }, { timeoutMs: 80 }), TimeoutError);
    assert.equal(chan.pendingCount, 0, 'the timed-out batch left no entries');
    await assert.rejects(chan.requestBatch(2, { type: () => MsgType.PING, write: (i) => (i === 1 ? 1 << 20 : 0) }), /does not fit/);
    assert.equal(chan.pendingCount, 0, 'nothing of the failed write was published');
    const empty = await chan.requestBatch(0, { type: () => MsgType.PING, write: () => 0 });
    assert.equal(empty.status.length, 0);
  } finally {
    await fake.stop();
  }
});

test('a FLOW_ADD body whose actions or key would not fit its record is refused before anything is written past it', () => {
  const buf = new ArrayBuffer(4 * FLOW_ADD.size);
  const dv = new DataView(buf);
  new Uint8Array(buf).fill(0xaa);
  const km = new Uint8Array(2 * FLOW_KEY.size);
  assert.throws(() => writeFlowAdd(dv, FLOW_ADD.size, oneFlow(1n, km, new Uint8Array(FLOW_ADD.fields.actions.size + 1)), 0), /do not fit/);
  // a run (as a damaged record could give) from byte 200 for 16 bytes: past flow_key's end
  const past = Buffer.alloc(2 + 2 * 16, 0xff);
  past[0] = 200;
  past[1] = 16;
  assert.throws(() => writeFlowAdd(dv, FLOW_ADD.size, oneFlow(1n, { buf: past, off: 0, len: past.length }, new Uint8Array(8)), 0), /not flow_key/);
  assert.ok(new Uint8Array(buf).every((b) => b === 0xaa), 'nothing was written');
  assert.equal(writeFlowAdd(dv, FLOW_ADD.size, oneFlow(1n, km, new Uint8Array(FLOW_ADD.fields.actions.size)), 0), FLOW_ADD.size);
  assert.ok(new Uint8Array(buf, 2 * FLOW_ADD.size).every((b) => b === 0xaa), 'the next record is untouched');
});

test('a batch that never finds room in a ring others keep full rejects with RingFullError after its timeout', async () => {
  const { fake, chan } = await setup('batch-full', 'paused');
  try {
    const { submitted, responses } = chan.requestMany(Array.from({ length: REQ_RING_SLOTS }, () => ({ type: MsgType.PING, timeoutMs: 5000 })));
    assert.equal(submitted, REQ_RING_SLOTS);
    const others = Promise.allSettled(responses);
    const t0 = Date.now();
    await assert.rejects(chan.requestBatch(3, { type: () => MsgType.PING, write: () => 0 }, { timeoutMs: 150 }), RingFullError);
    assert.ok(Date.now() - t0 >= 140, 'not before its timeout');
    chan.failAll(new FerrydDownError('test over'));
    assert.ok((await others).every((r) => r.status === 'rejected'));
  } finally {
    await fake.stop();
  }
});
