// Ferry's STT encapsulation checked by Wireshark: inner IPv4/TCP frames (100, 1514,
// 9000 and 60000 bytes) are encapsulated by `ferry-stt-pcap encap` (ferry_stt_encap in
// software mode) and the segments are dissected by tshark exactly as
// /work/shared/research/stt.md §3 says: the STT heuristic needs
// `-o ip.try_heuristic_first:TRUE`, `-2` fills stt.reassembled_in, fields with -T fields
// (tab-separated here so that tshark's comma between a field's occurrences stays
// readable), and the outer checksum in a separate pass with tcp.check_checksum (the STT
// dissector's own checksum check is broken in 4.0). The same checks run on the
// independent generator's segments (tests/stt/stt-gen.ts), so a disagreement points at
// one side. Then broken copies of Ferry's capture must make tshark complain: the checks
// would catch a broken encapsulator.
//
// The segments are also decoded here without tshark (outer headers, checksums, the
// reassembled STT header and inner frame byte for byte) and decapsulated again with
// `ferry-stt-pcap decap` to close the loop.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { readPcap, writePcap } from './pcap';
import {
  decodeSegment,
  encodeSegment,
  F_CSUM_PARTIAL,
  F_CSUM_VERIFIED,
  F_IPV4,
  F_TCP,
  innerTcp4,
  partialize,
  refreshOuterCsums,
  segmentFrame,
  STT_HDR_LEN,
  STT_PORT,
  withVlan,
} from './stt-gen';

const root = path.resolve(__dirname, '../../..');
const TOOL = process.env.FERRY_STT_PCAP ?? path.join(root, 'dataplane/build/ferry-stt-pcap');
const dir = mkdtempSync(path.join(tmpdir(), 'ferry-stt-tshark-'));
after(() => (process.env.FERRY_KEEP_PCAPS ? console.log(`pcaps kept in ${dir}`) : rmSync(dir, { recursive: true, force: true })));

const TSHARK = spawnSync('tshark', ['--version'], { encoding: 'utf8' }).status === 0;
const NO_TSHARK = 'tshark is not installed (scripts/install-deps.sh installs it)';
const HEUR = ['-n', '-o', 'ip.try_heuristic_first:TRUE', '-o', 'ipv6.try_heuristic_first:TRUE'];
const FIELDS = [
  'frame.number', 'stt.stream_id', 'stt.dport', 'stt.pkt_len', 'stt.seg_off', 'stt.pkt_id', 'stt.tcp.flags',
  'stt.tcp.window', 'stt.version', 'stt.flags', 'stt.l4offset', 'stt.mss', 'stt.vlan.v', 'stt.vlan.pcp', 'stt.vlan.id',
  'stt.context_id', 'stt.padding', 'stt.segment.count', 'stt.reassembled_in', '_ws.expert.message',
  'stt.tcp.data_offset', 'ip.src', 'ip.dst', 'tcp.srcport', 'tcp.dstport',
];
const STT_EXPERTS =
  'stt.version_unknown.expert || stt.data_offset_bad.expert || stt.l4offset_bad.expert || stt.mss_bad.expert || stt.checksum_bad.expert';

type Row = Record<string, string>;

function tshark(args: string[]): string {
  const r = spawnSync('tshark', args, { encoding: 'utf8', timeout: 120000, maxBuffer: 64 << 20 });
  assert.equal(r.status, 0, `tshark ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** stt.md §3's recipe, one object a packet */
function sttRows(file: string): Row[] {
  const out = tshark([...HEUR, '-2', '-r', file, '-Y', 'stt', '-T', 'fields', '-E', 'header=y', '-E', 'separator=/t',
    ...FIELDS.flatMap((f) => ['-e', f])]);
  const [head = '', ...lines] = out.split('\n').filter((l) => l !== '');
  const names = head.split('\t');
  assert.deepEqual(names, FIELDS);
  return lines.map((l) => {
    const v = l.split('\t');
    return Object.fromEntries(names.map((n, i) => [n, v[i] ?? '']));
  });
}

/** the separate outer checksum pass: one status a packet (1 good, 0 bad) */
function csumStatus(file: string): string[] {
  return tshark(['-n', '-r', file, '-o', 'tcp.check_checksum:TRUE', '-Y', `tcp.dstport==${STT_PORT}`, '-T', 'fields',
    '-e', 'tcp.checksum.status']).split('\n').filter((l) => l !== '');
}

/** frame numbers that carry an STT expert item */
function sttExperts(file: string): number[] {
  return tshark([...HEUR, '-2', '-r', file, '-Y', STT_EXPERTS, '-T', 'fields', '-e', 'frame.number'])
    .split('\n').filter((l) => l !== '').map(Number);
}

const hex = (v: number | bigint, digits: number): string => `0x${v.toString(16).padStart(digits, '0')}`;

// ---------------------------------------------------------------- the frames and what to expect

const OUTER = { srcMac: '02:00:00:00:00:01', dstMac: '02:00:00:00:00:02', src: '192.0.2.1', dst: '192.0.2.2' };
const CONTEXT = 0x0123456789abcdefn;
const SIZES = [100, 1514, 9000, 60000];
/** the four sizes, then a second 100-byte frame of the first frame's flow (same entropy port) */
const FRAMES = [...SIZES, 100].map((size, i) =>
  innerTcp4({ size, seed: i + 1, src: `10.1.0.${i === 4 ? 1 : i + 1}`, dst: '10.2.0.9', sport: i === 4 ? 40000 : 40000 + i,
    dport: 5201, seq: i === 4 ? 1000 + SIZES[0]! - 54 : 1000 * (i + 1) }), // frame 4 follows frame 0 in its flow
);

interface Expect {
  frames: Buffer[];
  /** the inner bytes carried (the frames, or their partial-checksum form) */
  carried: Buffer[];
  mss: number;
  firstId: number;
  flags: number;
  l4offset: number;
  outer: typeof OUTER;
  srcPort?: number;
  /** the TCI of a VLAN tag handed over with the frame (mbuf vlan_tci + TX_VLAN) */
  vlan?: number;
}

const nSegs = (innerLen: number, mss: number): number => Math.ceil((STT_HDR_LEN + innerLen) / mss);

/** the segments of each frame, by position in the capture */
function layout(e: Expect): { frame: number; seg: number; n: number }[] {
  return e.frames.flatMap((f, i) => {
    const n = nSegs(f.length, e.mss);
    return Array.from({ length: n }, (_, seg) => ({ frame: i, seg, n }));
  });
}

/** the segments read byte by byte, without tshark */
function checkRaw(pkts: Buffer[], e: Expect, tsoFlags: 'psh-last' | 'any-ack'): void {
  const lay = layout(e);
  assert.equal(pkts.length, lay.length, 'segment count');
  let frameBytes: Buffer[] = [];
  const ports: number[] = [];
  pkts.forEach((p, k) => {
    const { frame: i, seg: j, n } = lay[k]!;
    const at = `frame ${i} (${e.frames[i]!.length} B) segment ${j}/${n}`;
    const s = decodeSegment(p);
    const frameLen = STT_HDR_LEN + e.frames[i]!.length;
    assert.equal(s.dstMac, e.outer.dstMac, at);
    assert.equal(s.srcMac, e.outer.srcMac, at);
    assert.equal(s.src, e.outer.src, at);
    assert.equal(s.dst, e.outer.dst, at);
    assert.ok(s.df, `${at}: DF`);
    assert.ok(s.ttl > 0, `${at}: TTL`);
    assert.equal(s.ihl, 20, `${at}: IHL`);
    assert.equal(s.ipTotalLen, p.length - 14, `${at}: IP total length`);
    assert.ok(s.ipCsumOk, `${at}: IP header checksum`);
    assert.ok(s.tcpCsumOk, `${at}: TCP checksum`);
    assert.equal(s.dport, STT_PORT, `${at}: dport`);
    assert.equal(s.frameLen, frameLen, `${at}: seq[31:16] = frame length`);
    assert.equal(s.offset, j * e.mss, `${at}: seq[15:0] = offset`);
    assert.equal(s.payload.length, Math.min(e.mss, frameLen - j * e.mss), `${at}: payload length`);
    assert.equal(s.packetId, (e.firstId + i) >>> 0, `${at}: ack = packet id`);
    assert.equal(s.doff, 5, `${at}: data offset`);
    assert.equal(s.window, 65535, `${at}: window`);
    assert.equal(s.urg, 0, `${at}: urgent pointer`);
    if (j === n - 1 || tsoFlags === 'psh-last') assert.equal(s.tcpFlags, j === n - 1 ? 0x18 : 0x10, `${at}: flags`);
    else assert.ok(s.tcpFlags === 0x10 || s.tcpFlags === 0x18, `${at}: flags 0x${s.tcpFlags.toString(16)}`);
    if (j === 0) {
      frameBytes = [];
      ports[i] = s.sport;
    } else {
      assert.equal(s.sport, ports[i], `${at}: one source port per frame`);
      assert.equal(s.ipId, (decodeSegment(pkts[k - 1]!).ipId + 1) & 0xffff, `${at}: IP ID + 1`);
    }
    if (e.srcPort !== undefined) assert.equal(s.sport, e.srcPort, `${at}: source port`);
    frameBytes.push(s.payload);
    if (j === n - 1) {
      const f = Buffer.concat(frameBytes);
      assert.equal(f[0], 0, `frame ${i}: version`);
      assert.equal(f[1], e.flags, `frame ${i}: STT flags`);
      assert.equal(f[2], e.l4offset, `frame ${i}: L4 offset`);
      assert.equal(f[3], 0, `frame ${i}: reserved`);
      assert.equal(f.readUInt16BE(4), 0, `frame ${i}: MSS`);
      assert.equal(f.readUInt16BE(6), e.vlan === undefined ? 0 : e.vlan | 0x1000, `frame ${i}: VLAN TCI with the V bit`);
      assert.equal(f.readBigUInt64BE(8), CONTEXT, `frame ${i}: context`);
      assert.equal(f.readUInt16BE(16), 0, `frame ${i}: padding`);
      assert.ok(f.subarray(STT_HDR_LEN).equals(e.carried[i]!), `frame ${i}: inner frame byte for byte`);
    }
  });
  // the entropy port follows the inner flow
  if (e.srcPort === undefined && e.frames.length === 5) assert.equal(ports[4], ports[0], 'same flow, same source port');
}

/** tshark's view: stt.md §3's fields for every segment, the reassembled frame, the checksum pass */
function checkTshark(file: string, e: Expect): void {
  const rows = sttRows(file);
  const lay = layout(e);
  assert.equal(rows.length, lay.length, 'every segment is dissected as STT');
  const ids = new Set<string>();
  rows.forEach((r, k) => {
    const { frame: i, seg: j, n } = lay[k]!;
    const at = `frame ${i} (${e.frames[i]!.length} B) segment ${j}/${n}, packet ${r['frame.number']}`;
    const f = e.frames[i]!;
    assert.equal(r['frame.number'], String(k + 1), at);
    assert.equal(r['stt.dport'], String(STT_PORT), at);
    assert.equal(r['stt.pkt_len'], String(STT_HDR_LEN + f.length), `${at}: stt.pkt_len`);
    assert.equal(r['stt.seg_off'], String(j * e.mss), `${at}: stt.seg_off`);
    assert.equal(r['stt.pkt_id'], hex((e.firstId + i) >>> 0, 8), `${at}: stt.pkt_id (wrapping)`);
    if (j === 0) ids.add(r['stt.pkt_id']!);
    assert.equal(r['stt.tcp.window'], '65535', `${at}: stt.tcp.window`);
    assert.equal(r['stt.tcp.data_offset'], '20', `${at}: stt.tcp.data_offset`);
    if (j === n - 1) assert.equal(r['stt.tcp.flags'], '0x0018', `${at}: stt.tcp.flags`);
    else assert.ok(['0x0010', '0x0018'].includes(r['stt.tcp.flags']!), `${at}: stt.tcp.flags ${r['stt.tcp.flags']}`);
    if (e.srcPort !== undefined) assert.equal(r['stt.stream_id'], hex(e.srcPort, 4), `${at}: stt.stream_id`);
    assert.equal(r['_ws.expert.message'], '', `${at}: expert info`);
    const done = String(k - j + n); // the frame number of the frame's last segment
    if (j < n - 1) {
      assert.equal(r['stt.reassembled_in'], done, `${at}: stt.reassembled_in`);
      assert.equal(r['stt.version'], '', `${at}: STT header only on the completing packet`);
      return;
    }
    assert.equal(r['stt.version'], '0', `${at}: stt.version`);
    assert.equal(r['stt.flags'], hex(e.flags, 2), `${at}: stt.flags`);
    assert.equal(r['stt.l4offset'], String(e.l4offset), `${at}: stt.l4offset`);
    assert.equal(r['stt.mss'], '0', `${at}: stt.mss`);
    assert.equal(r['stt.vlan.v'], e.vlan === undefined ? '0' : '1', `${at}: stt.vlan.v`);
    assert.equal(r['stt.vlan.pcp'], String((e.vlan ?? 0) >> 13), `${at}: stt.vlan.pcp`);
    assert.equal(r['stt.vlan.id'], String((e.vlan ?? 0) & 0xfff), `${at}: stt.vlan.id`);
    assert.equal(r['stt.context_id'], hex(CONTEXT, 16), `${at}: stt.context_id`);
    assert.equal(r['stt.padding'], '0x0000', `${at}: stt.padding`);
    assert.equal(r['stt.segment.count'], n > 1 ? String(n) : '', `${at}: stt.segment.count`);
    // outer then inner occurrences
    const inner = (o: number): string => [...f.subarray(o, o + 4)].join('.');
    assert.equal(r['ip.src'], `${e.outer.src},${inner(26)}`, `${at}: ip.src`);
    assert.equal(r['ip.dst'], `${e.outer.dst},${inner(30)}`, `${at}: ip.dst`);
    assert.equal(r['tcp.srcport'], String(f.readUInt16BE(34)), `${at}: inner tcp.srcport`);
    assert.equal(r['tcp.dstport'], String(f.readUInt16BE(36)), `${at}: inner tcp.dstport`);
  });
  assert.equal(ids.size, e.frames.length, 'one packet id per frame, distinct across frames');
  const st = csumStatus(file);
  assert.equal(st.length, lay.length);
  assert.deepEqual(st, st.map(() => '1'), 'tcp.checksum.status of every outer segment');
  assert.deepEqual(sttExperts(file), [], 'no STT expert item');
}

let files = 0;
interface Encap {
  file: string;
  pkts: Buffer[];
}

function run(args: string[]): { status: number | null; stdout: string; stderr: string } {
  assert.ok(existsSync(TOOL), `${TOOL} is missing: ninja -C dataplane/build ferry-stt-pcap`);
  const r = spawnSync(TOOL, args, { encoding: 'utf8', timeout: 60000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function encap(frames: Buffer[], args: string[]): Encap {
  const n = ++files;
  const inFile = path.join(dir, `inner${n}.pcap`);
  const file = path.join(dir, `encap${n}.pcap`);
  writePcap(inFile, frames);
  const r = run(['encap', inFile, file, ...args]);
  assert.equal(r.status, 0, `encap ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return { file, pkts: readPcap(file).map((p) => p.data) };
}

const base = [
  '--context', hex(CONTEXT, 16), '--packet-id', '100', '--src-ip', OUTER.src, '--dst-ip', OUTER.dst,
  '--src-mac', OUTER.srcMac, '--dst-mac', OUTER.dstMac,
];

const RUNS: { name: string; args: string[]; e: Expect }[] = [
  {
    name: 'plain (flags 0x00), default mss 1460, entropy port from the inner flow',
    args: base,
    e: { frames: FRAMES, carried: FRAMES, mss: 1460, firstId: 100, flags: 0, l4offset: 0, outer: OUTER },
  },
  {
    name: '--verified (flags 0x01), --src-port 50000, --mss 8960',
    args: [...base, '--verified', '--src-port', '50000', '--mss', '8960', '--packet-id', '0xfffffffe'],
    e: { frames: FRAMES, carried: FRAMES, mss: 8960, firstId: 0xfffffffe, flags: F_CSUM_VERIFIED, l4offset: 0, outer: OUTER,
      srcPort: 50000 },
  },
  {
    name: '--partial (flags 0x0e, l4 offset 34), --mss 1400',
    args: [...base, '--partial', '--mss', '1400'],
    e: { frames: FRAMES, carried: FRAMES.map(partialize), mss: 1400, firstId: 100, flags: F_CSUM_PARTIAL | F_IPV4 | F_TCP,
      l4offset: 34, outer: OUTER },
  },
  {
    name: '--vlan 0xa064 (PCP 5, VID 100): the STT VLAN field with the V bit',
    args: [...base, '--vlan', '0xa064'],
    e: { frames: FRAMES, carried: FRAMES, mss: 1460, firstId: 100, flags: 0, l4offset: 0, outer: OUTER, vlan: 0xa064 },
  },
];

describe('ferry-stt-pcap encap, read back and dissected by tshark', () => {
  for (const { name, args, e } of RUNS) {
    test(name, (t) => {
      const out = encap(e.frames, args);
      checkRaw(out.pkts, e, 'any-ack');
      if (!TSHARK) return t.skip(NO_TSHARK);
      checkTshark(out.file, e);
    });
  }

  test('the independent generator passes the same checks (the reference)', (t) => {
    const e = RUNS[2]!.e;
    const pkts = e.frames.flatMap((f, i) =>
      segmentFrame({
        inner: e.carried[i]!,
        hdr: { context: CONTEXT, flags: e.flags, l4Offset: e.l4offset },
        packetId: e.firstId + i,
        mss: e.mss,
        outer: { ...OUTER, sport: 0xc350 },
      }).map(encodeSegment),
    );
    const file = path.join(dir, 'generator.pcap');
    writePcap(file, pkts);
    checkRaw(pkts, e, 'psh-last');
    if (!TSHARK) return t.skip(NO_TSHARK);
    checkTshark(file, e);
  });

  test('encap then decap gives the frames back', () => {
    for (const { name, e, args } of RUNS) {
      const out = encap(e.frames, args);
      const back = path.join(dir, `back${++files}.pcap`);
      const r = run(['decap', out.file, back]);
      assert.equal(r.status, 0, `${name}: decap: ${r.stderr}`);
      const s = JSON.parse(r.stdout) as { segments_in: number; frames_out: number; skipped: number;
        reasons: Record<string, number>; frames: { context: string; src: string; dst: string; flags: string; len: number }[] };
      assert.equal(s.segments_in, out.pkts.length, name);
      assert.equal(s.frames_out, e.frames.length, name);
      assert.equal(s.skipped, 0, name);
      assert.ok(Object.values(s.reasons).every((v) => v === 0), `${name}: ${JSON.stringify(s.reasons)}`);
      // a VLAN tag handed over beside the frame comes back inside it
      const want = e.frames.map((f) => (e.vlan === undefined ? f : withVlan(f, e.vlan)));
      assert.deepEqual(s.frames, want.map((f) => ({ context: hex(CONTEXT, 16), src: OUTER.src, dst: OUTER.dst,
        flags: hex(e.flags, 2), len: f.length })), name);
      const got = readPcap(back).map((p) => p.data);
      assert.equal(got.length, want.length, name);
      got.forEach((g, i) => assert.ok(g.equals(want[i]!), `${name}: frame ${i} (${want[i]!.length} B) byte for byte`));
    }
  });
});

describe('ferry-stt-pcap encap at the size limit', () => {
  test('a 65517-byte frame (STT frame 65535) is encapsulated; one byte more is refused', () => {
    const big = innerTcp4({ size: 65517, seed: 9, sport: 40009, dport: 5201 });
    const e: Expect = { frames: [big], carried: [big], mss: 1460, firstId: 7, flags: 0, l4offset: 0, outer: OUTER };
    const out = encap([big], [...base, '--packet-id', '7']);
    checkRaw(out.pkts, e, 'any-ack');
    const n = ++files;
    const inFile = path.join(dir, `toobig${n}.pcap`);
    writePcap(inFile, [innerTcp4({ size: 65518, seed: 10 }), big]);
    const r = run(['encap', inFile, path.join(dir, `toobig-out${n}.pcap`), ...base, '--packet-id', '7']);
    assert.equal(r.status, 1, 'a refused frame makes the run fail');
    assert.match(r.stderr, /packet 1 \(65518 bytes\): not encapsulated: too_big/);
    const rest = readPcap(path.join(dir, `toobig-out${n}.pcap`)).map((p) => p.data);
    // the refused frame used packet id 7; the next frame gets 8
    checkRaw(rest, { ...e, firstId: 8 }, 'any-ack');
  });
});

describe('tshark catches a broken encapsulation', () => {
  // Ferry's plain capture: frame 0 is one segment (packet 1), frame 1 two (packets 2, 3),
  // frame 2 seven (packets 4..10)
  let pkts: Buffer[] = [];
  const mutated = (name: string, change: (q: Buffer[]) => void): string => {
    if (pkts.length === 0) pkts = encap(RUNS[0]!.e.frames, RUNS[0]!.args).pkts;
    const q = pkts.map((b) => Buffer.from(b));
    change(q);
    const file = path.join(dir, `broken-${name}.pcap`);
    writePcap(file, q);
    return file;
  };
  const experts = (file: string): string[] => sttRows(file).map((r) => r['_ws.expert.message'] ?? '');

  test('wrong version byte: "Unknown version"', (t) => {
    if (!TSHARK) return t.skip(NO_TSHARK);
    const file = mutated('version', (q) => {
      q[1]![54] = 1; // the STT header's first byte in frame 1's first segment
      q[1] = refreshOuterCsums(q[1]!);
    });
    const ex = experts(file);
    assert.match(ex[2]!, /Unknown version 1/, 'on the completing packet of frame 1');
    assert.deepEqual(sttExperts(file), [3]);
  });

  test('a flipped payload byte: tcp.checksum.status 0 for that segment only', (t) => {
    if (!TSHARK) return t.skip(NO_TSHARK);
    const file = mutated('payload', (q) => {
      const p = q[5]!;
      p[p.length - 7] = p[p.length - 7]! ^ 0x20;
    });
    const st = csumStatus(file);
    assert.deepEqual(st, st.map((_, i) => (i === 5 ? '0' : '1')));
  });

  test('data offset 6: "TCP Data Offset should be 20 bytes"', (t) => {
    if (!TSHARK) return t.skip(NO_TSHARK);
    const file = mutated('doff', (q) => {
      q[4]![46] = 0x60;
      q[4] = refreshOuterCsums(q[4]!);
    });
    assert.match(experts(file)[4]!, /TCP Data Offset should be 20 bytes/);
    assert.deepEqual(sttExperts(file), [5]);
  });

  test('an L4 offset without CSUM_PARTIAL: the l4offset expert', (t) => {
    if (!TSHARK) return t.skip(NO_TSHARK);
    const file = mutated('l4offset', (q) => {
      q[0]![56] = 34;
      q[0] = refreshOuterCsums(q[0]!);
    });
    assert.match(experts(file)[0]!, /Incorrect offset, should be equal to zero/);
    assert.deepEqual(sttExperts(file), [1]);
  });
});

describe('ferry-stt-pcap usage', () => {
  const bad: [string[], RegExp][] = [
    [[], /usage/],
    [['frobnicate'], /'frobnicate' is not a command/],
    [['encap'], /expected IN.pcap OUT.pcap/],
    [['encap', 'IN', 'OUT', '--mss', '0'], /--mss: '0'/],
    [['encap', 'IN', 'OUT', '--mss', 'x'], /--mss: 'x'/],
    [['encap', 'IN', 'OUT', '--context', '0x1ffffffffffffffff'], /--context/],
    [['encap', 'IN', 'OUT', '--src-ip', '300.1.1.1'], /--src-ip: '300.1.1.1'/],
    [['encap', 'IN', 'OUT', '--dst-mac', '02:00'], /--dst-mac: '02:00'/],
    [['encap', 'IN', 'OUT', '--src-port', '70000'], /--src-port: '70000'/],
    [['encap', 'IN', 'OUT', '--packet-id', '-1'], /--packet-id: '-1'/],
    [['encap', 'IN', 'OUT', '--bogus'], /bogus/],
    [['encap', 'IN', 'OUT', '--vlan', '0x10000'], /--vlan: '0x10000'/],
    [['decap', 'IN', 'OUT', '--timeout-ms', 'soon'], /--timeout-ms: 'soon'/],
    [['decap', 'IN', 'OUT', '--mem-max', '5000000000'], /--mem-max: '5000000000'/],
    [['decap', 'IN'], /expected IN.pcap OUT.pcap/],
  ];
  test('bad arguments exit 2 naming the argument', () => {
    for (const [args, msg] of bad) {
      const r = run(args);
      assert.equal(r.status, 2, `${args.join(' ')}: exit ${r.status}`);
      assert.match(r.stderr, msg, args.join(' '));
    }
  });
  test('a missing input file exits 1', () => {
    const r = run(['decap', path.join(dir, 'nope.pcap'), path.join(dir, 'x.pcap')]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /nope\.pcap/);
  });
});
