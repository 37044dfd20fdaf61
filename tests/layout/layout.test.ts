// The shared-memory layout seen three ways must agree byte for byte: the C compiler
// (ferry-layout-dump, built from the generated header), the generator's TS tables the
// control service uses, and ref-struct-di computing offsets from its own rules.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as proto from '../../control/src/gen/proto';

const root = path.resolve(__dirname, '../../..');
const dumpBin = path.join(root, 'dataplane/build/ferry-layout-dump');

interface CLayout {
  abi_version: number;
  layout_hash: string;
  structs: Record<string, { size: number; align: number; fields: Record<string, [number, number]> }>;
}

test('C compiler and TS tables agree on every struct, field, size and the hash', () => {
  const c = JSON.parse(execFileSync(dumpBin, { encoding: 'utf8' })) as CLayout;
  assert.equal(c.abi_version, proto.ABI_VERSION);
  assert.equal(BigInt('0x' + c.layout_hash), proto.LAYOUT_HASH);
  assert.deepEqual(Object.keys(c.structs).sort(), proto.STRUCTS.map((s) => s.name).sort());
  let fields = 0;
  for (const s of proto.STRUCTS) {
    const cs = c.structs[s.name];
    assert.ok(cs, s.name);
    assert.equal(cs.size, s.size, `${s.name} size`);
    assert.equal(cs.align, s.align, `${s.name} align`);
    assert.deepEqual(Object.keys(cs.fields).sort(), Object.keys(s.fields).sort(), `${s.name} fields`);
    for (const [name, f] of Object.entries(s.fields)) {
      assert.deepEqual(cs.fields[name], [f.offset, f.size], `${s.name}.${name}`);
      fields++;
    }
  }
  assert.ok(fields > 50, `checked ${fields} fields`);
});

test('ref-struct-di lays the structs out the same way', () => {
  /* eslint-disable @typescript-eslint/no-require-imports */
  const ref = require('@2060.io/ref-napi');
  const StructType = require('ref-struct-di')(ref);
  const ArrayType = require('ref-array-di')(ref);
  /* eslint-enable @typescript-eslint/no-require-imports */
  const types = proto.defineRefStructs(StructType, ArrayType);
  for (const s of proto.STRUCTS) {
    const t = types[s.name];
    assert.equal(t.size, s.size, `${s.name} size`);
    for (const [name, f] of Object.entries(s.fields)) {
      assert.equal(t.fields[name].offset, f.offset, `${s.name}.${name}`);
    }
  }
});

test('the generated readers and writers round-trip a record at its offsets', () => {
  const buf = Buffer.alloc(proto.ACT_CT.size + 16);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const label = Array.from({ length: 16 }, (_, i) => i * 3);
  const v: proto.ActCt = {
    hdr: { type: proto.ActionType.CT, len: proto.ACT_CT.size, pad0: 0 },
    flags: proto.CtFlag.COMMIT | proto.CtFlag.NAT | proto.CtFlag.NAT_SRC, zone: 5, zone_reg: 0, zone_reg_ofs: 0,
    table_id: 1, alg: proto.CtAlg.FTP, mark: 0xdeadbeef, mark_mask: 0xffffffff, label, label_mask: label.map(() => 255),
    nat_addr_min: [10, 0, 0, 1, ...Array(12).fill(0)], nat_addr_max: [10, 0, 0, 9, ...Array(12).fill(0)],
    nat_port_min: 1024, nat_port_max: 65535, nat_is_ipv6: 0, pad0: [0, 0, 0],
  };
  proto.writeActCt(dv, 16, v);
  assert.deepEqual(proto.readActCt(dv, 16), v);
  assert.equal(buf.readUInt32LE(16 + proto.ACT_CT.fields.mark.offset), 0xdeadbeef);
  assert.equal(buf.readUInt16LE(16 + proto.ACT_CT.fields.nat_port_min.offset), 1024);
  assert.equal(buf[16 + proto.ACT_CT.fields.label.offset + 2], 6);
});

test('any change to the layout changes the hash both sides compare', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'ferry-proto-'));
  try {
    cpSync(path.join(root, 'proto/gen.mjs'), path.join(dir, 'gen.mjs'));
    const layout = JSON.parse(readFileSync(path.join(root, 'proto/layout.json'), 'utf8'));
    const hashOf = (l: unknown): string => {
      writeFileSync(path.join(dir, 'layout.json'), JSON.stringify(l));
      return execFileSync('node', [path.join(dir, 'gen.mjs'), '--hash', ''], { encoding: 'utf8' }).trim();
    };
    const base = hashOf(layout);
    assert.equal(BigInt(base), proto.LAYOUT_HASH);
    const field = layout.structs.flow_add.fields[1];
    const was = field[1];
    field[1] = was === 'u16' ? 'u32' : 'u16'; // one field changes width
    assert.notEqual(hashOf(layout), base);
    field[1] = was;
    layout.structs.flow_add.doc = 'comments do not count';
    assert.equal(hashOf(layout), base);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
