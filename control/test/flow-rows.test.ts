// Flows as rows (flows/rows.ts), the flow table on them (flows/store.ts), and the journal records
// written from rows as bytes: each checked against the object form it replaces.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FLOW_ADD, FLOW_KEY, readFlowAdd, readFlowKey, writeFlowAdd as writeFlowAddGenerated } from '../src/gen/proto';
import { CompiledFlow, PackedFlow, pack } from '../src/flows/ofctl';
import { flowIdPartsPacked, formatFlowId, join64, split64 } from '../src/flows/flow-id';
import { flowRecordText, flowRowText, writeFlowRowRecord } from '../src/flows/persist';
import { FlowRows, IdIndex, hex64 } from '../src/flows/rows';
import { FlowStore } from '../src/flows/store';
import { writeFlowAdd } from '../src/messages';
import { FileStateStore, StateChangeRun, isChangeRun } from '../src/state/store';
import { CORPUS, compile, flowRecord, randomKeyMask, randomSource } from './corpus';

const rnd = randomSource(7);
const rnd32 = (): number => ((rnd(65536) << 16) | rnd(65536)) >>> 0;
const K = FLOW_KEY.size;

/** A flow of a random match (a few runs anywhere), cookie, timeouts and flags, with the actions of a corpus flow. */
function randomFlow(): CompiledFlow {
  const at = pack(randomKeyMask(rnd));
  const table = rnd(255), priority = rnd(65536);
  const [id, idHi] = flowIdPartsPacked(table, priority, at, K);
  const like = compile(CORPUS[rnd(CORPUS.length)]!);
  const cookie = rnd(3) === 0 ? 0n : rnd(2) ? BigInt(rnd32()) : join64(rnd32(), rnd32());
  const flagBits = rnd(4);
  const flags = [...(flagBits & 1 ? ['send_flow_rem'] : []), ...(flagBits & 2 ? ['reset_counts'] : [])];
  return new PackedFlow(id, idHi, table, priority, cookie, rnd(65536), rnd(65536), flags, flagBits, like.actions, like.tlv, at);
}

/** Pairs of flows one field apart (table, priority, timeouts, flags, in turn): what a record's head
 * is shared by, a bulk load's consecutive flows mostly agreeing on all of them but the one. */
function oneFieldApart(): CompiledFlow[] {
  const out: CompiledFlow[] = [];
  for (let n = 0; n < 50; n++) {
    const f = randomFlow();
    const like = (o: Partial<CompiledFlow>): CompiledFlow => {
      const g = { ...f, ...o };
      [g.id, g.idHi] = flowIdPartsPacked(g.table, g.priority, f.at, K);
      return new PackedFlow(g.id, g.idHi, g.table, g.priority, g.cookie, g.idleTimeout, g.hardTimeout, g.flags, g.flagBits, g.actions, g.tlv, f.at);
    };
    const flip = f.flagBits ^ 1;
    out.push(f, like({ table: (f.table + 1) % 255 }), f, like({ priority: (f.priority + 1) % 65536 }), f,
      like({ idleTimeout: (f.idleTimeout + 1) % 65536 }), f, like({ hardTimeout: (f.hardTimeout + 1) % 65536 }), f,
      like({ flagBits: flip, flags: [...(flip & 1 ? ['send_flow_rem'] : []), ...(flip & 2 ? ['reset_counts'] : [])] }), f);
  }
  return out;
}

const flows = (): CompiledFlow[] => [...CORPUS.map(compile), ...Array.from({ length: 3000 }, randomFlow)];

test('a row gives back the flow pushed into it, and the same FLOW_ADD bytes, id and key text', () => {
  const all = flows();
  const rows = new FlowRows(1); // grown on the way
  for (const f of all) rows.push(f);
  assert.equal(rows.n, all.length);
  const ring = new DataView(new ArrayBuffer(2 * FLOW_ADD.size + 8));
  const bytes = new Uint8Array(ring.buffer);
  all.forEach((f, i) => {
    const back = rows.flow(i);
    assert.equal(back.id, f.id);
    assert.equal(back.idHi, f.idHi, 'the listing order key');
    assert.equal(back.cookie, f.cookie);
    for (const k of ['table', 'priority', 'idleTimeout', 'hardTimeout', 'flagBits'] as const) assert.equal(back[k], f[k], k);
    assert.deepEqual(back.flags, f.flags);
    assert.deepEqual(back.key, f.key);
    assert.deepEqual(back.mask, f.mask);
    assert.equal(back.actions, f.actions);
    assert.equal(back.slot, null, 'not installed');
    assert.equal(rows.idHex(i), formatFlowId(f.id));
    // the row's FLOW_ADD, written over garbage, reads back (generated reader) as the flow; its key and
    // mask are the flow's bytes, padding included; and for a compiled flow (which sets no padding)
    // it is byte for byte what the generated writer makes of the flow over zeros
    const kv = (b: Uint8Array) => readFlowKey(new DataView(b.buffer, b.byteOffset, b.byteLength), 0);
    const want = {
      id: f.id, cookie: f.cookie, priority: f.priority, table_id: f.table, flags: f.flagBits, idle_timeout: f.idleTimeout,
      hard_timeout: f.hardTimeout, actions_len: f.tlv.length, pad0: 0, pad1: 0, key: kv(f.key), mask: kv(f.mask),
      actions: Array.from({ length: FLOW_ADD.fields.actions.size }, (_, j) => f.tlv[j] ?? 0),
    };
    bytes.fill(0x5a);
    assert.equal(writeFlowAdd(ring, 8, rows, i), FLOW_ADD.size);
    const ours = bytes.slice(8, 8 + FLOW_ADD.size);
    assert.deepEqual(readFlowAdd(new DataView(ours.buffer), 0), want, `FLOW_ADD of flow ${i}`);
    assert.deepEqual(ours.subarray(FLOW_ADD.fields.key.offset, FLOW_ADD.fields.key.offset + K), f.key);
    assert.deepEqual(ours.subarray(FLOW_ADD.fields.mask.offset, FLOW_ADD.fields.mask.offset + K), f.mask);
    if (i < CORPUS.length) {
      bytes.fill(0);
      writeFlowAddGenerated(ring, 8, want);
      assert.deepEqual(ours, bytes.slice(8, 8 + FLOW_ADD.size), `FLOW_ADD of ${CORPUS[i]}`);
    }
  });
  const halves = new Uint32Array(2);
  for (const v of [0n, 1n, 0xffffffffn, 0x100000000n, 0xffffffffffffffffn, 0x0123456789abcdefn]) {
    split64(v, halves);
    assert.equal(join64(halves[0]!, halves[1]!), v);
    assert.equal(hex64(halves[0]!, halves[1]!), formatFlowId(v));
  }
});

test('a copy of rows leaves out the rows skipped and says where each row came from', () => {
  const all = flows().slice(0, 300);
  const rows = FlowRows.of(all);
  const skip = new Set([0, 7, 8, 299]);
  const from: number[] = [];
  const copy = rows.copy(skip, from);
  const kept = all.map((_, i) => i).filter((i) => !skip.has(i));
  assert.deepEqual(from, kept);
  assert.equal(copy.n, kept.length);
  kept.forEach((i, j) => assert.equal(copy.idHex(j), rows.idHex(i)));
  assert.deepEqual(rows.copy().flow(299).key, all[299]!.key, 'a whole copy keeps every row');
});

test('a row\'s journal record, as text and written as bytes, is the flow\'s; it is not written where it does not fit', () => {
  const rows = new FlowRows();
  const all = [...flows(), ...oneFieldApart()];
  for (const f of all) rows.push(f);
  const buf = new Uint8Array(64 * 1024);
  all.forEach((f, i) => {
    const text = JSON.stringify(flowRecord(f));
    assert.equal(flowRowText(rows, i), text, `text of flow ${i}`);
    assert.equal(flowRecordText(f), text);
    buf.fill(0);
    const end = writeFlowRowRecord(rows, i, buf, 5, buf.length);
    assert.equal(Buffer.from(buf.subarray(5, end)).toString('utf8'), text, `bytes of flow ${i}`);
    assert.equal(writeFlowRowRecord(rows, i, buf, 5, 5 + Buffer.byteLength(text) - 1), -1, 'one byte short');
  });
});

test('the id index agrees with a Map through 30,000 random inserts, finds, moves and removes (ids sharing low words)', () => {
  const rows = new FlowRows();
  const index = new IdIndex(rows);
  const model = new Map<bigint, number>();
  const live: number[] = []; // rows in use are 0..live.length
  for (let op = 0; op < 30000; op++) {
    const r = rnd(10);
    if (r < 5 || rows.n === 0) {
      // a new id: its low word often repeats one already there (the probe runs collide)
      const lo = rnd(4) === 0 && rows.n ? rows.idLo[rnd(rows.n)]! : rnd32();
      const hi = rnd32();
      const id = join64(lo, hi);
      if (model.has(id)) continue;
      assert.equal(index.find(lo, hi), -1);
      const row = rows.pushId(lo, hi);
      assert.equal(index.findOrInsert(lo, hi, row), -1, 'new');
      assert.equal(index.findOrInsert(lo, hi, row + 1), row, 'there already: not recorded again');
      model.set(id, row);
      live.push(row);
    } else if (r < 8) {
      // remove one, moving the last row into its place as the store does
      const row = rnd(rows.n);
      const lo = rows.idLo[row]!, hi = rows.idHi[row]!;
      assert.equal(index.remove(lo, hi), row);
      model.delete(join64(lo, hi));
      const last = rows.n - 1;
      if (row !== last) {
        rows.copyRow(row, rows, last);
        index.move(rows.idLo[row]!, rows.idHi[row]!, row);
        model.set(join64(rows.idLo[row]!, rows.idHi[row]!), row);
      }
      rows.pop();
      assert.equal(index.remove(lo, hi), -1, 'gone');
    } else {
      const lo = rnd32(), hi = rnd32();
      assert.equal(index.find(lo, hi), model.get(join64(lo, hi)) ?? -1);
    }
    if (op % 1000 === 0) {
      assert.equal(index.size, model.size);
      for (const [id, row] of model) {
        split64(id, u32);
        assert.equal(index.find(u32[0]!, u32[1]!), row);
      }
    }
  }
  assert.equal(index.size, rows.n);
});
const u32 = new Uint32Array(2);

test('the flow table agrees with a Map through random puts, replaces and deletes; its changes replay to its records', () => {
  const store = new FlowStore();
  const model = new Map<bigint, { f: CompiledFlow; slot: number }>();
  const replayed = new Map<string, string>();
  const pool = flows().slice(0, 400);
  for (let round = 0; round < 20; round++) {
    let batch = new FlowRows();
    for (let k = 0; k < 200; k++) {
      if (k % 50 === 49) batch = new FlowRows(); // a run of changes from several op lists
      const f = pool[rnd(pool.length)]!;
      if (rnd(3) === 0) {
        assert.equal(store.delete(f.id), model.delete(f.id));
      } else {
        const i = batch.push(f);
        const slot = rnd(1000);
        assert.equal(store.putRow(batch, i, slot, 5n), !model.has(f.id));
        model.set(f.id, { f, slot });
      }
    }
    // the changes, applied in order as a journal replays them, give the table's records
    for (const c of store.takeChanges()) {
      assert.ok(isChangeRun(c));
      const run = c as StateChangeRun;
      const buf = new Uint8Array(1 << 16);
      for (let i = 0; i < run.count; i++) {
        const text = run.text(i);
        const end = run.writeRecord!(i, buf, 0, buf.length);
        assert.equal(Buffer.from(buf.subarray(0, end)).toString(), `${JSON.stringify(run.key(i))},${text ?? 'null'}`);
        if (text === null) replayed.delete(run.key(i));
        else replayed.set(run.key(i), text);
      }
    }
    assert.equal(store.size, model.size);
    for (const [id, { f, slot }] of model) {
      const got = store.get(id)!;
      assert.equal(flowRecordText(got), flowRecordText(f));
      assert.equal(got.slot, slot);
    }
    assert.deepEqual(new Map(store.records()), replayed);
    assert.deepEqual(store.all().map((f) => f.id), [...model.values()].map(({ f }) => f).sort((a, b) => a.table - b.table || b.priority - a.priority || a.idHi - b.idHi || (a.id < b.id ? -1 : 1)).map((f) => f.id));
  }
});

test('a run of flow changes is journaled as bytes (past one write buffer), not kept by the store that a service owns it in, and read back', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-rows-test-'));
  try {
    const state = await FileStateStore.open(path.join(dir, 'st'), { compactMinBytes: 2 ** 40 });
    const store = new FlowStore();
    state.own('flows', () => store.records());
    const batch = new FlowRows();
    const all = flows(); // about 1.4 MB of records: more than the store's 1 MB write buffer
    for (const f of all) store.putRow(batch, batch.push(f), 1, 1n);
    store.delete(all[0]!.id);
    // a run whose second record does not fit the buffer at all: written from its text instead
    const big: StateChangeRun = {
      ns: 'big', count: 3,
      key: (i) => `k${i}`,
      text: (i) => (i === 2 ? null : JSON.stringify({ i })),
      writeRecord: (i, buf, pos) => {
        if (i === 1) return -1;
        return pos + Buffer.from(buf.buffer, buf.byteOffset).write(`"k${i}",${i === 2 ? 'null' : JSON.stringify({ i })}`, pos);
      },
    };
    await state.commit([{ ns: 'other', key: 'k', value: { a: 1 } }, ...store.takeChanges(), big]);
    assert.equal((state as unknown as { texts: Map<string, unknown> }).texts.has('flows'), false, 'the owned namespace keeps no texts');
    await state.close();
    const line = readFileSync(path.join(dir, 'st', 'journal.ndjson'), 'utf8');
    assert.equal(line.split('\n').length, 2, 'one commit, one line');
    const back = await FileStateStore.open(path.join(dir, 'st'));
    const got = back.entries('flows');
    assert.equal(new Set(all.map((f) => f.id)).size, all.length, 'distinct flows');
    assert.equal(got.size, all.length - 1);
    for (const [k, text] of store.records()) assert.deepEqual(got.get(k), JSON.parse(text));
    assert.deepEqual(back.entries('other').get('k'), { a: 1 });
    assert.deepEqual([...back.entries('big')], [['k0', { i: 0 }], ['k1', { i: 1 }]]);
    // a compaction writes the owner's records as they are
    const owner = new FlowStore();
    back.own('flows', () => owner.records());
    owner.putRow(batch, 1, 1, 1n);
    await back.compactNow();
    await back.close();
    const again = await FileStateStore.open(path.join(dir, 'st'));
    assert.deepEqual([...again.entries('flows').keys()], [batch.idHex(1)]);
    assert.deepEqual(again.entries('other').get('k'), { a: 1 });
    await again.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
