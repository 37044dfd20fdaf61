// The fake ferryd's tunnels and neighbour table: TUNNEL_SET / TUNNEL_DEL validated as ferryd does
// (ENOPORT "port: ..." / "underlay_port: ...", EINVAL "field: why"), NEIGH_SET / NEIGH_DEL /
// NEIGH_DUMP (paged with cursors, neigh_dump_resp after the response struct), STT_SET_OPTIONS.
import {
  MAX_PORTS, MsgType, NEIGH_DUMP_ENTRIES, NEIGH_DUMP_RESP, NEIGH_ENTRY, NeighEntry, NeighFlag, Status, TUNNEL_CONFIG, TunnelConfig,
  TunnelFlag, readNeighDumpReq, readNeighEntry, readSttOptionsReq, readTunnelConfig, writeNeighEntry,
} from '../src/gen/proto';
import type { FakeFerryd, ReceivedRequest } from './fake-ferryd';

export const STT_DEFAULTS = { reasm_timeout_ms: 100, reasm_mem_max: 4194304, neigh_timeout_s: 300, neigh_retries: 3 };

const key = (port: number, ip: readonly number[]): string => `${port}/${ip.join('.')}`;

export class FakeTunnels {
  /** by OpenFlow port */
  readonly tunnels = new Map<number, TunnelConfig>();
  /** by "port/ip" */
  readonly neighbours = new Map<string, NeighEntry>();
  options = { ...STT_DEFAULTS };
  /** NEIGH_DUMP entries per answer (at most NEIGH_DUMP_ENTRIES). */
  pageEntries = NEIGH_DUMP_ENTRIES;
  /** neighbour table capacity (ENOSPC past it) */
  capacity = 1024;
  readonly served = { dumps: 0 };

  constructor(private readonly fd: FakeFerryd) {}

  /** A new ferryd: no tunnels, no neighbours, default options. */
  reset(): void {
    this.tunnels.clear();
    this.neighbours.clear();
    this.options = { ...STT_DEFAULTS };
  }

  private get nPorts(): number {
    return this.fd.opts.ports.length;
  }

  /** A learned (or incomplete, failed) entry, as ARP would leave it. */
  learn(port: number, ip: string, mac: string, flags: number = NeighFlag.REACHABLE, ageMs = 0): void {
    const e: NeighEntry = { ip: ip.split('.').map(Number), mac: mac.split(':').map((x) => parseInt(x, 16)), port, flags, age_ms: ageMs };
    this.neighbours.set(key(port, e.ip), e);
  }

  private dv(r: ReceivedRequest, size: number): DataView | null {
    if (!r.body || r.len < size) return null;
    return new DataView(r.body.buffer, r.body.byteOffset, r.body.byteLength);
  }

  /** ferryd's checks of a tunnel_config (null: fine). */
  private checkTunnel(c: TunnelConfig): { status: number; message: string } | null {
    const zero = (b: number[]): boolean => b.every((x) => x === 0);
    if (c.port < this.nPorts || c.port >= MAX_PORTS) return { status: Status.ENOPORT, message: `port: ${c.port} is not a tunnel port (${this.nPorts}..${MAX_PORTS - 1})` };
    if (c.underlay_port >= this.nPorts) return { status: Status.ENOPORT, message: `underlay_port: ${c.underlay_port} is not an ethdev` };
    if (c.flags & ~(TunnelFlag.REMOTE_FLOW | TunnelFlag.KEY_FLOW)) return { status: Status.EINVAL, message: `flags: unknown bits 0x${c.flags.toString(16)}` };
    if (zero(c.local_ip)) return { status: Status.EINVAL, message: 'local_ip: must not be 0.0.0.0' };
    if (zero(c.remote_ip) && !(c.flags & TunnelFlag.REMOTE_FLOW)) return { status: Status.EINVAL, message: 'remote_ip: 0.0.0.0 without REMOTE_FLOW' };
    if (c.underlay_mtu < 576 || c.underlay_mtu > 9216) return { status: Status.EINVAL, message: `underlay_mtu: ${c.underlay_mtu} is not in 576..9216` };
    if (c.local_plen > 32) return { status: Status.EINVAL, message: `local_plen: ${c.local_plen} > 32` };
    if (c.dst_port === 0) return { status: Status.EINVAL, message: 'dst_port: must not be 0' };
    if (c.ttl === 0) return { status: Status.EINVAL, message: 'ttl: must not be 0' };
    return null;
  }

  /** Answers a tunnel, neighbour or STT request; false for any other type. */
  answer(r: ReceivedRequest): boolean {
    const reply = (status: number, message = ''): true => {
      this.fd.respond(r.reqId, status, 0, message);
      return true;
    };
    switch (r.type) {
      case MsgType.TUNNEL_SET: {
        const dv = this.dv(r, TUNNEL_CONFIG.size);
        if (!dv) return reply(Status.EINVAL, 'short TUNNEL_SET');
        const c = readTunnelConfig(dv, 0);
        const bad = this.checkTunnel(c);
        if (bad) return reply(bad.status, bad.message);
        this.tunnels.set(c.port, c);
        return reply(Status.OK);
      }
      case MsgType.TUNNEL_DEL: {
        const dv = this.dv(r, 8);
        if (!dv) return reply(Status.EINVAL, 'short TUNNEL_DEL');
        const port = dv.getUint32(0, true);
        return this.tunnels.delete(port) ? reply(Status.OK) : reply(Status.ENOENT, `port: no tunnel on port ${port}`);
      }
      case MsgType.NEIGH_SET:
      case MsgType.NEIGH_DEL: {
        const dv = this.dv(r, NEIGH_ENTRY.size);
        if (!dv) return reply(Status.EINVAL, 'short NEIGH_*');
        const e = readNeighEntry(dv, 0);
        const k = key(e.port, e.ip);
        if (r.type === MsgType.NEIGH_DEL) return this.neighbours.delete(k) ? reply(Status.OK) : reply(Status.ENOENT, 'ip: no such neighbour');
        if (e.port >= this.nPorts) return reply(Status.ENOPORT, `port: ${e.port} is not an ethdev`);
        if (e.ip.every((x) => x === 0)) return reply(Status.EINVAL, 'ip: must not be 0.0.0.0');
        if (e.mac.every((x) => x === 0) || (e.mac[0]! & 1)) return reply(Status.EINVAL, 'mac: must be unicast');
        if (!this.neighbours.has(k) && this.neighbours.size >= this.capacity) return reply(Status.ENOSPC, 'the neighbour table is full');
        this.neighbours.set(k, { ...e, flags: NeighFlag.STATIC | NeighFlag.REACHABLE, age_ms: 0 });
        return reply(Status.OK);
      }
      case MsgType.NEIGH_DUMP: {
        const dv = this.dv(r, 8);
        if (!dv) return reply(Status.EINVAL, 'short NEIGH_DUMP');
        this.dump(r.reqId, readNeighDumpReq(dv, 0).cursor);
        return true;
      }
      case MsgType.STT_SET_OPTIONS: {
        const dv = this.dv(r, 16);
        if (!dv) return reply(Status.EINVAL, 'short STT_SET_OPTIONS');
        const o = readSttOptionsReq(dv, 0);
        if (o.reasm_timeout_ms > 60000) return reply(Status.EINVAL, 'reasm_timeout_ms: at most 60000');
        if (o.reasm_mem_max && (o.reasm_mem_max < 65536 || o.reasm_mem_max > 1073741824)) return reply(Status.EINVAL, 'reasm_mem_max: 65536..1073741824');
        if (o.neigh_timeout_s > 86400) return reply(Status.EINVAL, 'neigh_timeout_s: at most 86400');
        if (o.neigh_retries > 10) return reply(Status.EINVAL, 'neigh_retries: 1..10');
        for (const k of Object.keys(STT_DEFAULTS) as (keyof typeof STT_DEFAULTS)[]) if (o[k]) this.options[k] = o[k];
        return reply(Status.OK);
      }
      default:
        return false;
    }
  }

  /** Entries from cursor (an index in the table's order) on, pageEntries of them, next_cursor after them. */
  private dump(reqId: bigint, cursor: number): void {
    this.served.dumps++;
    const all = [...this.neighbours.values()];
    const per = Math.min(this.pageEntries, NEIGH_DUMP_ENTRIES);
    const page = all.slice(cursor, cursor + per);
    const next = cursor + page.length;
    const done = next >= all.length;
    this.fd.respondPart(reqId, {
      status: Status.OK, payloadLen: NEIGH_DUMP_RESP.size,
      payload: (dv, off) => {
        const D = NEIGH_DUMP_RESP.fields;
        dv.setUint32(off + D.next_cursor.offset, done ? 0 : next, true);
        dv.setUint16(off + D.n_entries.offset, page.length, true);
        dv.setUint16(off + D.done.offset, done ? 1 : 0, true);
        page.forEach((e, i) => writeNeighEntry(dv, off + D.entries.offset + i * NEIGH_ENTRY.size, e));
      },
    });
  }
}
