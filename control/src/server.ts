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
import { registerAuth } from './auth';
import { DesiredStateStore, MemoryStateStore } from './state/store';
import { ClusterAgent, ClusterConfig, clusterParts } from './cluster/agent';
import { ClusterStore, requestScope } from './cluster/store';
import { registerClusterMetrics } from './cluster/metrics';
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
  /** The durable desired state the default services start from and commit to (default: in memory). */
  state?: DesiredStateStore;
  /** Cluster mode: the desired state lives in etcd (state becomes its local cache). */
  cluster?: ClusterConfig;
  /** When given, every request must carry Authorization: Bearer TOKEN (see auth.ts). */
  token?: string;
  /** PEM key and certificate: serve HTTPS instead of HTTP. */
  https?: { key: Buffer; cert: Buffer };
}

export async function buildServer(opts: ServerOptions): Promise<FastifyInstance> {
  const app = Fastify({
    logger: opts.logger ?? false,
    logController: new LogController({ disableRequestLogging: true }), // no per-request lines
    bodyLimit: 1024 * 1024,
    // fastify types an https instance apart from an http one; the routes and callers use neither's
    // specifics (app.server.address() is on both), so one FastifyInstance type serves both.
    ...(opts.https ? { https: { key: opts.https.key, cert: opts.https.cert } } : {}),
  } as FastifyServerOptions).withTypeProvider<TypeBoxTypeProvider>();
  // TypeBox checks bodies strictly (no coercion) and converts query/params strings.
  app.setValidatorCompiler(TypeBoxValidatorCompiler);
  registerProblemHandlers(app);
  // before any route or plugin, so that its hook covers them all (and the not-found handler)
  if (opts.token !== undefined) registerAuth(app, { token: opts.token });

  const ferryd = opts.ferryd;
  let state = opts.state;
  const parts = opts.cluster ? clusterParts(opts.cluster) : null;
  const clusterStore = parts ? new ClusterStore(parts.client, parts.keys, parts.view, state ?? new MemoryStateStore()) : null;
  if (clusterStore) state = clusterStore;
  const flows = opts.flows ?? new FlowService(ferryd, undefined, app.log, state);
  const conntrack = opts.conntrack ?? new ConntrackService(ferryd, { log: app.log, state });
  const tunnels = opts.tunnels ?? new TunnelService(ferryd, { log: app.log, state });
  flows.extraPorts = () => tunnels.ports(); // flows output to tunnel ports by number or name
  let agent: ClusterAgent | null = null;
  if (opts.cluster && parts && clusterStore) {
    agent = new ClusterAgent(opts.cluster, parts, { ferryd, flows, tunnels, conntrack }, app.log);
    agent.attachStore(clusterStore);
    const a = agent;
    app.addHook('onReady', async () => a.start());
    app.addHook('onClose', async () => a.stop());
    // ?scope=node: a change for this node only (PREFIX/desired/node/ID/...); by default for every node
    app.addHook('onRequest', (req, _reply, done) => {
      const q = req.query as Record<string, unknown> | undefined;
      if (q && q.scope === 'node') requestScope.enterWith('node');
      else requestScope.enterWith('all');
      done();
    });
  }
  const packetIns = opts.packetIns ?? new PacketInLog(ferryd);
  const metrics = opts.metrics ?? new FerryMetrics(ferryd, undefined, { flows, packetIns, conntrack, tunnels });
  if (agent) registerClusterMetrics(metrics.registry, agent);

  // OpenAPI 3 generated from the route schemas; registered first so it sees every route.
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'ferry-control', description: 'Ferry\'s REST API: ports, flows, bundles, conntrack, STT tunnels, neighbours, packet-ins, health and metrics', version: packageVersion() },
    },
  });
  await app.register(healthRoutes, { ferryd, cluster: agent });
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
