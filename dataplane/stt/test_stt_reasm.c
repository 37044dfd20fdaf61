/* The STT reassembler on segments built here (own builder and checksum, independent of
 * the encapsulator): single and multi-segment frames in and out of order, each way a
 * segment is refused (and that a refused one leaves no state), timeout, memory cap and
 * table limits, CE, VLAN and the offload flags, byte-exact output, and the mempool back
 * to where it started after every case. */
#include <string.h>
#include <rte_ip.h>
#include <rte_jhash.h>
#include <rte_mbuf.h>
#include "../common/ftest.h"
#include "../common/eal_test.h"
#include "stt.h"
#include "../common/mbuf_bytes.h"

#define ETH 14u
#define MS 1000000ull
#define SEED 0x5eed1234u
#define SRC 0x0a000001u
#define DST 0x0a000002u
#define POOL_N 4095u
#define COST (RTE_MBUF_DEFAULT_BUF_SIZE + sizeof(struct rte_mbuf))

static struct rte_mempool *pool;
static unsigned pool_start;

static uint8_t frame[70000];    /* the STT frame being cut: header + inner */
static uint8_t inner[70000];    /* the inner frame */
static uint8_t want[70000];     /* what the decapsulated frame must be */
static uint8_t got[70000];

/* ---- building ---- */

static void w16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void w32(uint8_t *p, uint32_t v) { w16(p, v >> 16); w16(p + 2, v); }


static uint32_t sum16(const uint8_t *p, uint32_t n, uint32_t s)
{
	for (uint32_t i = 0; i < n; i++)
		s += (i & 1) ? p[i] : (uint32_t)p[i] << 8;
	return s;
}

static uint16_t fold(uint32_t s)
{
	while (s > 0xffff)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

static const uint8_t macs[12] = { 0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01 };

/* Eth/IPv4 or IPv6/(TCP|UDP) with n payload bytes; tc is the TOS / traffic class;
 * the L4 checksum field is junk on purpose (PARTIAL must rewrite it) */
static uint32_t make_inner(uint8_t *b, bool v6, uint32_t n, uint8_t tc, bool tcp)
{
	uint32_t l3 = v6 ? 40 : 20, l4 = tcp ? 20 : 8;
	uint8_t *ip = b + ETH, *h = ip + l3;
	memcpy(b, macs, 12);
	w16(b + 12, v6 ? 0x86dd : 0x0800);
	memset(ip, 0, l3 + l4);
	if (v6) {
		ip[0] = (uint8_t)(0x60 | tc >> 4);
		ip[1] = (uint8_t)(tc << 4);
		w16(ip + 4, l4 + n);
		ip[6] = tcp ? 6 : 17;
		ip[7] = 64;
		ip[8] = 0xfd, ip[23] = 1;
		ip[24] = 0xfd, ip[39] = 2;
	} else {
		ip[0] = 0x45;
		ip[1] = tc;
		w16(ip + 2, 20 + l4 + n);
		ip[8] = 64;
		ip[9] = tcp ? 6 : 17;
		w32(ip + 12, 0xc0a80001);
		w32(ip + 16, 0xc0a80002);
		w16(ip + 10, ~fold(sum16(ip, 20, 0)) & 0xffff);
	}
	w16(h, 1111);
	w16(h + 2, 2222);
	if (tcp)
		h[12] = 0x50;
	else
		w16(h + 4, 8 + n);
	w16(h + (tcp ? 16 : 6), 0xdead);
	for (uint32_t i = 0; i < n; i++)
		h[l4 + i] = (uint8_t)(i * 13 + (i >> 8) + 1);
	return ETH + l3 + l4 + n;
}

struct hdr_opt {
	uint8_t version, flags, l4_offset;
	uint16_t mss, tci;
	uint64_t context;
};

/* frame[] = STT header + inner; returns the frame length */
static uint32_t make_frame(const uint8_t *in, uint32_t len, const struct hdr_opt *h)
{
	memset(frame, 0, FERRY_STT_HDR_LEN);
	frame[0] = h->version;
	frame[1] = h->flags;
	frame[2] = h->l4_offset;
	w16(frame + 4, h->mss);
	w16(frame + 6, h->tci);
	w32(frame + 8, (uint32_t)(h->context >> 32));
	w32(frame + 12, (uint32_t)h->context);
	memcpy(frame + FERRY_STT_HDR_LEN, in, len);
	return FERRY_STT_HDR_LEN + len;
}

struct seg_opt {
	uint32_t src, dst;       /* 0: SRC, DST */
	uint32_t id;
	uint32_t seq_len;        /* 0: the frame's length */
	uint8_t tos;
	uint8_t tcp_flags;       /* 0: ACK|PSH */
	uint8_t doff;            /* 0: 5 */
	uint32_t pad;            /* Ethernet padding after the IP datagram */
	bool bad_csum;           /* flip a payload byte after the checksum */
	uint32_t split;          /* bytes per mbuf (0: as many as fit) */
	uint64_t ol_flags;
};

/* One outer segment carrying frame[off, off + len) of a frame of frame_len bytes. */
static struct rte_mbuf *seg(uint32_t frame_len, uint32_t off, uint32_t len, const struct seg_opt *o)
{
	static uint8_t b[70000 + 128];
	uint32_t src = o->src ? o->src : SRC, dst = o->dst ? o->dst : DST;
	uint32_t doff = o->doff ? o->doff : 5;
	uint8_t *ip = b + ETH, *tcp = ip + 20;
	memcpy(b, macs + 6, 6);
	memcpy(b + 6, macs, 6);
	w16(b + 12, 0x0800);
	memset(ip, 0, 40);
	ip[0] = 0x45;
	ip[1] = o->tos;
	w16(ip + 2, 40 + len);
	w16(ip + 6, 0x4000);
	ip[8] = 64;
	ip[9] = 6;
	w32(ip + 12, src);
	w32(ip + 16, dst);
	w16(ip + 10, ~fold(sum16(ip, 20, 0)) & 0xffff);
	w16(tcp, 0xc123);
	w16(tcp + 2, FERRY_STT_PORT);
	w32(tcp + 4, (o->seq_len ? o->seq_len : frame_len) << 16 | off);
	w32(tcp + 8, o->id);
	tcp[12] = (uint8_t)(doff << 4);
	tcp[13] = o->tcp_flags ? o->tcp_flags : 0x18;
	w16(tcp + 14, 65535);
	memcpy(tcp + 20, frame + off, len);
	uint32_t s = sum16(ip + 12, 8, 6 + 20 + len);
	w16(tcp + 16, ~fold(sum16(tcp, 20 + len, s)) & 0xffff);
	if (o->bad_csum)
		tcp[20 + len / 2] ^= 0x40;
	uint32_t total = ETH + 40 + len;
	memset(b + total, 0xee, o->pad);
	total += o->pad;

	struct rte_mbuf *head = ferry_mbuf_from_bytes(pool, b, total, o->split);
	if (head == NULL)
		abort();
	head->ol_flags = o->ol_flags;
	return head;
}

static const struct seg_opt def;

/* ---- checking ---- */

static struct ferry_stt_reasm *mk(uint32_t max_frames, uint32_t mem_max, uint32_t timeout_ms)
{
	struct ferry_stt_reasm_config c = { .max_frames = max_frames, .mem_max = mem_max, .timeout_ms = timeout_ms,
					    .seed = SEED, .socket = SOCKET_ID_ANY, .pool = pool };
	struct ferry_stt_reasm *r = ferry_stt_reasm_create(&c);
	CHECK(r != NULL);
	return r;
}

static uint64_t ctr(const struct ferry_stt_reasm *r, enum ferry_stt_reason why)
{
	return ferry_stt_reasm_counters(r)[why];
}

static uint64_t ctr_total(const struct ferry_stt_reasm *r)
{
	uint64_t n = 0;
	for (unsigned i = 0; i < FERRY_STT_REASON_COUNT; i++)
		n += ferry_stt_reasm_counters(r)[i];
	return n;
}

static enum ferry_stt_verdict add(struct ferry_stt_reasm *r, struct rte_mbuf *m, uint64_t now, struct ferry_stt_rx *rx)
{
	return ferry_stt_reasm_add(r, m, ETH, now, rx);
}

/* rx->frame is a valid chain equal to want[0, len), its head contiguous enough; freed */
static void check_frame(struct ferry_stt_rx *rx, uint32_t len)
{
	struct rte_mbuf *m = rx->frame;
	const char *why = NULL;
	CHECK(m != NULL);
	if (m == NULL)
		return;
	CHECK(rte_mbuf_check(m, 1, &why) == 0);
	CHECK_EQ(m->pkt_len, len);
	CHECK(m->data_len >= RTE_MIN(len, FERRY_STT_HEAD_MIN));
	const uint8_t *p = rte_pktmbuf_read(m, 0, len, got);
	CHECK(p != NULL && memcmp(p, want, len) == 0);
	uint32_t sum = 0, n = 0;
	for (const struct rte_mbuf *s = m; s != NULL; s = s->next, n++)
		sum += s->data_len;
	CHECK_EQ(sum, len);
	CHECK_EQ(n, m->nb_segs);
	rte_pktmbuf_free(m);
	rx->frame = NULL;
}

static void check_pool(void)
{
	CHECK_EQ(rte_mempool_avail_count(pool), pool_start);
}

static void done(struct ferry_stt_reasm *r)
{
	ferry_stt_reasm_destroy(r);
	check_pool();
}

/* a frame of an inner v4/TCP packet with n payload bytes, plain flags */
static uint32_t plain_frame(uint32_t n, uint64_t context)
{
	uint32_t il = make_inner(inner, false, n, 0, true);
	memcpy(want, inner, il);
	return make_frame(inner, il, &(struct hdr_opt){ .context = context });
}

/* offers frame[] cut at mss in the order given; returns the last verdict */
static enum ferry_stt_verdict feed(struct ferry_stt_reasm *r, uint32_t fl, uint32_t mss, const unsigned *order,
				   unsigned n, const struct seg_opt *o, uint64_t now, struct ferry_stt_rx *rx)
{
	enum ferry_stt_verdict v = FERRY_STT_DROP;
	for (unsigned i = 0; i < n; i++) {
		uint32_t off = order[i] * mss;
		v = add(r, seg(fl, off, RTE_MIN(mss, fl - off), o), now, rx);
		if (i + 1 < n)
			CHECK_EQ(v, FERRY_STT_HELD);
	}
	return v;
}

/* ---- cases ---- */

static void test_single(void)
{
	struct ferry_stt_reasm *r = mk(0, 0, 0);
	uint32_t fl = plain_frame(100, 0x1122334455667788ull);
	struct ferry_stt_rx rx = { 0 };
	CHECK_EQ(add(r, seg(fl, 0, fl, &(struct seg_opt){ .id = 9 }), 1, &rx), FERRY_STT_DONE);
	CHECK_EQ(rx.context, 0x1122334455667788ull);
	CHECK_EQ(rx.src_ip, rte_cpu_to_be_32(SRC));
	CHECK_EQ(rx.dst_ip, rte_cpu_to_be_32(DST));
	CHECK_EQ(rx.dst_port, rte_cpu_to_be_16(FERRY_STT_PORT));
	CHECK_EQ(rx.stt_flags, 0);
	CHECK_EQ(rx.frame->ol_flags, 0);
	check_frame(&rx, fl - FERRY_STT_HDR_LEN);
	CHECK_EQ(ferry_stt_reasm_frames(r), 0);
	CHECK_EQ(ctr_total(r), 0);
	/* the smallest frame: a bare Ethernet header, padded on the wire */
	memcpy(want, macs, 12);
	w16(want + 12, 0x88b5);
	fl = make_frame(want, ETH, &(struct hdr_opt){ 0 });
	CHECK_EQ(add(r, seg(fl, 0, fl, &(struct seg_opt){ .pad = 20 }), 1, &rx), FERRY_STT_DONE);
	check_frame(&rx, ETH);
	done(r);
}

static void test_order(void)
{
	struct ferry_stt_reasm *r = mk(0, 0, 0);
	uint32_t fl = plain_frame(3000, 7);
	struct ferry_stt_rx rx = { 0 };
	static const unsigned in_order[] = { 0, 1, 2 }, order[] = { 2, 0, 1 };
	CHECK_EQ(feed(r, fl, 1200, in_order, 3, &(struct seg_opt){ .id = 1 }, 1, &rx), FERRY_STT_DONE);
	check_frame(&rx, fl - FERRY_STT_HDR_LEN);
	CHECK_EQ(ferry_stt_reasm_frames(r), 0);
	CHECK_EQ(ferry_stt_reasm_mem(r), 0);
	CHECK_EQ(add(r, seg(fl, 0, 1000, &(struct seg_opt){ .id = 2 }), 1, &rx), FERRY_STT_HELD);
	CHECK_EQ(ferry_stt_reasm_mem(r), COST);
	CHECK_EQ(add(r, seg(fl, 1000, fl - 1000, &(struct seg_opt){ .id = 2 }), 1, &rx), FERRY_STT_DONE);
	check_frame(&rx, fl - FERRY_STT_HDR_LEN);
	CHECK_EQ(feed(r, fl, 1200, order, 3, &(struct seg_opt){ .id = 2 }, 1, &rx), FERRY_STT_DONE);
	check_frame(&rx, fl - FERRY_STT_HDR_LEN);
	/* a 64 KB frame in 1448-byte segments, reversed then shuffled */
	fl = plain_frame(FERRY_STT_INNER_MAX - 54, 8);
	CHECK_EQ(fl, FERRY_STT_FRAME_MAX);
	unsigned n = (fl + 1447) / 1448, ord[64] = { 0 };
	for (unsigned i = 0; i < n; i++)
		ord[i] = n - 1 - i;
	CHECK_EQ(feed(r, fl, 1448, ord, n, &(struct seg_opt){ .id = 3 }, 1, &rx), FERRY_STT_DONE);
	check_frame(&rx, fl - FERRY_STT_HDR_LEN);
	for (unsigned i = 0; i < n; i++)
		ord[i] = (i * 17) % n; /* 17 is prime to n = 46 */
	CHECK_EQ(feed(r, fl, 1448, ord, n, &(struct seg_opt){ .id = 4 }, 1, &rx), FERRY_STT_DONE);
	check_frame(&rx, fl - FERRY_STT_HDR_LEN);
	CHECK_EQ(ctr_total(r), 0);
	CHECK_EQ(ferry_stt_reasm_mem(r), 0);
	done(r);
}

static void test_chained_segments(void)
{
	/* outer segments as chains of odd-sized mbufs (an outer datagram rebuilt from IP
	 * fragments): checksum across links, header strip across links, a head copy */
	struct ferry_stt_reasm *r = mk(0, 0, 0);
	uint32_t fl = plain_frame(2000, 7);
	struct ferry_stt_rx rx = { 0 };
	struct seg_opt o = { .id = 5, .split = 37, .pad = 3 };
	static const unsigned order[] = { 1, 0 };
	CHECK_EQ(feed(r, fl, 1100, order, 2, &o, 1, &rx), FERRY_STT_DONE);
	check_frame(&rx, fl - FERRY_STT_HDR_LEN);
	o.split = 7;
	CHECK_EQ(add(r, seg(fl, 0, fl, &o), 1, &rx), FERRY_STT_DONE);
	check_frame(&rx, fl - FERRY_STT_HDR_LEN);
	CHECK_EQ(ctr_total(r), 0);
	done(r);
}

static void test_padding(void)
{
	/* a short last segment padded to the Ethernet minimum: the IP length rules */
	struct ferry_stt_reasm *r = mk(0, 0, 0);
	uint32_t fl = plain_frame(1000, 7);
	struct ferry_stt_rx rx = { 0 };
	uint32_t cut = fl - 3;
	CHECK_EQ(add(r, seg(fl, cut, 3, &(struct seg_opt){ .id = 6, .pad = 3 }), 1, &rx), FERRY_STT_HELD);
	CHECK_EQ(add(r, seg(fl, 0, cut, &(struct seg_opt){ .id = 6, .pad = 30 }), 1, &rx), FERRY_STT_DONE);
	check_frame(&rx, fl - FERRY_STT_HDR_LEN);
	CHECK_EQ(ctr_total(r), 0);
	done(r);
}

static void test_duplicate(void)
{
	struct ferry_stt_reasm *r = mk(0, 0, 0);
	uint32_t fl = plain_frame(3000, 7);
	struct ferry_stt_rx rx = { 0 };
	struct seg_opt o = { .id = 7 };
	CHECK_EQ(add(r, seg(fl, 0, 1200, &o), 1, &rx), FERRY_STT_HELD);
	CHECK_EQ(add(r, seg(fl, 1200, 1200, &o), 1, &rx), FERRY_STT_HELD);
	CHECK_EQ(add(r, seg(fl, 1200, 1200, &o), 1, &rx), FERRY_STT_DROP);
	CHECK_EQ(add(r, seg(fl, 0, 1200, &o), 1, &rx), FERRY_STT_DROP);
	CHECK_EQ(ctr(r, FERRY_STT_REASON_OVERLAP), 2);
	CHECK_EQ(add(r, seg(fl, 2400, fl - 2400, &o), 1, &rx), FERRY_STT_DONE);
	check_frame(&rx, fl - FERRY_STT_HDR_LEN);
	CHECK_EQ(ctr_total(r), 2);
	done(r);
}

static void test_partial_overlap(void)
{
	struct ferry_stt_reasm *r = mk(0, 0, 0);
	uint32_t fl = plain_frame(3000, 7);
	struct ferry_stt_rx rx = { 0 };
	struct seg_opt o = { .id = 8 };
	CHECK_EQ(add(r, seg(fl, 1000, 1000, &o), 1, &rx), FERRY_STT_HELD);
	CHECK_EQ(add(r, seg(fl, 500, 600, &o), 1, &rx), FERRY_STT_DROP);   /* tail into the next */
	CHECK_EQ(add(r, seg(fl, 1999, 100, &o), 1, &rx), FERRY_STT_DROP);  /* head into the previous */
	CHECK_EQ(add(r, seg(fl, 1100, 10, &o), 1, &rx), FERRY_STT_DROP);   /* inside */
	CHECK_EQ(add(r, seg(fl, 900, 1200, &o), 1, &rx), FERRY_STT_DROP);  /* around */
	CHECK_EQ(ctr(r, FERRY_STT_REASON_OVERLAP), 4);
	CHECK_EQ(add(r, seg(fl, 2000, fl - 2000, &o), 1, &rx), FERRY_STT_HELD);
	CHECK_EQ(add(r, seg(fl, 0, 1000, &o), 1, &rx), FERRY_STT_DONE);
	check_frame(&rx, fl - FERRY_STT_HDR_LEN);
	done(r);
}

static void test_len_mismatch(void)
{
	struct ferry_stt_reasm *r = mk(0, 0, 0);
	uint32_t fl = plain_frame(3000, 7);
	struct ferry_stt_rx rx = { 0 };
	struct seg_opt o = { .id = 9 };
	CHECK_EQ(add(r, seg(fl, 0, 1500, &o), 1, &rx), FERRY_STT_HELD);
	CHECK_EQ(add(r, seg(fl, 1500, 100, &(struct seg_opt){ .id = 9, .seq_len = fl + 1 }), 1, &rx), FERRY_STT_DROP);
	CHECK_EQ(ctr(r, FERRY_STT_REASON_LEN_MISMATCH), 1);
	CHECK_EQ(add(r, seg(fl, 1500, fl - 1500, &o), 1, &rx), FERRY_STT_DONE);
	check_frame(&rx, fl - FERRY_STT_HDR_LEN);
	CHECK_EQ(ctr_total(r), 1);
	done(r);
}

static void test_bad_length(void)
{
	struct ferry_stt_reasm *r = mk(0, 0, 0);
	uint32_t fl = plain_frame(3000, 7);
	struct ferry_stt_rx rx = { 0 };
	struct seg_opt o = { .id = 10 };
	CHECK_EQ(add(r, seg(fl, 100, 0, &o), 1, &rx), FERRY_STT_DROP);                 /* empty */
	CHECK_EQ(add(r, seg(31, 0, 31, &(struct seg_opt){ .id = 10 }), 1, &rx), FERRY_STT_DROP); /* < 18 + 14 */
	CHECK_EQ(add(r, seg(fl, fl, 10, &o), 1, &rx), FERRY_STT_DROP);                 /* offset past the end */
	CHECK_EQ(add(r, seg(fl, fl - 10, 11, &o), 1, &rx), FERRY_STT_DROP);             /* runs past the end */
	CHECK_EQ(add(r, seg(fl, 0, 17, &o), 1, &rx), FERRY_STT_DROP);                  /* no room for the header */
	CHECK_EQ(ctr(r, FERRY_STT_REASON_BAD_LENGTH), 5);
	CHECK_EQ(ctr_total(r), 5);
	CHECK_EQ(ferry_stt_reasm_frames(r), 0);
	done(r);
}

static void test_bad_csum(void)
{
	struct ferry_stt_reasm *r = mk(0, 0, 0);
	uint32_t fl = plain_frame(3000, 7);
	struct ferry_stt_rx rx = { 0 };
	CHECK_EQ(add(r, seg(fl, 0, 1500, &(struct seg_opt){ .id = 11, .bad_csum = true }), 1, &rx), FERRY_STT_DROP);
	CHECK_EQ(add(r, seg(fl, 0, fl, &(struct seg_opt){ .id = 11, .bad_csum = true, .split = 33 }), 1, &rx),
		 FERRY_STT_DROP);
	CHECK_EQ(ctr(r, FERRY_STT_REASON_BAD_CSUM), 2);
	CHECK_EQ(ferry_stt_reasm_frames(r), 0);
	CHECK_EQ(ferry_stt_reasm_mem(r), 0);
	/* the NIC's word is taken: a "good" flag skips the software check */
	struct seg_opt good = { .id = 11, .ol_flags = RTE_MBUF_F_RX_L4_CKSUM_GOOD };
	CHECK_EQ(add(r, seg(fl, 0, 1500, &good), 1, &rx), FERRY_STT_HELD);
	good.bad_csum = true;
	CHECK_EQ(add(r, seg(fl, 1500, fl - 1500, &good), 1, &rx), FERRY_STT_DONE);
	rte_pktmbuf_free(rx.frame);
	/* a bad flag is checked in software all the same */
	CHECK_EQ(add(r, seg(fl, 0, fl, &(struct seg_opt){ .ol_flags = RTE_MBUF_F_RX_L4_CKSUM_BAD }), 1, &rx),
		 FERRY_STT_DONE);
	check_frame(&rx, fl - FERRY_STT_HDR_LEN);
	CHECK_EQ(ctr_total(r), 2);
	done(r);
}

static void test_bad_header(void)
{
	struct ferry_stt_reasm *r = mk(0, 0, 0);
	uint32_t fl = plain_frame(300, 7);
	struct ferry_stt_rx rx = { 0 };
	CHECK_EQ(add(r, seg(fl, 0, fl, &(struct seg_opt){ .tcp_flags = 0x12 }), 1, &rx), FERRY_STT_DROP); /* SYN */
	CHECK_EQ(add(r, seg(fl, 0, fl, &(struct seg_opt){ .tcp_flags = 0x11 }), 1, &rx), FERRY_STT_DROP); /* FIN */
	CHECK_EQ(add(r, seg(fl, 0, fl, &(struct seg_opt){ .tcp_flags = 0x14 }), 1, &rx), FERRY_STT_DROP); /* RST */
	CHECK_EQ(add(r, seg(fl, 0, fl, &(struct seg_opt){ .tcp_flags = 0x30 }), 1, &rx), FERRY_STT_DROP); /* URG */
	CHECK_EQ(add(r, seg(fl, 0, fl, &(struct seg_opt){ .doff = 6 }), 1, &rx), FERRY_STT_DROP);
	/* IP total length beyond the packet, then IHL < 5 */
	struct rte_mbuf *m = seg(fl, 0, fl, &def);
	rte_pktmbuf_mtod_offset(m, uint8_t *, ETH + 2)[0] += 1;
	CHECK_EQ(add(r, m, 1, &rx), FERRY_STT_DROP);
	m = seg(fl, 0, fl, &def);
	rte_pktmbuf_mtod_offset(m, uint8_t *, ETH)[0] = 0x44;
	CHECK_EQ(add(r, m, 1, &rx), FERRY_STT_DROP);
	CHECK_EQ(ctr(r, FERRY_STT_REASON_BAD_HEADER), 7);
	CHECK_EQ(ctr_total(r), 7);
	done(r);
}

static void test_bad_version(void)
{
	struct ferry_stt_reasm *r = mk(0, 0, 0);
	uint32_t il = make_inner(inner, false, 300, 0, true);
	uint32_t fl = make_frame(inner, il, &(struct hdr_opt){ .version = 1 });
	struct ferry_stt_rx rx = { 0 };
	CHECK_EQ(add(r, seg(fl, 0, fl, &def), 1, &rx), FERRY_STT_DROP);
	CHECK_EQ(add(r, seg(fl, 0, 100, &def), 1, &rx), FERRY_STT_DROP);
	CHECK_EQ(ctr(r, FERRY_STT_REASON_BAD_VERSION), 2);
	CHECK_EQ(ferry_stt_reasm_frames(r), 0);
	/* reserved flag bits are ignored */
	fl = make_frame(inner, il, &(struct hdr_opt){ .flags = 0xf0 });
	memcpy(want, inner, il);
	CHECK_EQ(add(r, seg(fl, 0, fl, &def), 1, &rx), FERRY_STT_DONE);
	check_frame(&rx, il);
	done(r);
}

static void test_bad_l4_offset(void)
{
	struct ferry_stt_reasm *r = mk(0, 0, 0);
	uint32_t il = make_inner(inner, false, 300, 0, true);
	uint8_t v4tcp = FERRY_STT_F_CSUM_PARTIAL | FERRY_STT_F_IPV4 | FERRY_STT_F_TCP;
	struct ferry_stt_rx rx = { 0 };
	uint32_t fl = make_frame(inner, il, &(struct hdr_opt){ .flags = v4tcp, .l4_offset = 33 });
	CHECK_EQ(add(r, seg(fl, 0, fl, &def), 1, &rx), FERRY_STT_DROP);
	/* IPv6 needs 14 + 40 */
	fl = make_frame(inner, il, &(struct hdr_opt){ .flags = FERRY_STT_F_CSUM_PARTIAL | FERRY_STT_F_TCP, .l4_offset = 53 });
	CHECK_EQ(add(r, seg(fl, 0, 200, &def), 1, &rx), FERRY_STT_DROP);
	/* the L4 header past the inner frame */
	il = make_inner(inner, false, 0, 0, false);
	fl = make_frame(inner, 40, &(struct hdr_opt){ .flags = FERRY_STT_F_CSUM_PARTIAL | FERRY_STT_F_IPV4, .l4_offset = 34 });
	CHECK_EQ(add(r, seg(fl, 0, fl, &def), 1, &rx), FERRY_STT_DROP);
	CHECK_EQ(ctr(r, FERRY_STT_REASON_BAD_L4_OFFSET), 3);
	/* flags say IPv4 but the frame is IPv6: found when the frame is whole */
	il = make_inner(inner, true, 100, 0, true);
	fl = make_frame(inner, il, &(struct hdr_opt){ .flags = v4tcp, .l4_offset = 54 });
	CHECK_EQ(add(r, seg(fl, 0, fl, &def), 1, &rx), FERRY_STT_DROP);
	CHECK_EQ(ctr(r, FERRY_STT_REASON_BAD_INNER), 1);
	CHECK_EQ(ctr_total(r), 4);
	done(r);
}

static void test_timeout(void)
{
	struct ferry_stt_reasm *r = mk(0, 0, 50);
	uint32_t fl = plain_frame(3000, 7);
	struct ferry_stt_rx rx = { 0 };
	struct seg_opt o = { .id = 12 };
	uint64_t t0 = 1000 * MS;
	CHECK_EQ(add(r, seg(fl, 0, 1000, &o), t0, &rx), FERRY_STT_HELD);
	CHECK_EQ(add(r, seg(fl, 2000, fl - 2000, &o), t0 + 40 * MS, &rx), FERRY_STT_HELD);
	ferry_stt_reasm_expire(r, t0 + 50 * MS); /* not refreshed by the second, not yet past */
	CHECK_EQ(ferry_stt_reasm_frames(r), 1);
	ferry_stt_reasm_expire(r, t0 + 51 * MS);
	CHECK_EQ(ctr(r, FERRY_STT_REASON_TIMEOUT), 1);
	CHECK_EQ(ferry_stt_reasm_frames(r), 0);
	CHECK_EQ(ferry_stt_reasm_mem(r), 0);
	check_pool();
	/* an add that meets a stale frame under its key starts over */
	CHECK_EQ(add(r, seg(fl, 0, 1000, &o), t0, &rx), FERRY_STT_HELD);
	CHECK_EQ(add(r, seg(fl, 1000, 1000, &o), t0 + 60 * MS, &rx), FERRY_STT_HELD);
	CHECK_EQ(ctr(r, FERRY_STT_REASON_TIMEOUT), 2);
	CHECK_EQ(ferry_stt_reasm_frames(r), 1);
	CHECK_EQ(add(r, seg(fl, 2000, fl - 2000, &o), t0 + 61 * MS, &rx), FERRY_STT_HELD);
	CHECK_EQ(add(r, seg(fl, 0, 1000, &o), t0 + 62 * MS, &rx), FERRY_STT_DONE);
	check_frame(&rx, fl - FERRY_STT_HDR_LEN);
	/* limits change for the next segment */
	ferry_stt_reasm_set_limits(r, 10, 0);
	CHECK_EQ(add(r, seg(fl, 0, 1000, &o), t0, &rx), FERRY_STT_HELD);
	ferry_stt_reasm_expire(r, t0 + 11 * MS);
	CHECK_EQ(ctr(r, FERRY_STT_REASON_TIMEOUT), 3);
	CHECK_EQ(ctr_total(r), 3);
	done(r);
}

static void test_mem_cap(void)
{
	/* room for three mbufs: frame A holds two, B's second segment evicts A */
	struct ferry_stt_reasm *r = mk(0, 3 * COST, 0);
	uint32_t fl = plain_frame(3000, 7);
	struct ferry_stt_rx rx = { 0 };
	struct seg_opt a = { .id = 20 }, b = { .id = 21 };
	CHECK_EQ(add(r, seg(fl, 0, 1000, &a), 1, &rx), FERRY_STT_HELD);
	CHECK_EQ(add(r, seg(fl, 1000, 1000, &a), 2, &rx), FERRY_STT_HELD);
	CHECK_EQ(ferry_stt_reasm_mem(r), 2 * COST);
	CHECK_EQ(add(r, seg(fl, 0, 1000, &b), 3, &rx), FERRY_STT_HELD);
	CHECK_EQ(ctr(r, FERRY_STT_REASON_EVICTED), 0);
	CHECK_EQ(add(r, seg(fl, 1000, 1000, &b), 4, &rx), FERRY_STT_HELD);
	CHECK_EQ(ctr(r, FERRY_STT_REASON_EVICTED), 1);
	CHECK_EQ(ferry_stt_reasm_frames(r), 1);
	CHECK_EQ(add(r, seg(fl, 2000, fl - 2000, &b), 5, &rx), FERRY_STT_DONE);
	check_frame(&rx, fl - FERRY_STT_HDR_LEN);
	/* a frame bigger than the cap on its own goes, with the segment that showed it */
	ferry_stt_reasm_set_limits(r, 0, COST);
	CHECK_EQ(add(r, seg(fl, 0, 1000, &a), 6, &rx), FERRY_STT_HELD);
	CHECK_EQ(add(r, seg(fl, 1000, 1000, &a), 7, &rx), FERRY_STT_DROP);
	CHECK_EQ(ctr(r, FERRY_STT_REASON_EVICTED), 2);
	CHECK_EQ(ferry_stt_reasm_frames(r), 0);
	CHECK_EQ(ferry_stt_reasm_mem(r), 0);
	/* a first segment bigger than the cap, nothing else held */
	ferry_stt_reasm_set_limits(r, 0, COST - 1);
	CHECK_EQ(add(r, seg(fl, 0, 1000, &a), 8, &rx), FERRY_STT_DROP);
	CHECK_EQ(ctr(r, FERRY_STT_REASON_EVICTED), 3);
	/* a single-segment frame is never held, so never counted against the cap */
	CHECK_EQ(add(r, seg(fl, 0, fl, &(struct seg_opt){ .split = 100 }), 8, &rx), FERRY_STT_DONE);
	check_frame(&rx, fl - FERRY_STT_HDR_LEN);
	CHECK_EQ(ctr_total(r), 3);
	done(r);
}

static void test_table_full(void)
{
	struct ferry_stt_reasm *r = mk(2, 0, 0);
	uint32_t fl = plain_frame(3000, 7);
	struct ferry_stt_rx rx = { 0 };
	struct seg_opt a = { .id = 30 }, b = { .id = 31 }, c = { .id = 32 };
	CHECK_EQ(add(r, seg(fl, 0, 1000, &a), 1, &rx), FERRY_STT_HELD);
	CHECK_EQ(add(r, seg(fl, 0, 1000, &b), 2, &rx), FERRY_STT_HELD);
	CHECK_EQ(add(r, seg(fl, 1000, 1000, &a), 3, &rx), FERRY_STT_HELD); /* A is now the newer */
	CHECK_EQ(add(r, seg(fl, 0, 1000, &c), 4, &rx), FERRY_STT_HELD);
	CHECK_EQ(ctr(r, FERRY_STT_REASON_EVICTED), 1);
	CHECK_EQ(ferry_stt_reasm_frames(r), 2);
	CHECK_EQ(add(r, seg(fl, 2000, fl - 2000, &a), 5, &rx), FERRY_STT_DONE);
	check_frame(&rx, fl - FERRY_STT_HDR_LEN);
	CHECK_EQ(add(r, seg(fl, 1000, fl - 1000, &c), 6, &rx), FERRY_STT_DONE);
	check_frame(&rx, fl - FERRY_STT_HDR_LEN);
	/* B's rest starts a new frame that cannot complete: destroy frees it */
	CHECK_EQ(add(r, seg(fl, 1000, 1000, &b), 7, &rx), FERRY_STT_HELD);
	CHECK_EQ(ctr_total(r), 1);
	done(r);
}

static void test_bucket_full(void)
{
	/* nine packet ids whose keyed hashes share their low 16 bits share a bucket in
	 * any table of up to 65536 buckets: the ninth evicts the least recently touched */
	struct ferry_stt_reasm *r = mk(64, 0, 0);
	uint32_t ids[9], n = 0;
	uint32_t target = rte_jhash_3words(rte_cpu_to_be_32(SRC), rte_cpu_to_be_32(DST), 0, SEED) & 0xffff;
	for (uint32_t id = 0; n < 9; id++)
		if ((rte_jhash_3words(rte_cpu_to_be_32(SRC), rte_cpu_to_be_32(DST), id, SEED) & 0xffff) == target)
			ids[n++] = id;
	uint32_t fl = plain_frame(3000, 7);
	struct ferry_stt_rx rx = { 0 };
	for (unsigned i = 0; i < 8; i++)
		CHECK_EQ(add(r, seg(fl, 0, 1000, &(struct seg_opt){ .id = ids[i] }), 1 + i, &rx), FERRY_STT_HELD);
	CHECK_EQ(add(r, seg(fl, 1000, 1000, &(struct seg_opt){ .id = ids[0] }), 10, &rx), FERRY_STT_HELD);
	CHECK_EQ(ctr(r, FERRY_STT_REASON_EVICTED), 0);
	CHECK_EQ(add(r, seg(fl, 0, 1000, &(struct seg_opt){ .id = ids[8] }), 11, &rx), FERRY_STT_HELD);
	CHECK_EQ(ctr(r, FERRY_STT_REASON_EVICTED), 1);
	CHECK_EQ(ferry_stt_reasm_frames(r), 8);
	/* ids[1] was the least recently touched; ids[0] survives */
	CHECK_EQ(add(r, seg(fl, 2000, fl - 2000, &(struct seg_opt){ .id = ids[0] }), 12, &rx), FERRY_STT_DONE);
	check_frame(&rx, fl - FERRY_STT_HDR_LEN);
	CHECK_EQ(add(r, seg(fl, 1000, fl - 1000, &(struct seg_opt){ .id = ids[1] }), 13, &rx), FERRY_STT_HELD);
	done(r);
}

static void test_two_senders(void)
{
	struct ferry_stt_reasm *r = mk(0, 0, 0);
	static uint8_t frame2[70000], want2[70000];
	uint32_t fl2 = plain_frame(2500, 2);
	memcpy(frame2, frame, fl2);
	memcpy(want2, want, fl2);
	uint32_t fl = plain_frame(2500, 1);
	frame[FERRY_STT_HDR_LEN + 100] ^= 0xff; /* different bytes, same lengths */
	want[100] ^= 0xff;
	struct seg_opt a = { .id = 40, .src = 0x0a000001 }, b = { .id = 40, .src = 0x0a000009 };
	struct ferry_stt_rx rx = { 0 };
	static uint8_t save[70000];
	memcpy(save, frame, fl);
	CHECK_EQ(add(r, seg(fl, 0, 1000, &a), 1, &rx), FERRY_STT_HELD);
	memcpy(frame, frame2, fl2);
	CHECK_EQ(add(r, seg(fl2, 1000, 1000, &b), 1, &rx), FERRY_STT_HELD);
	CHECK_EQ(add(r, seg(fl2, 0, 1000, &b), 1, &rx), FERRY_STT_HELD);
	memcpy(frame, save, fl);
	CHECK_EQ(add(r, seg(fl, 1000, fl - 1000, &a), 1, &rx), FERRY_STT_DONE);
	CHECK_EQ(rx.src_ip, rte_cpu_to_be_32(0x0a000001));
	CHECK_EQ(rx.context, 1);
	check_frame(&rx, fl - FERRY_STT_HDR_LEN);
	memcpy(frame, frame2, fl2);
	memcpy(want, want2, fl2);
	CHECK_EQ(add(r, seg(fl2, 2000, fl2 - 2000, &b), 1, &rx), FERRY_STT_DONE);
	CHECK_EQ(rx.src_ip, rte_cpu_to_be_32(0x0a000009));
	CHECK_EQ(rx.context, 2);
	check_frame(&rx, fl2 - FERRY_STT_HDR_LEN);
	CHECK_EQ(ctr_total(r), 0);
	done(r);
}

static bool ipv4_csum_ok(const uint8_t *ip)
{
	return fold(sum16(ip, 20, 0)) == 0xffff;
}

static void test_ce(void)
{
	struct ferry_stt_reasm *r = mk(0, 0, 0);
	struct ferry_stt_rx rx = { 0 };
	/* ECT(0) inner, CE on the middle segment's outer header */
	uint32_t il = make_inner(inner, false, 3000, 0x02, true);
	uint32_t fl = make_frame(inner, il, &(struct hdr_opt){ 0 });
	memcpy(want, inner, il);
	want[ETH + 1] = 0x03;
	w16(want + ETH + 10, 0);
	w16(want + ETH + 10, ~fold(sum16(want + ETH, 20, 0)) & 0xffff);
	struct seg_opt o = { .id = 50, .tos = 0x02 }, ce = { .id = 50, .tos = 0x03 };
	CHECK_EQ(add(r, seg(fl, 0, 1000, &o), 1, &rx), FERRY_STT_HELD);
	CHECK_EQ(add(r, seg(fl, 1000, 1000, &ce), 1, &rx), FERRY_STT_HELD);
	CHECK_EQ(add(r, seg(fl, 2000, fl - 2000, &o), 1, &rx), FERRY_STT_DONE);
	CHECK(ipv4_csum_ok(rte_pktmbuf_mtod_offset(rx.frame, uint8_t *, ETH)));
	check_frame(&rx, il);
	/* Not-ECT inner: left alone */
	il = make_inner(inner, false, 300, 0x00, true);
	fl = make_frame(inner, il, &(struct hdr_opt){ 0 });
	memcpy(want, inner, il);
	CHECK_EQ(add(r, seg(fl, 0, fl, &ce), 1, &rx), FERRY_STT_DONE);
	check_frame(&rx, il);
	/* ECT(1) IPv6 inner; and ECT outer (not CE) changes nothing */
	il = make_inner(inner, true, 300, 0x01 | 0xb8, false);
	fl = make_frame(inner, il, &(struct hdr_opt){ 0 });
	memcpy(want, inner, il);
	CHECK_EQ(add(r, seg(fl, 0, fl, &o), 1, &rx), FERRY_STT_DONE);
	check_frame(&rx, il);
	want[ETH + 1] |= 0x30;
	CHECK_EQ(add(r, seg(fl, 0, fl, &ce), 1, &rx), FERRY_STT_DONE);
	check_frame(&rx, il);
	done(r);
}

static void test_vlan(void)
{
	struct ferry_stt_reasm *r = mk(0, 0, 0);
	struct ferry_stt_rx rx = { 0 };
	uint32_t il = make_inner(inner, false, 2000, 0, true);
	uint32_t fl = make_frame(inner, il, &(struct hdr_opt){ .tci = 0xa000 | FERRY_STT_VLAN_PRESENT | 0x123 });
	memcpy(want, inner, 12);
	w16(want + 12, 0x8100);
	w16(want + 14, 0xa123);
	memcpy(want + 16, inner + 12, il - 12);
	static const unsigned order[] = { 1, 0 };
	CHECK_EQ(feed(r, fl, 1200, order, 2, &(struct seg_opt){ .id = 60 }, 1, &rx), FERRY_STT_DONE);
	CHECK_EQ(rx.frame->vlan_tci, 0);
	check_frame(&rx, il + 4);
	/* without the V bit the field means nothing */
	fl = make_frame(inner, il, &(struct hdr_opt){ .tci = 0x0123 });
	memcpy(want, inner, il);
	CHECK_EQ(add(r, seg(fl, 0, fl, &def), 1, &rx), FERRY_STT_DONE);
	check_frame(&rx, il);
	done(r);
}

static void test_offloads(void)
{
	struct ferry_stt_reasm *r = mk(0, 0, 0);
	struct ferry_stt_rx rx = { 0 };
	uint8_t v4tcp = FERRY_STT_F_CSUM_PARTIAL | FERRY_STT_F_IPV4 | FERRY_STT_F_TCP;

	/* IPv4/TCP with TSO: cut over segments whose first is shorter than the headers */
	uint32_t il = make_inner(inner, false, 5000, 0, true);
	uint32_t fl = make_frame(inner, il, &(struct hdr_opt){ .flags = v4tcp, .l4_offset = 34, .mss = 1400 });
	uint64_t ol = RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_TCP_CKSUM | RTE_MBUF_F_TX_TCP_SEG;
	memcpy(want, inner, il);
	w16(want + ETH + 20 + 16, rte_ipv4_phdr_cksum((const struct rte_ipv4_hdr *)(want + ETH), ol));
	struct seg_opt o = { .id = 70 };
	CHECK_EQ(add(r, seg(fl, 40, fl - 40, &o), 1, &rx), FERRY_STT_HELD);
	CHECK_EQ(add(r, seg(fl, 0, 40, &o), 1, &rx), FERRY_STT_DONE);
	CHECK_EQ(rx.stt_flags, v4tcp);
	CHECK_EQ(rx.frame->ol_flags, ol);
	CHECK_EQ(rx.frame->l2_len, 14);
	CHECK_EQ(rx.frame->l3_len, 20);
	CHECK_EQ(rx.frame->l4_len, 20);
	CHECK_EQ(rx.frame->tso_segsz, 1400);
	CHECK_EQ(rte_validate_tx_offload(rx.frame), 0);
	check_frame(&rx, il);

	/* IPv6/UDP, no segmentation: the sum includes the length */
	il = make_inner(inner, true, 700, 0, false);
	fl = make_frame(inner, il, &(struct hdr_opt){ .flags = FERRY_STT_F_CSUM_PARTIAL, .l4_offset = 54, .mss = 1400 });
	memcpy(want, inner, il);
	w16(want + ETH + 40 + 6, rte_ipv6_phdr_cksum((const struct rte_ipv6_hdr *)(want + ETH), 0));
	CHECK_EQ(add(r, seg(fl, 0, fl, &def), 1, &rx), FERRY_STT_DONE);
	CHECK_EQ(rx.frame->ol_flags, RTE_MBUF_F_TX_IPV6 | RTE_MBUF_F_TX_UDP_CKSUM);
	CHECK_EQ(rx.frame->l2_len, 14);
	CHECK_EQ(rx.frame->l3_len, 40);
	CHECK_EQ(rx.frame->l4_len, 8);
	CHECK_EQ(rte_validate_tx_offload(rx.frame), 0);
	check_frame(&rx, il);

	/* IPv4/TCP with a VLAN tag put in: l2_len grows, l4_offset still counts without it */
	il = make_inner(inner, false, 500, 0, true);
	fl = make_frame(inner, il, &(struct hdr_opt){ .flags = v4tcp, .l4_offset = 34, .tci = 0x1007 });
	ol = RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_TCP_CKSUM;
	memcpy(want, inner, 12);
	w16(want + 12, 0x8100);
	w16(want + 14, 0x0007);
	memcpy(want + 16, inner + 12, il - 12);
	w16(want + 18 + 20 + 16, rte_ipv4_phdr_cksum((const struct rte_ipv4_hdr *)(want + 18), ol));
	CHECK_EQ(add(r, seg(fl, 0, fl, &def), 1, &rx), FERRY_STT_DONE);
	CHECK_EQ(rx.frame->ol_flags, ol);
	CHECK_EQ(rx.frame->l2_len, 18);
	CHECK_EQ(rx.frame->l3_len, 20);
	check_frame(&rx, il + 4);

	/* verified: the inner checksum is good, the bytes untouched */
	il = make_inner(inner, false, 500, 0, true);
	fl = make_frame(inner, il, &(struct hdr_opt){ .flags = FERRY_STT_F_CSUM_VERIFIED });
	memcpy(want, inner, il);
	CHECK_EQ(add(r, seg(fl, 0, fl, &(struct seg_opt){ .ol_flags = RTE_MBUF_F_RX_L4_CKSUM_GOOD |
									  RTE_MBUF_F_RX_RSS_HASH }),
		     1, &rx), FERRY_STT_DONE);
	CHECK_EQ(rx.frame->ol_flags, RTE_MBUF_F_RX_L4_CKSUM_GOOD);
	check_frame(&rx, il);
	CHECK_EQ(ctr_total(r), 0);
	done(r);
}

static void test_shared_head(void)
{
	/* a cloned segment (its buffer shared) is not written into: the head is copied */
	struct ferry_stt_reasm *r = mk(0, 0, 0);
	struct ferry_stt_rx rx = { 0 };
	uint32_t il = make_inner(inner, false, 500, 0, true);
	uint32_t fl = make_frame(inner, il, &(struct hdr_opt){ .tci = 0x1005 });
	struct rte_mbuf *orig = seg(fl, 0, fl, &def);
	static uint8_t before[2048];
	memcpy(before, rte_pktmbuf_mtod(orig, uint8_t *), orig->data_len);
	struct rte_mbuf *clone = rte_pktmbuf_clone(orig, pool);
	CHECK(clone != NULL);
	CHECK_EQ(add(r, clone, 1, &rx), FERRY_STT_DONE);
	memcpy(want, inner, 12);
	w16(want + 12, 0x8100);
	w16(want + 14, 0x0005);
	memcpy(want + 16, inner + 12, il - 12);
	check_frame(&rx, il + 4);
	CHECK(memcmp(before, rte_pktmbuf_mtod(orig, uint8_t *), orig->data_len) == 0);
	rte_pktmbuf_free(orig);
	done(r);
}

static void test_destroy_held(void)
{
	struct ferry_stt_reasm *r = mk(0, 0, 0);
	uint32_t fl = plain_frame(3000, 7);
	struct ferry_stt_rx rx = { 0 };
	for (uint32_t id = 0; id < 50; id++) {
		CHECK_EQ(add(r, seg(fl, 0, 1000, &(struct seg_opt){ .id = id, .split = 300 }), 1, &rx), FERRY_STT_HELD);
		CHECK_EQ(add(r, seg(fl, 2000, 500, &(struct seg_opt){ .id = id }), 1, &rx), FERRY_STT_HELD);
	}
	CHECK_EQ(ferry_stt_reasm_frames(r), 50);
	CHECK_EQ(ferry_stt_reasm_mem(r), 50 * 5 * COST);
	ferry_stt_reasm_destroy(r);
	ferry_stt_reasm_destroy(NULL);
	check_pool();
}

int main(void)
{
	ferry_test_eal_init("stt_reasm", NULL, 0);
	pool = rte_pktmbuf_pool_create("stt_reasm_test", POOL_N, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
	if (pool == NULL) {
		fprintf(stderr, "no mempool\n");
		return 1;
	}
	pool_start = rte_mempool_avail_count(pool);
	RUN(test_single);
	RUN(test_order);
	RUN(test_chained_segments);
	RUN(test_padding);
	RUN(test_duplicate);
	RUN(test_partial_overlap);
	RUN(test_len_mismatch);
	RUN(test_bad_length);
	RUN(test_bad_csum);
	RUN(test_bad_header);
	RUN(test_bad_version);
	RUN(test_bad_l4_offset);
	RUN(test_timeout);
	RUN(test_mem_cap);
	RUN(test_table_full);
	RUN(test_bucket_full);
	RUN(test_two_senders);
	RUN(test_ce);
	RUN(test_vlan);
	RUN(test_offloads);
	RUN(test_shared_head);
	RUN(test_destroy_held);
	int rc = ftest_finish();
	rte_mempool_free(pool);
	rte_eal_cleanup();
	return rc;
}
