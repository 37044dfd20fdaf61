// The durable desired state: what is acknowledged is on disk, survives a reopen (and a torn
// write or a compaction cut short), and damage is refused rather than half-loaded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FileStateStore, MemoryStateStore, StateChange, StateMirror, StateStoreError } from '../src/state/store';

function tmpDir(): string {
  return mkdtempSync(path.join(os.tmpdir(), 'ferry-state-test-'));
}

const asObj = (m: ReadonlyMap<string, unknown>): Record<string, unknown> => Object.fromEntries(m);

test('set, delete and clear survive a reopen; files are private', async () => {
  const dir = tmpDir();
  try {
    const s = await FileStateStore.open(path.join(dir, 'st'));
    await s.commit([{ ns: 'a', key: 'x', value: { n: 1 } }, { ns: 'a', key: 'y', value: [1, 2] }, { ns: 'b', key: 'z', value: 'zz' }]);
    await s.commit([{ ns: 'a', key: 'x', value: null }, { ns: 'a', key: 'w', value: true }]);
    await s.commit([{ ns: 'b', key: null, value: null }, { ns: 'b', key: 'q', value: 0 }]);
    assert.deepEqual(asObj(s.entries('a')), { y: [1, 2], w: true });
    await s.close();
    assert.equal(statSync(path.join(dir, 'st')).mode & 0o777, 0o700);
    assert.equal(statSync(path.join(dir, 'st', 'journal.ndjson')).mode & 0o777, 0o600);

    const r = await FileStateStore.open(path.join(dir, 'st'));
    assert.deepEqual(asObj(r.entries('a')), { y: [1, 2], w: true });
    assert.deepEqual(asObj(r.entries('b')), { q: 0 });
    assert.deepEqual(asObj(r.entries('none')), {});
    await r.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a commit is in the journal file when it resolves (acknowledged means written)', async () => {
  const dir = tmpDir();
  try {
    const s = await FileStateStore.open(dir);
    await s.commit([{ ns: 'flows', key: 'k1', value: { t: 1 } }]);
    const text = readFileSync(path.join(dir, 'journal.ndjson'), 'utf8');
    assert.match(text, /"k1"/);
    // and a second process (a restarted service) reads it without the first closing
    const other = await FileStateStore.open(dir);
    assert.deepEqual(asObj(other.entries('flows')), { k1: { t: 1 } });
    await other.close();
    await s.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('concurrent commits share writes (group commit) and all land', async () => {
  const dir = tmpDir();
  try {
    const s = await FileStateStore.open(dir);
    await Promise.all(Array.from({ length: 200 }, (_, i) => s.commit([{ ns: 'n', key: `k${i}`, value: i }])));
    assert.equal(s.stats.commits, 200);
    assert.ok(s.stats.writes < 200, `${s.stats.writes} writes for 200 commits`);
    await s.close();
    const r = await FileStateStore.open(dir);
    assert.equal(r.entries('n').size, 200);
    assert.equal(r.entries('n').get('k199'), 199);
    await r.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a torn last line (a crash mid-write, never acknowledged) is dropped and cut off; later commits read back', async () => {
  const dir = tmpDir();
  try {
    const s = await FileStateStore.open(dir);
    await s.commit([{ ns: 'n', key: 'a', value: 1 }]);
    await s.close();
    appendFileSync(path.join(dir, 'journal.ndjson'), '{"c":[["n","b",2]');
    const warnings: string[] = [];
    const r = await FileStateStore.open(dir, { warn: (m) => warnings.push(m) });
    assert.deepEqual(asObj(r.entries('n')), { a: 1 });
    assert.equal(r.stats.tornLinesDropped, 1);
    assert.match(warnings.join('\n'), /torn last line/);
    await r.commit([{ ns: 'n', key: 'c', value: 3 }]);
    await r.close();
    const again = await FileStateStore.open(dir);
    assert.deepEqual(asObj(again.entries('n')), { a: 1, c: 3 });
    assert.equal(again.stats.tornLinesDropped, 0);
    await again.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a damaged line with commits after it is refused, not skipped', async () => {
  const dir = tmpDir();
  try {
    writeFileSync(path.join(dir, 'journal.ndjson'), '{"c":[["n","a",1]]}\n{"c":[["n",\n{"c":[["n","b",2]]}\n', { mode: 0o600 });
    await assert.rejects(FileStateStore.open(dir), (e: Error) => e instanceof StateStoreError && /journal\.ndjson:2/.test(e.message));
    writeFileSync(path.join(dir, 'journal.ndjson'), '');
    writeFileSync(path.join(dir, 'snapshot.ndjson'), '{"ns":"n","k":"a","v":1}\n{"ns":"n","k":\n');
    await assert.rejects(FileStateStore.open(dir), (e: Error) => e instanceof StateStoreError && /snapshot\.ndjson:2/.test(e.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('compaction folds the journal into a snapshot; a crash between rename and truncate replays harmlessly', async () => {
  const dir = tmpDir();
  try {
    const s = await FileStateStore.open(dir, { compactMinBytes: 4096 });
    for (let i = 0; i < 100; i++) await s.commit([{ ns: 'n', key: `k${i % 30}`, value: { i, pad: 'x'.repeat(50) } }]);
    await s.commit([{ ns: 'n', key: 'k0', value: null }]);
    assert.ok(s.stats.compactions >= 1, 'compacted');
    const journalBefore = readFileSync(path.join(dir, 'journal.ndjson'));
    await s.compactNow();
    assert.equal(statSync(path.join(dir, 'journal.ndjson')).size, 0);
    await s.close();
    const expect = (m: ReadonlyMap<string, unknown>): void => {
      assert.equal(m.size, 29);
      assert.equal(m.has('k0'), false);
      assert.deepEqual(m.get('k29'), { i: 89, pad: 'x'.repeat(50) });
    };
    let r = await FileStateStore.open(dir);
    expect(r.entries('n'));
    await r.close();
    // the journal as it was before the last compaction, over the new snapshot: same state
    writeFileSync(path.join(dir, 'journal.ndjson'), journalBefore);
    r = await FileStateStore.open(dir);
    expect(r.entries('n'));
    await r.close();
    assert.ok(!existsSync(path.join(dir, 'snapshot.ndjson.tmp')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a commit of thousands of changes (a journal line joined in chunks) reads back, from memory, the journal and a snapshot', async () => {
  const dir = tmpDir();
  try {
    const s = await FileStateStore.open(dir);
    const n = 2000; // several chunks of the line
    const changes: StateChange[] = [];
    const want = new Map<string, unknown>();
    for (let i = 0; i < n; i++) {
      // values of different lengths, some not ASCII, some given as ready text; every 7th deleted again
      const value = { i, s: i % 3 ? 'é€'.repeat(i % 5) : 'x'.repeat(i % 40) };
      changes.push(i % 2 ? { ns: 'f', key: `k${i}`, value } : { ns: 'f', key: `k${i}`, value, text: JSON.stringify(value) });
      want.set(`k${i}`, value);
      if (i % 7 === 0) {
        changes.push({ ns: 'f', key: `k${i}`, value: null });
        want.delete(`k${i}`);
      }
    }
    changes.push({ ns: 'g', key: 'one', value: 1 }, { ns: 'g', key: null, value: null }, { ns: 'g', key: 'two', value: 2 });
    await s.commit(changes);
    const check = (st: FileStateStore, what: string): void => {
      assert.deepEqual(asObj(st.entries('f')), Object.fromEntries(want), what);
      assert.deepEqual(asObj(st.entries('g')), { two: 2 }, what);
    };
    check(s, 'in memory');
    // a commit that lands while the snapshot is being written keeps its own text
    const compacting = s.compactNow();
    const late = s.commit([{ ns: 'f', key: 'k1', value: { late: true } }]);
    want.set('k1', { late: true });
    await compacting;
    await late;
    check(s, 'in memory, after the compaction');
    await s.close();
    const r = await FileStateStore.open(dir);
    check(r, 'from the snapshot');
    await r.commit([{ ns: 'f', key: 'k1', value: null }]);
    want.delete('k1');
    await r.close();
    const r2 = await FileStateStore.open(dir);
    check(r2, 'from the snapshot and the journal');
    await r2.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a line with a piece larger than the write buffer goes to disk whole', async () => {
  const dir = tmpDir();
  try {
    const s = await FileStateStore.open(dir);
    const big = 'é€'.repeat(200_000); // 1 MB of UTF-8 in one value
    await s.commit([{ ns: 'a', key: 'small', value: 1 }, { ns: 'a', key: 'big', value: big }, { ns: 'a', key: 'after', value: 'x' }]);
    await s.commit([{ ns: 'a', key: 'next', value: [big.slice(0, 10)] }]);
    await s.close();
    const r = await FileStateStore.open(dir);
    assert.deepEqual(asObj(r.entries('a')), { small: 1, big, after: 'x', next: [big.slice(0, 10)] });
    await r.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a group- or world-writable state directory is refused', async () => {
  const dir = tmpDir();
  try {
    chmodSync(dir, 0o777);
    await assert.rejects(FileStateStore.open(dir), /group- or world-writable/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('StateMirror commits only what changed, as one commit', async () => {
  const m = new MemoryStateStore();
  await m.commit([{ ns: 't', key: 'a', value: 1 }, { ns: 't', key: 'b', value: 2 }]);
  const mirror = new StateMirror(m, ['t', 'u']);
  const commits = m.commits;
  await mirror.sync(new Map([['t', new Map<string, unknown>([['a', 1], ['b', 2]])]]));
  assert.equal(m.commits, commits, 'nothing changed, nothing written');
  await mirror.sync(new Map([['t', new Map<string, unknown>([['a', 5]])], ['u', new Map<string, unknown>([['c', { x: 1 }]])]]));
  assert.equal(m.commits, commits + 1);
  assert.deepEqual(asObj(m.entries('t')), { a: 5 });
  assert.deepEqual(asObj(m.entries('u')), { c: { x: 1 } });
});

