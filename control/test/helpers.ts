// Shared test plumbing: a fake ferryd, a connection to it, and the HTTP app on top.
import type { FastifyInstance } from 'fastify';
import { FakeFerryd, FakeOptions, uniqueName } from './fake-ferryd';
import { FerrydConnection } from '../src/ferryd';
import { buildServer } from '../src/server';
import { ConntrackOptions, ConntrackService } from '../src/conntrack/service';

export interface Harness {
  fake: FakeFerryd;
  ferryd: FerrydConnection;
  app: FastifyInstance;
  close(): Promise<void>;
}

export async function harness(
  tag: string,
  fakeOpts: Partial<FakeOptions> = {},
  conn: { requestTimeoutMs?: number; startFake?: boolean; conntrack?: ConntrackOptions } = {},
): Promise<Harness> {
  const fake = new FakeFerryd({ name: uniqueName(tag), ...fakeOpts });
  if (conn.startFake !== false) fake.start();
  const ferryd = new FerrydConnection({ shmName: fake.name, healthIntervalMs: 50, requestTimeoutMs: conn.requestTimeoutMs ?? 2000 });
  const conntrack = conn.conntrack ? new ConntrackService(ferryd, conn.conntrack) : undefined;
  const app = await buildServer({ ferryd, conntrack });
  ferryd.start();
  if (conn.startFake !== false && (fakeOpts.respond ?? 'auto') === 'auto') await ferryd.whenReady(3000);
  return {
    fake, ferryd, app,
    async close() {
      ferryd.stop();
      await app.close();
      await fake.stop();
    },
  };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls cond every 10 ms until true or timeoutMs passes (then throws). */
export async function until(cond: () => boolean | Promise<boolean>, timeoutMs = 3000, what = 'condition'): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}
