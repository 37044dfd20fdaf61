// REST resources /v1/conntrack...: the connection table (streamed or paged, filtered in ferryd),
// the ALG expectations (streamed or paged), flushes, counts, limits, timeout policies, options, and
// the live events stream.
import { Readable } from 'node:stream';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { CtEntry, CtExpEntry } from '../gen/proto';
import { notFound, toProblem } from '../problem';
import { compileFilter } from './filter';
import { entryView, expectationView, nowClock } from './format';
import { ExpectationsQuery, FilterQuery, LimitsBody, ListQuery, OptionsBody, TimeoutPolicyBody, ZoneParams } from './schema';
import type { ConntrackService } from './service';

export interface ConntrackRoutesOptions {
  conntrack: ConntrackService;
}

const NDJSON = 'application/x-ndjson; charset=utf-8';

function lines(entries: CtEntry[]): string {
  const clock = nowClock();
  let out = '';
  for (const e of entries) out += JSON.stringify(entryView(e, clock)) + '\n';
  return out;
}

function expLines(entries: CtExpEntry[]): string {
  let out = '';
  for (const e of entries) out += JSON.stringify(expectationView(e)) + '\n';
  return out;
}

/**
 * The NDJSON body: the first page (already fetched, so that a refusal was still a problem+json), then
 * one CT_DUMP (CT_EXP_DUMP) per page as the client reads. A failure after the first page ends the
 * stream with a last line {"error": <problem>}.
 */
async function* ndjson<T>(first: IteratorResult<T[]>, rest: AsyncGenerator<T[]>, url: string, fmt: (page: T[]) => string): AsyncGenerator<string> {
  try {
    if (first.done) return;
    if (first.value.length) yield fmt(first.value);
    for await (const page of rest) if (page.length) yield fmt(page);
  } catch (e) {
    yield JSON.stringify({ error: toProblem(e, url).problem }) + '\n';
  }
}

export const conntrackRoutes: FastifyPluginAsyncTypebox<ConntrackRoutesOptions> = async (app, { conntrack: ct }) => {
  app.get('/v1/conntrack', { schema: { querystring: ListQuery } }, async (req, reply) => {
    const { limit, cursor, ...fq } = req.query;
    const filter = compileFilter(fq);
    if (limit !== undefined || cursor !== undefined) {
      const page = await ct.page(filter, limit ?? 1000, cursor);
      const clock = nowClock();
      return { entries: page.entries.map((e) => entryView(e, clock)), next_cursor: page.next_cursor };
    }
    const pages = ct.entries(filter);
    const first = await pages.next();
    reply.type(NDJSON).header('cache-control', 'no-store');
    // byte mode: a page is pulled from ferryd only once the previous one went out to the client
    return reply.send(Readable.from(ndjson(first, pages, req.url, lines), { objectMode: false }));
  });

  // ALG expectations (ct(commit,alg=ftp|tftp)): as GET /v1/conntrack, an NDJSON stream or ?limit pages
  app.get('/v1/conntrack/expectations', { schema: { querystring: ExpectationsQuery } }, async (req, reply) => {
    const { zone, limit, cursor } = req.query;
    if (limit !== undefined || cursor !== undefined) {
      const page = await ct.expectationPage(zone, limit ?? 1000, cursor);
      return { entries: page.entries.map(expectationView), next_cursor: page.next_cursor };
    }
    const pages = ct.expectations(zone);
    const first = await pages.next();
    reply.type(NDJSON).header('cache-control', 'no-store');
    return reply.send(Readable.from(ndjson(first, pages, req.url, expLines), { objectMode: false }));
  });

  app.delete('/v1/conntrack', { schema: { querystring: FilterQuery } }, async (req) => {
    const n = await ct.flush(compileFilter(req.query));
    return { deleted: n.toString() };
  });

  app.get('/v1/conntrack/stats', async () => ct.stats());

  app.get('/v1/conntrack/limits', async () => ct.limits());

  app.put('/v1/conntrack/limits', { schema: { body: LimitsBody } }, async (req) => ct.setLimits(req.body));

  app.get('/v1/conntrack/timeout-policies', async () => ({ items: ct.policyList() }));

  app.get('/v1/conntrack/timeout-policies/:zone', { schema: { params: ZoneParams } }, async (req) => {
    const p = ct.policy(req.params.zone);
    if (!p) throw notFound(`zone ${req.params.zone} has no timeout policy (it uses the defaults)`);
    return p;
  });

  app.put('/v1/conntrack/timeout-policies/:zone', { schema: { params: ZoneParams, body: TimeoutPolicyBody } }, async (req) =>
    ct.setPolicy(req.params.zone, req.body as TimeoutPolicyBody));

  app.delete('/v1/conntrack/timeout-policies/:zone', { schema: { params: ZoneParams } }, async (req, reply) => {
    await ct.deletePolicy(req.params.zone);
    return reply.code(204).send();
  });

  app.get('/v1/conntrack/options', async () => ct.options());

  app.put('/v1/conntrack/options', { schema: { body: OptionsBody } }, async (req) => ct.setOptions(req.body));

  app.get('/v1/conntrack/events', async (req, reply) => {
    const stream = await ct.openEvents();
    reply.raw.once('close', () => stream.destroy()); // the client went away
    // the status line and headers go out at once (fastify wrote them when it started piping), not
    // with the first event, which may be long in coming
    stream.once('resume', () => {
      if (!reply.raw.headersSent) reply.raw.flushHeaders();
    });
    reply.type(NDJSON).header('cache-control', 'no-store');
    return reply.send(stream);
  });
};
