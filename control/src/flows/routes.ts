// REST resource /v1/flows.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { FlowBody, FlowIdParams } from './schema';
import type { FlowService } from './service';

export interface FlowRoutesOptions {
  flows: FlowService;
}

export const flowRoutes: FastifyPluginAsyncTypebox<FlowRoutesOptions> = async (app, { flows }) => {
  app.get('/v1/flows', async () => ({ items: flows.list() }));

  app.post('/v1/flows', { schema: { body: FlowBody } }, async (req, reply) => {
    const { flow, created } = await flows.add(req.body);
    reply.header('location', `/v1/flows/${flow.id}`);
    return reply.code(created ? 201 : 200).send(flow);
  });

  app.delete('/v1/flows', async (_req, reply) => {
    await flows.clear();
    return reply.code(204).send();
  });

  app.get('/v1/flows/:id', { schema: { params: FlowIdParams } }, async (req) => flows.get(req.params.id));

  app.delete('/v1/flows/:id', { schema: { params: FlowIdParams } }, async (req, reply) => {
    await flows.remove(req.params.id);
    return reply.code(204).send();
  });
};
