// REST resources /v1/flows, /v1/tables/{t}/flows and /v1/bundles.
// Flows come as JSON (one or an array) or as ovs-ofctl text (one flow per line).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { HttpProblem, badRequest, validationErrors } from '../problem';
import { FlowSyntaxError, parseFlowText, compileFlow } from './ofctl';
import {
  BundleBody, DeleteQuery, FlowIdParams, FlowSelector, ListQuery, TableParams, checkBundle, checkSelector,
} from './schema';
import type { BundleOpInput, FlowService, Selection } from './service';
import { syntaxProblem } from './service';

export interface FlowRoutesOptions {
  flows: FlowService;
  /** largest bulk body in bytes (default 256 MiB) */
  bulkBodyLimit?: number;
}

function invalid(issues: unknown[], what: string): HttpProblem {
  const errors = validationErrors(issues as never, 'body');
  return new HttpProblem(400, `invalid ${what}: ` + errors.map((e) => `${e.pointer || '(root)'} ${e.message}`).join('; '),
    errors, 'urn:ferry:problem:invalid-request', 'Invalid request');
}

export const flowRoutes: FastifyPluginAsyncTypebox<FlowRoutesOptions> = async (app, { flows, bulkBodyLimit }) => {
  const bodyLimit = bulkBodyLimit ?? 256 * 1024 * 1024;

  const selection = (q: { table?: number; cookie?: string; cookie_mask?: string; match?: string }): Selection =>
    flows.compileSelection({ table: q.table, cookie: q.cookie, cookie_mask: q.cookie_mask, match: q.match }, '?match');

  app.get('/v1/flows', { schema: { querystring: ListQuery } }, async (req, reply) => {
    const q = req.query;
    const sel = selection(q);
    const accept = String(req.headers.accept ?? '');
    const text = q.format === 'ofctl' || (q.format === undefined && /text\/plain/.test(accept) && !/json/.test(accept));
    if (text) {
      // dump-flows: every selected flow (no paging), exactly as ovs-ofctl prints them
      const { items } = flows.list(sel, Number.MAX_SAFE_INTEGER);
      return reply.type('text/plain; charset=utf-8').send(items.map((f) => flows.dumpLine(f) + '\n').join(''));
    }
    const { items, next_cursor } = flows.list(sel, q.limit ?? 1000, q.cursor);
    return { items: items.map((f) => flows.view(f)), next_cursor };
  });

  app.post('/v1/flows', { bodyLimit }, async (req, reply) => {
    const { flows: compiled, at, single } = flows.compileBody(req.body);
    if (single) {
      const { flow, created } = await flows.add(compiled);
      reply.header('location', `/v1/flows/${flow.id}`);
      return reply.code(created ? 201 : 200).send(flow);
    }
    const r = await flows.addMany(compiled, at);
    return { added: r.added, replaced: r.replaced };
  });

  app.delete('/v1/flows', { schema: { querystring: DeleteQuery } }, async (req) => {
    const r = await flows.deleteWhere(selection(req.query));
    return { deleted: r.deleted };
  });

  app.post('/v1/flows/delete', async (req) => {
    if (!checkSelector.Check(req.body)) throw invalid([...checkSelector.Errors(req.body)], 'selection');
    const body = req.body as FlowSelector;
    const r = await flows.deleteWhere(flows.compileSelection(body, typeof body.match === 'string' ? '/match' : ''));
    return { deleted: r.deleted };
  });

  app.get('/v1/flows/:id', { schema: { params: FlowIdParams } }, async (req) => flows.get(req.params.id));

  app.delete('/v1/flows/:id', { schema: { params: FlowIdParams } }, async (req, reply) => {
    await flows.remove(req.params.id);
    return reply.code(204).send();
  });

  app.put('/v1/tables/:table/flows', { bodyLimit, schema: { params: TableParams } }, async (req) => {
    const t = req.params.table;
    const body = req.body;
    if (typeof body !== 'string' && !Array.isArray(body)) {
      throw badRequest('', 'must be a JSON array of flows or ovs-ofctl text', 'the body must be a JSON array of flows or ovs-ofctl text (one flow per line)');
    }
    const { flows: compiled, at } = flows.compileBody(body, t);
    return flows.replaceTable(t, compiled, at);
  });

  app.post('/v1/bundles', { bodyLimit }, async (req) => {
    if (!checkBundle.Check(req.body)) throw invalid([...checkBundle.Errors(req.body)], 'bundle');
    const body = req.body as BundleBody;
    const ports = flows.ports();
    const ops: BundleOpInput[] = body.ops.map((op, i) => {
      const base = `/ops/${i}`;
      const at = { pointer: `${base}/flow`, where: `ops[${i}]: ` };
      if (op.op === 'add') {
        if (op.flow === undefined) throw badRequest(`${base}/flow`, 'is required for an add', `ops[${i}]: flow is required for an add`);
        if (typeof op.flow === 'string') {
          try {
            return { kind: 'add', flow: compileFlow(parseFlowText(op.flow), ports), at };
          } catch (e) {
            if (e instanceof FlowSyntaxError) throw syntaxProblem(e, `${base}/flow`, `ops[${i}]: `);
            throw e;
          }
        }
        return { kind: 'add', flow: flows.compileJson(op.flow, `${base}/flow`, `ops[${i}]: `, ports), at };
      }
      if (op.id !== undefined) return { kind: 'delete-id', id: op.id.toLowerCase(), at: { pointer: base, where: `ops[${i}]: ` } };
      const sel = flows.compileSelection(
        { table: op.table, priority: op.priority, cookie: op.cookie, cookie_mask: op.cookie_mask, match: op.match, strict: op.strict },
        typeof op.match === 'string' ? `${base}/match` : base);
      return { kind: 'delete', sel, at: { pointer: base, where: `ops[${i}]: ` } };
    });
    return flows.bundle(ops);
  });
};
