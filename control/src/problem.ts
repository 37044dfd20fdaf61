// RFC 9457 problem details for every error the API returns.
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { FerrydDownError, FerrydStatusError, RingFullError, TimeoutError } from './errors';
import { Status } from './gen/proto';
import { STATUS_CODES } from 'node:http';

export interface ProblemError {
  /** JSON pointer into the body (e.g. /actions/0/port), ?name for a query parameter, :name for a path parameter. */
  pointer: string;
  message: string;
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  errors?: ProblemError[];
}

/** An error that is already an HTTP problem. */
export class HttpProblem extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
    readonly errors?: ProblemError[],
    readonly problemType = 'about:blank',
    readonly title = STATUS_CODES[status] ?? 'Error',
    readonly headers: Record<string, string> = {},
  ) {
    super(detail);
  }
}

export function badRequest(pointer: string, message: string, detail?: string): HttpProblem {
  return new HttpProblem(400, detail ?? `${pointer}: ${message}`, [{ pointer, message }], 'urn:ferry:problem:invalid-request', 'Invalid request');
}

export function notFound(detail: string): HttpProblem {
  return new HttpProblem(404, detail);
}

const escapePointer = (s: string): string => s.replace(/~/g, '~0').replace(/\//g, '~1');

interface ValidationIssue {
  keyword?: string;
  instancePath?: string;
  message?: string;
  params?: Record<string, unknown>;
}

/** Turns ajv/TypeBox validation errors into one entry per offending field. */
export function validationErrors(issues: ValidationIssue[], context: string | undefined): ProblemError[] {
  const byPointer = new Map<string, string[]>();
  const add = (path: string, message: string): void => {
    const list = byPointer.get(path) ?? [];
    if (!list.includes(message)) list.push(message);
    byPointer.set(path, list);
  };
  for (const v of issues) {
    const path = v.instancePath ?? '';
    const params = v.params ?? {};
    switch (v.keyword) {
      case 'additionalProperties': {
        const props = (params.additionalProperties ?? params.additionalProperty) as string | string[] | undefined;
        for (const p of ([] as string[]).concat(props ?? [])) add(`${path}/${escapePointer(p)}`, 'is not a known property');
        break;
      }
      case 'boolean': // TypeBox reports "schema is false" at the unknown property itself
        add(path, 'is not a known property');
        break;
      case 'required': {
        const props = (params.requiredProperties ?? params.missingProperty) as string | string[] | undefined;
        for (const p of ([] as string[]).concat(props ?? [])) add(`${path}/${escapePointer(p)}`, 'is required');
        break;
      }
      case 'anyOf':
        break; // the branches' own errors say more
      default:
        add(path, v.message ?? 'is invalid');
    }
  }
  if (byPointer.size === 0) for (const v of issues) add(v.instancePath ?? '', v.message ?? 'is invalid');
  const where = (p: string): string => {
    if (context === 'querystring') return `?${p.replace(/^\//, '').split('/')[0]}`;
    if (context === 'params') return `:${p.replace(/^\//, '').split('/')[0]}`;
    if (context === 'headers') return `header ${p.replace(/^\//, '')}`;
    return p;
  };
  return [...byPointer].map(([p, msgs]) => ({ pointer: where(p), message: msgs.join(' or ') }));
}

function statusFromFerryd(e: FerrydStatusError): number {
  switch (e.status) {
    case Status.EINVAL: case Status.ENOPORT: case Status.ENOTABLE: case Status.EBUNDLE: return 400;
    case Status.ENOENT: return 404;
    case Status.ENOSPC: return 507;
    case Status.EUNSUPPORTED: return 501;
    default: return 502;
  }
}

/** Maps any error to a problem (and extra headers). */
export function toProblem(err: unknown, instance: string): { problem: Problem; headers: Record<string, string> } {
  const mk = (status: number, detail: string, type = 'about:blank', title = STATUS_CODES[status] ?? 'Error', errors?: ProblemError[]): Problem => ({
    type, title, status, detail, instance, ...(errors ? { errors } : {}),
  });
  if (err instanceof HttpProblem) {
    return { problem: mk(err.status, err.detail, err.problemType, err.title, err.errors), headers: err.headers };
  }
  const fe = err as FastifyError & { validation?: ValidationIssue[] };
  if (fe && Array.isArray(fe.validation)) {
    const errors = validationErrors(fe.validation, fe.validationContext);
    const what = fe.validationContext === 'querystring' ? 'query' : fe.validationContext ?? 'body';
    const detail = `invalid ${what}: ` + errors.map((e) => `${e.pointer || '(root)'} ${e.message}`).join('; ');
    return { problem: mk(400, detail, 'urn:ferry:problem:invalid-request', 'Invalid request', errors), headers: {} };
  }
  if (err instanceof RingFullError) {
    return { problem: mk(503, `${err.message}; retry shortly`, 'urn:ferry:problem:ring-full', 'ferryd is busy'), headers: { 'retry-after': '1' } };
  }
  if (err instanceof FerrydDownError) {
    return { problem: mk(503, err.message, 'urn:ferry:problem:ferryd-down', 'ferryd is not running'), headers: { 'retry-after': '1' } };
  }
  if (err instanceof TimeoutError) {
    return { problem: mk(504, err.message, 'urn:ferry:problem:ferryd-timeout', 'ferryd did not answer'), headers: {} };
  }
  if (err instanceof FerrydStatusError) {
    const errors = err.pointer !== undefined ? [{ pointer: err.pointer, message: err.detail || err.statusName }] : undefined;
    return { problem: mk(statusFromFerryd(err), err.message, `urn:ferry:problem:ferryd-${err.statusName.toLowerCase()}`, 'ferryd refused the request', errors), headers: {} };
  }
  const status = typeof fe?.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 600 ? fe.statusCode : 500;
  const detail = status < 500 ? (fe?.message ?? 'bad request') : 'internal error; see the ferry-control log';
  return { problem: mk(status, detail), headers: {} };
}

export function sendProblem(reply: FastifyReply, problem: Problem, headers: Record<string, string> = {}): FastifyReply {
  for (const [k, v] of Object.entries(headers)) reply.header(k, v);
  return reply.code(problem.status).type('application/problem+json').send(JSON.stringify(problem));
}

/** Installs the error and not-found handlers on app (call on the root instance). */
export function registerProblemHandlers(app: FastifyInstance): void {
  app.setErrorHandler((err: unknown, req: FastifyRequest, reply: FastifyReply) => {
    const { problem, headers } = toProblem(err, req.url);
    if (problem.status >= 500 && !(err instanceof FerrydDownError || err instanceof RingFullError || err instanceof TimeoutError)) {
      req.log.error({ err }, 'request failed');
    }
    return sendProblem(reply, problem, headers);
  });
  app.setNotFoundHandler((req: FastifyRequest, reply: FastifyReply) => {
    const { problem } = toProblem(new HttpProblem(404, `no route ${req.method} ${req.url.split('?')[0]}`), req.url);
    return sendProblem(reply, problem);
  });
}
