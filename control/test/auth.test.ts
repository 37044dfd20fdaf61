// Access control: the bearer token on every route, loopback-only without one, TLS, ferryctl over
// https with a token, and the body and page-size limits.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { FakeFerryd, uniqueName } from './fake-ferryd';
import { FerrydConnection } from '../src/ferryd';
import { buildServer, ServerOptions } from '../src/server';
import { isLoopback, loadToken } from '../src/auth';

const root = path.resolve(__dirname, '../../..');
const MAIN = path.join(root, 'build/control/src/main.js');
const FERRYCTL = path.join(root, 'control/bin/ferryctl.js');
const TOKEN = 'correct-horse-battery-staple-0123456789';

let tmp: string;
let certFile: string;
let keyFile: string;
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-auth-'));
  certFile = path.join(tmp, 'cert.pem');
  keyFile = path.join(tmp, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1', '-days', '1', '-keyout', keyFile, '-out', certFile], { stdio: 'ignore' });
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Served { fake: FakeFerryd; ferryd: FerrydConnection; app: FastifyInstance; close(): Promise<void> }

/** helpers.ts's harness, with buildServer's access options (token, https, logger). */
async function serve(tag: string, opts: Partial<ServerOptions> = {}): Promise<Served> {
  const fake = new FakeFerryd({ name: uniqueName(tag), ports: ['eth0', 'eth1'] }).start();
  const ferryd = new FerrydConnection({ shmName: fake.name, healthIntervalMs: 50, requestTimeoutMs: 2000 });
  const app = await buildServer({ ferryd, ...opts });
  ferryd.start();
  await ferryd.whenReady(3000);
  return {
    fake, ferryd, app,
    async close() {
      ferryd.stop();
      await app.close();
      await fake.stop();
    },
  };
}

/** A private (0600) file holding text. */
function secretFile(name: string, text: string, mode = 0o600): string {
  const f = path.join(tmp, name);
  fs.writeFileSync(f, text, { mode });
  fs.chmodSync(f, mode); // the umask may have taken bits off a wider mode
  return f;
}

/** The environment without any FERRY_ setting of the one running the tests. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('FERRY_')) delete env[k];
  return { ...env, ...extra };
}

interface Got { status: number; headers: http.IncomingHttpHeaders; body: string }

function get(url: string, headers: Record<string, string> = {}, ca?: Buffer): Promise<Got> {
  const lib = url.startsWith('https:') ? https : http;
  return new Promise((resolve, reject) => {
    const req = lib.get(url, { headers, agent: false, ...(ca ? { ca } : {}) }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

const bearer = (t: string): Record<string, string> => ({ authorization: `Bearer ${t}` });

function assertUnauthorized(r: { statusCode: number; headers: Record<string, unknown>; body: string }, what: string): void {
  assert.equal(r.statusCode, 401, `${what}: ${r.body}`);
  assert.match(String(r.headers['content-type']), /^application\/problem\+json/, what);
  assert.equal(r.headers['www-authenticate'], 'Bearer realm="ferry"', what);
  const p = JSON.parse(r.body);
  assert.equal(p.type, 'urn:ferry:problem:unauthorized', what);
  assert.equal(p.status, 401, what);
  assert.ok(!r.body.includes(TOKEN), `${what}: the answer holds the token`);
}

test('with a token, every route wants Authorization: Bearer TOKEN, and only the right one', async () => {
  let log = '';
  const stream = new Writable({ write(chunk, _enc, done) { log += String(chunk); done(); } });
  const s = await serve('auth-token', { token: TOKEN, logger: { level: 'trace', stream } });
  try {
    for (const url of ['/v1/ports', '/health', '/metrics', '/docs/json', '/v1/flows', '/no/such/route']) {
      assertUnauthorized(await s.app.inject({ url }), `${url} without a header`);
    }
    const wrongSameLength = TOKEN.slice(0, -1) + (TOKEN.endsWith('9') ? '8' : '9');
    assert.equal(wrongSameLength.length, TOKEN.length);
    const refused: Record<string, string>[] = [
      bearer(wrongSameLength),
      bearer(TOKEN + 'x'), // longer
      bearer(TOKEN.slice(0, 8)), // shorter
      bearer(''),
      { authorization: TOKEN }, // no scheme
      { authorization: `Basic ${Buffer.from(`u:${TOKEN}`).toString('base64')}` },
      { authorization: `Bearer ${TOKEN} extra` },
    ];
    for (const headers of refused) assertUnauthorized(await s.app.inject({ url: '/v1/ports', headers }), `authorization: ${headers.authorization}`);
    // refused before the body is read: no 413, no parse
    assertUnauthorized(await s.app.inject({ method: 'POST', url: '/v1/tunnels', headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ name: 'x'.repeat(2 << 20) }) }), 'a large body without a token');
    assertUnauthorized(await s.app.inject({ method: 'POST', url: '/v1/flows', headers: { 'content-type': 'text/plain' }, payload: 'ip actions=drop' }), 'add-flow');
    assert.equal(s.fake.flows.size, 0, 'a refused add-flow reached ferryd');

    for (const url of ['/v1/ports', '/health', '/metrics', '/docs/json']) {
      const r = await s.app.inject({ url, headers: bearer(TOKEN) });
      assert.equal(r.statusCode, 200, `${url}: ${r.body}`);
    }
    // the scheme is case-insensitive (RFC 9110 11.1)
    assert.equal((await s.app.inject({ url: '/v1/ports', headers: { authorization: `bearer ${TOKEN}` } })).statusCode, 200);
    const added = await s.app.inject({ method: 'POST', url: '/v1/flows', headers: { ...bearer(TOKEN), 'content-type': 'text/plain' }, payload: 'ip actions=drop' });
    assert.equal(added.statusCode, 200, added.body);
    assert.equal(s.fake.flows.size, 1);
    assert.ok(log.length > 0, 'the logger wrote nothing: the check below would prove nothing');
    assert.ok(!log.includes(TOKEN), 'the log holds the token');
  } finally {
    await s.close();
  }
});

test('without a token nothing is asked (the default)', async () => {
  const s = await serve('auth-none');
  try {
    for (const url of ['/v1/ports', '/health', '/docs/json']) {
      const r = await s.app.inject({ url });
      assert.equal(r.statusCode, 200, `${url}: ${r.body}`);
      assert.equal(r.headers['www-authenticate'], undefined);
    }
    assert.equal((await s.app.inject({ url: '/v1/ports', headers: bearer('whatever') })).statusCode, 200);
  } finally {
    await s.close();
  }
});

test('isLoopback and loadToken', () => {
  for (const h of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', 'LOCALHOST', '::ffff:127.0.0.1']) assert.equal(isLoopback(h), true, h);
  for (const h of ['0.0.0.0', '::', '10.0.0.1', '128.0.0.1', 'example.com', 'localhost.example.com', '::2']) assert.equal(isLoopback(h), false, h);

  assert.equal(loadToken(undefined, {}), undefined);
  assert.equal(loadToken(undefined, { FERRY_TOKEN: '' }), undefined);
  assert.equal(loadToken(undefined, { FERRY_TOKEN: ' abc\n' }), 'abc');
  const f = secretFile('load.token', `${TOKEN}\n`);
  assert.equal(loadToken(f, { FERRY_TOKEN: 'other' }), TOKEN); // the file wins
  assert.throws(() => loadToken(secretFile('group.token', TOKEN, 0o640), {}), /group or others.*mode 0640.*chmod 600/);
  assert.throws(() => loadToken(secretFile('world.token', TOKEN, 0o604), {}), /group or others/);
  assert.throws(() => loadToken(secretFile('empty.token', '\n'), {}), /is empty/);
  assert.throws(() => loadToken(secretFile('space.token', 'two words'), {}), /spaces/);
  assert.throws(() => loadToken(path.join(tmp, 'missing.token'), {}), /--token-file .*missing\.token: ENOENT/);
  assert.throws(() => loadToken(tmp, {}), /not a regular file/);
});

// ferry-control processes still running: a failed assertion must not leave one behind (nor hang the run)
const running = new Set<ChildProcess>();
after(() => { for (const p of running) p.kill('SIGKILL'); });

/** Spawns ferry-control; resolves with its exit, or with the process and its base URL once it listens. */
function startControl(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stderr: string; proc?: ChildProcess; url?: string }> {
  const proc = spawn(process.execPath, [MAIN, '--shm-name', uniqueName('auth-main'), ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  running.add(proc);
  proc.on('exit', () => running.delete(proc));
  let stderr = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error(`ferry-control neither listened nor exited: ${stderr}`)); }, 15_000);
    proc.stderr!.on('data', (d) => {
      stderr += d;
      const m = /Server listening at (https?:\/\/127\.0\.0\.1:\d+)/.exec(stderr);
      if (m) {
        clearTimeout(timer);
        resolve({ code: null, stderr, proc, url: m[1] });
      }
    });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

async function stopControl(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null) return;
  const gone = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  await gone;
}

test('ferry-control refuses a non-loopback --listen without a token, and wires the token and TLS', async () => {
  let r = await startControl(['--listen', '0.0.0.0:0'], cleanEnv());
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /0\.0\.0\.0:0/);
  assert.match(r.stderr, /token/);
  assert.match(r.stderr, /--token-file/);

  r = await startControl(['--listen', '0.0.0.0:0', '--token-file', secretFile('open.token', TOKEN, 0o644)], cleanEnv());
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /group or others.*chmod 600/);

  r = await startControl(['--listen', '127.0.0.1:0', '--tls-cert', certFile], cleanEnv());
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /--tls-cert and --tls-key go together/);

  r = await startControl(['--listen', '127.0.0.1:0', '--tls-cert', path.join(tmp, 'nope.pem'), '--tls-key', keyFile], cleanEnv());
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /--tls-cert .*nope\.pem: ENOENT/);

  // with $FERRY_TOKEN it starts on every address, and asks for the token
  r = await startControl(['--listen', '0.0.0.0:0'], cleanEnv({ FERRY_TOKEN: TOKEN }));
  assert.equal(r.code, null, r.stderr);
  try {
    assert.equal((await get(`${r.url}/docs/json`)).status, 401);
    assert.equal((await get(`${r.url}/docs/json`, bearer(TOKEN))).status, 200);
    assert.equal(r.proc!.exitCode, null);
  } finally {
    await stopControl(r.proc!);
  }
  assert.ok(!r.stderr.includes(TOKEN), 'the log holds the token');

  // on loopback a given token is still required; --tls-cert/--tls-key serve https
  r = await startControl(['--listen', '127.0.0.1:0', '--token-file', secretFile('main.token', TOKEN), '--tls-cert', certFile, '--tls-key', keyFile], cleanEnv());
  assert.equal(r.code, null, r.stderr);
  try {
    assert.match(r.url!, /^https:/);
    const ca = fs.readFileSync(certFile);
    assert.equal((await get(`${r.url}/docs/json`, {}, ca)).status, 401);
    assert.equal((await get(`${r.url}/docs/json`, bearer(TOKEN), ca)).status, 200);
  } finally {
    await stopControl(r.proc!);
  }
});

test('TLS: https with the CA and the token; plain http on the same port fails', async () => {
  const s = await serve('auth-tls', { token: TOKEN, https: { key: fs.readFileSync(keyFile), cert: fs.readFileSync(certFile) } });
  try {
    await s.app.listen({ host: '127.0.0.1', port: 0 });
    const port = (s.app.server.address() as AddressInfo).port;
    const ca = fs.readFileSync(certFile);
    const ok = await get(`https://127.0.0.1:${port}/v1/ports`, bearer(TOKEN), ca);
    assert.equal(ok.status, 200, ok.body);
    assert.equal(JSON.parse(ok.body).items.length, 2);
    const no = await get(`https://127.0.0.1:${port}/v1/ports`, {}, ca);
    assertUnauthorized({ statusCode: no.status, headers: no.headers, body: no.body }, 'https without a token');
    await assert.rejects(get(`https://127.0.0.1:${port}/v1/ports`, bearer(TOKEN)), /self-signed|self signed/); // not trusted without the CA
    const plain = await get(`http://127.0.0.1:${port}/v1/ports`, bearer(TOKEN)).then((g) => g.status, (e: Error) => e.message);
    assert.notEqual(plain, 200, 'plain http answered on the https port');
  } finally {
    await s.close();
  }
});

/** Runs ferryctl (asynchronously: the fake ferryd lives in this process's event loop). */
function ferryctl(env: NodeJS.ProcessEnv, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [FERRYCTL, ...args], { env }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

test('ferryctl over https with --cacert and --token-file (or $FERRY_CACERT and $FERRY_TOKEN)', async () => {
  const s = await serve('auth-ctl', { token: TOKEN, https: { key: fs.readFileSync(keyFile), cert: fs.readFileSync(certFile) } });
  try {
    await s.app.listen({ host: '127.0.0.1', port: 0 });
    const api = `https://127.0.0.1:${(s.app.server.address() as AddressInfo).port}`;
    const tokenFile = secretFile('ctl.token', `${TOKEN}\n`);
    const env = cleanEnv();

    let r = await ferryctl(env, '--api', api, '--cacert', certFile, '--token-file', tokenFile, 'add-flow', 'priority=7,ip actions=drop');
    assert.equal(r.code, 0, r.stderr);
    r = await ferryctl(env, '--api', api, '--cacert', certFile, '--token-file', tokenFile, 'dump-flows');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /priority=7,ip actions=drop\n$/);
    // a 204 (no body) goes through too
    r = await ferryctl(env, '--api', api, '--cacert', certFile, '--token-file', tokenFile, 'del-flows');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(s.fake.flows.size, 0);

    r = await ferryctl(cleanEnv({ FERRY_API: api, FERRY_CACERT: certFile, FERRY_TOKEN: TOKEN }), 'show-tunnels');
    assert.equal(r.code, 0, r.stderr);

    r = await ferryctl(env, '--api', api, '--cacert', certFile, 'dump-flows');
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'ferryctl: ferry-control refused the token (none was given): set FERRY_TOKEN or --token-file FILE\n');
    r = await ferryctl(cleanEnv({ FERRY_TOKEN: 'not-it' }), '--api', api, '--cacert', certFile, 'dump-flows');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^ferryctl: ferry-control refused the token \(not the one it was started with\): set FERRY_TOKEN or --token-file FILE\n$/);

    r = await ferryctl(env, '--api', api, '--token-file', tokenFile, 'dump-flows');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot reach ferry-control at https:\/\/127\.0\.0\.1:\d+: self[- ]signed certificate.*--cacert FILE/);
    r = await ferryctl(env, '--api', api, '--token-file', secretFile('ctl-open.token', TOKEN, 0o644), 'dump-flows');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /group or others/);
  } finally {
    await s.close();
  }
});

test('an oversize body is 413 problem+json; limit=10001 is 400 naming ?limit', async () => {
  const s = await serve('auth-limits', { token: TOKEN });
  try {
    const big = await s.app.inject({ method: 'POST', url: '/v1/tunnels', headers: { ...bearer(TOKEN), 'content-type': 'application/json' },
      payload: JSON.stringify({ name: 'x'.repeat(1 << 20) }) }); // just over the 1 MiB limit
    assert.equal(big.statusCode, 413, big.body);
    assert.match(String(big.headers['content-type']), /^application\/problem\+json/);
    assert.equal(big.json().status, 413);

    const page = await s.app.inject({ url: '/v1/flows?limit=10001', headers: bearer(TOKEN) });
    assert.equal(page.statusCode, 400, page.body);
    assert.match(String(page.headers['content-type']), /^application\/problem\+json/);
    assert.deepEqual(page.json().errors.map((e: { pointer: string }) => e.pointer), ['?limit']);
    assert.match(page.json().detail, /limit/);
    assert.equal((await s.app.inject({ url: '/v1/flows?limit=10000', headers: bearer(TOKEN) })).statusCode, 200);
    const ct = await s.app.inject({ url: '/v1/conntrack?limit=10001', headers: bearer(TOKEN) });
    assert.equal(ct.statusCode, 400, ct.body);
    assert.deepEqual(ct.json().errors.map((e: { pointer: string }) => e.pointer), ['?limit']);
  } finally {
    await s.close();
  }
});
