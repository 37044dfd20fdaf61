// The desired state, kept durably: what ferry-control replays into every new ferryd, and what a
// restarted ferry-control starts from. A key-value model (namespace, key) -> JSON value, so the
// same services can later sit on a distributed store (etcd) as well as on a local file.
//
// FileStateStore: a snapshot plus an append-only journal in one directory.
//   snapshot.ndjson   one line per entry: {"ns":..,"k":..,"v":..}; replaced by write, fsync, rename
//   journal.ndjson    one line per commit: {"c":[[ns,key,value|null],...]} (null deletes;
//                     [ns,null,null] clears the namespace). A commit is acknowledged only once its
//                     line is written and fdatasync'ed; a torn last line (a crash mid-write, never
//                     acknowledged) is dropped at load. Commits that arrive while one is being
//                     written share the next write and fsync (group commit).
// Replaying a journal over a snapshot that already holds its effect changes nothing (set and
// delete are idempotent), so a crash anywhere in a compaction loses nothing.
import { promises as fsp, constants as fsc, openSync, closeSync, fsyncSync, ftruncateSync, readFileSync, statSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

export type StateValue = unknown;

/**
 * One change: set (value), delete (value null), or clear the namespace (key null). text, when
 * given, is JSON.stringify(value) already made (the bulk flow path makes it cheaper than that),
 * and makes the change a set: stores read it before value (which a change may make only on demand).
 */
export type StateChange = { ns: string; key: string; value: StateValue | null; text?: string } | { ns: string; key: null; value: null; text?: undefined };

/**
 * Many sets and deletes in one namespace, made as they are written (a bulk load's 10^5 flows are
 * not 10^5 objects): change i sets key(i) to the JSON text(i), or deletes it when text(i) is null.
 * A run must not change once committed.
 */
export interface StateChangeRun {
  readonly ns: string;
  readonly count: number;
  key(i: number): string;
  text(i: number): string | null;
  /**
   * The same as bytes: writes change i's JSON key, a comma and its value's text (null for a delete)
   * as UTF-8 into buf at pos; returns the position after, or -1 if it would pass end.
   */
  writeRecord(i: number, buf: Uint8Array, pos: number, end: number): number;
}

export type StateChanges = readonly (StateChange | StateChangeRun)[];

export function isChangeRun(c: StateChange | StateChangeRun): c is StateChangeRun {
  return 'count' in c;
}

/** Every change as an object of its own (for stores that need no better at their size). */
export function expandChanges(changes: StateChanges): StateChange[] {
  const out: StateChange[] = [];
  for (const c of changes) {
    if (!isChangeRun(c)) {
      out.push(c);
      continue;
    }
    for (let i = 0; i < c.count; i++) {
      const text = c.text(i);
      out.push(text === null ? { ns: c.ns, key: c.key(i), value: null } : { ns: c.ns, key: c.key(i), value: JSON.parse(text) as StateValue, text });
    }
  }
  return out;
}

/** (key, JSON text) of every entry of a namespace a service keeps itself (DesiredStateStore.own). */
export type StateRecords = () => Iterable<[string, string]>;

export interface DesiredStateStore {
  /** Every entry of the namespace, as loaded and changed since (key -> value). */
  entries(ns: string): ReadonlyMap<string, StateValue>;
  /**
   * Makes the changes durable, all or nothing; resolves once they are. origin 'cluster': the
   * changes came from the fleet's store (cluster mode) and are only cached locally, not written back.
   */
  commit(changes: StateChanges, origin?: StateOrigin): Promise<void>;
  /**
   * The namespace's entries are what records() gives from now on (the service holding them
   * commits every change it makes): the store need not keep a copy of its own. A store that keeps
   * nothing in memory (or keeps it anyway) may do nothing.
   */
  own?(ns: string, records: StateRecords): void;
  /** Flushes and closes. */
  close(): Promise<void>;
  /** Where the state lives (for logs and /health). */
  readonly where: string;
}

export class StateStoreError extends Error {}

/** Who made a change: a request to this node, or the fleet's store (cluster mode). */
export type StateOrigin = 'request' | 'cluster';

/** Applies one change to a namespace map (shared by both stores and the loader). */
function apply<V>(spaces: Map<string, Map<string, V>>, ns: string, key: string | null, value: V | null): void {
  if (key === null) {
    spaces.delete(ns);
    return;
  }
  let m = spaces.get(ns);
  if (value === null) {
    m?.delete(key);
    return;
  }
  if (!m) spaces.set(ns, (m = new Map()));
  m.set(key, value);
}

const EMPTY: ReadonlyMap<string, StateValue> = new Map();

/** Nothing survives the process: tests, and `--state-dir none`. */
export class MemoryStateStore implements DesiredStateStore {
  readonly where = 'memory (not durable)';
  private readonly spaces = new Map<string, Map<string, StateValue>>();
  commits = 0;

  entries(ns: string): ReadonlyMap<string, StateValue> {
    return this.spaces.get(ns) ?? EMPTY;
  }

  async commit(changes: StateChanges): Promise<void> {
    for (const c of expandChanges(changes)) apply(this.spaces, c.ns, c.key, c.value);
    this.commits++;
  }

  async close(): Promise<void> {}
}

const SNAPSHOT = 'snapshot.ndjson';
const JOURNAL = 'journal.ndjson';
/** The journal is folded into a new snapshot once it is this big and twice the snapshot's size
 * (a bulk load of 100,000 flows is about 15 MB: it should not be written twice at once). */
const COMPACT_MIN_BYTES = 64 * 1024 * 1024;
/** Records joined into one chunk of a journal line (a few hundred: about 100 KB of flows). */
const JOIN_EVERY = 512;
/** The journal's write buffer: a few chunks of a line at a time. */
const WRITE_BUF_BYTES = 1024 * 1024;

export interface FileStateOptions {
  /** Journal size that triggers compaction (default 64 MiB, and at least twice the snapshot's size). */
  compactMinBytes?: number;
  warn?: (msg: string) => void;
}

/** A run's records in a journal line, written out only as the line is (writePieces). */
interface RunPiece {
  run: StateChangeRun;
  /** JSON of the run's namespace */
  ns: string;
  /** what goes before the first record: a comma, or the line's start */
  prefix: string;
}

type Piece = string | RunPiece;

interface Pending {
  /** the journal line, in pieces (joined only as bytes) */
  line: Piece[];
  resolve: () => void;
  reject: (e: Error) => void;
}

export class FileStateStore implements DesiredStateStore {
  readonly where: string;
  /** Every entry as its JSON text: what snapshots are written from. Parsed values are made only
   * when a service asks (at start), so a bulk load does not keep a second copy of every flow. */
  private readonly texts = new Map<string, Map<string, string>>();
  private readonly parsed = new Map<string, ReadonlyMap<string, StateValue>>();
  /** namespaces whose entries their service keeps (own): no texts here */
  private readonly owners = new Map<string, StateRecords>();
  private journal: fsp.FileHandle | null = null;
  private journalBytes = 0;
  private snapshotBytes = 0;
  private pending: Pending[] = [];
  private writeBuf: Buffer | null = null;
  private compactAsked = false;
  private writing: Promise<void> | null = null;
  private failed: Error | null = null;
  private readonly compactMin: number;
  private readonly warn: (msg: string) => void;
  /** Counters for /metrics and tests. */
  readonly stats = { commits: 0, writes: 0, compactions: 0, tornLinesDropped: 0 };

  private constructor(readonly dir: string, opts: FileStateOptions) {
    this.where = dir;
    this.compactMin = opts.compactMinBytes ?? COMPACT_MIN_BYTES;
    this.warn = opts.warn ?? (() => undefined);
  }

  /** Opens (creating the directory, mode 0700) and loads the state. Throws StateStoreError on corruption. */
  static async open(dir: string, opts: FileStateOptions = {}): Promise<FileStateStore> {
    const s = new FileStateStore(dir, opts);
    if (!existsSync(dir)) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      syncDir(join(dir, '..'));
    }
    const st = statSync(dir);
    if (!st.isDirectory()) throw new StateStoreError(`state dir ${dir} is not a directory`);
    if (st.mode & 0o022) throw new StateStoreError(`state dir ${dir} is group- or world-writable (mode ${(st.mode & 0o777).toString(8)}); refusing to trust it`);
    s.load();
    s.journal = await fsp.open(join(dir, JOURNAL), fsc.O_WRONLY | fsc.O_APPEND | fsc.O_CREAT, 0o600);
    syncDir(dir);
    return s;
  }

  entries(ns: string): ReadonlyMap<string, StateValue> {
    const owner = this.owners.get(ns);
    if (owner) return new Map([...owner()].map(([k, text]) => [k, JSON.parse(text) as StateValue]));
    let m = this.parsed.get(ns);
    if (!m) {
      const t = this.texts.get(ns);
      if (!t) return EMPTY;
      m = new Map([...t].map(([k, text]) => [k, JSON.parse(text) as StateValue]));
      this.parsed.set(ns, m);
    }
    return m;
  }

  private load(): void {
    const snap = join(this.dir, SNAPSHOT);
    if (existsSync(snap)) {
      const text = readFileSync(snap, 'utf8');
      this.snapshotBytes = Buffer.byteLength(text);
      let n = 0;
      for (const line of text.split('\n')) {
        n++;
        if (!line) continue;
        let e: { ns: string; k: string; v: unknown };
        try {
          e = JSON.parse(line) as { ns: string; k: string; v: unknown };
        } catch {
          // a snapshot is renamed into place only once complete: a bad line is corruption
          throw new StateStoreError(`${snap}:${n}: not JSON; the desired state is damaged (restore it from a backup, or move the directory away to start empty)`);
        }
        this.set(e.ns, e.k, JSON.stringify(e.v));
      }
    }
    const jpath = join(this.dir, JOURNAL);
    if (!existsSync(jpath)) return;
    const buf = readFileSync(jpath);
    let pos = 0;
    let lineNo = 0;
    while (pos < buf.length) {
      lineNo++;
      const nl = buf.indexOf(0x0a, pos);
      let rec: { c: [string, string | null, unknown][] } | null = null;
      if (nl >= 0) {
        try {
          rec = JSON.parse(buf.toString('utf8', pos, nl)) as { c: [string, string | null, unknown][] };
          if (!Array.isArray(rec.c)) rec = null;
        } catch {
          rec = null;
        }
      }
      if (rec === null) {
        // A commit is acknowledged once its whole line, newline included, is on disk. A last line
        // without its newline is the write of an unacknowledged commit cut short by a crash: it
        // never happened. A bad line with more after it is damage, not a crash.
        if (nl < 0 || nl === buf.length - 1) {
          this.stats.tornLinesDropped++;
          this.warn(`${jpath}: dropping a torn last line (${buf.length - pos} bytes), a commit never acknowledged`);
          break;
        }
        throw new StateStoreError(`${jpath}:${lineNo}: not a journal record; the desired state is damaged (restore it from a backup, or move the directory away to start empty)`);
      }
      for (const [ns, k, v] of rec.c) {
        if (k === null) this.clearNs(ns);
        else if (v === null) this.del(ns, k);
        else this.set(ns, k, JSON.stringify(v));
      }
      pos = nl + 1;
    }
    this.journalBytes = pos;
    if (pos < buf.length) {
      // cut the torn tail so the next commit starts on a clean line
      const fd = openSync(jpath, 'r+');
      try {
        ftruncateSync(fd, pos);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    }
  }

  own(ns: string, records: StateRecords): void {
    this.owners.set(ns, records);
    this.texts.delete(ns);
    this.parsed.delete(ns);
  }

  private set(ns: string, k: string, text: string): void {
    this.parsed.delete(ns);
    apply(this.texts, ns, k, text);
  }

  private del(ns: string, k: string): void {
    this.parsed.delete(ns);
    apply(this.texts, ns, k, null);
  }

  private clearNs(ns: string): void {
    this.parsed.delete(ns);
    this.texts.delete(ns);
  }

  commit(changes: StateChanges): Promise<void> {
    if (this.failed) return Promise.reject(this.failed);
    if (!this.journal) return Promise.reject(new StateStoreError('the state store is closed'));
    if (changes.length === 0) return Promise.resolve();
    // serialize first: a value that cannot be written fails this commit alone, before any effect
    // (a run's records are made as they are written: they cannot fail)
    const line = new Joiner(JOIN_EVERY, changes.length);
    const nsJson = new Map<string, string>();
    // each change's text as the joiner's record number (-1: none); not the texts themselves:
    // holding 10^5 of them costs what the joiner saves
    const textAt = new Int32Array(changes.length).fill(-1);
    let records = 0;
    let joined = 0;
    for (let i = 0; i < changes.length; i++) {
      const c = changes[i]!;
      let ns = nsJson.get(c.ns);
      if (ns === undefined) nsJson.set(c.ns, ns = JSON.stringify(c.ns));
      if (isChangeRun(c)) {
        if (c.count === 0) continue;
        line.addRun({ run: c, ns, prefix: records ? ',' : '{"c":[' });
        records += c.count;
        continue;
      }
      const text = c.text ?? (c.value === null ? null : JSON.stringify(c.value)); // a delete has no text
      if (text === undefined) return Promise.reject(new StateStoreError(`${c.ns}/${c.key}: value is not JSON`));
      line.add(`${records ? ',' : '{"c":['}[${ns},${c.key === null ? 'null' : JSON.stringify(c.key)},`, text ?? 'null', ']');
      records++;
      if (text !== null) textAt[i] = joined;
      joined++;
    }
    if (records === 0) return Promise.resolve();
    const pieces = [...line.finish(), ']}\n'];
    for (let i = 0; i < changes.length; i++) {
      const c = changes[i]!;
      if (isChangeRun(c)) {
        if (this.owners.has(c.ns)) continue; // its service keeps the entries
        for (let j = 0; j < c.count; j++) {
          const text = c.text(j);
          if (text === null) this.del(c.ns, c.key(j));
          else this.set(c.ns, c.key(j), text);
        }
      } else if (c.key === null) this.clearNs(c.ns);
      else if (this.owners.has(c.ns)) continue;
      else if (textAt[i]! < 0) this.del(c.ns, c.key);
      else this.set(c.ns, c.key, line.text(textAt[i]!));
    }
    this.stats.commits++;
    return new Promise((resolve, reject) => {
      this.pending.push({ line: pieces, resolve, reject });
      if (!this.writing) this.writing = this.writeLoop();
    });
  }

  /** Writes what is pending, one write and one fdatasync per round, until nothing is. */
  private async writeLoop(): Promise<void> {
    try {
      if (this.compactAsked) {
        this.compactAsked = false;
        await this.compact();
      }
      while (this.pending.length) {
        const batch = this.pending;
        this.pending = [];
        let bytes = 0;
        try {
          for (const p of batch) bytes += await this.writePieces(this.journal!, p.line);
          await this.journal!.datasync();
        } catch (e) {
          // the file may now hold part of a line: refuse every later commit rather than
          // acknowledge state that a reload could not read back
          this.failed = new StateStoreError(`writing the desired state to ${this.dir} failed: ${(e as Error).message}; ferry-control must be restarted`);
          for (const p of [...batch, ...this.pending]) p.reject(this.failed);
          this.pending = [];
          return;
        }
        this.journalBytes += bytes;
        this.stats.writes++;
        for (const p of batch) p.resolve();
        if (this.journalBytes >= Math.max(this.compactMin, 2 * this.snapshotBytes)) await this.compact();
      }
    } finally {
      this.writing = null;
    }
  }

  /**
   * Appends pieces to fh through one reused buffer: a fresh buffer per line or snapshot (tens of
   * MB for a bulk load) is paged in anew each time, and a page fault is dear (about 11 us a 4 KB
   * page on a VM). Returns the bytes written.
   */
  private async writePieces(fh: fsp.FileHandle, pieces: readonly Piece[]): Promise<number> {
    const buf = (this.writeBuf ??= Buffer.allocUnsafe(WRITE_BUF_BYTES));
    let used = 0;
    let total = 0;
    const flush = async (): Promise<void> => {
      if (used) await writeAll(fh, buf.subarray(0, used));
      total += used;
      used = 0;
    };
    const put = async (piece: string): Promise<void> => {
      const most = piece.length * 3; // UTF-8 bytes a UTF-16 unit can take
      if (used + most > buf.length) await flush();
      if (most > buf.length) {
        const b = Buffer.from(piece);
        await writeAll(fh, b);
        total += b.length;
      } else {
        used += buf.write(piece, used);
      }
    };
    for (const piece of pieces) {
      if (typeof piece === 'string') {
        await put(piece);
        continue;
      }
      // a run's records, written straight into the buffer as they are made (none kept)
      const { run, ns } = piece;
      // what goes before record i: its separator (the line's prefix for the first), then "[ns,"
      const firstHead = Buffer.from(`${piece.prefix}[${ns},`);
      const head = Buffer.from(`,[${ns},`);
      /** record i at used (after its head, then "]"); where it ends, or -1 if it does not fit */
      const place = (i: number): number => {
        const h = i ? head : firstHead;
        const end = run.writeRecord(i, buf, used + h.length, buf.length - 1);
        if (end < 0) return -1;
        // a loop: a call into the runtime (copy, write) costs more than these few bytes, once a record
        for (let k = 0; k < h.length; k++) buf[used + k] = h[k]!;
        buf[end] = 0x5d; // ]
        return end + 1;
      };
      for (let i = 0; i < run.count; i++) {
        let next = place(i);
        if (next < 0 && used > 0) {
          await flush();
          next = place(i);
        }
        if (next >= 0) used = next;
        else await put(`${i ? ',' : piece.prefix}[${ns},${JSON.stringify(run.key(i))},${run.text(i) ?? 'null'}]`); // more than the whole buffer
      }
    }
    await flush();
    return total;
  }

  /**
   * Folds the journal into a new snapshot: write snapshot.tmp, fsync, rename over the snapshot,
   * fsync the directory, then start an empty journal. Only runs between journal writes.
   */
  private async compact(): Promise<void> {
    const tmp = join(this.dir, `${SNAPSHOT}.tmp`);
    let count = 0;
    for (const m of this.texts.values()) count += m.size;
    const body = new Joiner(JOIN_EVERY, count);
    const entries: [Map<string, string>, string, string][] = [];
    for (const [ns, m] of this.texts) {
      const nsText = JSON.stringify(ns);
      for (const [k, text] of m) {
        body.add(`{"ns":${nsText},"k":${JSON.stringify(k)},"v":`, text, '}\n');
        entries.push([m, k, text]);
      }
    }
    // the namespaces services keep themselves: their entries as they are now (taken before any await,
    // so with the texts above they are one moment's state)
    const owned: string[] = [];
    for (const [ns, records] of this.owners) {
      const nsText = JSON.stringify(ns);
      let chunk: string[] = [];
      for (const [k, text] of records()) {
        chunk.push(`{"ns":${nsText},"k":${JSON.stringify(k)},"v":${text}}\n`);
        if (chunk.length === JOIN_EVERY) {
          owned.push(chunk.join(''));
          chunk = [];
        }
      }
      if (chunk.length) owned.push(chunk.join(''));
    }
    const fh = await fsp.open(tmp, 'w', 0o600);
    let bytes: number;
    try {
      bytes = await this.writePieces(fh, [...body.finish(), ...owned]);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, join(this.dir, SNAPSHOT));
    syncDir(this.dir);
    // the snapshot holds everything the journal said: a new, empty journal
    await this.journal!.truncate(0);
    await this.journal!.sync();
    this.snapshotBytes = bytes;
    this.journalBytes = 0;
    this.stats.compactions++;
    // texts kept as slices of the journal lines they came in hold those whole lines: from now on
    // they are slices of the snapshot, which holds exactly what is live (an entry a commit changed
    // while the snapshot was written keeps its new text)
    entries.forEach(([m, k, text], n) => { if (m.get(k) === text) m.set(k, body.text(n)); });
  }

  /** Waits for pending writes; then closes the journal. */
  async close(): Promise<void> {
    while (this.writing) await this.writing;
    await this.journal?.close();
    this.journal = null;
  }

  /** Test hook: compacts now (waits for pending writes first). */
  async compactNow(): Promise<void> {
    while (this.writing) await this.writing;
    // through the write loop, as compactions run: commits made meanwhile wait for it
    this.compactAsked = true;
    this.writing = this.writeLoop();
    await this.writing;
  }
}

/**
 * Joins [head, text, tail] records into a few large strings (every records to one), remembering
 * where each text lands: a text kept as a slice of its string is small and never copied by the
 * collector, where a string of its own is (a bulk load of 10^5 flows kept 10^5 of them).
 */
class Joiner {
  private readonly strings: Piece[] = [];
  private pieces: string[] = [];
  private at = 0;
  /** [string, start, length] of each text */
  private readonly where: Int32Array;
  private n = 0;

  /** every: records to a string; count: the records to come */
  constructor(private readonly every: number, count: number) {
    this.where = new Int32Array(3 * count);
  }

  add(head: string, text: string, tail: string): void {
    this.pieces.push(head, text, tail);
    const w = 3 * this.n++;
    this.where[w] = this.strings.length;
    this.where[w + 1] = this.at + head.length;
    this.where[w + 2] = text.length;
    this.at += head.length + text.length + tail.length;
    if (this.pieces.length >= 3 * this.every) this.flush();
  }

  /** A run of records, written out only with the line (after what was added before it). */
  addRun(run: RunPiece): void {
    this.flush();
    this.strings.push(run);
  }

  private flush(): void {
    if (this.pieces.length) this.strings.push(this.pieces.join(''));
    this.pieces = [];
    this.at = 0;
  }

  /** The joined strings (and runs), in order. */
  finish(): Piece[] {
    this.flush();
    return this.strings;
  }

  /** The n-th text added, as a slice of its string (after finish). */
  text(n: number): string {
    const w = this.where;
    const start = w[3 * n + 1]!;
    return (this.strings[w[3 * n]!] as string).slice(start, start + w[3 * n + 2]!);
  }
}

async function writeAll(fh: fsp.FileHandle, buf: Buffer): Promise<void> {
  let off = 0;
  while (off < buf.length) {
    const { bytesWritten } = await fh.write(buf, off, buf.length - off);
    off += bytesWritten;
  }
}

/** fsync of a directory makes a create or rename in it durable. */
function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** A state store by name: 'none' keeps it in memory, anything else is a directory. */
export async function openStateStore(dir: string, warn?: (msg: string) => void): Promise<DesiredStateStore> {
  if (dir === 'none') return new MemoryStateStore();
  return FileStateStore.open(dir, { warn });
}

/**
 * For services whose desired state is small (tunnels, neighbours, conntrack settings): after each
 * change the service hands over all of it, and the mirror commits what differs from the last
 * commit, as one commit. Simpler than tracking each change, and as cheap at this size.
 */
export class StateMirror {
  /** ns -> key -> JSON text last committed */
  private readonly last = new Map<string, Map<string, string>>();

  constructor(private readonly store: DesiredStateStore, namespaces: readonly string[]) {
    for (const ns of namespaces) {
      const m = new Map<string, string>();
      for (const [k, v] of store.entries(ns)) m.set(k, JSON.stringify(v));
      this.last.set(ns, m);
    }
  }

  /**
   * Takes `now` as already committed: a service primes its mirror with the state it restored, so
   * that its defaults are not written as if they were a change (in cluster mode they would
   * overwrite the fleet's).
   */
  prime(now: ReadonlyMap<string, ReadonlyMap<string, unknown>>): void {
    for (const ns of this.last.keys()) {
      const m = new Map<string, string>();
      for (const [k, v] of now.get(ns) ?? []) m.set(k, JSON.stringify(v));
      this.last.set(ns, m);
    }
  }

  /** Commits the difference between `now` (namespace -> key -> value) and the last commit. */
  async sync(now: ReadonlyMap<string, ReadonlyMap<string, unknown>>, origin: StateOrigin = 'request'): Promise<void> {
    const changes: StateChange[] = [];
    const texts = new Map<string, Map<string, string>>();
    for (const [ns, before] of this.last) {
      const entries = now.get(ns) ?? new Map<string, unknown>();
      const after = new Map<string, string>();
      for (const [k, v] of entries) {
        const text = JSON.stringify(v);
        after.set(k, text);
        if (before.get(k) !== text) changes.push({ ns, key: k, value: v });
      }
      for (const k of before.keys()) if (!after.has(k)) changes.push({ ns, key: k, value: null });
      texts.set(ns, after);
    }
    if (changes.length === 0) return;
    await this.store.commit(changes, origin);
    for (const [ns, m] of texts) this.last.set(ns, m);
  }
}
