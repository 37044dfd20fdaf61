// GET /v1/packet-ins: the last packets ferryd sent to the controller.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { CONTROLLER_REASON_NAME } from '../flows/ofctl';
import type { PacketInLog } from '../packet-ins';

export interface PacketInRoutesOptions {
  packetIns: PacketInLog;
}

export const packetInRoutes: FastifyPluginAsyncTypebox<PacketInRoutesOptions> = async (app, { packetIns }) => {
  app.get('/v1/packet-ins', async () => ({
    total: packetIns.total,
    items: packetIns.items().map((p) => ({
      seq: p.seq.toString(),
      time_ns: p.timeNs.toString(),
      in_port: p.inPort,
      table: p.table,
      cookie: '0x' + p.cookie.toString(16),
      reason: CONTROLLER_REASON_NAME[p.reason] ?? String(p.reason),
      total_len: p.totalLen,
      data: p.data.toString('hex'),
    })),
  }));
};
