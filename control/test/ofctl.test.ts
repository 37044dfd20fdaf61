// The ovs-ofctl parser, formatter and encoder, without a ferryd.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ACT_CT, ACT_HDR, ACT_OUTPUT, ACT_SET_FIELD, ACTIONS_MAX, ActionType, CtFlag, FieldId, FLOW_KEY, PORT_IN_PORT, TABLE_NONE,
} from '../src/gen/proto';
import {
  CompiledFlow, FIELDS, FlowSyntaxError, compileFlow, eachFlowLine, flowJson, splitTokens, formatFlow, jsonFlowInput, parseFlowText,
} from '../src/flows/ofctl';
import { fnv1a64, fnv1a64Fast, flowId, flowIdParts, flowIdPartsPacked } from '../src/flows/flow-id';
import { pack, packedKey, packedMask, unpackInto } from '../src/flows/ofctl/packed';
import { syntaxProblem } from '../src/flows/service';
import { FlowRecord, flowFromRecord, flowKey, flowRecordText } from '../src/flows/persist';

import { CORPUS, compile, flowRecord, ports, randomKeyMask, randomSource } from './corpus';

function same(a: CompiledFlow, b: CompiledFlow, what: string): void {
  assert.equal(b.id, a.id, `${what}: id`);
  assert.deepEqual(b.key, a.key, `${what}: key`);
  assert.deepEqual(b.mask, a.mask, `${what}: mask`);
  assert.deepEqual(b.actions, a.actions, `${what}: actions`);
  assert.deepEqual(b.tlv, a.tlv, `${what}: action TLVs`);
  assert.equal(b.cookie, a.cookie);
  assert.equal(b.table, a.table);
  assert.equal(b.priority, a.priority);
  assert.equal(b.idleTimeout, a.idleTimeout);
  assert.equal(b.hardTimeout, a.hardTimeout);
  assert.deepEqual(b.flags, a.flags);
}

test('every line the formatter prints parses back to the same flow (text, dump-flows and JSON)', () => {
  for (const line of CORPUS) {
    const f = compile(line);
    const text = formatFlow(f);
    const f2 = compile(text);
    same(f, f2, `${line}\n  -> ${text}`);
    assert.equal(formatFlow(f2), text, 'formatting is stable');
    const dump = formatFlow(f, { durationSec: 12.3456, packets: 10n, bytes: 600n });
    assert.match(dump, /^ cookie=0x[0-9a-f]+, duration=12\.346s, table=\d+, n_packets=10, n_bytes=600, /);
    same(f, compile(dump), `dump-flows line ${dump}`);
    const json = JSON.parse(JSON.stringify(flowJson(f)));
    same(f, compileFlow(jsonFlowInput(json), ports), `JSON ${JSON.stringify(json)}`);
  }
});

test('the corpus covers every field, alias, shorthand and action form', () => {
  const used = new Set<string>();
  const actionWords = new Set<string>();
  for (const line of CORPUS) {
    const [m, a] = line.split(/[\s,]actions=/);
    for (const t of m!.split(/[\s,]+/)) used.add(t.split('=')[0]!);
    for (const w of a!.matchAll(/([a-zA-Z_0-9]+)[:(]/g)) actionWords.add(w[1]!.toLowerCase());
    for (const w of a!.split(',')) if (/^[a-z_A-Z]+$/.test(w)) actionWords.add(w.toLowerCase());
  }
  const missing = FIELDS.flatMap((f) => [f.name, ...f.aliases]).filter((n) => !used.has(n));
  assert.deepEqual(missing, [], 'fields the corpus lacks');
  for (const s of ['ip', 'ipv6', 'tcp', 'udp', 'sctp', 'icmp', 'icmp6', 'arp', 'tcp6', 'udp6', 'sctp6']) assert.ok(used.has(s), `corpus lacks ${s}`);
  for (const a of ['output', 'drop', 'in_port', 'goto_table', 'resubmit', 'set_field', 'mod_dl_src', 'mod_dl_dst', 'mod_nw_src',
    'mod_nw_dst', 'mod_tp_src', 'mod_tp_dst', 'mod_vlan_vid', 'mod_vlan_pcp', 'mod_nw_tos', 'mod_nw_ttl', 'mod_nw_ecn', 'set_tunnel',
    'push_vlan', 'pop_vlan', 'strip_vlan', 'dec_ttl', 'ct', 'exec', 'nat', 'ct_clear', 'notrack', 'normal', 'controller', 'note']) {
    assert.ok(actionWords.has(a), `corpus lacks action ${a}`);
  }
});

test('dump-flows spelling: OVS order, shorthands, defaults omitted', () => {
  const f = compile('table=0,priority=100,ip,nw_src=10.0.0.0/24,idle_timeout=10 actions=ct(commit,zone=5,table=1)');
  assert.equal(formatFlow(f, { durationSec: 12.345, packets: 10n, bytes: 600n }),
    ' cookie=0x0, duration=12.345s, table=0, n_packets=10, n_bytes=600, idle_timeout=10, priority=100,ip,nw_src=10.0.0.0/24 actions=ct(commit,table=1,zone=5)');
  assert.equal(formatFlow(compile('actions=drop')), 'actions=drop');
  assert.equal(formatFlow(compile('priority=32768,in_port=1 actions=1')), 'in_port=1 actions=output:1');
  assert.equal(formatFlow(compile('nw_proto=6,dl_type=0x0800,tcp_dst=80,cookie=0x2a,table=3 actions=NORMAL')), 'cookie=0x2a, table=3, tcp,tp_dst=80 actions=NORMAL');
  assert.equal(formatFlow(compile('send_flow_rem,ip actions=drop'), { durationSec: 1, packets: 0n, bytes: 0n }),
    ' cookie=0x0, duration=1s, table=0, n_packets=0, n_bytes=0, send_flow_rem ip actions=drop');
  assert.equal(formatFlow(compile('dl_type=0x88cc actions=drop')), 'dl_type=0x88cc actions=drop');
  assert.equal(formatFlow(compile('icmp6,icmpv6_type=135 actions=drop')), 'icmp6,icmp_type=135 actions=drop');
  assert.equal(formatFlow(compile('ipv6,ipv6_src=2001:0db8:0000:0000:0000:0000:0000:0001/64 actions=drop')), 'ipv6,ipv6_src=2001:db8::/64 actions=drop');
  assert.equal(formatFlow(compile('reg0=0,reg1=0x5/0xf actions=drop')), 'reg0=0,reg1=0x5/0xf actions=drop');
  assert.equal(formatFlow(compile('ct_state=-trk actions=drop')), 'ct_state=-trk actions=drop');
  assert.equal(formatFlow(compile('vlan_vid=10,vlan_pcp=3 actions=drop')), 'dl_vlan=10,dl_vlan_pcp=3 actions=drop');
});

test('ct_state untracked (what notrack gives): text, dump-flows and JSON round trips; a bad name is a 400 naming its token', () => {
  // +trk+untracked: bits 0x20|0x200 in value and mask, printed and read back the same way
  const f = compile('table=1,ct_state=+trk+untracked actions=output:1');
  const o = FLOW_KEY.fields.ct_state.offset;
  assert.equal(hex(f.key.subarray(o, o + 4)), '20020000');
  assert.equal(hex(f.mask.subarray(o, o + 4)), '20020000');
  assert.equal(formatFlow(f), 'table=1, ct_state=+trk+untracked actions=output:1');
  const dump = formatFlow(f, { durationSec: 1, packets: 2n, bytes: 120n });
  assert.match(dump, /, ct_state=\+trk\+untracked actions=output:1$/);
  same(f, compile(dump), 'dump-flows');
  const json = JSON.parse(JSON.stringify(flowJson(f))) as { match: Record<string, unknown> };
  assert.deepEqual(json.match, { ct_state: '+trk+untracked' });
  same(f, compileFlow(jsonFlowInput(json), ports), 'JSON');
  for (const alt of ['ct_state=+untracked+trk', 'ct_state=0x220/0x220', 'ct_state=+trk+UNTRACKED']) {
    same(f, compile(`table=1,${alt} actions=output:1`), alt);
  }
  // -untracked, and the exact form (every bit: the mask is 0x3ff now)
  const minus = compile('ct_state=+trk-untracked actions=drop');
  assert.equal(hex(minus.key.subarray(o, o + 4)), '20000000');
  assert.equal(hex(minus.mask.subarray(o, o + 4)), '20020000');
  assert.equal(formatFlow(minus), 'ct_state=+trk-untracked actions=drop');
  const exact = compile('ct_state=trk|untracked actions=drop');
  assert.equal(hex(exact.mask.subarray(o, o + 4)), 'ff030000');
  assert.equal(formatFlow(exact), 'ct_state=trk|untracked actions=drop');
  assert.equal(flowJson(exact).match['ct_state'], 'trk|untracked');
  same(exact, compile('ct_state=0x220 actions=drop'), 'exact by number');
  // a misspelt name, in text and in JSON: a FlowSyntaxError at /match/ct_state naming the token, a 400
  const bad: [() => unknown, RegExp][] = [
    [() => compile('ct_state=+trk+untrackd actions=drop'), /^ct_state: unknown flag "untrackd"$/],
    [() => compile('ct_state=trk|untrack actions=drop'), /^ct_state: unknown flag "untrack"$/],
    [() => compileFlow(jsonFlowInput({ match: { ct_state: '+trk+notrack' }, actions: [] }), ports), /^ct_state: unknown flag "notrack"$/],
    [() => compile('ct_state=0x400/0x400 actions=drop'), /mask 0x400 has bits outside 0x3ff/],
  ];
  for (const [run, msg] of bad) {
    try {
      run();
      assert.fail(`no error for ${msg}`);
    } catch (e) {
      if (!(e instanceof FlowSyntaxError)) throw e;
      assert.deepEqual(e.path, ['match', 'ct_state']);
      assert.match(e.message, msg);
      const p = syntaxProblem(e, '', '');
      assert.equal(p.status, 400);
      assert.deepEqual(p.errors?.map((x) => x.pointer), ['/match/ct_state']);
      assert.match(p.detail, msg);
    }
  }
});

// ---- byte-level encoding ---------------------------------------------------------------------
const hex = (b: Uint8Array | number[]): string => Buffer.from(b as Uint8Array).toString('hex');
function region(f: CompiledFlow, field: keyof typeof FLOW_KEY.fields, len?: number, at = 0): [string, string] {
  const o = FLOW_KEY.fields[field].offset + at;
  const n = len ?? FLOW_KEY.fields[field].size;
  return [hex(f.key.subarray(o, o + n)), hex(f.mask.subarray(o, o + n))];
}

test('each field lands in flow_key at its generated offset, integers little-endian, addresses in network order', () => {
  const cases: [string, keyof typeof FLOW_KEY.fields, number | undefined, number, string, string][] = [
    ['in_port=eth1', 'in_port', undefined, 0, '01000000', 'ffffffff'],
    ['metadata=0x1122/0xff00', 'metadata', undefined, 0, '0011000000000000', '00ff000000000000'],
    ['reg3=0x12345678', 'reg', 4, 12, '78563412', 'ffffffff'],
    ['reg0=0x5/0xf', 'reg', 4, 0, '05000000', '0f000000'],
    ['tun_id=0x0102030405060708', 'tun_id', undefined, 0, '0807060504030201', 'ffffffffffffffff'],
    ['tun_src=1.2.3.4', 'tun_src', undefined, 0, '01020304', 'ffffffff'],
    ['tun_dst=10.0.0.0/8', 'tun_dst', undefined, 0, '0a000000', 'ff000000'],
    ['ct_state=+trk-inv', 'ct_state', undefined, 0, '20000000', '30000000'],
    ['ct_state=+srpl', 'ct_state', undefined, 0, '00010000', '00010000'],
    ['ct_state=+untracked', 'ct_state', undefined, 0, '00020000', '00020000'],
    ['ct_zone=0x102', 'ct_zone', undefined, 0, '0201', 'ffff'],
    ['ct_mark=0x1/0x3', 'ct_mark', undefined, 0, '01000000', '03000000'],
    ['ct_label=0x0102/0xffff', 'ct_label', undefined, 0, '0'.repeat(28) + '0102', '0'.repeat(28) + 'ffff'],
    ['ip,ct_nw_src=10.0.0.1', 'ct_nw_src', undefined, 0, '0a000001' + '0'.repeat(24), 'ffffffff' + '0'.repeat(24)],
    ['ip,ct_nw_dst=10.0.0.0/16', 'ct_nw_dst', 4, 0, '0a000000', 'ffff0000'],
    ['ipv6,ct_ipv6_src=::1', 'ct_nw_src', undefined, 0, '0'.repeat(30) + '01', 'f'.repeat(32)],
    ['ipv6,ct_ipv6_dst=2001:db8::/32', 'ct_nw_dst', undefined, 0, '20010db8' + '0'.repeat(24), 'ffffffff' + '0'.repeat(24)],
    ['ct_nw_proto=17', 'ct_nw_proto', undefined, 0, '11', 'ff'],
    ['ct_nw_proto=6,ct_tp_src=80', 'ct_tp_src', undefined, 0, '5000', 'ffff'],
    ['ct_nw_proto=6,ct_tp_dst=0x100/0xff00', 'ct_tp_dst', undefined, 0, '0001', '00ff'],
    ['dl_src=01:02:03:04:05:06', 'eth_src', undefined, 0, '010203040506', 'ffffffffffff'],
    ['eth_dst=01:02:03:04:05:06/ff:ff:ff:00:00:00', 'eth_dst', undefined, 0, '010203000000', 'ffffff000000'],
    ['dl_type=0x0800', 'eth_type', undefined, 0, '0008', 'ffff'],
    ['dl_vlan=10', 'vlan_tci', undefined, 0, '0a10', 'ff1f'],
    ['vlan_pcp=3', 'vlan_tci', undefined, 0, '0070', '00f0'],
    ['vlan_tci=0', 'vlan_tci', undefined, 0, '0000', 'ffff'],
    ['vlan_tci=0x1234/0x0fff', 'vlan_tci', undefined, 0, '3402', 'ff0f'],
    ['ip,nw_src=10.1.2.0/24', 'nw_src', undefined, 0, '0a010200' + '0'.repeat(24), 'ffffff00' + '0'.repeat(24)],
    ['ip,nw_dst=10.1.2.3/255.0.255.0', 'nw_dst', 4, 0, '0a000200', 'ff00ff00'],
    ['ipv6,ipv6_src=2001:db8::1', 'nw_src', undefined, 0, '20010db8' + '0'.repeat(22) + '01', 'f'.repeat(32)],
    ['ipv6,ipv6_dst=2001:db8::/ffff:0:ffff::', 'nw_dst', undefined, 0, '20010000' + '0'.repeat(24), 'ffff0000ffff' + '0'.repeat(20)],
    ['ipv6,ipv6_label=0x12345', 'ipv6_label', undefined, 0, '45230100', 'ffff0f00'],
    ['ip,nw_proto=17', 'nw_proto', undefined, 0, '11', 'ff'],
    ['ip,ip_dscp=10', 'nw_tos', undefined, 0, '28', 'fc'],
    ['ip,nw_tos=40', 'nw_tos', undefined, 0, '28', 'fc'],
    ['ip,ip_ecn=3', 'nw_tos', undefined, 0, '03', '03'],
    ['ip,nw_ttl=64', 'nw_ttl', undefined, 0, '40', 'ff'],
    ['ip,ip_frag=no', 'nw_frag', undefined, 0, '00', '01'],
    ['ip,ip_frag=first', 'nw_frag', undefined, 0, '01', '03'],
    ['ip,ip_frag=later', 'nw_frag', undefined, 0, '03', '03'],
    ['ip,ip_frag=yes', 'nw_frag', undefined, 0, '01', '01'],
    ['ip,ip_frag=not_later', 'nw_frag', undefined, 0, '00', '02'],
    ['tcp,tp_src=0x1000/0xf000', 'tp_src', undefined, 0, '0010', '00f0'],
    ['udp,udp_dst=53', 'tp_dst', undefined, 0, '3500', 'ffff'],
    ['sctp,sctp_src=258', 'tp_src', undefined, 0, '0201', 'ffff'],
    ['tcp,tcp_flags=+syn-ack', 'tcp_flags', undefined, 0, '0200', '1200'],
    ['icmp,icmp_type=8', 'tp_src', 1, 0, '08', 'ff'],
    ['icmp,icmp_code=3', 'tp_dst', 1, 0, '03', 'ff'],
    ['icmp6,icmpv6_type=135', 'tp_src', 1, 0, '87', 'ff'],
    ['arp,arp_op=2', 'nw_proto', undefined, 0, '02', 'ff'],
    ['arp,arp_spa=10.0.0.1', 'nw_src', 4, 0, '0a000001', 'ffffffff'],
    ['arp,arp_tpa=10.0.0.0/8', 'nw_dst', 4, 0, '0a000000', 'ff000000'],
    ['arp,arp_sha=00:11:22:33:44:55', 'arp_sha', undefined, 0, '001122334455', 'ffffffffffff'],
    ['arp,arp_tha=00:11:22:33:44:55/ff:ff:ff:ff:ff:00', 'arp_tha', undefined, 0, '001122334400', 'ffffffffff00'],
  ];
  for (const [m, field, len, at, k, mk] of cases) {
    const f = compile(`${m} actions=drop`);
    assert.deepEqual(region(f, field, len, at), [k, mk], m);
    for (let i = 0; i < f.key.length; i++) assert.equal(f.key[i]! & ~f.mask[i]!, 0, `${m}: key bit outside mask at byte ${i}`);
  }
  // nothing else is matched than what was asked (plus the shorthand's eth_type/nw_proto)
  const only = compile('ip,nw_src=10.1.2.0/24 actions=drop');
  const set = [...only.mask.keys()].filter((i) => only.mask[i]);
  const et = FLOW_KEY.fields.eth_type.offset;
  const ns = FLOW_KEY.fields.nw_src.offset;
  assert.deepEqual(set, [et, et + 1, ns, ns + 1, ns + 2]);
});

test('aliases, shorthands and field order give the same id; another priority/table/match another', () => {
  const groups = [
    ['ip,nw_src=10.0.0.1', 'dl_type=0x0800,ip_src=10.0.0.1', 'ipv4_src=10.0.0.1,eth_type=2048', 'nw_src=10.0.0.1/32,ip'],
    ['tcp,tp_dst=80', 'nw_proto=6,ip,tcp_dst=80', 'tcp_dst=80,tcp', 'ip_proto=6,dl_type=0x800,tp_dst=0x50'],
    ['dl_vlan=10', 'vlan_vid=10', 'vlan_tci=0x100a/0x1fff'],
    ['ip,nw_tos=40', 'ip,ip_dscp=10'],
    ['tun_id=5', 'tunnel_id=0x5'],
    ['ip,nw_src=10.0.0.0/24', 'ip,nw_src=10.0.0.7/255.255.255.0'],
    ['dl_src=aa:bb:cc:dd:ee:ff', 'eth_src=AA:BB:CC:DD:EE:FF'],
    ['in_port=eth1', 'in_port=1'],
    ['ct_state=+trk+est', 'ct_state=0x22/0x22', 'ct_state=+est+trk'],
  ];
  const ids = new Set<bigint>();
  for (const g of groups) {
    const id = compile(`priority=7,${g[0]} actions=drop`).id;
    for (const alt of g) assert.equal(compile(`${alt},priority=7 actions=output:1`).id, id, `${alt} vs ${g[0]}`);
    assert.ok(!ids.has(id), 'distinct matches have distinct ids');
    ids.add(id);
    assert.notEqual(compile(`priority=8,${g[0]} actions=drop`).id, id);
    assert.notEqual(compile(`table=1,priority=7,${g[0]} actions=drop`).id, id);
  }
  // the id is FNV-1a 64 of table, priority (LE) and the key and mask bytes
  const f = compile('table=3,priority=258,tcp,tp_dst=80 actions=drop');
  assert.equal(f.id, fnv1a64(Buffer.concat([Buffer.from([3, 2, 1]), f.key, f.mask])));
  assert.equal(flowId(3, 258, f.key, f.mask), f.id);
  const rnd = Uint8Array.from({ length: 999 }, (_, i) => (i * 7919) & 255);
  assert.equal(fnv1a64Fast([rnd]), fnv1a64(rnd));
  // runs of zeros of every length up to past MAX_RUN (1024), between bytes of every value, in parts
  const r = randomSource(11);
  for (let n = 0; n < 300; n++) {
    const bytes: number[] = [];
    while (bytes.length < 3000 && r(8) !== 0) {
      if (r(2)) for (let z = r(r(4) === 0 ? 2100 : 40); z > 0; z--) bytes.push(0);
      else bytes.push(r(256));
    }
    const all = Uint8Array.from(bytes);
    const cut = r(all.length + 1);
    assert.equal(fnv1a64Fast([all.subarray(0, cut), all.subarray(cut)]), fnv1a64(all), `case ${n} (${all.length} bytes)`);
  }
});

test('every prerequisite error names its token', () => {
  const cases: [string, string, RegExp][] = [
    ['tcp_dst=80', '/match/tcp_dst', /^tcp_dst: requires ip_proto=6 \(add "tcp"\)$/],
    ['ipv6,tcp_dst=80', '/match/tcp_dst', /requires ip_proto=6 \(add "tcp6"\)/],
    ['udp_src=1', '/match/udp_src', /requires ip_proto=17 \(add "udp"\)/],
    ['ip,sctp_dst=1', '/match/sctp_dst', /requires ip_proto=132 \(add "sctp"\)/],
    ['ip,tp_dst=80', '/match/tp_dst', /requires ip_proto=6, 17 or 132/],
    ['nw_src=1.1.1.1', '/match/nw_src', /^nw_src: requires eth_type=0x0800 \(add "ip"\)$/],
    ['ipv6,ip_dst=1.1.1.1', '/match/ip_dst', /requires eth_type=0x0800/],
    ['ipv6_src=::1', '/match/ipv6_src', /requires eth_type=0x86dd \(add "ipv6"\)/],
    ['ip,ipv6_label=1', '/match/ipv6_label', /requires eth_type=0x86dd/],
    ['nw_proto=6', '/match/nw_proto', /requires eth_type=0x0800 or 0x86dd/],
    ['nw_tos=4', '/match/nw_tos', /requires eth_type=0x0800 or 0x86dd/],
    ['ip_dscp=1', '/match/ip_dscp', /requires eth_type/],
    ['ip_ecn=1', '/match/ip_ecn', /requires eth_type/],
    ['nw_ttl=1', '/match/nw_ttl', /requires eth_type/],
    ['ip_frag=no', '/match/ip_frag', /requires eth_type/],
    ['udp,tcp_flags=+syn', '/match/tcp_flags', /requires ip_proto=6/],
    ['ip,icmp_type=8', '/match/icmp_type', /requires eth_type=0x0800 and ip_proto=1 \(add "icmp"\)/],
    ['icmp_code=0', '/match/icmp_code', /add "icmp"/],
    ['icmp,icmpv6_type=1', '/match/icmpv6_type', /requires eth_type=0x86dd and ip_proto=58 \(add "icmp6"\)/],
    ['icmpv6_code=1', '/match/icmpv6_code', /add "icmp6"/],
    ['ip,arp_op=1', '/match/arp_op', /requires eth_type=0x0806 \(add "arp"\)/],
    ['arp_spa=1.1.1.1', '/match/arp_spa', /add "arp"/],
    ['arp_tpa=1.1.1.1', '/match/arp_tpa', /add "arp"/],
    ['arp_sha=00:00:00:00:00:01', '/match/arp_sha', /add "arp"/],
    ['arp_tha=00:00:00:00:00:01', '/match/arp_tha', /add "arp"/],
    ['ipv6,ct_nw_src=1.1.1.1', '/match/ct_nw_src', /requires eth_type=0x0800/],
    ['ct_nw_dst=1.1.1.1', '/match/ct_nw_dst', /add "ip"/],
    ['ip,ct_ipv6_src=::1', '/match/ct_ipv6_src', /add "ipv6"/],
    ['ct_ipv6_dst=::1', '/match/ct_ipv6_dst', /add "ipv6"/],
    ['ct_tp_src=1', '/match/ct_tp_src', /requires ct_nw_proto/],
    ['ct_tp_dst=1', '/match/ct_tp_dst', /requires ct_nw_proto/],
    ['bogus=1', '/match/bogus', /^bogus: unknown field$/],
    ['ip,nw_src=10.0.0.256', '/match/nw_src', /not an IPv4 address/],
    ['ip,nw_src=10.0.0.0/33', '/match/nw_src', /over 32/],
    ['tcp,tp_dst=70000', '/match/tp_dst', /not a 16-bit value/],
    ['ip,nw_proto=6/0xff', '/match/nw_proto', /cannot be masked/],
    ['ct_state=+bogus', '/match/ct_state', /unknown flag "bogus"/],
    ['ip,ip_frag=sometimes', '/match/ip_frag', /not one of/],
    ['dl_src=01:02:03', '/match/dl_src', /not a MAC address/],
    ['tcp,udp', '/match/udp', /conflicts with tcp/],
    ['in_port=eth9', '/match/in_port', /port "eth9" does not exist/],
    ['ip actions=set_field:1->tcp_dst', '/actions/0', /^actions\[0\]: set_field tcp_dst: requires ip_proto=6 \(add "tcp"\)$/],
    ['actions=set_field:1.1.1.1->ip_src', '/actions/0', /set_field ip_src: requires eth_type=0x0800 \(add "ip"\)/],
    ['ip actions=mod_tp_dst:1', '/actions/0', /set_field tp_dst: requires ip_proto=6, 17 or 132/],
    ['actions=mod_nw_ttl:1', '/actions/0', /set_field nw_ttl: requires eth_type/],
    ['ipv6 actions=set_field:1->ip_dscp,set_field:1.1.1.1->ip_dst', '/actions/1', /ip_dst: requires eth_type=0x0800/],
    ['table=3 actions=goto_table:3', '/actions/0/table', /must go to a table after this flow's table 3/],
    ['actions=goto_table:5,output:1', '/actions/0', /goto_table must be the last action/],
    ['actions=output:1,drop', '/actions/1', /drop cannot be combined/],
    ['actions=output:9', '/actions/0/port', /port 9 does not exist/],
    ['actions=flood', '/actions/0/port', /port "flood" does not exist/],
    ['actions=set_field:1->in_port', '/actions/0/field', /set_field cannot write "in_port"/],
    ['actions=set_field:1->ct_mark', '/actions/0/field', /only be set inside ct/],
    ['actions=ct(exec(set_field:1->ct_mark))', '/actions/0/exec', /requires commit/],
    ['actions=ct(commit,exec(set_field:1->reg0))', '/actions/0/exec/0/field', /can only set ct_mark or ct_label/],
    ['actions=ct(zone=70000)', '/actions/0/zone', /0\.\.65535/],
    ['actions=ct(nat(src=1.1.1.1))', '/actions/0/nat/range', /nat to IPv4 requires eth_type=0x0800/],
    ['actions=push_vlan:0x800', '/actions/0/ethertype', /0x8100 or 0x88a8/],
    ['actions=controller(reason=because)', '/actions/0/reason', /reason must be one of/],
    ['actions=note:xyz', '/actions/0/data', /hex bytes/],
    ['priority=70000 actions=drop', '/priority', /0\.\.65535/],
    ['table=255 actions=drop', '/table', /0\.\.254/],
    ['ip', '/actions', /is required/],
    // names of Object.prototype are names like any other: nothing inherited is found by them
    ['constructor', '/match/constructor', /^constructor: unknown field$/],
    ['toString=1', '/match/toString', /^toString: unknown field$/],
    ['__proto__', '/match/__proto__', /^__proto__: unknown field$/],
    ['ip,ip_frag=constructor', '/match/ip_frag', /"constructor" is not one of/],
    ['ip,ip_frag=toString', '/match/ip_frag', /"toString" is not one of/],
    ['actions=constructor:1', '/actions/0', /unknown action "constructor:1"/],
    ['actions=hasOwnProperty:1', '/actions/0', /unknown action "hasOwnProperty:1"/],
    ['actions=controller(reason=constructor)', '/actions/0/reason', /reason must be one of/],
  ];
  for (const [line, pointer, msg] of cases) {
    const l = line.includes('actions') ? line : `${line} actions=drop`;
    try {
      compile(l === 'ip actions=drop' && line === 'ip' ? 'ip' : l);
      assert.fail(`no error for ${line}`);
    } catch (e) {
      if (!(e instanceof FlowSyntaxError)) throw e;
      assert.equal('/' + e.path.join('/'), pointer, `${line}: ${e.message}`);
      assert.match(e.message, msg, line);
    }
  }
});

test('a conflict names the token of this line that set the bits, whatever lines came before', () => {
  compile('udp,tp_dst=1 actions=drop'); // udp set eth_type and ip_proto in the line before
  assert.throws(() => compile('tcp,udp actions=drop'), (e: unknown) => e instanceof FlowSyntaxError && /^udp: conflicts with tcp$/.test(e.message));
  assert.throws(() => compile('ipv6,ip actions=drop'), (e: unknown) => e instanceof FlowSyntaxError && /^ip: conflicts with ipv6$/.test(e.message));
});

// ---- action TLVs -------------------------------------------------------------------------------
const dvOf = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);

test('actions encode as TLVs of 8-byte multiples with the generated layouts', () => {
  const f = compile('ip,tcp actions=output:2,in_port,set_field:10.0.0.1->ip_src,set_field:0x10/0xf0->reg2,pop_vlan,note:01.02.03,set_field:5->vlan_vid,set_field:80->tcp_dst,mod_nw_tos:40');
  const dv = dvOf(f.tlv);
  const items: [number, number, number][] = [];
  for (let at = 0; at < f.tlv.length;) {
    const type = dv.getUint16(at + ACT_HDR.fields.type.offset, true);
    const len = dv.getUint16(at + ACT_HDR.fields.len.offset, true);
    assert.equal(len % 8, 0);
    items.push([type, len, at]);
    at += len;
  }
  assert.deepEqual(items.map(([t, l]) => [t, l]), [
    [ActionType.OUTPUT, 16], [ActionType.OUTPUT, 16], [ActionType.SET_FIELD, 48], [ActionType.SET_FIELD, 48],
    [ActionType.POP_VLAN, 8], [ActionType.NOTE, 16], [ActionType.SET_FIELD, 48], [ActionType.SET_FIELD, 48], [ActionType.SET_FIELD, 48],
  ]);
  assert.equal(dv.getUint32(items[0]![2] + ACT_OUTPUT.fields.port.offset, true), 2);
  assert.equal(dv.getUint32(items[1]![2] + ACT_OUTPUT.fields.port.offset, true), PORT_IN_PORT);
  const sf = (i: number): [number, string, string] => {
    const at = items[i]![2];
    return [dv.getUint16(at + ACT_SET_FIELD.fields.field.offset, true),
      hex(f.tlv.subarray(at + ACT_SET_FIELD.fields.value.offset, at + ACT_SET_FIELD.fields.value.offset + 16)),
      hex(f.tlv.subarray(at + ACT_SET_FIELD.fields.mask.offset, at + ACT_SET_FIELD.fields.mask.offset + 16))];
  };
  const z = (n: number): string => '0'.repeat(n * 2);
  assert.deepEqual(sf(2), [FieldId.IPV4_SRC, '0a000001' + z(12), 'ffffffff' + z(12)]);
  assert.deepEqual(sf(3), [FieldId.REG2, '10000000' + z(12), 'f0000000' + z(12)]);
  assert.equal(hex(f.tlv.subarray(items[5]![2] + 8, items[5]![2] + 16)), '0102030000000000', 'note bytes, zero padded');
  assert.deepEqual(sf(6), [FieldId.VLAN_VID, '0500' + z(14), 'ff0f' + z(14)]);
  assert.deepEqual(sf(7), [FieldId.TP_DST, '5000' + z(14), 'ffff' + z(14)]);
  assert.deepEqual(sf(8), [FieldId.IP_DSCP, '28' + z(15), 'fc' + z(15)]);

  const ct = compile('ip actions=ct(commit,force,table=7,zone=NXM_NX_REG4[16..31],nat(src=10.0.0.1-10.0.0.2:80-90,random),exec(set_field:0x5/0xff->ct_mark,set_field:0x1->ct_label),alg=ftp)');
  const c = dvOf(ct.tlv);
  const F = ACT_CT.fields;
  assert.equal(c.getUint16(ACT_HDR.fields.type.offset, true), ActionType.CT);
  assert.equal(c.getUint16(ACT_HDR.fields.len.offset, true), ACT_CT.size);
  assert.equal(c.getUint16(F.flags.offset, true),
    CtFlag.COMMIT | CtFlag.FORCE | CtFlag.ZONE_FROM_REG | CtFlag.NAT | CtFlag.NAT_SRC | CtFlag.NAT_RANDOM);
  assert.equal(c.getUint8(F.zone_reg.offset), 4);
  assert.equal(c.getUint8(F.zone_reg_ofs.offset), 16);
  assert.equal(c.getUint8(F.table_id.offset), 7);
  assert.equal(c.getUint8(F.alg.offset), 1);
  assert.equal(c.getUint32(F.mark.offset, true), 5);
  assert.equal(c.getUint32(F.mark_mask.offset, true), 0xff);
  assert.equal(hex(ct.tlv.subarray(F.label.offset, F.label.offset + 16)), z(15) + '01');
  assert.equal(hex(ct.tlv.subarray(F.label_mask.offset, F.label_mask.offset + 16)), 'f'.repeat(32));
  assert.equal(hex(ct.tlv.subarray(F.nat_addr_min.offset, F.nat_addr_min.offset + 4)), '0a000001');
  assert.equal(hex(ct.tlv.subarray(F.nat_addr_max.offset, F.nat_addr_max.offset + 4)), '0a000002');
  assert.equal(c.getUint16(F.nat_port_min.offset, true), 80);
  assert.equal(c.getUint16(F.nat_port_max.offset, true), 90);
  assert.equal(c.getUint8(F.nat_is_ipv6.offset), 0);
  assert.equal(dvOf(compile('actions=ct(zone=3)').tlv).getUint8(F.table_id.offset), TABLE_NONE);

  assert.equal(compile('actions=drop').tlv.length, 0, 'drop is an empty list');
  assert.deepEqual([...compile('actions=normal,dec_ttl,ct_clear,notrack').tlv],
    [ActionType.NORMAL, 0, 8, 0, 0, 0, 0, 0, ActionType.DEC_TTL, 0, 8, 0, 0, 0, 0, 0,
      ActionType.CT_CLEAR, 0, 8, 0, 0, 0, 0, 0, ActionType.NOTRACK, 0, 8, 0, 0, 0, 0, 0]);
  const many = Array.from({ length: Math.floor(ACTIONS_MAX / ACT_CT.size) + 1 }, () => 'ct(zone=1)').join(',');
  assert.throws(() => compile(`actions=${many}`), /actions: too long: \d+ bytes encoded, ferryd takes at most 560/);
});

test('text lines: comments, blank lines, stats words and tokens split by commas or spaces', () => {
  const a = compile(' cookie=0x0, duration=1.5s, table=0, n_packets=3, n_bytes=4, idle_age=2, priority=5,tcp tp_dst=1   actions=drop');
  const b = compile('priority=5 tcp tp_dst=1 actions=drop');
  assert.equal(a.id, b.id);
  assert.throws(() => compile('priority=5'), /actions: is required/);
});

test('the journal text of every corpus flow is JSON.stringify of its record, and reads back to the same flow', () => {
  for (const line of CORPUS) {
    const f = compile(line);
    const text = flowRecordText(f);
    assert.equal(text, JSON.stringify(flowRecord(f)), line);
    // the record's runs, decoded here by hand, are the flow's key and mask, and hash to its id
    const rec = JSON.parse(text) as FlowRecord;
    const key = new Uint8Array(FLOW_KEY.size), mask = new Uint8Array(FLOW_KEY.size);
    for (const [off, k, m] of rec.r) {
      key.set(Buffer.from(k, 'hex'), off);
      mask.set(Buffer.from(m, 'hex'), off);
    }
    assert.deepEqual(key, f.key, line);
    assert.deepEqual(mask, f.mask, line);
    assert.equal(flowIdParts(rec.t, rec.p, key, mask)[0], f.id, line);
    const back = flowFromRecord(flowKey(f.id), rec);
    assert.equal(flowRecordText(back), text, line);
    same(f, back, line);
  }
});

test('bulk text: each flow line with its 1-based number; comments, blank lines and CRs dropped', () => {
  const got: [number, string][] = [];
  eachFlowLine('# header\r\npriority=1,actions=drop\r\n\n  \t\npriority=2,actions=drop # why\n#\npriority=3,actions=drop', (n, l) => got.push([n, l]));
  assert.deepEqual(got, [[2, 'priority=1,actions=drop'], [5, 'priority=2,actions=drop'], [7, 'priority=3,actions=drop']]);
  const none: number[] = [];
  eachFlowLine('', (n) => none.push(n));
  eachFlowLine('\n\n# only comments\n', (n) => none.push(n));
  assert.deepEqual(none, []);
});

test('tokens split as /[\\s,]+/ splits them, on 20,000 random lines of separators, letters and Unicode spaces', () => {
  const alphabet = [',', ' ', '\t', '\r', '\n', '\v', '\f', 'a', 'b', '=', '1', '\u00a0', '\u2003', 'é'];
  let seed = 12345;
  const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) % n;
  for (let k = 0; k < 20000; k++) {
    let s = '';
    for (let i = rnd(12); i > 0; i--) s += alphabet[rnd(alphabet.length)];
    assert.deepEqual(splitTokens(s), s.split(/[\s,]+/), JSON.stringify(s));
  }
});

test('a flow line\'s words are what /[\\s,]+/ splits: the ASCII scan agrees with the split on 5,000 random heads', () => {
  // the same head with one more separator spelled as a Unicode space goes through the split
  const words = ['table=1', 'priority=7', 'ip', 'tcp', 'nw_src=10.0.0.1', 'tp_dst=80', 'cookie=0x5', 'send_flow_rem', 'n_packets=3',
    'idle_timeout=9', 'a=b=c', '=x', 'in_port=', 'reset_counts', 'dl_vlan=5'];
  const seps = [',', ' ', '\t', ', ', ',,', ' \r', '\v', '\f'];
  const r = randomSource(5);
  const outcome = (line: string): string => {
    try {
      return JSON.stringify(parseFlowText(line));
    } catch (e) {
      if (e instanceof FlowSyntaxError) return `error ${e.message}`;
      throw e;
    }
  };
  for (let k = 0; k < 5000; k++) {
    let head = r(3) === 0 ? seps[r(seps.length)]! : '';
    for (let i = r(6) + 1; i > 0; i--) head += words[r(words.length)]! + (i > 1 || r(2) ? seps[r(seps.length)]! : '');
    const ascii = outcome(`${head},actions=drop`);
    assert.equal(outcome(`${head}\u00a0,actions=drop`), ascii, JSON.stringify(head));
  }
});

test('packed key and mask: 5,000 random matches unpack to what was packed and hash to the id of the full arrays', () => {
  const rnd = randomSource(99);
  const K = FLOW_KEY.size;
  for (let c = 0; c < 5000; c++) {
    const km = randomKeyMask(rnd);
    if (c === 1) km.fill(0xff); // one run of the whole key
    const p = pack(km);
    const key = km.slice(0, K), mask = km.slice(K);
    assert.deepEqual(packedKey(p), key);
    assert.deepEqual(packedMask(p), mask);
    const table = rnd(255), priority = rnd(65536);
    assert.deepEqual(flowIdPartsPacked(table, priority, p, K), flowIdParts(table, priority, key, mask), `case ${c}`);
    const out = new Uint8Array(2 * K + 10);
    unpackInto(p, out, 3, out, 3 + K);
    assert.deepEqual(out.slice(3, 3 + 2 * K), km);
  }
  // a match of nothing packs to nothing
  assert.equal(pack(new Uint8Array(2 * K)).len, 0);
});

test('a desired-state record of another key size, or with more actions than ferryd takes, is refused when read back', () => {
  const f = compile(CORPUS[0]!);
  const rec = JSON.parse(flowRecordText(f)) as FlowRecord;
  assert.doesNotThrow(() => flowFromRecord(flowKey(f.id), rec));
  assert.throws(() => flowFromRecord(flowKey(f.id), { ...rec, n: rec.n + 8 }), /not flow_key/);
  assert.throws(() => flowFromRecord(flowKey(f.id), { ...rec, v: Buffer.alloc(ACTIONS_MAX + 8).toString('base64') }), /more than the/);
});
