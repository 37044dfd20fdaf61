// Classic pcap files (not pcapng), Ethernet link type, for the STT tests: a writer
// (microsecond timestamps, little-endian) and a reader of both the microsecond
// (0xa1b2c3d4) and nanosecond (0xa1b23c4d) variants in either byte order.
import { readFileSync, writeFileSync } from 'node:fs';

export const LINKTYPE_ETHERNET = 1;

export interface PcapPacket {
  data: Buffer;
  /** capture time in nanoseconds since the epoch */
  tsNs: bigint;
  /** the length on the wire (data.length unless the capture truncated it) */
  origLen: number;
}

const MAGIC_US = 0xa1b2c3d4;
const MAGIC_NS = 0xa1b23c4d;

/** A pcap image of packets (Buffers, or packets with times); untimed packets are 1 ms apart from t0. */
export function pcapImage(pkts: (Buffer | { data: Buffer; tsNs?: bigint })[], snaplen = 262144): Buffer {
  const parts: Buffer[] = [];
  const gh = Buffer.alloc(24);
  gh.writeUInt32LE(MAGIC_US, 0);
  gh.writeUInt16LE(2, 4);
  gh.writeUInt16LE(4, 6);
  gh.writeInt32LE(0, 8);
  gh.writeUInt32LE(0, 12);
  gh.writeUInt32LE(snaplen, 16);
  gh.writeUInt32LE(LINKTYPE_ETHERNET, 20);
  parts.push(gh);
  const t0 = 1_700_000_000_000_000_000n;
  pkts.forEach((p, i) => {
    const data = Buffer.isBuffer(p) ? p : p.data;
    const ts = (Buffer.isBuffer(p) ? undefined : p.tsNs) ?? t0 + BigInt(i) * 1_000_000n;
    const us = ts / 1000n;
    const rh = Buffer.alloc(16);
    rh.writeUInt32LE(Number(us / 1_000_000n), 0);
    rh.writeUInt32LE(Number(us % 1_000_000n), 4);
    rh.writeUInt32LE(data.length, 8);
    rh.writeUInt32LE(data.length, 12);
    parts.push(rh, data);
  });
  return Buffer.concat(parts);
}

export function writePcap(file: string, pkts: (Buffer | { data: Buffer; tsNs?: bigint })[]): void {
  writeFileSync(file, pcapImage(pkts));
}

export function parsePcap(img: Buffer): { linktype: number; packets: PcapPacket[] } {
  if (img.length < 24) throw new Error('pcap: shorter than its global header');
  let le: boolean;
  let nano: boolean;
  const m = img.readUInt32LE(0);
  if (m === MAGIC_US || m === MAGIC_NS) {
    le = true;
    nano = m === MAGIC_NS;
  } else {
    const b = img.readUInt32BE(0);
    if (b !== MAGIC_US && b !== MAGIC_NS) throw new Error(`pcap: bad magic 0x${m.toString(16)}`);
    le = false;
    nano = b === MAGIC_NS;
  }
  const u32 = (o: number): number => (le ? img.readUInt32LE(o) : img.readUInt32BE(o));
  const linktype = u32(20) & 0xffff;
  const packets: PcapPacket[] = [];
  let off = 24;
  while (off < img.length) {
    if (off + 16 > img.length) throw new Error(`pcap: truncated record header at ${off}`);
    const sec = BigInt(u32(off));
    const frac = BigInt(u32(off + 4));
    const incl = u32(off + 8);
    const orig = u32(off + 12);
    off += 16;
    if (off + incl > img.length) throw new Error(`pcap: truncated record at ${off}`);
    packets.push({
      data: Buffer.from(img.subarray(off, off + incl)),
      tsNs: sec * 1_000_000_000n + (nano ? frac : frac * 1000n),
      origLen: orig,
    });
    off += incl;
  }
  return { linktype, packets };
}

export function readPcap(file: string): PcapPacket[] {
  const { linktype, packets } = parsePcap(readFileSync(file));
  if (linktype !== LINKTYPE_ETHERNET) throw new Error(`${file}: link type ${linktype}, not Ethernet`);
  return packets;
}
