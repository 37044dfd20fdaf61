// ferry-control: the control service of Ferry's dataplane ferryd.
import * as fs from 'node:fs';
import { createSecureContext } from 'node:tls';
import { parseArgs } from 'node:util';
import { FerrydConnection } from './ferryd';
import { buildServer } from './server';
import { isLoopback, loadToken } from './auth';
import { DesiredStateStore, openStateStore } from './state/store';
import type { ClusterConfig } from './cluster/agent';
import { NODE_ID_RE } from './cluster/keys';
import { parseIpv4 } from './tunnels/format';
import { hostname } from 'node:os';

const USAGE = `usage: ferry-control --shm-name NAME [--listen HOST:PORT] [--request-timeout-ms MS]
                     [--state-dir DIR] [--token-file FILE] [--tls-cert FILE --tls-key FILE]
                     [--etcd URL[,URL...] --node-id ID --tunnel-ip A.B.C.D/PLEN [--underlay-port N]
                      [--etcd-prefix /ferry] [--mesh-key K|flow] [--lease-ttl S]]
  --shm-name NAME           shared-memory name ferryd was started with (ferryd --shm-name NAME)
  --listen HOST:PORT        API address (default 127.0.0.1:8080); any address but loopback
                            (127.0.0.0/8, ::1, localhost) needs a token
  --request-timeout-ms MS   how long a request to ferryd may take (default 2000)
  --state-dir DIR           where the desired state (flows, tunnels, static neighbours, conntrack
                            settings) is kept durably; a change is acknowledged once it is on disk,
                            and a restart starts from it (default /var/lib/ferry/NAME; "none": memory only)
  --etcd URL[,URL...]       cluster mode: the fleet's desired state lives in etcd (v3) under
                            --etcd-prefix (default /ferry); this node registers itself (lease of
                            --lease-ttl seconds, default 5) and keeps an STT tunnel to every other
                            registered node; REST changes are written to etcd; --state-dir caches it
  --node-id ID              this node's name in the fleet (default: the host name)
  --tunnel-ip A.B.C.D/PLEN  this node's tunnel endpoint on the underlay (an address ferryd answers)
  --underlay-port N         ferryd's port on the underlay (default 1)
  --mesh-key K|flow         STT key of the mesh tunnels (default flow: from the flows' tun_id)
  --token-file FILE         every request must carry "Authorization: Bearer TOKEN", TOKEN being
                            FILE's content (trimmed; chmod 600 FILE); $FERRY_TOKEN is read when not given
  --tls-cert FILE           serve HTTPS with this PEM certificate (chain); needs --tls-key
  --tls-key FILE            the PEM private key of --tls-cert`;

/** Exits 2 with msg; with the usage text when the command line itself is wrong. */
function fail(msg: string, usage = true): never {
  process.stderr.write(`ferry-control: ${msg}\n${usage ? USAGE + '\n' : ''}`);
  process.exit(2);
}

export function parseListen(s: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(s);
  if (!m) fail(`--listen wants HOST:PORT, got "${s}"`);
  const port = Number(m[2]);
  if (port > 65535) fail(`--listen port ${port} is out of range`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

interface Config {
  shmName: string;
  requestTimeoutMs: number;
  host: string;
  port: number;
  stateDir: string;
  cluster?: ClusterConfig;
  token?: string;
  https?: { key: Buffer; cert: Buffer };
}

function readPem(option: string, file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    fail(`${option} ${file}: ${(e as Error).message}`, false);
  }
}

/** The command line (and $FERRY_TOKEN) as a Config, or undefined after --help. */
function parseCommandLine(argv: string[]): Config | undefined {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        'shm-name': { type: 'string' },
        listen: { type: 'string', default: '127.0.0.1:8080' },
        'request-timeout-ms': { type: 'string', default: '2000' },
        'state-dir': { type: 'string' },
        etcd: { type: 'string' },
        'etcd-prefix': { type: 'string', default: '/ferry' },
        'node-id': { type: 'string' },
        'tunnel-ip': { type: 'string' },
        'underlay-port': { type: 'string', default: '1' },
        'mesh-key': { type: 'string', default: 'flow' },
        'lease-ttl': { type: 'string', default: '5' },
        'token-file': { type: 'string' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (e) {
    fail((e as Error).message);
  }
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return undefined;
  }
  const shmName = values['shm-name'];
  if (!shmName) fail('--shm-name is required');
  const requestTimeoutMs = Number(values['request-timeout-ms']);
  if (!Number.isInteger(requestTimeoutMs) || requestTimeoutMs <= 0) fail('--request-timeout-ms wants a positive integer');
  const { host, port } = parseListen(values.listen!);
  const stateDir = values['state-dir'] ?? `/var/lib/ferry/${shmName.replace(/^\//, '')}`;
  if (!stateDir) fail('--state-dir wants a directory (or "none")');
  const config: Config = { shmName, requestTimeoutMs, host, port, stateDir };
  if (values.etcd !== undefined) config.cluster = clusterConfig(values);

  try {
    config.token = loadToken(values['token-file']);
  } catch (e) {
    fail((e as Error).message, false);
  }
  // Anyone who can reach a non-loopback address could rewrite the flow tables: no token, no start.
  if (config.token === undefined && !isLoopback(host)) {
    fail(`--listen ${values.listen} is not a loopback address, and the API there would be open to anyone who reaches it: ` +
      'give a token with --token-file FILE (or $FERRY_TOKEN), or listen on 127.0.0.1', false);
  }

  const certFile = values['tls-cert'];
  const keyFile = values['tls-key'];
  if ((certFile === undefined) !== (keyFile === undefined)) fail('--tls-cert and --tls-key go together');
  if (certFile !== undefined && keyFile !== undefined) {
    const https = { cert: readPem('--tls-cert', certFile), key: readPem('--tls-key', keyFile) };
    try {
      createSecureContext(https); // a bad PEM or a key that is not the certificate's fails here, not in fastify
    } catch (e) {
      fail(`--tls-cert ${certFile} / --tls-key ${keyFile}: ${(e as Error).message}`, false);
    }
    config.https = https;
  }
  return config;
}

/** The cluster options as a ClusterConfig (exits 2 naming the option that is wrong). */
function clusterConfig(v: Record<string, string | boolean | undefined>): ClusterConfig {
  const str = (k: string): string | undefined => (typeof v[k] === 'string' ? (v[k] as string) : undefined);
  const endpoints = str('etcd')!.split(',').map((s) => s.trim()).filter(Boolean);
  if (!endpoints.length || endpoints.some((e) => !/^https?:\/\/[^/]+$/.test(e))) fail(`--etcd wants URLs like http://127.0.0.1:2379, got "${str('etcd')}"`);
  const nodeId = str('node-id') ?? hostname();
  if (!NODE_ID_RE.test(nodeId)) fail(`--node-id "${nodeId}" must be 1-40 letters, digits, '_', '.', '-'`);
  const m = /^(\d{1,3}(?:\.\d{1,3}){3})\/(\d{1,2})$/.exec(str('tunnel-ip') ?? '');
  if (!m || !parseIpv4(m[1]!) || Number(m[2]) > 32) fail('cluster mode needs --tunnel-ip A.B.C.D/PLEN (this node\'s tunnel endpoint)');
  const underlayPort = Number(str('underlay-port'));
  if (!Number.isInteger(underlayPort) || underlayPort < 0 || underlayPort > 31) fail('--underlay-port wants a port number 0..31');
  const leaseTtl = Number(str('lease-ttl'));
  if (!Number.isInteger(leaseTtl) || leaseTtl < 2 || leaseTtl > 3600) fail('--lease-ttl wants whole seconds, 2..3600');
  const mk = str('mesh-key')!;
  let meshKey: bigint | 'flow' = 'flow';
  if (mk !== 'flow') {
    try {
      meshKey = BigInt(mk);
    } catch {
      fail(`--mesh-key wants a number or "flow", got "${mk}"`);
    }
    if (meshKey < 0n || meshKey >= 1n << 64n) fail('--mesh-key is a 64-bit key');
  }
  const prefix = str('etcd-prefix')!;
  if (!/^\/[^\s]*[^/\s]$/.test(prefix)) fail(`--etcd-prefix "${prefix}" must start with / and not end with one`);
  return { endpoints, prefix, nodeId, tunnelIp: m![1]!, tunnelPlen: Number(m![2]), underlayPort, meshKey, leaseTtl };
}

async function main(): Promise<void> {
  const config = parseCommandLine(process.argv.slice(2));
  if (!config) return;
  const { shmName, host, port, token, https } = config;

  let state: DesiredStateStore;
  try {
    state = await openStateStore(config.stateDir, (msg) => process.stderr.write(`ferry-control: ${msg}\n`));
  } catch (e) {
    fail(`--state-dir ${config.stateDir}: ${(e as Error).message}`, false);
  }
  const ferryd = new FerrydConnection({ shmName, requestTimeoutMs: config.requestTimeoutMs });
  const app = await buildServer({ ferryd, token, https, state, cluster: config.cluster, logger: { name: 'ferry-control', level: 'info', stream: process.stderr } });
  const log = app.log;
  ferryd.log = log; // fastify's pino logger, to stderr
  if (token !== undefined) log.info('every request needs the bearer token'); // never the token itself
  log.info(`desired state: ${config.cluster ? `etcd ${config.cluster.endpoints.join(',')} ${config.cluster.prefix} as node ${config.cluster.nodeId}, cached in ${state.where}` : state.where}`);
  ferryd.start();
  await app.listen({ host, port });

  let closing = false;
  const shutdown = (sig: string): void => {
    if (closing) return;
    closing = true;
    log.info(`${sig}: shutting down`);
    ferryd.stop();
    app.close().then(() => state.close()).then(() => process.exit(0), (e: Error) => {
      log.error(`close failed: ${e.message}`);
      process.exit(1);
    });
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
}

main().catch((e: Error) => {
  process.stderr.write(`ferry-control: ${e.stack ?? e.message}\n`);
  process.exit(1);
});
