/* Frames for the connection tracker's tests: Ethernet + IPv4/IPv6 + TCP (with an
 * optional window-scale option), UDP, ICMP/ICMPv6 echo and errors quoting another
 * frame, SCTP and any other protocol, all with correct checksums (IPv4 header,
 * TCP/UDP/ICMPv6 over the pseudo header, ICMP, SCTP CRC32c), and the few mutations
 * the tests need (bad checksums, truncation, fragment bits). */
#ifndef TEST_CT_PACKETS_H
#define TEST_CT_PACKETS_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define TP_ETH 14u
#define TP_MAX 2048u

struct tpkt {
	uint8_t b[TP_MAX];
	uint32_t len;
	uint16_t eth_type;
	uint16_t flags;    /* FERRY_CT_PKT_* handed to the tracker */
	uint16_t l4_ofs;   /* from b */
	uint8_t proto;
	uint8_t v6;
};

struct ip6 { uint8_t a[16]; };

#define IP4(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (uint32_t)(d))
#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_RST 0x04
#define TH_PSH 0x08
#define TH_ACK 0x10
#define TH_URG 0x20
#define TH_ECE 0x40
#define TH_CWR 0x80
#define NO_WS (-1)

/* 2001:db8:<net>::<host> */
static inline struct ip6 ip6(uint16_t net, uint16_t host)
{
	struct ip6 r = { { 0x20, 0x01, 0x0d, 0xb8, (uint8_t)(net >> 8), (uint8_t)net } };
	r.a[14] = (uint8_t)(host >> 8);
	r.a[15] = (uint8_t)host;
	return r;
}

static inline void tp_w16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void tp_w32(uint8_t *p, uint32_t v) { tp_w16(p, v >> 16); tp_w16(p + 2, v); }
static inline uint16_t tp_r16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

static inline uint32_t tp_sum(uint32_t s, const uint8_t *p, uint32_t n)
{
	for (uint32_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)p[i] << 8 | p[i + 1];
	if (n & 1)
		s += (uint32_t)p[n - 1] << 8;
	return s;
}

static inline uint16_t tp_fold(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

static inline uint32_t tp_crc32c(const uint8_t *p, uint32_t n)
{
	uint32_t c = 0xffffffffu;
	for (uint32_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1)));
	}
	return ~c;
}

static inline uint8_t *tp_l3(struct tpkt *p) { return p->b + TP_ETH; }
static inline uint8_t *tp_l4(struct tpkt *p) { return p->b + p->l4_ofs; }
static inline uint32_t tp_l4_len(const struct tpkt *p) { return p->len - p->l4_ofs; }

static inline void tp_ip4_csum(struct tpkt *p)
{
	uint8_t *ip = tp_l3(p);
	unsigned ihl = (ip[0] & 0xf) * 4u;
	tp_w16(ip + 10, 0);
	tp_w16(ip + 10, tp_fold(tp_sum(0, ip, ihl)));
}

/* the L4 checksum over what the packet holds now */
static inline void tp_l4_csum(struct tpkt *p)
{
	uint8_t *l4 = tp_l4(p), *ip = tp_l3(p);
	uint32_t n = tp_l4_len(p);
	unsigned at;
	switch (p->proto) {
	case 6: at = 16; break;
	case 17: at = 6; break;
	case 1: case 58: at = 2; break;
	case 132:
		memset(l4 + 8, 0, 4);
		uint32_t crc = tp_crc32c(l4, n); /* stored little-endian */
		for (int i = 0; i < 4; i++)
			l4[8 + i] = (uint8_t)(crc >> (8 * i));
		return;
	default: return;
	}
	tp_w16(l4 + at, 0);
	uint32_t s = 0;
	if (p->proto != 1) { /* pseudo header */
		if (p->v6)
			s = tp_sum(tp_sum(0, ip + 8, 16), ip + 24, 16);
		else
			s = tp_sum(0, ip + 12, 8);
		s += p->proto + (n >> 16) + (n & 0xffff);
	}
	uint16_t c = tp_fold(tp_sum(s, l4, n));
	if (p->proto == 17 && c == 0)
		c = 0xffff;
	tp_w16(l4 + at, c);
}

static inline void tp_finish(struct tpkt *p)
{
	tp_l4_csum(p);
	if (!p->v6)
		tp_ip4_csum(p);
}

static inline void tp_eth(struct tpkt *p, uint16_t type)
{
	static const uint8_t macs[12] = { 0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01 };
	memset(p->b, 0, 64); /* headers; the rest is written */
	memcpy(p->b, macs, 12);
	tp_w16(p->b + 12, type);
	p->eth_type = type;
	p->flags = 0;
}

/* Ethernet + IPv4 (TTL 64) for l4len bytes of protocol proto; returns the L4 area */
static inline uint8_t *tp_v4(struct tpkt *p, uint32_t src, uint32_t dst, uint8_t proto, uint32_t l4len)
{
	tp_eth(p, 0x0800);
	uint8_t *ip = tp_l3(p);
	ip[0] = 0x45;
	tp_w16(ip + 2, 20 + l4len);
	tp_w16(ip + 4, 0x4242);
	ip[8] = 64;
	ip[9] = proto;
	tp_w32(ip + 12, src);
	tp_w32(ip + 16, dst);
	p->l4_ofs = TP_ETH + 20;
	p->len = p->l4_ofs + l4len;
	p->proto = proto;
	p->v6 = 0;
	return tp_l4(p);
}

/* Ethernet + IPv6, with a fragment header (offset 0, last) before L4 when frag */
static inline uint8_t *tp_v6(struct tpkt *p, struct ip6 src, struct ip6 dst, uint8_t proto, uint32_t l4len, bool frag)
{
	tp_eth(p, 0x86dd);
	uint8_t *ip = tp_l3(p);
	ip[0] = 0x60;
	tp_w16(ip + 4, l4len + (frag ? 8 : 0));
	ip[6] = frag ? 44 : proto;
	ip[7] = 64;
	memcpy(ip + 8, src.a, 16);
	memcpy(ip + 24, dst.a, 16);
	p->l4_ofs = TP_ETH + 40;
	if (frag) {
		uint8_t *fh = ip + 40;
		memset(fh, 0, 8);
		fh[0] = proto;
		tp_w32(fh + 4, 0x1234);
		p->l4_ofs += 8;
	}
	p->len = p->l4_ofs + l4len;
	p->proto = proto;
	p->v6 = 1;
	return tp_l4(p);
}

static inline void tp_payload(uint8_t *d, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		d[i] = (uint8_t)(i * 7 + 3);
}

static inline unsigned tp_tcp_hl(int ws) { return ws >= 0 ? 24u : 20u; }

static inline void tp_tcp(uint8_t *l4, uint16_t sp, uint16_t dp, uint8_t fl, uint32_t seq, uint32_t ack,
			  uint16_t win, uint16_t plen, int ws)
{
	unsigned hl = tp_tcp_hl(ws);
	memset(l4, 0, hl);
	tp_w16(l4, sp);
	tp_w16(l4 + 2, dp);
	tp_w32(l4 + 4, seq);
	tp_w32(l4 + 8, ack);
	l4[12] = (uint8_t)((hl / 4) << 4);
	l4[13] = fl;
	tp_w16(l4 + 14, win);
	if (ws >= 0) { /* NOP, window scale */
		l4[20] = 1; l4[21] = 3; l4[22] = 3; l4[23] = (uint8_t)ws;
	}
	tp_payload(l4 + hl, plen);
}

static inline struct tpkt tcp4(uint32_t s, uint32_t d, uint16_t sp, uint16_t dp, uint8_t fl, uint32_t seq,
			       uint32_t ack, uint16_t win, uint16_t plen, int ws)
{
	struct tpkt p;
	tp_tcp(tp_v4(&p, s, d, 6, tp_tcp_hl(ws) + plen), sp, dp, fl, seq, ack, win, plen, ws);
	tp_finish(&p);
	return p;
}

static inline struct tpkt tcp6(struct ip6 s, struct ip6 d, uint16_t sp, uint16_t dp, uint8_t fl, uint32_t seq,
			       uint32_t ack, uint16_t win, uint16_t plen, int ws)
{
	struct tpkt p;
	tp_tcp(tp_v6(&p, s, d, 6, tp_tcp_hl(ws) + plen, false), sp, dp, fl, seq, ack, win, plen, ws);
	tp_finish(&p);
	return p;
}

static inline void tp_udp(uint8_t *l4, uint16_t sp, uint16_t dp, uint16_t plen)
{
	tp_w16(l4, sp);
	tp_w16(l4 + 2, dp);
	tp_w16(l4 + 4, 8u + plen);
	tp_w16(l4 + 6, 0);
	tp_payload(l4 + 8, plen);
}

static inline struct tpkt udp4(uint32_t s, uint32_t d, uint16_t sp, uint16_t dp, uint16_t plen)
{
	struct tpkt p;
	tp_udp(tp_v4(&p, s, d, 17, 8u + plen), sp, dp, plen);
	tp_finish(&p);
	return p;
}

/* frag: with an IPv6 fragment header (offset 0, M clear) */
static inline struct tpkt udp6x(struct ip6 s, struct ip6 d, uint16_t sp, uint16_t dp, uint16_t plen, bool frag)
{
	struct tpkt p;
	tp_udp(tp_v6(&p, s, d, 17, 8u + plen, frag), sp, dp, plen);
	tp_finish(&p);
	return p;
}
static inline struct tpkt udp6(struct ip6 s, struct ip6 d, uint16_t sp, uint16_t dp, uint16_t plen)
{
	return udp6x(s, d, sp, dp, plen, false);
}

/* ICMP echo (8 request, 0 reply; also timestamp etc. by type) with 8 bytes of data */
static inline struct tpkt icmp4_echo(uint32_t s, uint32_t d, uint8_t type, uint16_t id, uint16_t seq)
{
	struct tpkt p;
	uint8_t *l4 = tp_v4(&p, s, d, 1, 16);
	memset(l4, 0, 16);
	l4[0] = type;
	tp_w16(l4 + 4, id);
	tp_w16(l4 + 6, seq);
	tp_payload(l4 + 8, 8);
	tp_finish(&p);
	return p;
}

static inline struct tpkt icmp6_echo(struct ip6 s, struct ip6 d, uint8_t type, uint16_t id, uint16_t seq)
{
	struct tpkt p;
	uint8_t *l4 = tp_v6(&p, s, d, 58, 16, false);
	memset(l4, 0, 16);
	l4[0] = type;
	tp_w16(l4 + 4, id);
	tp_w16(l4 + 6, seq);
	tp_payload(l4 + 8, 8);
	tp_finish(&p);
	return p;
}

/* An ICMP error from s to d quoting q's IP header and quote_l4 bytes of its L4
 * (all of it when larger); word is the 4 bytes after the checksum (MTU, pointer). */
static inline struct tpkt icmp4_err(uint32_t s, uint32_t d, uint8_t type, uint8_t code, const struct tpkt *q,
				    uint32_t quote_l4)
{
	struct tpkt p;
	uint32_t ql4 = q->len - q->l4_ofs < quote_l4 ? q->len - q->l4_ofs : quote_l4;
	uint32_t qn = (q->l4_ofs - TP_ETH) + ql4;
	uint8_t *l4 = tp_v4(&p, s, d, 1, 8 + qn);
	memset(l4, 0, 8);
	l4[0] = type;
	l4[1] = code;
	memcpy(l4 + 8, q->b + TP_ETH, qn);
	tp_finish(&p);
	return p;
}

static inline struct tpkt icmp6_err(struct ip6 s, struct ip6 d, uint8_t type, uint8_t code, uint32_t word,
				    const struct tpkt *q)
{
	struct tpkt p;
	uint32_t qn = q->len - TP_ETH;
	uint8_t *l4 = tp_v6(&p, s, d, 58, 8 + qn, false);
	memset(l4, 0, 8);
	l4[0] = type;
	l4[1] = code;
	tp_w32(l4 + 4, word);
	memcpy(l4 + 8, q->b + TP_ETH, qn);
	tp_finish(&p);
	return p;
}

/* any other IP protocol (GRE 47 ...): plen bytes, the first two taken from key */
static inline struct tpkt ip4_proto(uint32_t s, uint32_t d, uint8_t proto, uint16_t plen, uint16_t key)
{
	struct tpkt p;
	uint8_t *l4 = tp_v4(&p, s, d, proto, plen);
	tp_payload(l4, plen);
	if (plen >= 2)
		tp_w16(l4, key);
	tp_finish(&p);
	return p;
}

/* SCTP common header + a 4-byte chunk header */
static inline struct tpkt sctp4(uint32_t s, uint32_t d, uint16_t sp, uint16_t dp)
{
	struct tpkt p;
	uint8_t *l4 = tp_v4(&p, s, d, 132, 16);
	memset(l4, 0, 16);
	tp_w16(l4, sp);
	tp_w16(l4 + 2, dp);
	tp_w32(l4 + 4, 0xabcdef01);
	l4[12] = 1; /* INIT */
	tp_w16(l4 + 14, 4);
	tp_finish(&p);
	return p;
}

/* ---- TCP connections ---- */

/* a TCP connection's endpoints; seg() builds its segments either way (rev: B to A) */
struct flow { bool v6; uint32_t a4, b4; struct ip6 a6, b6; uint16_t sp, dp; };
/* the default: 10.0.0.1:1234 -> 10.0.0.2:80 */
static const struct flow FAB = { .a4 = IP4(10, 0, 0, 1), .b4 = IP4(10, 0, 0, 2), .sp = 1234, .dp = 80 };

static inline struct tpkt seg(const struct flow *f, bool rev, uint8_t fl, uint32_t seq, uint32_t ack, uint16_t win,
			      uint16_t plen)
{
	if (f->v6)
		return rev ? tcp6(f->b6, f->a6, f->dp, f->sp, fl, seq, ack, win, plen, NO_WS)
			   : tcp6(f->a6, f->b6, f->sp, f->dp, fl, seq, ack, win, plen, NO_WS);
	return rev ? tcp4(f->b4, f->a4, f->dp, f->sp, fl, seq, ack, win, plen, NO_WS)
		   : tcp4(f->a4, f->b4, f->sp, f->dp, fl, seq, ack, win, plen, NO_WS);
}
static inline struct tpkt ab(uint8_t fl, uint32_t seq, uint32_t ack, uint16_t win, uint16_t plen)
{
	return seg(&FAB, false, fl, seq, ack, win, plen);
}
static inline struct tpkt ba(uint8_t fl, uint32_t seq, uint32_t ack, uint16_t win, uint16_t plen)
{
	return seg(&FAB, true, fl, seq, ack, win, plen);
}

/* after handshake(.., 65535, 65535): FIN from A, B's ACK, FIN from B, A's last ACK */
static inline struct tpkt close_pkt(int i)
{
	switch (i) {
	case 0: return ab(TH_FIN | TH_ACK, 1001, 5001, 65535, 0);
	case 1: return ba(TH_ACK, 5001, 1002, 65535, 0);
	case 2: return ba(TH_FIN | TH_ACK, 5001, 1002, 65535, 0);
	default: return ab(TH_ACK, 1002, 5002, 65535, 0);
	}
}

/* ---- mutations ---- */

static inline void tp_bad_l3_csum(struct tpkt *p) { tp_l3(p)[10] ^= 0x5a; }

static inline void tp_bad_l4_csum(struct tpkt *p)
{
	unsigned at = p->proto == 6 ? 16 : p->proto == 17 ? 6 : p->proto == 132 ? 8 : 2;
	tp_l4(p)[at] ^= 0x5a;
}

/* the IP packet cut to ip_len bytes, its length fields saying so (v4 header checksum redone) */
static inline void tp_cut(struct tpkt *p, uint32_t ip_len)
{
	p->len = TP_ETH + ip_len;
	if (p->v6) {
		tp_w16(tp_l3(p) + 4, ip_len - 40);
	} else {
		tp_w16(tp_l3(p) + 2, ip_len);
		tp_ip4_csum(p);
	}
}

/* IPv4 fragment field: more-fragments and offset (8-byte units) */
static inline void tp_frag4(struct tpkt *p, bool mf, uint16_t off8)
{
	tp_w16(tp_l3(p) + 6, (mf ? 0x2000u : 0) | off8);
	tp_ip4_csum(p);
}

#endif
