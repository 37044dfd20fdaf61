// The OpenAPI document (@fastify/swagger, generated from the route schemas) at /docs/json lists
// every route fastify serves.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { harness } from '../../control/test/helpers';

/**
 * (method, url) pairs from fastify's printRoutes tree, whose lines are
 * "├── /v1/flows (GET, HEAD, POST)" with children indented by 4 columns and relative to the parent.
 */
export function routesOf(tree: string): { method: string; url: string }[] {
  const out: { method: string; url: string }[] = [];
  const stack: string[] = [];
  for (const line of tree.split('\n')) {
    const m = /^((?:[│ ] {3})*)[├└]── (\S+)(?: \(([^)]*)\))?$/.exec(line);
    if (!m) continue;
    const depth = [...m[1]!].length / 4;
    stack.length = depth;
    const url = (stack[depth - 1] ?? '') + m[2]!;
    stack.push(url);
    for (const method of (m[3] ?? '').split(',').map((x) => x.trim()).filter(Boolean)) {
      if (method !== 'HEAD' && method !== 'OPTIONS') out.push({ method: method.toLowerCase(), url });
    }
  }
  return out;
}

test('the route-tree reader nests children under their parents', () => {
  const r = routesOf('├── /v1/flows (GET, HEAD, POST)\n│   ├── /delete (POST)\n│   └── /:id (GET, DELETE)\n└── /metrics (GET, HEAD)\n');
  assert.deepEqual(r.map((x) => `${x.method} ${x.url}`), ['get /v1/flows', 'post /v1/flows', 'post /v1/flows/delete', 'get /v1/flows/:id', 'delete /v1/flows/:id', 'get /metrics']);
});

test('/docs/json is OpenAPI 3 and has every route fastify knows', async () => {
  const h = await harness('openapi');
  try {
    const r = await h.app.inject({ url: '/docs/json' });
    assert.equal(r.statusCode, 200);
    const doc = r.json() as { openapi: string; info: { title: string }; paths: Record<string, Record<string, unknown>> };
    assert.match(doc.openapi, /^3\./);
    assert.equal(doc.info.title, 'ferry-control');

    // Every (method, url) fastify routes, from its route tree; HEAD is fastify's automatic twin of
    // a GET (and OPTIONS is not served), so those are not expected in the document.
    const routes = routesOf(h.app.printRoutes({ commonPrefix: false }));
    assert.ok(routes.length >= 10, `only ${routes.length} routes found: ${JSON.stringify(routes)}`);
    const toOpenApi = (url: string): string => url.replace(/:(\w+)/g, '{$1}');
    const missing = routes.filter((rt) => !doc.paths[toOpenApi(rt.url)]?.[rt.method]).map((rt) => `${rt.method.toUpperCase()} ${rt.url}`);
    assert.deepEqual(missing, [], 'routes missing from the OpenAPI document');
    for (const must of ['/v1/flows', '/v1/flows/{id}', '/v1/ports', '/metrics', '/health']) assert.ok(doc.paths[must], `paths has ${must}`);
  } finally {
    await h.close();
  }
});
