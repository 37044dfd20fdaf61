/* NAT in the tracker: SNAT and DNAT for TCP, UDP, ICMP and IPv6, the reply found by
 * its translated tuple, port selection (ranges, OVS's default ranges, exhaustion,
 * persistent), ICMP errors through NAT, dumps and flushes by either tuple, removal
 * of reply nodes, and replies whose entry lives in another lock bucket.
 *
 * Packets are translated with the rewriter the worker uses (nat/nat_rewrite.h), so
 * each test plays both ends: the client's packet leaves translated, the server
 * answers the packet it received, and the reply is translated back. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "../common/ftest.h"
#include "conntrack.h"
#include "ct_private.h"
#include "test_ct_packets.h"

#define SEC 1000000000ull
#define T0 (1000 * SEC)
#define ST(x) FERRY_CT_STATE_BIT_##x
#define HA IP4(10, 0, 0, 1)     /* inside client */
#define HA2 IP4(10, 0, 0, 3)    /* another inside client */
#define HB IP4(192, 0, 2, 7)    /* outside server */
#define HX IP4(203, 0, 113, 1)  /* the SNAT address */
#define HV IP4(198, 51, 100, 80) /* a DNAT virtual IP */
#define HS IP4(10, 1, 0, 5)     /* the server behind it */
#define HR IP4(192, 0, 2, 254)  /* a router outside */

static struct ferry_ct *ct;
static struct ferry_ct_thread th;

static void setup_n(uint32_t max, uint32_t buckets)
{
	ct = ferry_ct_create(&(struct ferry_ct_config){ .max_conns = max, .n_buckets = buckets, .cleanup_thread = false });
	if (ct == NULL) {
		fprintf(stderr, "ferry_ct_create failed\n");
		exit(1);
	}
	ferry_ct_thread_init(ct, &th);
}
static void setup(void) { setup_n(1000, 0); }
static void teardown(void)
{
	ferry_ct_thread_fini(&th);
	ferry_ct_destroy(ct);
	ct = NULL;
}

static void put4(uint8_t *a, uint32_t v)
{
	memset(a, 0, 16);
	tp_w32(a, v);
}

/* ct(commit, nat(src|dst=lo[-hi][:plo[-phi]])) */
static struct ferry_ct_action nat4(uint16_t kind, uint32_t lo, uint32_t hi, uint16_t plo, uint16_t phi)
{
	struct ferry_ct_action a = { .flags = FERRY_CT_FLAG_COMMIT | FERRY_CT_FLAG_NAT | kind };
	if (lo)
		put4(a.nat_addr_min, lo);
	if (hi)
		put4(a.nat_addr_max, hi);
	a.nat_port_min = plo;
	a.nat_port_max = phi;
	return a;
}
static const struct ferry_ct_action CT_NAT = { .flags = FERRY_CT_FLAG_NAT };
static const struct ferry_ct_action CT_PLAIN = { 0 };

struct out {
	struct ferry_ct_result r;
	bool rewritten;
	int rc;
};

/* One packet through the tracker, then through the rewriter when the tracker says */
static struct out go(struct tpkt *p, const struct ferry_ct_action *a, uint64_t now)
{
	struct out o;
	memset(&o, 0, sizeof(o));
	struct ferry_ct_pkt k = { .data = p->b, .len = p->len, .l3_ofs = TP_ETH, .eth_type = p->eth_type };
	ferry_ct_execute(&th, &k, &a, 1, now, &o.r);
	if (th.nat_mask & 1) {
		o.rewritten = true;
		o.rc = ferry_nat_rewrite(p->b, p->len, TP_ETH, p->l4_ofs, 0, &th.rw[0]);
	}
	return o;
}

static uint32_t src4(const struct tpkt *p) { return (uint32_t)tp_r16(p->b + TP_ETH + 12) << 16 | tp_r16(p->b + TP_ETH + 14); }
static uint32_t dst4(const struct tpkt *p) { return (uint32_t)tp_r16(p->b + TP_ETH + 16) << 16 | tp_r16(p->b + TP_ETH + 18); }
static uint16_t sport(const struct tpkt *p) { return tp_r16(p->b + p->l4_ofs); }
static uint16_t dport(const struct tpkt *p) { return tp_r16(p->b + p->l4_ofs + 2); }

/* every checksum of a rewritten packet verifies from scratch: the tracker, which
 * checks them (nothing marked good), takes it as valid */
static bool csums_ok(const struct tpkt *p)
{
	struct ferry_ct_thread t2;
	struct ferry_ct *c2 = ferry_ct_create(&(struct ferry_ct_config){ .max_conns = 16 });
	ferry_ct_thread_init(c2, &t2);
	struct ferry_ct_pkt k = { .data = p->b, .len = p->len, .l3_ofs = TP_ETH, .eth_type = p->eth_type };
	const struct ferry_ct_action *a = &CT_PLAIN;
	struct ferry_ct_result r;
	ferry_ct_execute(&t2, &k, &a, 1, T0, &r);
	ferry_ct_thread_fini(&t2);
	ferry_ct_destroy(c2);
	/* a reply or an error has no entry in this tracker (TCP flags, no connection):
	 * what matters is that no check of the headers or checksums failed */
	bool bad = (r.state & ST(INV)) && r.invalid_reason != FERRY_CT_INVALID_REASON_TCP_FLAGS &&
		   r.invalid_reason != FERRY_CT_INVALID_REASON_NO_CONN;
	if (bad)
		fprintf(stderr, "  rewritten packet is inv (reason %u)\n", r.invalid_reason);
	return !bad;
}

struct coll { unsigned n; struct ferry_ct_entry e[64]; };
static struct coll cl;
static int coll_cb(void *arg, const struct ferry_ct_entry *e)
{
	struct coll *c = arg;
	if (c->n < 64)
		c->e[c->n] = *e;
	c->n++;
	return 0;
}
static unsigned dumpf(const struct ferry_ct_filter *f, uint64_t now)
{
	bool done = false;
	cl.n = 0;
	ferry_ct_dump(ct, f, 0, 0, now, coll_cb, &cl, &done);
	CHECK(done);
	return cl.n;
}
static uint32_t a4(const uint8_t *a) { return (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 | (uint32_t)a[2] << 8 | a[3]; }

/* every slot empty: no entry and no reply node is left behind */
static bool table_empty(void)
{
	for (uint64_t s = 0; s <= ct->slot_mask; s++)
		if (ct->heads[s] != CT_NIL)
			return false;
	return true;
}

/* ---- SNAT ---- */

static void test_snat_tcp(void)
{
	setup();
	struct ferry_ct_action sn = nat4(FERRY_CT_FLAG_NAT_SRC, HX, 0, 0, 0);
	/* the client's SYN leaves as HX, its port kept (free) */
	struct tpkt syn = tcp4(HA, HB, 40000, 80, TH_SYN, 1000, 0, 65535, 0, NO_WS);
	struct out o = go(&syn, &sn, T0);
	CHECK_EQ(o.r.state, ST(TRK) | ST(NEW) | ST(SNAT));
	CHECK(o.rewritten);
	CHECK_EQ(o.rc, 0);
	CHECK_EQ(src4(&syn), HX);
	CHECK_EQ(sport(&syn), 40000);
	CHECK_EQ(dst4(&syn), HB);
	CHECK(csums_ok(&syn));
	/* the original tuple stays what the client sent (ct_nw_src, ...) */
	CHECK_EQ(a4(o.r.nw_src), HA);
	CHECK_EQ(o.r.tp_src, 40000);
	/* the server answers HX: found by the reply node, turned back to the client; its
	 * destination is what changed, so it is dnat (OVS's un_nat_packet) */
	struct tpkt sa = tcp4(HB, HX, 80, 40000, TH_SYN | TH_ACK, 5000, 1001, 65535, 0, NO_WS);
	o = go(&sa, &CT_NAT, T0 + 1);
	CHECK_EQ(o.r.state, ST(TRK) | ST(EST) | ST(RPL) | ST(SRPL) | ST(DNAT));
	CHECK(o.rewritten);
	CHECK_EQ(dst4(&sa), HA);
	CHECK_EQ(dport(&sa), 40000);
	CHECK_EQ(src4(&sa), HB);
	CHECK(csums_ok(&sa));
	/* the client's ACK */
	struct tpkt ack = tcp4(HA, HB, 40000, 80, TH_ACK, 1001, 5001, 65535, 0, NO_WS);
	o = go(&ack, &CT_NAT, T0 + 2);
	CHECK_EQ(o.r.state, ST(TRK) | ST(EST) | ST(SRPL) | ST(SNAT));
	CHECK_EQ(src4(&ack), HX);
	/* without nat in the action: tracked, not translated, no snat bit */
	struct tpkt ack2 = tcp4(HA, HB, 40000, 80, TH_ACK, 1001, 5001, 65535, 0, NO_WS);
	o = go(&ack2, &CT_PLAIN, T0 + 3);
	CHECK_EQ(o.r.state, ST(TRK) | ST(EST) | ST(SRPL));
	CHECK(!o.rewritten);
	CHECK_EQ(src4(&ack2), HA);
	/* one entry, both tuples in the dump */
	CHECK_EQ(dumpf(NULL, T0 + 4), 1);
	const struct ferry_ct_entry *e = &cl.e[0];
	CHECK_EQ(a4(e->src), HA);
	CHECK_EQ(a4(e->dst), HB);
	CHECK_EQ(e->sport, 40000);
	CHECK_EQ(a4(e->reply_src), HB);
	CHECK_EQ(a4(e->reply_dst), HX);
	CHECK_EQ(e->reply_sport, 80);
	CHECK_EQ(e->reply_dport, 40000);
	CHECK(e->flags & FERRY_CT_ENTRY_FLAG_SNAT);
	CHECK(!(e->flags & FERRY_CT_ENTRY_FLAG_DNAT));
	CHECK_EQ(*th.nat_created, 1);
	/* flush by the translated address: only the either-direction filter sees it */
	struct ferry_ct_filter f = { .flags = FERRY_CT_FILTER_FLAG_DST, .dst_plen = 32 };
	put4(f.dst, HX);
	CHECK_EQ(ferry_ct_flush(&th, &f, T0 + 5), 0);
	f.flags |= FERRY_CT_FILTER_FLAG_EITHER_DIR;
	CHECK_EQ(ferry_ct_flush(&th, &f, T0 + 5), 1);
	CHECK_EQ(ferry_ct_count(ct), 0);
	CHECK(table_empty());
	/* the server's packet to HX is nobody's reply now */
	struct tpkt late = tcp4(HB, HX, 80, 40000, TH_ACK, 5001, 1001, 65535, 0, NO_WS);
	o = go(&late, &CT_NAT, T0 + 6);
	CHECK(!(o.r.state & ST(EST)));
	CHECK(!o.rewritten);
	teardown();
}

/* Two clients with the same port to the same server behind one address: the second
 * gets another port, from OVS's default range for its port's class. */
static void test_snat_default_port_ranges(void)
{
	setup();
	struct ferry_ct_action sn = nat4(FERRY_CT_FLAG_NAT_SRC, HX, 0, 0, 0);
	static const struct { uint16_t port, lo, hi; } cls[] = {
		{ 40000, 1024, 65535 }, { 700, 600, 1023 }, { 300, 1, 511 },
	};
	for (unsigned i = 0; i < RTE_DIM(cls); i++) {
		struct tpkt p1 = udp4(HA, HB, cls[i].port, 53, 20);
		struct tpkt p2 = udp4(HA2, HB, cls[i].port, 53, 20);
		struct out o1 = go(&p1, &sn, T0);
		struct out o2 = go(&p2, &sn, T0);
		CHECK(o1.rewritten && o2.rewritten);
		CHECK_EQ(src4(&p1), HX);
		CHECK_EQ(src4(&p2), HX);
		CHECK_EQ(sport(&p1), cls[i].port); /* the first keeps its port */
		uint16_t p = sport(&p2);
		CHECK(p != cls[i].port && p >= cls[i].lo && p <= cls[i].hi);
		CHECK(csums_ok(&p2));
		/* each reply goes to its own client */
		struct tpkt r1 = udp4(HB, HX, 53, cls[i].port, 20), r2 = udp4(HB, HX, 53, p, 20);
		struct out q1 = go(&r1, &CT_NAT, T0 + 1), q2 = go(&r2, &CT_NAT, T0 + 1);
		CHECK(q1.r.state & ST(RPL));
		CHECK(q2.r.state & ST(RPL));
		CHECK_EQ(dst4(&r1), HA);
		CHECK_EQ(dst4(&r2), HA2);
		CHECK_EQ(dport(&r2), cls[i].port);
	}
	teardown();
}

/* A range of two ports for three connections: the third finds no tuple, is counted,
 * gets no entry and goes on untranslated; room comes back with a flush. */
static void test_snat_exhaustion(void)
{
	setup();
	struct ferry_ct_action sn = nat4(FERRY_CT_FLAG_NAT_SRC, HX, 0, 1000, 1001);
	uint16_t seen[2] = { 0 };
	for (unsigned i = 0; i < 2; i++) {
		struct tpkt p = udp4(HA, HB, (uint16_t)(5000 + i), 53, 8);
		struct out o = go(&p, &sn, T0);
		CHECK_EQ(o.r.state, ST(TRK) | ST(NEW) | ST(SNAT));
		seen[i] = sport(&p);
		CHECK(seen[i] == 1000 || seen[i] == 1001);
	}
	CHECK(seen[0] != seen[1]);
	struct tpkt p3 = udp4(HA, HB, 5002, 53, 8);
	struct out o = go(&p3, &sn, T0);
	CHECK_EQ(o.r.state, ST(TRK) | ST(NEW));
	CHECK(!o.rewritten);
	CHECK_EQ(src4(&p3), HA);
	CHECK_EQ(*th.nat_exhausted, 1);
	CHECK_EQ(ferry_ct_count(ct), 2);
	CHECK_EQ(*th.created, 2);
	/* a refused commit leaves nothing behind: its own key is not in the table */
	struct tpkt p3b = udp4(HA, HB, 5002, 53, 8);
	o = go(&p3b, &CT_PLAIN, T0);
	CHECK_EQ(o.r.state, ST(TRK) | ST(NEW));
	CHECK(ferry_ct_flush(&th, NULL, T0) == 2);
	CHECK(table_empty());
	struct tpkt p4 = udp4(HA, HB, 5002, 53, 8);
	o = go(&p4, &sn, T0 + 1);
	CHECK_EQ(o.r.state, ST(TRK) | ST(NEW) | ST(SNAT));
	teardown();
}

/* An address range: persistent gives one client one address whatever it talks to */
static void test_snat_persistent(void)
{
	setup();
	struct ferry_ct_action sn = nat4(FERRY_CT_FLAG_NAT_SRC | FERRY_CT_FLAG_NAT_PERSISTENT, HX, HX + 15, 0, 0);
	uint32_t first = 0;
	unsigned spread = 0;
	for (unsigned i = 0; i < 20; i++) {
		struct tpkt p = tcp4(HA, HB + i, (uint16_t)(30000 + i), 443, TH_SYN, 1, 0, 65535, 0, NO_WS);
		struct out o = go(&p, &sn, T0);
		CHECK(o.rewritten);
		uint32_t s = src4(&p);
		CHECK(s >= HX && s <= HX + 15);
		if (i == 0)
			first = s;
		CHECK_EQ(s, first);
	}
	/* without persistent, other tuples spread over the range */
	struct ferry_ct_action sp = nat4(FERRY_CT_FLAG_NAT_SRC, HX, HX + 15, 0, 0);
	uint32_t prev = 0;
	for (unsigned i = 0; i < 20; i++) {
		struct tpkt p = tcp4(HA2, HB + i, (uint16_t)(30000 + i), 443, TH_SYN, 1, 0, 65535, 0, NO_WS);
		struct out o = go(&p, &sp, T0);
		CHECK(o.rewritten || src4(&p) == HA2);
		uint32_t s = src4(&p);
		CHECK(s >= HX && s <= HX + 15);
		spread += i > 0 && s != prev;
		prev = s;
	}
	CHECK(spread > 0);
	teardown();
}

/* ICMP echo: the id is what moves when two clients ping one server with one id */
static void test_snat_icmp_echo(void)
{
	setup();
	struct ferry_ct_action sn = nat4(FERRY_CT_FLAG_NAT_SRC, HX, 0, 0, 0);
	struct tpkt q1 = icmp4_echo(HA, HB, 8, 77, 1), q2 = icmp4_echo(HA2, HB, 8, 77, 1);
	struct out o1 = go(&q1, &sn, T0), o2 = go(&q2, &sn, T0);
	CHECK(o1.rewritten && o2.rewritten);
	CHECK_EQ(src4(&q1), HX);
	CHECK_EQ(src4(&q2), HX);
	uint16_t id1 = tp_r16(q1.b + q1.l4_ofs + 4), id2 = tp_r16(q2.b + q2.l4_ofs + 4);
	CHECK_EQ(id1, 77);
	CHECK(id2 != 77);
	CHECK(csums_ok(&q2));
	struct tpkt r2 = icmp4_echo(HB, HX, 0, id2, 1);
	struct out o = go(&r2, &CT_NAT, T0 + 1);
	CHECK_EQ(o.r.state, ST(TRK) | ST(EST) | ST(RPL) | ST(SRPL) | ST(DNAT));
	CHECK_EQ(dst4(&r2), HA2);
	CHECK_EQ(tp_r16(r2.b + r2.l4_ofs + 4), 77);
	CHECK(csums_ok(&r2));
	teardown();
}

/* ---- DNAT ---- */

static void test_dnat_udp(void)
{
	setup();
	struct ferry_ct_action dn = nat4(FERRY_CT_FLAG_NAT_DST, HS, 0, 5353, 5353);
	struct tpkt q = udp4(HA, HV, 33000, 53, 30);
	struct out o = go(&q, &dn, T0);
	CHECK_EQ(o.r.state, ST(TRK) | ST(NEW) | ST(DNAT));
	CHECK_EQ(dst4(&q), HS);
	CHECK_EQ(dport(&q), 5353);
	CHECK_EQ(src4(&q), HA);
	CHECK(csums_ok(&q));
	/* the original destination is what ct_nw_dst says */
	CHECK_EQ(a4(o.r.nw_dst), HV);
	CHECK_EQ(o.r.tp_dst, 53);
	struct tpkt r = udp4(HS, HA, 5353, 33000, 30);
	o = go(&r, &CT_NAT, T0 + 1);
	CHECK_EQ(o.r.state, ST(TRK) | ST(EST) | ST(RPL) | ST(SRPL) | ST(SNAT));
	CHECK_EQ(src4(&r), HV);
	CHECK_EQ(sport(&r), 53);
	CHECK(csums_ok(&r));
	CHECK_EQ(dumpf(NULL, T0 + 2), 1);
	CHECK(cl.e[0].flags & FERRY_CT_ENTRY_FLAG_DNAT);
	CHECK_EQ(a4(cl.e[0].reply_src), HS);
	CHECK_EQ(cl.e[0].reply_sport, 5353);
	CHECK_EQ(a4(cl.e[0].reply_dst), HA);
	/* a UDP checksum of zero (none) stays zero */
	struct tpkt z = udp4(HA, HV, 33001, 53, 30);
	tp_w16(z.b + z.l4_ofs + 6, 0);
	o = go(&z, &dn, T0 + 3);
	CHECK(o.rewritten);
	CHECK_EQ(tp_r16(z.b + z.l4_ofs + 6), 0);
	CHECK(csums_ok(&z));
	teardown();
}

static void test_dnat_icmp_keeps_type(void)
{
	setup();
	struct ferry_ct_action dn = nat4(FERRY_CT_FLAG_NAT_DST, HS, 0, 0, 0);
	struct tpkt q = icmp4_echo(HA, HV, 8, 9, 1);
	struct out o = go(&q, &dn, T0);
	CHECK_EQ(o.r.state, ST(TRK) | ST(NEW) | ST(DNAT));
	CHECK_EQ(dst4(&q), HS);
	CHECK_EQ(q.b[q.l4_ofs], 8);
	CHECK_EQ(tp_r16(q.b + q.l4_ofs + 4), 9);
	struct tpkt r = icmp4_echo(HS, HA, 0, 9, 1);
	o = go(&r, &CT_NAT, T0 + 1);
	CHECK(o.r.state & ST(RPL));
	CHECK_EQ(src4(&r), HV);
	CHECK(csums_ok(&r));
	teardown();
}

static void test_nat_v6(void)
{
	setup();
	struct ip6 a = ip6(1, 1), b = ip6(2, 7), x = ip6(9, 1);
	struct ferry_ct_action sn = { .flags = FERRY_CT_FLAG_COMMIT | FERRY_CT_FLAG_NAT | FERRY_CT_FLAG_NAT_SRC,
				       .nat_is_ipv6 = 1, .nat_port_min = 20000, .nat_port_max = 20010 };
	memcpy(sn.nat_addr_min, x.a, 16);
	struct tpkt syn = tcp6(a, b, 50000, 443, TH_SYN, 1, 0, 65535, 0, NO_WS);
	struct out o = go(&syn, &sn, T0);
	CHECK_EQ(o.r.state, ST(TRK) | ST(NEW) | ST(SNAT));
	CHECK(memcmp(syn.b + TP_ETH + 8, x.a, 16) == 0);
	CHECK(sport(&syn) >= 20000 && sport(&syn) <= 20010);
	CHECK(csums_ok(&syn));
	struct tpkt sa = tcp6(b, x, 443, sport(&syn), TH_SYN | TH_ACK, 9, 2, 65535, 0, NO_WS);
	o = go(&sa, &CT_NAT, T0 + 1);
	CHECK(o.r.state & ST(EST));
	CHECK(memcmp(sa.b + TP_ETH + 24, a.a, 16) == 0);
	CHECK_EQ(dport(&sa), 50000);
	CHECK(csums_ok(&sa));
	/* a v4 range for a v6 connection fits nothing: counted, no entry */
	struct ferry_ct_action v4 = nat4(FERRY_CT_FLAG_NAT_SRC, HX, 0, 0, 0);
	struct tpkt u = udp6(a, b, 1234, 53, 8);
	o = go(&u, &v4, T0);
	CHECK_EQ(o.r.state, ST(TRK) | ST(NEW));
	CHECK_EQ(*th.nat_exhausted, 1);
	teardown();
}

/* ---- ICMP errors through NAT ---- */

static void test_nat_icmp_errors(void)
{
	setup();
	struct ferry_ct_action sn = nat4(FERRY_CT_FLAG_NAT_SRC, HX, 0, 0, 0);
	struct tpkt q = udp4(HA, HB, 41000, 9999, 40);
	go(&q, &sn, T0); /* q now is what left: HX:41000 -> HB:9999 */
	CHECK_EQ(src4(&q), HX);
	/* a router outside cannot deliver it: its error goes to HX and quotes HX */
	struct tpkt err = icmp4_err(HR, HX, 3, 1, &q, 8);
	struct out o = go(&err, &CT_NAT, T0 + 1);
	CHECK_EQ(o.r.state, ST(TRK) | ST(REL) | ST(RPL) | ST(DNAT));
	CHECK(o.rewritten);
	CHECK_EQ(o.rc, 0);
	CHECK_EQ(dst4(&err), HA);          /* outer destination: the client */
	CHECK_EQ(src4(&err), HR);
	const uint8_t *in = err.b + err.l4_ofs + 8; /* the quoted header: the client's packet */
	CHECK_EQ(a4(in + 12), HA);
	CHECK_EQ(a4(in + 16), HB);
	CHECK_EQ(tp_r16(in + 20), 41000);
	CHECK(csums_ok(&err));
	/* the client's own error about a reply goes out with HX on it */
	struct tpkt rep = udp4(HB, HX, 9999, 41000, 40);
	go(&rep, &CT_NAT, T0 + 2); /* now HB -> HA */
	CHECK_EQ(dst4(&rep), HA);
	struct tpkt err2 = icmp4_err(HA, HB, 3, 3, &rep, 8);
	o = go(&err2, &CT_NAT, T0 + 3);
	CHECK_EQ(o.r.state & (ST(REL) | ST(SNAT)), ST(REL) | ST(SNAT));
	CHECK(o.rewritten);
	CHECK_EQ(src4(&err2), HX);
	in = err2.b + err2.l4_ofs + 8;
	CHECK_EQ(a4(in + 16), HX);
	CHECK_EQ(tp_r16(in + 22), 41000);
	CHECK(csums_ok(&err2));
	/* ICMPv6 through NAT66 */
	struct ip6 a = ip6(1, 1), b = ip6(2, 7), x = ip6(9, 1), r = ip6(2, 254);
	struct ferry_ct_action s6 = { .flags = FERRY_CT_FLAG_COMMIT | FERRY_CT_FLAG_NAT | FERRY_CT_FLAG_NAT_SRC,
				       .nat_is_ipv6 = 1 };
	memcpy(s6.nat_addr_min, x.a, 16);
	struct tpkt t6 = tcp6(a, b, 50001, 22, TH_SYN, 1, 0, 65535, 0, NO_WS);
	go(&t6, &s6, T0);
	struct tpkt e6 = icmp6_err(r, x, 1, 0, 0, &t6);
	o = go(&e6, &CT_NAT, T0 + 1);
	CHECK(o.r.state & ST(REL));
	CHECK(memcmp(e6.b + TP_ETH + 24, a.a, 16) == 0);
	CHECK(memcmp(e6.b + e6.l4_ofs + 8 + 8, a.a, 16) == 0);
	CHECK(csums_ok(&e6));
	teardown();
}

/* ---- the table ---- */

/* Many translated connections over many lock buckets: replies (found by reply nodes
 * in other buckets than their entries) in bursts of 64 all find their entry, the
 * table's counts hold, and expiry takes every node away. */
static void test_nat_replies_across_buckets(void)
{
	setup_n(20000, 1024);
	struct ferry_ct_action sn = nat4(FERRY_CT_FLAG_NAT_SRC, HX, HX + 3, 0, 0);
	enum { N = 2048 };
	static struct tpkt out[N];
	for (unsigned i = 0; i < N; i++) {
		out[i] = udp4(HA + (i % 61), HB + (i % 7), (uint16_t)(1024 + i), 53, 8);
		struct out o = go(&out[i], &sn, T0);
		CHECK_EQ(o.r.state, ST(TRK) | ST(NEW) | ST(SNAT));
	}
	CHECK_EQ(ferry_ct_count(ct), N);
	unsigned est = 0, back = 0;
	for (unsigned base = 0; base < N; base += 64) {
		struct tpkt r[64];
		struct ferry_ct_pkt k[64];
		const struct ferry_ct_action *ap[64];
		struct ferry_ct_result res[64];
		for (unsigned j = 0; j < 64; j++) {
			const struct tpkt *o = &out[base + j];
			r[j] = udp4(dst4(o), src4(o), dport(o), sport(o), 8);
			k[j] = (struct ferry_ct_pkt){ .data = r[j].b, .len = r[j].len, .l3_ofs = TP_ETH, .eth_type = r[j].eth_type };
			ap[j] = &CT_NAT;
		}
		ferry_ct_execute(&th, k, ap, 64, T0 + 1, res);
		for (unsigned j = 0; j < 64; j++) {
			est += (res[j].state & (ST(EST) | ST(RPL))) == (ST(EST) | ST(RPL));
			if (th.nat_mask & (1ull << j)) {
				ferry_nat_rewrite(r[j].b, r[j].len, TP_ETH, r[j].l4_ofs, 0, &th.rw[j]);
				unsigned i = base + j;
				back += dst4(&r[j]) == HA + (i % 61) && dport(&r[j]) == 1024 + i;
			}
		}
	}
	CHECK_EQ(est, N);
	CHECK_EQ(back, N);
	/* every entry expires; the sweep takes entries and reply nodes */
	uint64_t gone = ferry_ct_sweep(&th, T0 + 3600 * SEC);
	CHECK_EQ(gone, N);
	CHECK_EQ(ferry_ct_count(ct), 0);
	CHECK(table_empty());
	teardown();
}

/* A reply node is no shortcut around the state machines: a reply of a translated
 * TCP connection outside the window is inv, and the entry stays */
static void test_nat_reply_checked(void)
{
	setup();
	struct ferry_ct_action sn = nat4(FERRY_CT_FLAG_NAT_SRC, HX, 0, 0, 0);
	struct tpkt syn = tcp4(HA, HB, 40000, 80, TH_SYN, 1000, 0, 65535, 0, NO_WS);
	go(&syn, &sn, T0);
	struct tpkt bad = tcp4(HB, HX, 80, 40000, TH_SYN | TH_FIN, 5000, 1001, 65535, 0, NO_WS);
	struct out o = go(&bad, &CT_NAT, T0 + 1);
	CHECK(o.r.state & ST(INV));
	CHECK(!o.rewritten);
	CHECK_EQ(ferry_ct_count(ct), 1);
	teardown();
}

/* The lock order: a reply whose entry lives in a lower bucket than its reply node,
 * while another thread holds that bucket, is not waited for under the reply node's
 * lock (a deadlock with a thread doing the opposite) but done again once both can
 * be taken in order; the result is the same. */
struct holder { pthread_mutex_t *lock; volatile int held; };
static void *hold_lock(void *arg)
{
	struct holder *h = arg;
	pthread_mutex_lock(h->lock);
	h->held = 1;
	usleep(50 * 1000);
	pthread_mutex_unlock(h->lock);
	return NULL;
}

static void test_nat_reply_waits_in_order(void)
{
	setup_n(20000, 1024);
	struct ferry_ct_action sn = nat4(FERRY_CT_FLAG_NAT_SRC, HX, HX + 3, 0, 0);
	/* a connection whose entry's bucket is below its reply node's */
	struct tpkt q;
	uint32_t home = 0, rb = 0;
	bool found = false;
	for (unsigned i = 0; i < 500 && !found; i++) {
		q = udp4(HA, HB, (uint16_t)(2000 + i), 53, 8);
		go(&q, &sn, T0);
		for (uint32_t k = 0; k < ct->capacity && k < 600; k++) {
			const struct ct_conn *c = &ct->conns[k];
			if (!(c->flags & CONN_NAT) || c->key.pa != 2000 + i)
				continue;
			home = ct_bucket_of(ct, c->hash);
			rb = ct_bucket_of(ct, ct->nat[k].rhash);
			found = ct->nat[k].linked && home < rb;
		}
	}
	CHECK(found);
	struct holder h = { .lock = &ct->buckets[home].lock };
	pthread_t tid;
	pthread_create(&tid, NULL, hold_lock, &h);
	while (!h.held)
		usleep(100);
	struct tpkt r = udp4(HB, src4(&q), 53, sport(&q), 8);
	struct out o = go(&r, &CT_NAT, T0 + 1);
	pthread_join(tid, NULL);
	CHECK_EQ(o.r.state, ST(TRK) | ST(EST) | ST(RPL) | ST(SRPL) | ST(DNAT));
	CHECK_EQ(dst4(&r), HA);
	teardown();
}

/* A commit whose only candidate tuple's bucket is below its own and busy is not
 * "exhausted": it is done again with both buckets taken in order */
static void test_nat_busy_candidate_is_not_exhaustion(void)
{
	setup_n(20000, 1024);
	struct ferry_ct_action dn = nat4(FERRY_CT_FLAG_NAT_DST, HS, 0, 8080, 8080); /* one candidate */
	uint16_t port = 0;
	uint32_t rb = 0;
	for (uint16_t sp = 2000; sp < 3000 && !port; sp++) {
		struct tpkt q = tcp4(HA, HV, sp, 80, TH_SYN, 1, 0, 65535, 0, NO_WS);
		go(&q, &dn, T0);
		for (uint32_t k = 0; k < 64; k++) { /* entries come from the thread's cache of 32 */
			const struct ct_conn *c = &ct->conns[k];
			if (!(c->flags & CONN_NAT) || ct_expired(c, T0))
				continue;
			uint32_t home = ct_bucket_of(ct, c->hash), r = ct_bucket_of(ct, ct->nat[k].rhash);
			if (ct->nat[k].linked && r < home) {
				port = sp;
				rb = r;
			}
		}
		ferry_ct_flush(&th, NULL, T0);
	}
	CHECK(port != 0);
	struct holder h = { .lock = &ct->buckets[rb].lock };
	pthread_t tid;
	pthread_create(&tid, NULL, hold_lock, &h);
	while (!h.held)
		usleep(100);
	struct tpkt q = tcp4(HA, HV, port, 80, TH_SYN, 1, 0, 65535, 0, NO_WS);
	struct out o = go(&q, &dn, T0 + 1);
	pthread_join(tid, NULL);
	CHECK_EQ(o.r.state, ST(TRK) | ST(NEW) | ST(DNAT));
	CHECK_EQ(dst4(&q), HS);
	CHECK_EQ(dport(&q), 8080);
	CHECK_EQ(*th.nat_exhausted, 0);
	CHECK_EQ(ferry_ct_count(ct), 1);
	teardown();
}

/* Two threads on one table: each sends originals and replies of its own translated
 * connections and opens new ones, in bursts, while a third sweeps and flushes; no
 * deadlock, and every reply that met its entry was translated back. */
struct hammer { unsigned id; unsigned est; unsigned back; unsigned opened; };
static void *hammer_main(void *arg)
{
	struct hammer *hm = arg;
	struct ferry_ct_thread t;
	ferry_ct_thread_init(ct, &t);
	struct ferry_ct_action sn = nat4(FERRY_CT_FLAG_NAT_SRC, HX, HX + 1, 0, 0);
	const uint32_t client = HA + hm->id * 100;
	for (unsigned round = 0; round < 200; round++) {
		struct tpkt p[64];
		struct ferry_ct_pkt k[64];
		const struct ferry_ct_action *ap[64];
		struct ferry_ct_result res[64];
		/* 32 new connections, then their 32 replies in the same burst's next call */
		for (unsigned j = 0; j < 32; j++) {
			p[j] = udp4(client + j % 8, HB + round % 5, (uint16_t)(1024 + round * 32 + j), 53, 8);
			k[j] = (struct ferry_ct_pkt){ .data = p[j].b, .len = p[j].len, .l3_ofs = TP_ETH, .eth_type = p[j].eth_type };
			ap[j] = &sn;
		}
		ferry_ct_execute(&t, k, ap, 32, T0, res);
		for (unsigned j = 0; j < 32; j++) {
			if (!(t.nat_mask & (1ull << j)))
				continue;
			hm->opened++;
			ferry_nat_rewrite(p[j].b, p[j].len, TP_ETH, p[j].l4_ofs, 0, &t.rw[j]);
			p[32 + j] = udp4(dst4(&p[j]), src4(&p[j]), dport(&p[j]), sport(&p[j]), 8);
		}
		unsigned n = 0;
		for (unsigned j = 0; j < 32; j++) {
			if (!(t.nat_mask & (1ull << j)))
				continue;
			p[n] = p[32 + j];
			k[n] = (struct ferry_ct_pkt){ .data = p[n].b, .len = p[n].len, .l3_ofs = TP_ETH, .eth_type = p[n].eth_type };
			ap[n] = &CT_NAT;
			n++;
		}
		ferry_ct_execute(&t, k, ap, n, T0 + 1, res);
		for (unsigned j = 0; j < n; j++) {
			if (!(res[j].state & ST(EST)))
				continue; /* flushed meanwhile */
			hm->est++;
			if (t.nat_mask & (1ull << j)) {
				ferry_nat_rewrite(p[j].b, p[j].len, TP_ETH, p[j].l4_ofs, 0, &t.rw[j]);
				hm->back += (dst4(&p[j]) & ~0xffu) == (client & ~0xffu);
			}
		}
	}
	ferry_ct_thread_fini(&t);
	return NULL;
}

static volatile int hammer_stop;
static void *flusher_main(void *arg)
{
	(void)arg;
	struct ferry_ct_thread t;
	ferry_ct_thread_init(ct, &t);
	while (!hammer_stop) {
		ferry_ct_flush(&t, NULL, T0);
		ferry_ct_sweep(&t, T0 + 2);
		usleep(200);
	}
	ferry_ct_thread_fini(&t);
	return NULL;
}

static void test_nat_threads(void)
{
	setup_n(100000, 64);
	struct hammer h[2] = { { .id = 0 }, { .id = 1 } };
	pthread_t t[2], f;
	hammer_stop = 0;
	pthread_create(&f, NULL, flusher_main, NULL);
	for (unsigned i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, hammer_main, &h[i]);
	for (unsigned i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	hammer_stop = 1;
	pthread_join(f, NULL);
	for (unsigned i = 0; i < 2; i++) {
		CHECK(h[i].opened > 0);
		CHECK(h[i].est > 0);
		CHECK_EQ(h[i].back, h[i].est);
	}
	/* whatever is left is consistent: a flush and a sweep empty the table */
	ferry_ct_flush(&th, NULL, T0 + 10);
	ferry_ct_sweep(&th, T0 + 3600 * SEC);
	CHECK_EQ(ferry_ct_count(ct), 0);
	CHECK(table_empty());
	teardown();
}

int main(void)
{
	RUN(test_snat_tcp);
	RUN(test_snat_default_port_ranges);
	RUN(test_snat_exhaustion);
	RUN(test_snat_persistent);
	RUN(test_snat_icmp_echo);
	RUN(test_dnat_udp);
	RUN(test_dnat_icmp_keeps_type);
	RUN(test_nat_v6);
	RUN(test_nat_icmp_errors);
	RUN(test_nat_replies_across_buckets);
	RUN(test_nat_reply_checked);
	RUN(test_nat_reply_waits_in_order);
	RUN(test_nat_busy_candidate_is_not_exhaustion);
	RUN(test_nat_threads);
	return ftest_finish();
}
