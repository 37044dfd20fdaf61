// Bearer-token access control for the REST API, and where the token comes from.
import { createHash, timingSafeEqual } from 'node:crypto';
import * as fs from 'node:fs';
import { BlockList, isIP } from 'node:net';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { HttpProblem } from './problem';

export interface AuthOptions {
  /** The one token every request must present as Authorization: Bearer TOKEN. */
  token: string;
}

const sha256 = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/** The authorization header's bearer token (the scheme is case-insensitive, RFC 9110 11.1), or undefined. */
function presentedToken(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization;
  if (typeof h !== 'string') return undefined;
  const m = /^Bearer +(\S+) *$/i.exec(h);
  return m ? m[1] : undefined;
}

function unauthorized(detail: string): HttpProblem {
  return new HttpProblem(401, detail, undefined, 'urn:ferry:problem:unauthorized', 'Unauthorized',
    { 'www-authenticate': 'Bearer realm="ferry"' });
}

/**
 * Requires the token on every request, /health, /metrics and /docs/json included (Prometheus sends
 * it with authorization.credentials_file), and unknown paths too, so that which routes exist does
 * not leak. An onRequest hook runs before the body is read: a client without the token cannot make
 * ferry-control parse a 256 MiB bulk body. Call it on the root instance before any route.
 */
export function registerAuth(app: FastifyInstance, { token }: AuthOptions): void {
  checkToken(token, 'the token');
  // Both sides hashed: timingSafeEqual wants equal lengths, and comparing digests keeps the
  // token's length out of the timing as well as its bytes.
  const expected = sha256(token);
  app.addHook('onRequest', async (req) => {
    const given = presentedToken(req);
    if (given === undefined) throw unauthorized('this API wants an Authorization: Bearer TOKEN header');
    if (!timingSafeEqual(sha256(given), expected)) throw unauthorized('the bearer token is not the one ferry-control was given');
  });
}

const loopback = new BlockList();
loopback.addSubnet('127.0.0.0', 8, 'ipv4'); // BlockList matches IPv4-mapped IPv6 (::ffff:127.0.0.1) too
loopback.addAddress('::1', 'ipv6');

/** Whether a listen host is only reachable from this machine: 127.0.0.0/8, ::1 or localhost. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost') return true;
  const family = isIP(h);
  if (family === 0) return false; // any other name may resolve anywhere
  return loopback.check(h, family === 4 ? 'ipv4' : 'ipv6');
}

/** A token is sent in a header: visible ASCII only, and no spaces (they would end it). */
function checkToken(token: string, where: string): string {
  if (token === '') throw new Error(`${where} is empty`);
  if (!/^[\x21-\x7e]+$/.test(token)) throw new Error(`${where} holds spaces or characters other than visible ASCII; an HTTP header cannot carry them`);
  return token;
}

/**
 * Reads a token file (trimmed). Refuses a file that its group or others may access: the token is
 * the API's only key. The mode is checked on the descriptor that is read, not on the name.
 */
export function readTokenFile(file: string): string {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    throw new Error(`--token-file ${file}: ${(e as Error).message}`);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new Error(`--token-file ${file}: not a regular file`);
    if (st.mode & 0o077) {
      throw new Error(`--token-file ${file}: its group or others may access it (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}); ` +
        `make it private with chmod 600 ${file}`);
    }
    return checkToken(fs.readFileSync(fd, 'utf8').trim(), `--token-file ${file}`);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The token from --token-file FILE, else from $FERRY_TOKEN (empty counts as unset), else undefined.
 * There is deliberately no option taking the token itself: command lines are visible to every user (ps).
 */
export function loadToken(tokenFile: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (tokenFile !== undefined) return readTokenFile(tokenFile);
  const v = env.FERRY_TOKEN?.trim();
  return v ? checkToken(v, '$FERRY_TOKEN') : undefined;
}
