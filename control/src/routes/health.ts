// GET /health: is ferryd there, alive, heartbeating and in the desired state?
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FerrydConnection } from '../ferryd';
import { hex64 } from '../shm/segment';

export interface HealthRoutesOptions {
  ferryd: FerrydConnection;
}

export const healthRoutes: FastifyPluginAsyncTypebox<HealthRoutesOptions> = async (app, { ferryd }) => {
  app.get('/health', async (_req, reply) => {
    const h = ferryd.health();
    reply.header('cache-control', 'no-store');
    if (!h.ok) return reply.code(503).send({ status: 'unhealthy', reason: h.reason });
    return {
      status: 'ok',
      ferryd: {
        pid: h.pid,
        state: h.state,
        heartbeat: h.heartbeat.toString(),
        heartbeat_age_ms: h.heartbeatAgeMs,
        abi_version: h.abiVersion,
        layout_hash: hex64(h.layoutHash),
      },
    };
  });
};
