/* Key extraction and the sanity checks that make a packet 'inv' (conntrack.md 1,
 * "Sanity checks"): truncated L3/L4, bad IPv4 header or L4 checksum (not looked at
 * when the NIC or an earlier pass verified it), port 0, a fragment that was not
 * reassembled, an ICMP type the tracker does not know. ICMP errors are turned into
 * the key of the packet they quote. */
#include <string.h>
#include <rte_byteorder.h>
#include <rte_hash_crc.h>
#include <rte_ip.h>
#include <rte_prefetch.h>
#include <smmintrin.h>
#include "ct_private.h"
#include "../common/crc32c.h"

#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17
#define IPPROTO_ICMP_ 1
#define IPPROTO_ICMPV6_ 58
#define IPPROTO_SCTP_ 132
#define CT_PREFETCH_AHEAD 4u

/* IPv6 extension headers walked to reach L4 */
#define IP6_HOPOPTS 0
#define IP6_ROUTING 43
#define IP6_FRAGMENT 44
#define IP6_DSTOPTS 60
#define IP6_AH 51
#define IP6_NONE 59

#define TCP_FIN 0x01
#define TCP_SYN 0x02

/* ICMP types the tracker knows (OVS's set) */
#define ICMP4_ECHO_REPLY 0
#define ICMP4_DST_UNREACH 3
#define ICMP4_SOURCEQUENCH 4
#define ICMP4_REDIRECT 5
#define ICMP4_ECHO_REQUEST 8
#define ICMP4_TIME_EXCEEDED 11
#define ICMP4_PARAM_PROB 12
#define ICMP4_TIMESTAMP 13
#define ICMP4_TIMESTAMP_REPLY 14
#define ICMP4_INFO 15
#define ICMP4_INFO_REPLY 16
#define ICMP6_DST_UNREACH 1
#define ICMP6_PACKET_TOO_BIG 2
#define ICMP6_TIME_EXCEEDED 3
#define ICMP6_PARAM_PROB 4
#define ICMP6_ECHO_REQUEST 128
#define ICMP6_ECHO_REPLY 129
/* an IPv4 ICMP error must quote at least this much of the L4 header (ports) */
#define ICMP_ERROR_DATA_L4_LEN 8

static inline uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline bool invalid(struct ct_pktctx *p, unsigned reason)
{
	p->invalid = (uint8_t)(reason + 1);
	return false;
}

/* Orders the endpoints: (src, sport) and (dst, dport) in canonical order, and writes
 * all of the key's addresses (IPv4 zero-padded). */
static inline void set_tuple(struct ct_pktctx *p, const uint8_t *src, const uint8_t *dst, unsigned alen,
			     uint16_t sport, uint16_t dport)
{
	bool swap;
	if (likely(alen == 4)) {
		uint32_t s4, d4;
		memcpy(&s4, src, 4);
		memcpy(&d4, dst, 4);
		uint64_t sv = (uint64_t)rte_be_to_cpu_32(s4) << 16 | sport;
		uint64_t dv = (uint64_t)rte_be_to_cpu_32(d4) << 16 | dport;
		swap = sv > dv;
		uint64_t w[4] = { swap ? d4 : s4, 0, swap ? s4 : d4, 0 };
		memcpy(p->key.a, w, sizeof(w));
	} else {
		int c = memcmp(src, dst, 16);
		swap = c > 0 || (c == 0 && sport > dport);
		memcpy(p->key.a, swap ? dst : src, 16);
		memcpy(p->key.b, swap ? src : dst, 16);
	}
	p->key.pa = swap ? dport : sport;
	p->key.pb = swap ? sport : dport;
	p->swapped = swap;
}

/* ones' complement sum of the pseudo header */
static uint32_t pseudo_sum(const uint8_t *src, const uint8_t *dst, unsigned alen, uint8_t proto, uint32_t l4_len)
{
	/* __rte_raw_cksum adds 16-bit words as they lie in memory (network order read on a
	 * little-endian CPU): the protocol and length words must be added the same way */
	uint32_t s = __rte_raw_cksum(src, alen, 0);
	s = __rte_raw_cksum(dst, alen, s);
	s += rte_cpu_to_be_16((uint16_t)proto);
	s += rte_cpu_to_be_16((uint16_t)(l4_len >> 16)) + rte_cpu_to_be_16((uint16_t)(l4_len & 0xffff));
	return s;
}

static bool l4_csum_ok(const uint8_t *l4, uint32_t len, uint32_t pseudo)
{
	uint32_t s = __rte_raw_cksum(l4, len, pseudo);
	return __rte_raw_cksum_reduce(s) == 0xffff;
}

static bool sctp_csum_ok(const uint8_t *l4, uint32_t len)
{
	static const uint8_t zero[4];
	uint32_t stored;
	memcpy(&stored, l4 + 8, 4);
	uint32_t crc = ferry_crc32c(0xffffffffu, l4, 8);
	crc = ferry_crc32c(crc, zero, 4);
	crc = ferry_crc32c(crc, l4 + 12, len - 12);
	return ~crc == stored;
}

static bool icmp4_is_error(uint8_t type)
{
	return type == ICMP4_DST_UNREACH || type == ICMP4_SOURCEQUENCH || type == ICMP4_REDIRECT ||
	       type == ICMP4_TIME_EXCEEDED || type == ICMP4_PARAM_PROB;
}

static bool icmp6_is_error(uint8_t type)
{
	return type == ICMP6_DST_UNREACH || type == ICMP6_PACKET_TOO_BIG || type == ICMP6_TIME_EXCEEDED ||
	       type == ICMP6_PARAM_PROB;
}

/* the request a reply answers (echo, timestamp, info) */
static uint16_t icmp_request_type(uint8_t type, bool v6)
{
	if (v6)
		return type == ICMP6_ECHO_REPLY ? ICMP6_ECHO_REQUEST : type;
	switch (type) {
	case ICMP4_ECHO_REPLY: return ICMP4_ECHO_REQUEST;
	case ICMP4_TIMESTAMP_REPLY: return ICMP4_TIMESTAMP;
	case ICMP4_INFO_REPLY: return ICMP4_INFO;
	default: return type;
	}
}

struct l3info {
	const uint8_t *src, *dst;
	unsigned alen;
	uint8_t proto;
	const uint8_t *l4;
	uint32_t l4_len;
	uint32_t ip_len;
};

/* Walks an IPv4 header. inner: the copy quoted in an ICMP error, which may be cut
 * short (its lengths are not checked against what is there). */
static bool ipv4_l3(struct ct_pktctx *p, const uint8_t *ip, uint32_t avail, bool inner, bool csum_good,
		    bool reassembled, struct l3info *o)
{
	if (avail < 20 || (ip[0] >> 4) != 4)
		return invalid(p, FERRY_CT_INVALID_REASON_L3_SHORT);
	uint32_t ihl = (uint32_t)(ip[0] & 0xf) * 4;
	uint32_t tot = rd16(ip + 2);
	if (ihl < 20 || ihl > avail)
		return invalid(p, FERRY_CT_INVALID_REASON_L3_SHORT);
	if (!inner) {
		if (tot < ihl || tot > avail)
			return invalid(p, FERRY_CT_INVALID_REASON_L3_SHORT);
		if (!csum_good && __rte_raw_cksum_reduce(__rte_raw_cksum(ip, ihl, 0)) != 0xffff)
			return invalid(p, FERRY_CT_INVALID_REASON_L3_CSUM);
	} else {
		tot = avail; /* what was quoted */
	}
	uint16_t frag = rd16(ip + 6);
	if ((frag & 0x3fff) != 0 && !reassembled)
		return invalid(p, FERRY_CT_INVALID_REASON_FRAGMENT);
	o->src = ip + 12;
	o->dst = ip + 16;
	o->alen = 4;
	o->proto = ip[9];
	o->l4 = ip + ihl;
	o->l4_len = tot - ihl;
	o->ip_len = tot;
	return true;
}

static bool ipv6_l3(struct ct_pktctx *p, const uint8_t *ip, uint32_t avail, bool inner, bool reassembled,
		    struct l3info *o)
{
	if (avail < 40 || (ip[0] >> 4) != 6)
		return invalid(p, FERRY_CT_INVALID_REASON_L3_SHORT);
	uint32_t tot = 40u + rd16(ip + 4);
	if (inner)
		tot = avail;
	else if (tot > avail)
		return invalid(p, FERRY_CT_INVALID_REASON_L3_SHORT);
	uint8_t nh = ip[6];
	uint32_t off = 40;
	for (;;) {
		if (nh == IP6_HOPOPTS || nh == IP6_ROUTING || nh == IP6_DSTOPTS || nh == IP6_AH) {
			if (off + 8 > tot)
				return invalid(p, FERRY_CT_INVALID_REASON_L3_SHORT);
			uint32_t hl = nh == IP6_AH ? ((uint32_t)ip[off + 1] + 2) * 4 : ((uint32_t)ip[off + 1] + 1) * 8;
			nh = ip[off];
			off += hl;
			if (off > tot)
				return invalid(p, FERRY_CT_INVALID_REASON_L3_SHORT);
		} else if (nh == IP6_FRAGMENT) {
			if (!reassembled)
				return invalid(p, FERRY_CT_INVALID_REASON_FRAGMENT);
			if (off + 8 > tot)
				return invalid(p, FERRY_CT_INVALID_REASON_L3_SHORT);
			nh = ip[off];
			off += 8;
		} else {
			break;
		}
	}
	o->src = ip + 8;
	o->dst = ip + 24;
	o->alen = 16;
	o->proto = nh;
	o->l4 = ip + off;
	o->l4_len = tot - off;
	o->ip_len = tot;
	return true;
}

/* The quoted packet of an ICMP error: its key, which is the key of the connection
 * the error is about. The quoted packet went from the error's destination. */
static bool icmp_error_inner(struct ct_pktctx *p, const struct l3info *outer, const uint8_t *data, uint32_t len,
			     bool v6)
{
	struct l3info in;
	bool ok = v6 ? ipv6_l3(p, data, len, true, false, &in) : ipv4_l3(p, data, len, true, true, false, &in);
	if (!ok) {
		p->invalid = FERRY_CT_INVALID_REASON_ICMP_ERROR + 1;
		return false;
	}
	/* the quoted packet was sent by whoever the error goes back to */
	if (memcmp(in.src, outer->dst, in.alen) != 0)
		return invalid(p, FERRY_CT_INVALID_REASON_ICMP_ERROR);
	uint16_t sport = 0, dport = 0;
	switch (in.proto) {
	case IPPROTO_TCP_:
	case IPPROTO_UDP_:
	case IPPROTO_SCTP_:
		if (in.l4_len < 4 || (!v6 && in.l4_len < ICMP_ERROR_DATA_L4_LEN))
			return invalid(p, FERRY_CT_INVALID_REASON_ICMP_ERROR);
		sport = rd16(in.l4);
		dport = rd16(in.l4 + 2);
		break;
	case IPPROTO_ICMP_:
	case IPPROTO_ICMPV6_: {
		if (in.l4_len < 8)
			return invalid(p, FERRY_CT_INVALID_REASON_ICMP_ERROR);
		uint8_t t = in.l4[0];
		/* an error about an error is never related to anything */
		if ((!v6 && t != ICMP4_ECHO_REQUEST && t != ICMP4_TIMESTAMP && t != ICMP4_INFO) ||
		    (v6 && t != ICMP6_ECHO_REQUEST))
			return invalid(p, FERRY_CT_INVALID_REASON_ICMP_ERROR);
		sport = rd16(in.l4 + 4); /* a quoted request: (id -> type) */
		dport = t;
		break;
	}
	default:
		break;
	}
	p->key.proto = in.proto;
	set_tuple(p, in.src, in.dst, in.alen, sport, dport);
	p->related = 1;
	return true;
}

/* what the TCP machine reads of a segment (the window-scale option aside) */
static inline void tcp_fields(struct ct_pktctx *p, const uint8_t *l4, uint32_t l4_len, uint32_t doff)
{
	p->tcp_flags = l4[13];
	p->tcp_seq = rd32(l4 + 4);
	p->tcp_ack = rd32(l4 + 8);
	p->tcp_win = rd16(l4 + 14);
	p->l4_payload = l4_len - doff;
	p->tcp_wscale = 0;
}

/* The common case in few instructions: IPv4 without options or fragmentation,
 * carrying UDP (checksum absent or known good) or a TCP segment other than a SYN.
 * Anything else, or anything doubtful, goes the general way (which finds the same
 * key and hash). The key is built as its five words in registers and hashed from
 * them: words 1 and 3, the addresses' zero tails, are lane_b's (ct_key_hash). */
static inline bool extract_v4_fast(struct ferry_ct_pkt *pkt, uint16_t zone, uint32_t lane_b, struct ct_pktctx *p)
{
	if (unlikely(pkt->eth_type != 0x0800 || pkt->l3_ofs >= pkt->len))
		return false;
	const uint8_t *ip = pkt->data + pkt->l3_ofs;
	uint32_t avail = pkt->len - pkt->l3_ofs;
	if (unlikely(avail < 28 || ip[0] != 0x45))
		return false;
	uint32_t tot = rd16(ip + 2);
	uint8_t proto = ip[9];
	if (unlikely(tot > avail || tot < 28 || (rd16(ip + 6) & 0x3fff) != 0))
		return false;
	if (!(pkt->flags & FERRY_CT_PKT_L3_CSUM_GOOD)) {
		if (__rte_raw_cksum_reduce(__rte_raw_cksum(ip, 20, 0)) != 0xffff)
			return false; /* the general path counts it */
		pkt->flags |= FERRY_CT_PKT_L3_CSUM_GOOD;
	}
	const uint8_t *l4 = ip + 20;
	uint32_t l4_len = tot - 20;
	uint16_t sport = rd16(l4), dport = rd16(l4 + 2);
	if (unlikely(sport == 0 || dport == 0))
		return false;
	if (likely(proto == IPPROTO_UDP_)) {
		uint16_t ulen = rd16(l4 + 4);
		if (unlikely(ulen < 8 || ulen > l4_len ||
			     (rd16(l4 + 6) != 0 && !(pkt->flags & FERRY_CT_PKT_L4_CSUM_GOOD))))
			return false;
	} else if (proto == IPPROTO_TCP_) {
		uint32_t doff = (uint32_t)(l4[12] >> 4) * 4;
		if (unlikely(l4_len < 20 || doff < 20 || doff > l4_len || (l4[13] & 0x02) ||
			     !(pkt->flags & FERRY_CT_PKT_L4_CSUM_GOOD)))
			return false;
		tcp_fields(p, l4, l4_len, doff);
	} else {
		return false;
	}
	/* set_tuple's order: (address, port) of the source against the destination's */
	uint32_t s4, d4;
	memcpy(&s4, ip + 12, 4);
	memcpy(&d4, ip + 16, 4);
	uint64_t sv = (uint64_t)rte_be_to_cpu_32(s4) << 16 | sport;
	uint64_t dv = (uint64_t)rte_be_to_cpu_32(d4) << 16 | dport;
	bool swap = sv > dv;
	uint64_t w0 = swap ? d4 : s4, w2 = swap ? s4 : d4, zero = 0;
	/* pa, pb, zone, proto, l3 (struct ct_key's last word, little-endian) */
	uint32_t ports = swap ? (uint32_t)dport | (uint32_t)sport << 16 : (uint32_t)sport | (uint32_t)dport << 16;
	uint64_t w4 = ports | (uint64_t)zone << 32 | (uint64_t)proto << 48 | (uint64_t)4 << 56;
	memcpy(p->key.a, &w0, 8);
	memcpy(p->key.a + 8, &zero, 8);
	memcpy(p->key.b, &w2, 8);
	memcpy(p->key.b + 8, &zero, 8);
	memcpy(&p->key.pa, &w4, 8);
	p->hash = ct_hash_lane_a(w0, w2, w4) ^ lane_b;
	p->bytes = tot;
	p->swapped = swap;
	p->related = 0;
	return true;
}

/* The general way: every protocol, IPv6, options, checksums to verify, ICMP errors. */
static __attribute__((noinline)) bool extract_slow(struct ferry_ct_pkt *pkt, uint16_t zone, struct ct_pktctx *p)
{
	p->invalid = 0;
	p->related = 0;
	p->icmp_reply = 0;
	p->tcp_flags = 0;
	p->icmp_type = p->icmp_code = 0;
	p->key.zone = zone;

	if (unlikely(pkt->l3_ofs >= pkt->len))
		return invalid(p, FERRY_CT_INVALID_REASON_L3_SHORT);
	const uint8_t *ip = pkt->data + pkt->l3_ofs;
	uint32_t avail = pkt->len - pkt->l3_ofs;
	bool reassembled = pkt->flags & FERRY_CT_PKT_REASSEMBLED;
	struct l3info l3;
	bool v6;
	if (likely(pkt->eth_type == 0x0800)) {
		v6 = false;
		if (!ipv4_l3(p, ip, avail, false, pkt->flags & FERRY_CT_PKT_L3_CSUM_GOOD, reassembled, &l3))
			return false;
		pkt->flags |= FERRY_CT_PKT_L3_CSUM_GOOD;
		p->key.l3 = 4;
	} else if (pkt->eth_type == 0x86dd) {
		v6 = true;
		if (!ipv6_l3(p, ip, avail, false, reassembled, &l3))
			return false;
		p->key.l3 = 6;
	} else {
		return invalid(p, FERRY_CT_INVALID_REASON_NOT_IP);
	}
	p->bytes = l3.ip_len;
	p->key.proto = l3.proto;
	const uint8_t *l4 = l3.l4;
	uint32_t l4_len = l3.l4_len;
	bool csum_good = pkt->flags & FERRY_CT_PKT_L4_CSUM_GOOD;
	bool verified = false; /* an L4 checksum was checked here: later passes need not */

	switch (l3.proto) {
	case IPPROTO_TCP_: {
		if (l4_len < 20)
			return invalid(p, FERRY_CT_INVALID_REASON_L4_SHORT);
		uint32_t doff = (uint32_t)(l4[12] >> 4) * 4;
		if (doff < 20 || doff > l4_len)
			return invalid(p, FERRY_CT_INVALID_REASON_L4_SHORT);
		uint16_t sport = rd16(l4), dport = rd16(l4 + 2);
		if (sport == 0 || dport == 0)
			return invalid(p, FERRY_CT_INVALID_REASON_PORT_ZERO);
		if (!csum_good && !l4_csum_ok(l4, l4_len, pseudo_sum(l3.src, l3.dst, l3.alen, l3.proto, l4_len)))
			return invalid(p, FERRY_CT_INVALID_REASON_L4_CSUM);
		verified = true;
		tcp_fields(p, l4, l4_len, doff);
		if (p->tcp_flags & TCP_SYN) {
			/* the window-scale option (kind 3, length 3) */
			const uint8_t *o = l4 + 20, *end = l4 + doff;
			while (o < end) {
				if (*o == 0)
					break;
				if (*o == 1) {
					o++;
					continue;
				}
				if (o + 1 >= end || o[1] < 2 || o + o[1] > end)
					break;
				if (*o == 3 && o[1] == 3) {
					uint8_t s = o[2] > 14 ? 14 : o[2];
					p->tcp_wscale = CT_WSCALE_FLAG | s;
				}
				o += o[1];
			}
		}
		set_tuple(p, l3.src, l3.dst, l3.alen, sport, dport);
		break;
	}
	case IPPROTO_UDP_: {
		if (l4_len < 8)
			return invalid(p, FERRY_CT_INVALID_REASON_L4_SHORT);
		uint16_t ulen = rd16(l4 + 4);
		if (ulen < 8 || ulen > l4_len)
			return invalid(p, FERRY_CT_INVALID_REASON_L4_SHORT);
		uint16_t sport = rd16(l4), dport = rd16(l4 + 2);
		if (sport == 0 || dport == 0)
			return invalid(p, FERRY_CT_INVALID_REASON_PORT_ZERO);
		uint16_t csum = rd16(l4 + 6);
		if (!csum_good) {
			if (csum == 0) {
				if (v6) /* optional on IPv4 only */
					return invalid(p, FERRY_CT_INVALID_REASON_L4_CSUM);
			} else if (!l4_csum_ok(l4, ulen, pseudo_sum(l3.src, l3.dst, l3.alen, l3.proto, ulen))) {
				return invalid(p, FERRY_CT_INVALID_REASON_L4_CSUM);
			} else {
				verified = true;
			}
		}
		set_tuple(p, l3.src, l3.dst, l3.alen, sport, dport);
		break;
	}
	case IPPROTO_SCTP_: {
		if (l4_len < 12)
			return invalid(p, FERRY_CT_INVALID_REASON_L4_SHORT);
		uint16_t sport = rd16(l4), dport = rd16(l4 + 2);
		if (sport == 0 || dport == 0)
			return invalid(p, FERRY_CT_INVALID_REASON_PORT_ZERO);
		if (!csum_good && !sctp_csum_ok(l4, l4_len))
			return invalid(p, FERRY_CT_INVALID_REASON_L4_CSUM);
		verified = true;
		set_tuple(p, l3.src, l3.dst, l3.alen, sport, dport);
		break;
	}
	case IPPROTO_ICMP_:
	case IPPROTO_ICMPV6_: {
		if (l4_len < 8)
			return invalid(p, FERRY_CT_INVALID_REASON_L4_SHORT);
		if ((l3.proto == IPPROTO_ICMP_) == v6) /* ICMPv4 in IPv6 or the other way round */
			return invalid(p, FERRY_CT_INVALID_REASON_ICMP_TYPE);
		if (!csum_good) {
			uint32_t ps = v6 ? pseudo_sum(l3.src, l3.dst, 16, l3.proto, l4_len) : 0;
			if (!l4_csum_ok(l4, l4_len, ps))
				return invalid(p, FERRY_CT_INVALID_REASON_L4_CSUM);
			verified = true;
		}
		uint8_t type = l4[0];
		p->icmp_type = type;
		p->icmp_code = l4[1];
		if (!v6) {
			if (type == ICMP4_ECHO_REQUEST || type == ICMP4_TIMESTAMP || type == ICMP4_INFO ||
			    type == ICMP4_ECHO_REPLY || type == ICMP4_TIMESTAMP_REPLY || type == ICMP4_INFO_REPLY) {
				p->icmp_reply = type == ICMP4_ECHO_REPLY || type == ICMP4_TIMESTAMP_REPLY ||
						type == ICMP4_INFO_REPLY;
			} else if (icmp4_is_error(type)) {
				if (!icmp_error_inner(p, &l3, l4 + 8, l4_len - 8, false))
					return false;
				break;
			} else {
				return invalid(p, FERRY_CT_INVALID_REASON_ICMP_TYPE);
			}
		} else {
			if (type == ICMP6_ECHO_REQUEST || type == ICMP6_ECHO_REPLY) {
				p->icmp_reply = type == ICMP6_ECHO_REPLY;
			} else if (icmp6_is_error(type)) {
				if (!icmp_error_inner(p, &l3, l4 + 8, l4_len - 8, true))
					return false;
				break;
			} else {
				return invalid(p, FERRY_CT_INVALID_REASON_ICMP_TYPE);
			}
		}
		/* keyed by id and request type, as OVS does: the request goes (id -> type),
		 * its reply (type -> id), so both directions have one key, and another
		 * type or an echo the other way is another connection */
		uint16_t id = rd16(l4 + 4);
		uint16_t req = icmp_request_type(type, v6);
		if (p->icmp_reply)
			set_tuple(p, l3.src, l3.dst, l3.alen, req, id);
		else
			set_tuple(p, l3.src, l3.dst, l3.alen, id, req);
		break;
	}
	default:
		/* any other protocol: tracked by addresses only (OVS's 3-tuple) */
		set_tuple(p, l3.src, l3.dst, l3.alen, 0, 0);
		break;
	}
	if (verified)
		pkt->flags |= FERRY_CT_PKT_L4_CSUM_GOOD;
	p->hash = ct_key_hash(&p->key);
	return true;
}

uint64_t ct_extract_burst(const struct ferry_ct *ct, struct ferry_ct_pkt *pkts,
			  const struct ferry_ct_action *const *act, unsigned n, struct ct_pktctx *ctx)
{
	const uint32_t *heads = ct->heads;
	const uint32_t slot_mask = ct->slot_mask, lane_b = ct->hash_v4_lane_b;
	uint64_t todo = 0;
	/* headers are fetched a few packets ahead of the extraction, as l3fwd does */
	for (unsigned i = 0; i < n && i < CT_PREFETCH_AHEAD; i++)
		rte_prefetch0(pkts[i].data + pkts[i].l3_ofs);
	for (unsigned i = 0; i < n; i++) {
		if (i + CT_PREFETCH_AHEAD < n)
			rte_prefetch0(pkts[i + CT_PREFETCH_AHEAD].data + pkts[i + CT_PREFETCH_AHEAD].l3_ofs);
		uint16_t zone = act[i]->zone;
		if (likely(extract_v4_fast(&pkts[i], zone, lane_b, &ctx[i])) ||
		    likely(extract_slow(&pkts[i], zone, &ctx[i]))) {
			/* the slot's head, read once the whole burst is extracted */
			rte_prefetch0(&heads[ctx[i].hash & slot_mask]);
			todo |= 1ull << i;
		}
	}
	return todo;
}
