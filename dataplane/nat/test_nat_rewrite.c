/* ferry_nat_rewrite on packets built here, every checksum computed from scratch the
 * obvious way (big-endian word sums, a bitwise CRC32c). Each case rewrites a packet,
 * compares it byte for byte with the same packet built directly with the new tuple,
 * checks the changed fields one by one, and recomputes every checksum in it: IPv4
 * headers, TCP, UDP (0 staying 0), ICMP, ICMPv6, SCTP, an ICMP error's outer message
 * and quoted packet. The rewriter gets a heap copy of exactly len bytes, so that the
 * ASan build catches an access past the end. Then refusals (-1, nothing written), and
 * 10,000 random packets rewritten to a random tuple and back, byte-identical. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "../common/ftest.h"
#include "nat_rewrite.h"

#define ETH_LEN 14u
#define PKT_MAX 1024u
#define P_ICMP 1
#define P_TCP 6
#define P_UDP 17
#define P_GRE 47
#define P_ICMPV6 58
#define P_SCTP 132
#define RW_SRC FERRY_NAT_RW_SRC
#define RW_DST FERRY_NAT_RW_DST
#define RW_ERR FERRY_NAT_RW_ICMP_ERROR
#define RW_OSRC FERRY_NAT_RW_OUTER_SRC
#define RW_ODST FERRY_NAT_RW_OUTER_DST
#define ROUND_TRIPS 10000

static char ctx[200]; /* the case running, printed with its failures */

#define EXPECT(cond) do { \
	if (!(cond)) { \
		ftest_checks_failed++; \
		fprintf(stderr, "  FAILED %s:%d [%s]: %s\n", __FILE__, __LINE__, ctx, #cond); \
	} \
} while (0)

#define EXPECT_EQ(a, b) do { \
	unsigned long long x_ = (unsigned long long)(a), y_ = (unsigned long long)(b); \
	if (x_ != y_) { \
		ftest_checks_failed++; \
		fprintf(stderr, "  FAILED %s:%d [%s]: %s == %s (0x%llx != 0x%llx)\n", __FILE__, __LINE__, ctx, \
			#a, #b, x_, y_); \
	} \
} while (0)

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static void wr16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }

/* ---- reference sums ---- */

static uint32_t ref_add(uint32_t s, const uint8_t *p, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		s += (i & 1) ? p[i] : (uint32_t)p[i] << 8;
	return s;
}

static uint16_t ref_fold(uint32_t s)
{
	while (s > 0xffff)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

static uint32_t ref_pseudo(const uint8_t *src, const uint8_t *dst, unsigned alen, uint8_t proto, uint32_t l4len)
{
	uint32_t s = ref_add(ref_add(0, src, alen), dst, alen);
	return s + proto + (l4len >> 16) + (l4len & 0xffff);
}

/* the sum over data (and a pseudo header) validates */
static bool ref_ok(uint32_t pseudo, const uint8_t *p, uint32_t n)
{
	return ref_fold(ref_add(pseudo, p, n)) == 0xffff;
}

static uint16_t ref_csum(uint32_t pseudo, const uint8_t *p, uint32_t n)
{
	return (uint16_t)~ref_fold(ref_add(pseudo, p, n));
}

/* CRC32c bit by bit: reflected polynomial 0x82f63b78 */
static uint32_t ref_crc32c(const uint8_t *p, uint32_t n)
{
	uint32_t c = 0xffffffffu;
	for (uint32_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1)));
	}
	return ~c;
}

/* the SCTP checksum of a packet, its field taken as 0 */
static uint32_t ref_sctp(const uint8_t *l4, uint32_t n)
{
	uint8_t tmp[PKT_MAX];
	memcpy(tmp, l4, n);
	memset(tmp + 8, 0, 4);
	return ref_crc32c(tmp, n);
}

static uint32_t rd32le(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- packets ---- */

static bool is_request(uint8_t proto, uint8_t type)
{
	return proto == P_ICMPV6 ? type == 128 : (type == 8 || type == 13 || type == 15);
}

static bool is_reply(uint8_t proto, uint8_t type)
{
	return proto == P_ICMPV6 ? type == 129 : (type == 0 || type == 14 || type == 16);
}

/* the request a reply answers */
static uint8_t request_of(uint8_t proto, uint8_t type)
{
	return proto == P_ICMPV6 ? 128 : type == 0 ? 8 : (uint8_t)(type - 1);
}

static bool has_ports(uint8_t proto)
{
	return proto == P_TCP || proto == P_UDP || proto == P_SCTP;
}

static bool is_icmp(uint8_t proto)
{
	return proto == P_ICMP || proto == P_ICMPV6;
}

struct spec {
	uint8_t v, proto;
	uint8_t src[16], dst[16]; /* IPv4 in the first 4 bytes */
	uint16_t sport, dport;    /* TCP, UDP, SCTP */
	uint8_t icmp_type;        /* ICMP: a query (echo, timestamp, info) request or reply */
	uint16_t icmp_id;
	uint8_t v4_opts;          /* bytes of IPv4 options, a multiple of 4 */
	bool v6_ext;              /* a hop-by-hop and a destination options header before L4 */
	uint16_t payload;
	uint8_t seed;
	bool udp_nocsum;          /* UDP sent without a checksum (0) */
	bool l4_pseudo;           /* the TCP/UDP field holds the pseudo-header sum (offload) */
	bool ip_csum_nic;         /* the IPv4 header checksum left 0 for the NIC */
};

struct pkt {
	uint8_t b[PKT_MAX];
	uint32_t len;
	uint16_t l3, l4;
	uint8_t v, proto;
	/* an ICMP error: where its quoted packet's headers are, and whether all of it is there */
	bool error, q_whole;
	uint16_t q_l3, q_l4;
	uint8_t q_proto;
};

/* the tuple in the tracker's key domain */
struct tuple {
	uint8_t src[16], dst[16];
	uint16_t sport, dport;
};

static unsigned alen_of(uint8_t v) { return v == 4 ? 4u : 16u; }

static uint32_t l4_hdr_len(uint8_t proto)
{
	switch (proto) {
	case P_TCP: return 20;
	case P_UDP: return 8;
	case P_SCTP: return 12;
	case P_ICMP:
	case P_ICMPV6: return 8;
	default: return 0;
	}
}

static void key_tuple(const struct spec *s, struct tuple *t)
{
	memcpy(t->src, s->src, 16);
	memcpy(t->dst, s->dst, 16);
	if (is_icmp(s->proto)) {
		bool req = is_request(s->proto, s->icmp_type);
		t->sport = req ? s->icmp_id : request_of(s->proto, s->icmp_type);
		t->dport = req ? s->icmp_type : s->icmp_id;
	} else {
		t->sport = s->sport;
		t->dport = s->dport;
	}
}

/* the packet s describes, rewritten as op says with the tuple t: what the rewriter must make */
static struct spec expect(const struct spec *s, uint8_t op, const struct tuple *t)
{
	struct spec w = *s;
	bool icmp = is_icmp(s->proto);
	bool req = icmp && is_request(s->proto, s->icmp_type), rep = icmp && is_reply(s->proto, s->icmp_type);
	if (op & RW_SRC) {
		memcpy(w.src, t->src, 16);
		if (has_ports(s->proto))
			w.sport = t->sport;
		if (req)
			w.icmp_id = t->sport;
	}
	if (op & RW_DST) {
		memcpy(w.dst, t->dst, 16);
		if (has_ports(s->proto))
			w.dport = t->dport;
		if (rep)
			w.icmp_id = t->dport;
	}
	return w;
}

static struct ferry_nat_rewrite mkrw(uint8_t v, uint8_t proto, uint8_t op, const struct tuple *t)
{
	struct ferry_nat_rewrite rw;
	memset(&rw, 0, sizeof(rw));
	rw.op = op;
	rw.l3 = v;
	rw.proto = proto;
	memcpy(rw.src, t->src, 16);
	memcpy(rw.dst, t->dst, 16);
	rw.sport = t->sport;
	rw.dport = t->dport;
	return rw;
}

/* Fills the L4 checksum of the packet at l4 (l4len bytes) from scratch. */
static void fill_l4_csum(const struct spec *s, uint8_t *l4, uint32_t l4len)
{
	unsigned alen = alen_of(s->v);
	uint32_t ps = ref_pseudo(s->src, s->dst, alen, s->proto, l4len);
	switch (s->proto) {
	case P_TCP:
	case P_UDP: {
		uint8_t *c = l4 + (s->proto == P_TCP ? 16 : 6);
		if (s->l4_pseudo) {
			wr16(c, ref_fold(ps));
		} else if (s->proto == P_UDP && s->udp_nocsum) {
			wr16(c, 0);
		} else {
			uint16_t v = ref_csum(ps, l4, l4len);
			wr16(c, s->proto == P_UDP && v == 0 ? 0xffff : v);
		}
		break;
	}
	case P_ICMP:
		wr16(l4 + 2, ref_csum(0, l4, l4len));
		break;
	case P_ICMPV6:
		wr16(l4 + 2, ref_csum(ps, l4, l4len));
		break;
	case P_SCTP: {
		uint32_t crc = ref_crc32c(l4, l4len); /* the field is 0 yet */
		for (int i = 0; i < 4; i++)
			l4[8 + i] = (uint8_t)(crc >> (8 * i)); /* least significant byte first */
		break;
	}
	default:
		break;
	}
}

static void build(const struct spec *s, struct pkt *p)
{
	static const uint8_t macs[12] = { 0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01 };
	memset(p, 0, sizeof(*p));
	uint8_t *b = p->b;
	memcpy(b, macs, 12);
	wr16(b + 12, s->v == 4 ? 0x0800 : 0x86dd);
	uint32_t l3len = s->v == 4 ? 20u + s->v4_opts : 40u + (s->v6_ext ? 16u : 0u);
	uint32_t hdr = l4_hdr_len(s->proto), l4len = hdr + s->payload;
	p->v = s->v;
	p->proto = s->proto;
	p->l3 = ETH_LEN;
	p->l4 = (uint16_t)(ETH_LEN + l3len);
	p->len = p->l4 + l4len;
	uint8_t *ip = b + p->l3, *l4 = b + p->l4;
	for (uint32_t i = 0; i < s->payload; i++)
		l4[hdr + i] = (uint8_t)(s->seed * 31u + i * 7u + 1u);
	switch (s->proto) {
	case P_TCP:
		wr16(l4, s->sport);
		wr16(l4 + 2, s->dport);
		wr16(l4 + 4, 0x1234u + s->seed);
		wr16(l4 + 6, 0x5678);
		wr16(l4 + 8, 0x9abc);
		wr16(l4 + 10, 0xdef0u ^ s->seed);
		l4[12] = 5 << 4;
		l4[13] = 0x18; /* PSH ACK */
		wr16(l4 + 14, 29200);
		break;
	case P_UDP:
		wr16(l4, s->sport);
		wr16(l4 + 2, s->dport);
		wr16(l4 + 4, l4len);
		break;
	case P_SCTP:
		wr16(l4, s->sport);
		wr16(l4 + 2, s->dport);
		wr16(l4 + 4, 0xcafe);
		wr16(l4 + 6, 0xbeefu + s->seed); /* verification tag */
		break;
	case P_ICMP:
	case P_ICMPV6:
		l4[0] = s->icmp_type;
		wr16(l4 + 4, s->icmp_id);
		wr16(l4 + 6, 7u + s->seed); /* sequence */
		break;
	default:
		break;
	}
	if (s->v == 4) {
		ip[0] = (uint8_t)(0x40 | l3len / 4);
		wr16(ip + 2, l3len + l4len);
		wr16(ip + 4, 0x4242u + s->seed);
		ip[8] = 64;
		ip[9] = s->proto;
		memcpy(ip + 12, s->src, 4);
		memcpy(ip + 16, s->dst, 4);
		if (s->v4_opts) {
			/* router alert, then no-ops */
			memset(ip + 20, 1, s->v4_opts);
			ip[20] = 0x94, ip[21] = 4, ip[22] = 0, ip[23] = 0;
		}
		if (!s->ip_csum_nic)
			wr16(ip + 10, ref_csum(0, ip, l3len));
	} else {
		ip[0] = 0x60;
		ip[1] = s->seed & 0x0f; /* flow label bits */
		wr16(ip + 4, l3len - 40 + l4len);
		ip[6] = s->v6_ext ? 0 : s->proto;
		ip[7] = 64;
		memcpy(ip + 8, s->src, 16);
		memcpy(ip + 24, s->dst, 16);
		if (s->v6_ext) {
			/* hop-by-hop -> destination options -> L4, each with a 6-byte PadN */
			static const uint8_t padn[6] = { 1, 4, 0, 0, 0, 0 };
			ip[40] = 60, ip[41] = 0;
			memcpy(ip + 42, padn, 6);
			ip[48] = s->proto, ip[49] = 0;
			memcpy(ip + 50, padn, 6);
		}
	}
	fill_l4_csum(s, l4, l4len);
}

/* An ICMP error from osrc to odst quoting the packet in, cut after quote_l4 bytes of
 * its L4 packet (or not cut). */
struct err_spec {
	uint8_t v;
	uint8_t osrc[16], odst[16];
	struct spec in;
	uint32_t quote_l4;
};
#define QUOTE_ALL UINT32_MAX

static void build_error(const struct err_spec *e, struct pkt *p)
{
	struct pkt in;
	build(&e->in, &in);
	uint32_t q_l4 = in.l4 - in.l3, qlen = in.len - in.l3;
	if (e->quote_l4 != QUOTE_ALL && q_l4 + e->quote_l4 < qlen)
		qlen = q_l4 + e->quote_l4;
	struct spec outer;
	memset(&outer, 0, sizeof(outer));
	outer.v = e->v;
	outer.proto = e->v == 4 ? P_ICMP : P_ICMPV6;
	memcpy(outer.src, e->osrc, 16);
	memcpy(outer.dst, e->odst, 16);
	outer.icmp_type = e->v == 4 ? 3 : 1; /* destination unreachable */
	outer.payload = (uint16_t)qlen;
	build(&outer, p);
	uint8_t *icmp = p->b + p->l4;
	icmp[1] = e->v == 4 ? 3 : 4; /* port unreachable */
	memset(icmp + 4, 0, 4);
	memcpy(icmp + 8, in.b + in.l3, qlen);
	wr16(icmp + 2, 0);
	fill_l4_csum(&outer, icmp, 8 + qlen);
	p->error = true;
	p->q_l3 = (uint16_t)(p->l4 + 8);
	p->q_l4 = (uint16_t)(p->q_l3 + q_l4);
	p->q_proto = e->in.proto;
	p->q_whole = qlen == in.len - in.l3;
}

/* ---- checks ---- */

/* The L4 packet at l4 is right by a full recomputation. */
static bool l4_ok(uint8_t v, uint8_t proto, const uint8_t *ip, const uint8_t *l4, uint32_t l4len, bool l4_pseudo)
{
	unsigned alen = alen_of(v);
	const uint8_t *src = ip + (v == 4 ? 12 : 8), *dst = ip + (v == 4 ? 16 : 24);
	uint32_t ps = ref_pseudo(src, dst, alen, proto, l4len);
	switch (proto) {
	case P_TCP:
		return l4_pseudo ? rd16(l4 + 16) == ref_fold(ps) : ref_ok(ps, l4, l4len);
	case P_UDP:
		if (l4_pseudo)
			return rd16(l4 + 6) == ref_fold(ps);
		if (rd16(l4 + 6) == 0)
			return v == 4;
		return ref_ok(ps, l4, l4len);
	case P_ICMP:
		return ref_ok(0, l4, l4len);
	case P_ICMPV6:
		return ref_ok(ps, l4, l4len);
	case P_SCTP:
		return rd32le(l4 + 8) == ref_sctp(l4, l4len);
	default:
		return true;
	}
}

static uint32_t ip_total(uint8_t v, const uint8_t *ip)
{
	return v == 4 ? rd16(ip + 2) : 40u + rd16(ip + 4);
}

/* Every checksum in the packet validates when computed from scratch. */
static void check_sums(const struct pkt *p, bool l4_pseudo, bool ip_csum_nic)
{
	const uint8_t *ip = p->b + p->l3;
	if (p->v == 4 && !ip_csum_nic)
		EXPECT(ref_ok(0, ip, (ip[0] & 0xfu) * 4u));
	uint32_t l4len = p->l3 + ip_total(p->v, ip) - p->l4;
	EXPECT(l4_ok(p->v, p->proto, ip, p->b + p->l4, l4len, l4_pseudo));
	if (!p->error)
		return;
	const uint8_t *q = p->b + p->q_l3;
	if (p->v == 4)
		EXPECT(ref_ok(0, q, (q[0] & 0xfu) * 4u));
	if (p->q_whole)
		EXPECT(l4_ok(p->v, p->q_proto, q, p->b + p->q_l4, p->q_l3 + ip_total(p->v, q) - p->q_l4, false));
}

/* Compares the packet with the one wanted, naming the first byte that differs. */
static void check_same(const struct pkt *got, const struct pkt *want)
{
	EXPECT_EQ(got->len, want->len);
	for (uint32_t i = 0; i < got->len && i < want->len; i++) {
		if (got->b[i] != want->b[i]) {
			EXPECT_EQ(i, (uint32_t)-1); /* names the offset */
			fprintf(stderr, "    byte %u: 0x%02x, want 0x%02x\n", i, got->b[i], want->b[i]);
			break;
		}
	}
}

/* The addresses and ports (id) of the packet (quoted packet) at ip/l4 are the spec's. */
static void check_fields(const uint8_t *ip, const uint8_t *l4, const struct spec *w)
{
	unsigned alen = alen_of(w->v);
	EXPECT(memcmp(ip + (w->v == 4 ? 12 : 8), w->src, alen) == 0);
	EXPECT(memcmp(ip + (w->v == 4 ? 16 : 24), w->dst, alen) == 0);
	if (l4 == NULL)
		return;
	if (has_ports(w->proto)) {
		EXPECT_EQ(rd16(l4), w->sport);
		EXPECT_EQ(rd16(l4 + 2), w->dport);
	} else if (is_icmp(w->proto)) {
		EXPECT_EQ(l4[0], w->icmp_type);
		EXPECT_EQ(rd16(l4 + 4), w->icmp_id);
	}
}

/* The rewriter, twice: on a copy followed by guard bytes, which must stay as they were
 * (a write past the end, in any build), and on a heap block of exactly len bytes, where
 * ASan sees any access past the end. Both must come out the same. */
#define GUARD 64u
static int run(struct pkt *p, uint32_t len, uint16_t l4_ofs, unsigned tx, const struct ferry_nat_rewrite *rw)
{
	uint8_t *g = malloc(len + GUARD), *e = malloc(len ? len : 1);
	if (g == NULL || e == NULL)
		abort();
	memcpy(g, p->b, len);
	memset(g + len, 0x5a, GUARD);
	memcpy(e, p->b, len);
	int r = ferry_nat_rewrite(g, len, p->l3, l4_ofs, tx, rw);
	bool guard_ok = true;
	for (uint32_t i = 0; i < GUARD; i++)
		guard_ok = guard_ok && g[len + i] == 0x5a;
	EXPECT(guard_ok);
	EXPECT_EQ(ferry_nat_rewrite(e, len, p->l3, l4_ofs, tx, rw), r);
	EXPECT(memcmp(g, e, len) == 0);
	memcpy(p->b, e, len);
	free(g);
	free(e);
	return r;
}

/* ---- fixtures ---- */

static void addr(uint8_t *a, uint8_t v, uint8_t last)
{
	memset(a, 0, 16);
	if (v == 4) {
		a[0] = 10, a[1] = 1, a[2] = 2, a[3] = last;
	} else {
		a[0] = 0x20, a[1] = 0x01, a[2] = 0x0d, a[3] = 0xb8, a[8] = 0xab, a[15] = last;
	}
}

static struct spec base(uint8_t v, uint8_t proto)
{
	struct spec s;
	memset(&s, 0, sizeof(s));
	s.v = v;
	s.proto = proto;
	addr(s.src, v, 10);
	addr(s.dst, v, 20);
	s.sport = 40000;
	s.dport = 443;
	s.payload = 37; /* odd: the sums' odd tail */
	s.seed = 5;
	return s;
}

static struct spec icmp_spec(uint8_t v, uint8_t type)
{
	struct spec s = base(v, v == 4 ? P_ICMP : P_ICMPV6);
	s.icmp_type = type;
	s.icmp_id = 0x1357;
	return s;
}

/* a translation: new addresses and ports */
static struct tuple xlat(uint8_t v)
{
	struct tuple t;
	addr(t.src, v, 99);
	t.src[1] = 200;
	addr(t.dst, v, 77);
	t.dst[2] = 0x55;
	t.sport = 61000;
	t.dport = 8080;
	return t;
}

static const char *op_name(uint8_t op)
{
	return op == RW_SRC ? "src" : op == RW_DST ? "dst" : "src+dst";
}

/* One plain packet: rewrite, compare with the packet built directly, check fields and sums. */
static void plain_case(const struct spec *s, uint8_t op, const struct tuple *t, unsigned tx)
{
	struct pkt p, want;
	build(s, &p);
	struct tuple nt = *t;
	struct spec w = expect(s, op, &nt);
	if (tx & FERRY_NAT_TX_IP_CKSUM)
		w.ip_csum_nic = true; /* left as it was: 0 */
	build(&w, &want);
	struct ferry_nat_rewrite rw = mkrw(s->v, s->proto, op, &nt);
	EXPECT_EQ(run(&p, p.len, p.l4, tx, &rw), 0);
	check_same(&p, &want);
	check_fields(p.b + p.l3, p.b + p.l4, &w);
	check_sums(&p, s->l4_pseudo, w.ip_csum_nic);
}

/* ---- cases ---- */

/* v4 and v6, SNAT, DNAT and both, TCP, UDP, SCTP, ICMP echo request and reply */
static void test_plain(void)
{
	static const uint8_t ops[] = { RW_SRC, RW_DST, RW_SRC | RW_DST };
	for (uint8_t v = 4; v <= 6; v += 2) {
		struct tuple t = xlat(v);
		for (unsigned o = 0; o < 3; o++) {
			static const uint8_t protos[] = { P_TCP, P_UDP, P_SCTP };
			for (unsigned k = 0; k < 3; k++) {
				snprintf(ctx, sizeof(ctx), "v%u proto %u %s", v, protos[k], op_name(ops[o]));
				struct spec s = base(v, protos[k]);
				plain_case(&s, ops[o], &t, 0);
			}
			uint8_t req = v == 4 ? 8 : 128, rep = v == 4 ? 0 : 129;
			snprintf(ctx, sizeof(ctx), "v%u echo request %s", v, op_name(ops[o]));
			struct spec s = icmp_spec(v, req);
			plain_case(&s, ops[o], &t, 0);
			snprintf(ctx, sizeof(ctx), "v%u echo reply %s", v, op_name(ops[o]));
			s = icmp_spec(v, rep);
			plain_case(&s, ops[o], &t, 0);
		}
	}
}

/* where the id goes, said outright: a request's with SRC, a reply's with DST */
static void test_icmp_id_moves(void)
{
	for (uint8_t v = 4; v <= 6; v += 2) {
		struct tuple t = xlat(v);
		uint8_t req = v == 4 ? 8 : 128, rep = v == 4 ? 0 : 129;
		struct {
			uint8_t type, op;
			uint16_t id;
		} c[] = {
			{ req, RW_SRC, t.sport }, { req, RW_DST, 0x1357 },
			{ rep, RW_SRC, 0x1357 }, { rep, RW_DST, t.dport },
		};
		for (unsigned i = 0; i < 4; i++) {
			snprintf(ctx, sizeof(ctx), "v%u icmp type %u %s", v, c[i].type, op_name(c[i].op));
			struct spec s = icmp_spec(v, c[i].type);
			struct pkt p;
			build(&s, &p);
			/* the other half of the tuple is the type, which never changes */
			struct tuple nt = t;
			if (c[i].type == req)
				nt.dport = req;
			else
				nt.sport = req;
			struct ferry_nat_rewrite rw = mkrw(v, s.proto, c[i].op, &nt);
			EXPECT_EQ(run(&p, p.len, p.l4, 0, &rw), 0);
			EXPECT_EQ(rd16(p.b + p.l4 + 4), c[i].id);
			EXPECT_EQ(p.b[p.l4], c[i].type);
			check_sums(&p, false, false);
		}
	}
	/* ICMPv4 timestamp and info queries carry an id the same way */
	static const uint8_t types[] = { 13, 14, 15, 16 };
	struct tuple t = xlat(4);
	for (unsigned i = 0; i < 4; i++) {
		for (unsigned o = 0; o < 2; o++) {
			uint8_t op = o ? RW_DST : RW_SRC;
			snprintf(ctx, sizeof(ctx), "icmp type %u %s", types[i], op_name(op));
			struct spec s = icmp_spec(4, types[i]);
			plain_case(&s, op, &t, 0);
		}
	}
}

static void test_v4_options(void)
{
	static const uint8_t protos[] = { P_TCP, P_UDP, P_SCTP, P_ICMP };
	struct tuple t = xlat(4);
	for (unsigned k = 0; k < 4; k++) {
		for (uint8_t opts = 4; opts <= 40; opts += 36) {
			snprintf(ctx, sizeof(ctx), "v4 %u bytes of options, proto %u", opts, protos[k]);
			struct spec s = protos[k] == P_ICMP ? icmp_spec(4, 8) : base(4, protos[k]);
			s.v4_opts = opts;
			plain_case(&s, RW_SRC | RW_DST, &t, 0);
		}
	}
}

/* l4_ofs points past IPv6 extension headers (the rewriter need not walk them) */
static void test_v6_ext(void)
{
	static const uint8_t protos[] = { P_TCP, P_UDP, P_SCTP, P_ICMPV6 };
	struct tuple t = xlat(6);
	for (unsigned k = 0; k < 4; k++) {
		snprintf(ctx, sizeof(ctx), "v6 extension headers, proto %u", protos[k]);
		struct spec s = protos[k] == P_ICMPV6 ? icmp_spec(6, 128) : base(6, protos[k]);
		s.v6_ext = true;
		plain_case(&s, RW_SRC, &t, 0);
		plain_case(&s, RW_DST, &t, 0);
	}
}

static void test_udp_zero(void)
{
	struct tuple t = xlat(4);
	/* IPv4 UDP without a checksum: it stays without */
	for (unsigned o = 0; o < 2; o++) {
		uint8_t op = o ? RW_DST : RW_SRC;
		snprintf(ctx, sizeof(ctx), "v4 udp no checksum %s", op_name(op));
		struct spec s = base(4, P_UDP);
		s.udp_nocsum = true;
		plain_case(&s, op, &t, 0);
		struct pkt p;
		build(&s, &p);
		struct ferry_nat_rewrite rw = mkrw(4, P_UDP, op, &t);
		EXPECT_EQ(run(&p, p.len, p.l4, 0, &rw), 0);
		EXPECT_EQ(rd16(p.b + p.l4 + 6), 0);
	}
	/* a new port making the sum come to 0 is sent as 0xffff */
	for (uint8_t v = 4; v <= 6; v += 2) {
		snprintf(ctx, sizeof(ctx), "v%u udp checksum computing to 0", v);
		struct tuple nt = xlat(v);
		struct spec s = base(v, P_UDP);
		struct spec w = expect(&s, RW_SRC | RW_DST, &nt);
		w.dport = 0;
		struct pkt tmp;
		build(&w, &tmp);
		uint32_t l4len = tmp.len - tmp.l4;
		uint8_t *l4 = tmp.b + tmp.l4;
		wr16(l4 + 6, 0);
		uint16_t sum = ref_fold(ref_add(ref_pseudo(w.src, w.dst, alen_of(v), P_UDP, l4len), l4, l4len));
		nt.dport = (uint16_t)(0xffff - sum); /* the sum becomes 0xffff, its complement 0 */
		struct pkt p;
		build(&s, &p);
		struct ferry_nat_rewrite rw = mkrw(v, P_UDP, RW_SRC | RW_DST, &nt);
		EXPECT_EQ(run(&p, p.len, p.l4, 0, &rw), 0);
		EXPECT_EQ(rd16(p.b + p.l4 + 6), 0xffff);
		EXPECT_EQ(rd16(p.b + p.l4 + 2), nt.dport);
		check_sums(&p, false, false);
		plain_case(&s, RW_SRC | RW_DST, &nt, 0);
	}
}

/* a protocol without ports: addresses only (and what sums them) */
static void test_other_proto(void)
{
	for (uint8_t v = 4; v <= 6; v += 2) {
		snprintf(ctx, sizeof(ctx), "v%u gre", v);
		struct tuple t = xlat(v);
		struct spec s = base(v, P_GRE);
		s.payload = 24;
		plain_case(&s, RW_SRC | RW_DST, &t, 0);
		/* ICMP that is neither a query nor rewritten as an error: addresses (and ICMPv6's
		 * pseudo header) only */
		snprintf(ctx, sizeof(ctx), "v%u icmp not a query", v);
		s = icmp_spec(v, v == 4 ? 9 : 134); /* router advertisement */
		plain_case(&s, RW_SRC | RW_DST, &t, 0);
	}
}

/* SCTP: addresses alone leave the CRC; a port needs all of the packet; padding is not SCTP's */
static void test_sctp(void)
{
	for (uint8_t v = 4; v <= 6; v += 2) {
		struct tuple t = xlat(v);
		snprintf(ctx, sizeof(ctx), "v%u sctp address only", v);
		struct spec s = base(v, P_SCTP);
		struct pkt p;
		build(&s, &p);
		uint32_t crc = rd32le(p.b + p.l4 + 8);
		struct tuple same = t;
		same.sport = s.sport;
		same.dport = s.dport;
		struct ferry_nat_rewrite rw = mkrw(v, P_SCTP, RW_SRC | RW_DST, &same);
		EXPECT_EQ(run(&p, p.len, p.l4, 0, &rw), 0);
		EXPECT_EQ(rd32le(p.b + p.l4 + 8), crc);
		check_sums(&p, false, false);

		snprintf(ctx, sizeof(ctx), "v%u sctp, ethernet padding", v);
		s.payload = 4;
		build(&s, &p);
		struct spec w = expect(&s, RW_SRC, &t);
		struct pkt want;
		build(&w, &want);
		memset(p.b + p.len, 0xa5, 20);
		memset(want.b + want.len, 0xa5, 20);
		p.len += 20;
		want.len += 20;
		rw = mkrw(v, P_SCTP, RW_SRC, &t);
		EXPECT_EQ(run(&p, p.len, p.l4, 0, &rw), 0);
		check_same(&p, &want);
		p.len -= 20;
		check_sums(&p, false, false);
	}
}

/* L4 checksum offload: the field holds the pseudo-header sum, which has no ports */
static void test_offload(void)
{
	for (uint8_t v = 4; v <= 6; v += 2) {
		struct tuple t = xlat(v);
		for (unsigned k = 0; k < 2; k++) {
			uint8_t proto = k ? P_UDP : P_TCP;
			for (unsigned o = 0; o < 3; o++) {
				uint8_t op = (uint8_t)(o + 1);
				snprintf(ctx, sizeof(ctx), "v%u proto %u l4 pseudo %s", v, proto, op_name(op));
				struct spec s = base(v, proto);
				s.l4_pseudo = true;
				plain_case(&s, op, &t, FERRY_NAT_TX_L4_PSEUDO);
				/* said outright: the pseudo sum of the new addresses and the length */
				struct pkt p;
				build(&s, &p);
				struct ferry_nat_rewrite rw = mkrw(v, proto, op, &t);
				EXPECT_EQ(run(&p, p.len, p.l4, FERRY_NAT_TX_L4_PSEUDO, &rw), 0);
				struct spec w = expect(&s, op, &t);
				uint32_t l4len = p.len - p.l4;
				EXPECT_EQ(rd16(p.b + p.l4 + (proto == P_TCP ? 16 : 6)),
					  ref_fold(ref_pseudo(w.src, w.dst, alen_of(v), proto, l4len)));
				if (v == 4) {
					/* and the IPv4 header checksum left to the NIC too */
					snprintf(ctx, sizeof(ctx), "v4 proto %u l4 pseudo + ip csum %s", proto, op_name(op));
					s.ip_csum_nic = true;
					plain_case(&s, op, &t, FERRY_NAT_TX_L4_PSEUDO | FERRY_NAT_TX_IP_CKSUM);
				}
			}
		}
	}
	snprintf(ctx, sizeof(ctx), "v4 tcp, ip csum offload only");
	struct tuple t = xlat(4);
	struct spec s = base(4, P_TCP);
	s.ip_csum_nic = true;
	plain_case(&s, RW_SRC, &t, FERRY_NAT_TX_IP_CKSUM);
}

/* a later fragment has no L4 header: the addresses and the IPv4 header checksum */
static void test_later_fragment(void)
{
	for (uint8_t v = 4; v <= 6; v += 2) {
		snprintf(ctx, sizeof(ctx), "v%u later fragment", v);
		struct tuple t = xlat(v);
		/* a UDP datagram's bytes past offset 64 as the fragment's data */
		struct spec s = base(v, P_UDP);
		s.payload = 48;
		struct pkt p;
		build(&s, &p);
		if (v == 4) {
			uint8_t *ip = p.b + p.l3;
			wr16(ip + 6, 64 / 8); /* offset 64, no more fragments */
			wr16(ip + 10, 0);
			wr16(ip + 10, ref_csum(0, ip, 20));
		} else {
			/* insert a fragment header: next header UDP, offset 64 */
			memmove(p.b + p.l4 + 8, p.b + p.l4, p.len - p.l4);
			uint8_t *fh = p.b + p.l4;
			fh[0] = P_UDP, fh[1] = 0;
			wr16(fh + 2, 64);
			wr16(fh + 4, 0), wr16(fh + 6, 0x77);
			p.b[p.l3 + 6] = 44;
			p.len += 8;
			wr16(p.b + p.l3 + 4, p.len - p.l3 - 40);
		}
		struct pkt want = p;
		memcpy(want.b + p.l3 + (v == 4 ? 12 : 8), t.src, alen_of(v));
		memcpy(want.b + p.l3 + (v == 4 ? 16 : 24), t.dst, alen_of(v));
		if (v == 4) {
			wr16(want.b + p.l3 + 10, 0);
			wr16(want.b + p.l3 + 10, ref_csum(0, want.b + p.l3, 20));
		}
		struct ferry_nat_rewrite rw = mkrw(v, P_UDP, RW_SRC | RW_DST, &t);
		EXPECT_EQ(run(&p, p.len, 0, 0, &rw), 0);
		check_same(&p, &want);
		if (v == 4)
			EXPECT(ref_ok(0, p.b + p.l3, 20));
	}
}

/* an IPv4 first fragment: the L4 checksum covers the whole datagram, and stays right */
static void test_first_fragment(void)
{
	static const uint8_t protos[] = { P_TCP, P_UDP, P_ICMP };
	struct tuple t = xlat(4);
	for (unsigned k = 0; k < 3; k++) {
		snprintf(ctx, sizeof(ctx), "v4 first fragment, proto %u", protos[k]);
		struct spec s = protos[k] == P_ICMP ? icmp_spec(4, 8) : base(4, protos[k]);
		s.payload = 300;
		struct pkt whole, frag;
		build(&s, &whole);
		frag = whole;
		uint32_t cut = 20 + 8 * 10; /* L4 bytes in the first fragment */
		uint8_t *ip = frag.b + frag.l3;
		frag.len = frag.l4 + cut;
		wr16(ip + 2, 20 + cut);
		wr16(ip + 6, 0x2000); /* more fragments */
		wr16(ip + 10, 0);
		wr16(ip + 10, ref_csum(0, ip, 20));
		struct ferry_nat_rewrite rw = mkrw(4, s.proto, RW_SRC | RW_DST, &t);
		EXPECT_EQ(run(&frag, frag.len, frag.l4, 0, &rw), 0);
		EXPECT(ref_ok(0, ip, 20));
		/* put the datagram back together: rewritten first part, the rest as it was */
		memcpy(whole.b, frag.b, frag.len);
		wr16(whole.b + whole.l3 + 2, whole.len - whole.l3);
		wr16(whole.b + whole.l3 + 6, 0);
		wr16(whole.b + whole.l3 + 10, 0);
		wr16(whole.b + whole.l3 + 10, ref_csum(0, whole.b + whole.l3, 20));
		struct pkt want;
		struct spec w = expect(&s, RW_SRC | RW_DST, &t);
		build(&w, &want);
		check_same(&whole, &want);
		check_sums(&whole, false, false);
	}
}

/* One ICMP error: rewrite, compare with the error built about the rewritten quote. */
static void error_case(const struct err_spec *e, uint8_t op, const struct tuple *t, const uint8_t *outer)
{
	struct pkt p, want;
	build_error(e, &p);
	struct err_spec we = *e;
	we.in = expect(&e->in, op, t);
	if (op & RW_OSRC)
		memcpy(we.osrc, outer, 16);
	if (op & RW_ODST)
		memcpy(we.odst, outer, 16);
	build_error(&we, &want);
	struct ferry_nat_rewrite rw = mkrw(e->v, e->in.proto, op, t);
	memcpy(rw.outer, outer, 16);
	EXPECT_EQ(run(&p, p.len, p.l4, 0, &rw), 0);
	check_same(&p, &want);
	const uint8_t *q = p.b + p.q_l3;
	uint32_t quoted = p.len - p.q_l4;
	check_fields(q, quoted >= 8 ? p.b + p.q_l4 : NULL, &we.in);
	struct spec ow;
	memset(&ow, 0, sizeof(ow));
	ow.v = e->v;
	memcpy(ow.src, we.osrc, 16);
	memcpy(ow.dst, we.odst, 16);
	check_fields(p.b + p.l3, NULL, &ow);
	check_sums(&p, false, false);
}

static struct err_spec err_base(uint8_t v, const struct spec *in)
{
	struct err_spec e;
	memset(&e, 0, sizeof(e));
	e.v = v;
	addr(e.osrc, v, 1); /* a router on the way */
	e.osrc[1] = 9;
	memcpy(e.odst, in->src, 16); /* back to the quoted packet's sender */
	e.in = *in;
	e.quote_l4 = QUOTE_ALL;
	return e;
}

/* ICMPv4 and v6 errors quoting TCP, UDP, SCTP and an echo request: the two ways the
 * tracker uses (quote's source and outer destination; quote's destination and outer
 * source), and the quoted packet with IPv4 options or IPv6 extension headers */
static void test_icmp_errors(void)
{
	static const uint8_t protos[] = { P_TCP, P_UDP, P_SCTP, 0 };
	static const uint8_t ops[] = { RW_ERR | RW_SRC | RW_ODST, RW_ERR | RW_DST | RW_OSRC,
				       RW_ERR | RW_SRC | RW_DST | RW_OSRC | RW_ODST };
	for (uint8_t v = 4; v <= 6; v += 2) {
		struct tuple t = xlat(v);
		uint8_t outer[16];
		addr(outer, v, 33);
		for (unsigned k = 0; k < 4; k++) {
			for (unsigned o = 0; o < 3; o++) {
				for (unsigned x = 0; x < 2; x++) {
					struct spec in = protos[k] ? base(v, protos[k]) : icmp_spec(v, v == 4 ? 8 : 128);
					if (x && v == 4)
						in.v4_opts = 8;
					else if (x)
						in.v6_ext = true;
					snprintf(ctx, sizeof(ctx), "v%u error quoting proto %u op 0x%x%s", v, in.proto, ops[o],
						 x ? " (options/ext headers)" : "");
					struct err_spec e = err_base(v, &in);
					error_case(&e, ops[o], &t, outer);
				}
			}
		}
		/* only the outer header: the quote as it was */
		snprintf(ctx, sizeof(ctx), "v%u error, outer dst only", v);
		struct spec in = base(v, P_TCP);
		struct err_spec e = err_base(v, &in);
		error_case(&e, RW_ERR | RW_ODST, &t, outer);
	}
}

/* a quote cut after 8 bytes of L4: ports rewritten, UDP's checksum with them, TCP's not there */
static void test_truncated_quote(void)
{
	for (uint8_t v = 4; v <= 6; v += 2) {
		struct tuple t = xlat(v);
		uint8_t outer[16];
		addr(outer, v, 33);
		static const uint8_t protos[] = { P_TCP, P_UDP, P_SCTP };
		for (unsigned k = 0; k < 3; k++) {
			for (unsigned o = 0; o < 2; o++) {
				uint8_t op = o ? RW_ERR | RW_DST | RW_OSRC : RW_ERR | RW_SRC | RW_ODST;
				snprintf(ctx, sizeof(ctx), "v%u error quoting 8 bytes of proto %u op 0x%x", v, protos[k], op);
				struct spec in = base(v, protos[k]);
				in.payload = 200;
				struct err_spec e = err_base(v, &in);
				e.quote_l4 = 8;
				error_case(&e, op, &t, outer);
			}
		}
		/* an error quoting a later fragment: its addresses only */
		snprintf(ctx, sizeof(ctx), "v%u error quoting a later fragment", v);
		struct spec in = base(v, P_UDP);
		struct err_spec e = err_base(v, &in);
		struct pkt p;
		build_error(&e, &p);
		uint8_t *q = p.b + p.q_l3;
		if (v == 4) {
			wr16(q + 6, 8); /* offset 64 */
			wr16(q + 10, 0);
			wr16(q + 10, ref_csum(0, q, 20));
		} else {
			/* a fragment header in place of the UDP header's first 8 bytes */
			q[6] = 44;
			uint8_t *fh = p.b + p.q_l4;
			fh[0] = P_UDP, fh[1] = 0;
			wr16(fh + 2, 64);
		}
		uint8_t *icmp = p.b + p.l4;
		wr16(icmp + 2, 0);
		uint32_t ilen = p.len - p.l4;
		uint32_t ps = v == 6 ? ref_pseudo(p.b + p.l3 + 8, p.b + p.l3 + 24, 16, P_ICMPV6, ilen) : 0;
		wr16(icmp + 2, ref_csum(ps, icmp, ilen));
		struct pkt before = p;
		struct ferry_nat_rewrite rw = mkrw(v, P_UDP, RW_ERR | RW_SRC | RW_ODST, &t);
		memcpy(rw.outer, outer, 16);
		EXPECT_EQ(run(&p, p.len, p.l4, 0, &rw), 0);
		EXPECT(memcmp(q + (v == 4 ? 12 : 8), t.src, alen_of(v)) == 0);
		EXPECT(memcmp(p.b + p.q_l4, before.b + before.q_l4, p.len - p.q_l4) == 0); /* data unchanged */
		EXPECT(memcmp(p.b + p.l3 + (v == 4 ? 16 : 24), outer, alen_of(v)) == 0);
		if (v == 4) {
			EXPECT(ref_ok(0, p.b + p.l3, 20));
			EXPECT(ref_ok(0, q, 20));
		}
		ps = v == 6 ? ref_pseudo(p.b + p.l3 + 8, p.b + p.l3 + 24, 16, P_ICMPV6, ilen) : 0;
		EXPECT(ref_ok(ps, icmp, ilen));
	}
}

/* Expects -1 and not a byte changed. */
static void refused(const char *what, struct pkt *p, uint32_t len, uint16_t l4_ofs, unsigned tx,
		    const struct ferry_nat_rewrite *rw)
{
	snprintf(ctx, sizeof(ctx), "refused: %s", what);
	struct pkt before = *p;
	EXPECT_EQ(run(p, len, l4_ofs, tx, rw), -1);
	EXPECT(memcmp(p->b, before.b, sizeof(p->b)) == 0);
}

static void test_too_short(void)
{
	for (uint8_t v = 4; v <= 6; v += 2) {
		struct tuple t = xlat(v);
		unsigned iph = v == 4 ? 20 : 40;
		struct pkt p;
		struct spec s = base(v, P_TCP);
		build(&s, &p);
		struct ferry_nat_rewrite rw = mkrw(v, P_TCP, RW_SRC, &t);
		refused("IP header cut", &p, p.l3 + iph - 1, p.l4, 0, &rw);
		refused("IP header cut, later fragment", &p, p.l3 + iph - 1, 0, 0, &rw);
		refused("no IP header", &p, p.l3, 0, 0, &rw);
		refused("TCP header cut before its checksum", &p, p.l4 + 17, p.l4, 0, &rw);
		refused("TCP header cut", &p, p.l4 + 19, p.l4, 0, &rw);
		refused("L4 inside the IP header", &p, p.len, (uint16_t)(p.l4 - 4), 0, &rw);
		struct ferry_nat_rewrite bad = rw;
		bad.l3 = v == 4 ? 6 : 4;
		refused("IP version not the rewrite's", &p, p.len, p.l4, 0, &bad);
		if (v == 4) {
			/* options the IHL claims past the end */
			p.b[p.l3] = 0x4f;
			refused("IHL past the end", &p, p.l3 + 40, 0, 0, &rw);
			p.b[p.l3] = 0x45;
		}
		s = base(v, P_UDP);
		build(&s, &p);
		rw = mkrw(v, P_UDP, RW_DST, &t);
		refused("UDP header cut", &p, p.l4 + 7, p.l4, 0, &rw);
		s = icmp_spec(v, v == 4 ? 8 : 128);
		build(&s, &p);
		rw = mkrw(v, s.proto, RW_SRC, &t);
		refused("ICMP header cut", &p, p.l4 + 5, p.l4, 0, &rw);

		/* SCTP: a port change needs the whole packet */
		s = base(v, P_SCTP);
		build(&s, &p);
		rw = mkrw(v, P_SCTP, RW_SRC, &t);
		refused("SCTP cut short of its IP length", &p, p.len - 1, p.l4, 0, &rw);
		refused("SCTP header cut", &p, p.l4 + 11, p.l4, 0, &rw);
		if (v == 4) {
			wr16(p.b + p.l3 + 6, 0x2000);
			wr16(p.b + p.l3 + 10, 0);
			wr16(p.b + p.l3 + 10, ref_csum(0, p.b + p.l3, 20));
		} else {
			/* a fragment header (offset 0, more fragments) before SCTP */
			memmove(p.b + p.l4 + 8, p.b + p.l4, p.len - p.l4);
			uint8_t *fh = p.b + p.l4;
			fh[0] = P_SCTP, fh[1] = 0;
			wr16(fh + 2, 1);
			wr16(fh + 4, 0), wr16(fh + 6, 0x77);
			p.b[p.l3 + 6] = 44;
			p.len += 8;
			p.l4 += 8;
			wr16(p.b + p.l3 + 4, p.len - p.l3 - 40);
		}
		refused("SCTP in a first fragment", &p, p.len, p.l4, 0, &rw);

		/* ICMP errors */
		uint8_t outer[16];
		addr(outer, v, 33);
		struct spec in = base(v, P_TCP);
		struct err_spec e = err_base(v, &in);
		build_error(&e, &p);
		rw = mkrw(v, P_TCP, RW_ERR | RW_SRC | RW_ODST, &t);
		memcpy(rw.outer, outer, 16);
		refused("error: message cut short of its IP length", &p, p.len - 1, p.l4, 0, &rw);
		refused("error: no L4 offset", &p, p.len, 0, 0, &rw);
		struct ferry_nat_rewrite wrong = rw;
		wrong.proto = P_UDP;
		refused("error: the quote is not the rewrite's protocol", &p, p.len, p.l4, 0, &wrong);
		e.quote_l4 = 3;
		build_error(&e, &p);
		refused("error: quote cut inside the ports", &p, p.len, p.l4, 0, &rw);
		e.quote_l4 = 0;
		build_error(&e, &p);
		struct pkt cut = p;
		/* the quoted IP header itself cut: shorten the outer IP length */
		uint32_t keep = p.q_l3 + iph - 1;
		uint8_t *ip = cut.b + cut.l3;
		if (v == 4)
			wr16(ip + 2, keep - cut.l3);
		else
			wr16(ip + 4, keep - cut.l3 - 40);
		refused("error: quoted IP header cut", &cut, keep, cut.l4, 0, &rw);
		if (v == 6) {
			/* a quote that ends at or inside its extension headers */
			in = base(v, P_TCP);
			in.v6_ext = true;
			e = err_base(v, &in);
			e.quote_l4 = 0;
			for (uint32_t ext = 0; ext < 16; ext += 4) {
				build_error(&e, &cut);
				keep = cut.q_l3 + 40 + ext;
				wr16(cut.b + cut.l3 + 4, keep - cut.l3 - 40);
				refused("error: quote cut in its extension headers", &cut, keep, cut.l4, 0, &rw);
			}
		}
		in = icmp_spec(v, v == 4 ? 8 : 128);
		e = err_base(v, &in);
		e.quote_l4 = 5;
		build_error(&e, &p);
		rw = mkrw(v, in.proto, RW_ERR | RW_SRC | RW_ODST, &t);
		memcpy(rw.outer, outer, 16);
		refused("error: quoted echo cut before its id", &p, p.len, p.l4, 0, &rw);
	}
	snprintf(ctx, sizeof(ctx), "op 0 does nothing");
	struct ferry_nat_rewrite none;
	memset(&none, 0, sizeof(none));
	uint8_t b[4] = { 1, 2, 3, 4 };
	EXPECT_EQ(ferry_nat_rewrite(b, 4, 0, 0, 0, &none), 0);
}

/* ---- random round trips ---- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 16);
}

static void rnd_addr(uint8_t *a, uint8_t v)
{
	memset(a, 0, 16);
	for (unsigned i = 0; i < alen_of(v); i++)
		a[i] = (uint8_t)rnd();
}

static void test_round_trip(void)
{
	static const uint8_t v4_types[] = { 8, 0, 13, 14, 15, 16 };
	unsigned failed = 0;
	for (unsigned i = 0; i < ROUND_TRIPS && failed < 3; i++) {
		unsigned before = ftest_checks_failed;
		struct spec s;
		memset(&s, 0, sizeof(s));
		s.v = (rnd() & 1) ? 4 : 6;
		unsigned kind = rnd() % 4;
		s.proto = kind == 0 ? P_TCP : kind == 1 ? P_UDP : kind == 2 ? P_SCTP : s.v == 4 ? P_ICMP : P_ICMPV6;
		rnd_addr(s.src, s.v);
		rnd_addr(s.dst, s.v);
		s.sport = (uint16_t)rnd();
		s.dport = (uint16_t)rnd();
		s.icmp_type = s.v == 4 ? v4_types[rnd() % 6] : (uint8_t)(128 + (rnd() & 1));
		s.icmp_id = (uint16_t)rnd();
		s.payload = (uint16_t)(rnd() % 200);
		s.seed = (uint8_t)rnd();
		if (s.v == 4 && rnd() % 4 == 0)
			s.v4_opts = (uint8_t)(4 * (1 + rnd() % 10));
		if (s.v == 6 && rnd() % 4 == 0)
			s.v6_ext = true;
		if (s.proto == P_UDP && s.v == 4 && rnd() % 8 == 0)
			s.udp_nocsum = true;
		unsigned tx = 0;
		if ((s.proto == P_TCP || s.proto == P_UDP) && !s.udp_nocsum && rnd() % 8 == 0) {
			s.l4_pseudo = true;
			tx = FERRY_NAT_TX_L4_PSEUDO;
		}
		uint8_t op = (uint8_t)(1 + rnd() % 3);
		struct tuple t, orig;
		rnd_addr(t.src, s.v);
		rnd_addr(t.dst, s.v);
		t.sport = (uint16_t)rnd();
		t.dport = (uint16_t)rnd();
		key_tuple(&s, &orig);
		snprintf(ctx, sizeof(ctx), "round trip %u: v%u proto %u type %u op %u tx %u", i, s.v, s.proto,
			 s.icmp_type, op, tx);

		struct pkt p, o, want;
		build(&s, &p);
		o = p;
		struct spec w = expect(&s, op, &t);
		build(&w, &want);
		struct ferry_nat_rewrite there = mkrw(s.v, s.proto, op, &t), back = mkrw(s.v, s.proto, op, &orig);
		EXPECT_EQ(run(&p, p.len, p.l4, tx, &there), 0);
		check_same(&p, &want);
		check_sums(&p, s.l4_pseudo, false);
		EXPECT_EQ(run(&p, p.len, p.l4, tx, &back), 0);
		EXPECT(memcmp(p.b, o.b, p.len) == 0);
		if (ftest_checks_failed != before)
			failed++;
	}
}

int main(void)
{
	RUN(test_plain);
	RUN(test_icmp_id_moves);
	RUN(test_v4_options);
	RUN(test_v6_ext);
	RUN(test_udp_zero);
	RUN(test_other_proto);
	RUN(test_sctp);
	RUN(test_offload);
	RUN(test_later_fragment);
	RUN(test_first_fragment);
	RUN(test_icmp_errors);
	RUN(test_truncated_quote);
	RUN(test_too_short);
	RUN(test_round_trip);
	return ftest_finish();
}
