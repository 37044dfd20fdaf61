// REST resources /v1/tunnels (STT tunnel ports), /v1/neighbours (the underlay's ARP table) and
// /v1/stt/options.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { NeighbourBody, NeighbourParams, SttOptionsBody, TunnelBody, TunnelParams, TunnelPutBody } from './schema';
import type { TunnelService } from './service';

export interface TunnelRoutesOptions {
  tunnels: TunnelService;
}

export const tunnelRoutes: FastifyPluginAsyncTypebox<TunnelRoutesOptions> = async (app, { tunnels }) => {
  app.get('/v1/tunnels', async () => ({ items: tunnels.list() }));

  app.post('/v1/tunnels', { schema: { body: TunnelBody } }, async (req, reply) => {
    const { created, tunnel } = await tunnels.create(req.body);
    if (created) reply.code(201).header('location', `/v1/tunnels/${encodeURIComponent(tunnel.name)}`);
    return tunnel;
  });

  app.get('/v1/tunnels/:name', { schema: { params: TunnelParams } }, async (req) => tunnels.get(req.params.name));

  app.put('/v1/tunnels/:name', { schema: { params: TunnelParams, body: TunnelPutBody } }, async (req, reply) => {
    const { created, tunnel } = await tunnels.put(req.params.name, req.body);
    if (created) reply.code(201);
    return tunnel;
  });

  app.delete('/v1/tunnels/:name', { schema: { params: TunnelParams } }, async (req, reply) => {
    await tunnels.delete(req.params.name);
    return reply.code(204).send();
  });

  app.get('/v1/neighbours', async () => ({ items: await tunnels.neighbours() }));

  app.put('/v1/neighbours/:port/:ip', { schema: { params: NeighbourParams, body: NeighbourBody } }, async (req) =>
    tunnels.setNeighbour(req.params.port, req.params.ip, req.body.mac));

  app.delete('/v1/neighbours/:port/:ip', { schema: { params: NeighbourParams } }, async (req, reply) => {
    await tunnels.deleteNeighbour(req.params.port, req.params.ip);
    return reply.code(204).send();
  });

  app.get('/v1/stt/options', async () => tunnels.options());

  app.put('/v1/stt/options', { schema: { body: SttOptionsBody } }, async (req) => tunnels.setOptions(req.body));
};
