// Tunnel, neighbour and STT option request bodies and the NEIGH_DUMP answer, laid out with the
// generated offsets.
import {
  NEIGH_DUMP_ENTRIES, NEIGH_DUMP_REQ, NEIGH_DUMP_RESP, NEIGH_ENTRY, NeighEntry, STT_OPTIONS_REQ, TUNNEL_CONFIG, TUNNEL_DEL,
  TunnelConfig, readNeighEntry, writeNeighEntry, writeSttOptionsReq, writeTunnelConfig,
} from '../gen/proto';
import type { BodyWriter } from '../messages';
import type { ChannelPart } from '../channel';

const zeroed = (dv: DataView, off: number, size: number): void => {
  new Uint8Array(dv.buffer, dv.byteOffset + off, size).fill(0);
};

export function tunnelSetBody(c: TunnelConfig): BodyWriter {
  return (dv, off) => {
    zeroed(dv, off, TUNNEL_CONFIG.size);
    writeTunnelConfig(dv, off, c);
    return TUNNEL_CONFIG.size;
  };
}

export function tunnelDelBody(port: number): BodyWriter {
  return (dv, off) => {
    zeroed(dv, off, TUNNEL_DEL.size);
    dv.setUint32(off + TUNNEL_DEL.fields.port.offset, port, true);
    return TUNNEL_DEL.size;
  };
}

/** NEIGH_SET (a static entry) or NEIGH_DEL (mac ignored). */
export function neighBody(port: number, ip: readonly number[], mac: readonly number[] = [0, 0, 0, 0, 0, 0], flags = 0): BodyWriter {
  return (dv, off) => {
    zeroed(dv, off, NEIGH_ENTRY.size);
    writeNeighEntry(dv, off, { ip: [...ip], mac: [...mac], port, flags, age_ms: 0 });
    return NEIGH_ENTRY.size;
  };
}

export function neighDumpBody(cursor: number): BodyWriter {
  return (dv, off) => {
    zeroed(dv, off, NEIGH_DUMP_REQ.size);
    dv.setUint32(off + NEIGH_DUMP_REQ.fields.cursor.offset, cursor, true);
    return NEIGH_DUMP_REQ.size;
  };
}

export function sttOptionsBody(o: { reasm_timeout_ms: number; reasm_mem_max: number; neigh_timeout_s: number; neigh_retries: number }): BodyWriter {
  return (dv, off) => {
    writeSttOptionsReq(dv, off, o);
    return STT_OPTIONS_REQ.size;
  };
}

/** What one NEIGH_DUMP answer part carries. */
export interface NeighPage {
  entries: NeighEntry[];
  nextCursor: number;
  done: boolean;
}

const DR = NEIGH_DUMP_RESP.fields;

/** Decodes the neigh_dump_resp after a part's response struct (entries copied out of the ring). */
export function readNeighPart(p: ChannelPart): NeighPage {
  if (p.payloadLen < DR.entries.offset) throw new Error(`NEIGH_DUMP answer part ${p.index} carries ${p.payloadLen} payload bytes, not a neigh_dump_resp`);
  const b = p.payloadOff;
  const n = p.dv.getUint16(b + DR.n_entries.offset, true);
  const fit = Math.floor((p.payloadLen - DR.entries.offset) / NEIGH_ENTRY.size);
  if (n > NEIGH_DUMP_ENTRIES || n > fit) throw new Error(`NEIGH_DUMP answer part ${p.index} says ${n} entries; it has room for ${Math.min(fit, NEIGH_DUMP_ENTRIES)}`);
  const entries: NeighEntry[] = [];
  for (let i = 0; i < n; i++) entries.push(readNeighEntry(p.dv, b + DR.entries.offset + i * NEIGH_ENTRY.size));
  return { entries, nextCursor: p.dv.getUint32(b + DR.next_cursor.offset, true), done: p.dv.getUint16(b + DR.done.offset, true) !== 0 };
}
