/* The FTP and TFTP helpers and their expectations: PORT, PASV (227), EPRT and EPSV
 * (229) over IPv4 and IPv6 set up the data connection's expectation, which is new|rel
 * then est|rel with its parent's mark and label; an address that is not the
 * announcer's own is refused; expectations time out on their own and leave with
 * their parent; TFTP expects the server's answer from a new port. */
#include <stdlib.h>
#include <string.h>
#include "../common/ftest.h"
#include "conntrack.h"
#include "ct_private.h"
#include "test_ct_packets.h"

#define SEC 1000000000ull
#define T0 (1000 * SEC)
#define ST(x) FERRY_CT_STATE_BIT_##x
#define HC IP4(10, 0, 0, 1)    /* the FTP client */
#define HS IP4(192, 0, 2, 7)   /* the FTP server */
#define HO IP4(198, 51, 100, 9) /* somebody else */

static struct ferry_ct *ct;
static struct ferry_ct_thread th;

static void setup(void)
{
	ct = ferry_ct_create(&(struct ferry_ct_config){ .max_conns = 1000, .cleanup_thread = false });
	if (ct == NULL) {
		fprintf(stderr, "ferry_ct_create failed\n");
		exit(1);
	}
	ferry_ct_thread_init(ct, &th);
}
static void teardown(void)
{
	ferry_ct_thread_fini(&th);
	ferry_ct_destroy(ct);
	ct = NULL;
}

static struct ferry_ct_action ftp_commit = { .zone = 3, .flags = FERRY_CT_FLAG_COMMIT, .alg = FERRY_CT_ALG_FTP,
					     .mark = 0x77, .mark_mask = 0xff };
static struct ferry_ct_action commit = { .zone = 3, .flags = FERRY_CT_FLAG_COMMIT };
static struct ferry_ct_action track = { .zone = 3 };

static uint32_t go(struct tpkt p, const struct ferry_ct_action *a, uint64_t now)
{
	struct ferry_ct_pkt k = { .data = p.b, .len = p.len, .l3_ofs = TP_ETH, .eth_type = p.eth_type };
	struct ferry_ct_result r;
	ferry_ct_execute(&th, &k, &a, 1, now, &r);
	return r.state;
}

/* a TCP segment carrying text (checksums right) */
static struct tpkt tcp4_text(uint32_t s, uint32_t d, uint16_t sp, uint16_t dp, uint32_t seq, uint32_t ack,
			     const char *text)
{
	uint16_t n = (uint16_t)strlen(text);
	struct tpkt p = tcp4(s, d, sp, dp, TH_ACK | TH_PSH, seq, ack, 65535, n, NO_WS);
	memcpy(tp_l4(&p) + 20, text, n);
	tp_finish(&p);
	return p;
}
static struct tpkt tcp6_text(struct ip6 s, struct ip6 d, uint16_t sp, uint16_t dp, uint32_t seq, uint32_t ack,
			     const char *text)
{
	uint16_t n = (uint16_t)strlen(text);
	struct tpkt p = tcp6(s, d, sp, dp, TH_ACK | TH_PSH, seq, ack, 65535, n, NO_WS);
	memcpy(tp_l4(&p) + 20, text, n);
	tp_finish(&p);
	return p;
}

/* the FTP control connection HC:40000 -> HS:21, open; seqs go on from 1001 / 5001 */
static void control_open(void)
{
	CHECK_EQ(go(tcp4(HC, HS, 40000, 21, TH_SYN, 1000, 0, 65535, 0, NO_WS), &ftp_commit, T0), ST(TRK) | ST(NEW));
	go(tcp4(HS, HC, 21, 40000, TH_SYN | TH_ACK, 5000, 1001, 65535, 0, NO_WS), &ftp_commit, T0);
	CHECK(go(tcp4(HC, HS, 40000, 21, TH_ACK, 1001, 5001, 65535, 0, NO_WS), &ftp_commit, T0) & ST(EST));
}

struct exps { unsigned n; struct ferry_ct_exp_entry e[8]; };
static int exp_cb(void *arg, const struct ferry_ct_exp_entry *e)
{
	struct exps *x = arg;
	if (x->n < 8)
		x->e[x->n] = *e;
	x->n++;
	return 0;
}
static struct exps exps_now(uint64_t now)
{
	struct exps x = { 0 };
	bool done;
	ferry_ct_exp_dump(ct, 0, 0, now, exp_cb, &x, &done);
	CHECK(done);
	return x;
}
static uint32_t a4(const uint8_t *a) { return (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 | (uint32_t)a[2] << 8 | a[3]; }

static void test_ftp_passive(void)
{
	setup();
	control_open();
	CHECK_EQ(ferry_ct_exp_count(ct), 0);
	/* 30000 = 117 * 256 + 48 */
	go(tcp4_text(HS, HC, 21, 40000, 5001, 1001, "227 Entering Passive Mode (192,0,2,7,117,48).\r\n"), &ftp_commit, T0);
	CHECK_EQ(ferry_ct_exp_count(ct), 1);
	CHECK_EQ(*th.exp_created, 1);
	struct exps x = exps_now(T0 + SEC);
	CHECK_EQ(x.n, 1);
	CHECK_EQ(a4(x.e[0].src), HC);
	CHECK_EQ(a4(x.e[0].dst), HS);
	CHECK_EQ(x.e[0].dport, 30000);
	CHECK_EQ(x.e[0].zone, 3);
	CHECK_EQ(x.e[0].alg, FERRY_CT_ALG_FTP);
	CHECK_EQ(x.e[0].mark, 0x77);
	CHECK_EQ(x.e[0].parent_sport, 40000);
	CHECK_EQ(x.e[0].parent_dport, 21);
	CHECK(x.e[0].timeout_ms > 58000 && x.e[0].timeout_ms <= 60000);
	/* the data connection: another port is not it, the announced one is */
	CHECK_EQ(go(tcp4(HC, HS, 40001, 30001, TH_SYN, 1, 0, 65535, 0, NO_WS), &track, T0 + SEC), ST(TRK) | ST(NEW));
	CHECK_EQ(go(tcp4(HC, HS, 40001, 30000, TH_SYN, 1, 0, 65535, 0, NO_WS), &track, T0 + SEC),
		 ST(TRK) | ST(NEW) | ST(REL));
	CHECK_EQ(ferry_ct_exp_count(ct), 1); /* not committed: still expected */
	CHECK_EQ(go(tcp4(HC, HS, 40001, 30000, TH_SYN, 1, 0, 65535, 0, NO_WS), &commit, T0 + SEC),
		 ST(TRK) | ST(NEW) | ST(REL));
	CHECK_EQ(ferry_ct_exp_count(ct), 0);
	CHECK_EQ(*th.exp_matched, 1);
	uint32_t st = go(tcp4(HS, HC, 30000, 40001, TH_SYN | TH_ACK, 9, 2, 65535, 0, NO_WS), &track, T0 + SEC);
	CHECK_EQ(st, ST(TRK) | ST(EST) | ST(REL) | ST(RPL) | ST(SRPL));
	/* the parent's mark came with it */
	struct ferry_ct_pkt k;
	struct tpkt p = tcp4(HC, HS, 40001, 30000, TH_ACK, 2, 10, 65535, 0, NO_WS);
	k = (struct ferry_ct_pkt){ .data = p.b, .len = p.len, .l3_ofs = TP_ETH, .eth_type = p.eth_type };
	const struct ferry_ct_action *ap = &track;
	struct ferry_ct_result r;
	ferry_ct_execute(&th, &k, &ap, 1, T0 + SEC, &r);
	CHECK_EQ(r.mark, 0x77);
	CHECK(r.state & ST(REL));
	teardown();
}

static void test_ftp_active_and_bounce(void)
{
	setup();
	control_open();
	/* 40002 = 156 * 256 + 66 */
	go(tcp4_text(HC, HS, 40000, 21, 1001, 5001, "PORT 10,0,0,1,156,66\r\n"), &ftp_commit, T0);
	struct exps x = exps_now(T0);
	CHECK_EQ(x.n, 1);
	CHECK_EQ(a4(x.e[0].src), HS);
	CHECK_EQ(a4(x.e[0].dst), HC);
	CHECK_EQ(x.e[0].dport, 40002);
	CHECK_EQ(go(tcp4(HS, HC, 20, 40002, TH_SYN, 1, 0, 65535, 0, NO_WS), &commit, T0), ST(TRK) | ST(NEW) | ST(REL));
	/* a PORT naming somebody else (the FTP bounce) sets up nothing, nor a 227 naming
	 * another host than the server, nor a lower-case command with a bad number */
	go(tcp4_text(HC, HS, 40000, 21, 1023, 5001, "PORT 198,51,100,9,0,80\r\n"), &ftp_commit, T0);
	go(tcp4_text(HS, HC, 21, 40000, 5001, 1047, "227 Entering Passive Mode (198,51,100,9,117,49)\r\n"), &ftp_commit, T0);
	go(tcp4_text(HC, HS, 40000, 21, 1047, 5052, "port 10,0,0,1,256,1\r\n"), &ftp_commit, T0);
	CHECK_EQ(ferry_ct_exp_count(ct), 0);
	/* lower case is a command all the same */
	go(tcp4_text(HC, HS, 40000, 21, 1068, 5052, "port 10,0,0,1,156,67\r\n"), &ftp_commit, T0);
	CHECK_EQ(ferry_ct_exp_count(ct), 1);
	/* without ct(alg=ftp) at the commit, nothing is read */
	CHECK_EQ(go(tcp4(HC, HO, 41000, 21, TH_SYN, 1, 0, 65535, 0, NO_WS), &commit, T0), ST(TRK) | ST(NEW));
	go(tcp4(HO, HC, 21, 41000, TH_SYN | TH_ACK, 7, 2, 65535, 0, NO_WS), &commit, T0);
	go(tcp4_text(HC, HO, 41000, 21, 2, 8, "PORT 10,0,0,1,156,68\r\n"), &commit, T0);
	CHECK_EQ(ferry_ct_exp_count(ct), 1);
	teardown();
}

static void test_ftp_extended_v4_v6(void)
{
	setup();
	control_open();
	go(tcp4_text(HC, HS, 40000, 21, 1001, 5001, "EPRT |1|10.0.0.1|40100|\r\n"), &ftp_commit, T0);
	go(tcp4_text(HS, HC, 21, 40000, 5001, 1027, "229 Entering Extended Passive Mode (|||40200|)\r\n"), &ftp_commit, T0);
	CHECK_EQ(ferry_ct_exp_count(ct), 2);
	CHECK_EQ(go(tcp4(HS, HC, 20, 40100, TH_SYN, 1, 0, 65535, 0, NO_WS), &commit, T0), ST(TRK) | ST(NEW) | ST(REL));
	CHECK_EQ(go(tcp4(HC, HS, 40005, 40200, TH_SYN, 1, 0, 65535, 0, NO_WS), &commit, T0), ST(TRK) | ST(NEW) | ST(REL));
	CHECK_EQ(ferry_ct_exp_count(ct), 0);
	/* IPv6 */
	struct ip6 c = ip6(1, 1), s = ip6(2, 7);
	go(tcp6(c, s, 50000, 21, TH_SYN, 1000, 0, 65535, 0, NO_WS), &ftp_commit, T0);
	go(tcp6(s, c, 21, 50000, TH_SYN | TH_ACK, 5000, 1001, 65535, 0, NO_WS), &ftp_commit, T0);
	go(tcp6(c, s, 50000, 21, TH_ACK, 1001, 5001, 65535, 0, NO_WS), &ftp_commit, T0);
	go(tcp6_text(c, s, 50000, 21, 1001, 5001, "EPRT |2|2001:db8:1::1|50100|\r\n"), &ftp_commit, T0);
	/* an IPv4 address on an IPv6 connection is refused */
	go(tcp6_text(c, s, 50000, 21, 1031, 5001, "EPRT |1|10.0.0.1|50101|\r\n"), &ftp_commit, T0);
	CHECK_EQ(ferry_ct_exp_count(ct), 1);
	CHECK_EQ(go(tcp6(s, c, 20, 50100, TH_SYN, 1, 0, 65535, 0, NO_WS), &commit, T0), ST(TRK) | ST(NEW) | ST(REL));
	go(tcp6_text(s, c, 21, 50000, 5001, 1057, "229 Extended Passive (!!!50300!)\r\n"), &ftp_commit, T0);
	CHECK_EQ(go(tcp6(c, s, 50001, 50300, TH_SYN, 1, 0, 65535, 0, NO_WS), &commit, T0), ST(TRK) | ST(NEW) | ST(REL));
	teardown();
}

static void test_expectations_time_out_and_leave_with_their_parent(void)
{
	setup();
	control_open();
	go(tcp4_text(HC, HS, 40000, 21, 1001, 5001, "PORT 10,0,0,1,156,66\r\n"), &ftp_commit, T0);
	CHECK_EQ(ferry_ct_exp_count(ct), 1);
	/* unused past its timeout: the data connection is plain new, the sweep drops it */
	uint64_t late = T0 + (FERRY_CT_EXP_TIMEOUT_SEC + 1) * SEC;
	CHECK_EQ(go(tcp4(HS, HC, 20, 40002, TH_SYN, 1, 0, 65535, 0, NO_WS), &track, late), ST(TRK) | ST(NEW));
	ferry_ct_sweep(&th, late);
	CHECK_EQ(ferry_ct_exp_count(ct), 0);
	struct ferry_ct_counters cnt;
	ferry_ct_counters(ct, &cnt);
	CHECK_EQ(cnt.exp_expired, 1);
	/* a fresh one, then the parent is flushed: it goes too */
	go(tcp4_text(HC, HS, 40000, 21, 1023, 5001, "PORT 10,0,0,1,156,70\r\n"), &ftp_commit, T0 + 2 * SEC);
	CHECK_EQ(ferry_ct_exp_count(ct), 1);
	struct ferry_ct_filter f = { .flags = FERRY_CT_FILTER_FLAG_DPORT, .dport = 21 };
	CHECK_EQ(ferry_ct_flush(&th, &f, T0 + 2 * SEC), 1);
	CHECK_EQ(ferry_ct_exp_count(ct), 0);
	CHECK_EQ(go(tcp4(HS, HC, 20, 40006, TH_SYN, 1, 0, 65535, 0, NO_WS), &track, T0 + 2 * SEC), ST(TRK) | ST(NEW));
	teardown();
}

static void test_tftp(void)
{
	setup();
	struct ferry_ct_action tftp = { .zone = 3, .flags = FERRY_CT_FLAG_COMMIT, .alg = FERRY_CT_ALG_TFTP };
	CHECK_EQ(go(udp4(HC, HS, 5000, 69, 20), &tftp, T0), ST(TRK) | ST(NEW));
	struct exps x = exps_now(T0);
	CHECK_EQ(x.n, 1);
	CHECK_EQ(a4(x.e[0].src), HS);
	CHECK_EQ(a4(x.e[0].dst), HC);
	CHECK_EQ(x.e[0].dport, 5000);
	CHECK_EQ(x.e[0].proto, 17);
	CHECK_EQ(x.e[0].alg, FERRY_CT_ALG_TFTP);
	/* the server answers from its own new port */
	CHECK_EQ(go(udp4(HS, HC, 6123, 5000, 516), &commit, T0), ST(TRK) | ST(NEW) | ST(REL));
	/* the client answers the connection the server opened: a reply */
	CHECK_EQ(go(udp4(HC, HS, 5000, 6123, 4), &track, T0), ST(TRK) | ST(EST) | ST(REL) | ST(RPL) | ST(SRPL));
	CHECK_EQ(ferry_ct_exp_count(ct), 0);
	teardown();
}

/* more expectations than a dump part holds, paged by the cursor */
static void test_exp_dump_paging(void)
{
	setup();
	control_open();
	char cmd[64];
	for (unsigned i = 0; i < 20; i++) {
		snprintf(cmd, sizeof(cmd), "PORT 10,0,0,1,200,%u\r\n", i + 1);
		go(tcp4_text(HC, HS, 40000, 21, 1001 + i * 32, 5001, cmd), &ftp_commit, T0);
	}
	CHECK_EQ(ferry_ct_exp_count(ct), 20);
	unsigned seen = 0, rounds = 0;
	uint32_t cur = 0;
	bool done = false;
	while (!done && rounds++ < 10) {
		struct exps x = { 0 };
		cur = ferry_ct_exp_dump(ct, cur, 8, T0, exp_cb, &x, &done);
		CHECK(x.n <= 8);
		seen += x.n;
	}
	CHECK_EQ(seen, 20);
	CHECK(done);
	teardown();
}

/* ---- FTP through NAT ---- */

#define HX IP4(203, 0, 113, 1)   /* the SNAT address */
#define HV IP4(198, 51, 100, 80) /* a DNAT virtual IP */
#define HSR IP4(10, 1, 0, 5)     /* the server behind it */

static const struct ferry_ct_action ct_nat_only = { .zone = 3, .flags = FERRY_CT_FLAG_NAT };
static const struct ferry_ct_action commit_nat = { .zone = 3, .flags = FERRY_CT_FLAG_COMMIT | FERRY_CT_FLAG_NAT };

/* one packet through the tracker, then rewritten as the worker would: headers, then
 * the sequence shift and payload edit (the buffer has room to grow) */
static uint32_t gorw(struct tpkt *p, const struct ferry_ct_action *a, uint64_t now)
{
	struct ferry_ct_pkt k = { .data = p->b, .len = p->len, .l3_ofs = TP_ETH, .eth_type = p->eth_type };
	struct ferry_ct_result r;
	ferry_ct_execute(&th, &k, &a, 1, now, &r);
	if (th.nat_mask & 1)
		CHECK_EQ(ferry_nat_rewrite(p->b, p->len, TP_ETH, p->l4_ofs, 0, &th.rw[0]), 0);
	if (th.edit_mask & 1) {
		uint32_t len = p->len;
		CHECK_EQ(ferry_nat_tcp_edit(p->b, &len, TP_MAX, TP_ETH, p->l4_ofs, th.rw[0].l3, 0, &th.edit[0]), 0);
		p->len = len;
	}
	return r.state;
}

static uint32_t src4(const struct tpkt *p) { return a4(p->b + TP_ETH + 12); }
static uint32_t dst4(const struct tpkt *p) { return a4(p->b + TP_ETH + 16); }
static uint32_t seq_of(const struct tpkt *p) { return (uint32_t)tp_r16(p->b + p->l4_ofs + 4) << 16 | tp_r16(p->b + p->l4_ofs + 6); }
static uint32_t ack_of(const struct tpkt *p) { return (uint32_t)tp_r16(p->b + p->l4_ofs + 8) << 16 | tp_r16(p->b + p->l4_ofs + 10); }
static const char *text_of(const struct tpkt *p) { return (const char *)p->b + p->l4_ofs + 20; }

/* every checksum verifies from scratch (a fresh tracker checks them all) */
static bool valid(const struct tpkt *p)
{
	struct ferry_ct *c2 = ferry_ct_create(&(struct ferry_ct_config){ .max_conns = 16 });
	struct ferry_ct_thread t2;
	ferry_ct_thread_init(c2, &t2);
	struct ferry_ct_pkt k = { .data = p->b, .len = p->len, .l3_ofs = TP_ETH, .eth_type = p->eth_type };
	const struct ferry_ct_action *a = &track;
	struct ferry_ct_result r;
	ferry_ct_execute(&t2, &k, &a, 1, T0, &r);
	ferry_ct_thread_fini(&t2);
	ferry_ct_destroy(c2);
	return !(r.state & ST(INV)) || (r.invalid_reason != FERRY_CT_INVALID_REASON_L3_CSUM &&
					 r.invalid_reason != FERRY_CT_INVALID_REASON_L4_CSUM &&
					 r.invalid_reason != FERRY_CT_INVALID_REASON_L4_SHORT);
}

/* Active FTP from a client behind SNAT: its PORT names the translated address, the
 * stream's numbers shift by what that added, and the server's data connection is
 * translated back to the client */
static void test_ftp_active_through_snat(void)
{
	setup();
	struct ferry_ct_action sn = { .zone = 3, .flags = FERRY_CT_FLAG_COMMIT | FERRY_CT_FLAG_NAT | FERRY_CT_FLAG_NAT_SRC,
				      .alg = FERRY_CT_ALG_FTP };
	tp_w32(sn.nat_addr_min, HX);
	struct tpkt syn = tcp4(HC, HS, 40000, 21, TH_SYN, 1000, 0, 65535, 0, NO_WS);
	CHECK_EQ(gorw(&syn, &sn, T0), ST(TRK) | ST(NEW) | ST(SNAT));
	CHECK_EQ(src4(&syn), HX);
	struct tpkt sa = tcp4(HS, HX, 21, 40000, TH_SYN | TH_ACK, 5000, 1001, 65535, 0, NO_WS);
	CHECK(gorw(&sa, &ct_nat_only, T0) & ST(EST));
	CHECK_EQ(dst4(&sa), HC);
	struct tpkt ack = tcp4(HC, HS, 40000, 21, TH_ACK, 1001, 5001, 65535, 0, NO_WS);
	gorw(&ack, &ct_nat_only, T0);
	/* 10,0,0,1 (8 bytes) becomes 203,0,113,1 (11): three more */
	struct tpkt port = tcp4_text(HC, HS, 40000, 21, 1001, 5001, "PORT 10,0,0,1,156,66\r\n");
	uint32_t len0 = port.len;
	CHECK(gorw(&port, &ct_nat_only, T0) & ST(EST));
	CHECK(strncmp(text_of(&port), "PORT 203,0,113,1,156,66\r\n", 25) == 0);
	CHECK_EQ(port.len, len0 + 3);
	CHECK_EQ(seq_of(&port), 1001);
	CHECK_EQ(src4(&port), HX);
	CHECK(valid(&port));
	/* the server acks the bytes it got (25 of them): the client sees 22 acked */
	struct tpkt sack = tcp4(HS, HX, 21, 40000, TH_ACK, 5001, 1026, 65535, 0, NO_WS);
	CHECK(!(gorw(&sack, &ct_nat_only, T0) & ST(INV)));
	CHECK_EQ(ack_of(&sack), 1023);
	CHECK_EQ(dst4(&sack), HC);
	CHECK(valid(&sack));
	/* the client's next segment goes out three further on */
	struct tpkt next = tcp4_text(HC, HS, 40000, 21, 1023, 5001, "RETR f\r\n");
	CHECK(!(gorw(&next, &ct_nat_only, T0) & ST(INV)));
	CHECK_EQ(seq_of(&next), 1026);
	CHECK(valid(&next));
	/* the server connects to what it was told; the connection reaches the client */
	struct exps x = exps_now(T0);
	CHECK_EQ(x.n, 1);
	CHECK_EQ(a4(x.e[0].src), HS);
	CHECK_EQ(a4(x.e[0].dst), HX);
	CHECK_EQ(x.e[0].dport, 40002);
	struct tpkt data = tcp4(HS, HX, 20, 40002, TH_SYN, 7, 0, 65535, 0, NO_WS);
	CHECK_EQ(gorw(&data, &commit_nat, T0), ST(TRK) | ST(NEW) | ST(REL) | ST(DNAT));
	CHECK_EQ(dst4(&data), HC);
	CHECK_EQ(tp_r16(data.b + data.l4_ofs + 2), 40002);
	CHECK(valid(&data));
	struct tpkt dsa = tcp4(HC, HS, 40002, 20, TH_SYN | TH_ACK, 70, 8, 65535, 0, NO_WS);
	CHECK_EQ(gorw(&dsa, &ct_nat_only, T0), ST(TRK) | ST(EST) | ST(REL) | ST(RPL) | ST(SRPL) | ST(SNAT));
	CHECK_EQ(src4(&dsa), HX);
	teardown();
}

/* Passive FTP to a server behind DNAT: its 227 names the address the client dialled,
 * and the client's data connection is translated to the server */
static void test_ftp_passive_through_dnat(void)
{
	setup();
	struct ferry_ct_action dn = { .zone = 3, .flags = FERRY_CT_FLAG_COMMIT | FERRY_CT_FLAG_NAT | FERRY_CT_FLAG_NAT_DST,
				      .alg = FERRY_CT_ALG_FTP };
	tp_w32(dn.nat_addr_min, HSR);
	struct tpkt syn = tcp4(HC, HV, 40000, 21, TH_SYN, 1000, 0, 65535, 0, NO_WS);
	CHECK_EQ(gorw(&syn, &dn, T0), ST(TRK) | ST(NEW) | ST(DNAT));
	CHECK_EQ(dst4(&syn), HSR);
	struct tpkt sa = tcp4(HSR, HC, 21, 40000, TH_SYN | TH_ACK, 5000, 1001, 65535, 0, NO_WS);
	gorw(&sa, &ct_nat_only, T0);
	CHECK_EQ(src4(&sa), HV);
	struct tpkt ack = tcp4(HC, HV, 40000, 21, TH_ACK, 1001, 5001, 65535, 0, NO_WS);
	gorw(&ack, &ct_nat_only, T0);
	/* 10,1,0,5 (8 bytes) becomes 198,51,100,80 (13): five more */
	struct tpkt pasv = tcp4_text(HSR, HC, 21, 40000, 5001, 1001, "227 Entering Passive Mode (10,1,0,5,117,48).\r\n");
	gorw(&pasv, &ct_nat_only, T0);
	CHECK(strncmp(text_of(&pasv), "227 Entering Passive Mode (198,51,100,80,117,48).\r\n", 51) == 0);
	CHECK_EQ(src4(&pasv), HV);
	CHECK(valid(&pasv));
	/* the client's ack of 51 bytes is 46 for the server */
	struct tpkt cack = tcp4(HC, HV, 40000, 21, TH_ACK, 1001, 5052, 65535, 0, NO_WS);
	CHECK(!(gorw(&cack, &ct_nat_only, T0) & ST(INV)));
	CHECK_EQ(ack_of(&cack), 5047);
	CHECK_EQ(dst4(&cack), HSR);
	/* the data connection to the virtual address reaches the server */
	struct tpkt data = tcp4(HC, HV, 40001, 30000, TH_SYN, 1, 0, 65535, 0, NO_WS);
	CHECK_EQ(gorw(&data, &commit_nat, T0), ST(TRK) | ST(NEW) | ST(REL) | ST(DNAT));
	CHECK_EQ(dst4(&data), HSR);
	CHECK(valid(&data));
	teardown();
}

/* TFTP from behind SNAT: the server answers the translated client from a new port;
 * the answer is translated back to the client */
static void test_tftp_through_snat(void)
{
	setup();
	struct ferry_ct_action sn = { .zone = 3, .flags = FERRY_CT_FLAG_COMMIT | FERRY_CT_FLAG_NAT | FERRY_CT_FLAG_NAT_SRC,
				      .alg = FERRY_CT_ALG_TFTP, .nat_port_min = 7000, .nat_port_max = 7000 };
	tp_w32(sn.nat_addr_min, HX);
	struct tpkt rrq = udp4(HC, HS, 5000, 69, 20);
	CHECK_EQ(gorw(&rrq, &sn, T0), ST(TRK) | ST(NEW) | ST(SNAT));
	CHECK_EQ(src4(&rrq), HX);
	CHECK_EQ(tp_r16(rrq.b + rrq.l4_ofs), 7000);
	struct exps x = exps_now(T0);
	CHECK_EQ(x.n, 1);
	CHECK_EQ(a4(x.e[0].src), HS);
	CHECK_EQ(a4(x.e[0].dst), HX);
	CHECK_EQ(x.e[0].dport, 7000);
	struct tpkt data = udp4(HS, HX, 6123, 7000, 516);
	CHECK_EQ(gorw(&data, &commit_nat, T0), ST(TRK) | ST(NEW) | ST(REL) | ST(DNAT));
	CHECK_EQ(dst4(&data), HC);
	CHECK_EQ(tp_r16(data.b + data.l4_ofs + 2), 5000);
	CHECK(valid(&data));
	/* the client's ack goes out translated */
	struct tpkt ack = udp4(HC, HS, 5000, 6123, 4);
	CHECK(gorw(&ack, &ct_nat_only, T0) & ST(REL));
	CHECK_EQ(src4(&ack), HX);
	CHECK_EQ(tp_r16(ack.b + ack.l4_ofs), 7000);
	teardown();
}

/* An edit that shortens the text (a long private address to a short public one): a
 * late ack of the bytes before the edited segment is not shifted; one past it is.
 * A second ct(nat) pass in the zone leaves the numbers as the first set them. */
static void test_ftp_shrinking_edit_and_second_pass(void)
{
	setup();
	const uint32_t hc = IP4(192, 168, 100, 100), hx = IP4(1, 2, 3, 4);
	struct ferry_ct_action sn = { .zone = 3, .flags = FERRY_CT_FLAG_COMMIT | FERRY_CT_FLAG_NAT | FERRY_CT_FLAG_NAT_SRC,
				      .alg = FERRY_CT_ALG_FTP };
	tp_w32(sn.nat_addr_min, hx);
	struct tpkt syn = tcp4(hc, HS, 40000, 21, TH_SYN, 1000, 0, 65535, 0, NO_WS);
	gorw(&syn, &sn, T0);
	struct tpkt sa = tcp4(HS, hx, 21, 40000, TH_SYN | TH_ACK, 5000, 1001, 65535, 0, NO_WS);
	gorw(&sa, &ct_nat_only, T0);
	struct tpkt ack = tcp4(hc, HS, 40000, 21, TH_ACK, 1001, 5001, 65535, 0, NO_WS);
	gorw(&ack, &ct_nat_only, T0);
	/* "TYPE I\r\n" (8 bytes, seq 1001), then PORT at 1009: 192,168,100,100 (15) -> 1,2,3,4 (7) */
	struct tpkt type = tcp4_text(hc, HS, 40000, 21, 1001, 5001, "TYPE I\r\n");
	gorw(&type, &ct_nat_only, T0);
	struct tpkt port = tcp4_text(hc, HS, 40000, 21, 1009, 5001, "PORT 192,168,100,100,156,66\r\n");
	gorw(&port, &ct_nat_only, T0);
	CHECK(strncmp(text_of(&port), "PORT 1,2,3,4,156,66\r\n", 21) == 0);
	CHECK_EQ(seq_of(&port), 1009);
	/* the server's late ack of TYPE I only (1009) reaches the client as 1009 */
	struct tpkt late = tcp4(HS, hx, 21, 40000, TH_ACK, 5001, 1009, 65535, 0, NO_WS);
	CHECK(!(gorw(&late, &ct_nat_only, T0) & ST(INV)));
	CHECK_EQ(ack_of(&late), 1009);
	/* its ack of PORT (1009 + 21) is the client's 1009 + 29 */
	struct tpkt full = tcp4(HS, hx, 21, 40000, TH_ACK, 5001, 1030, 65535, 0, NO_WS);
	CHECK(!(gorw(&full, &ct_nat_only, T0) & ST(INV)));
	CHECK_EQ(ack_of(&full), 1038);
	/* the next client segment goes out 8 earlier; a second ct(nat) pass keeps it */
	struct tpkt next = tcp4_text(hc, HS, 40000, 21, 1038, 5001, "RETR f\r\n");
	gorw(&next, &ct_nat_only, T0);
	CHECK_EQ(seq_of(&next), 1030);
	CHECK_EQ(src4(&next), hx);
	CHECK(!(gorw(&next, &ct_nat_only, T0) & ST(INV)));
	CHECK_EQ(seq_of(&next), 1030);
	CHECK_EQ(src4(&next), hx);
	CHECK(valid(&next));
	teardown();
}

/* An expectation is used up by the commit that creates its connection, not by one a
 * limit refuses: the retransmitted SYN, once there is room, is still related */
static void test_expectation_survives_a_refused_commit(void)
{
	setup();
	control_open();
	go(tcp4_text(HC, HS, 40000, 21, 1001, 5001, "PORT 10,0,0,1,156,66\r\n"), &ftp_commit, T0);
	CHECK_EQ(ferry_ct_exp_count(ct), 1);
	/* zone 3 full: the control connection is all it may hold */
	struct ferry_ct_limit_req q = { .target = FERRY_CT_LIMIT_TARGET_ZONE, .zone = 3, .limit = 1 };
	CHECK_EQ(ferry_ct_set_limit(ct, &q), 0);
	CHECK_EQ(go(tcp4(HS, HC, 20, 40002, TH_SYN, 1, 0, 65535, 0, NO_WS), &commit, T0), ST(TRK) | ST(NEW) | ST(REL));
	CHECK_EQ(ferry_ct_exp_count(ct), 1);
	q.clear = true;
	CHECK_EQ(ferry_ct_set_limit(ct, &q), 0);
	CHECK_EQ(go(tcp4(HS, HC, 20, 40002, TH_SYN, 1, 0, 65535, 0, NO_WS), &commit, T0), ST(TRK) | ST(NEW) | ST(REL));
	CHECK_EQ(ferry_ct_exp_count(ct), 0);
	teardown();
}

/* Two clients behind one SNAT address announce the same port to one server: the
 * first keeps the expectation, and the server's data connection reaches it */
static void test_two_clients_one_port_behind_snat(void)
{
	setup();
	struct ferry_ct_action sn = { .zone = 3, .flags = FERRY_CT_FLAG_COMMIT | FERRY_CT_FLAG_NAT | FERRY_CT_FLAG_NAT_SRC,
				      .alg = FERRY_CT_ALG_FTP };
	tp_w32(sn.nat_addr_min, HX);
	const uint32_t c1 = IP4(10, 0, 0, 1), c2 = IP4(10, 0, 0, 2);
	const uint32_t cl[2] = { c1, c2 };
	uint16_t cport[2] = { 0 };
	for (unsigned k = 0; k < 2; k++) {
		struct tpkt syn = tcp4(cl[k], HS, 40000, 21, TH_SYN, 1000, 0, 65535, 0, NO_WS);
		gorw(&syn, &sn, T0);
		cport[k] = tp_r16(syn.b + syn.l4_ofs); /* the second client's port moved */
		struct tpkt sa = tcp4(HS, HX, 21, cport[k], TH_SYN | TH_ACK, 5000, 1001, 65535, 0, NO_WS);
		gorw(&sa, &ct_nat_only, T0);
		struct tpkt ack = tcp4(cl[k], HS, 40000, 21, TH_ACK, 1001, 5001, 65535, 0, NO_WS);
		gorw(&ack, &ct_nat_only, T0);
		char cmd[64];
		snprintf(cmd, sizeof(cmd), "PORT 10,0,0,%u,156,66\r\n", k + 1);
		struct tpkt port = tcp4_text(cl[k], HS, 40000, 21, 1001, 5001, cmd);
		gorw(&port, &ct_nat_only, T0);
	}
	CHECK(cport[0] != cport[1]);
	CHECK_EQ(ferry_ct_exp_count(ct), 1);
	struct tpkt data = tcp4(HS, HX, 20, 40002, TH_SYN, 7, 0, 65535, 0, NO_WS);
	CHECK_EQ(gorw(&data, &commit_nat, T0), ST(TRK) | ST(NEW) | ST(REL) | ST(DNAT));
	CHECK_EQ(dst4(&data), c1);
	teardown();
}

int main(void)
{
	RUN(test_ftp_passive);
	RUN(test_ftp_active_and_bounce);
	RUN(test_ftp_extended_v4_v6);
	RUN(test_expectations_time_out_and_leave_with_their_parent);
	RUN(test_tftp);
	RUN(test_exp_dump_paging);
	RUN(test_ftp_active_through_snat);
	RUN(test_ftp_passive_through_dnat);
	RUN(test_tftp_through_snat);
	RUN(test_ftp_shrinking_edit_and_second_pass);
	RUN(test_expectation_survives_a_refused_commit);
	RUN(test_two_clients_one_port_behind_snat);
	return ftest_finish();
}
