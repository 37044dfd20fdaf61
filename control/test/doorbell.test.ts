// The channel's doorbell (src/doorbell.ts) against a stand-in for ferryd's socket: requests
// ring it, its ring makes the channel read the response ring at once, and without it (none,
// gone, never taken in, or not ferryd's) the channel polls as before. The channel's fallback timer is set to a minute, so
// an answer read within the test's few seconds was read because of a ring.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { FakeFerryd, uniqueName } from './fake-ferryd';
import { attachSegment } from '../src/shm/segment';
import { ControlChannel } from '../src/channel';
import { Doorbell, doorbellPath } from '../src/doorbell';
import { chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MsgType, Status } from '../src/gen/proto';
import { until } from './helpers';

/** ferryd's side of the doorbell: counts bytes heard, rings its peers on demand. */
class BellServer {
  heard = 0;
  peers: net.Socket[] = [];
  private readonly srv: net.Server;
  constructor(name: string, greet = true) {
    this.srv = net.createServer((s) => {
      this.peers.push(s);
      if (greet) s.write(Buffer.from([1])); // ferryd's first ring: taken in
      s.on('data', (d) => (this.heard += d.length));
      s.on('error', () => undefined);
    });
    this.srv.listen({ path: bellPath(name) });
  }
  ring(): void {
    for (const p of this.peers) p.write(Buffer.from([1]));
  }
  dropPeers(): void {
    for (const p of this.peers) p.destroy();
    this.peers = [];
  }
  close(): Promise<void> {
    this.dropPeers();
    return new Promise((r) => this.srv.close(() => r()));
  }
}

/** p, or a failure after ms (a ring not heard would leave p waiting for the minute-long fallback) */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  const late = new Promise<never>((_, reject) => { t = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms); });
  return Promise.race([p, late]).finally(() => clearTimeout(t));
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-bell-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const bellPath = (name: string): string => doorbellPath(name, dir);

async function setup(tag: string) {
  const fake = new FakeFerryd({ name: uniqueName(tag), respond: 'manual' }).start();
  const chan = new ControlChannel(attachSegment(fake.name), { timeoutMs: 20000, doorbellFallbackMs: 60000 });
  const bell = new Doorbell(bellPath(fake.name), () => chan.wake());
  chan.useDoorbell(bell);
  return { fake, chan, bell };
}

test('a request rings ferryd; ferryd\'s ring makes the channel read the answer', async () => {
  const { fake, chan, bell } = await setup('bell');
  const srv = new BellServer(fake.name);
  try {
    assert.equal(await bell.connect(), true);
    assert.equal(bell.live, true);
    let answered = false;
    const p = chan.request(MsgType.PING).then((r) => { answered = true; return r; });
    await until(() => srv.heard >= 1, 3000, 'the request\'s ring');
    assert.equal(bell.sent, 1);
    await until(() => (fake.serve(), fake.received.length === 1), 3000, 'the request');
    fake.respond(fake.received[0]!.reqId, Status.OK, 7);
    // the answer is on the ring, but nothing reads it until ferryd rings (fallback: a minute)
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(answered, false, 'read before the ring: the channel polled');
    srv.ring();
    const r = await within(p, 5000, 'the answer after the ring');
    assert.equal(r.aux, 7);
    assert.equal(bell.heard, 1);
  } finally {
    bell.close();
    await srv.close();
    await fake.stop();
  }
});

test('several requests in one turn ring once', async () => {
  const { fake, chan, bell } = await setup('bell1');
  const srv = new BellServer(fake.name);
  try {
    await bell.connect();
    const ps = [chan.request(MsgType.PING), chan.request(MsgType.PING), chan.request(MsgType.PING)];
    await until(() => srv.heard >= 1, 3000, 'a ring');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(srv.heard, 1);
    await until(() => (fake.serve(), fake.received.length === 3), 3000, 'the requests');
    for (const q of fake.received) fake.respond(q.reqId, Status.OK);
    srv.ring();
    assert.equal((await within(Promise.all(ps), 5000, 'the answers after the ring')).length, 3);
  } finally {
    bell.close();
    await srv.close();
    await fake.stop();
  }
});

test('without a doorbell, and after it goes away, the channel polls', async () => {
  const { fake, chan, bell } = await setup('nobell');
  try {
    assert.equal(await bell.connect(), false, 'nothing listens');
    assert.equal(bell.live, false);
    const p = chan.request(MsgType.PING);
    await until(() => (fake.serve(), fake.received.length === 1), 3000, 'the request');
    fake.respond(fake.received[0]!.reqId, Status.OK, 1);
    assert.equal((await within(p, 5000, 'the answer, polled')).aux, 1);

    const srv = new BellServer(fake.name);
    try {
      assert.equal(await bell.connect(), true);
      srv.dropPeers(); // ferryd went away
      await until(() => !bell.live, 3000, 'the doorbell to go down');
      const q = chan.request(MsgType.PING);
      await until(() => (fake.serve(), fake.received.length === 2), 3000, 'the second request');
      fake.respond(fake.received[1]!.reqId, Status.OK, 2);
      assert.equal((await within(q, 5000, 'the answer, polled')).aux, 2);
    } finally {
      await srv.close();
    }
  } finally {
    bell.close();
    await fake.stop();
  }
});

test('a doorbell ferryd never takes in, or a socket file that is not ferryd\'s, is not used', async () => {
  const { fake, chan, bell } = await setup('squat');
  const silent = new BellServer(fake.name, false); // accepts, never rings
  try {
    assert.equal(await bell.connect(), false, 'no first ring within the timeout');
    assert.match(bell.problem ?? '', /did not take/);
    assert.equal(bell.live, false);
    const p = chan.request(MsgType.PING);
    await until(() => (fake.serve(), fake.received.length === 1), 3000, 'the request');
    fake.respond(fake.received[0]!.reqId, Status.OK, 3);
    assert.equal((await within(p, 5000, 'the answer, polled')).aux, 3);
  } finally {
    bell.close();
    await silent.close();
  }
  // the segment's owner is root here; a socket of another uid, or a plain file, is refused
  if (process.getuid?.() === 0) {
    const name = `${fake.name}-2`;
    const srv = new BellServer(name);
    try {
      chownSync(bellPath(name), 65534, 65534);
      const b = new Doorbell(bellPath(name), () => undefined, 0);
      assert.equal(await b.connect(), false);
      assert.match(b.problem ?? '', /not a socket of uid 0/);
      assert.equal(srv.peers.length, 0, 'not even connected');
      b.close();
    } finally {
      await srv.close();
    }
    const file = bellPath(`${fake.name}-3`);
    writeFileSync(file, '');
    const b = new Doorbell(file, () => undefined, 0);
    assert.equal(await b.connect(), false);
    b.close();
  }
  await fake.stop();
});
