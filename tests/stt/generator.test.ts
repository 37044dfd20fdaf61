// Ferry's STT reassembler against segments it did not make: tests/stt/stt-gen.ts builds
// them from the wire format in /work/shared/research/stt.md, `ferry-stt-pcap decap`
// runs them through ferry_stt_reasm_add, and every frame that comes out is compared byte
// for byte with the inner frame that went in (or with what the receiver must make of
// it: CE applied, the VLAN tag inserted, the partial checksum completed), and the JSON
// summary with the contexts, addresses, flags and the drop counters by reason.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { readPcap, writePcap } from './pcap';
import {
  alter,
  encodeSegment,
  F_CSUM_PARTIAL,
  F_CSUM_VERIFIED,
  F_IPV4,
  F_TCP,
  inetCsum,
  innerTcp4,
  partialize,
  pseudo4,
  Segment,
  segmentFrame,
  TCP_SYN,
  VLAN_PRESENT,
  withCe,
  withVlan,
} from './stt-gen';

const root = path.resolve(__dirname, '../../..');
const TOOL = process.env.FERRY_STT_PCAP ?? path.join(root, 'dataplane/build/ferry-stt-pcap');
const dir = mkdtempSync(path.join(tmpdir(), 'ferry-stt-gen-'));
after(() => (process.env.FERRY_KEEP_PCAPS ? console.log(`pcaps kept in ${dir}`) : rmSync(dir, { recursive: true, force: true })));

const REASONS = [
  'bad_csum', 'bad_header', 'bad_length', 'len_mismatch', 'overlap', 'timeout', 'evicted', 'bad_version',
  'bad_l4_offset', 'no_mbuf', 'too_big', 'no_remote', 'outer_frag', 'no_tunnel', 'bad_inner',
] as const;
type Reason = (typeof REASONS)[number];

interface FrameRec {
  context: string;
  src: string;
  dst: string;
  flags: string;
  len: number;
}
interface Summary {
  segments_in: number;
  frames_out: number;
  skipped: number;
  reasons: Record<Reason, number>;
  frames: FrameRec[];
}
interface Decap {
  summary: Summary;
  out: Buffer[];
}

let files = 0;
const T0 = 1_700_000_000_000_000_000n;

/** Runs decap over the packets (10 µs apart unless timed) and returns its JSON and OUT. */
function decap(pkts: (Buffer | { data: Buffer; tsNs: bigint })[], args: string[] = []): Decap {
  assert.ok(existsSync(TOOL), `${TOOL} is missing: ninja -C dataplane/build ferry-stt-pcap`);
  const n = ++files;
  const inFile = path.join(dir, `in${n}.pcap`);
  const outFile = path.join(dir, `out${n}.pcap`);
  writePcap(
    inFile,
    pkts.map((p, i) => (Buffer.isBuffer(p) ? { data: p, tsNs: T0 + BigInt(i) * 10_000n } : p)),
  );
  const r = spawnSync(TOOL, ['decap', inFile, outFile, ...args], { encoding: 'utf8', timeout: 60000 });
  assert.equal(r.status, 0, `decap exited ${r.status}: ${r.stderr}`);
  const lines = r.stdout.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, `one JSON line expected, got:\n${r.stdout}`);
  const summary = JSON.parse(lines[0]!) as Summary;
  assert.deepEqual(Object.keys(summary.reasons), [...REASONS], 'every stt_reason, in enum order');
  return { summary, out: readPcap(outFile).map((p) => p.data) };
}

function reasons(nonZero: Partial<Record<Reason, number>> = {}): Record<Reason, number> {
  return Object.fromEntries(REASONS.map((k) => [k, nonZero[k] ?? 0])) as Record<Reason, number>;
}

const ctx = (c: bigint): string => `0x${c.toString(16).padStart(16, '0')}`;

/** compares frames byte for byte, naming the first difference */
function sameFrames(got: Buffer[], want: Buffer[], what: string): void {
  assert.equal(got.length, want.length, `${what}: ${got.length} frame(s) out, ${want.length} expected`);
  got.forEach((g, i) => {
    const w = want[i]!;
    if (g.equals(w)) return;
    let d = 0;
    while (d < Math.min(g.length, w.length) && g[d] === w[d]) d++;
    assert.fail(
      `${what}: frame ${i} differs: length ${g.length} vs ${w.length}, first difference at byte ${d} ` +
        `(got 0x${(g[d] ?? 0).toString(16)}, want 0x${(w[d] ?? 0).toString(16)})`,
    );
  });
}

const A = { src: '192.0.2.11', dst: '192.0.2.22' };
const B = { src: '192.0.2.33', dst: '192.0.2.22', srcMac: '02:00:00:00:03:03', sport: 61000 };

function inner(size: number, seed = 1, tos = 0): Buffer {
  return innerTcp4({ size, seed, tos, src: '10.1.0.1', dst: '10.1.0.2', sport: 40000 + seed, dport: 5201 });
}

const enc = (segs: Segment[]): Buffer[] => segs.map(encodeSegment);

// ---------------------------------------------------------------- frames that must come out

describe('STT decap of generated segments', () => {
  test('in order: single and multi segment, up to the largest frame', () => {
    const cases: [number, number][] = [
      [60, 1460],
      [1514, 1460],
      [4000, 1460],
      [9000, 8960],
      [60000, 1460],
      [65517, 1460],
      [65517, 536],
    ];
    for (const [size, mss] of cases) {
      const f = inner(size, size & 0xff);
      const c = 0x0123456789abcdefn;
      const segs = segmentFrame({ inner: f, hdr: { context: c }, packetId: 0x1001, mss });
      const d = decap(enc(segs));
      const what = `${size} B, mss ${mss}`;
      sameFrames(d.out, [f], what);
      assert.deepEqual(
        d.summary,
        {
          segments_in: segs.length,
          frames_out: 1,
          skipped: 0,
          reasons: reasons(),
          frames: [{ context: ctx(c), src: A.src, dst: A.dst, flags: '0x00', len: size }],
        },
        what,
      );
    }
  });

  test('out of order with a duplicate', () => {
    const f = inner(4000, 3);
    const s = segmentFrame({ inner: f, hdr: { context: 42n }, packetId: 0x33, mss: 1460 });
    assert.equal(s.length, 3);
    const d = decap(enc([s[2]!, s[0]!, s[2]!, s[1]!]));
    sameFrames(d.out, [f], 'order 2,0,2,1');
    assert.deepEqual(d.summary.reasons, reasons({ overlap: 1 }));
    assert.equal(d.summary.segments_in, 4);
    assert.deepEqual(d.summary.frames.map((x) => x.context), [ctx(42n)]);

    const r = segmentFrame({ inner: inner(20000, 4), hdr: { context: 43n }, packetId: 0x34, mss: 1460 });
    const d2 = decap(enc([...r].reverse()));
    sameFrames(d2.out, [inner(20000, 4)], 'reversed');
    assert.deepEqual(d2.summary.reasons, reasons());
  });

  test('interleaved frames from two senders with the same packet id', () => {
    const fa7 = inner(5000, 11);
    const fa8 = inner(3000, 12);
    const fb7 = inner(7000, 13);
    const frames = [
      { name: 'A7', f: fa7, segs: segmentFrame({ inner: fa7, hdr: { context: 0xan }, packetId: 7, mss: 1460, outer: A }) },
      { name: 'B7', f: fb7, segs: segmentFrame({ inner: fb7, hdr: { context: 0xbn }, packetId: 7, mss: 1460, outer: B }) },
      { name: 'A8', f: fa8, segs: segmentFrame({ inner: fa8, hdr: { context: 0xan }, packetId: 8, mss: 1460, outer: A }) },
    ];
    // round robin, B's segments backwards
    frames[1]!.segs.reverse();
    const seq: { name: string; seg: Segment }[] = [];
    for (let i = 0; frames.some((x) => i < x.segs.length); i++)
      for (const x of frames) if (i < x.segs.length) seq.push({ name: x.name, seg: x.segs[i]! });
    // a frame comes out when its last segment is in
    const order = frames
      .map((x) => ({ x, last: seq.map((e) => e.name).lastIndexOf(x.name) }))
      .sort((p, q) => p.last - q.last)
      .map((e) => e.x);
    const d = decap(seq.map((e) => encodeSegment(e.seg)));
    sameFrames(d.out, order.map((x) => x.f), 'interleaved');
    assert.deepEqual(
      d.summary.frames,
      order.map((x) => ({
        context: ctx(x.name === 'B7' ? 0xbn : 0xan),
        src: x.name === 'B7' ? B.src : A.src,
        dst: A.dst,
        flags: '0x00',
        len: x.f.length,
      })),
    );
    assert.deepEqual(d.summary.reasons, reasons());
    assert.equal(d.summary.segments_in, seq.length);
  });

  test('CE on one segment marks an ECN-capable inner packet, and only that', () => {
    for (const tos of [0x02, 0x01, 0xb8 | 0x02]) {
      const f = inner(4000, 21, tos);
      const s = segmentFrame({ inner: f, hdr: { context: 1n }, packetId: 0x50, mss: 1460 });
      s[1] = alter(s[1]!, { outer: { tos: 0x03 } });
      const d = decap(enc(s));
      const want = withCe(f);
      assert.equal(want[15], tos | 3);
      sameFrames(d.out, [want], `inner tos 0x${tos.toString(16)} + CE`);
    }
    // Not-ECT inner: left as it is
    const f = inner(4000, 22, 0x00);
    const s = segmentFrame({ inner: f, hdr: { context: 1n }, packetId: 0x51, mss: 1460 });
    s[2] = alter(s[2]!, { outer: { tos: 0x03 } });
    sameFrames(decap(enc(s)).out, [f], 'Not-ECT inner + CE');
    // ECT on the outer header without CE changes nothing
    const g = inner(4000, 23, 0x02);
    const t = segmentFrame({ inner: g, hdr: { context: 1n }, packetId: 0x52, mss: 1460, outer: { tos: 0x02 } });
    sameFrames(decap(enc(t)).out, [g], 'ECT(0) outer');
  });

  test('the V bit puts the VLAN tag into the frame', () => {
    const f = inner(3000, 31);
    const s = segmentFrame({
      inner: f,
      hdr: { context: 5n, vlanTci: VLAN_PRESENT | (5 << 13) | 100 },
      packetId: 0x60,
      mss: 1460,
    });
    const d = decap(enc(s));
    const want = withVlan(f, (5 << 13) | 100);
    sameFrames(d.out, [want], 'tagged PCP 5 VID 100');
    assert.equal(d.summary.frames[0]?.len, f.length + 4);
    // the V bit clear: a TCI without it is not a tag
    const s2 = segmentFrame({ inner: f, hdr: { context: 5n, vlanTci: (5 << 13) | 100 }, packetId: 0x61, mss: 1460 });
    sameFrames(decap(enc(s2)).out, [f], 'no V bit');
    // VID 0 with a priority is still a tag
    const s3 = segmentFrame({ inner: f, hdr: { context: 5n, vlanTci: VLAN_PRESENT | (3 << 13) }, packetId: 0x62, mss: 1460 });
    sameFrames(decap(enc(s3)).out, [withVlan(f, 3 << 13)], 'priority tag');
  });

  test('CSUM_PARTIAL: the inner TCP checksum is completed', () => {
    for (const size of [200, 1514, 9000, 60000]) {
      const f = inner(size, 41);
      const s = segmentFrame({
        inner: partialize(f),
        hdr: { context: 6n, flags: F_CSUM_PARTIAL | F_IPV4 | F_TCP, l4Offset: 34 },
        packetId: 0x70,
        mss: 1460,
      });
      const d = decap(enc(s));
      sameFrames(d.out, [f], `partial ${size}`);
      assert.deepEqual(d.summary.frames, [{ context: ctx(6n), src: A.src, dst: A.dst, flags: '0x0e', len: size }]);
    }
  });

  test('CSUM_PARTIAL with an MSS: the frame is cut into MSS-sized TCP packets', () => {
    const f = inner(9000, 42);
    const mss = 1448;
    const s = segmentFrame({
      inner: partialize(f),
      hdr: { context: 7n, flags: F_CSUM_PARTIAL | F_IPV4 | F_TCP, l4Offset: 34, mss },
      packetId: 0x71,
      mss: 1460,
    });
    const d = decap(enc(s));
    const payload = f.subarray(54);
    const n = Math.ceil(payload.length / mss);
    assert.equal(d.out.length, n, 'TSO pieces');
    assert.equal(d.summary.frames_out, n);
    assert.deepEqual(d.summary.frames, [{ context: ctx(7n), src: A.src, dst: A.dst, flags: '0x0e', len: 9000 }]);
    const seq0 = f.readUInt32BE(38);
    d.out.forEach((p, i) => {
      const part = payload.subarray(i * mss, (i + 1) * mss);
      assert.equal(p.length, 54 + part.length, `piece ${i} length`);
      assert.ok(p.subarray(0, 14).equals(f.subarray(0, 14)), `piece ${i} Ethernet header`);
      assert.equal(p.readUInt16BE(16), 40 + part.length, `piece ${i} IP total length`);
      assert.equal(inetCsum(p.subarray(14, 34)), 0, `piece ${i} IP header checksum`);
      assert.equal(p.readUInt32BE(38), (seq0 + i * mss) >>> 0, `piece ${i} seq`);
      const tcp = p.subarray(34);
      assert.equal(inetCsum(pseudo4(p.subarray(26, 30), p.subarray(30, 34), 6, tcp.length), tcp), 0, `piece ${i} TCP checksum`);
      assert.ok(tcp.subarray(20).equals(part), `piece ${i} payload`);
      const fl = tcp[13]!;
      assert.equal(fl & 0x08, i === n - 1 ? 0x08 : 0, `piece ${i} PSH only on the last`);
      assert.equal(fl & 0x10, 0x10, `piece ${i} ACK`);
    });
  });

  test('CSUM_VERIFIED is passed on', () => {
    const f = inner(3000, 51);
    const s = segmentFrame({ inner: f, hdr: { context: 8n, flags: F_CSUM_VERIFIED }, packetId: 0x80, mss: 1460 });
    const d = decap(enc(s));
    sameFrames(d.out, [f], 'verified');
    assert.deepEqual(d.summary.frames, [{ context: ctx(8n), src: A.src, dst: A.dst, flags: '0x01', len: 3000 }]);
  });

  test('packets that are not STT candidates are skipped', () => {
    const f = inner(3000, 52);
    const s = segmentFrame({ inner: f, hdr: { context: 9n }, packetId: 0x81, mss: 1460 });
    const udp = Buffer.from(encodeSegment(s[0]!));
    udp[23] = 17; // IP protocol UDP
    const frag = Buffer.from(encodeSegment(s[0]!));
    frag.writeUInt16BE(0x2000, 20); // MF
    const arp = Buffer.alloc(60);
    arp.writeUInt16BE(0x0806, 12);
    const d = decap([udp, ...enc(s).slice(0, 1), frag, arp, ...enc(s).slice(1)]);
    sameFrames(d.out, [f], 'with strangers');
    assert.equal(d.summary.skipped, 3);
    assert.equal(d.summary.segments_in, s.length);
    assert.deepEqual(d.summary.reasons, reasons());
  });
});

// ---------------------------------------------------------------- segments that must be refused

describe('STT decap refuses broken segments', () => {
  const f = inner(4000, 61);
  const good = (): Segment[] => segmentFrame({ inner: f, hdr: { context: 0x77n }, packetId: 0x90, mss: 1460 });
  const small = inner(200, 62);
  const one = (hdr = {}): Segment => segmentFrame({ inner: small, hdr: { context: 0x78n, ...hdr }, packetId: 0x91, mss: 1460 })[0]!;

  /** a broken single-segment frame: nothing out, the reason counted once */
  function refused(seg: Segment, reason: Reason, what: string): void {
    const d = decap([encodeSegment(seg)]);
    assert.equal(d.out.length, 0, `${what}: not delivered`);
    assert.deepEqual(d.summary.frames, [], what);
    assert.deepEqual(d.summary.reasons, reasons({ [reason]: 1 }), what);
  }

  /** a broken copy of segment i sent before the good one: dropped, the frame completes */
  function extra(i: number, change: (s: Segment) => Segment, reason: Reason, what: string): void {
    const s = good();
    const bad = change(s[i]!);
    const seq = [...s.slice(0, i), bad, ...s.slice(i)];
    const d = decap(enc(seq));
    sameFrames(d.out, [f], `${what} (extra)`);
    assert.deepEqual(d.summary.reasons, reasons({ [reason]: 1 }), `${what} (extra)`);
  }

  /** segment i replaced by a broken one: the frame never completes and times out */
  function replaced(i: number, change: (s: Segment) => Segment, reason: Reason, what: string): void {
    const s = good();
    s[i] = change(s[i]!);
    const d = decap(enc(s));
    assert.equal(d.out.length, 0, `${what} (replaced): not delivered`);
    assert.deepEqual(d.summary.reasons, reasons({ [reason]: 1, timeout: 1 }), `${what} (replaced)`);
  }

  test('wrong outer TCP checksum', () => {
    refused(alter(one(), { badCsum: true }), 'bad_csum', 'bad checksum');
    extra(1, (s) => alter(s, { badCsum: true }), 'bad_csum', 'bad checksum');
    // the payload changed after the checksum was computed (a flipped bit in flight)
    const flipped = encodeSegment(one());
    flipped[flipped.length - 1] = flipped[flipped.length - 1]! ^ 0x01;
    const d = decap([flipped]);
    assert.equal(d.out.length, 0);
    assert.deepEqual(d.summary.reasons, reasons({ bad_csum: 1 }));
  });

  test('version other than 0', () => {
    refused(one({ version: 1 }), 'bad_version', 'version 1');
    extra(0, (s) => { const b = alter(s, {}); b.payload[0] = 1; return b; }, 'bad_version', 'version 1');
  });

  test('data offset other than 5', () => {
    refused(alter(one(), { doff: 6 }), 'bad_header', 'doff 6');
    extra(1, (s) => alter(s, { doff: 6 }), 'bad_header', 'doff 6');
    replaced(2, (s) => alter(s, { doff: 4 }), 'bad_header', 'doff 4');
  });

  test('SYN (and RST, FIN) flags', () => {
    refused(alter(one(), { tcpFlags: 0x10 | TCP_SYN }), 'bad_header', 'SYN');
    extra(1, (s) => alter(s, { tcpFlags: 0x10 | TCP_SYN }), 'bad_header', 'SYN');
    refused(alter(one(), { tcpFlags: 0x14 }), 'bad_header', 'RST');
    refused(alter(one(), { tcpFlags: 0x19 }), 'bad_header', 'FIN');
  });

  test('offset past the frame length', () => {
    const s0 = good();
    const len = s0[0]!.frameLen;
    extra(1, (s) => alter(s, { offset: len }), 'bad_length', 'offset == length');
    replaced(2, (s) => alter(s, { offset: len - 10 }), 'bad_length', 'offset + len > length');
    refused(alter(one(), { offset: 0, frameLen: 100 }), 'bad_length', 'payload longer than the frame');
  });

  test('a later segment with a different frame length', () => {
    const s0 = good();
    const len = s0[0]!.frameLen;
    // claims a 100-byte longer frame and sits just past the real one: no overlap, only the length disagrees
    extra(2, (s) => alter(s, { frameLen: len + 100, offset: len, payload: Buffer.alloc(100, 0xee) }), 'len_mismatch', 'length +100');
    replaced(2, (s) => alter(s, { frameLen: len + 8 }), 'len_mismatch', 'last segment says +8');
  });

  test('CSUM_PARTIAL with an L4 offset that cannot be right', () => {
    const part = (l4: number): Segment =>
      segmentFrame({
        inner: partialize(small),
        hdr: { context: 0x79n, flags: F_CSUM_PARTIAL | F_IPV4 | F_TCP, l4Offset: l4 },
        packetId: 0x92,
        mss: 1460,
      })[0]!;
    refused(part(20), 'bad_l4_offset', 'l4 offset 20');
    refused(part(0), 'bad_l4_offset', 'l4 offset 0');
    refused(part(250), 'bad_l4_offset', 'l4 offset past the frame');
    const fp = partialize(f);
    const s = segmentFrame({ inner: fp, hdr: { context: 0x77n, flags: 0x0e, l4Offset: 34 }, packetId: 0x90, mss: 1460 });
    const bad = alter(s[0]!, {});
    bad.payload[2] = 20;
    const d = decap(enc([bad, ...s]));
    sameFrames(d.out, [f], 'l4 offset 20 (extra)');
    assert.deepEqual(d.summary.reasons, reasons({ bad_l4_offset: 1 }));
  });

  test('timeout and memory limit', () => {
    const s = good();
    const d = decap(
      s.map((x, i) => ({ data: encodeSegment(x), tsNs: T0 + BigInt(i) * 150_000_000n })),
      ['--timeout-ms', '100'],
    );
    assert.equal(d.out.length, 0, 'segments 150 ms apart with a 100 ms timeout');
    assert.ok(d.summary.reasons.timeout >= 1, JSON.stringify(d.summary.reasons));
    // the same segments 50 ms apart fit a 200 ms timeout
    const d2 = decap(s.map((x, i) => ({ data: encodeSegment(x), tsNs: T0 + BigInt(i) * 50_000_000n })), ['--timeout-ms', '200']);
    sameFrames(d2.out, [f], '50 ms apart, 200 ms timeout');
    // ten frames each missing its last segment, then the last segments: with room for a
    // few frames only, the oldest are evicted
    const many = Array.from({ length: 10 }, (_, k) =>
      segmentFrame({ inner: inner(20000, 70 + k), hdr: { context: BigInt(k) }, packetId: 0x100 + k, mss: 1460 }),
    );
    const seq = [...many.flatMap((m) => m.slice(0, -1)), ...many.map((m) => m[m.length - 1]!)];
    const d3 = decap(enc(seq), ['--mem-max', String(128 * 1024)]);
    assert.ok(d3.summary.reasons.evicted >= 1, JSON.stringify(d3.summary.reasons));
    assert.ok(d3.out.length < 10);
    d3.summary.frames.forEach((fr, i) => {
      const k = Number(BigInt(fr.context));
      sameFrames([d3.out[i]!], [inner(20000, 70 + k)], `survivor ${k}`);
    });
  });
});
