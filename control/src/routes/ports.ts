// REST resource /v1/ports: what ferryd's ports are and their counters.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { FerrydDownError } from '../errors';
import type { FerrydConnection } from '../ferryd';
import type { PortSnapshot } from '../shm/segment';

export interface PortRoutesOptions {
  ferryd: FerrydConnection;
}

export function portView(p: PortSnapshot) {
  return {
    port_id: p.port_id,
    name: p.name,
    driver: p.driver,
    mac: p.mac,
    link: p.link,
    mtu: p.mtu,
    rx_queues: p.rx_queues,
    tx_queues: p.tx_queues,
    rss: p.rss,
    promiscuous: p.promiscuous,
    stats: {
      rx_packets: p.sw.rx_packets.toString(),
      rx_bytes: p.sw.rx_bytes.toString(),
      tx_packets: p.sw.tx_packets.toString(),
      tx_bytes: p.sw.tx_bytes.toString(),
      rx_dropped: p.sw.rx_dropped.toString(),
      tx_dropped: p.sw.tx_dropped.toString(),
      hw: {
        ipackets: p.hw.ipackets.toString(),
        opackets: p.hw.opackets.toString(),
        ibytes: p.hw.ibytes.toString(),
        obytes: p.hw.obytes.toString(),
        imissed: p.hw.imissed.toString(),
        ierrors: p.hw.ierrors.toString(),
        oerrors: p.hw.oerrors.toString(),
        rx_nombuf: p.hw.rx_nombuf.toString(),
      },
    },
  };
}

export const portRoutes: FastifyPluginAsyncTypebox<PortRoutesOptions> = async (app, { ferryd }) => {
  app.get('/v1/ports', async () => {
    const seg = ferryd.segment;
    if (!seg) {
      const h = ferryd.health();
      throw new FerrydDownError(`ferryd is not running: ${h.ok ? 'not attached' : h.reason}`);
    }
    return { items: seg.snapshot().ports.map(portView) };
  });
};
