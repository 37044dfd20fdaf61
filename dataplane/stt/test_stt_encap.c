/* STT encapsulation and inner offload completion, on frames built here and checked
 * byte by byte against the wire format (shared/research/stt.md §1) with a checksum
 * routine of the test's own: one, two and 45 segments, inner chains cut at odd
 * places, every way out (in place, chained, copied, indirect, TSO), the STT flags
 * from inner's metadata, the errors, and every mbuf back in its pool afterwards. */
#include <string.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include "../common/ftest.h"
#include "../common/eal_test.h"
#include "stt.h"

#define ETH 14u
#define OUTER 54u
#define BIG 70000u
#define MAX_OUT 256u
#define TX_REQ (RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_L4_MASK | RTE_MBUF_F_TX_TCP_SEG)

static struct rte_mempool *pool;
static uint8_t frame[BIG], want[BIG], got[BIG], pkt[BIG];
static struct rte_mbuf *out[MAX_OUT];

/* ---- the test's own view of the bytes ---- */

static uint16_t r16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t r32(const uint8_t *p) { return (uint32_t)r16(p) << 16 | r16(p + 2); }
static void w16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void w32(uint8_t *p, uint32_t v) { w16(p, v >> 16); w16(p + 2, v); }

/* a byte at a time, big-endian words: nothing shared with the code under test */
static uint64_t t_sum(const uint8_t *p, uint32_t n, uint64_t s)
{
	for (uint32_t i = 0; i < n; i++)
		s += (i & 1) ? p[i] : (uint64_t)p[i] << 8;
	return s;
}

static uint16_t t_fold(uint64_t s)
{
	while (s > 0xffff)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

/* the pseudo-header sum; len 0 leaves the length out (what TSO seeds) */
static uint64_t t_phdr(const uint8_t *l3, bool v4, uint8_t proto, uint32_t len)
{
	return (v4 ? t_sum(l3 + 12, 8, 0) : t_sum(l3 + 8, 32, 0)) + proto + len;
}

static bool t_ip_ok(const uint8_t *ip) { return t_fold(t_sum(ip, (ip[0] & 0xfu) * 4, 0)) == 0xffff; }

static bool t_l4_ok(const uint8_t *l3, bool v4, uint8_t proto, const uint8_t *l4, uint32_t len)
{
	return t_fold(t_phdr(l3, v4, proto, len) + t_sum(l4, len, 0)) == 0xffff;
}

/* a packet's bytes, all its segments in order */
static uint32_t flat(const struct rte_mbuf *m, uint8_t *b)
{
	uint32_t n = 0;
	for (const struct rte_mbuf *s = m; s != NULL; s = s->next) {
		memcpy(b + n, rte_pktmbuf_mtod(s, const uint8_t *), s->data_len);
		n += s->data_len;
	}
	return n;
}

static bool mbuf_ok(const struct rte_mbuf *m)
{
	const char *why = NULL;
	if (rte_mbuf_check(m, 1, &why) == 0)
		return true;
	fprintf(stderr, "  rte_mbuf_check: %s\n", why);
	return false;
}

/* ---- frames ---- */

/* Ethernet + IPv4 (or IPv6) + TCP (or UDP) of len bytes in all, checksums valid */
static void make_frame(uint8_t *b, uint32_t len, uint8_t seed, bool v6, bool udp)
{
	static const uint8_t macs[12] = { 0x02, 0, 0, 0, 0, 0xbb, 0x02, 0, 0, 0, 0, 0xaa };
	uint32_t l3 = v6 ? 40 : 20, l4 = udp ? 8 : 20;
	uint8_t *ip = b + ETH, *th = ip + l3;
	memset(b, 0, ETH + l3 + l4);
	memcpy(b, macs, 12);
	w16(b + 12, v6 ? 0x86dd : 0x0800);
	for (uint32_t i = ETH + l3 + l4; i < len; i++)
		b[i] = (uint8_t)(seed + i * 7 + (i >> 8));
	if (v6) {
		ip[0] = 0x60;
		w16(ip + 4, len - ETH - 40);
		ip[6] = udp ? 17 : 6;
		ip[7] = 64;
		ip[8] = 0x20, ip[9] = 0x01, ip[23] = 1;
		ip[24] = 0x20, ip[25] = 0x01, ip[39] = 2;
	} else {
		ip[0] = 0x45;
		w16(ip + 2, len - ETH);
		w16(ip + 4, 7);
		ip[8] = 64;
		ip[9] = udp ? 17 : 6;
		ip[12] = 10, ip[15] = 1;
		ip[16] = 10, ip[19] = 2;
		w16(ip + 10, (uint16_t)~t_fold(t_sum(ip, 20, 0)));
	}
	w16(th, 40000);
	w16(th + 2, 80);
	if (udp) {
		w16(th + 4, len - ETH - l3);
	} else {
		w32(th + 4, 1000);
		w32(th + 8, 2000);
		th[12] = 0x50;
		th[13] = RTE_TCP_ACK_FLAG;
		w16(th + 14, 512);
	}
	uint32_t n = len - ETH - l3;
	uint16_t c = (uint16_t)~t_fold(t_phdr(ip, !v6, udp ? 17 : 6, n) + t_sum(th, n, 0));
	w16(th + (udp ? 6 : 16), c);
}

/* b as a chain whose segments hold seg[0], seg[1], ... bytes (cycling; 0: all) */
static struct rte_mbuf *chain(struct rte_mempool *mp, const uint8_t *b, uint32_t len, const uint32_t *seg, unsigned nseg)
{
	struct rte_mbuf *h = NULL;
	for (uint32_t off = 0, k = 0; off < len || h == NULL; k++) {
		struct rte_mbuf *m = rte_pktmbuf_alloc(mp);
		if (m == NULL) {
			rte_pktmbuf_free(h);
			return NULL;
		}
		uint32_t n = nseg ? seg[k % nseg] : len;
		n = RTE_MIN(RTE_MIN(n, len - off), (uint32_t)rte_pktmbuf_tailroom(m));
		memcpy(rte_pktmbuf_append(m, (uint16_t)n), b + off, n);
		off += n;
		if (h == NULL)
			h = m;
		else if (rte_pktmbuf_chain(h, m) != 0)
			return NULL;
	}
	return h;
}

static struct ferry_stt_encap params(uint16_t mss)
{
	return (struct ferry_stt_encap){
		.src_mac = { { 0x02, 0x11, 0x22, 0x33, 0x44, 0x55 } },
		.dst_mac = { { 0x02, 0x66, 0x77, 0x88, 0x99, 0xaa } },
		/* 192.0.2.1, 198.51.100.7 (RTE_IPV4 shifts an int into its sign bit: UBSan) */
		.src_ip = RTE_BE32(0xc0000201),
		.dst_ip = RTE_BE32(0xc6336407),
		.src_port = RTE_BE16(0xc123),
		.dst_port = RTE_BE16(FERRY_STT_PORT),
		.tos = 0x2a,
		.ttl = 63,
		.context = 0x0102030405060708ull,
		.packet_id = 0xdeadbeef,
		.ip_id = 0xfffe, /* wraps within a frame */
		.mss = mss,
	};
}

/* the STT frame the test expects: its header, then the inner frame */
static uint32_t stt_frame(uint8_t *b, uint8_t flags, uint8_t l4off, uint16_t mss, uint16_t vlan, const uint8_t *inner,
			  uint32_t len)
{
	memset(b, 0, 18);
	b[1] = flags, b[2] = l4off;
	w16(b + 4, mss);
	w16(b + 6, vlan);
	w32(b + 8, 0x01020304);
	w32(b + 12, 0x05060708);
	memcpy(b + 18, inner, len);
	return 18 + len;
}

/* Every header byte of every software segment, each checksum, and the payloads put
 * together are the expected STT frame. */
static void check_segments(struct rte_mbuf **o, int n, const struct ferry_stt_encap *p, const uint8_t *stt,
			   uint32_t frame_len)
{
	uint32_t off = 0;
	CHECK_EQ(n, (frame_len + p->mss - 1) / p->mss);
	for (int i = 0; i < n; i++) {
		bool last = i == n - 1;
		CHECK(mbuf_ok(o[i]));
		uint32_t len = flat(o[i], pkt);
		CHECK_EQ(len, o[i]->pkt_len);
		uint32_t plen = len - OUTER;
		CHECK_EQ(plen, last ? frame_len - off : p->mss);
		CHECK(memcmp(pkt, p->dst_mac.addr_bytes, 6) == 0);
		CHECK(memcmp(pkt + 6, p->src_mac.addr_bytes, 6) == 0);
		CHECK_EQ(r16(pkt + 12), 0x0800);
		const uint8_t *ip = pkt + ETH, *tcp = ip + 20;
		CHECK_EQ(ip[0], 0x45);
		CHECK_EQ(ip[1], p->tos);
		CHECK_EQ(r16(ip + 2), 40 + plen);
		CHECK_EQ(r16(ip + 4), (uint16_t)(p->ip_id + i));
		CHECK_EQ(r16(ip + 6), 0x4000); /* DF, offset 0 */
		CHECK_EQ(ip[8], p->ttl);
		CHECK_EQ(ip[9], 6);
		CHECK(t_ip_ok(ip));
		CHECK(memcmp(ip + 12, &p->src_ip, 4) == 0);
		CHECK(memcmp(ip + 16, &p->dst_ip, 4) == 0);
		CHECK_EQ(r16(tcp), rte_be_to_cpu_16(p->src_port));
		CHECK_EQ(r16(tcp + 2), FERRY_STT_PORT);
		CHECK_EQ(r32(tcp + 4), frame_len << 16 | off);
		CHECK_EQ(r32(tcp + 8), p->packet_id);
		CHECK_EQ(tcp[12], 0x50);
		CHECK_EQ(tcp[13], last ? 0x18 : 0x10); /* ACK, PSH on the last only */
		CHECK_EQ(r16(tcp + 14), 65535);
		CHECK_EQ(r16(tcp + 18), 0);
		CHECK(t_l4_ok(ip, true, 6, tcp, 20 + plen));
		CHECK_EQ(o[i]->ol_flags & TX_REQ, 0);
		CHECK(off + plen <= BIG);
		memcpy(got + off, tcp + 20, RTE_MIN(plen, BIG - off));
		off += plen;
	}
	CHECK_EQ(off, frame_len);
	CHECK(memcmp(got, stt, frame_len) == 0);
}

static void free_out(int n)
{
	for (int i = 0; i < n; i++)
		rte_pktmbuf_free(out[i]);
}

/* encapsulates a copy of frame[0..len) cut as seg[], checks the segments against the
 * expected STT frame, frees them, and checks every mbuf came back */
static void encap_and_check(uint32_t len, const uint32_t *seg, unsigned nseg, uint16_t mss)
{
	unsigned before = rte_mempool_avail_count(pool);
	struct ferry_stt_encap p = params(mss);
	struct rte_mbuf *m = chain(pool, frame, len, seg, nseg);
	CHECK(m != NULL);
	if (m == NULL)
		return;
	uint32_t fl = stt_frame(want, 0, 0, 0, 0, frame, len);
	int n = ferry_stt_encap(m, &p, pool, out, MAX_OUT);
	CHECK(n > 0);
	if (n > 0) {
		check_segments(out, n, &p, want, fl);
		free_out(n);
	}
	CHECK_EQ(rte_mempool_avail_count(pool), before);
}

/* ---- encapsulation ---- */

static void test_single_segment(void)
{
	uint8_t hdr[72] = {
		0x02, 0x66, 0x77, 0x88, 0x99, 0xaa, 0x02, 0x11, 0x22, 0x33, 0x44, 0x55, 0x08, 0x00, /* Ethernet */
		0x45, 0x2a, 0x00, 0x00, 0xff, 0xfe, 0x40, 0x00, 0x3f, 0x06, 0x00, 0x00,             /* IPv4 ... */
		192, 0, 2, 1, 198, 51, 100, 7,
		0xc1, 0x23, 0x1d, 0x2f, 0x00, 0x00, 0x00, 0x00, 0xde, 0xad, 0xbe, 0xef,             /* TCP ... */
		0x50, 0x18, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0, 0,
	};
	uint32_t len = 100, fl = 18 + len;
	w16(hdr + 16, 40 + fl);   /* IP total length */
	w16(hdr + 38, fl);        /* seq: frame length << 16, offset 0 */
	make_frame(frame, len, 1, false, false);
	struct ferry_stt_encap p = params(1460);
	unsigned before = rte_mempool_avail_count(pool);
	struct rte_mbuf *m = chain(pool, frame, len, NULL, 0);
	CHECK_EQ(ferry_stt_encap(m, &p, pool, out, MAX_OUT), 1);
	CHECK(out[0] == m);                                         /* in place: */
	CHECK_EQ(rte_mempool_avail_count(pool), before - 1);        /* no allocation */
	CHECK(mbuf_ok(out[0]));
	CHECK_EQ(flat(out[0], pkt), 72 + len);
	uint8_t *ip = pkt + ETH, *tcp = ip + 20;
	CHECK(t_ip_ok(ip));
	CHECK(t_l4_ok(ip, true, 6, tcp, 20 + fl));
	w16(ip + 10, 0), w16(tcp + 16, 0); /* the checksums are checked; the rest is literal */
	CHECK(memcmp(pkt, hdr, 72) == 0);
	CHECK(memcmp(pkt + 72, frame, len) == 0);
	free_out(1);
	CHECK_EQ(rte_mempool_avail_count(pool), before);

	/* one segment on the other paths: a shared frame gets a chained header mbuf
	 * (large) or a copy (small); a full headroom the same */
	for (int k = 0; k < 3; k++) {
		len = k == 1 ? 200 : 1400;
		make_frame(frame, len, (uint8_t)k, false, false);
		if (k < 2) {
			m = chain(pool, frame, len, NULL, 0);
			rte_pktmbuf_refcnt_update(m, 1); /* another holder */
		} else {
			m = rte_pktmbuf_alloc(pool);
			m->data_off = 10; /* no room for the headers */
			memcpy(rte_pktmbuf_append(m, (uint16_t)len), frame, len);
		}
		fl = stt_frame(want, 0, 0, 0, 0, frame, len);
		int n = ferry_stt_encap(m, &p, pool, out, MAX_OUT);
		CHECK_EQ(n, 1);
		CHECK(out[0] != m);
		CHECK_EQ(out[0]->nb_segs, k == 1 ? 1 : 2);
		check_segments(out, n, &p, want, fl);
		free_out(n);
		if (k < 2) {
			CHECK(memcmp(rte_pktmbuf_mtod(m, uint8_t *), frame, len) == 0); /* untouched */
			rte_pktmbuf_free(m);
		}
	}
	CHECK_EQ(rte_mempool_avail_count(pool), before);
}

static void test_two_segments(void)
{
	uint32_t len = 1514;
	make_frame(frame, len, 2, false, false);
	struct ferry_stt_encap p = params(1460);
	unsigned before = rte_mempool_avail_count(pool);
	struct rte_mbuf *m = chain(pool, frame, len, NULL, 0);
	uint32_t fl = stt_frame(want, 0, 0, 0, 0, frame, len);
	int n = ferry_stt_encap(m, &p, pool, out, MAX_OUT);
	CHECK_EQ(n, 2);
	CHECK(out[0] == m);
	CHECK_EQ(rte_mempool_avail_count(pool), before - 2); /* inner + one for the tail */
	check_segments(out, n, &p, want, fl);
	CHECK_EQ(out[0]->pkt_len, OUTER + 1460);
	CHECK_EQ(out[1]->pkt_len, OUTER + fl - 1460);
	flat(out[1], pkt);
	CHECK_EQ(r32(pkt + ETH + 24), fl << 16 | 1460);
	CHECK_EQ(r16(pkt + ETH + 4), 0xffff); /* ip_id 0xfffe + 1 */
	free_out(n);
	CHECK_EQ(rte_mempool_avail_count(pool), before);

	/* a tail too long to copy is referenced; a chained inner takes the general path */
	len = 2600;
	make_frame(frame, len, 3, false, false);
	encap_and_check(len, NULL, 0, 1460);
	encap_and_check(len, (const uint32_t[]){ 1000 }, 1, 1460);
}

static void test_64k_chain(void)
{
	uint32_t len = FERRY_STT_INNER_MAX; /* the STT frame is 65535 bytes, the most */
	make_frame(frame, len, 4, false, false);
	encap_and_check(len, (const uint32_t[]){ 2048 }, 1, 1460);
	len = 64000;
	make_frame(frame, len, 5, true, false);
	encap_and_check(len, (const uint32_t[]){ 2048 }, 1, 1460);
	encap_and_check(len, (const uint32_t[]){ 2048 }, 1, 8960); /* jumbo underlay */

	/* inner an indirect clone (indirects then attach through it); 45 segments */
	unsigned before = rte_mempool_avail_count(pool);
	struct rte_mbuf *m = chain(pool, frame, len, (const uint32_t[]){ 2048 }, 1);
	struct rte_mbuf *c = rte_pktmbuf_clone(m, pool);
	CHECK(c != NULL);
	struct ferry_stt_encap p = params(1460);
	uint32_t fl = stt_frame(want, 0, 0, 0, 0, frame, len);
	int n = ferry_stt_encap(c, &p, pool, out, MAX_OUT);
	CHECK_EQ(n, 44);
	rte_pktmbuf_free(m); /* the segments keep the bytes alive */
	if (n > 0) {
		/* referenced, not copied: what the segments' own buffers hold is mostly headers */
		uint32_t copied = 0;
		for (int i = 0; i < n; i++)
			for (struct rte_mbuf *s = out[i]; s != NULL; s = s->next)
				copied += RTE_MBUF_DIRECT(s) ? s->data_len : 0;
		CHECK(copied < len / 4);
		check_segments(out, n, &p, want, fl);
		free_out(n);
	}
	CHECK_EQ(rte_mempool_avail_count(pool), before);
}

static void test_odd_pieces(void)
{
	static const uint32_t odd[] = { 333, 1, 777, 1001, 3, 2047, 255, 257, 999 };
	uint32_t len = 20001;
	make_frame(frame, len, 6, false, true);
	encap_and_check(len, odd, RTE_DIM(odd), 1460);
	encap_and_check(len, odd, RTE_DIM(odd), 1001); /* odd mss: odd offsets everywhere */
	encap_and_check(len, odd + 1, RTE_DIM(odd) - 1, 537);
	len = 301;
	make_frame(frame, len, 7, false, true);
	/* mss under 18: the STT header over several segments, the inner bytes after it
	 * at an odd offset of a segment */
	encap_and_check(len, odd + 1, 3, 5);
	encap_and_check(len, odd + 1, 3, 11);
	encap_and_check(len, (const uint32_t[]){ 1 }, 1, 255);
}

static void test_too_big(void)
{
	unsigned before = rte_mempool_avail_count(pool);
	uint32_t len = FERRY_STT_INNER_MAX + 1; /* 65518 */
	make_frame(frame, len, 8, false, false);
	struct ferry_stt_encap p = params(1460);
	struct rte_mbuf *m = chain(pool, frame, len, (const uint32_t[]){ 2048 }, 1);
	CHECK_EQ(ferry_stt_encap(m, &p, pool, out, MAX_OUT), -FERRY_STT_REASON_TOO_BIG);
	CHECK_EQ(rte_mempool_avail_count(pool), before);
	/* more segments than out[] holds */
	m = chain(pool, frame, 3000, NULL, 0);
	CHECK_EQ(ferry_stt_encap(m, &p, pool, out, 2), -FERRY_STT_REASON_TOO_BIG);
	CHECK_EQ(rte_mempool_avail_count(pool), before);
}

static void test_no_mbuf(void)
{
	struct ferry_stt_encap p = params(1460);
	uint32_t len = 64000;
	make_frame(frame, len, 9, false, false);
	/* none for the headers; headers but not all indirects (fails half way) */
	static const unsigned sizes[] = { 4, 60 };
	for (unsigned k = 0; k < RTE_DIM(sizes); k++) {
		char name[32];
		snprintf(name, sizeof(name), "tiny%u", k);
		struct rte_mempool *tiny = rte_pktmbuf_pool_create(name, sizes[k], 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
		CHECK(tiny != NULL);
		if (tiny == NULL)
			return;
		unsigned before = rte_mempool_avail_count(pool);
		struct rte_mbuf *m = chain(pool, frame, len, (const uint32_t[]){ 2048 }, 1);
		CHECK_EQ(ferry_stt_encap(m, &p, tiny, out, MAX_OUT), -FERRY_STT_REASON_NO_MBUF);
		CHECK_EQ(rte_mempool_avail_count(pool), before);
		CHECK_EQ(rte_mempool_avail_count(tiny), sizes[k]);
		/* one segment of a shared frame, no mbuf for its header */
		struct rte_mbuf *hold[64];
		CHECK_EQ(rte_pktmbuf_alloc_bulk(tiny, hold, sizes[k]), 0);
		m = chain(pool, frame, 1000, NULL, 0);
		rte_pktmbuf_refcnt_update(m, 1);
		CHECK_EQ(ferry_stt_encap(m, &p, tiny, out, MAX_OUT), -FERRY_STT_REASON_NO_MBUF);
		rte_pktmbuf_free(m);
		rte_pktmbuf_free_bulk(hold, sizes[k]);
		CHECK_EQ(rte_mempool_avail_count(pool), before);
		CHECK_EQ(rte_mempool_avail_count(tiny), sizes[k]);
		rte_mempool_free(tiny);
	}
}

/* encapsulates m (len bytes of frame) in one segment and returns the STT header */
static const uint8_t *encap_one(struct rte_mbuf *m, uint32_t len)
{
	struct ferry_stt_encap p = params(9000);
	int n = ferry_stt_encap(m, &p, pool, out, MAX_OUT);
	CHECK_EQ(n, 1);
	if (n != 1)
		return memset(pkt, 0xee, 100);
	CHECK(mbuf_ok(out[0]));
	CHECK_EQ(flat(out[0], pkt), 72 + len);
	CHECK(t_l4_ok(pkt + ETH, true, 6, pkt + 34, 38 + len));
	free_out(1);
	return pkt + OUTER;
}

static void test_flags(void)
{
	unsigned before = rte_mempool_avail_count(pool);
	uint32_t len = 1000;
	make_frame(frame, len, 10, false, false);

	/* PARTIAL | IPV4 | TCP, L4 offset 34 (the inner pseudo-header sum left as it is) */
	struct rte_mbuf *m = chain(pool, frame, len, NULL, 0);
	m->ol_flags = RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_TCP_CKSUM;
	m->l2_len = 14, m->l3_len = 20;
	const uint8_t *h = encap_one(m, len);
	CHECK_EQ(h[0], 0);
	CHECK_EQ(h[1], 0x0e);
	CHECK_EQ(h[2], 34);
	CHECK_EQ(h[3], 0);
	CHECK_EQ(r16(h + 4), 0);
	CHECK(memcmp(h + 18, frame, len) == 0);
	/* with TSO: the MSS; an IP header checksum request completed here */
	m = chain(pool, frame, len, NULL, 0);
	m->ol_flags = RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_TCP_SEG | RTE_MBUF_F_TX_TCP_CKSUM;
	m->l2_len = 14, m->l3_len = 20, m->l4_len = 20, m->tso_segsz = 1448;
	rte_pktmbuf_mtod(m, uint8_t *)[ETH + 10] = 0;
	h = encap_one(m, len);
	CHECK_EQ(h[1], 0x0e);
	CHECK_EQ(h[2], 34);
	CHECK_EQ(r16(h + 4), 1448);
	CHECK(t_ip_ok(h + 18 + ETH));
	/* IPv6/UDP: PARTIAL alone, offset 54 */
	make_frame(frame, len, 11, true, true);
	m = chain(pool, frame, len, NULL, 0);
	m->ol_flags = RTE_MBUF_F_TX_IPV6 | RTE_MBUF_F_TX_UDP_CKSUM;
	m->l2_len = 14, m->l3_len = 40;
	h = encap_one(m, len);
	CHECK_EQ(h[1], 0x02);
	CHECK_EQ(h[2], 54);
	/* VERIFIED from a good rx checksum; nothing from a bad or unknown one */
	static const uint64_t rx[] = { RTE_MBUF_F_RX_L4_CKSUM_GOOD, RTE_MBUF_F_RX_L4_CKSUM_BAD, RTE_MBUF_F_RX_L4_CKSUM_UNKNOWN };
	for (unsigned k = 0; k < RTE_DIM(rx); k++) {
		m = chain(pool, frame, len, NULL, 0);
		m->ol_flags = rx[k];
		m->l2_len = 14, m->l3_len = 40;
		h = encap_one(m, len);
		CHECK_EQ(h[1], k == 0 ? 0x01 : 0);
		CHECK_EQ(h[2], 0);
		CHECK_EQ(r16(h + 4), 0);
	}
	/* a tag the NIC was to insert: the V bit and the TCI */
	m = chain(pool, frame, len, NULL, 0);
	m->ol_flags = RTE_MBUF_F_TX_VLAN;
	m->vlan_tci = 0xa123;
	h = encap_one(m, len);
	CHECK_EQ(r16(h + 6), 0xb123);
	CHECK_EQ(h[1], 0);
	/* an L4 offset over 255: the checksum completed here, flags 0 */
	uint32_t ext = 240; /* an IPv6 hop-by-hop header of 240 bytes */
	memmove(frame + ETH + 40 + ext, frame + ETH + 40, len - ETH - 40);
	len += ext;
	uint8_t *ip6 = frame + ETH;
	w16(ip6 + 4, len - ETH - 40);
	ip6[6] = 0; /* hop-by-hop, then UDP */
	memset(ip6 + 40, 0, ext);
	ip6[40] = 17, ip6[41] = (uint8_t)(ext / 8 - 1);
	w16(ip6 + 40 + ext + 6, 0x1234); /* not a checksum */
	m = chain(pool, frame, len, NULL, 0);
	m->ol_flags = RTE_MBUF_F_TX_IPV6 | RTE_MBUF_F_TX_UDP_CKSUM;
	m->l2_len = 14, m->l3_len = 40 + ext;
	h = encap_one(m, len);
	CHECK_EQ(h[1], 0);
	CHECK_EQ(h[2], 0);
	CHECK(t_l4_ok(h + 18 + ETH, false, 17, h + 18 + ETH + 40 + ext, len - ETH - 40 - ext));
	/* and with TSO asked for, nothing to send: the caller segments first */
	m = chain(pool, frame, len, NULL, 0);
	m->ol_flags = RTE_MBUF_F_TX_IPV6 | RTE_MBUF_F_TX_TCP_SEG;
	m->l2_len = 14, m->l3_len = 40 + ext, m->l4_len = 20, m->tso_segsz = 1000;
	struct ferry_stt_encap p = params(1460);
	CHECK_EQ(ferry_stt_encap(m, &p, pool, out, MAX_OUT), -FERRY_STT_REASON_TOO_BIG);
	CHECK_EQ(rte_mempool_avail_count(pool), before);
}

static void test_tso(void)
{
	unsigned before = rte_mempool_avail_count(pool);
	uint32_t len = 64000;
	make_frame(frame, len, 12, false, false);
	uint32_t fl = stt_frame(want, 0, 0, 0, 0, frame, len);
	struct ferry_stt_encap p = params(1460);
	p.tx_offloads = RTE_ETH_TX_OFFLOAD_TCP_TSO | RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_TCP_CKSUM;
	/* inner ours (headers in its headroom) and shared (a header mbuf in front) */
	for (int k = 0; k < 2; k++) {
		struct rte_mbuf *m = chain(pool, frame, len, (const uint32_t[]){ 2048 }, 1);
		uint16_t inner_segs = m->nb_segs;
		if (k)
			rte_pktmbuf_refcnt_update(m, 1);
		CHECK_EQ(ferry_stt_encap(m, &p, pool, out, MAX_OUT), 1);
		struct rte_mbuf *o = out[0];
		CHECK(mbuf_ok(o));
		CHECK_EQ(o->ol_flags, RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_TCP_SEG);
		CHECK_EQ(o->l2_len, 14);
		CHECK_EQ(o->l3_len, 20);
		CHECK_EQ(o->l4_len, 20);
		CHECK_EQ(o->tso_segsz, 1460);
		CHECK_EQ(o->nb_segs, inner_segs + k);
		CHECK_EQ(flat(o, pkt), 72 + len);
		uint8_t *ip = pkt + ETH, *tcp = ip + 20;
		CHECK_EQ(r16(ip + 2), 40 + fl);
		CHECK_EQ(r16(ip + 4), p.ip_id);
		CHECK_EQ(r16(ip + 10), 0);                /* the NIC's */
		CHECK_EQ(r32(tcp + 4), fl << 16);         /* the NIC adds the offsets */
		CHECK_EQ(tcp[13], 0x18);
		struct rte_ipv4_hdr *iph = (void *)ip;
		CHECK_EQ(r16(tcp + 16), rte_be_to_cpu_16(rte_ipv4_phdr_cksum(iph, o->ol_flags)));
		CHECK_EQ(r16(tcp + 16), t_fold(t_phdr(ip, true, 6, 0)));
		CHECK(memcmp(tcp + 20, want, fl) == 0);
		free_out(1);
		if (k)
			rte_pktmbuf_free(m);
	}
	CHECK_EQ(rte_mempool_avail_count(pool), before);

	/* one segment: the NIC does both checksums, seeded with the length */
	struct rte_mbuf *m = chain(pool, frame, 1000, NULL, 0);
	CHECK_EQ(ferry_stt_encap(m, &p, pool, out, MAX_OUT), 1);
	CHECK_EQ(out[0]->ol_flags, RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_TCP_CKSUM);
	flat(out[0], pkt);
	CHECK_EQ(r16(pkt + ETH + 10), 0);
	CHECK_EQ(r16(pkt + 34 + 16), t_fold(t_phdr(pkt + ETH, true, 6, 20 + 18 + 1000)));
	free_out(1);

	/* the largest frame does not fit one IPv4 super-packet: cut in software */
	len = FERRY_STT_INNER_MAX;
	make_frame(frame, len, 13, false, false);
	fl = stt_frame(want, 0, 0, 0, 0, frame, len);
	p.tx_offloads = RTE_ETH_TX_OFFLOAD_TCP_TSO;
	m = chain(pool, frame, len, (const uint32_t[]){ 2048 }, 1);
	int n = ferry_stt_encap(m, &p, pool, out, MAX_OUT);
	check_segments(out, n, &p, want, fl);
	free_out(n);
	CHECK_EQ(rte_mempool_avail_count(pool), before);
}

/* ---- inner offloads on the way out ---- */

/* a frame asking for checksums with garbage in their fields */
static struct rte_mbuf *cksum_request(uint32_t len, bool v6, const uint32_t *seg, unsigned nseg)
{
	make_frame(frame, len, 14, v6, v6);
	memcpy(want, frame, len);
	if (v6)
		w16(frame + ETH + 40 + 6, 0xbeef);
	else
		w16(frame + ETH + 10, 0), w16(frame + ETH + 20 + 16, 0x1234);
	struct rte_mbuf *m = chain(pool, frame, len, seg, nseg);
	m->ol_flags = v6 ? RTE_MBUF_F_TX_IPV6 | RTE_MBUF_F_TX_UDP_CKSUM
			 : RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_TCP_CKSUM;
	m->l2_len = ETH, m->l3_len = v6 ? 40 : 20;
	return m;
}

static void test_finish_cksums(void)
{
	unsigned before = rte_mempool_avail_count(pool);
	static const uint64_t hw = RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_TCP_CKSUM | RTE_ETH_TX_OFFLOAD_UDP_CKSUM;
	for (int v6 = 0; v6 < 2; v6++) {
		uint32_t len = 1400 + (uint32_t)v6 * 11;
		/* no offloads: completed here, the requests cleared */
		struct rte_mbuf *m = cksum_request(len, v6, NULL, 0);
		CHECK_EQ(ferry_stt_finish_offloads(m, 0, pool, out, 4), 1);
		CHECK(out[0] == m);
		CHECK_EQ(m->ol_flags & TX_REQ, 0);
		CHECK_EQ(flat(m, pkt), len);
		CHECK(memcmp(pkt, want, len) == 0);
		rte_pktmbuf_free(m);
		/* the port does them: left alone */
		m = cksum_request(len, v6, NULL, 0);
		uint64_t ol = m->ol_flags;
		CHECK_EQ(ferry_stt_finish_offloads(m, hw, pool, out, 4), 1);
		CHECK(out[0] == m);
		CHECK_EQ(m->ol_flags, ol);
		flat(m, pkt);
		CHECK(memcmp(pkt, frame, len) == 0);
		rte_pktmbuf_free(m);
		/* headers split over segments, and a frame another holder shares: a new
		 * head, the original untouched */
		m = cksum_request(len, v6, (const uint32_t[]){ 21, 300 }, 2);
		CHECK_EQ(ferry_stt_finish_offloads(m, 0, pool, out, 4), 1);
		CHECK(mbuf_ok(out[0]));
		CHECK_EQ(flat(out[0], pkt), len);
		CHECK(memcmp(pkt, want, len) == 0);
		rte_pktmbuf_free(out[0]);
		m = cksum_request(len, v6, NULL, 0);
		rte_pktmbuf_refcnt_update(m, 1);
		CHECK_EQ(ferry_stt_finish_offloads(m, 0, pool, out, 4), 1);
		CHECK(out[0] != m);
		flat(out[0], pkt);
		CHECK(memcmp(pkt, want, len) == 0);
		flat(m, pkt);
		CHECK(memcmp(pkt, frame, len) == 0);
		rte_pktmbuf_free(out[0]);
		rte_pktmbuf_free(m);
	}
	/* headers the packet does not hold: dropped */
	struct rte_mbuf *m = cksum_request(60, false, NULL, 0);
	m->l3_len = 60;
	CHECK_EQ(ferry_stt_finish_offloads(m, 0, pool, out, 4), 0);
	CHECK_EQ(rte_mempool_avail_count(pool), before);
}

/* Segments of a software TSO: lengths, IDs, seq, flags, checksums, payloads. */
static void check_tso(int n, bool v6, uint32_t len, uint32_t mss, uint64_t port, uint8_t flags0)
{
	uint32_t l3 = v6 ? 40 : 20, hl = ETH + l3 + 20, payload = len - hl;
	CHECK_EQ(n, (payload + mss - 1) / mss);
	uint32_t off = 0;
	for (int i = 0; i < n; i++) {
		bool first = i == 0, last = i == n - 1;
		CHECK(mbuf_ok(out[i]));
		uint32_t plen = flat(out[i], pkt) - hl;
		CHECK_EQ(plen, last ? payload - off : mss);
		CHECK(memcmp(pkt, frame, ETH) == 0);
		uint8_t *ip = pkt + ETH, *tcp = ip + l3;
		if (v6) {
			CHECK_EQ(r16(ip + 4), 20 + plen);
		} else {
			CHECK_EQ(r16(ip + 2), 40 + plen);
			CHECK_EQ(r16(ip + 4), 7 + i);
		}
		bool hw_ip = !v6 && (port & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM), hw_l4 = port & RTE_ETH_TX_OFFLOAD_TCP_CKSUM;
		if (!v6)
			CHECK(hw_ip ? r16(ip + 10) == 0 : t_ip_ok(ip));
		CHECK_EQ(r32(tcp + 4), 1000 + off);
		CHECK_EQ(r32(tcp + 8), 2000);
		uint8_t f = flags0;
		if (!last)
			f &= (uint8_t)~(RTE_TCP_FIN_FLAG | RTE_TCP_PSH_FLAG);
		if (!first)
			f &= (uint8_t)~RTE_TCP_CWR_FLAG;
		CHECK_EQ(tcp[13], f);
		if (hw_l4)
			CHECK_EQ(r16(tcp + 16), t_fold(t_phdr(ip, !v6, 6, 20 + plen)));
		else
			CHECK(t_l4_ok(ip, !v6, 6, tcp, 20 + plen));
		CHECK_EQ(out[i]->ol_flags & RTE_MBUF_F_TX_TCP_SEG, 0);
		CHECK_EQ(out[i]->ol_flags & RTE_MBUF_F_TX_L4_MASK, hw_l4 ? RTE_MBUF_F_TX_TCP_CKSUM : 0);
		CHECK_EQ(!!(out[i]->ol_flags & RTE_MBUF_F_TX_IP_CKSUM), hw_ip);
		CHECK(memcmp(tcp + 20, frame + hl + off, plen) == 0);
		off += plen;
	}
	CHECK_EQ(off, payload);
}

static struct rte_mbuf *tso_request(uint32_t len, bool v6, uint16_t mss, const uint32_t *seg, unsigned nseg)
{
	make_frame(frame, len, 15, v6, false);
	frame[ETH + (v6 ? 40 : 20) + 13] |= RTE_TCP_PSH_FLAG | RTE_TCP_FIN_FLAG | RTE_TCP_CWR_FLAG;
	struct rte_mbuf *m = chain(pool, frame, len, seg, nseg);
	m->ol_flags = (v6 ? RTE_MBUF_F_TX_IPV6 : RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM) |
		      RTE_MBUF_F_TX_TCP_SEG | RTE_MBUF_F_TX_TCP_CKSUM;
	m->l2_len = ETH, m->l3_len = v6 ? 40 : 20, m->l4_len = 20, m->tso_segsz = mss;
	return m;
}

static void test_finish_tso(void)
{
	unsigned before = rte_mempool_avail_count(pool);
	const uint8_t flags0 = RTE_TCP_ACK_FLAG | RTE_TCP_PSH_FLAG | RTE_TCP_FIN_FLAG | RTE_TCP_CWR_FLAG;
	uint32_t len = 14 + 20 + 20 + 10000;
	struct rte_mbuf *m = tso_request(len, false, 1448, NULL, 0);
	unsigned n = ferry_stt_finish_offloads(m, 0, pool, out, MAX_OUT);
	CHECK_EQ(n, 7);
	check_tso((int)n, false, len, 1448, 0, flags0);
	free_out((int)n);
	/* the port checksums but does not segment */
	uint64_t port = RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_TCP_CKSUM;
	m = tso_request(len, false, 1448, NULL, 0);
	n = ferry_stt_finish_offloads(m, port, pool, out, MAX_OUT);
	check_tso((int)n, false, len, 1448, port, flags0);
	free_out((int)n);
	/* the port segments: left alone */
	m = tso_request(len, false, 1448, NULL, 0);
	CHECK_EQ(ferry_stt_finish_offloads(m, RTE_ETH_TX_OFFLOAD_TCP_TSO, pool, out, MAX_OUT), 1);
	CHECK(out[0] == m);
	CHECK(m->ol_flags & RTE_MBUF_F_TX_TCP_SEG);
	rte_pktmbuf_free(m);
	/* IPv6 over a chain of 2 KB mbufs, and odd cuts */
	len = 64000;
	m = tso_request(len, true, 1440, (const uint32_t[]){ 2048 }, 1);
	n = ferry_stt_finish_offloads(m, 0, pool, out, MAX_OUT);
	check_tso((int)n, true, len, 1440, 0, flags0);
	free_out((int)n);
	len = 7777;
	m = tso_request(len, false, 999, (const uint32_t[]){ 61, 1, 333, 1001 }, 4);
	n = ferry_stt_finish_offloads(m, 0, pool, out, MAX_OUT);
	check_tso((int)n, false, len, 999, 0, flags0);
	free_out((int)n);
	/* a payload within one MSS: its checksums only */
	len = 1000;
	m = tso_request(len, false, 1448, NULL, 0);
	CHECK_EQ(ferry_stt_finish_offloads(m, 0, pool, out, MAX_OUT), 1);
	CHECK(out[0] == m);
	CHECK_EQ(m->ol_flags & TX_REQ, 0);
	check_tso(1, false, len, 1448, 0, flags0);
	rte_pktmbuf_free(m);
	/* more segments than out[] holds: dropped */
	m = tso_request(14 + 20 + 20 + 10000, false, 1448, NULL, 0);
	CHECK_EQ(ferry_stt_finish_offloads(m, 0, pool, out, 6), 0);
	CHECK_EQ(rte_mempool_avail_count(pool), before);
}

int main(void)
{
	ferry_test_eal_init("stt_encap", NULL, 0);
	pool = rte_pktmbuf_pool_create("stt_test", 8191, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
	if (pool == NULL) {
		fprintf(stderr, "no mbuf pool\n");
		return 1;
	}
	RUN(test_single_segment);
	RUN(test_two_segments);
	RUN(test_64k_chain);
	RUN(test_odd_pieces);
	RUN(test_too_big);
	RUN(test_no_mbuf);
	RUN(test_flags);
	RUN(test_tso);
	RUN(test_finish_cksums);
	RUN(test_finish_tso);
	int rc = ftest_finish();
	rte_mempool_free(pool);
	rte_eal_cleanup();
	return rc;
}
