// The Dockerfiles the compose file builds, checked offline (no Docker engine here): every
// instruction is one Docker knows, every stage a COPY --from names comes earlier, every path
// copied from the build context exists and is not excluded by .dockerignore, what a runtime stage
// runs was copied into it, and the build stage installs what the meson build needs (a missing
// -dev package fails `meson setup` inside the image, not on this machine).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { root } from '../integration/harness';

const INSTRUCTIONS = new Set(['FROM', 'RUN', 'CMD', 'LABEL', 'EXPOSE', 'ENV', 'ADD', 'COPY', 'ENTRYPOINT', 'VOLUME',
  'USER', 'WORKDIR', 'ARG', 'ONBUILD', 'STOPSIGNAL', 'HEALTHCHECK', 'SHELL']);

interface Instr { op: string; args: string; line: number }
interface Stage { name: string; base: string; instrs: Instr[] }

/** Instructions with continuation lines joined and comments dropped. */
export function parseDockerfile(text: string): Instr[] {
  const out: Instr[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let l = lines[i]!;
    if (/^\s*(#|$)/.test(l)) continue;
    const start = i + 1;
    while (/\\\s*$/.test(l) && i + 1 < lines.length) l = l.replace(/\\\s*$/, ' ') + lines[++i]!;
    const m = /^\s*(\S+)\s*(.*)$/.exec(l)!;
    out.push({ op: m[1]!.toUpperCase(), args: m[2]!.trim(), line: start });
  }
  return out;
}

function stages(instrs: Instr[]): Stage[] {
  const out: Stage[] = [];
  for (const i of instrs) {
    if (i.op === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(i.args);
      assert.ok(m, `line ${i.line}: FROM ${i.args}`);
      out.push({ name: m![2] ?? String(out.length), base: m![1]!, instrs: [] });
    } else {
      assert.ok(out.length > 0, `line ${i.line}: ${i.op} before any FROM`);
      out[out.length - 1]!.instrs.push(i);
    }
  }
  return out;
}

function dockerignore(): RegExp[] {
  const f = path.join(root, '.dockerignore');
  if (!existsSync(f)) return [];
  return readFileSync(f, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'))
    .map((p) => new RegExp(`^${p.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}(/|$)`));
}

/** Problems of one Dockerfile built with the repository root as its context. */
export function lintDockerfile(text: string): string[] {
  const problems: string[] = [];
  const instrs = parseDockerfile(text);
  for (const i of instrs) if (!INSTRUCTIONS.has(i.op)) problems.push(`line ${i.line}: unknown instruction ${i.op}`);
  const all = stages(instrs);
  const ignored = dockerignore();
  const seen = new Set<string>();
  for (const s of all) {
    const copied = new Set<string>();
    for (const i of s.instrs) {
      if (i.op !== 'COPY' && i.op !== 'ADD') continue;
      const words = i.args.split(/\s+/);
      const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length);
      const paths = words.filter((w) => !w.startsWith('--'));
      if (paths.length < 2) { problems.push(`line ${i.line}: ${i.op} needs a source and a destination`); continue; }
      const dest = paths[paths.length - 1]!;
      copied.add(dest.replace(/\/$/, ''));
      for (const src of paths.slice(0, -1)) copied.add(path.posix.join(dest, path.posix.basename(src)));
      if (from !== undefined) {
        if (!seen.has(from)) problems.push(`line ${i.line}: COPY --from=${from}: no earlier stage of that name`);
        continue;
      }
      for (const src of paths.slice(0, -1)) {
        const rel = src.replace(/^\.\//, '').replace(/\/$/, '');
        if (!existsSync(path.join(root, rel))) problems.push(`line ${i.line}: ${src} is not in the build context`);
        else if (ignored.some((re) => re.test(rel))) problems.push(`line ${i.line}: ${src} is excluded by .dockerignore`);
      }
    }
    // what the stage runs is in it: a copied path, or a command of its base image
    const entry = s.instrs.filter((i) => i.op === 'ENTRYPOINT').pop();
    if (entry && s === all[all.length - 1]) {
      const argv = JSON.parse(entry.args) as string[];
      const prog = argv[0]!;
      const file = argv.find((a, k) => k > 0 && /\.(js|mjs)$/.test(a));
      if (prog.startsWith('/') && ![...copied].some((c) => c === prog)) problems.push(`ENTRYPOINT ${prog} was not copied into the final stage`);
      if (file && ![...copied].some((c) => file === c || file.startsWith(`${c}/`))) problems.push(`ENTRYPOINT runs ${file}, not copied into the final stage`);
    }
    seen.add(s.name);
  }
  return problems;
}

/** Debian packages an `apt-get install` of the stage installs. */
function aptPackages(s: Stage): Set<string> {
  const out = new Set<string>();
  for (const i of s.instrs) {
    if (i.op !== 'RUN') continue;
    for (const [, list] of i.args.matchAll(/apt-get install ([^&;]+)/g)) {
      for (const w of list!.split(/\s+/)) if (w && !w.startsWith('-')) out.add(w);
    }
  }
  return out;
}

/** The -dev package each dependency of dataplane/meson.build comes from on Debian. */
const DEBIAN_DEV: Record<string, string | null> = {
  libdpdk: 'libdpdk-dev', rte_net_ring: 'libdpdk-dev', libpcap: 'libpcap-dev', pcap: 'libpcap-dev', threads: null,
};

function compose(): { dockerfiles: string[] } {
  const text = readFileSync(path.join(root, 'docker/compose.yaml'), 'utf8');
  const dockerfiles = [...text.matchAll(/build:\s*\{\s*context:\s*\.\.,\s*dockerfile:\s*([^\s}]+)\s*\}/g)].map((m) => m[1]!);
  return { dockerfiles };
}

test('every Dockerfile the compose file builds passes the offline lint', () => {
  const { dockerfiles } = compose();
  assert.deepEqual(dockerfiles.sort(), ['docker/control.Dockerfile', 'docker/ferryd.Dockerfile']);
  for (const f of dockerfiles) {
    assert.ok(existsSync(path.join(root, f)), `${f} is missing`);
    assert.deepEqual(lintDockerfile(readFileSync(path.join(root, f), 'utf8')), [], f);
  }
});

test('the lint finds what is wrong', () => {
  const good = readFileSync(path.join(root, 'docker/ferryd.Dockerfile'), 'utf8');
  assert.match(lintDockerfile(good.replace('COPY --from=build', 'COPY --from=builder')).join('\n'), /no earlier stage/);
  assert.match(lintDockerfile(good.replace('COPY dataplane/ dataplane/', 'COPY dataplanes/ dataplane/')).join('\n'), /not in the build context/);
  assert.match(lintDockerfile(good.replace('ENTRYPOINT', 'ENTRYPIONT')).join('\n'), /unknown instruction/);
  assert.match(lintDockerfile(good.replace('COPY --from=build /build/ferryd /usr/local/bin/ferryd',
    'COPY --from=build /build/ferryd /usr/bin/ferryd')).join('\n'), /was not copied/);
  assert.match(lintDockerfile('FROM debian:bookworm-slim\nCOPY node_modules/ x/\n').join('\n'), /\.dockerignore|not in the build context/);
});

test('the ferryd image installs every library the meson build looks for', () => {
  const meson = readFileSync(path.join(root, 'dataplane/meson.build'), 'utf8');
  const deps = new Set<string>();
  for (const [, name] of meson.matchAll(/(?:dependency|find_library)\('([^']+)'/g)) deps.add(name!);
  const build = stages(parseDockerfile(readFileSync(path.join(root, 'docker/ferryd.Dockerfile'), 'utf8')))[0]!;
  const pkgs = aptPackages(build);
  for (const d of deps) {
    assert.ok(d in DEBIAN_DEV, `meson looks for '${d}': add its Debian package to DEBIAN_DEV in this test`);
    const pkg = DEBIAN_DEV[d];
    if (pkg) assert.ok(pkgs.has(pkg), `the build stage of docker/ferryd.Dockerfile does not install ${pkg} (for meson's '${d}')`);
  }
  if (/find_program\('node'\)/.test(meson)) assert.ok(pkgs.has('nodejs'), 'meson runs node (the layout generator): install nodejs');
});
