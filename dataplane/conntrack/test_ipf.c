/* The fragment reassembler on frames built here: v4 and v6 (with and without a
 * hop-by-hop header) in and out of order, byte-exact reassembly, handles in offset
 * order, and each way a fragment or a datagram is refused (overlap, tiny, too big,
 * too many, no space, timeout, malformed), with the held handles given back. */
#include <string.h>
#include "../common/ftest.h"
#include "ipf.h"

#define ETH 14u
#define MS 1000000ull

/* ---- frames ---- */

/* an unfragmented UDP datagram and how to cut it */
struct dgram {
	uint8_t b[70000];
	uint32_t len;
	bool v6, hbh;
	uint32_t id;
	uint32_t unfrag;     /* bytes from the L3 header to what is fragmented */
};

static uint8_t fbuf[70000];     /* one fragment at a time: the reassembler must copy */
static struct ferry_ipf_done done;
static int tags[256];
#define H(i) ((void *)&tags[i])

static uint16_t t_csum(const uint8_t *p, unsigned n)
{
	uint64_t s = 0;
	for (unsigned i = 0; i < n; i++)
		s += (i & 1) ? p[i] : (uint64_t)p[i] << 8;
	while (s > 0xffff)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)(~s & 0xffff);
}

static void w16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }

static void eth(uint8_t *b, uint16_t type)
{
	static const uint8_t macs[12] = { 0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01 };
	memcpy(b, macs, 12);
	w16(b + 12, type);
}

static void udp_payload(uint8_t *l4, uint32_t n, uint8_t seed)
{
	w16(l4, 1000);
	w16(l4 + 2, 2000);
	w16(l4 + 4, 8 + n);
	w16(l4 + 6, 0);
	for (uint32_t i = 0; i < n; i++)
		l4[8 + i] = (uint8_t)(seed + i * 7 + (i >> 8));
}

/* IPv4/UDP with n bytes of UDP data (IP payload n + 8) */
static void make_v4(struct dgram *d, uint16_t id, uint32_t n, uint8_t seed)
{
	uint8_t *ip = d->b + ETH;
	memset(d, 0, sizeof(*d));
	eth(d->b, 0x0800);
	ip[0] = 0x45;
	w16(ip + 2, 20 + 8 + n);
	w16(ip + 4, id);
	ip[8] = 64;
	ip[9] = 17;
	ip[12] = 10, ip[15] = 1;
	ip[16] = 10, ip[19] = 2;
	w16(ip + 10, t_csum(ip, 20));
	udp_payload(ip + 20, n, seed);
	d->len = ETH + 20 + 8 + n;
	d->id = id;
	d->unfrag = 20;
}

/* IPv6/UDP, optionally with an 8-byte hop-by-hop header before UDP */
static void make_v6(struct dgram *d, uint32_t id, uint32_t n, bool hbh, uint8_t seed)
{
	uint8_t *ip = d->b + ETH;
	uint32_t u = hbh ? 8 : 0;
	memset(d, 0, sizeof(*d));
	eth(d->b, 0x86dd);
	ip[0] = 0x60;
	ip[1] = 0x01;                     /* flow label bits: carried through */
	w16(ip + 4, u + 8 + n);
	ip[6] = hbh ? 0 : 17;
	ip[7] = 64;
	ip[8] = 0x20, ip[9] = 0x01, ip[10] = 0x0d, ip[11] = 0xb8, ip[23] = 1;
	ip[24] = 0x20, ip[25] = 0x01, ip[26] = 0x0d, ip[27] = 0xb8, ip[39] = 2;
	if (hbh) {
		uint8_t *x = ip + 40;
		x[0] = 17;
		x[1] = 0;
		x[2] = 1;                 /* PadN over the 4 bytes left */
		x[3] = 4;
	}
	udp_payload(ip + 40 + u, n, seed);
	d->len = ETH + 40 + u + 8 + n;
	d->v6 = true;
	d->hbh = hbh;
	d->id = id;
	d->unfrag = 40 + u;
}

static uint32_t payload_len(const struct dgram *d)
{
	return d->len - ETH - d->unfrag;
}

/* Builds into fbuf the fragment of d carrying payload [off, off + n). Fragments
 * past the first get a different source MAC: the whole must take the first's L2. */
static uint32_t build_frag(const struct dgram *d, uint32_t off, uint32_t n, bool more)
{
	const uint8_t *oip = d->b + ETH;
	uint8_t *ip = fbuf + ETH;
	memcpy(fbuf, d->b, ETH + d->unfrag);
	if (off)
		fbuf[11] ^= 0x5a;
	if (!d->v6) {
		w16(ip + 2, 20 + n);
		w16(ip + 6, (oip[6] << 8 & 0xc000) | (more ? 0x2000 : 0) | off / 8);   /* DF kept */
		w16(ip + 10, 0);
		w16(ip + 10, t_csum(ip, 20));
		memcpy(ip + 20, oip + 20 + off, n);
		return ETH + 20 + n;
	}
	uint32_t u = d->unfrag;
	uint8_t *fh = ip + u;
	w16(ip + 4, u - 40 + 8 + n);
	if (d->hbh)
		ip[40] = 44;
	else
		ip[6] = 44;
	fh[0] = 17;
	fh[1] = 0;
	w16(fh + 2, off | (more ? 1 : 0));
	w16(fh + 4, d->id >> 16);
	w16(fh + 6, d->id & 0xffff);
	memcpy(fh + 8, oip + u + off, n);
	return ETH + u + 8 + n;
}

static enum ferry_ipf_verdict offer_buf(struct ferry_ipf *ipf, uint32_t len, uint16_t zone, void *h, uint64_t now,
					uint8_t *reason)
{
	struct ferry_ipf_frag f = { .data = fbuf, .len = len, .l3_ofs = ETH, .zone = zone, .handle = h };
	enum ferry_ipf_verdict v = ferry_ipf_add(ipf, &f, now, &done, reason);
	memset(fbuf, 0xee, len);       /* nothing may point into it afterwards */
	return v;
}

static enum ferry_ipf_verdict offer(struct ferry_ipf *ipf, const struct dgram *d, uint32_t off, uint32_t n, bool more,
				    uint16_t zone, void *h, uint64_t now, uint8_t *reason)
{
	return offer_buf(ipf, build_frag(d, off, n, more), zone, h, now, reason);
}

static bool whole_is(const struct dgram *d)
{
	return done.whole_len == d->len && done.l3_ofs == ETH && memcmp(done.whole, d->b, d->len) == 0;
}

/* ---- release ---- */

static unsigned n_released;
static void *released[256];

static void on_release(void *arg, void *handle)
{
	(void)arg;
	if (n_released < 256)
		released[n_released] = handle;
	n_released++;
}

static struct ferry_ipf *mk(const struct ferry_ipf_config *cfg)
{
	struct ferry_ipf *ipf = ferry_ipf_create(cfg);
	CHECK(ipf != NULL);
	if (ipf)
		ferry_ipf_set_release(ipf, on_release, NULL);
	n_released = 0;
	memset(&done, 0, sizeof(done));
	return ipf;
}

static uint64_t ctr(const struct ferry_ipf *ipf, unsigned r)
{
	return ferry_ipf_counters(ipf)[r];
}

static uint64_t ctr_total(const struct ferry_ipf *ipf)
{
	uint64_t s = 0;
	for (unsigned r = 0; r < FERRY_FRAG_REASONS; r++)
		s += ferry_ipf_counters(ipf)[r];
	return s;
}

static struct dgram A, B, C;

/* ---- tests ---- */

static void test_v4_in_order(void)
{
	struct ferry_ipf *ipf = mk(NULL);
	uint8_t why = 0xff;
	make_v4(&A, 0x1234, 1200, 1);       /* IP payload 1208 */
	CHECK(!ferry_ipf_is_fragment(A.b, A.len, ETH));
	CHECK_EQ(offer(ipf, &A, 0, 400, true, 0, H(0), 1, &why), FERRY_IPF_HELD);
	CHECK_EQ(ferry_ipf_held(ipf), 1);
	CHECK_EQ(offer(ipf, &A, 400, 400, true, 0, H(1), 2, &why), FERRY_IPF_HELD);
	CHECK_EQ(ferry_ipf_held(ipf), 2);
	CHECK_EQ(offer(ipf, &A, 800, 408, false, 0, H(2), 3, &why), FERRY_IPF_DONE);
	CHECK_EQ(why, 0xff);
	CHECK(whole_is(&A));
	/* the checksum was recomputed, not left as the last fragment's */
	CHECK_EQ(t_csum(done.whole + ETH, 20), 0);
	CHECK_EQ(done.n_handles, 3);
	CHECK(done.handles[0] == H(0) && done.handles[1] == H(1) && done.handles[2] == H(2));
	CHECK_EQ(ferry_ipf_held(ipf), 0);
	CHECK_EQ(ctr(ipf, FERRY_FRAG_REASON_REASSEMBLED), 1);
	CHECK_EQ(ctr_total(ipf), 1);
	CHECK_EQ(n_released, 0);
	/* the same id again later is a new datagram */
	CHECK_EQ(offer(ipf, &A, 400, 400, true, 0, H(3), 4, &why), FERRY_IPF_HELD);
	CHECK_EQ(offer(ipf, &A, 0, 400, true, 0, H(4), 5, &why), FERRY_IPF_HELD);
	CHECK_EQ(offer(ipf, &A, 800, 408, false, 0, H(5), 6, &why), FERRY_IPF_DONE);
	CHECK(whole_is(&A));
	CHECK(done.handles[0] == H(4) && done.handles[1] == H(3) && done.handles[2] == H(5));
	ferry_ipf_destroy(ipf);
	CHECK_EQ(n_released, 0);
}

static void test_v4_out_of_order(void)
{
	struct ferry_ipf *ipf = mk(NULL);
	uint8_t why;
	make_v4(&A, 77, 1200, 9);
	/* last first, first last: the L2 of the whole is the first fragment's */
	CHECK_EQ(offer(ipf, &A, 960, 248, false, 0, H(2), 1, &why), FERRY_IPF_HELD);
	CHECK_EQ(offer(ipf, &A, 480, 480, true, 0, H(1), 2, &why), FERRY_IPF_HELD);
	CHECK_EQ(offer(ipf, &A, 0, 480, true, 0, H(0), 3, &why), FERRY_IPF_DONE);
	CHECK(whole_is(&A));
	CHECK_EQ(done.n_handles, 3);
	CHECK(done.handles[0] == H(0) && done.handles[1] == H(1) && done.handles[2] == H(2));
	/* middle last */
	CHECK_EQ(offer(ipf, &A, 0, 480, true, 0, H(0), 4, &why), FERRY_IPF_HELD);
	CHECK_EQ(offer(ipf, &A, 960, 248, false, 0, H(2), 5, &why), FERRY_IPF_HELD);
	CHECK_EQ(offer(ipf, &A, 480, 480, true, 0, H(1), 6, &why), FERRY_IPF_DONE);
	CHECK(whole_is(&A));
	CHECK(done.handles[0] == H(0) && done.handles[1] == H(1) && done.handles[2] == H(2));
	CHECK_EQ(ctr(ipf, FERRY_FRAG_REASON_REASSEMBLED), 2);
	CHECK_EQ(ferry_ipf_held(ipf), 0);
	ferry_ipf_destroy(ipf);
}

/* DF and the reserved bit of the first fragment stay; MF and the offset go */
static void test_v4_df_kept(void)
{
	struct ferry_ipf *ipf = mk(NULL);
	uint8_t why;
	make_v4(&A, 5, 800, 3);              /* IP payload 808 */
	A.b[ETH + 6] = 0x40;                 /* DF */
	w16(A.b + ETH + 10, 0);
	w16(A.b + ETH + 10, t_csum(A.b + ETH, 20));
	CHECK_EQ(offer(ipf, &A, 0, 400, true, 0, H(0), 1, &why), FERRY_IPF_HELD);
	CHECK_EQ(offer(ipf, &A, 400, 408, false, 0, H(1), 1, &why), FERRY_IPF_DONE);
	CHECK(whole_is(&A));
	ferry_ipf_destroy(ipf);
}

static void test_v6(void)
{
	struct ferry_ipf *ipf = mk(NULL);
	uint8_t why;
	make_v6(&A, 0xdeadbeef, 1000, false, 4);   /* payload 1008 */
	CHECK_EQ(offer(ipf, &A, 0, 496, true, 0, H(0), 1, &why), FERRY_IPF_HELD);
	CHECK_EQ(offer(ipf, &A, 496, 512, false, 0, H(1), 2, &why), FERRY_IPF_DONE);
	CHECK(whole_is(&A));
	CHECK_EQ(done.whole[ETH + 6], 17);
	CHECK_EQ(done.n_handles, 2);
	CHECK(done.handles[0] == H(0) && done.handles[1] == H(1));
	CHECK_EQ(ctr(ipf, FERRY_FRAG_REASON_REASSEMBLED), 1);
	CHECK_EQ(ferry_ipf_held(ipf), 0);
	ferry_ipf_destroy(ipf);
}

static void test_v6_hop_by_hop(void)
{
	struct ferry_ipf *ipf = mk(NULL);
	uint8_t why;
	make_v6(&A, 7, 1500, true, 5);             /* payload after HBH: 1508 */
	uint32_t len = build_frag(&A, 504, 504, true);
	CHECK(ferry_ipf_is_fragment(fbuf, len, ETH));
	CHECK_EQ(offer(ipf, &A, 1008, 500, false, 0, H(2), 1, &why), FERRY_IPF_HELD);
	CHECK_EQ(offer(ipf, &A, 504, 504, true, 0, H(1), 2, &why), FERRY_IPF_HELD);
	CHECK_EQ(offer(ipf, &A, 0, 504, true, 0, H(0), 3, &why), FERRY_IPF_DONE);
	CHECK(whole_is(&A));
	CHECK_EQ(done.whole[ETH + 6], 0);       /* IPv6 -> HBH -> UDP again */
	CHECK_EQ(done.whole[ETH + 40], 17);
	CHECK(done.handles[0] == H(0) && done.handles[1] == H(1) && done.handles[2] == H(2));
	ferry_ipf_destroy(ipf);
}

/* offset 0 and M clear: a datagram on its own (RFC 6946) */
static void test_v6_atomic(void)
{
	struct ferry_ipf *ipf = mk(NULL);
	uint8_t why;
	make_v6(&A, 9, 100, true, 6);
	CHECK_EQ(offer(ipf, &A, 0, payload_len(&A), false, 0, H(0), 1, &why), FERRY_IPF_DONE);
	CHECK(whole_is(&A));
	CHECK_EQ(done.n_handles, 1);
	CHECK(done.handles[0] == H(0));
	CHECK_EQ(ferry_ipf_held(ipf), 0);
	/* even with a datagram of the same key in progress, which it leaves alone */
	make_v6(&B, 9, 1000, true, 7);
	CHECK_EQ(offer(ipf, &B, 496, 512, false, 0, H(1), 2, &why), FERRY_IPF_HELD);
	CHECK_EQ(offer(ipf, &A, 0, payload_len(&A), false, 0, H(2), 2, &why), FERRY_IPF_DONE);
	CHECK(whole_is(&A));
	CHECK(done.n_handles == 1 && done.handles[0] == H(2));
	CHECK_EQ(offer(ipf, &B, 0, 496, true, 0, H(3), 2, &why), FERRY_IPF_DONE);
	CHECK(whole_is(&B));
	CHECK(done.n_handles == 2 && done.handles[0] == H(3) && done.handles[1] == H(1));
	CHECK_EQ(n_released, 0);
	CHECK_EQ(ctr(ipf, FERRY_FRAG_REASON_REASSEMBLED), 3);
	ferry_ipf_destroy(ipf);
}

static void test_not_fragment(void)
{
	struct ferry_ipf *ipf = mk(NULL);
	uint8_t why = 0xff;
	struct ferry_ipf_frag f = { .l3_ofs = ETH, .handle = H(0) };
	make_v4(&A, 1, 300, 1);
	make_v6(&B, 1, 300, false, 1);
	make_v6(&C, 1, 300, true, 1);
	const struct dgram *all[3] = { &A, &B, &C };
	for (unsigned i = 0; i < 3; i++) {
		f.data = all[i]->b;
		f.len = all[i]->len;
		CHECK_EQ(ferry_ipf_add(ipf, &f, 1, &done, &why), FERRY_IPF_NOT_FRAGMENT);
	}
	/* DF alone is not a fragment */
	A.b[ETH + 6] = 0x40;
	f.data = A.b;
	f.len = A.len;
	CHECK_EQ(ferry_ipf_add(ipf, &f, 1, &done, &why), FERRY_IPF_NOT_FRAGMENT);
	/* not IP at all, and nothing past L2 */
	uint8_t arp[42] = { 0 };
	f.data = arp;
	f.len = sizeof(arp);
	CHECK_EQ(ferry_ipf_add(ipf, &f, 1, &done, &why), FERRY_IPF_NOT_FRAGMENT);
	f.len = ETH;
	CHECK_EQ(ferry_ipf_add(ipf, &f, 1, &done, &why), FERRY_IPF_NOT_FRAGMENT);
	CHECK_EQ(why, 0xff);
	CHECK_EQ(ferry_ipf_held(ipf), 0);
	CHECK_EQ(ctr_total(ipf), 0);
	ferry_ipf_destroy(ipf);
}

static void test_overlap(void)
{
	struct ferry_ipf *ipf = mk(NULL);
	uint8_t why = 0;
	make_v4(&A, 100, 1200, 2);           /* IP payload 1208 */
	CHECK_EQ(offer(ipf, &A, 0, 400, true, 0, H(0), 1, &why), FERRY_IPF_HELD);
	CHECK_EQ(offer(ipf, &A, 800, 408, false, 0, H(2), 1, &why), FERRY_IPF_HELD);
	/* [392, 792) overlaps the first one's last 8 bytes (same bytes: still an attack) */
	CHECK_EQ(offer(ipf, &A, 392, 400, true, 0, H(1), 1, &why), FERRY_IPF_DROP);
	CHECK_EQ(why, FERRY_FRAG_REASON_OVERLAP);
	CHECK_EQ(n_released, 2);
	CHECK((released[0] == H(0) && released[1] == H(2)) || (released[0] == H(2) && released[1] == H(0)));
	CHECK_EQ(ctr(ipf, FERRY_FRAG_REASON_OVERLAP), 3);
	CHECK_EQ(ferry_ipf_held(ipf), 0);

	/* overlapping the next one */
	n_released = 0;
	CHECK_EQ(offer(ipf, &A, 400, 400, true, 0, H(3), 2, &why), FERRY_IPF_HELD);
	CHECK_EQ(offer(ipf, &A, 0, 408, true, 0, H(4), 2, &why), FERRY_IPF_DROP);
	CHECK_EQ(why, FERRY_FRAG_REASON_OVERLAP);
	CHECK_EQ(n_released, 1);
	CHECK(released[0] == H(3));

	/* an exact duplicate */
	n_released = 0;
	CHECK_EQ(offer(ipf, &A, 400, 400, true, 0, H(5), 3, &why), FERRY_IPF_HELD);
	CHECK_EQ(offer(ipf, &A, 400, 400, true, 0, H(6), 3, &why), FERRY_IPF_DROP);
	CHECK_EQ(why, FERRY_FRAG_REASON_OVERLAP);
	CHECK_EQ(n_released, 1);
	CHECK(released[0] == H(5));
	CHECK_EQ(ctr(ipf, FERRY_FRAG_REASON_OVERLAP), 7);
	CHECK_EQ(ferry_ipf_held(ipf), 0);

	/* v6 too, and the datagram after it starts clean */
	n_released = 0;
	make_v6(&B, 3, 1000, false, 2);
	CHECK_EQ(offer(ipf, &B, 0, 496, true, 0, H(7), 4, &why), FERRY_IPF_HELD);
	CHECK_EQ(offer(ipf, &B, 488, 520, false, 0, H(8), 4, &why), FERRY_IPF_DROP);
	CHECK_EQ(why, FERRY_FRAG_REASON_OVERLAP);
	CHECK_EQ(n_released, 1);
	CHECK_EQ(offer(ipf, &B, 496, 512, false, 0, H(9), 5, &why), FERRY_IPF_HELD);
	CHECK_EQ(offer(ipf, &B, 0, 496, true, 0, H(10), 5, &why), FERRY_IPF_DONE);
	CHECK(whole_is(&B));
	ferry_ipf_destroy(ipf);
}

static void test_too_small(void)
{
	struct ferry_ipf *ipf = mk(NULL);
	uint8_t why = 0;
	make_v4(&A, 11, 1200, 2);
	CHECK_EQ(offer(ipf, &A, 0, 392, true, 0, H(0), 1, &why), FERRY_IPF_DROP);
	CHECK_EQ(why, FERRY_FRAG_REASON_TOO_SMALL);
	CHECK_EQ(offer(ipf, &A, 0, 8, true, 0, H(0), 1, &why), FERRY_IPF_DROP);
	CHECK_EQ(why, FERRY_FRAG_REASON_TOO_SMALL);
	CHECK_EQ(ctr(ipf, FERRY_FRAG_REASON_TOO_SMALL), 2);
	CHECK_EQ(ferry_ipf_held(ipf), 0);
	/* the minimum itself is fine, and a last fragment may be tiny */
	CHECK_EQ(offer(ipf, &A, 0, 400, true, 0, H(0), 2, &why), FERRY_IPF_HELD);
	CHECK_EQ(offer(ipf, &A, 400, 800, true, 0, H(1), 2, &why), FERRY_IPF_HELD);
	CHECK_EQ(offer(ipf, &A, 1200, 8, false, 0, H(2), 2, &why), FERRY_IPF_DONE);
	CHECK(whole_is(&A));
	/* v6 */
	make_v6(&B, 12, 1000, false, 2);
	CHECK_EQ(offer(ipf, &B, 0, 392, true, 0, H(3), 3, &why), FERRY_IPF_DROP);
	CHECK_EQ(why, FERRY_FRAG_REASON_TOO_SMALL);
	CHECK_EQ(ctr(ipf, FERRY_FRAG_REASON_TOO_SMALL), 3);
	CHECK_EQ(n_released, 0);
	ferry_ipf_destroy(ipf);
}

static void test_timeout(void)
{
	struct ferry_ipf *ipf = mk(NULL);       /* 15 s */
	uint8_t why;
	const uint64_t t0 = 1000 * MS;
	make_v4(&A, 1, 1200, 1);
	make_v4(&B, 2, 1200, 2);
	make_v4(&C, 3, 1200, 3);
	CHECK_EQ(offer(ipf, &A, 0, 400, true, 0, H(0), t0, &why), FERRY_IPF_HELD);
	CHECK_EQ(offer(ipf, &A, 400, 400, true, 0, H(1), t0 + 1000 * MS, &why), FERRY_IPF_HELD);
	CHECK_EQ(offer(ipf, &B, 0, 400, true, 0, H(2), t0 + 10000 * MS, &why), FERRY_IPF_HELD);
	ferry_ipf_expire(ipf, t0 + 15000 * MS);        /* exactly the timeout: kept */
	CHECK_EQ(n_released, 0);
	CHECK_EQ(ferry_ipf_held(ipf), 3);
	ferry_ipf_expire(ipf, t0 + 15000 * MS + 1);    /* A, counted from its first fragment */
	CHECK_EQ(n_released, 2);
	CHECK(released[0] == H(0) && released[1] == H(1));
	CHECK_EQ(ctr(ipf, FERRY_FRAG_REASON_TIMEOUT), 2);
	CHECK_EQ(ferry_ipf_held(ipf), 1);
	/* B lives on and completes */
	CHECK_EQ(offer(ipf, &B, 400, 400, true, 0, H(3), t0 + 16000 * MS, &why), FERRY_IPF_HELD);
	CHECK_EQ(offer(ipf, &B, 800, 408, false, 0, H(4), t0 + 16000 * MS, &why), FERRY_IPF_DONE);
	CHECK(whole_is(&B));
	CHECK_EQ(done.n_handles, 3);
	/* an add expires too: C's time is up when the next fragment (any) comes */
	CHECK_EQ(offer(ipf, &C, 0, 400, true, 0, H(5), t0 + 20000 * MS, &why), FERRY_IPF_HELD);
	CHECK_EQ(offer(ipf, &A, 0, 400, true, 0, H(6), t0 + 36000 * MS, &why), FERRY_IPF_HELD);
	CHECK_EQ(n_released, 3);
	CHECK(released[2] == H(5));
	CHECK_EQ(ctr(ipf, FERRY_FRAG_REASON_TIMEOUT), 3);
	/* a late fragment of a timed-out datagram starts a new one */
	CHECK_EQ(ferry_ipf_held(ipf), 1);
	ferry_ipf_destroy(ipf);
	CHECK_EQ(n_released, 4);                  /* destroy gives back what is held */
	CHECK(released[3] == H(6));
}

static void test_no_space(void)
{
	struct ferry_ipf_config cfg = { .max_frags = 2 };
	struct ferry_ipf *ipf = mk(&cfg);
	uint8_t why = 0;
	make_v4(&A, 1, 1200, 1);
	make_v4(&B, 2, 1200, 2);
	CHECK_EQ(offer(ipf, &A, 0, 400, true, 0, H(0), 1, &why), FERRY_IPF_HELD);
	CHECK_EQ(offer(ipf, &A, 400, 400, true, 0, H(1), 1, &why), FERRY_IPF_HELD);
	CHECK_EQ(offer(ipf, &A, 800, 408, false, 0, H(2), 1, &why), FERRY_IPF_DROP);
	CHECK_EQ(why, FERRY_FRAG_REASON_NO_SPACE);
	CHECK_EQ(offer(ipf, &B, 0, 400, true, 0, H(3), 1, &why), FERRY_IPF_DROP);
	CHECK_EQ(why, FERRY_FRAG_REASON_NO_SPACE);
	CHECK_EQ(n_released, 0);                 /* A stays as it was */
	CHECK_EQ(ferry_ipf_held(ipf), 2);
	CHECK_EQ(ctr(ipf, FERRY_FRAG_REASON_NO_SPACE), 2);
	ferry_ipf_destroy(ipf);

	/* bytes: the first fragment keeps its headers (34) + 400, the second 400 */
	struct ferry_ipf_config cfg2 = { .max_bytes = 1000 };
	ipf = mk(&cfg2);
	CHECK_EQ(offer(ipf, &A, 0, 400, true, 0, H(0), 1, &why), FERRY_IPF_HELD);
	CHECK_EQ(offer(ipf, &A, 400, 400, true, 0, H(1), 1, &why), FERRY_IPF_HELD);
	CHECK_EQ(offer(ipf, &A, 800, 408, false, 0, H(2), 1, &why), FERRY_IPF_DROP);
	CHECK_EQ(why, FERRY_FRAG_REASON_NO_SPACE);
	CHECK_EQ(ferry_ipf_held(ipf), 2);
	CHECK_EQ(offer(ipf, &B, 1048, 160, false, 0, H(3), 1, &why), FERRY_IPF_HELD);  /* 994 */
	make_v4(&C, 3, 1200, 3);
	CHECK_EQ(offer(ipf, &C, 1200, 8, false, 0, H(4), 1, &why), FERRY_IPF_DROP);
	CHECK_EQ(why, FERRY_FRAG_REASON_NO_SPACE);
	CHECK_EQ(n_released, 0);
	ferry_ipf_destroy(ipf);
	CHECK_EQ(n_released, 3);
}

static void test_too_many(void)
{
	struct ferry_ipf_config cfg = { .min_frag_v4 = 8, .max_frags = 200 };
	struct ferry_ipf *ipf = mk(&cfg);
	uint8_t why = 0;
	/* exactly 64 fragments complete */
	make_v4(&A, 1, 504, 1);                /* IP payload 512 = 64 * 8 */
	for (unsigned i = 0; i < 64; i++) {
		enum ferry_ipf_verdict v = offer(ipf, &A, (63 - i) * 8, 8, i != 0, 0, H(63 - i), 1, &why);
		CHECK_EQ(v, i == 63 ? FERRY_IPF_DONE : FERRY_IPF_HELD);
	}
	CHECK(whole_is(&A));
	CHECK_EQ(done.n_handles, 64);
	unsigned in_order = 0;
	for (unsigned i = 0; i < 64; i++)
		in_order += done.handles[i] == H(i);
	CHECK_EQ(in_order, 64);

	/* a 65th is refused and the datagram with it */
	make_v4(&B, 2, 512, 2);                /* IP payload 520 */
	for (unsigned i = 0; i < 64; i++)
		CHECK_EQ(offer(ipf, &B, i * 8, 8, true, 0, H(i), 2, &why), FERRY_IPF_HELD);
	CHECK_EQ(ferry_ipf_held(ipf), 64);
	CHECK_EQ(offer(ipf, &B, 512, 8, false, 0, H(64), 2, &why), FERRY_IPF_DROP);
	CHECK_EQ(why, FERRY_FRAG_REASON_TOO_MANY);
	CHECK_EQ(n_released, 64);
	CHECK_EQ(ctr(ipf, FERRY_FRAG_REASON_TOO_MANY), 65);
	CHECK_EQ(ferry_ipf_held(ipf), 0);
	ferry_ipf_destroy(ipf);
}

static void test_too_big(void)
{
	struct ferry_ipf *ipf = mk(NULL);
	uint8_t why = 0;
	make_v4(&A, 1, 1200, 1);
	CHECK_EQ(offer(ipf, &A, 0, 400, true, 0, H(0), 1, &why), FERRY_IPF_HELD);
	/* offset 65512 + 400 bytes + 20 of header > 65535: the datagram goes too */
	uint32_t len = build_frag(&A, 0, 400, true);
	w16(fbuf + ETH + 6, 0x2000 | 8189);
	w16(fbuf + ETH + 10, 0);
	w16(fbuf + ETH + 10, t_csum(fbuf + ETH, 20));
	CHECK_EQ(offer_buf(ipf, len, 0, H(1), 1, &why), FERRY_IPF_DROP);
	CHECK_EQ(why, FERRY_FRAG_REASON_TOO_BIG);
	CHECK_EQ(n_released, 1);
	CHECK_EQ(ctr(ipf, FERRY_FRAG_REASON_TOO_BIG), 2);
	CHECK_EQ(ferry_ipf_held(ipf), 0);
	/* the largest legal v4 datagram: 65535 in 1480-byte fragments */
	make_v4(&B, 2, 65535 - 28, 4);
	uint32_t pl = payload_len(&B), off = 0;
	unsigned i = 0;
	enum ferry_ipf_verdict v = FERRY_IPF_HELD;
	for (; off < pl; off += 1480, i++) {
		uint32_t n = pl - off < 1480 ? pl - off : 1480;
		v = offer(ipf, &B, off, n, off + n < pl, 0, H(i), 2, &why);
		CHECK_EQ(v, off + n < pl ? FERRY_IPF_HELD : FERRY_IPF_DONE);
	}
	CHECK(whole_is(&B));
	CHECK_EQ(done.n_handles, i);
	ferry_ipf_destroy(ipf);
}

static void test_bad(void)
{
	struct ferry_ipf *ipf = mk(NULL);
	uint8_t why = 0;
	uint32_t len;
	make_v4(&A, 1, 1200, 1);
	/* MF with a payload that is not a multiple of 8 */
	CHECK_EQ(offer(ipf, &A, 0, 404, true, 0, H(0), 1, &why), FERRY_IPF_DROP);
	CHECK_EQ(why, FERRY_FRAG_REASON_BAD);
	/* IHL under 5 */
	len = build_frag(&A, 0, 400, true);
	fbuf[ETH] = 0x44;
	CHECK_EQ(offer_buf(ipf, len, 0, H(0), 1, &why), FERRY_IPF_DROP);
	CHECK_EQ(why, FERRY_FRAG_REASON_BAD);
	/* truncated: tot_len says more than there is */
	len = build_frag(&A, 0, 400, true);
	CHECK_EQ(offer_buf(ipf, len - 1, 0, H(0), 1, &why), FERRY_IPF_DROP);
	CHECK_EQ(why, FERRY_FRAG_REASON_BAD);
	/* tot_len shorter than the header */
	len = build_frag(&A, 400, 400, true);
	w16(fbuf + ETH + 2, 16);
	CHECK_EQ(offer_buf(ipf, len, 0, H(0), 1, &why), FERRY_IPF_DROP);
	CHECK_EQ(why, FERRY_FRAG_REASON_BAD);
	/* v6: payload_len past the frame, and a fragment header cut short */
	make_v6(&B, 1, 1000, false, 1);
	len = build_frag(&B, 0, 496, true);
	CHECK_EQ(offer_buf(ipf, len - 8, 0, H(0), 1, &why), FERRY_IPF_DROP);
	CHECK_EQ(why, FERRY_FRAG_REASON_BAD);
	len = build_frag(&B, 0, 496, true);
	w16(fbuf + ETH + 4, 4);
	CHECK_EQ(offer_buf(ipf, len, 0, H(0), 1, &why), FERRY_IPF_DROP);
	CHECK_EQ(why, FERRY_FRAG_REASON_BAD);
	CHECK_EQ(ctr(ipf, FERRY_FRAG_REASON_BAD), 6);
	CHECK_EQ(ferry_ipf_held(ipf), 0);
	/* a second last fragment ending elsewhere abandons the datagram */
	CHECK_EQ(offer(ipf, &A, 800, 408, false, 0, H(1), 2, &why), FERRY_IPF_HELD);
	CHECK_EQ(offer(ipf, &A, 400, 400, false, 0, H(2), 2, &why), FERRY_IPF_DROP);
	CHECK_EQ(why, FERRY_FRAG_REASON_BAD);
	CHECK_EQ(n_released, 1);
	/* and so do bytes past the end */
	CHECK_EQ(offer(ipf, &A, 400, 400, false, 0, H(3), 3, &why), FERRY_IPF_HELD);
	CHECK_EQ(offer(ipf, &A, 800, 400, true, 0, H(4), 3, &why), FERRY_IPF_DROP);
	CHECK_EQ(why, FERRY_FRAG_REASON_BAD);
	CHECK_EQ(n_released, 2);
	CHECK(released[0] == H(1) && released[1] == H(3));
	CHECK_EQ(ctr(ipf, FERRY_FRAG_REASON_BAD), 10);
	CHECK_EQ(ferry_ipf_held(ipf), 0);
	ferry_ipf_destroy(ipf);
}

static void test_interleaved(void)
{
	struct ferry_ipf *ipf = mk(NULL);
	uint8_t why;
	make_v4(&A, 10, 1200, 1);
	make_v4(&B, 11, 1200, 2);
	CHECK_EQ(offer(ipf, &A, 0, 400, true, 0, H(0), 1, &why), FERRY_IPF_HELD);
	CHECK_EQ(offer(ipf, &B, 400, 400, true, 0, H(11), 1, &why), FERRY_IPF_HELD);
	CHECK_EQ(offer(ipf, &A, 400, 400, true, 0, H(1), 1, &why), FERRY_IPF_HELD);
	CHECK_EQ(offer(ipf, &B, 0, 400, true, 0, H(10), 1, &why), FERRY_IPF_HELD);
	CHECK_EQ(ferry_ipf_held(ipf), 4);
	CHECK_EQ(offer(ipf, &B, 800, 408, false, 0, H(12), 1, &why), FERRY_IPF_DONE);
	CHECK(whole_is(&B));
	CHECK(done.n_handles == 3 && done.handles[0] == H(10) && done.handles[1] == H(11) && done.handles[2] == H(12));
	CHECK_EQ(offer(ipf, &A, 800, 408, false, 0, H(2), 1, &why), FERRY_IPF_DONE);
	CHECK(whole_is(&A));
	CHECK(done.n_handles == 3 && done.handles[0] == H(0) && done.handles[1] == H(1) && done.handles[2] == H(2));
	/* v4 and v6 with the same id */
	make_v6(&C, 10, 1000, false, 3);
	CHECK_EQ(offer(ipf, &A, 0, 400, true, 0, H(0), 2, &why), FERRY_IPF_HELD);
	CHECK_EQ(offer(ipf, &C, 0, 496, true, 0, H(20), 2, &why), FERRY_IPF_HELD);
	CHECK_EQ(offer(ipf, &C, 496, 512, false, 0, H(21), 2, &why), FERRY_IPF_DONE);
	CHECK(whole_is(&C));
	CHECK_EQ(ferry_ipf_held(ipf), 1);
	CHECK_EQ(ctr(ipf, FERRY_FRAG_REASON_OVERLAP), 0);
	ferry_ipf_destroy(ipf);
}

static void test_zones(void)
{
	struct ferry_ipf *ipf = mk(NULL);
	uint8_t why;
	make_v4(&A, 42, 1200, 1);
	for (unsigned k = 0; k < 3; k++) {
		uint32_t off = k * 400, n = k == 2 ? 408 : 400;
		bool more = k != 2;
		enum ferry_ipf_verdict v = offer(ipf, &A, off, n, more, 1, H(k), 1, &why);
		CHECK_EQ(v, more ? FERRY_IPF_HELD : FERRY_IPF_DONE);
		if (!more) {
			CHECK(whole_is(&A));
			CHECK(done.handles[0] == H(0) && done.handles[1] == H(1) && done.handles[2] == H(2));
		}
		v = offer(ipf, &A, off, n, more, 2, H(10 + k), 1, &why);
		CHECK_EQ(v, more ? FERRY_IPF_HELD : FERRY_IPF_DONE);
		if (!more) {
			CHECK(whole_is(&A));
			CHECK(done.handles[0] == H(10) && done.handles[1] == H(11) && done.handles[2] == H(12));
		}
	}
	CHECK_EQ(ctr(ipf, FERRY_FRAG_REASON_OVERLAP), 0);
	CHECK_EQ(ctr(ipf, FERRY_FRAG_REASON_REASSEMBLED), 2);
	CHECK_EQ(ferry_ipf_held(ipf), 0);
	ferry_ipf_destroy(ipf);
}

static void test_is_fragment(void)
{
	uint32_t len;
	make_v4(&A, 1, 1200, 1);
	CHECK(!ferry_ipf_is_fragment(A.b, A.len, ETH));
	len = build_frag(&A, 0, 400, true);              /* MF */
	CHECK(ferry_ipf_is_fragment(fbuf, len, ETH));
	CHECK(!ferry_ipf_is_fragment(fbuf, ETH + 19, ETH)); /* cut in the header */
	len = build_frag(&A, 800, 408, false);           /* offset only */
	CHECK(ferry_ipf_is_fragment(fbuf, len, ETH));
	fbuf[ETH + 6] = 0x40, fbuf[ETH + 7] = 0;           /* DF only */
	CHECK(!ferry_ipf_is_fragment(fbuf, len, ETH));

	make_v6(&B, 1, 1000, false, 1);
	CHECK(!ferry_ipf_is_fragment(B.b, B.len, ETH));
	len = build_frag(&B, 0, 496, true);
	CHECK(ferry_ipf_is_fragment(fbuf, len, ETH));
	CHECK(!ferry_ipf_is_fragment(fbuf, ETH + 39, ETH));
	len = build_frag(&B, 496, 512, false);
	CHECK(ferry_ipf_is_fragment(fbuf, len, ETH));
	make_v6(&C, 1, 1000, true, 1);
	CHECK(!ferry_ipf_is_fragment(C.b, C.len, ETH));
	len = build_frag(&C, 0, 496, true);
	CHECK(ferry_ipf_is_fragment(fbuf, len, ETH));
	CHECK(!ferry_ipf_is_fragment(fbuf, ETH + 41, ETH));  /* HBH cut */
	/* a fragment header behind a header that is not walked (TCP) is not one */
	fbuf[ETH + 6] = 6;
	CHECK(!ferry_ipf_is_fragment(fbuf, len, ETH));

	uint8_t arp[42] = { 0 };
	CHECK(!ferry_ipf_is_fragment(arp, sizeof(arp), ETH));
	CHECK(!ferry_ipf_is_fragment(arp, ETH, ETH));
	CHECK(!ferry_ipf_is_fragment(arp, 0, ETH));
}

/* Random sizes, cuts and orders, v4 and v6, several datagrams in flight: each
 * completes on its last fragment, byte for byte, and nothing is left over. */
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng % n);
}

static void test_random(void)
{
	struct ferry_ipf_config cfg = { .min_frag_v4 = 8, .min_frag_v6 = 8 };
	struct ferry_ipf *ipf = mk(&cfg);
	static struct dgram D[3];
	unsigned bad = 0, wrong = 0;
	for (unsigned round = 0; round < 300; round++) {
		struct cut { uint32_t off, n; bool more; unsigned d; } fr[3 * 64];
		unsigned nf = 0, left[3] = { 0 };
		for (unsigned d = 0; d < 3; d++) {
			uint32_t n = 1 + rnd(6000);
			if (rnd(2))
				make_v4(&D[d], (uint16_t)(round * 3 + d), n, (uint8_t)round);
			else
				make_v6(&D[d], round * 3 + d, n, rnd(2), (uint8_t)round);
			uint32_t pl = payload_len(&D[d]);
			for (uint32_t off = 0; off < pl;) {
				uint32_t k = 8 * (1 + rnd(200));
				if (off + k >= pl || left[d] == 63)
					k = pl - off;
				if (off == 0 && k == pl && D[d].v6 == false)
					k = pl > 8 ? 8 : pl;   /* v4 needs two at least */
				fr[nf].off = off;
				fr[nf].n = k;
				fr[nf].more = off + k < pl;
				fr[nf].d = d;
				nf++;
				left[d]++;
				off += k;
			}
		}
		for (unsigned i = nf; i > 1; i--) {
			unsigned j = rnd(i);
			struct cut t = fr[i - 1];
			fr[i - 1] = fr[j];
			fr[j] = t;
		}
		for (unsigned i = 0; i < nf; i++) {
			uint8_t why;
			unsigned d = fr[i].d;
			enum ferry_ipf_verdict v = offer(ipf, &D[d], fr[i].off, fr[i].n, fr[i].more, 0, H(d), round, &why);
			left[d]--;
			if (v != (left[d] ? FERRY_IPF_HELD : FERRY_IPF_DONE))
				bad++;
			else if (v == FERRY_IPF_DONE && !whole_is(&D[d]))
				wrong++;
		}
		if (ferry_ipf_held(ipf))
			bad++;
	}
	CHECK_EQ(bad, 0);
	CHECK_EQ(wrong, 0);
	CHECK_EQ(ctr(ipf, FERRY_FRAG_REASON_REASSEMBLED), 900);
	CHECK_EQ(ctr_total(ipf), 900);
	ferry_ipf_destroy(ipf);
}

int main(void)
{
	RUN(test_v4_in_order);
	RUN(test_v4_out_of_order);
	RUN(test_v4_df_kept);
	RUN(test_v6);
	RUN(test_v6_hop_by_hop);
	RUN(test_v6_atomic);
	RUN(test_not_fragment);
	RUN(test_overlap);
	RUN(test_too_small);
	RUN(test_timeout);
	RUN(test_no_space);
	RUN(test_too_many);
	RUN(test_too_big);
	RUN(test_bad);
	RUN(test_interleaved);
	RUN(test_zones);
	RUN(test_is_fragment);
	RUN(test_random);
	return ftest_finish();
}
