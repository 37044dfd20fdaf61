// docker/compose.yaml validates offline (docker-compose v1 resolves it without an engine), and the
// Prometheus config it mounts passes promtool; the Grafana service mounts what is provisioned.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { root } from '../integration/harness';
import { promtool } from './stack';

const COMPOSE = path.join(root, 'docker/compose.yaml');
const skip = spawnSync('docker-compose', ['version']).error ? 'docker-compose not installed (scripts/install-deps.sh installs it)' : false;

function compose(file: string): { status: number | null; out: string } {
  const r = spawnSync('docker-compose', ['-f', file, 'config'], { encoding: 'utf8', env: { ...process.env, DOCKER_HOST: 'unix:///nonexistent' } });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

test('docker-compose config validates docker/compose.yaml', { skip }, () => {
  const r = compose(COMPOSE);
  assert.equal(r.status, 0, r.out);
  assert.match(r.out, /grafana\/grafana-oss:\d+\.\d+\.\d+/, 'grafana image pinned');
  assert.match(r.out, /GF_SERVER_HTTP_ADDR: 127\.0\.0\.1/);
  assert.match(r.out, /prom\/prometheus:v\d+\.\d+\.\d+/, 'prometheus image pinned');
  // the check is live: a broken copy fails it
  const dir = mkdtempSync(path.join(tmpdir(), 'ferry-compose-'));
  try {
    const bad = path.join(dir, 'compose.yaml');
    writeFileSync(bad, readFileSync(COMPOSE, 'utf8').replace('network_mode: host', 'network_mode: [host]'));
    assert.notEqual(compose(bad).status, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('what the compose file mounts exists, and the Prometheus config is valid', () => {
  const text = readFileSync(COMPOSE, 'utf8');
  for (const [, src] of text.matchAll(/^\s+- (\.\/[^:]+):/gm)) {
    assert.ok(existsSync(path.join(root, 'docker', src!)), `compose mounts ${src}, which does not exist`);
  }
  const r = promtool(['check', 'config', path.join(root, 'docker/prometheus/prometheus.yml')]);
  assert.equal(r.status, 0, r.out);
  for (const f of ['provisioning/datasources/prometheus.yaml', 'provisioning/dashboards/ferry.yaml', 'dashboards/ferry-overview.json', 'dashboards/conntrack.json', 'dashboards/tunnels.json']) {
    assert.ok(existsSync(path.join(root, 'docker/grafana', f)), `docker/grafana/${f}`);
  }
  // Grafana's datasource points at the compose Prometheus, and the dashboards provider at the mounted folder
  assert.match(readFileSync(path.join(root, 'docker/grafana/provisioning/datasources/prometheus.yaml'), 'utf8'), /url: http:\/\/127\.0\.0\.1:9090/);
  assert.match(readFileSync(path.join(root, 'docker/grafana/provisioning/dashboards/ferry.yaml'), 'utf8'), /path: \/var\/lib\/grafana\/dashboards/);
  assert.match(text, /\.\/grafana\/dashboards:\/var\/lib\/grafana\/dashboards/);
});
