// ferry-control: the control service of Ferry's dataplane ferryd.
import { parseArgs } from 'node:util';
import { FerrydConnection } from './ferryd';
import { buildServer } from './server';

const USAGE = `usage: ferry-control --shm-name NAME [--listen HOST:PORT] [--request-timeout-ms MS]
  --shm-name NAME           shared-memory name ferryd was started with (ferryd --shm-name NAME)
  --listen HOST:PORT        HTTP address (default 127.0.0.1:8080)
  --request-timeout-ms MS   how long a request to ferryd may take (default 2000)`;

function fail(msg: string): never {
  process.stderr.write(`ferry-control: ${msg}\n${USAGE}\n`);
  process.exit(2);
}

export function parseListen(s: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(s);
  if (!m) fail(`--listen wants HOST:PORT, got "${s}"`);
  const port = Number(m[2]);
  if (port > 65535) fail(`--listen port ${port} is out of range`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        'shm-name': { type: 'string' },
        listen: { type: 'string', default: '127.0.0.1:8080' },
        'request-timeout-ms': { type: 'string', default: '2000' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (e) {
    fail((e as Error).message);
  }
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return;
  }
  const shmName = values['shm-name'];
  if (!shmName) fail('--shm-name is required');
  const timeout = Number(values['request-timeout-ms']);
  if (!Number.isInteger(timeout) || timeout <= 0) fail('--request-timeout-ms wants a positive integer');
  const { host, port } = parseListen(values.listen!);

  const ferryd = new FerrydConnection({ shmName, requestTimeoutMs: timeout });
  const app = await buildServer({ ferryd, logger: { name: 'ferry-control', level: 'info', stream: process.stderr } });
  const log = app.log;
  ferryd.log = log; // fastify's pino logger, to stderr
  ferryd.start();
  await app.listen({ host, port });

  let closing = false;
  const shutdown = (sig: string): void => {
    if (closing) return;
    closing = true;
    log.info(`${sig}: shutting down`);
    ferryd.stop();
    app.close().then(() => process.exit(0), (e: Error) => {
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
