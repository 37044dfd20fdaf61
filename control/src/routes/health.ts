// GET /health: is ferryd there, alive, heartbeating and in the desired state?
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FerrydConnection } from '../ferryd';
import { hex64 } from '../shm/segment';
import type { ClusterAgent } from '../cluster/agent';

export interface HealthRoutesOptions {
  ferryd: FerrydConnection;
  /** cluster mode: the fleet's side (etcd reachable, revision, peers); etcd out of reach is
   * "degraded", still 200: ferryd forwards with what it has */
  cluster?: ClusterAgent | null;
}

export const healthRoutes: FastifyPluginAsyncTypebox<HealthRoutesOptions> = async (app, { ferryd, cluster }) => {
  app.get('/health', async (_req, reply) => {
    const h = ferryd.health();
    reply.header('cache-control', 'no-store');
    const c = cluster?.health();
    if (!h.ok) return reply.code(503).send({ status: 'unhealthy', reason: h.reason, ...(c ? { cluster: c } : {}) });
    return {
      status: c && c.etcd !== 'up' ? 'degraded' : 'ok',
      ...(c ? { cluster: c } : {}),
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
