/* The NAT packet rewriter (nat_rewrite.h). A rewrite is planned first, every field it
 * will touch located and checked against [data, data + len), and only then done, so a
 * packet that is refused is left as it was. Ones' complement checksums are adjusted
 * by the difference of the words that changed (RFC 1624), which costs the same
 * whatever the payload. Two things are recomputed instead: SCTP's CRC32c, which is
 * not a sum (and not over the addresses, so only a port change needs it), and an ICMP
 * error's own checksum, over a small message whose quoted packet has just changed. */
#include "nat_rewrite.h"
#include "nat_bytes.h"
#include "../common/crc32c.h"

#include <stdbool.h>
#include <string.h>
#include <rte_byteorder.h>
#include <rte_ip.h>
#include <smmintrin.h>

#define IPPROTO_ICMP_ 1
#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17
#define IPPROTO_ICMPV6_ 58
#define IPPROTO_SCTP_ 132

#define IP4_HDR_MIN 20
#define IP4_TOTLEN_OFF 2
#define IP4_FRAG_OFF 6
#define IP4_PROTO_OFF 9
#define IP4_CSUM_OFF 10
#define IP4_SRC_OFF 12
#define IP4_DST_OFF 16
#define IP4_MF 0x2000
#define IP4_FRAG_OFFSET_MASK 0x1fff

#define IP6_HDR_LEN 40
#define IP6_PLEN_OFF 4
#define IP6_NH_OFF 6
#define IP6_SRC_OFF 8
#define IP6_DST_OFF 24

/* IPv6 extension headers walked to reach L4: the tracker walks the same ones
 * (ct_extract.c), so a tuple it gave is found where it found it */
#define IP6_HOPOPTS 0
#define IP6_ROUTING 43
#define IP6_FRAGMENT 44
#define IP6_AH 51
#define IP6_DSTOPTS 60
#define IP6_EXT_MIN 8        /* every extension header is at least this long */
#define IP6_FRAG_HDR_LEN 8
#define IP6_FRAG_OFF 2       /* fragment offset and M flag within the fragment header */
#define IP6_FRAG_OFFSET_MASK 0xfff8
#define IP6_FRAG_MORE 0x0001

/* TCP, UDP and SCTP start with the ports */
#define L4_SPORT_OFF 0
#define L4_DPORT_OFF 2
#define L4_PORTS_LEN 4
#define TCP_HDR_MIN 20
#define TCP_CSUM_OFF 16
#define UDP_HDR_LEN 8
#define UDP_CSUM_OFF 6
#define SCTP_HDR_LEN 12
#define SCTP_CSUM_OFF 8
#define SCTP_CSUM_LEN 4
/* type, code, checksum and 4 more bytes: a query's id and sequence, an error's
 * unused word (or MTU, pointer); an error's quoted packet follows */
#define ICMP_HDR_LEN 8
#define ICMP_CSUM_OFF 2
#define ICMP_ID_OFF 4
#define ICMP_ERR_QUOTE_OFF ICMP_HDR_LEN

/* ICMP queries: a request's id is its sport, a reply's its dport (key domain) */
#define ICMP4_ECHO_REPLY 0
#define ICMP4_ECHO_REQUEST 8
#define ICMP4_TIMESTAMP 13
#define ICMP4_TIMESTAMP_REPLY 14
#define ICMP4_INFO 15
#define ICMP4_INFO_REPLY 16
#define ICMP6_ECHO_REQUEST 128
#define ICMP6_ECHO_REPLY 129

/* ---- ones' complement arithmetic ---- */

/* Sums are byte-order independent when data and checksum are both taken 16 bits at a
 * time as stored: fields are loaded and stored as they lie, never swapped. */
static inline uint16_t load16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return v;
}

static inline void store16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, 2);
}


/* Overwrites an even number of bytes and returns d plus ~m + m' for each word that
 * changed from m to m': what every sum covering the field must be adjusted by. The
 * few words of a rewrite cannot overflow 32 bits. */
static uint32_t put(uint8_t *field, const uint8_t *val, unsigned n, uint32_t d)
{
	for (unsigned i = 0; i < n; i += 2)
		d += (uint16_t)~load16(field + i) + (uint32_t)load16(val + i);
	memcpy(field, val, n);
	return d;
}

/* ports (and ICMP ids) are host order in the tuple, network order on the wire */
static uint32_t put_port(uint8_t *field, uint16_t port, uint32_t d)
{
	const uint8_t be[2] = { (uint8_t)(port >> 8), (uint8_t)port };
	return put(field, be, 2, d);
}

/* RFC 1624 eqn. 3 for a checksum field: HC' = ~(~HC + ~m + m') */
static void csum_adjust(uint8_t *csum, uint32_t d)
{
	store16(csum, (uint16_t)~fold((uint32_t)(uint16_t)~load16(csum) + d));
}

/* a field that holds a sum not yet complemented: the pseudo-header sum a NIC completes */
static void sum_adjust(uint8_t *sum, uint32_t d)
{
	store16(sum, fold(load16(sum) + d));
}

/* the IPv6 pseudo header (RFC 8200 8.1): addresses, 32-bit length, next header */
static uint32_t pseudo6_sum(const uint8_t *src, const uint8_t *dst, uint32_t l4_len, uint8_t proto)
{
	const uint8_t tail[8] = { (uint8_t)(l4_len >> 24), (uint8_t)(l4_len >> 16), (uint8_t)(l4_len >> 8),
				  (uint8_t)l4_len, 0, 0, 0, proto };
	uint32_t s = __rte_raw_cksum(src, 16, 0);
	s = __rte_raw_cksum(dst, 16, s);
	return __rte_raw_cksum(tail, sizeof(tail), s);
}

/* SCTP's checksum (RFC 9260 appendix A) over its n-byte packet, the field taken as
 * zero; stored least significant byte first, as ct_extract.c checks it */
static void sctp_crc_set(uint8_t *sctp, uint32_t n)
{
	static const uint8_t zero[SCTP_CSUM_LEN];
	uint32_t c = ferry_crc32c(0xffffffffu, sctp, SCTP_CSUM_OFF);
	c = ferry_crc32c(c, zero, SCTP_CSUM_LEN);
	c = ferry_crc32c(c, sctp + SCTP_HDR_LEN, n - SCTP_HDR_LEN);
	uint32_t le = rte_cpu_to_le_32(~c);
	memcpy(sctp + SCTP_CSUM_OFF, &le, SCTP_CSUM_LEN);
}

/* ---- IP ---- */

/* An IP header's addresses and the checksum over them. */
struct ip_hdr {
	uint8_t *src, *dst;
	unsigned alen;
	unsigned hlen;  /* IPv4: with options; IPv6: the fixed header */
	uint8_t *csum;  /* IPv4 header checksum; NULL: IPv6, or the NIC fills it in */
};

/* Checks that room bytes at ip hold an IP header of version l3 and locates its fields.
 * A header checksum the NIC computes is left alone: whatever is there is ignored,
 * and some drivers want it zero. */
static bool ip_locate(uint8_t *ip, uint32_t room, uint8_t l3, unsigned tx_offload, struct ip_hdr *h)
{
	if (l3 == 4) {
		unsigned hlen = (ip[0] & 0xfu) * 4;
		if (room < IP4_HDR_MIN || (ip[0] >> 4) != 4 || hlen < IP4_HDR_MIN || hlen > room)
			return false;
		h->src = ip + IP4_SRC_OFF;
		h->dst = ip + IP4_DST_OFF;
		h->alen = 4;
		h->hlen = hlen;
		h->csum = (tx_offload & FERRY_NAT_TX_IP_CKSUM) ? NULL : ip + IP4_CSUM_OFF;
	} else {
		if (room < IP6_HDR_LEN || (ip[0] >> 4) != 6)
			return false;
		h->src = ip + IP6_SRC_OFF;
		h->dst = ip + IP6_DST_OFF;
		h->alen = 16;
		h->hlen = IP6_HDR_LEN;
		h->csum = NULL;
	}
	return true;
}

/* The IP packet's length by its header, 0 when that is less than its header or more
 * than the room there is (cut short, or its tail in another segment). */
static uint32_t ip_len(const uint8_t *ip, uint32_t room, uint8_t l3)
{
	uint32_t n = l3 == 4 ? rd16(ip + IP4_TOTLEN_OFF) : IP6_HDR_LEN + (uint32_t)rd16(ip + IP6_PLEN_OFF);
	if (n > room || (l3 == 4 && n < (ip[0] & 0xfu) * 4u))
		return 0;
	return n;
}

enum ip_frag { FRAG_NONE, FRAG_FIRST, FRAG_LATER };

/* Finds the upper-layer header of an IP packet of which n bytes are there (ip_locate
 * checked the fixed header). A later fragment has none: *off is then where its data
 * starts. False when the headers run past n. */
static bool ip_upper(const uint8_t *ip, uint32_t n, uint8_t l3, uint8_t *proto, uint32_t *off, enum ip_frag *frag)
{
	if (l3 == 4) {
		uint16_t fo = rd16(ip + IP4_FRAG_OFF);
		*frag = (fo & IP4_FRAG_OFFSET_MASK) ? FRAG_LATER : (fo & IP4_MF) ? FRAG_FIRST : FRAG_NONE;
		*proto = ip[IP4_PROTO_OFF];
		*off = (ip[0] & 0xfu) * 4u;
		return true;
	}
	uint8_t nh = ip[IP6_NH_OFF];
	uint32_t o = IP6_HDR_LEN;
	*frag = FRAG_NONE;
	while (nh == IP6_HOPOPTS || nh == IP6_ROUTING || nh == IP6_DSTOPTS || nh == IP6_AH || nh == IP6_FRAGMENT) {
		if (o + IP6_EXT_MIN > n)
			return false;
		const uint8_t *e = ip + o;
		uint32_t hl;
		if (nh == IP6_FRAGMENT) {
			uint16_t fo = rd16(e + IP6_FRAG_OFF);
			hl = IP6_FRAG_HDR_LEN;
			if (fo & IP6_FRAG_OFFSET_MASK) {
				*frag = FRAG_LATER; /* what follows is data, not headers */
				*proto = e[0];
				*off = o + hl;
				return true;
			}
			if (fo & IP6_FRAG_MORE)
				*frag = FRAG_FIRST;
		} else if (nh == IP6_AH) {
			hl = ((uint32_t)e[1] + 2) * 4; /* in 32-bit words, less 2 (RFC 4302) */
		} else {
			hl = ((uint32_t)e[1] + 1) * 8; /* in 8-byte units, less 1 */
		}
		nh = e[0];
		o += hl;
		if (o > n)
			return false;
	}
	*proto = nh;
	*off = o;
	return true;
}

/* The length of the L4 packet at ip + l4_off when all of it is among the room bytes
 * at ip and it is a whole datagram of protocol proto (a CRC or a checksum recomputed
 * over it is then right); 0 otherwise. */
static uint32_t l4_whole_len(const uint8_t *ip, uint32_t room, uint8_t l3, uint32_t l4_off, uint8_t proto)
{
	uint32_t n = ip_len(ip, room, l3);
	uint8_t p;
	uint32_t off;
	enum ip_frag frag;
	if (n == 0 || !ip_upper(ip, n, l3, &p, &off, &frag) || frag != FRAG_NONE || off != l4_off || p != proto)
		return 0;
	return n - off;
}

/* Sets the addresses the op bits ask for and adjusts the IPv4 header checksum.
 * Returns the change to the words of the pseudo header. */
static uint32_t ip_set_addrs(const struct ip_hdr *h, bool set_src, const uint8_t *src, bool set_dst,
			     const uint8_t *dst)
{
	uint32_t d = 0;
	if (set_src)
		d = put(h->src, src, h->alen, d);
	if (set_dst)
		d = put(h->dst, dst, h->alen, d);
	if (h->csum)
		csum_adjust(h->csum, d);
	return d;
}

/* ---- L4 ---- */

enum icmp_query { ICMP_NOT_QUERY, ICMP_REQUEST, ICMP_REPLY };

/* ICMPv4 or v6 by the protocol, not by the IP version that carries it */
static enum icmp_query icmp_query(uint8_t proto, uint8_t type)
{
	if (proto == IPPROTO_ICMPV6_)
		return type == ICMP6_ECHO_REQUEST ? ICMP_REQUEST : type == ICMP6_ECHO_REPLY ? ICMP_REPLY : ICMP_NOT_QUERY;
	switch (type) {
	case ICMP4_ECHO_REQUEST:
	case ICMP4_TIMESTAMP:
	case ICMP4_INFO:
		return ICMP_REQUEST;
	case ICMP4_ECHO_REPLY:
	case ICMP4_TIMESTAMP_REPLY:
	case ICMP4_INFO_REPLY:
		return ICMP_REPLY;
	default:
		return ICMP_NOT_QUERY;
	}
}

/* What a rewrite changes in an L4 header; NULL: nothing there. */
struct l4_plan {
	uint8_t *sport, *dport; /* where rw->sport and rw->dport go (an ICMP id is one of them) */
	uint8_t *csum;          /* the ones' complement sum over them */
	bool pseudo;            /* csum covers the pseudo header */
	bool udp;               /* csum is UDP's: a computed 0 is sent as 0xffff */
	bool sum_only;          /* csum holds the pseudo-header sum the NIC completes */
	uint8_t *sctp;          /* an SCTP packet whose CRC32c is recomputed over sctp_len bytes */
	uint32_t sctp_len;
};

/* Plans the L4 part of a rewrite of the header at l4, of which room bytes are there.
 * A packet's own header must be there whole; a quoted one (quote) only as far as the
 * fields that change, and checksums cut off are left out. whole: the length of the L4
 * packet when all of it is there (0: not, or not known), which a CRC needs. */
static bool l4_plan(uint8_t *l4, uint32_t room, uint32_t whole, const struct ferry_nat_rewrite *rw, bool quote,
		    unsigned tx_offload, struct l4_plan *p)
{
	bool set_src = rw->op & FERRY_NAT_RW_SRC, set_dst = rw->op & FERRY_NAT_RW_DST;
	unsigned hdr, csum_off;
	bool ports = true;
	memset(p, 0, sizeof(*p));
	switch (rw->proto) {
	case IPPROTO_TCP_:
		hdr = TCP_HDR_MIN;
		csum_off = TCP_CSUM_OFF;
		p->pseudo = true;
		p->sum_only = !quote && (tx_offload & FERRY_NAT_TX_L4_PSEUDO);
		break;
	case IPPROTO_UDP_:
		hdr = UDP_HDR_LEN;
		csum_off = UDP_CSUM_OFF;
		p->pseudo = p->udp = true;
		p->sum_only = !quote && (tx_offload & FERRY_NAT_TX_L4_PSEUDO);
		break;
	case IPPROTO_SCTP_:
		hdr = SCTP_HDR_LEN;
		csum_off = 0; /* no ones' complement sum: the CRC */
		break;
	case IPPROTO_ICMP_:
	case IPPROTO_ICMPV6_:
		hdr = ICMP_HDR_LEN;
		csum_off = ICMP_CSUM_OFF;
		p->pseudo = rw->proto == IPPROTO_ICMPV6_;
		ports = false;
		break;
	default:
		return true; /* addresses only */
	}
	/* ports take their 4 bytes, an ICMP id the header it is the end of */
	unsigned need = !quote ? hdr : !(set_src || set_dst) ? 0 : ports ? L4_PORTS_LEN : ICMP_HDR_LEN;
	if (room < need)
		return false;
	if (ports) {
		p->sport = set_src ? l4 + L4_SPORT_OFF : NULL;
		p->dport = set_dst ? l4 + L4_DPORT_OFF : NULL;
	} else if (room >= ICMP_HDR_LEN) {
		/* the type stays: the other half of the tuple is the request type */
		enum icmp_query q = icmp_query(rw->proto, l4[0]);
		p->sport = q == ICMP_REQUEST && set_src ? l4 + ICMP_ID_OFF : NULL;
		p->dport = q == ICMP_REPLY && set_dst ? l4 + ICMP_ID_OFF : NULL;
	}
	if (csum_off && room >= csum_off + 2u)
		p->csum = l4 + csum_off;
	/* UDP's 0 is "no checksum" (RFC 768), also kept over IPv6 where some tunnels use it
	 * (RFC 6935): a computed checksum is never 0. A NIC-completed sum is never 0 either. */
	if (p->udp && !p->sum_only && p->csum && load16(p->csum) == 0)
		p->csum = NULL;
	if (rw->proto == IPPROTO_SCTP_) {
		/* the CRC covers the ports but not the addresses: only a port that changes needs
		 * the whole packet, which a quote seldom has and the receiver does not check */
		bool moved = (p->sport && rd16(p->sport) != rw->sport) || (p->dport && rd16(p->dport) != rw->dport);
		if (moved && whole >= SCTP_HDR_LEN) {
			p->sctp = l4;
			p->sctp_len = whole;
		} else if (moved && !quote) {
			return false; /* the rest of it is not here (cut short, fragment, another segment) */
		}
	}
	return true;
}

/* Writes what l4_plan planned; pd: the pseudo header's change (the addresses'). */
static void l4_apply(const struct l4_plan *p, const struct ferry_nat_rewrite *rw, uint32_t pd)
{
	uint32_t d = 0;
	if (p->sport)
		d = put_port(p->sport, rw->sport, d);
	if (p->dport)
		d = put_port(p->dport, rw->dport, d);
	if (p->csum) {
		if (p->sum_only) {
			sum_adjust(p->csum, pd); /* the ports are the NIC's to add */
		} else {
			csum_adjust(p->csum, (p->pseudo ? pd : 0) + d);
			if (p->udp && load16(p->csum) == 0)
				store16(p->csum, 0xffff);
		}
	}
	if (p->sctp)
		sctp_crc_set(p->sctp, p->sctp_len);
}

/* ---- packets ---- */

static int rewrite_packet(uint8_t *data, uint32_t len, uint32_t l3_ofs, uint32_t l4_ofs, unsigned tx_offload,
			  const struct ferry_nat_rewrite *rw)
{
	uint8_t *ip = data + l3_ofs;
	struct ip_hdr h;
	struct l4_plan p;
	memset(&p, 0, sizeof(p));
	if (!ip_locate(ip, len - l3_ofs, rw->l3, tx_offload, &h))
		return -1;
	if (l4_ofs != 0) {
		if (l4_ofs < l3_ofs + h.hlen || l4_ofs > len)
			return -1;
		uint32_t whole = rw->proto == IPPROTO_SCTP_
					 ? l4_whole_len(ip, len - l3_ofs, rw->l3, l4_ofs - l3_ofs, rw->proto)
					 : 0;
		if (!l4_plan(data + l4_ofs, len - l4_ofs, whole, rw, false, tx_offload, &p))
			return -1;
	}
	uint32_t pd = ip_set_addrs(&h, rw->op & FERRY_NAT_RW_SRC, rw->src, rw->op & FERRY_NAT_RW_DST, rw->dst);
	l4_apply(&p, rw, pd);
	return 0;
}

/* An ICMP error: the quoted packet (src/dst/ports), then the outer header, then the
 * ICMP checksum over the message as it has become. */
static int rewrite_icmp_error(uint8_t *data, uint32_t len, uint32_t l3_ofs, uint32_t l4_ofs, unsigned tx_offload,
			      const struct ferry_nat_rewrite *rw)
{
	uint8_t *ip = data + l3_ofs;
	const uint8_t icmp_proto = rw->l3 == 4 ? IPPROTO_ICMP_ : IPPROTO_ICMPV6_;
	struct ip_hdr outer, inner;
	struct l4_plan p;
	memset(&p, 0, sizeof(p));
	if (!ip_locate(ip, len - l3_ofs, rw->l3, tx_offload, &outer))
		return -1;
	/* the checksum is recomputed over the message: all of it must be here */
	uint32_t icmp_len = l4_ofs > l3_ofs ? l4_whole_len(ip, len - l3_ofs, rw->l3, l4_ofs - l3_ofs, icmp_proto) : 0;
	if (icmp_len < ICMP_ERR_QUOTE_OFF)
		return -1;
	uint8_t *icmp = data + l4_ofs;
	uint8_t *q = icmp + ICMP_ERR_QUOTE_OFF;
	uint32_t qn = icmp_len - ICMP_ERR_QUOTE_OFF; /* what is quoted, maybe cut anywhere */
	uint8_t qproto;
	uint32_t qoff;
	enum ip_frag qfrag;
	/* the quoted header checksum is the quote's: the NIC knows nothing of it */
	if (!ip_locate(q, qn, rw->l3, 0, &inner) || !ip_upper(q, qn, rw->l3, &qproto, &qoff, &qfrag) ||
	    qproto != rw->proto)
		return -1;
	if (qfrag != FRAG_LATER) { /* else it quotes no L4 header: addresses only */
		uint32_t whole = qfrag == FRAG_NONE ? l4_whole_len(q, qn, rw->l3, qoff, qproto) : 0;
		if (!l4_plan(q + qoff, qn - qoff, whole, rw, true, 0, &p))
			return -1;
	}

	uint32_t qpd = ip_set_addrs(&inner, rw->op & FERRY_NAT_RW_SRC, rw->src, rw->op & FERRY_NAT_RW_DST, rw->dst);
	l4_apply(&p, rw, qpd);
	ip_set_addrs(&outer, rw->op & FERRY_NAT_RW_OUTER_SRC, rw->outer, rw->op & FERRY_NAT_RW_OUTER_DST, rw->outer);
	store16(icmp + ICMP_CSUM_OFF, 0);
	uint32_t s = rw->l3 == 6 ? pseudo6_sum(outer.src, outer.dst, icmp_len, icmp_proto) : 0;
	store16(icmp + ICMP_CSUM_OFF, (uint16_t)~fold(__rte_raw_cksum(icmp, icmp_len, s)));
	return 0;
}

int ferry_nat_rewrite(uint8_t *data, uint32_t len, uint16_t l3_ofs, uint16_t l4_ofs, unsigned tx_offload,
		      const struct ferry_nat_rewrite *rw)
{
	if (rw->op == 0)
		return 0;
	if ((rw->l3 != 4 && rw->l3 != 6) || l3_ofs >= len)
		return -1;
	if (rw->op & FERRY_NAT_RW_ICMP_ERROR)
		return rewrite_icmp_error(data, len, l3_ofs, l4_ofs, tx_offload, rw);
	return rewrite_packet(data, len, l3_ofs, l4_ofs, tx_offload, rw);
}
