// Writes the fuzzers' seed corpora (dataplane/fuzz/corpus/{parse,ctl}) using the generated
// layout, so seeds follow proto/layout.json. Run: node dataplane/fuzz/make_seeds.js
const fs = require('fs');
const path = require('path');
const P = require('../../build/control/src/gen/proto.js');
const dir = (d) => { const p = path.join(__dirname, 'corpus', d); fs.mkdirSync(p, { recursive: true }); return p; };

function eth(type, payload) {
  const h = Buffer.from('02fe0000000202fe00000001', 'hex');
  const t = Buffer.alloc(2); t.writeUInt16BE(type);
  return Buffer.concat([h, t, payload]);
}
function ipv4(proto, l4) {
  const h = Buffer.alloc(20);
  h[0] = 0x45; h.writeUInt16BE(20 + l4.length, 2); h[8] = 64; h[9] = proto;
  Buffer.from([10, 0, 0, 1, 10, 0, 0, 2]).copy(h, 12);
  return Buffer.concat([h, l4]);
}
const tcp = Buffer.alloc(20); tcp.writeUInt16BE(1234, 0); tcp.writeUInt16BE(80, 2); tcp[12] = 0x50; tcp[13] = 0x02;
const udp = Buffer.alloc(8); udp.writeUInt16BE(53, 0); udp.writeUInt16BE(53, 2); udp.writeUInt16BE(8, 4);
const v6 = Buffer.alloc(40); v6[0] = 0x60; v6.writeUInt16BE(16, 4); v6[6] = 0; v6[7] = 64;
const hbh = Buffer.alloc(8); hbh[0] = 17;
const arp = Buffer.from('0001080006040001' + '02fe00000001' + '0a000001' + '000000000000' + '0a000002', 'hex');
const vlan = Buffer.from([0x20, 0x05, 0x08, 0x00]);
const packets = {
  tcp4: eth(0x0800, ipv4(6, tcp)),
  udp4: eth(0x0800, ipv4(17, udp)),
  udp6ext: eth(0x86dd, Buffer.concat([v6, hbh, udp])),
  arp: eth(0x0806, arp),
  vlan_udp4: eth(0x8100, Buffer.concat([vlan, ipv4(17, udp)])),
};
for (const [n, b] of Object.entries(packets)) fs.writeFileSync(path.join(dir('parse'), n), b);

// control records: [u16 length][record] ...
function record(type, flags, body) {
  const rec = Buffer.alloc(P.MSG_HDR.size + body.length);
  const dv = new DataView(rec.buffer, rec.byteOffset, rec.byteLength);
  P.writeMsgHdr(dv, 0, { type, flags, len: body.length, req_id: 1n });
  body.copy(rec, P.MSG_HDR.size);
  const len = Buffer.alloc(2); len.writeUInt16LE(rec.length);
  return Buffer.concat([len, rec]);
}
function flowAdd(id, inPort, outPort, extraActions = Buffer.alloc(0)) {
  const b = Buffer.alloc(P.FLOW_ADD.size);
  const F = P.FLOW_ADD.fields, K = P.FLOW_KEY.fields;
  b.writeBigUInt64LE(BigInt(id), F.id.offset);
  b.writeUInt16LE(100, F.priority.offset);
  b.writeUInt32LE(inPort, F.key.offset + K.in_port.offset);
  b.writeUInt32LE(0xffffffff, F.mask.offset + K.in_port.offset);
  const out = Buffer.alloc(P.ACT_OUTPUT.size);
  out.writeUInt16LE(P.ActionType.OUTPUT, 0); out.writeUInt16LE(P.ACT_OUTPUT.size, 2);
  out.writeUInt32LE(outPort, P.ACT_OUTPUT.fields.port.offset);
  const actions = Buffer.concat([extraActions, out]);
  actions.copy(b, F.actions.offset);
  b.writeUInt16LE(actions.length, F.actions_len.offset);
  return b;
}
const dec = Buffer.alloc(8); dec.writeUInt16LE(P.ActionType.DEC_TTL, 0); dec.writeUInt16LE(8, 2);
const ct = Buffer.alloc(P.ACT_CT.size); ct.writeUInt16LE(P.ActionType.CT, 0); ct.writeUInt16LE(P.ACT_CT.size, 2);
ct[P.ACT_CT.fields.table_id.offset] = 255;
const del = Buffer.alloc(P.FLOW_DEL.size); del.writeBigUInt64LE(7n, 0);
const seeds = {
  add: record(P.MsgType.FLOW_ADD, 0, flowAdd(7, 0, 1)),
  add_dec_ct: record(P.MsgType.FLOW_ADD, 0, flowAdd(8, 1, 2, Buffer.concat([dec, ct]))),
  bundle: Buffer.concat([record(P.MsgType.FLOW_ADD, P.MsgFlag.IN_BUNDLE, flowAdd(9, 2, 3)),
    record(P.MsgType.BUNDLE_COMMIT, 0, Buffer.alloc(0))]),
  add_del: Buffer.concat([record(P.MsgType.FLOW_ADD, 0, flowAdd(7, 0, 1)), record(P.MsgType.FLOW_DEL, 0, del)]),
  ping: record(P.MsgType.PING, 0, Buffer.alloc(0)),
};
for (const [n, b] of Object.entries(seeds)) fs.writeFileSync(path.join(dir('ctl'), n), b);
console.log('seeds written');
