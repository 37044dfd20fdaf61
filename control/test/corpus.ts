// Flow lines that between them use every match field, alias, shorthand and action form, and a
// port resolver over three ports: what the ofctl and flow-row tests compile.
import { FLOW_KEY } from '../src/gen/proto';
import { CompiledFlow, FlowSyntaxError, PortResolver, compileFlow, eachPackedRun, parseFlowText } from '../src/flows/ofctl';
import type { FlowRecord } from '../src/flows/persist';

export const PORTS = ['eth0', 'eth1', 'tap0'];
export const ports: PortResolver = (ref, path, token) => {
  const n = typeof ref === 'number' ? ref : PORTS.indexOf(ref);
  if (n < 0 || n >= PORTS.length) throw new FlowSyntaxError(path, token, `port ${JSON.stringify(ref)} does not exist`);
  return n;
};
export const compile = (line: string): CompiledFlow => compileFlow(parseFlowText(line), ports);

// Every field (canonical name or alias) and every action form appears here at least once.
export const CORPUS = [
  'table=0,priority=100,ip,nw_src=10.0.0.0/24 actions=ct(commit,zone=5,table=1)',
  'priority=10,tcp,tp_dst=80,nw_dst=10.1.2.3,actions=output:1',
  'cookie=0x5,table=2,idle_timeout=10,hard_timeout=20,send_flow_rem,reset_counts,priority=5,tcp6,ipv6_src=fe80::1/64,tcp_flags=+syn-ack actions=set_field:fe80::2->ipv6_src,set_field:2001:db8::1->ipv6_dst',
  'dl_vlan=10,dl_vlan_pcp=3,dl_src=aa:bb:cc:dd:ee:ff/ff:ff:ff:00:00:00,dl_dst=01:00:5e:00:00:00/01:00:00:00:00:00 actions=push_vlan:0x88a8,pop_vlan,strip_vlan,dec_ttl,normal,controller:100,controller(reason=no_match,max_len=64),controller,note:01.02.03.04.05.06.07.08.09',
  'ct_state=+trk-new+est,ct_zone=5,ct_mark=0x1/0xff,ct_label=0x1234/0xffff,reg0=5,reg1=1,reg2=2,reg3=3,reg4=4,reg5=5,reg6=6,reg7=0x10/0xf0,metadata=0x1/0x1,tun_id=0x55,tun_src=1.1.1.1,tun_dst=2.2.2.0/24,in_port=eth0 actions=resubmit(,3),resubmit:1,resubmit(1,2),goto_table:4',
  'ip,ct_nw_src=1.1.1.1,ct_nw_dst=2.2.2.0/255.255.0.255,ct_nw_proto=6,ct_tp_src=80,ct_tp_dst=0x100/0xff00,ip_dscp=10,nw_ecn=1,nw_ttl=64,ip_frag=first actions=ct(commit,force,zone=NXM_NX_REG0[0..15],nat(src=10.0.0.1-10.0.0.9:1000-2000,persistent,hash,random),exec(set_field:0x1/0x1->ct_mark,set_field:0x5->ct_label),alg=ftp)',
  'arp,arp_op=1,arp_spa=10.0.0.1,arp_tpa=10.0.0.0/8,arp_sha=00:11:22:33:44:55,arp_tha=00:11:22:33:44:66/ff:ff:ff:ff:ff:00 actions=in_port',
  'icmp,icmp_type=8,icmp_code=0 actions=drop',
  'icmp6,icmpv6_type=135,icmpv6_code=0,ipv6_label=0x12345 actions=ct(nat)',
  'vlan_tci=0 actions=ct_clear,notrack',
  'vlan_tci=0x1000/0x1000,vlan_vid=0x10/0xff0 actions=mod_vlan_vid:5,mod_vlan_pcp:2,set_field:3->vlan_pcp,set_field:7->vlan_vid',
  'udp,udp_src=53,udp_dst=5353,nw_tos=40,ip_ecn=2 actions=mod_tp_src:99,mod_tp_dst:98,mod_nw_tos:8,mod_dl_src:00:00:00:00:00:01,mod_dl_dst:00:00:00:00:00:02,set_tunnel:0x5,set_tunnel64:0x6,mod_nw_ttl:9',
  'ip,nw_proto=1,ipv4_src=1.2.3.4,ipv4_dst=5.6.7.8 actions=mod_nw_src:9.9.9.9,mod_nw_dst:8.8.8.8,set_field:0x2->ip_ecn,mod_nw_ecn:1,set_field:33->ip_dscp,set_field:63->nw_ttl',
  'ipv6,ct_ipv6_src=::1,ct_ipv6_dst=2001:db8::/ffff:ffff::,ipv6_dst=2001:db8:0:0:1::1/ffff::ffff actions=ct(commit,nat(dst=[2001:db8::1]-[2001:db8::5]:80))',
  'sctp6,sctp_src=1,sctp_dst=2,ip_ttl=3 actions=set_field:5->sctp_src,set_field:6->sctp_dst,set_field:0x1/0xff->reg0,set_field:0x2->reg7,set_field:0xff->metadata,set_field:1.1.1.1->tun_src,set_field:2.2.2.2->tun_dst,set_field:0x7->tun_id,set_field:aa:aa:aa:aa:aa:aa->eth_src,set_field:bb:bb:bb:bb:bb:bb->eth_dst',
  'tcp,tcp_src=1,tcp_dst=2,nw_frag=no,tcp_flags=0x012/0x0fff actions=set_field:1->tcp_src,set_field:2->tp_dst,output:in_port,output:eth1,2',
  'udp6,ip_frag=later,ipv6_src=2001:db8::1 actions=ct(commit,table=9,zone=0,exec(set_field:0x10->ct_mark)),resubmit(eth1,)',
  'tcp,ip_frag=yes,tp_src=10 actions=ct(commit,nat(dst=10.0.0.1)),ct(nat(src))',
  'ip,ip_frag=not_later,tun_id=0x10/0xf0,ct_state=0x21/0x21 actions=CONTROLLER:65535,NORMAL,IN_PORT,output:0',
  'ipv6,nw_proto=58,ct_state=trk,tcp_flags=-fin actions=note:ff'.replace(',tcp_flags=-fin', ''),
  'table=1,ct_state=+trk+untracked-inv actions=notrack,ct(table=2)',
  'tcp,tcp_flags=fin|syn actions=drop',
  'priority=0,tunnel_id=1,dl_type=0x88cc actions=controller(reason=action_set)',
  'sctp,sctp_dst=9 actions=drop',
  'eth_src=00:00:00:00:00:01,eth_dst=00:00:00:00:00:02,eth_type=0x0800,ip_proto=17,ip_src=1.1.1.1,ip_dst=2.2.2.2,vlan_vid=5,vlan_pcp=1,ip_ecn=1 actions=output:1',
  'table=254,priority=65535,ip,nw_src=1.2.3.4/255.0.255.0,nw_dst=0.0.0.0/0 actions=ct(table=3,zone=reg3[16..31],alg=tftp)',
];


/** A seeded generator of integers 0..n-1 (Math.imul: a product in doubles loses its low bits, and
 * the sequence falls into a short cycle). */
export function randomSource(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n) => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 8) % n;
}

/** A random match as key (at 0) and mask (at FLOW_KEY.size): a few runs anywhere (the ends
 * included), key bytes often zero under a mask. */
export function randomKeyMask(rnd: (n: number) => number): Uint8Array {
  const K = FLOW_KEY.size;
  const km = new Uint8Array(2 * K);
  for (let r = rnd(6); r > 0; r--) {
    const start = rnd(K);
    const n = 1 + rnd(Math.min(24, K - start));
    for (let j = 0; j < n; j++) {
      km[K + start + j] = rnd(3) ? 0xff : rnd(256);
      km[start + j] = rnd(2) ? km[K + start + j]! & rnd(256) : 0;
    }
  }
  return km;
}

/** A flow's journal record as an object, built field by field: the form the byte writer is held to. */
export function flowRecord(f: CompiledFlow): FlowRecord {
  const hex = (from: number, to: number): string => Buffer.from(f.at.buf.subarray(from, to)).toString('hex');
  const r: [number, string, string][] = [];
  eachPackedRun(f.at, (start, n, i) => r.push([start, hex(i, i + n), hex(i + n, i + 2 * n)]));
  return {
    t: f.table, p: f.priority, i: f.idleTimeout, h: f.hardTimeout, fb: f.flagBits, f: f.flags,
    c: f.cookie.toString(16), r, n: FLOW_KEY.size, a: f.actions, v: Buffer.from(f.tlv).toString('base64'),
  };
}
