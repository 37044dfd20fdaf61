/* Conformance of the connection tracker with OVS's ct() (conntrack.md sections 1, 1a
 * and 5.6): pf TCP tracking step by step, UDP/other/ICMP machines, ICMP errors as
 * related, zones, mark/label, force, limits, early drop, timeout policies, expiry,
 * every invalid reason, bursts, dump/flush/stats, events and the state string. No EAL:
 * one tracker without its cleanup thread, one thread context, time given by hand. */
#include <stdlib.h>
#include <string.h>
#include "../common/ftest.h"
#include "conntrack.h"
#include "ct_private.h"
#include "test_ct_packets.h"

#define SEC 1000000000ull
#define MSEC 1000000ull
#define T0 (1000 * SEC)

enum {
	NEW = FERRY_CT_STATE_BIT_NEW, EST = FERRY_CT_STATE_BIT_EST, REL = FERRY_CT_STATE_BIT_REL,
	RPL = FERRY_CT_STATE_BIT_RPL, INV = FERRY_CT_STATE_BIT_INV, TRK = FERRY_CT_STATE_BIT_TRK,
	SRPL = FERRY_CT_STATE_BIT_SRPL,
};
enum {
	S_CLOSED = FERRY_CT_TCP_STATE_CLOSED, S_SYN_SENT = FERRY_CT_TCP_STATE_SYN_SENT,
	S_EST = FERRY_CT_TCP_STATE_ESTABLISHED, S_CLOSING = FERRY_CT_TCP_STATE_CLOSING,
	S_FW2 = FERRY_CT_TCP_STATE_FIN_WAIT_2, S_TW = FERRY_CT_TCP_STATE_TIME_WAIT,
};
#define COMMIT FERRY_CT_FLAG_COMMIT
#define FORCE FERRY_CT_FLAG_FORCE
#define R(x) FERRY_CT_INVALID_REASON_##x
#define TM(x) FERRY_CT_TM_##x

#define HA IP4(10, 0, 0, 1)
#define HB IP4(10, 0, 0, 2)
#define HR IP4(10, 0, 0, 254) /* a router on the way */

static struct ferry_ct *ct;
static struct ferry_ct_thread th;
static const struct ferry_ct_action CM = { .flags = COMMIT }, NC = { 0 };

static void setup_n(uint32_t max, uint32_t buckets)
{
	ct = ferry_ct_create(&(struct ferry_ct_config){ .max_conns = max, .n_buckets = buckets,
							.cleanup_thread = false });
	if (ct == NULL) {
		fprintf(stderr, "ferry_ct_create failed\n"); exit(1);
	}
	ferry_ct_thread_init(ct, &th);
}
static void setup(void) { setup_n(1000, 0); }
static void teardown(void)
{
	ferry_ct_thread_fini(&th); ferry_ct_destroy(ct); ct = NULL;
}

static struct ferry_ct_action zact(uint16_t zone, uint16_t flags)
{
	return (struct ferry_ct_action){ .zone = zone, .flags = flags };
}

static struct ferry_ct_pkt ctpkt(const struct tpkt *p)
{
	return (struct ferry_ct_pkt){ .data = p->b, .len = p->len, .l3_ofs = TP_ETH, .eth_type = p->eth_type,
				      .flags = p->flags };
}

/* one packet through the tracker; p->flags gets what the tracker set */
static struct ferry_ct_result gop(struct tpkt *p, const struct ferry_ct_action *a, uint64_t now)
{
	struct ferry_ct_pkt k = ctpkt(p); struct ferry_ct_result r; memset(&r, 0xa5, sizeof(r));
	ferry_ct_execute(&th, &k, &a, 1, now, &r); p->flags = k.flags;
	return r;
}
static struct ferry_ct_result go(struct tpkt p, const struct ferry_ct_action *a, uint64_t now)
{
	return gop(&p, a, now);
}

/* ---- dumps and internals ---- */

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
	bool done = false; cl.n = 0; uint64_t cur = ferry_ct_dump(ct, f, 0, 0, now, coll_cb, &cl, &done);
	CHECK(done); CHECK_EQ(cur, 0);
	return cl.n;
}

/* the table's only entry */
static struct ferry_ct_entry one(uint64_t now)
{
	struct ferry_ct_entry e; memset(&e, 0xee, sizeof(e)); unsigned n = dumpf(NULL, now);
	CHECK_EQ(n, 1);
	if (n >= 1)
		e = cl.e[0];
	return e;
}

/* the entry in the last dump with this protocol and original source port */
static const struct ferry_ct_entry *found(uint8_t proto, uint16_t sport)
{
	for (unsigned i = 0; i < cl.n && i < 64; i++)
		if (cl.e[i].proto == proto && cl.e[i].sport == sport)
			return &cl.e[i];
	return NULL;
}

static struct ct_conn *conn_only(void)
{
	struct ct_conn *c = NULL; unsigned n = 0;
	for (uint64_t s = 0; s <= ct->slot_mask; s++)
		for (uint32_t i = ct->heads[s]; i != CT_NIL; i = ct->conns[i].next, n++)
			c = &ct->conns[i];
	CHECK_EQ(n, 1);
	return c;
}

#define CHECK_TCP(e, so, sr, tm_, secs) do { \
	CHECK_EQ((e).state_orig, so); CHECK_EQ((e).state_reply, sr); \
	CHECK_EQ((e).tm, tm_); CHECK_EQ((e).timeout_ms, (secs) * 1000ull); \
} while (0)

/* ---- TCP flows ---- */

/* SYN seq 1000 (window wa), SYN-ACK seq 5000 (window wb), ACK */
static void handshake_f(const struct flow *f, const struct ferry_ct_action *a, uint64_t now, uint16_t wa, uint16_t wb)
{
	CHECK_EQ(go(seg(f, false, TH_SYN, 1000, 0, wa, 0), a, now).state, NEW | TRK);
	CHECK_EQ(go(seg(f, true, TH_SYN | TH_ACK, 5000, 1001, wb, 0), a, now).state, EST | RPL | TRK | SRPL);
	CHECK_EQ(go(seg(f, false, TH_ACK, 1001, 5001, wa, 0), a, now).state, EST | TRK | SRPL);
}
static void handshake(uint16_t zone, uint64_t now, uint16_t wa, uint16_t wb)
{
	struct ferry_ct_action a = zact(zone, COMMIT); handshake_f(&FAB, &a, now, wa, wb);
}

/* ================= TCP ================= */

static void test_tcp_handshake(void)
{
	static const uint8_t a4[4] = { 10, 0, 0, 1 }, b4[4] = { 10, 0, 0, 2 };
	setup(); struct ferry_ct_result r = go(ab(TH_SYN, 1000, 0, 65535, 0), &CM, T0);
	CHECK_EQ(r.state, NEW | TRK); CHECK_EQ(r.proto, 6); CHECK_EQ(r.tp_src, 1234); CHECK_EQ(r.tp_dst, 80);
	CHECK(memcmp(r.nw_src, a4, 4) == 0 && memcmp(r.nw_dst, b4, 4) == 0); CHECK_EQ(ferry_ct_count(ct), 1);
	struct ferry_ct_entry e = one(T0); CHECK_TCP(e, S_SYN_SENT, S_CLOSED, TM(TCP_SYN_SENT), 30);
	CHECK_EQ(e.packets_orig, 1); CHECK_EQ(e.bytes_orig, 40); CHECK_EQ(e.packets_reply, 0); CHECK_EQ(e.flags, 0);
	CHECK(memcmp(e.src, a4, 4) == 0 && e.sport == 1234 && e.dport == 80 && e.ip_version == 4);

	r = go(ba(TH_SYN | TH_ACK, 5000, 1001, 65535, 0), &CM, T0 + SEC);
	CHECK_EQ(r.state, EST | RPL | TRK | SRPL);
	CHECK_EQ(r.tp_src, 1234); /* the original direction's tuple */
	CHECK(memcmp(r.nw_src, a4, 4) == 0);
	e = one(T0 + SEC); CHECK_TCP(e, S_EST, S_SYN_SENT, TM(TCP_SYN_RECV), 30);
	CHECK_EQ(e.flags, FERRY_CT_ENTRY_FLAG_SEEN_REPLY);

	r = go(ab(TH_ACK, 1001, 5001, 65535, 0), &CM, T0 + 2 * SEC); CHECK_EQ(r.state, EST | TRK | SRPL);
	e = one(T0 + 2 * SEC); CHECK_TCP(e, S_EST, S_EST, TM(TCP_ESTABLISHED), 86400);
	CHECK_EQ(e.packets_orig, 2); CHECK_EQ(e.packets_reply, 1); CHECK_EQ(*th.created, 1);
	teardown();
}

static void test_tcp_syn_retransmit_synack_pickup(void)
{
	/* a SYN again before any reply: new, timeout back to 30 s */
	setup(); CHECK_EQ(go(ab(TH_SYN, 1000, 0, 65535, 0), &CM, T0).state, NEW | TRK);
	CHECK_EQ(one(T0 + 10 * SEC).timeout_ms, 20000);
	CHECK_EQ(go(ab(TH_SYN, 1000, 0, 65535, 0), &NC, T0 + 10 * SEC).state, NEW | TRK);
	struct ferry_ct_entry e = one(T0 + 10 * SEC); CHECK_TCP(e, S_SYN_SENT, S_CLOSED, TM(TCP_SYN_SENT), 30);
	CHECK_EQ(e.packets_orig, 2);
	CHECK_EQ(dumpf(NULL, T0 + 35 * SEC), 1); /* 30 s from T0 would be over */
	teardown();

	/* SYN+ACK on an empty table */
	setup(); struct ferry_ct_result r = go(ba(TH_SYN | TH_ACK, 5000, 1001, 65535, 0), &CM, T0);
	CHECK_EQ(r.state, INV | TRK); CHECK_EQ(r.invalid_reason, R(NO_CONN)); CHECK_EQ(ferry_ct_count(ct), 0);
	CHECK_EQ(th.invalid[R(NO_CONN)], 1); CHECK_EQ(*th.created, 0);
	teardown();

	/* an ACK mid-stream, committed: new, liberal, both scales unknown (14 used) */
	setup(); CHECK_EQ(go(ab(TH_ACK, 100000, 200000, 1000, 0), &CM, T0).state, NEW | TRK);
	e = one(T0); CHECK_EQ(e.flags, FERRY_CT_ENTRY_FLAG_BE_LIBERAL);
	CHECK_TCP(e, S_SYN_SENT, S_CLOSED, TM(TCP_SYN_SENT), 30);
	struct ct_conn *c = conn_only();
	if (c) {
		CHECK_EQ(c->peer[0].wscale, CT_WSCALE_UNKNOWN); CHECK_EQ(c->peer[1].wscale, CT_WSCALE_UNKNOWN);
	}
	CHECK_EQ(go(ba(TH_ACK, 200000, 100000, 1000, 0), &CM, T0).state, EST | RPL | TRK | SRPL);
	/* 5 MB ahead is inside 1000 << 14, 17 MB is not */
	CHECK_EQ(go(ab(TH_ACK, 100000 + 5000000, 200000, 1000, 100), &CM, T0).state, EST | TRK | SRPL);
	CHECK_EQ(go(ab(TH_ACK, 100000 + 17000000, 200000, 1000, 100), &CM, T0).state, INV | TRK);
	teardown();
}

static void test_tcp_close_and_reuse(void)
{
	static const struct { uint32_t res; uint8_t so, sr, tm; uint32_t secs; } want[4] = {
		{ EST | TRK | SRPL, S_CLOSING, S_EST, TM(TCP_FIN_WAIT), 900 },
		{ EST | RPL | TRK | SRPL, S_FW2, S_EST, TM(TCP_FIN_WAIT), 900 },
		{ EST | RPL | TRK | SRPL, S_FW2, S_CLOSING, TM(TCP_TIME_WAIT), 45 },
		{ EST | TRK | SRPL, S_FW2, S_FW2, TM(TCP_CLOSE), 30 },
	};
	setup(); handshake(0, T0, 65535, 65535);
	for (int i = 0; i < 4; i++) {
		uint64_t now = T0 + (uint64_t)(i + 1) * SEC; CHECK_EQ(go(close_pkt(i), &CM, now).state, want[i].res);
		struct ferry_ct_entry e = one(now); CHECK_TCP(e, want[i].so, want[i].sr, want[i].tm, want[i].secs);
	}
	struct ferry_ct_entry e = one(T0 + 5 * SEC); CHECK_EQ(e.packets_orig, 4); CHECK_EQ(e.packets_reply, 3);
	/* a new SYN on the closed connection replaces it */
	CHECK_EQ(go(ab(TH_SYN, 90000, 0, 65535, 0), &CM, T0 + 6 * SEC).state, NEW | TRK);
	CHECK_EQ(ferry_ct_count(ct), 1);
	e = one(T0 + 6 * SEC); CHECK_TCP(e, S_SYN_SENT, S_CLOSED, TM(TCP_SYN_SENT), 30);
	CHECK_EQ(e.packets_orig, 1); CHECK_EQ(e.packets_reply, 0); CHECK_EQ(e.flags, 0);
	CHECK_EQ(e.first_seen_ns, T0 + 6 * SEC); CHECK_EQ(*th.created, 2);
	teardown();
}

static void test_tcp_rst(void)
{
	for (int d = -1; d <= 1; d++) {
		setup(); handshake(0, T0, 65535, 65535);
		CHECK_EQ(go(ab(TH_ACK | TH_PSH, 1001, 5001, 65535, 100), &CM, T0).state, EST | TRK | SRPL);
		struct ct_conn *c = conn_only();
		if (c)
			CHECK_EQ(c->peer[0].seqlo, 1101);
		CHECK_EQ(go(ab(TH_RST, (uint32_t)(1101 + d), 0, 0, 0), &CM, T0 + SEC).state, EST | TRK | SRPL);
		struct ferry_ct_entry e = one(T0 + SEC); CHECK_TCP(e, S_TW, S_TW, TM(TCP_CLOSE), 30);
		teardown();
	}
	/* inside the window but not at seqlo: inv while the check is on */
	setup(); handshake(0, T0, 65535, 65535);
	CHECK_EQ(go(ab(TH_ACK | TH_PSH, 1001, 5001, 65535, 100), &CM, T0).state, EST | TRK | SRPL);
	struct ferry_ct_result r = go(ab(TH_RST | TH_ACK, 1101 + 1000, 5001, 0, 0), &CM, T0 + SEC);
	CHECK_EQ(r.state, INV | TRK); CHECK_EQ(r.invalid_reason, R(TCP_SEQ)); CHECK_EQ(th.invalid[R(TCP_SEQ)], 1);
	struct ferry_ct_entry e = one(T0 + SEC); CHECK_TCP(e, S_EST, S_EST, TM(TCP_ESTABLISHED), 86399);
	ferry_ct_set_tcp_seq_check(ct, false);
	CHECK_EQ(go(ab(TH_RST | TH_ACK, 1101 + 1000, 5001, 0, 0), &CM, T0 + SEC).state, EST | TRK | SRPL);
	e = one(T0 + SEC); CHECK_TCP(e, S_TW, S_TW, TM(TCP_CLOSE), 30); teardown();
}

static void test_tcp_beyond_window(void)
{
	setup();
	handshake(0, T0, 65535, 1000); /* B lets A send 1000 bytes from 1001 */
	struct ferry_ct_result r = go(ab(TH_ACK | TH_PSH, 1001, 5001, 65535, 1500), &CM, T0 + SEC);
	CHECK_EQ(r.state, INV | TRK); CHECK_EQ(r.invalid_reason, R(TCP_SEQ)); CHECK_EQ(th.invalid[R(TCP_SEQ)], 1);
	CHECK_EQ(ferry_ct_count(ct), 1);
	struct ferry_ct_entry e = one(T0 + SEC);
	CHECK_TCP(e, S_EST, S_EST, TM(TCP_ESTABLISHED), 86399); /* not refreshed */
	CHECK_EQ(e.packets_orig, 2);
	CHECK_EQ(go(ab(TH_ACK | TH_PSH, 1001, 5001, 65535, 900), &CM, T0 + 2 * SEC).state, EST | TRK | SRPL);
	e = one(T0 + 2 * SEC); CHECK_TCP(e, S_EST, S_EST, TM(TCP_ESTABLISHED), 86400);
	CHECK_EQ(e.packets_orig, 3);
	teardown();
}

static void test_tcp_window_scaling(void)
{
	/* the option on both SYNs: A shifts 7, B asks 15 and gets 14 */
	setup(); CHECK_EQ(go(tcp4(HA, HB, 1234, 80, TH_SYN, 1000, 0, 1280, 0, 7), &CM, T0).state, NEW | TRK);
	CHECK_EQ(go(tcp4(HB, HA, 80, 1234, TH_SYN | TH_ACK, 5000, 1001, 16384, 0, 15), &CM, T0).state,
		 EST | RPL | TRK | SRPL);
	struct ct_conn *c = conn_only();
	if (c) {
		CHECK_EQ(c->peer[0].wscale, CT_WSCALE_FLAG | 7); CHECK_EQ(c->peer[1].wscale, CT_WSCALE_FLAG | 14);
		CHECK_EQ(c->peer[0].max_win, 10); CHECK_EQ(c->peer[1].max_win, 1);
	}
	CHECK_EQ(go(ab(TH_ACK, 1001, 5001, 10, 0), &CM, T0).state, EST | TRK | SRPL);
	/* B may send 10 << 7 bytes */
	CHECK_EQ(go(ba(TH_ACK, 5001, 1001, 1, 1200), &CM, T0).state, EST | RPL | TRK | SRPL);
	/* A may send up to 1001 + (1 << 14), not (1 << 15) */
	CHECK_EQ(go(ab(TH_ACK, 1001 + 15000, 6201, 10, 1000), &CM, T0).state, EST | TRK | SRPL);
	CHECK_EQ(go(ab(TH_ACK, 1001 + 18600, 6201, 10, 1000), &CM, T0).state, INV | TRK);
	teardown();

	/* the option on the SYN only: no scaling, A's max_win shifted back */
	setup(); CHECK_EQ(go(tcp4(HA, HB, 1234, 80, TH_SYN, 1000, 0, 1280, 0, 7), &CM, T0).state, NEW | TRK);
	CHECK_EQ(go(ba(TH_SYN | TH_ACK, 5000, 1001, 1000, 0), &CM, T0).state, EST | RPL | TRK | SRPL);
	c = conn_only();
	if (c) {
		CHECK_EQ(c->peer[0].wscale, 0); CHECK_EQ(c->peer[1].wscale, 0); CHECK_EQ(c->peer[0].max_win, 1280);
	}
	CHECK_EQ(go(ab(TH_ACK, 1001, 5001, 10, 0), &CM, T0).state, EST | TRK | SRPL);
	CHECK_EQ(go(ba(TH_ACK, 5001, 1001, 1000, 1200), &CM, T0).state, EST | RPL | TRK | SRPL);
	CHECK_EQ(go(ab(TH_ACK, 1001, 6201, 10, 0), &CM, T0).state, EST | TRK | SRPL);
	/* A's window of 10 is 10 bytes now, not 10 << 7 */
	CHECK_EQ(go(ba(TH_ACK, 6201, 1001, 1000, 500), &CM, T0).state, INV | TRK);
	teardown();
}

static void test_tcp_loose_after_close(void)
{
	setup(); handshake(0, T0, 65535, 65535);
	for (int i = 0; i < 4; i++)
		CHECK_EQ(go(close_pkt(i), &CM, T0).state & EST, EST);
	CHECK_TCP(one(T0), S_FW2, S_FW2, TM(TCP_CLOSE), 30);
	/* A's strict window ends at 1002 + 65535: 1000 bytes past it is loose */
	CHECK_EQ(go(ab(TH_ACK, 66537 + 1000, 5002, 65535, 100), &CM, T0 + 5 * SEC).state, EST | TRK | SRPL);
	CHECK_EQ(one(T0 + 5 * SEC).timeout_ms, 25000);
	CHECK_EQ(go(ab(TH_ACK, 66537 + 2000, 5002, 65535, 100), &CM, T0 + 10 * SEC).state, EST | TRK | SRPL);
	CHECK_EQ(one(T0 + 10 * SEC).timeout_ms, 20000);
	/* beyond MAXACKWINDOW past seqhi: inv */
	CHECK_EQ(go(ab(TH_ACK, 66537 + 67035 + 100, 5002, 65535, 100), &CM, T0 + 11 * SEC).state, INV | TRK);
	CHECK_EQ(th.invalid[R(TCP_SEQ)], 1);
	/* a packet in the strict window (B acking all of A's) refreshes */
	CHECK_EQ(go(ba(TH_ACK, 5002, 66537 + 2100, 65535, 0), &CM, T0 + 12 * SEC).state, EST | RPL | TRK | SRPL);
	CHECK_EQ(one(T0 + 12 * SEC).timeout_ms, 30000);
	teardown();
}

static void test_tcp_flag_table(void)
{
	static const uint8_t bad[] = { TH_SYN | TH_RST, TH_SYN | TH_FIN, 0, TH_FIN, TH_PSH, TH_URG,
				       TH_SYN | TH_PSH, TH_RST | TH_FIN, TH_SYN | TH_URG };
	const unsigned n = sizeof(bad); unsigned inv = 0, reason_ok = 0;
	/* no entry, with commit */
	setup();
	for (unsigned i = 0; i < n; i++) {
		struct ferry_ct_result r = go(ab(bad[i], 1000, 0, 65535, 0), &CM, T0);
		inv += r.state == (INV | TRK); reason_ok += r.invalid_reason == R(TCP_FLAGS);
		CHECK_EQ(th.invalid[R(TCP_FLAGS)], i + 1);
	}
	CHECK_EQ(inv, n); CHECK_EQ(reason_ok, n); CHECK_EQ(ferry_ct_count(ct), 0); CHECK_EQ(th.invalid[R(NO_CONN)], 0);
	teardown();

	/* on an established connection: inv, the entry as it was */
	setup(); handshake(0, T0, 65535, 65535); inv = reason_ok = 0;
	for (unsigned i = 0; i < n; i++) {
		struct ferry_ct_result r = go(ab(bad[i], 1001, 5001, 65535, 0), &CM, T0 + SEC);
		inv += r.state == (INV | TRK); reason_ok += r.invalid_reason == R(TCP_FLAGS);
		CHECK_EQ(th.invalid[R(TCP_FLAGS)], i + 1);
	}
	CHECK_EQ(inv, n); CHECK_EQ(reason_ok, n); CHECK_EQ(th.invalid[R(TCP_SEQ)], 0);
	struct ferry_ct_entry e = one(T0 + SEC); CHECK_TCP(e, S_EST, S_EST, TM(TCP_ESTABLISHED), 86399);
	CHECK_EQ(e.packets_orig, 2);
	teardown();

	/* ECE and CWR are ignored */
	setup(); CHECK_EQ(go(ab(TH_SYN | TH_ECE | TH_CWR, 1000, 0, 65535, 0), &CM, T0).state, NEW | TRK);
	CHECK_EQ(ferry_ct_count(ct), 1);
	CHECK_EQ(go(ba(TH_SYN | TH_ACK | TH_ECE, 5000, 1001, 65535, 0), &CM, T0).state, EST | RPL | TRK | SRPL);
	CHECK_EQ(go(ab(TH_ACK | TH_CWR, 1001, 5001, 65535, 0), &CM, T0).state, EST | TRK | SRPL);
	CHECK_EQ(go(ab(TH_ECE | TH_CWR, 1001, 5001, 65535, 0), &CM, T0).state, INV | TRK); /* still NULL */
	CHECK_EQ(th.invalid[R(TCP_FLAGS)], 1);
	CHECK_TCP(one(T0), S_EST, S_EST, TM(TCP_ESTABLISHED), 86400);
	teardown();
}

/* ================= UDP, other, ICMP ================= */

static void test_udp(void)
{
	static const uint8_t a4[4] = { 10, 0, 0, 1 };
	setup(); CHECK_EQ(go(udp4(HA, HB, 1000, 53, 10), &NC, T0).state, NEW | TRK); CHECK_EQ(ferry_ct_count(ct), 0);
	CHECK_EQ(go(udp4(HA, HB, 1000, 53, 10), &CM, T0).state, NEW | TRK);
	struct ferry_ct_entry e = one(T0);
	CHECK_EQ(e.tm, TM(UDP_FIRST)); CHECK_EQ(e.timeout_ms, 60000); CHECK_EQ(e.proto, 17);
	CHECK_EQ(go(udp4(HA, HB, 1000, 53, 10), &CM, T0 + 10 * SEC).state, NEW | TRK);
	e = one(T0 + 10 * SEC); CHECK_EQ(e.tm, TM(UDP_SINGLE)); CHECK_EQ(e.timeout_ms, 60000);
	struct ferry_ct_result r = go(udp4(HB, HA, 53, 1000, 20), &NC, T0 + 20 * SEC);
	CHECK_EQ(r.state, EST | RPL | TRK | SRPL); CHECK_EQ(r.tp_src, 1000); CHECK_EQ(r.tp_dst, 53);
	CHECK(memcmp(r.nw_src, a4, 4) == 0);
	e = one(T0 + 20 * SEC); CHECK_EQ(e.tm, TM(UDP_MULTIPLE)); CHECK_EQ(e.timeout_ms, 30000);
	CHECK_EQ(e.flags, FERRY_CT_ENTRY_FLAG_SEEN_REPLY);
	CHECK_EQ(go(udp4(HA, HB, 1000, 53, 10), &NC, T0 + 25 * SEC).state, EST | TRK | SRPL);
	e = one(T0 + 25 * SEC);
	CHECK_EQ(e.timeout_ms, 30000); CHECK_EQ(e.packets_orig, 3); CHECK_EQ(e.packets_reply, 1);
	CHECK_EQ(e.bytes_orig, 3 * 38); CHECK_EQ(e.bytes_reply, 48);
	teardown();
}

static void test_ovs_benchmark_frame(void)
{
	static const char hex[] = "50540000000a50540000000908004500001c0000000000"
				  "11a4cd0a0101010a0101020001000200080000";
	struct tpkt f; memset(&f, 0, sizeof(f));
	for (unsigned i = 0; i < 42; i++) {
		char byte[3] = { hex[2 * i], hex[2 * i + 1], 0 };
		f.b[i] = (uint8_t)strtoul(byte, NULL, 16);
	}
	f.len = 42; f.eth_type = 0x0800;
	struct tpkt rep = f; /* addresses and ports swapped: the same sums */
	memcpy(rep.b + 26, f.b + 30, 4); memcpy(rep.b + 30, f.b + 26, 4);
	memcpy(rep.b + 34, f.b + 36, 2); memcpy(rep.b + 36, f.b + 34, 2);
	setup();
	for (int i = 0; i < 3; i++)
		CHECK_EQ(go(f, &CM, T0).state, NEW | TRK);
	CHECK_EQ(ferry_ct_count(ct), 1);
	struct ferry_ct_result r = go(rep, &CM, T0);
	CHECK_EQ(r.state, EST | RPL | TRK | SRPL); CHECK_EQ(r.tp_src, 1); CHECK_EQ(r.tp_dst, 2);
	CHECK_EQ(ferry_ct_count(ct), 1);
	teardown();
}

static void test_other_protocols(void)
{
	setup(); struct ferry_ct_result r = go(ip4_proto(HA, HB, 47, 24, 0x1111), &CM, T0);
	CHECK_EQ(r.state, NEW | TRK); CHECK_EQ(r.proto, 47); CHECK_EQ(r.tp_src, 0); CHECK_EQ(r.tp_dst, 0);
	/* other GRE contents between the same hosts: the same connection */
	CHECK_EQ(go(ip4_proto(HA, HB, 47, 24, 0x2222), &CM, T0).state, NEW | TRK); CHECK_EQ(ferry_ct_count(ct), 1);
	CHECK_EQ(go(ip4_proto(HB, HA, 47, 24, 0x3333), &CM, T0).state, EST | RPL | TRK | SRPL);
	CHECK_EQ(ferry_ct_count(ct), 1); CHECK_EQ(go(ip4_proto(HA, HR, 47, 24, 0x1111), &CM, T0).state, NEW | TRK);
	CHECK_EQ(go(ip4_proto(HA, HB, 50, 24, 0x1111), &CM, T0).state, NEW | TRK); CHECK_EQ(ferry_ct_count(ct), 3);
	CHECK_EQ(dumpf(NULL, T0), 3);
	const struct ferry_ct_entry *e = found(47, 0); CHECK(e != NULL);
	/* SCTP: ports and CRC32c, the UDP machine */
	r = go(sctp4(HA, HB, 5000, 6000), &CM, T0); CHECK_EQ(r.state, NEW | TRK); CHECK_EQ(r.tp_src, 5000);
	CHECK_EQ(go(sctp4(HB, HA, 6000, 5000), &CM, T0).state, EST | RPL | TRK | SRPL);
	struct tpkt s = sctp4(HB, HA, 6000, 5000); tp_bad_l4_csum(&s); r = go(s, &CM, T0);
	CHECK_EQ(r.state, INV | TRK); CHECK_EQ(r.invalid_reason, R(L4_CSUM)); CHECK_EQ(ferry_ct_count(ct), 4);
	teardown();
}

static void test_icmp_echo(void)
{
	setup();
	/* v4 */
	struct ferry_ct_result r = go(icmp4_echo(HA, HB, 8, 7, 1), &CM, T0);
	/* OVS's ct_tp_src/ct_tp_dst of ICMP are the original type and code */
	CHECK_EQ(r.state, NEW | TRK); CHECK_EQ(r.proto, 1); CHECK_EQ(r.tp_src, 8); CHECK_EQ(r.tp_dst, 0);
	struct ferry_ct_entry e = one(T0);
	CHECK_EQ(e.icmp_type, 8); CHECK_EQ(e.tm, TM(ICMP_FIRST)); CHECK_EQ(e.timeout_ms, 60000);
	CHECK_EQ(go(icmp4_echo(HB, HA, 0, 7, 1), &CM, T0).state, EST | RPL | TRK | SRPL);
	e = one(T0); CHECK_EQ(e.tm, TM(ICMP_REPLY)); CHECK_EQ(e.timeout_ms, 30000);
	CHECK_EQ(go(icmp4_echo(HA, HB, 8, 7, 2), &CM, T0).state, EST | TRK | SRPL);
	CHECK_EQ(go(icmp4_echo(HA, HB, 8, 8, 1), &CM, T0).state, NEW | TRK); /* another id */
	CHECK_EQ(ferry_ct_count(ct), 2);
	r = go(icmp4_echo(HB, HA, 0, 9, 1), &CM, T0);
	CHECK_EQ(r.state, INV | TRK); CHECK_EQ(r.invalid_reason, R(NO_CONN)); CHECK_EQ(ferry_ct_count(ct), 2);
	/* v6 */
	struct ip6 a = ip6(0, 1), b = ip6(0, 2); r = go(icmp6_echo(a, b, 128, 7, 1), &CM, T0);
	CHECK_EQ(r.state, NEW | TRK); CHECK_EQ(r.proto, 58); CHECK(memcmp(r.nw_src, a.a, 16) == 0);
	CHECK_EQ(go(icmp6_echo(b, a, 129, 7, 1), &CM, T0).state, EST | RPL | TRK | SRPL);
	CHECK_EQ(go(icmp6_echo(a, b, 128, 8, 1), &CM, T0).state, NEW | TRK); CHECK_EQ(ferry_ct_count(ct), 4);
	r = go(icmp6_echo(b, a, 129, 9, 1), &CM, T0);
	CHECK_EQ(r.state, INV | TRK); CHECK_EQ(r.invalid_reason, R(NO_CONN)); CHECK_EQ(th.invalid[R(NO_CONN)], 2);
	CHECK_EQ(ferry_ct_count(ct), 4);
	teardown();
}

static void test_icmp_errors(void)
{
	setup(); struct tpkt u = udp4(HA, HB, 1000, 53, 10); CHECK_EQ(go(u, &CM, T0).state, NEW | TRK);
	/* a router tells A its datagram did not get through: rel, in the reply direction */
	struct ferry_ct_result r = go(icmp4_err(HR, HA, 3, 1, &u, 8), &CM, T0);
	CHECK_EQ(r.state & ~SRPL, REL | RPL | TRK); CHECK_EQ(r.proto, 17); CHECK_EQ(r.tp_src, 1000);
	CHECK_EQ(r.tp_dst, 53); CHECK_EQ(go(icmp4_err(HB, HA, 3, 3, &u, 8), &CM, T0).state & ~SRPL, REL | RPL | TRK);
	/* an error in the original direction about B's reply: rel without rpl */
	struct tpkt rep = udp4(HB, HA, 53, 1000, 10); CHECK_EQ(go(rep, &CM, T0).state, EST | RPL | TRK | SRPL);
	CHECK_EQ(go(icmp4_err(HA, HB, 3, 3, &rep, 8), &CM, T0).state, REL | TRK | SRPL);
	/* time exceeded for a TCP SYN */
	struct tpkt syn = ab(TH_SYN, 1000, 0, 65535, 0); CHECK_EQ(go(syn, &CM, T0).state, NEW | TRK);
	r = go(icmp4_err(HR, HA, 11, 0, &syn, 8), &CM, T0);
	CHECK_EQ(r.state & ~SRPL, REL | RPL | TRK); CHECK_EQ(r.proto, 6); CHECK_EQ(r.tp_dst, 80);
	CHECK_EQ(ferry_ct_count(ct), 2);
	/* about a connection nobody committed */
	struct tpkt u2 = udp4(HA, HB, 1001, 53, 10); r = go(icmp4_err(HR, HA, 3, 1, &u2, 8), &CM, T0);
	CHECK_EQ(r.state, INV | TRK); CHECK_EQ(r.invalid_reason, R(NO_CONN));
	/* the quoted packet's source is not where the error goes */
	r = go(icmp4_err(HR, IP4(10, 0, 0, 9), 3, 1, &u, 8), &CM, T0);
	CHECK_EQ(r.state, INV | TRK); CHECK_EQ(r.invalid_reason, R(ICMP_ERROR));
	/* an error about an error */
	struct tpkt e1 = icmp4_err(HR, HA, 3, 1, &u, 8); r = go(icmp4_err(HA, HR, 3, 1, &e1, 8), &CM, T0);
	CHECK_EQ(r.state, INV | TRK); CHECK_EQ(r.invalid_reason, R(ICMP_ERROR));
	/* less than 8 bytes of the quoted L4 */
	r = go(icmp4_err(HR, HA, 3, 1, &u, 4), &CM, T0);
	CHECK_EQ(r.state, INV | TRK); CHECK_EQ(r.invalid_reason, R(ICMP_ERROR)); CHECK_EQ(th.invalid[R(ICMP_ERROR)], 3);
	CHECK_EQ(ferry_ct_count(ct), 2);

	/* v6: destination unreachable, packet too big */
	struct ip6 a = ip6(0, 1), b = ip6(0, 2), rt = ip6(0, 0xfe); struct tpkt u6 = udp6(a, b, 1000, 53, 10);
	CHECK_EQ(go(u6, &CM, T0).state, NEW | TRK);
	r = go(icmp6_err(rt, a, 1, 4, 0, &u6), &CM, T0);
	CHECK_EQ(r.state & ~SRPL, REL | RPL | TRK); CHECK_EQ(r.proto, 17); CHECK(memcmp(r.nw_dst, b.a, 16) == 0);
	struct tpkt t6 = tcp6(a, b, 1234, 443, TH_SYN, 1000, 0, 65535, 0, NO_WS);
	CHECK_EQ(go(t6, &CM, T0).state, NEW | TRK);
	r = go(icmp6_err(rt, a, 2, 0, 1280, &t6), &CM, T0);
	CHECK_EQ(r.state & ~SRPL, REL | RPL | TRK); CHECK_EQ(r.proto, 6); CHECK_EQ(r.tp_dst, 443);
	struct tpkt u6b = udp6(a, b, 1001, 53, 10); r = go(icmp6_err(rt, a, 1, 4, 0, &u6b), &CM, T0);
	CHECK_EQ(r.state, INV | TRK); CHECK_EQ(r.invalid_reason, R(NO_CONN));
	r = go(icmp6_err(rt, ip6(0, 9), 1, 4, 0, &u6), &CM, T0);
	CHECK_EQ(r.state, INV | TRK); CHECK_EQ(r.invalid_reason, R(ICMP_ERROR)); CHECK_EQ(ferry_ct_count(ct), 4);
	teardown();
}

/* The type is part of an ICMP key too (conntrack.md 1: "keyed by id and type"): B's echo
 * request with the id of A's is a connection of its own, not a misdirected reply,
 * and a timestamp request is not part of an echo exchange. */
static void test_icmp_key_has_type(void)
{
	setup(); CHECK_EQ(go(icmp4_echo(HA, HB, 8, 7, 1), &CM, T0).state, NEW | TRK);
	struct ferry_ct_result r = go(icmp4_echo(HB, HA, 8, 7, 1), &CM, T0);
	CHECK_EQ(r.state, NEW | TRK); CHECK_EQ(ferry_ct_count(ct), 2);
	CHECK_EQ(go(icmp4_echo(HA, HB, 13, 7, 1), &CM, T0).state, NEW | TRK); CHECK_EQ(ferry_ct_count(ct), 3);
	CHECK_EQ(go(icmp4_echo(HB, HA, 0, 7, 1), &CM, T0).state, EST | RPL | TRK | SRPL);
	teardown();
}

/* An ICMP error is not a reply of the connection (netfilter leaves SEEN_REPLY alone;
 * OVS never runs the L4 update for it): the entry stays unreplied, and so evictable. */
static void test_icmp_error_not_a_reply(void)
{
	setup(); struct tpkt u = udp4(HA, HB, 1000, 53, 10); CHECK_EQ(go(u, &CM, T0).state, NEW | TRK);
	CHECK_EQ(go(icmp4_err(HR, HA, 3, 1, &u, 8), &CM, T0).state, REL | RPL | TRK);
	CHECK_EQ(one(T0).flags & FERRY_CT_ENTRY_FLAG_SEEN_REPLY, 0); CHECK_EQ(go(u, &CM, T0).state, NEW | TRK);
	teardown();
}

/* ================= zones, mark/label, force ================= */

static void test_zones(void)
{
	setup(); struct ferry_ct_action z1 = zact(1, COMMIT), z2 = zact(2, COMMIT), z1n = zact(1, 0), z2n = zact(2, 0);
	struct ferry_ct_result r = go(udp4(HA, HB, 1000, 53, 0), &z1, T0);
	CHECK_EQ(r.state, NEW | TRK); CHECK_EQ(r.zone, 1);
	r = go(udp4(HB, HA, 53, 1000, 0), &z2n, T0);
	CHECK_EQ(r.state, NEW | TRK); /* not a reply in zone 2 */
	CHECK_EQ(r.zone, 2); CHECK_EQ(ferry_ct_count(ct), 1);
	CHECK_EQ(go(udp4(HB, HA, 53, 1000, 0), &z1n, T0).state, EST | RPL | TRK | SRPL);
	CHECK_EQ(go(udp4(HA, HB, 1000, 53, 0), &z2, T0).state, NEW | TRK); CHECK_EQ(ferry_ct_count(ct), 2);
	CHECK_EQ(ferry_ct_zone_count(ct, 1), 1); CHECK_EQ(ferry_ct_zone_count(ct, 2), 1);
	struct ferry_ct_filter f = { .flags = FERRY_CT_FILTER_FLAG_ZONE, .zone = 2 };
	CHECK_EQ(dumpf(&f, T0), 1); CHECK_EQ(cl.e[0].zone, 2); CHECK_EQ(cl.e[0].flags, 0);
	CHECK_EQ(go(udp4(HA, HB, 1000, 53, 0), &z1n, T0).state, EST | TRK | SRPL);
	CHECK_EQ(go(udp4(HA, HB, 1000, 53, 0), &NC, T0).state, NEW | TRK); /* zone 0 */
	teardown();
}

static void test_mark_label(void)
{
	setup();
	struct ferry_ct_action a = { .flags = COMMIT, .mark = 0x12345678, .mark_mask = 0xffff0000 };
	a.label[0] = 0xaa; a.label_mask[0] = 0xff; a.label[15] = 0x5f; a.label_mask[15] = 0x0f;
	a.label[7] = 0x77; /* not under the mask */
	struct ferry_ct_result r = go(udp4(HA, HB, 1000, 53, 0), &a, T0);
	CHECK_EQ(r.mark, 0x12340000); CHECK_EQ(r.label[0], 0xaa); CHECK_EQ(r.label[15], 0x0f); CHECK_EQ(r.label[7], 0);
	struct ferry_ct_entry e = one(T0);
	CHECK_EQ(e.mark, 0x12340000); CHECK_EQ(e.label[0], 0xaa); CHECK_EQ(e.label[15], 0x0f);
	/* without commit nothing is written; the packet sees the entry's */
	struct ferry_ct_action nc = { .flags = 0, .mark = 0xffffffff, .mark_mask = 0xffffffff };
	memset(nc.label, 0xff, 16); memset(nc.label_mask, 0xff, 16); r = go(udp4(HB, HA, 53, 1000, 0), &nc, T0);
	CHECK_EQ(r.state, EST | RPL | TRK | SRPL); CHECK_EQ(r.mark, 0x12340000); CHECK_EQ(r.label[1], 0);
	CHECK_EQ(one(T0).mark, 0x12340000);
	/* commit again: only the masked bits change */
	struct ferry_ct_action b = { .flags = COMMIT, .mark = 0xabcd, .mark_mask = 0xffff };
	b.label[15] = 0xa0; b.label_mask[15] = 0xf0; r = go(udp4(HA, HB, 1000, 53, 0), &b, T0);
	CHECK_EQ(r.mark, 0x1234abcd); CHECK_EQ(r.label[15], 0xaf); CHECK_EQ(r.label[0], 0xaa);
	r = go(udp4(HA, HB, 1000, 53, 0), &NC, T0); CHECK_EQ(r.mark, 0x1234abcd); CHECK_EQ(r.label[15], 0xaf);
	e = one(T0); CHECK_EQ(e.mark, 0x1234abcd); CHECK_EQ(e.label[15], 0xaf);
	teardown();
	/* an inv packet with commit writes nothing */
	setup();
	struct ferry_ct_action m1 = { .flags = COMMIT, .mark = 1, .mark_mask = 0xffffffff };
	struct ferry_ct_action m2 = { .flags = COMMIT, .mark = 2, .mark_mask = 0xffffffff };
	CHECK_EQ(go(ab(TH_SYN, 1000, 0, 65535, 0), &m1, T0).mark, 1);
	CHECK_EQ(go(ab(TH_SYN | TH_RST, 1000, 0, 65535, 0), &m2, T0).state, INV | TRK); CHECK_EQ(one(T0).mark, 1);
	teardown();
}

static void test_force(void)
{
	static const uint8_t b4[4] = { 10, 0, 0, 2 };
	setup();
	const struct ferry_ct_action f = { .flags = COMMIT | FORCE };
	CHECK_EQ(go(udp4(HA, HB, 1000, 53, 0), &CM, T0).state, NEW | TRK);
	/* force in the direction it was committed: nothing happens */
	CHECK_EQ(go(udp4(HA, HB, 1000, 53, 0), &f, T0).state, NEW | TRK); CHECK_EQ(one(T0).packets_orig, 2);
	/* committed A->B, now B->A with force: a fresh entry the other way */
	struct ferry_ct_result r = go(udp4(HB, HA, 53, 1000, 0), &f, T0 + SEC);
	CHECK_EQ(r.state, NEW | TRK); CHECK_EQ(r.tp_src, 53); CHECK(memcmp(r.nw_src, b4, 4) == 0);
	CHECK_EQ(ferry_ct_count(ct), 1);
	struct ferry_ct_entry e = one(T0 + SEC);
	CHECK(memcmp(e.src, b4, 4) == 0); CHECK_EQ(e.sport, 53); CHECK_EQ(e.dport, 1000); CHECK_EQ(e.packets_orig, 1);
	CHECK_EQ(e.flags, 0); CHECK_EQ(*th.created, 2);
	r = go(udp4(HA, HB, 1000, 53, 0), &NC, T0 + SEC);
	CHECK_EQ(r.state, EST | RPL | TRK | SRPL); CHECK_EQ(r.tp_src, 53);
	teardown();
}

/* ================= limits, early drop, policies, expiry ================= */

/* a UDP connection A:sport -> B:53 in zone, answered when reply; true when committed */
static bool open_udp(uint16_t zone, uint16_t sport, bool reply, uint64_t now)
{
	struct ferry_ct_action c = zact(zone, COMMIT), n = zact(zone, 0);
	uint64_t before = *th.created; CHECK_EQ(go(udp4(HA, HB, sport, 53, 0), &c, now).state, NEW | TRK);
	bool made = *th.created == before + 1;
	if (reply && made)
		CHECK_EQ(go(udp4(HB, HA, 53, sport, 0), &n, now).state, EST | RPL | TRK | SRPL);
	return made;
}

static int set_limit(uint8_t target, uint16_t zone, uint32_t limit, bool clear)
{
	struct ferry_ct_limit_req q = { .target = target, .zone = zone, .limit = limit, .clear = clear };
	return ferry_ct_set_limit(ct, &q);
}

static void test_limits(void)
{
	setup_n(100, 0);
	CHECK_EQ(set_limit(FERRY_CT_LIMIT_TARGET_GLOBAL, 0, 3, false), 0); CHECK_EQ(ferry_ct_max_conns(ct), 3);
	for (uint16_t i = 0; i < 3; i++)
		CHECK(open_udp(0, (uint16_t)(1000 + i), true, T0));
	CHECK(!open_udp(0, 2000, false, T0)); /* new|trk, checked inside, but no entry */
	CHECK_EQ(ferry_ct_count(ct), 3); CHECK_EQ(*th.limit_refused, 1);
	CHECK_EQ(go(udp4(HB, HA, 53, 2000, 0), &NC, T0).state, NEW | TRK);
	CHECK_EQ(set_limit(FERRY_CT_LIMIT_TARGET_GLOBAL, 0, 4, false), 0); CHECK(open_udp(0, 2000, false, T0));
	CHECK_EQ(ferry_ct_count(ct), 4); CHECK_EQ(set_limit(9, 0, 1, false), -1);
	teardown();

	setup_n(1000, 0);
	/* zone 7: 2 */
	CHECK_EQ(set_limit(FERRY_CT_LIMIT_TARGET_ZONE, 7, 2, false), 0); CHECK_EQ(ferry_ct_zone_limit(ct, 7), 2);
	CHECK_EQ(ferry_ct_zone_limit(ct, 8), 0); CHECK(open_udp(7, 1000, true, T0)); CHECK(open_udp(7, 1001, true, T0));
	CHECK(!open_udp(7, 1002, true, T0)); CHECK_EQ(ferry_ct_zone_count(ct, 7), 2); CHECK_EQ(*th.limit_refused, 1);
	/* zone 8: the default of 0 is no limit */
	for (uint16_t i = 0; i < 5; i++)
		CHECK(open_udp(8, (uint16_t)(1000 + i), true, T0));
	CHECK_EQ(ferry_ct_zone_count(ct, 8), 5);
	/* zone 9: its own 0 blocks everything */
	CHECK_EQ(set_limit(FERRY_CT_LIMIT_TARGET_ZONE, 9, 0, false), 0); CHECK(!open_udp(9, 1000, true, T0));
	CHECK_EQ(ferry_ct_zone_count(ct, 9), 0); CHECK_EQ(*th.limit_refused, 2);
	/* a default of 1 for zones without their own */
	CHECK_EQ(set_limit(FERRY_CT_LIMIT_TARGET_DEFAULT_ZONE, 0, 1, false), 0);
	CHECK_EQ(ferry_ct_zone_limit(ct, 10), 1); CHECK_EQ(ferry_ct_zone_limit(ct, 7), 2);
	CHECK_EQ(ferry_ct_zone_limit(ct, 9), 0); CHECK(open_udp(10, 1000, true, T0));
	CHECK(!open_udp(10, 1001, true, T0)); CHECK(!open_udp(8, 2000, true, T0)); CHECK(!open_udp(9, 1000, true, T0));
	/* cleared, a zone follows the default */
	CHECK_EQ(set_limit(FERRY_CT_LIMIT_TARGET_ZONE, 9, 0, true), 0); CHECK_EQ(ferry_ct_zone_limit(ct, 9), 1);
	CHECK(open_udp(9, 1000, true, T0)); CHECK(!open_udp(9, 1001, true, T0));
	CHECK_EQ(set_limit(FERRY_CT_LIMIT_TARGET_ZONE, 7, 0, true), 0); CHECK_EQ(ferry_ct_zone_limit(ct, 7), 1);
	CHECK(!open_udp(7, 1003, true, T0));
	/* the default cleared: unlimited again */
	CHECK_EQ(set_limit(FERRY_CT_LIMIT_TARGET_DEFAULT_ZONE, 0, 0, true), 0);
	CHECK_EQ(ferry_ct_zone_limit(ct, 10), 0); CHECK(open_udp(10, 1001, true, T0)); CHECK_EQ(*th.limit_refused, 7);
	CHECK_EQ(*th.early_drops, 0);
	teardown();
}

static void test_early_drop(void)
{
	setup_n(4, 1); /* one lock bucket: every entry is a candidate */
	CHECK(open_udp(0, 1000, true, T0)); CHECK(open_udp(0, 1001, true, T0)); CHECK(open_udp(0, 1002, false, T0));
	CHECK(open_udp(0, 1003, false, T0)); CHECK_EQ(ferry_ct_count(ct), 4); CHECK(open_udp(0, 1004, false, T0 + SEC));
	CHECK_EQ(*th.early_drops, 1); CHECK_EQ(ferry_ct_count(ct), 4); CHECK_EQ(dumpf(NULL, T0 + SEC), 4);
	CHECK(found(17, 1000) && found(17, 1001) && found(17, 1003) && found(17, 1004)); CHECK(found(17, 1002) == NULL);
	/* every entry answered: none may go */
	CHECK_EQ(go(udp4(HB, HA, 53, 1003, 0), &NC, T0 + SEC).state, EST | RPL | TRK | SRPL);
	CHECK_EQ(go(udp4(HB, HA, 53, 1004, 0), &NC, T0 + SEC).state, EST | RPL | TRK | SRPL);
	CHECK(!open_udp(0, 1005, false, T0 + 2 * SEC)); CHECK_EQ(*th.early_drops, 1); CHECK_EQ(*th.limit_refused, 1);
	CHECK_EQ(dumpf(NULL, T0 + 2 * SEC), 4); CHECK(found(17, 1000) && found(17, 1001) && found(17, 1005) == NULL);
	teardown();
}

static void test_timeout_policy(void)
{
	setup();
	struct ferry_ct_timeout_policy_req tp = { .zone = 5 };
	tp.seconds[TM(TCP_ESTABLISHED)] = 60;
	CHECK_EQ(ferry_ct_set_timeout_policy(ct, &tp), 0); CHECK_EQ(ferry_ct_timeout(ct, 5, TM(TCP_ESTABLISHED)), 60);
	CHECK_EQ(ferry_ct_timeout(ct, 5, TM(TCP_SYN_SENT)), 30);
	CHECK_EQ(ferry_ct_timeout(ct, 0, TM(TCP_ESTABLISHED)), 86400);
	handshake(5, T0, 65535, 65535); handshake(0, T0, 65535, 65535);
	struct ferry_ct_filter f = { .flags = FERRY_CT_FILTER_FLAG_ZONE, .zone = 5 };
	CHECK_EQ(dumpf(&f, T0), 1); CHECK_EQ(cl.e[0].timeout_ms, 60000);
	f.zone = 0; CHECK_EQ(dumpf(&f, T0), 1); CHECK_EQ(cl.e[0].timeout_ms, 86400000);
	/* 61 s later zone 5's is gone for dumps and lookups; zone 0's lives */
	CHECK_EQ(dumpf(NULL, T0 + 61 * SEC), 1); CHECK_EQ(cl.e[0].zone, 0);
	struct ferry_ct_action z5 = zact(5, 0);
	CHECK_EQ(go(ab(TH_ACK, 1001, 5001, 65535, 0), &z5, T0 + 61 * SEC).state, NEW | TRK);
	CHECK_EQ(go(ab(TH_ACK, 1001, 5001, 65535, 0), &NC, T0 + 61 * SEC).state, EST | TRK | SRPL);
	/* cleared: the defaults again */
	tp.clear = 1; CHECK_EQ(ferry_ct_set_timeout_policy(ct, &tp), 0);
	CHECK_EQ(ferry_ct_timeout(ct, 5, TM(TCP_ESTABLISHED)), 86400);
	handshake(5, T0 + 100 * SEC, 65535, 65535); f.zone = 5;
	CHECK_EQ(dumpf(&f, T0 + 100 * SEC), 1); CHECK_EQ(cl.e[0].timeout_ms, 86400000);
	teardown();
}

static void test_expiry_and_sweep(void)
{
	setup();
	CHECK(open_udp(0, 1000, false, T0)); /* 60 s */
	CHECK(open_udp(0, 1001, true, T0));  /* 30 s */
	CHECK_EQ(go(ab(TH_SYN, 1000, 0, 65535, 0), &CM, T0).state, NEW | TRK); /* 30 s */
	CHECK_EQ(go(icmp4_echo(HA, HB, 8, 3, 1), &CM, T0).state, NEW | TRK); /* 60 s */
	CHECK_EQ(ferry_ct_count(ct), 4); CHECK_EQ(ferry_ct_sweep(&th, T0 + 30 * SEC - 1), 0);
	CHECK_EQ(dumpf(NULL, T0 + 30 * SEC - MSEC), 4); CHECK_EQ(dumpf(NULL, T0 + 30 * SEC), 2);
	CHECK(found(17, 1000) && found(1, 3));
	CHECK_EQ(ferry_ct_count(ct), 4); /* not swept yet */
	struct ferry_ct_stats_resp st; ferry_ct_stats(ct, 0, T0 + 30 * SEC, &st);
	CHECK_EQ(st.total, 2); CHECK_EQ(ferry_ct_sweep(&th, T0 + 30 * SEC), 2); CHECK_EQ(ferry_ct_count(ct), 2);
	struct ferry_ct_counters k; ferry_ct_counters(ct, &k); CHECK_EQ(k.expired, 2); CHECK_EQ(k.sweeps, 2);
	/* at 60 s a lookup no longer finds 1000: its reply is new */
	CHECK_EQ(go(udp4(HB, HA, 53, 1000, 0), &NC, T0 + 60 * SEC).state, NEW | TRK);
	CHECK_EQ(ferry_ct_count(ct), 1); /* the lookup took it out */
	CHECK_EQ(dumpf(NULL, T0 + 60 * SEC), 0); CHECK_EQ(ferry_ct_sweep(&th, T0 + 60 * SEC), 1);
	CHECK_EQ(ferry_ct_count(ct), 0);
	ferry_ct_counters(ct, &k); CHECK_EQ(k.expired, 4); teardown();
}

/* ================= invalid reasons ================= */

static void test_invalid_reasons(void)
{
	struct ip6 a = ip6(0, 1), b = ip6(0, 2);
	static struct { struct tpkt p; unsigned why; } cs[24];
	unsigned n = 0;
#define ADD(pkt, reason) do { cs[n].p = (pkt); cs[n].why = R(reason); n++; } while (0)
	struct tpkt p;
	p = udp4(HA, HB, 1000, 53, 10); p.len = TP_ETH + 10; ADD(p, L3_SHORT);
	p = udp4(HA, HB, 1000, 53, 10); p.len -= 4; ADD(p, L3_SHORT); /* the header says more */
	p = udp6(a, b, 1000, 53, 10); p.len = TP_ETH + 30; ADD(p, L3_SHORT);
	p = tcp4(HA, HB, 1234, 80, TH_SYN, 1, 0, 100, 0, NO_WS); tp_cut(&p, 20 + 10); ADD(p, L4_SHORT);
	p = udp4(HA, HB, 1000, 53, 10); tp_cut(&p, 20 + 4); ADD(p, L4_SHORT);
	p = udp4(HA, HB, 1000, 53, 10); tp_bad_l3_csum(&p); ADD(p, L3_CSUM);
	p = tcp4(HA, HB, 1234, 80, TH_SYN, 1, 0, 100, 0, NO_WS); tp_bad_l4_csum(&p); ADD(p, L4_CSUM);
	p = tcp6(a, b, 1234, 80, TH_SYN, 1, 0, 100, 0, NO_WS); tp_bad_l4_csum(&p); ADD(p, L4_CSUM);
	p = udp4(HA, HB, 1000, 53, 10); tp_bad_l4_csum(&p); ADD(p, L4_CSUM);
	p = udp6(a, b, 1000, 53, 10); tp_w16(tp_l4(&p) + 6, 0); ADD(p, L4_CSUM); /* none: not on v6 */
	p = icmp4_echo(HA, HB, 8, 1, 1); tp_bad_l4_csum(&p); ADD(p, L4_CSUM);
	p = icmp6_echo(a, b, 128, 1, 1); tp_bad_l4_csum(&p); ADD(p, L4_CSUM);
	ADD(udp4(HA, HB, 1000, 0, 10), PORT_ZERO);
	ADD(tcp4(HA, HB, 0, 80, TH_SYN, 1, 0, 100, 0, NO_WS), PORT_ZERO);
	ADD(tcp4(HA, HB, 1234, 80, 0, 1, 0, 100, 0, NO_WS), TCP_FLAGS);
	ADD(tcp4(HB, HA, 80, 1234, TH_SYN | TH_ACK, 1, 2, 100, 0, NO_WS), NO_CONN);
	ADD(icmp4_echo(HA, HB, 9, 0, 0), ICMP_TYPE); /* router advertisement */
	p = udp4(HA, HB, 1000, 53, 10); tp_frag4(&p, true, 0); ADD(p, FRAGMENT); /* a first fragment */
	p = udp4(HA, HB, 1000, 53, 10); tp_frag4(&p, false, 100); ADD(p, FRAGMENT); /* a last one */
	ADD(udp6x(a, b, 1000, 53, 10, true), FRAGMENT);
	p = udp4(HA, HB, 1000, 53, 10); p.eth_type = 0x0806; ADD(p, NOT_IP);
#undef ADD
	setup();
	for (unsigned i = 0; i < n; i++) {
		uint64_t before[FERRY_CT_INVALID_REASONS], sum = 0; memcpy(before, th.invalid, sizeof(before));
		struct ferry_ct_result r = go(cs[i].p, &CM, T0);
		for (unsigned k = 0; k < FERRY_CT_INVALID_REASONS; k++)
			sum += th.invalid[k] - before[k];
		if (r.state != (INV | TRK) || r.invalid_reason != cs[i].why || sum != 1 ||
		    th.invalid[cs[i].why] != before[cs[i].why] + 1)
			fprintf(stderr, "  case %u: state %#x reason %u (want %u), counted %llu\n", i, r.state,
				r.invalid_reason, cs[i].why, (unsigned long long)sum);
		CHECK_EQ(r.state, INV | TRK); CHECK_EQ(r.invalid_reason, cs[i].why); CHECK_EQ(sum, 1);
		CHECK_EQ(th.invalid[cs[i].why], before[cs[i].why] + 1);
	}
	CHECK_EQ(ferry_ct_count(ct), 0);
	teardown();
}

/* what the NIC verified is not checked again, what was reassembled is no fragment, the
 * tracker says what it verified, and inv never deletes an entry */
static void test_checks_skipped_when_verified(void)
{
	struct ip6 a = ip6(0, 1), b = ip6(0, 2);
	setup();
	struct tpkt p = udp4(HA, HB, 1, 53, 10);
	tp_bad_l3_csum(&p); p.flags = FERRY_CT_PKT_L3_CSUM_GOOD; CHECK_EQ(go(p, &CM, T0).state, NEW | TRK);
	p = tcp4(HA, HB, 2, 80, TH_SYN, 1, 0, 100, 0, NO_WS);
	tp_bad_l4_csum(&p); p.flags = FERRY_CT_PKT_L4_CSUM_GOOD; CHECK_EQ(go(p, &CM, T0).state, NEW | TRK);
	p = udp4(HA, HB, 3, 53, 10);
	tp_bad_l4_csum(&p); p.flags = FERRY_CT_PKT_L4_CSUM_GOOD; CHECK_EQ(go(p, &CM, T0).state, NEW | TRK);
	p = udp4(HA, HB, 4, 53, 10);
	tp_w16(tp_l4(&p) + 6, 0); CHECK_EQ(go(p, &CM, T0).state, NEW | TRK); /* optional on v4 */
	p = udp4(HA, HB, 5, 53, 10);
	tp_frag4(&p, true, 0); p.flags = FERRY_CT_PKT_REASSEMBLED; CHECK_EQ(go(p, &CM, T0).state, NEW | TRK);
	p = udp6x(a, b, 6, 53, 10, true);
	p.flags = FERRY_CT_PKT_REASSEMBLED; CHECK_EQ(go(p, &CM, T0).state, NEW | TRK);
	CHECK_EQ(ferry_ct_count(ct), 6);
	/* the tracker says what it verified */
	p = tcp4(HA, HB, 7, 80, TH_SYN, 1, 0, 100, 0, NO_WS);
	gop(&p, &CM, T0); CHECK_EQ(p.flags, FERRY_CT_PKT_L3_CSUM_GOOD | FERRY_CT_PKT_L4_CSUM_GOOD);
	p = tcp4(HA, HB, 8, 80, TH_SYN, 1, 0, 100, 0, NO_WS);
	tp_bad_l4_csum(&p); gop(&p, &CM, T0); CHECK_EQ(p.flags, FERRY_CT_PKT_L3_CSUM_GOOD);
	/* inv never deletes */
	uint64_t cnt = ferry_ct_count(ct);
	p = udp4(HA, HB, 3, 53, 10); tp_bad_l4_csum(&p); CHECK_EQ(go(p, &CM, T0).state, INV | TRK);
	p = udp4(HA, HB, 3, 53, 10); tp_bad_l3_csum(&p); CHECK_EQ(go(p, &CM, T0).state, INV | TRK);
	CHECK_EQ(ferry_ct_count(ct), cnt);
	CHECK_EQ(go(udp4(HB, HA, 53, 3, 10), &NC, T0).state, EST | RPL | TRK | SRPL);
	teardown();
}

/* ================= bursts ================= */

static void test_burst_same_call(void)
{
	static struct tpkt tp[8];
	struct ferry_ct_pkt k[8]; const struct ferry_ct_action *acts[8]; struct ferry_ct_result res[8];
	setup(); tp[0] = ab(TH_SYN, 1000, 0, 65535, 0);
	for (int i = 1; i < 5; i++)
		tp[i] = udp4(HA, HB, (uint16_t)(2000 + i), 53, 0);
	tp[5] = ba(TH_SYN | TH_ACK, 5000, 1001, 65535, 0); tp[6] = udp4(HB, HA, 53, 2001, 0);
	tp[7] = ab(TH_ACK, 1001, 5001, 65535, 0);
	for (int i = 0; i < 8; i++) {
		k[i] = ctpkt(&tp[i]); acts[i] = &CM;
	}
	ferry_ct_execute(&th, k, acts, 8, T0, res);
	CHECK_EQ(res[0].state, NEW | TRK); CHECK_EQ(res[1].state, NEW | TRK);
	CHECK_EQ(res[5].state, EST | RPL | TRK | SRPL); CHECK_EQ(res[6].state, EST | RPL | TRK | SRPL);
	CHECK_EQ(res[7].state, EST | TRK | SRPL); CHECK_EQ(ferry_ct_count(ct), 5); CHECK_EQ(*th.packets, 8);
	teardown();
}

static int entry_cmp(const void *x, const void *y) { return memcmp(x, y, 40); }

static void test_burst_equals_one_by_one(void)
{
	/* flows, each a list of packets; interleaved round-robin into 64 */
	static struct tpkt fl[24][5], burst[64];
	static struct ferry_ct_action fa[24];
	unsigned len[24] = { 0 }, nf = 0;
	for (unsigned i = 0; i < 6; i++, nf++) { /* TCP: handshake, data, FIN */
		struct flow f = FAB; f.sp = (uint16_t)(3000 + i);
		fl[nf][0] = seg(&f, false, TH_SYN, 1000, 0, 65535, 0);
		fl[nf][1] = seg(&f, true, TH_SYN | TH_ACK, 5000, 1001, 65535, 0);
		fl[nf][2] = seg(&f, false, TH_ACK, 1001, 5001, 65535, 0);
		fl[nf][3] = seg(&f, false, TH_ACK | TH_PSH, 1001, 5001, 65535, 100);
		fl[nf][4] = seg(&f, true, TH_FIN | TH_ACK, 5001, 1101, 65535, 0);
		len[nf] = 5;
		fa[nf] = (struct ferry_ct_action){ .zone = (uint16_t)(i % 3), .flags = COMMIT, .mark = i,
						    .mark_mask = 0xff };
	}
	for (unsigned i = 0; i < 6; i++, nf++) { /* UDP */
		fl[nf][0] = fl[nf][1] = udp4(HA, HB, (uint16_t)(4000 + i), 53, 0);
		fl[nf][2] = udp4(HB, HA, 53, (uint16_t)(4000 + i), 0); len[nf] = 3;
		fa[nf] = zact((uint16_t)(i % 2), i == 5 ? 0 : COMMIT);
	}
	for (unsigned i = 0; i < 3; i++, nf++) { /* ICMP echo */
		fl[nf][0] = icmp4_echo(HA, HB, 8, (uint16_t)(50 + i), 1);
		fl[nf][1] = icmp4_echo(HB, HA, 0, (uint16_t)(50 + i), 1);
		len[nf] = 2; fa[nf] = CM;
	}
	fl[nf][0] = udp4(HA, HB, 4100, 53, 0); /* and an error about it */
	fl[nf][1] = icmp4_err(HR, HA, 3, 1, &fl[nf][0], 8); len[nf] = 2; fa[nf++] = CM;
	for (unsigned i = 0; i < 2; i++, nf++) { /* v6 UDP */
		fl[nf][0] = udp6(ip6(0, 1), ip6(0, 2), (uint16_t)(4200 + i), 53, 0);
		fl[nf][1] = udp6(ip6(0, 2), ip6(0, 1), 53, (uint16_t)(4200 + i), 0);
		len[nf] = 2; fa[nf] = CM;
	}
	fl[nf][0] = tcp4(HB, HA, 80, 999, TH_SYN | TH_ACK, 1, 2, 100, 0, NO_WS);
	fl[nf][1] = tcp4(HA, HB, 998, 80, TH_SYN | TH_FIN, 1, 0, 100, 0, NO_WS);
	fl[nf][2] = udp4(HA, HB, 997, 53, 0); tp_bad_l4_csum(&fl[nf][2]);
	fl[nf][3] = udp4(HA, HB, 996, 53, 0); fl[nf][3].eth_type = 0x0806;
	len[nf] = 4; fa[nf++] = CM; const struct ferry_ct_action *acts[64];
	unsigned n = 0, taken[24] = { 0 };
	while (n < 64) {
		bool any = false;
		for (unsigned f = 0; f < nf && n < 64; f++)
			if (taken[f] < len[f]) {
				burst[n] = fl[f][taken[f]++]; acts[n++] = &fa[f];
				any = true;
			}
		if (!any)
			break;
	}
	CHECK_EQ(n, 64);

	struct ferry_ct_pkt k[64]; struct ferry_ct_result rb[64], rs[64];
	memset(rb, 0, sizeof(rb)); memset(rs, 0, sizeof(rs));
	struct ferry_ct *ct1 = ferry_ct_create(&(struct ferry_ct_config){ .max_conns = 1000 });
	struct ferry_ct *ct2 = ferry_ct_create(&(struct ferry_ct_config){ .max_conns = 1000 });
	struct ferry_ct_thread t1, t2; ferry_ct_thread_init(ct1, &t1); ferry_ct_thread_init(ct2, &t2);
	for (unsigned i = 0; i < n; i++)
		k[i] = ctpkt(&burst[i]);
	ferry_ct_execute(&t1, k, acts, n, T0, rb);
	for (unsigned i = 0; i < n; i++) {
		struct ferry_ct_pkt one_k = ctpkt(&burst[i]); ferry_ct_execute(&t2, &one_k, &acts[i], 1, T0, &rs[i]);
	}
	unsigned same = 0, nnew = 0, nest = 0, nrel = 0, ninv = 0;
	for (unsigned i = 0; i < n; i++) {
		same += memcmp(&rb[i], &rs[i], sizeof(rb[i])) == 0; nnew += !!(rb[i].state & NEW);
		nest += !!(rb[i].state & EST); nrel += !!(rb[i].state & REL);
		ninv += !!(rb[i].state & INV);
	}
	CHECK_EQ(same, n); CHECK(nnew > 0 && nest > 0 && nrel > 0 && ninv >= 4);
	CHECK_EQ(ferry_ct_count(ct1), ferry_ct_count(ct2)); CHECK(memcmp(t1.local, t2.local, sizeof(t1.local)) == 0);
	static struct coll c1, c2;
	bool done; c1.n = c2.n = 0; ferry_ct_dump(ct1, NULL, 0, 0, T0, coll_cb, &c1, &done);
	ferry_ct_dump(ct2, NULL, 0, 0, T0, coll_cb, &c2, &done);
	CHECK_EQ(c1.n, c2.n); CHECK_EQ(c1.n, ferry_ct_count(ct1));
	qsort(c1.e, c1.n, sizeof(c1.e[0]), entry_cmp); qsort(c2.e, c2.n, sizeof(c2.e[0]), entry_cmp);
	CHECK(c1.n == c2.n && memcmp(c1.e, c2.e, c1.n * sizeof(c1.e[0])) == 0);
	ferry_ct_thread_fini(&t1); ferry_ct_thread_fini(&t2);
	ferry_ct_destroy(ct1); ferry_ct_destroy(ct2);
}

/* The burst's packets are grouped by bucket through a table of 64 groups indexed by
 * the bucket's low bits: buckets 64 apart meet in one group, and the later one's
 * packets wait for a second round. Two flows in such buckets (and a third elsewhere),
 * interleaved: each packet's result is the one it gets alone, in order. */
static void test_burst_buckets_sharing_a_group(void)
{
	setup_n(1000, 128);
	uint16_t port[3] = { 0 };
	uint32_t bkt[3] = { 0 };
	for (uint16_t sp = 1000, found = 0; found < 3 && sp < 60000; sp++) {
		struct tpkt tp = udp4(HA, HB, sp, 53, 0);
		struct ferry_ct_pkt k = ctpkt(&tp);
		const struct ferry_ct_action *a = &CM;
		struct ct_pktctx cx;
		CHECK_EQ(ct_extract_burst(ct, &k, &a, 1, &cx), 1);
		uint32_t b = ct_bucket_of(ct, cx.hash);
		bool ok = found == 0 || (found == 1 && b != bkt[0] && (b & 63) == (bkt[0] & 63)) ||
			  (found == 2 && (b & 63) != (bkt[0] & 63));
		if (ok) {
			port[found] = sp; bkt[found++] = b;
		}
	}
	CHECK(port[2] != 0);
	/* forward, forward, forward, reply, reply, forward, reply, forward... */
	static const uint8_t flow[12] = { 0, 1, 2, 1, 0, 1, 2, 0, 0, 2, 1, 1 };
	static const uint8_t rev[12] = { 0, 0, 0, 1, 1, 0, 1, 0, 1, 0, 1, 0 };
	static struct tpkt tp[12];
	struct ferry_ct_pkt k[12]; const struct ferry_ct_action *acts[12]; struct ferry_ct_result rb[12], rs[12];
	memset(rb, 0, sizeof(rb)); memset(rs, 0, sizeof(rs));
	for (unsigned i = 0; i < 12; i++) {
		tp[i] = rev[i] ? udp4(HB, HA, 53, port[flow[i]], 0) : udp4(HA, HB, port[flow[i]], 53, 0);
		k[i] = ctpkt(&tp[i]); acts[i] = &CM;
	}
	ferry_ct_execute(&th, k, acts, 12, T0, rb);
	struct ferry_ct *ct1 = ferry_ct_create(&(struct ferry_ct_config){ .max_conns = 1000, .n_buckets = 128 });
	struct ferry_ct_thread t1; ferry_ct_thread_init(ct1, &t1);
	for (unsigned i = 0; i < 12; i++) {
		struct ferry_ct_pkt one = ctpkt(&tp[i]); ferry_ct_execute(&t1, &one, &acts[i], 1, T0, &rs[i]);
	}
	unsigned same = 0;
	for (unsigned i = 0; i < 12; i++)
		same += memcmp(&rb[i], &rs[i], sizeof(rb[i])) == 0;
	CHECK_EQ(same, 12);
	/* flow 1's first packet opened it, its reply (4th) made it est|rpl, the rest est */
	CHECK_EQ(rb[1].state, NEW | TRK); CHECK_EQ(rb[3].state, EST | RPL | TRK | SRPL);
	CHECK_EQ(rb[5].state, EST | TRK | SRPL); CHECK_EQ(rb[4].state, EST | RPL | TRK | SRPL);
	CHECK_EQ(ferry_ct_count(ct), 3); CHECK_EQ(*th.packets, 12);
	ferry_ct_thread_fini(&t1); ferry_ct_destroy(ct1);
	teardown();
}

/* ================= dump, flush, stats ================= */

/* seven entries, told apart by (proto, ip version, original source port):
 * 0 TCP 10.0.0.1:1000 -> 10.0.0.2:80 est, zone 0, mark 0x11
 * 1 TCP 10.0.0.1:1001 -> 10.0.1.5:443 SYN only, zone 0, mark 0x22
 * 2 UDP 10.1.0.1:5000 -> 10.0.0.2:53 zone 1, mark 0x21, label[15] 0x80
 * 3 UDP [db8::1]:5000 -> [db8::2]:53 zone 1, label[0] 1
 * 4 ICMP 10.0.0.3 -> 10.0.0.2 id 77, zone 2
 * 5 TCP [db8::1]:2000 -> [db8:1::9]:22 est, zone 0
 * 6 GRE 10.0.0.5 -> 10.0.0.6, zone 0 */
static void populate(void)
{
	struct flow f0 = { .a4 = HA, .b4 = HB, .sp = 1000, .dp = 80 };
	struct flow f5 = { .v6 = true, .a6 = ip6(0, 1), .b6 = ip6(1, 9), .sp = 2000, .dp = 22 };
	struct ferry_ct_action a = { .flags = COMMIT, .mark = 0x11, .mark_mask = ~0u };
	handshake_f(&f0, &a, T0, 65535, 65535); a.mark = 0x22;
	CHECK_EQ(go(tcp4(HA, IP4(10, 0, 1, 5), 1001, 443, TH_SYN, 1, 0, 100, 0, NO_WS), &a, T0).state, NEW | TRK);
	a = (struct ferry_ct_action){ .zone = 1, .flags = COMMIT, .mark = 0x21, .mark_mask = ~0u };
	a.label[15] = 0x80; a.label_mask[15] = 0xff;
	CHECK_EQ(go(udp4(IP4(10, 1, 0, 1), HB, 5000, 53, 0), &a, T0).state, NEW | TRK);
	a = (struct ferry_ct_action){ .zone = 1, .flags = COMMIT };
	a.label[0] = 1; a.label_mask[0] = 0xff;
	CHECK_EQ(go(udp6(ip6(0, 1), ip6(0, 2), 5000, 53, 0), &a, T0).state, NEW | TRK);
	a = zact(2, COMMIT); CHECK_EQ(go(icmp4_echo(IP4(10, 0, 0, 3), HB, 8, 77, 1), &a, T0).state, NEW | TRK);
	handshake_f(&f5, &CM, T0, 65535, 65535);
	CHECK_EQ(go(ip4_proto(IP4(10, 0, 0, 5), IP4(10, 0, 0, 6), 47, 8, 0), &CM, T0).state, NEW | TRK);
	CHECK_EQ(ferry_ct_count(ct), 7);
}

static int ident(const struct ferry_ct_entry *e)
{
	static const struct { uint8_t proto, v; uint16_t sport; } id[7] = {
		{ 6, 4, 1000 }, { 6, 4, 1001 }, { 17, 4, 5000 }, { 17, 6, 5000 },
		{ 1, 4, 77 }, { 6, 6, 2000 }, { 47, 4, 0 },
	};
	for (int i = 0; i < 7; i++)
		if (e->proto == id[i].proto && e->ip_version == id[i].v && e->sport == id[i].sport)
			return i;
	return 7;
}

/* which of the seven a dump with f gives, as a bit mask (bit 7: an unknown entry) */
static unsigned dump_mask(const struct ferry_ct_filter *f)
{
	unsigned m = 0, n = dumpf(f, T0);
	for (unsigned i = 0; i < n && i < 64; i++) {
		unsigned bit = 1u << ident(&cl.e[i]);
		m |= (m & bit) ? 0x100 : bit; /* 0x100: given twice */
	}
	return m;
}

static struct ferry_ct_filter pfx(uint32_t flags, const uint8_t *addr, unsigned alen, uint8_t plen)
{
	struct ferry_ct_filter f = { .flags = flags };
	memcpy(flags & FERRY_CT_FILTER_FLAG_SRC ? f.src : f.dst, addr, alen);
	if (flags & FERRY_CT_FILTER_FLAG_SRC)
		f.src_plen = plen;
	else
		f.dst_plen = plen;
	return f;
}

static void test_dump_filters_and_paging(void)
{
	setup(); populate();
	struct ferry_ct_filter f = { 0 };
	CHECK_EQ(dump_mask(NULL), 0x7f); CHECK_EQ(dump_mask(&f), 0x7f);
	f = (struct ferry_ct_filter){ .flags = FERRY_CT_FILTER_FLAG_ZONE, .zone = 1 };
	CHECK_EQ(dump_mask(&f), 0x0c);
	f = (struct ferry_ct_filter){ .flags = FERRY_CT_FILTER_FLAG_PROTO, .proto = 17 };
	CHECK_EQ(dump_mask(&f), 0x0c);
	f = (struct ferry_ct_filter){ .flags = FERRY_CT_FILTER_FLAG_IP_VERSION, .ip_version = 6 };
	CHECK_EQ(dump_mask(&f), 0x28);
	f = (struct ferry_ct_filter){ .flags = FERRY_CT_FILTER_FLAG_ZONE | FERRY_CT_FILTER_FLAG_PROTO, .proto = 6 };
	CHECK_EQ(dump_mask(&f), 0x23);
	static const uint8_t n10[4] = { 10, 0, 0, 0 }, h2[4] = { 10, 0, 0, 2 }, h1[4] = { 10, 0, 0, 1 };
	f = pfx(FERRY_CT_FILTER_FLAG_SRC, n10, 4, 24); CHECK_EQ(dump_mask(&f), 0x53);
	f = pfx(FERRY_CT_FILTER_FLAG_DST, h2, 4, 32); CHECK_EQ(dump_mask(&f), 0x15);
	struct ip6 n6 = ip6(0, 0), n61 = ip6(1, 0); f = pfx(FERRY_CT_FILTER_FLAG_SRC, n6.a, 16, 64);
	CHECK_EQ(dump_mask(&f), 0x28);
	f = pfx(FERRY_CT_FILTER_FLAG_DST, n61.a, 16, 48); CHECK_EQ(dump_mask(&f), 0x20);
	f = (struct ferry_ct_filter){ .flags = FERRY_CT_FILTER_FLAG_SPORT, .sport = 5000 };
	CHECK_EQ(dump_mask(&f), 0x0c);
	f = (struct ferry_ct_filter){ .flags = FERRY_CT_FILTER_FLAG_DPORT, .dport = 80 };
	CHECK_EQ(dump_mask(&f), 0x01);
	f = (struct ferry_ct_filter){ .flags = FERRY_CT_FILTER_FLAG_MARK, .mark = 0x20, .mark_mask = 0xf0 };
	CHECK_EQ(dump_mask(&f), 0x06);
	f = (struct ferry_ct_filter){ .flags = FERRY_CT_FILTER_FLAG_LABEL };
	f.label[15] = 0x80; f.label_mask[15] = 0x80; CHECK_EQ(dump_mask(&f), 0x04);
	f = (struct ferry_ct_filter){ .flags = FERRY_CT_FILTER_FLAG_TCP_STATE, .tcp_state = S_EST };
	CHECK_EQ(dump_mask(&f), 0x21);
	f.tcp_state = S_SYN_SENT; CHECK_EQ(dump_mask(&f), 0x02);
	/* either direction: 10.0.0.1 is a destination only in the reply direction */
	f = pfx(FERRY_CT_FILTER_FLAG_DST, h1, 4, 32); CHECK_EQ(dump_mask(&f), 0);
	f.flags |= FERRY_CT_FILTER_FLAG_EITHER_DIR; CHECK_EQ(dump_mask(&f), 0x03);
	f = (struct ferry_ct_filter){ .flags = FERRY_CT_FILTER_FLAG_SPORT, .sport = 80 };
	CHECK_EQ(dump_mask(&f), 0);
	f.flags |= FERRY_CT_FILTER_FLAG_EITHER_DIR; CHECK_EQ(dump_mask(&f), 0x01);
	/* a whole entry */
	dumpf(NULL, T0); const struct ferry_ct_entry *e = NULL;
	for (unsigned i = 0; i < cl.n; i++)
		if (ident(&cl.e[i]) == 2)
			e = &cl.e[i];
	CHECK(e != NULL);
	if (e) {
		static const uint8_t s[4] = { 10, 1, 0, 1 };
		CHECK(memcmp(e->src, s, 4) == 0 && memcmp(e->dst, h2, 4) == 0); CHECK_EQ(e->dport, 53);
		CHECK_EQ(e->zone, 1); CHECK_EQ(e->mark, 0x21); CHECK_EQ(e->label[15], 0x80);
	}

	/* paging one at a time visits each entry once, with or without a filter */
	for (int pass = 0; pass < 2; pass++) {
		struct ferry_ct_filter z0 = { .flags = FERRY_CT_FILTER_FLAG_ZONE, .zone = 0 };
		unsigned seen[8] = { 0 }, calls = 0;
		uint64_t cur = 0; bool done = false;
		while (!done && calls < 100) {
			cl.n = 0; cur = ferry_ct_dump(ct, pass ? &z0 : NULL, cur, 1, T0, coll_cb, &cl, &done);
			for (unsigned i = 0; i < cl.n; i++)
				seen[ident(&cl.e[i])]++;
			calls++;
		}
		CHECK(done); CHECK(calls > 3);
		for (int i = 0; i < 8; i++)
			CHECK_EQ(seen[i], pass == 0 ? i < 7 : (i == 0 || i == 1 || i == 5 || i == 6));
	}
	teardown();
}

static int stop_cb(void *arg, const struct ferry_ct_entry *e)
{
	unsigned *seen = arg; seen[e->sport - 1000]++;
	return 1;
}

/* a callback that stops the walk: going on from the cursor returned visits the rest */
static void test_dump_stop_and_resume(void)
{
	setup_n(16, 1); /* 16 slots for 16 entries: chains of two or more */
	for (uint16_t i = 0; i < 16; i++)
		CHECK(open_udp(0, (uint16_t)(1000 + i), false, T0));
	unsigned longest = 0;
	for (uint64_t s = 0; s <= ct->slot_mask; s++) {
		unsigned l = 0;
		for (uint32_t i = ct->heads[s]; i != CT_NIL; i = ct->conns[i].next)
			l++;
		longest = l > longest ? l : longest;
	}
	CHECK(longest >= 2);
	unsigned seen[16] = { 0 }, calls = 0, once = 0;
	uint64_t cur = 0; bool done = false;
	while (!done && calls < 100) {
		cur = ferry_ct_dump(ct, NULL, cur, 0, T0, stop_cb, seen, &done);
		calls++;
	}
	for (int i = 0; i < 16; i++)
		once += seen[i] == 1;
	CHECK_EQ(once, 16);
	teardown();
}

static void test_flush_and_stats(void)
{
	setup(); populate(); struct ferry_ct_stats_resp st; ferry_ct_stats(ct, 0, T0, &st);
	CHECK_EQ(st.total, 7); CHECK_EQ(st.by_proto[FERRY_CT_PROTO_INDEX_TCP], 3);
	CHECK_EQ(st.by_proto[FERRY_CT_PROTO_INDEX_UDP], 2); CHECK_EQ(st.by_proto[FERRY_CT_PROTO_INDEX_ICMP], 1);
	CHECK_EQ(st.by_proto[FERRY_CT_PROTO_INDEX_ICMPV6], 0); CHECK_EQ(st.by_proto[FERRY_CT_PROTO_INDEX_OTHER], 1);
	CHECK_EQ(st.by_tcp_state[S_EST], 2); CHECK_EQ(st.by_tcp_state[S_SYN_SENT], 1); CHECK_EQ(st.n_zones, 3);
	CHECK(st.zones[0].zone == 0 && st.zones[0].count == 4); CHECK(st.zones[1].zone == 1 && st.zones[1].count == 2);
	CHECK(st.zones[2].zone == 2 && st.zones[2].count == 1); CHECK_EQ(st.next_zone, FERRY_CT_ZONE_NONE);
	ferry_ct_stats(ct, 1, T0, &st); CHECK(st.n_zones == 2 && st.zones[0].zone == 1);

	struct ferry_ct_filter f = { .flags = FERRY_CT_FILTER_FLAG_ZONE, .zone = 1 };
	CHECK_EQ(ferry_ct_flush(&th, &f, T0), 2); CHECK_EQ(ferry_ct_count(ct), 5); CHECK_EQ(dump_mask(NULL), 0x73);
	f = (struct ferry_ct_filter){ .flags = FERRY_CT_FILTER_FLAG_ZONE, .zone = 9 };
	CHECK_EQ(ferry_ct_flush(&th, &f, T0), 0);
	f = (struct ferry_ct_filter){ .flags = FERRY_CT_FILTER_FLAG_PROTO | FERRY_CT_FILTER_FLAG_TCP_STATE, .proto = 6,
				      .tcp_state = S_EST };
	CHECK_EQ(ferry_ct_flush(&th, &f, T0), 2); CHECK_EQ(dump_mask(NULL), 0x52);
	ferry_ct_stats(ct, 0, T0, &st);
	CHECK_EQ(st.total, 3); CHECK_EQ(st.by_tcp_state[S_EST], 0); CHECK_EQ(ferry_ct_flush(&th, NULL, T0), 3);
	CHECK_EQ(ferry_ct_count(ct), 0);
	struct ferry_ct_counters k; ferry_ct_counters(ct, &k); CHECK_EQ(k.flushed, 7);
	ferry_ct_stats(ct, 0, T0, &st); CHECK_EQ(st.total, 0); CHECK_EQ(st.n_zones, 0);
	teardown();
}

/* ================= events ================= */

static bool pop(uint16_t *type, struct ferry_ct_event *ev)
{
	memset(ev, 0, sizeof(*ev)); *type = 0xffff;
	return ferry_ct_events_pop(ct, type, ev);
}

#define CHECK_EVENT(type_, sport_, reason_) do { \
	CHECK(pop(&type, &ev)); \
	CHECK_EQ(type, type_); CHECK_EQ(ev.entry.sport, sport_); \
	if ((type_) == FERRY_EVENT_TYPE_CT_DESTROY) CHECK_EQ(ev.reason, reason_); \
} while (0)

static void test_events(void)
{
	uint16_t type; struct ferry_ct_event ev; setup_n(2, 1);
	CHECK(open_udp(0, 999, false, T0)); /* events off */
	CHECK(!pop(&type, &ev)); CHECK_EQ(ferry_ct_flush(&th, NULL, T0), 1); CHECK(!pop(&type, &ev));
	ferry_ct_set_events(ct, true); CHECK(open_udp(0, 1001, false, T0));
	CHECK_EVENT(FERRY_EVENT_TYPE_CT_NEW, 1001, 0);
	CHECK_EQ(ev.entry.proto, 17); CHECK_EQ(ev.entry.dport, 53);
	CHECK_EQ(go(ab(TH_SYN, 1000, 0, 65535, 0), &CM, T0).state, NEW | TRK);
	CHECK_EVENT(FERRY_EVENT_TYPE_CT_NEW, 1234, 0);
	CHECK_EQ(ev.entry.state_orig, S_SYN_SENT);
	/* full: the unreplied UDP entry makes room */
	CHECK(open_udp(0, 1003, false, T0));
	CHECK_EVENT(FERRY_EVENT_TYPE_CT_DESTROY, 1001, FERRY_CT_DESTROY_REASON_EVICTED);
	CHECK_EVENT(FERRY_EVENT_TYPE_CT_NEW, 1003, 0);
	/* force replaces it */
	const struct ferry_ct_action f = { .flags = COMMIT | FORCE };
	CHECK_EQ(go(udp4(HB, HA, 53, 1003, 0), &f, T0).state, NEW | TRK);
	CHECK_EVENT(FERRY_EVENT_TYPE_CT_DESTROY, 1003, FERRY_CT_DESTROY_REASON_REPLACED);
	CHECK_EVENT(FERRY_EVENT_TYPE_CT_NEW, 53, 0);
	struct ferry_ct_filter tcp = { .flags = FERRY_CT_FILTER_FLAG_PROTO, .proto = 6 };
	CHECK_EQ(ferry_ct_flush(&th, &tcp, T0), 1);
	CHECK_EVENT(FERRY_EVENT_TYPE_CT_DESTROY, 1234, FERRY_CT_DESTROY_REASON_FLUSHED);
	CHECK_EQ(ferry_ct_sweep(&th, T0 + 61 * SEC), 1);
	CHECK_EVENT(FERRY_EVENT_TYPE_CT_DESTROY, 53, FERRY_CT_DESTROY_REASON_EXPIRED);
	CHECK(!pop(&type, &ev));
	struct ferry_ct_counters k; ferry_ct_counters(ct, &k); CHECK_EQ(k.events_dropped, 0);
	teardown();
}

/* CT_NEW describes the connection ct(commit, mark=, label=) made, with its mark and label */
static void test_event_new_carries_commit_metadata(void)
{
	uint16_t type; struct ferry_ct_event ev; setup(); ferry_ct_set_events(ct, true);
	struct ferry_ct_action a = { .flags = COMMIT, .mark = 0x77, .mark_mask = ~0u };
	a.label[3] = 0x33; a.label_mask[3] = 0xff; CHECK_EQ(go(udp4(HA, HB, 1000, 53, 0), &a, T0).mark, 0x77);
	CHECK_EVENT(FERRY_EVENT_TYPE_CT_NEW, 1000, 0);
	CHECK_EQ(ev.entry.mark, 0x77); CHECK_EQ(ev.entry.label[3], 0x33);
	teardown();
}

static void test_state_str(void)
{
	static const struct { uint32_t s; const char *want; } cs[] = {
		{ NEW | TRK, "new|trk" }, { EST | RPL | TRK, "est|rpl|trk" }, { INV | TRK, "inv|trk" },
		{ REL | RPL | TRK, "rel|rpl|trk" }, { EST | TRK | SRPL, "est|trk|srpl" },
		{ EST | RPL | TRK | SRPL, "est|rpl|trk|srpl" }, { 0, "" },
	};
	char b[64];
	for (unsigned i = 0; i < sizeof(cs) / sizeof(cs[0]); i++) {
		size_t n = ferry_ct_state_str(cs[i].s, b, sizeof(b));
		CHECK_EQ(n, strlen(cs[i].want)); CHECK(strcmp(b, cs[i].want) == 0);
	}
	char s[5]; CHECK_EQ(ferry_ct_state_str(EST | RPL | TRK, s, sizeof(s)), 11); CHECK(strcmp(s, "est|") == 0);
	/* what real packets get renders the same way */
	setup(); ferry_ct_state_str(go(udp4(HA, HB, 1, 2, 0), &CM, T0).state, b, sizeof(b));
	CHECK(strcmp(b, "new|trk") == 0);
	ferry_ct_state_str(go(udp4(HB, HA, 2, 1, 0), &CM, T0).state, b, sizeof(b));
	CHECK(strcmp(b, "est|rpl|trk|srpl") == 0);
	teardown();
}

int main(void)
{
	RUN(test_tcp_handshake);
	RUN(test_tcp_syn_retransmit_synack_pickup);
	RUN(test_tcp_close_and_reuse);
	RUN(test_tcp_rst);
	RUN(test_tcp_beyond_window);
	RUN(test_tcp_window_scaling);
	RUN(test_tcp_loose_after_close);
	RUN(test_tcp_flag_table);
	RUN(test_udp);
	RUN(test_ovs_benchmark_frame);
	RUN(test_other_protocols);
	RUN(test_icmp_echo);
	RUN(test_icmp_errors);
	RUN(test_icmp_key_has_type);
	RUN(test_icmp_error_not_a_reply);
	RUN(test_zones);
	RUN(test_mark_label);
	RUN(test_force);
	RUN(test_limits);
	RUN(test_early_drop);
	RUN(test_timeout_policy);
	RUN(test_expiry_and_sweep);
	RUN(test_invalid_reasons);
	RUN(test_checks_skipped_when_verified);
	RUN(test_burst_same_call);
	RUN(test_burst_equals_one_by_one);
	RUN(test_burst_buckets_sharing_a_group);
	RUN(test_dump_filters_and_paging);
	RUN(test_dump_stop_and_resume);
	RUN(test_flush_and_stats);
	RUN(test_events);
	RUN(test_event_new_carries_commit_metadata);
	RUN(test_state_str);
	return ftest_finish();
}
