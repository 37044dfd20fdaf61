// The HTTP API: fastify 5 + TypeBox, one plugin per resource, problem+json errors.
import Fastify, { FastifyInstance, FastifyServerOptions, LogController } from 'fastify';
import { TypeBoxTypeProvider, TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox';
import type { FerrydConnection } from './ferryd';
import { FlowService } from './flows/service';
import { flowRoutes } from './flows/routes';
import { ConntrackService } from './conntrack/service';
import { conntrackRoutes } from './conntrack/routes';
import { TunnelService } from './tunnels/service';
import { tunnelRoutes } from './tunnels/routes';
import { portRoutes } from './routes/ports';
import { healthRoutes } from './routes/health';
import { packetInRoutes } from './routes/packet-ins';
import { PacketInLog } from './packet-ins';
import { FerryMetrics } from './metrics';
import { registerProblemHandlers } from './problem';
import swagger from '@fastify/swagger';
import { packageVersion } from './metrics';

export interface ServerOptions {
  ferryd: FerrydConnection;
  /** Defaults to a new FlowService over an in-memory store (registers ferryd's replay handler). */
  flows?: FlowService;
  /** Defaults to a new ConntrackService (registers its replay step before the flows'). */
  conntrack?: ConntrackService;
  /** Defaults to a new TunnelService (registers its replay step: steps run in the order the services were made, all before the flows'). */
  tunnels?: TunnelService;
  metrics?: FerryMetrics;
  packetIns?: PacketInLog;
  /** fastify logger option (default: off). */
  logger?: FastifyServerOptions['logger'];
}

export async function buildServer(opts: ServerOptions): Promise<FastifyInstance> {
  const app = Fastify({
    logger: opts.logger ?? false,
    logController: new LogController({ disableRequestLogging: true }), // no per-request lines
    bodyLimit: 1024 * 1024,
  }).withTypeProvider<TypeBoxTypeProvider>();
  // TypeBox checks bodies strictly (no coercion) and converts query/params strings.
  app.setValidatorCompiler(TypeBoxValidatorCompiler);
  registerProblemHandlers(app);

  const ferryd = opts.ferryd;
  const flows = opts.flows ?? new FlowService(ferryd, undefined, app.log);
  const conntrack = opts.conntrack ?? new ConntrackService(ferryd, { log: app.log });
  const tunnels = opts.tunnels ?? new TunnelService(ferryd, { log: app.log });
  flows.extraPorts = () => tunnels.ports(); // flows output to tunnel ports by number or name
  const packetIns = opts.packetIns ?? new PacketInLog(ferryd);
  const metrics = opts.metrics ?? new FerryMetrics(ferryd, undefined, { flows, packetIns, conntrack, tunnels });

  // OpenAPI 3 generated from the route schemas; registered first so it sees every route.
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'ferry-control', description: 'Ferry\'s REST API: ports, flows, bundles, conntrack, STT tunnels, neighbours, packet-ins, health and metrics', version: packageVersion() },
    },
  });
  await app.register(healthRoutes, { ferryd });
  await app.register(portRoutes, { ferryd });
  await app.register(flowRoutes, { flows });
  await app.register(conntrackRoutes, { conntrack });
  app.addHook('preClose', async () => conntrack.events.closeAll()); // long-lived event streams end first
  await app.register(tunnelRoutes, { tunnels });
  await app.register(packetInRoutes, { packetIns });
  app.get('/metrics', async (_req, reply) => {
    const body = await metrics.render();
    return reply.type(metrics.contentType).send(body);
  });
  app.get('/docs/json', async () => app.swagger());
  return app;
}
