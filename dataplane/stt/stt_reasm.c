/* STT decapsulation: per-worker reassembly of STT frames from their outer segments
 * (see stt.h and shared/research/stt.md §1.4, §2.3, §5).
 *
 * One instance per worker, no locks. Everything is allocated at create:
 *  - frames[max_frames]: the frames being reassembled, free ones on a LIFO stack;
 *  - buckets of STT_WAYS ways (twice as many ways as frames) indexed by a keyed hash
 *    of (outer source, outer destination, packet id);
 *  - two intrusive lists over the live frames: lru (least recently touched first, for
 *    the memory cap and a full table) and age (oldest first segment first, for the
 *    timeout, which the first segment starts and later ones never refresh).
 *
 * A frame holds the received mbufs themselves, never a buffer of frame_len: each
 * accepted segment is cut down to its STT bytes (outer headers, padding and empty
 * mbufs dropped) and spliced into one offset-sorted mbuf chain. The first mbuf of each
 * segment in that chain records the segment's offset and length in its hash field,
 * which nothing reads while we hold it; walking the chain by those lengths finds the
 * segment boundaries, and in-order arrival appends at the tail without a walk.
 *
 * Every refused segment is freed and counted once under its reason; a frame dropped
 * whole (timeout, eviction) counts once. */
#include <string.h>
#include <sys/queue.h>
#include <rte_branch_prediction.h>
#include <rte_common.h>
#include <rte_ip.h>
#include <rte_jhash.h>
#include <rte_malloc.h>
#include <rte_tcp.h>
#include "stt.h"

#define STT_WAYS 8u                    /* ways per bucket: 64 bytes, one cache line */
#define STT_MAX_FRAMES (1u << 20)      /* sanity bound on max_frames */
#define NS_PER_MS 1000000ull

#define IPV4_MIN_HLEN 20u
#define IPV6_HLEN 40u
#define TCP_HLEN 20u
#define UDP_HLEN 8u
#define VLAN_TAG_LEN 4u
#define TCP_CKSUM_OFF 16u              /* of the checksum field in the TCP header */
#define UDP_CKSUM_OFF 6u
#define ECN_MASK 0x03u
#define ECN_CE 0x03u
#define IPV6_ECN_SHIFT 4               /* the ECN bits in the second byte of an IPv6 header */
/* flags that no STT segment carries (stt.md §5.6): a sender that sets them is not STT */
#define STT_BAD_TCP_FLAGS (RTE_TCP_SYN_FLAG | RTE_TCP_RST_FLAG | RTE_TCP_FIN_FLAG | RTE_TCP_URG_FLAG)
/* the smallest STT frame: the STT header and an inner Ethernet header */
#define STT_FRAME_MIN (FERRY_STT_HDR_LEN + RTE_ETHER_HDR_LEN)
/* a frame's mbufs must fit one chain, with one more for a fresh head */
#define STT_MAX_HELD_MBUFS (RTE_MBUF_MAX_NB_SEGS - 1u)

/* where a held segment records its place in the frame: the first mbuf of each segment's
 * hash field, meaningless once the rx path is done with it */
#define SEG_OFF(m) ((m)->hash.fdir.lo)
#define SEG_LEN(m) ((m)->hash.fdir.hi)

struct stt_frame {
	TAILQ_ENTRY(stt_frame) lru;    /* least recently touched first */
	TAILQ_ENTRY(stt_frame) age;    /* oldest first segment first */
	struct rte_mbuf *head;         /* first mbuf of the lowest-offset segment */
	struct rte_mbuf *tail;         /* last mbuf of the highest-offset segment */
	uint64_t first_ns;             /* arrival of the first segment: the timeout's start */
	uint64_t touch;                /* r->touch at the last accepted segment (bucket LRU) */
	rte_be32_t src_ip, dst_ip;     /* key */
	uint32_t packet_id;            /* key: the ack field, host order */
	uint32_t sig;                  /* the key's hash */
	uint32_t mem;                  /* buf_len + sizeof(rte_mbuf) of every held mbuf */
	uint32_t nb_mbufs;
	uint32_t frame_len;            /* STT frame length, the same in every segment */
	uint32_t rcvd;                 /* bytes held; segments never overlap */
	uint32_t tail_end;             /* offset just past the highest-offset segment */
	rte_be16_t dst_port;           /* of the offset-0 segment */
	bool ce;                       /* some segment's outer IP header carried CE */
	struct ferry_stt_hdr hdr;
};

struct stt_bucket {
	uint32_t sig[STT_WAYS];
	uint32_t slot[STT_WAYS];       /* frame index + 1; 0 when the way is free */
} __rte_cache_aligned;

TAILQ_HEAD(stt_frame_list, stt_frame);

struct ferry_stt_reasm {
	struct stt_bucket *buckets;
	uint32_t bucket_mask;
	uint32_t max_frames;
	struct stt_frame *frames;
	uint32_t *free_stack;          /* indices of free frames */
	uint32_t n_free;
	struct stt_frame_list lru;
	struct stt_frame_list age;
	uint64_t mem;                  /* sum of the frames' mem */
	uint64_t mem_max;
	uint64_t timeout_ns;
	uint64_t touch;                /* counts accepted segments: recency for the buckets */
	uint32_t seed;
	struct rte_mempool *pool;
	uint64_t counters[FERRY_STT_REASONS];
};

/* What one segment says, from its headers; valid once stt_parse accepted it. */
struct stt_seg {
	rte_be32_t src_ip, dst_ip;
	uint32_t packet_id;
	uint32_t stt_off;              /* where the STT bytes start in m */
	uint32_t frame_len;
	uint32_t off;                  /* of this segment's bytes in the STT frame */
	uint32_t len;
	rte_be16_t dst_port;
	bool ce;
	struct ferry_stt_hdr hdr;      /* off == 0 only */
};

static inline uint32_t
mbuf_cost(const struct rte_mbuf *m)
{
	return (uint32_t)m->buf_len + (uint32_t)sizeof(struct rte_mbuf);
}

static inline enum ferry_stt_verdict
drop_seg(struct ferry_stt_reasm *r, struct rte_mbuf *m, enum ferry_stt_reason why)
{
	r->counters[why]++;
	rte_pktmbuf_free(m);
	return FERRY_STT_DROP;
}

/* Frees a chain whose links may cross segments with stale nb_segs: one mbuf at a time. */
static void
free_links(struct rte_mbuf *m)
{
	while (m != NULL) {
		struct rte_mbuf *next = m->next;
		rte_pktmbuf_free_seg(m);
		m = next;
	}
}

/* ---- per-segment checks: no reassembly state is touched ---- */

static enum ferry_stt_reason
stt_check_hdr(const struct ferry_stt_hdr *h, uint32_t frame_len)
{
	if (unlikely(h->version != FERRY_STT_VERSION))
		return FERRY_STT_REASON_BAD_VERSION;
	/* reserved flag bits are ignored, as OVS does */
	if (h->flags & FERRY_STT_F_CSUM_PARTIAL) {
		uint32_t inner_len = frame_len - FERRY_STT_HDR_LEN;
		uint32_t l3_min = (h->flags & FERRY_STT_F_IPV4) ? IPV4_MIN_HLEN : IPV6_HLEN;
		uint32_t l4_hdr = (h->flags & FERRY_STT_F_TCP) ? TCP_HLEN : UDP_HLEN;
		if (h->l4_offset < RTE_ETHER_HDR_LEN + l3_min || h->l4_offset + l4_hdr > inner_len)
			return FERRY_STT_REASON_BAD_L4_OFFSET;
	}
	return FERRY_STT_REASONS; /* fine */
}

/* Checks one outer segment; FERRY_STT_REASONS when it is acceptable. */
static enum ferry_stt_reason
stt_parse(struct rte_mbuf *m, uint16_t l3_off, struct stt_seg *s)
{
	struct rte_ipv4_hdr ip_copy;
	struct rte_tcp_hdr tcp_copy;
	uint32_t pkt_len = rte_pktmbuf_pkt_len(m);

	if (unlikely((uint32_t)l3_off + IPV4_MIN_HLEN > pkt_len))
		return FERRY_STT_REASON_BAD_HEADER;
	const struct rte_ipv4_hdr *ip = rte_pktmbuf_read(m, l3_off, sizeof(ip_copy), &ip_copy);
	uint32_t ihl = (uint32_t)(ip->version_ihl & RTE_IPV4_HDR_IHL_MASK) * RTE_IPV4_IHL_MULTIPLIER;
	uint32_t tot_len = rte_be_to_cpu_16(ip->total_length);
	/* the IP total length, not pkt_len, bounds the segment: pkt_len includes Ethernet padding */
	if (unlikely((ip->version_ihl >> 4) != 4 || ihl < IPV4_MIN_HLEN || tot_len < ihl + TCP_HLEN ||
		     (uint32_t)l3_off + tot_len > pkt_len))
		return FERRY_STT_REASON_BAD_HEADER;

	/* the only integrity check a segment has: before anything trusts its fields */
	if ((m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK) != RTE_MBUF_F_RX_L4_CKSUM_GOOD) {
		/* ferry_stt_cksum_chain: several times rte_raw_cksum's speed, and unlike
		 * DPDK 22.11's rte_raw_cksum_mbuf right across links of odd length;
		 * rte_ipv4_phdr_cksum takes the L4 length from total_length - ihl */
		struct ferry_stt_cursor c = { m, l3_off + ihl };
		uint64_t sum = (uint64_t)ferry_stt_cksum_chain(&c, tot_len - ihl) + rte_ipv4_phdr_cksum(ip, 0);
		if (unlikely(ferry_stt_cksum_fold(sum) != 0xffff))
			return FERRY_STT_REASON_BAD_CSUM;
	}

	const struct rte_tcp_hdr *tcp = rte_pktmbuf_read(m, l3_off + ihl, sizeof(tcp_copy), &tcp_copy);
	/* OVS ignored data offset and misparsed options; STT has none */
	if (unlikely((tcp->data_off >> 4) != TCP_HLEN / 4 || (tcp->tcp_flags & STT_BAD_TCP_FLAGS) != 0))
		return FERRY_STT_REASON_BAD_HEADER;

	uint32_t seq = rte_be_to_cpu_32(tcp->sent_seq);
	s->frame_len = seq >> FERRY_STT_SEQ_LEN_SHIFT;
	s->off = seq & 0xffffu;
	s->len = tot_len - ihl - TCP_HLEN;
	if (unlikely(s->len == 0 || s->frame_len < STT_FRAME_MIN || s->off >= s->frame_len ||
		     s->off + s->len > s->frame_len))
		return FERRY_STT_REASON_BAD_LENGTH;

	s->src_ip = ip->src_addr;
	s->dst_ip = ip->dst_addr;
	s->packet_id = rte_be_to_cpu_32(tcp->recv_ack);
	s->dst_port = tcp->dst_port;
	s->ce = (ip->type_of_service & ECN_MASK) == ECN_CE;
	s->stt_off = l3_off + ihl + TCP_HLEN;

	if (s->off == 0) {
		if (unlikely(s->len < FERRY_STT_HDR_LEN))
			return FERRY_STT_REASON_BAD_LENGTH;
		const struct ferry_stt_hdr *h = rte_pktmbuf_read(m, s->stt_off, sizeof(s->hdr), &s->hdr);
		if (h != &s->hdr)
			memcpy(&s->hdr, h, sizeof(s->hdr));
		return stt_check_hdr(&s->hdr, s->frame_len);
	}
	return FERRY_STT_REASONS;
}

/* Cuts a segment down to len bytes after skip: outer headers and Ethernet padding go,
 * and so does every empty mbuf, so that a held segment's mbufs add up to its length
 * with no zero-length link (the chain walks rely on it). Returns the new first mbuf. */
static struct rte_mbuf *
seg_shape(struct rte_mbuf *m, uint32_t skip, uint32_t len, struct rte_mbuf **last, uint32_t *nb, uint32_t *mem)
{
	struct rte_mbuf *head = NULL, **link = &head;
	uint32_t n = 0, cost = 0, kept = 0;

	*last = NULL;
	while (m != NULL) {
		struct rte_mbuf *next = m->next;
		uint32_t dl = m->data_len;
		m->next = NULL;
		if (skip >= dl || kept == len) {
			skip -= RTE_MIN(skip, dl);
			rte_pktmbuf_free_seg(m);
			m = next;
			continue;
		}
		m->data_off += skip;
		dl -= skip;
		skip = 0;
		if (dl > len - kept)
			dl = len - kept;
		m->data_len = (uint16_t)dl;
		kept += dl;
		*link = m;
		link = &m->next;
		*last = m;
		n++;
		cost += mbuf_cost(m);
		m = next;
	}
	head->nb_segs = (uint16_t)n;
	head->pkt_len = kept;
	*nb = n;
	*mem = cost;
	return head;
}

/* Takes n bytes off the front of a chain, freeing the mbufs emptied; NULL when nothing
 * is left. The caller fixes pkt_len. */
static struct rte_mbuf *
chain_pull(struct rte_mbuf *m, uint32_t n, uint32_t *nb)
{
	while (n > 0) {
		if (likely(m->data_len > n)) {
			m->data_off += n;
			m->data_len -= n;
			break;
		}
		struct rte_mbuf *next = m->next;
		n -= m->data_len;
		m->next = NULL;
		rte_pktmbuf_free_seg(m);
		(*nb)--;
		m = next;
	}
	return m;
}

/* ---- the table ---- */

static inline bool
frame_expired(const struct ferry_stt_reasm *r, const struct stt_frame *f, uint64_t now_ns)
{
	return now_ns > f->first_ns + r->timeout_ns;
}

/* Takes f out of the table and the lists (its mbufs are the caller's). */
static void
frame_unlink(struct ferry_stt_reasm *r, struct stt_frame *f)
{
	uint32_t idx = (uint32_t)(f - r->frames);
	struct stt_bucket *b = &r->buckets[f->sig & r->bucket_mask];
	for (unsigned w = 0; w < STT_WAYS; w++)
		if (b->slot[w] == idx + 1) {
			b->slot[w] = 0;
			break;
		}
	TAILQ_REMOVE(&r->lru, f, lru);
	TAILQ_REMOVE(&r->age, f, age);
	r->mem -= f->mem;
	r->free_stack[r->n_free++] = idx;
}

static void
frame_drop(struct ferry_stt_reasm *r, struct stt_frame *f, enum ferry_stt_reason why)
{
	struct rte_mbuf *m = f->head;
	frame_unlink(r, f);
	free_links(m);
	r->counters[why]++;
}

static struct stt_frame *
frame_lookup(struct ferry_stt_reasm *r, const struct stt_seg *s, uint32_t sig)
{
	const struct stt_bucket *b = &r->buckets[sig & r->bucket_mask];
	for (unsigned w = 0; w < STT_WAYS; w++) {
		if (b->slot[w] == 0 || b->sig[w] != sig)
			continue;
		struct stt_frame *f = &r->frames[b->slot[w] - 1];
		if (likely(f->src_ip == s->src_ip && f->dst_ip == s->dst_ip && f->packet_id == s->packet_id))
			return f;
	}
	return NULL;
}

/* A free frame in s's bucket, evicting when the table or the bucket is full. */
static struct stt_frame *
frame_new(struct ferry_stt_reasm *r, const struct stt_seg *s, uint32_t sig, uint64_t now_ns)
{
	if (unlikely(r->n_free == 0))
		frame_drop(r, TAILQ_FIRST(&r->lru), FERRY_STT_REASON_EVICTED);

	struct stt_bucket *b = &r->buckets[sig & r->bucket_mask];
	unsigned way = STT_WAYS;
	for (unsigned w = 0; w < STT_WAYS; w++)
		if (b->slot[w] == 0) {
			way = w;
			break;
		}
	if (unlikely(way == STT_WAYS)) {
		/* a crowded bucket (the seed is random, so not by design of a sender) loses
		 * its least recently touched frame, as OVS's 4 probes lose their oldest */
		way = 0;
		for (unsigned w = 1; w < STT_WAYS; w++)
			if (r->frames[b->slot[w] - 1].touch < r->frames[b->slot[way] - 1].touch)
				way = w;
		frame_drop(r, &r->frames[b->slot[way] - 1], FERRY_STT_REASON_EVICTED);
	}

	uint32_t idx = r->free_stack[--r->n_free];
	struct stt_frame *f = &r->frames[idx];
	memset(f, 0, sizeof(*f));
	f->src_ip = s->src_ip;
	f->dst_ip = s->dst_ip;
	f->packet_id = s->packet_id;
	f->sig = sig;
	f->frame_len = s->frame_len;
	f->first_ns = now_ns;
	b->sig[way] = sig;
	b->slot[way] = idx + 1;
	TAILQ_INSERT_TAIL(&r->lru, f, lru);
	TAILQ_INSERT_TAIL(&r->age, f, age);
	return f;
}

/* The last mbuf of the held segment starting at m. */
static inline struct rte_mbuf *
seg_last(struct rte_mbuf *m)
{
	uint32_t left = SEG_LEN(m) - m->data_len;
	while (left > 0) {
		m = m->next;
		left -= m->data_len;
	}
	return m;
}

/* Where [off, off + len) goes in f's chain: after *prev (the last mbuf of the segment
 * before it, NULL at the front). False when it overlaps a held segment, duplicates
 * included: OVS drops those too, and counting bytes blindly is how a duplicate
 * completes a frame with a hole (stt.md §2.7). */
static bool
frame_place(const struct stt_frame *f, uint32_t off, uint32_t len, struct rte_mbuf **prev)
{
	/* in-order arrival: nothing held reaches past off */
	if (likely(off >= f->tail_end)) {
		*prev = f->tail;
		return true;
	}
	struct rte_mbuf *p = NULL, *s = f->head;
	while (s != NULL && SEG_OFF(s) <= off) {
		if (SEG_OFF(s) + SEG_LEN(s) > off)
			return false;
		p = seg_last(s);
		s = p->next;
	}
	if (s != NULL && off + len > SEG_OFF(s))
		return false;
	*prev = p;
	return true;
}

/* ---- completion ---- */

static inline bool
mbuf_writable(const struct rte_mbuf *m)
{
	return RTE_MBUF_DIRECT(m) && rte_mbuf_refcnt_read(m) == 1;
}

/* A fresh head holding the first need bytes of m's chain; the chain keeps the rest.
 * NULL (the chain freed) when no mbuf is to be had. */
static struct rte_mbuf *
head_copy(struct ferry_stt_reasm *r, struct rte_mbuf *m, uint32_t need, uint32_t *nb)
{
	struct rte_mbuf *h = r->pool != NULL ? rte_pktmbuf_alloc(r->pool) : NULL;
	if (unlikely(h == NULL || rte_pktmbuf_tailroom(h) < need || rte_pktmbuf_headroom(h) < VLAN_TAG_LEN)) {
		rte_pktmbuf_free(h);
		free_links(m);
		return NULL;
	}
	uint8_t *dst = rte_pktmbuf_mtod(h, uint8_t *);
	const void *src = rte_pktmbuf_read(m, 0, need, dst);
	if (src != dst)
		memcpy(dst, src, need);
	h->data_len = (uint16_t)need;
	h->port = m->port;
	h->next = chain_pull(m, need, nb);
	(*nb)++;
	return h;
}

/* Congestion experienced on the way (any segment) reaches an ECN-capable inner IP
 * header (stt.md §1.4); a Not-ECT one is left alone, as RFC 6040 says for tunnels. */
static void
set_ce(struct rte_mbuf *m, uint32_t l2_len, uint16_t type)
{
	uint8_t *ip = rte_pktmbuf_mtod_offset(m, uint8_t *, l2_len);
	if (type == RTE_ETHER_TYPE_IPV4 && l2_len + IPV4_MIN_HLEN <= m->data_len && (ip[0] >> 4) == 4) {
		uint8_t ecn = ip[1] & ECN_MASK;
		if (ecn == 0 || ecn == ECN_CE)
			return;
		/* incremental update (RFC 1624 eqn. 3) of the word holding the TOS byte, so a
		 * checksum that was wrong stays wrong */
		uint16_t old_w = (uint16_t)(ip[0] << 8 | ip[1]);
		ip[1] |= ECN_CE;
		uint16_t new_w = (uint16_t)(ip[0] << 8 | ip[1]);
		uint16_t ck = (uint16_t)(ip[10] << 8 | ip[11]);
		uint32_t sum = (uint32_t)(uint16_t)~ck + (uint16_t)~old_w + new_w;
		sum = (sum & 0xffff) + (sum >> 16);
		sum = (sum & 0xffff) + (sum >> 16);
		ck = (uint16_t)~sum;
		ip[10] = (uint8_t)(ck >> 8);
		ip[11] = (uint8_t)ck;
	} else if (type == RTE_ETHER_TYPE_IPV6 && l2_len + IPV6_HLEN <= m->data_len && (ip[0] >> 4) == 6) {
		uint8_t ecn = (ip[1] >> IPV6_ECN_SHIFT) & ECN_MASK;
		if (ecn != 0 && ecn != ECN_CE)
			ip[1] |= ECN_CE << IPV6_ECN_SHIFT;
	}
}

/* The pseudo-header sum DPDK wants in the L4 checksum field for the offload requested
 * (no length under TSO, like rte_ipv4/6_phdr_cksum), with the L4 protocol and length
 * from l3_len, which stays right past IPv4 options or IPv6 extension headers. */
static bool
inner_phdr(const uint8_t *ip, bool v4, uint32_t l3_len, uint8_t proto, bool tso, uint16_t *out)
{
	uint32_t l4_len;
	uint32_t sum;
	if (v4) {
		uint32_t tot = (uint32_t)ip[2] << 8 | ip[3];
		if (tot < l3_len)
			return false;
		l4_len = tot - l3_len;
		sum = __rte_raw_cksum(ip + 12, 8, 0);
	} else {
		uint32_t pl = (uint32_t)ip[4] << 8 | ip[5];
		if (pl + IPV6_HLEN < l3_len)
			return false;
		l4_len = pl + IPV6_HLEN - l3_len;
		sum = __rte_raw_cksum(ip + 8, 32, 0);
	}
	if (tso)
		l4_len = 0;
	uint8_t tail[4] = { 0, proto, (uint8_t)(l4_len >> 8), (uint8_t)l4_len };
	if (l4_len > 0xffff)
		return false;
	sum = __rte_raw_cksum(tail, sizeof(tail), sum);
	*out = __rte_raw_cksum_reduce(sum);
	return true;
}

/* CSUM_PARTIAL: the inner L4 checksum is the receiver's to complete, so ask the NIC (or
 * ferry_stt_finish_offloads) to, and rewrite the field to what that request expects:
 * the wire value follows the sender's stack's convention, not DPDK's (stt.md §1.5). */
static enum ferry_stt_reason
set_partial(struct rte_mbuf *m, const struct ferry_stt_hdr *h, bool vlan, uint32_t l2_len, uint16_t type)
{
	bool v4 = h->flags & FERRY_STT_F_IPV4;
	bool tcp = h->flags & FERRY_STT_F_TCP;
	uint16_t mss = rte_be_to_cpu_16(h->mss);
	bool tso = tcp && mss != 0;
	/* l4_offset counts from the frame as sent, without the tag the V bit stands for */
	uint32_t l4_off = h->l4_offset + (vlan ? VLAN_TAG_LEN : 0);
	uint8_t *p = rte_pktmbuf_mtod(m, uint8_t *);

	if (l4_off < l2_len + (v4 ? IPV4_MIN_HLEN : IPV6_HLEN))
		return FERRY_STT_REASON_BAD_L4_OFFSET;
	/* the head holds l4_offset + the L4 header (ensured before), the tag included */
	if (type != (v4 ? RTE_ETHER_TYPE_IPV4 : RTE_ETHER_TYPE_IPV6) || (p[l2_len] >> 4) != (v4 ? 4 : 6))
		return FERRY_STT_REASON_BAD_INNER;
	uint32_t l3_len = l4_off - l2_len;
	uint8_t *l4 = p + l4_off;
	uint32_t l4_len = tcp ? (uint32_t)(l4[12] >> 4) * 4 : UDP_HLEN;
	if (l4_len < (tcp ? TCP_HLEN : UDP_HLEN) || l4_off + l4_len > m->pkt_len)
		return FERRY_STT_REASON_BAD_INNER;

	uint64_t ol = (v4 ? RTE_MBUF_F_TX_IPV4 : RTE_MBUF_F_TX_IPV6) |
		      (tcp ? RTE_MBUF_F_TX_TCP_CKSUM : RTE_MBUF_F_TX_UDP_CKSUM);
	if (tso) {
		/* the inner IP checksum is valid as it stands, but each TSO segment needs its
		 * own: rte_validate_tx_offload insists on TX_IP_CKSUM with TX_TCP_SEG on IPv4 */
		ol |= RTE_MBUF_F_TX_TCP_SEG | (v4 ? RTE_MBUF_F_TX_IP_CKSUM : 0);
		m->tso_segsz = mss;
	}
	uint16_t phdr;
	if (!inner_phdr(p + l2_len, v4, l3_len, tcp ? IPPROTO_TCP : IPPROTO_UDP, tso, &phdr))
		return FERRY_STT_REASON_BAD_INNER;
	uint8_t *ck = l4 + (tcp ? TCP_CKSUM_OFF : UDP_CKSUM_OFF);
	rte_be16_t be = rte_cpu_to_be_16(phdr);
	memcpy(ck, &be, sizeof(be));
	m->ol_flags |= ol;
	m->l2_len = l2_len;
	m->l3_len = l3_len;
	m->l4_len = l4_len;
	return FERRY_STT_REASONS;
}

/* f holds a whole STT frame (head .. nb_mbufs, hdr, ce): make it the inner frame. */
static enum ferry_stt_verdict
frame_finish(struct ferry_stt_reasm *r, const struct stt_frame *f, struct ferry_stt_rx *rx)
{
	const struct ferry_stt_hdr *h = &f->hdr;
	uint32_t inner_len = f->frame_len - FERRY_STT_HDR_LEN;
	uint32_t nb = f->nb_mbufs;
	bool partial = h->flags & FERRY_STT_F_CSUM_PARTIAL;
	uint16_t tci = rte_be_to_cpu_16(h->vlan_tci);
	bool vlan = tci & FERRY_STT_VLAN_PRESENT;
	enum ferry_stt_reason why;

	/* inner_len >= 14: stt_parse refused shorter frames (BAD_LENGTH) */
	struct rte_mbuf *m = chain_pull(f->head, FERRY_STT_HDR_LEN, &nb);
	m->nb_segs = (uint16_t)nb;
	m->pkt_len = inner_len;

	/* the parser reads headers from the first mbuf only; and the edits below must
	 * not write into a buffer someone else also holds */
	uint32_t need = RTE_MIN(inner_len, FERRY_STT_HEAD_MIN);
	if (partial)
		need = RTE_MAX(need, (uint32_t)h->l4_offset + ((h->flags & FERRY_STT_F_TCP) ? TCP_HLEN : UDP_HLEN));
	if (unlikely(m->data_len < need || !mbuf_writable(m) || (vlan && rte_pktmbuf_headroom(m) < VLAN_TAG_LEN))) {
		m = head_copy(r, m, need, &nb);
		if (m == NULL) {
			r->counters[FERRY_STT_REASON_NO_MBUF]++;
			return FERRY_STT_DROP;
		}
		m->nb_segs = (uint16_t)nb;
		m->pkt_len = inner_len;
	}

	/* the outer packet's rx metadata means nothing for the inner frame (the head is
	 * direct here, but keep the buffer-ownership bits right whatever it is) */
	m->ol_flags &= RTE_MBUF_F_INDIRECT | RTE_MBUF_F_EXTERNAL;
	m->packet_type = 0;
	m->vlan_tci = 0;
	m->vlan_tci_outer = 0;
	m->tx_offload = 0;
	if (vlan) {
		/* the V bit stands in for DEI on the wire (stt.md §1.3): the tag gets PCP and VID */
		m->data_off -= VLAN_TAG_LEN; /* the headroom was ensured above */
		m->data_len += VLAN_TAG_LEN;
		m->pkt_len += VLAN_TAG_LEN;
		uint8_t *p = rte_pktmbuf_mtod(m, uint8_t *);
		memmove(p, p + VLAN_TAG_LEN, 2 * RTE_ETHER_ADDR_LEN);
		rte_be16_t tag[2] = { rte_cpu_to_be_16(RTE_ETHER_TYPE_VLAN),
				      rte_cpu_to_be_16(tci & (uint16_t)~FERRY_STT_VLAN_PRESENT) };
		memcpy(p + 2 * RTE_ETHER_ADDR_LEN, tag, sizeof(tag));
	}

	/* L2 length past any tags, within the head */
	const uint8_t *p = rte_pktmbuf_mtod(m, const uint8_t *);
	uint32_t l2_len = RTE_ETHER_HDR_LEN;
	uint16_t type = (uint16_t)(p[12] << 8 | p[13]);
	while ((type == RTE_ETHER_TYPE_VLAN || type == RTE_ETHER_TYPE_QINQ) && l2_len + VLAN_TAG_LEN <= m->data_len) {
		type = (uint16_t)(p[l2_len + 2] << 8 | p[l2_len + 3]);
		l2_len += VLAN_TAG_LEN;
	}

	if (f->ce)
		set_ce(m, l2_len, type);
	if (partial) {
		why = set_partial(m, h, vlan, l2_len, type);
		if (unlikely(why != FERRY_STT_REASONS))
			goto drop;
	} else if (h->flags & FERRY_STT_F_CSUM_VERIFIED) {
		m->ol_flags |= RTE_MBUF_F_RX_L4_CKSUM_GOOD;
	}

	rx->frame = m;
	rx->context = rte_be_to_cpu_64(h->context);
	rx->src_ip = f->src_ip;
	rx->dst_ip = f->dst_ip;
	rx->dst_port = f->dst_port;
	rx->stt_flags = h->flags;
	return FERRY_STT_DONE;

drop:
	r->counters[why]++;
	rte_pktmbuf_free(m);
	return FERRY_STT_DROP;
}

/* ---- API ---- */

struct ferry_stt_reasm *
ferry_stt_reasm_create(const struct ferry_stt_reasm_config *cfg)
{
	uint32_t max_frames = cfg->max_frames ? cfg->max_frames : FERRY_STT_DEFAULT_MAX_FRAMES;
	if (max_frames > STT_MAX_FRAMES)
		return NULL;
	/* twice as many ways as frames keeps crowded buckets rare */
	uint32_t n_buckets = rte_align32pow2(RTE_MAX(1u, max_frames * 2 / STT_WAYS));

	struct ferry_stt_reasm *r = rte_zmalloc_socket("stt_reasm", sizeof(*r), RTE_CACHE_LINE_SIZE, cfg->socket);
	if (r == NULL)
		return NULL;
	r->buckets = rte_zmalloc_socket("stt_reasm_buckets", sizeof(*r->buckets) * n_buckets, RTE_CACHE_LINE_SIZE,
					cfg->socket);
	r->frames = rte_zmalloc_socket("stt_reasm_frames", sizeof(*r->frames) * max_frames, RTE_CACHE_LINE_SIZE,
				       cfg->socket);
	r->free_stack = rte_zmalloc_socket("stt_reasm_free", sizeof(*r->free_stack) * max_frames, 0, cfg->socket);
	if (r->buckets == NULL || r->frames == NULL || r->free_stack == NULL) {
		ferry_stt_reasm_destroy(r);
		return NULL;
	}
	r->bucket_mask = n_buckets - 1;
	r->max_frames = max_frames;
	/* lowest index on top, so frames are used from the start of the array */
	for (uint32_t i = 0; i < max_frames; i++)
		r->free_stack[i] = max_frames - 1 - i;
	r->n_free = max_frames;
	TAILQ_INIT(&r->lru);
	TAILQ_INIT(&r->age);
	r->mem_max = cfg->mem_max ? cfg->mem_max : FERRY_STT_DEFAULT_MEM_MAX;
	r->timeout_ns = (uint64_t)(cfg->timeout_ms ? cfg->timeout_ms : FERRY_STT_DEFAULT_TIMEOUT_MS) * NS_PER_MS;
	r->seed = cfg->seed;
	r->pool = cfg->pool;
	return r;
}

void
ferry_stt_reasm_destroy(struct ferry_stt_reasm *r)
{
	if (r == NULL)
		return;
	if (r->frames != NULL && r->buckets != NULL) {
		struct stt_frame *f;
		while ((f = TAILQ_FIRST(&r->age)) != NULL) {
			struct rte_mbuf *m = f->head;
			frame_unlink(r, f);
			free_links(m);
		}
	}
	rte_free(r->free_stack);
	rte_free(r->frames);
	rte_free(r->buckets);
	rte_free(r);
}

void
ferry_stt_reasm_set_limits(struct ferry_stt_reasm *r, uint32_t timeout_ms, uint32_t mem_max)
{
	if (timeout_ms != 0)
		r->timeout_ns = (uint64_t)timeout_ms * NS_PER_MS;
	if (mem_max != 0)
		r->mem_max = mem_max;
}

enum ferry_stt_verdict
ferry_stt_reasm_add(struct ferry_stt_reasm *r, struct rte_mbuf *m, uint16_t l3_off, uint64_t now_ns,
		    struct ferry_stt_rx *rx)
{
	struct stt_seg s;
	enum ferry_stt_reason why = stt_parse(m, l3_off, &s);
	if (unlikely(why != FERRY_STT_REASONS))
		return drop_seg(r, m, why);

	struct rte_mbuf *last;
	uint32_t nb, mem;

	/* the whole frame in one segment (small frames, GRO/LRO-merged ones) never
	 * touches the table (OVS does the same) */
	if (s.off == 0 && s.len == s.frame_len) {
		struct stt_frame one = {
			.src_ip = s.src_ip,
			.dst_ip = s.dst_ip,
			.frame_len = s.frame_len,
			.dst_port = s.dst_port,
			.ce = s.ce,
			.hdr = s.hdr,
		};
		one.head = seg_shape(m, s.stt_off, s.len, &last, &nb, &mem);
		one.nb_mbufs = nb;
		if (unlikely(nb > STT_MAX_HELD_MBUFS)) {
			free_links(one.head);
			r->counters[FERRY_STT_REASON_BAD_LENGTH]++;
			return FERRY_STT_DROP;
		}
		return frame_finish(r, &one, rx);
	}

	uint32_t sig = rte_jhash_3words(s.src_ip, s.dst_ip, s.packet_id, r->seed);
	struct stt_frame *f = frame_lookup(r, &s, sig);
	if (f != NULL && unlikely(frame_expired(r, f, now_ns))) {
		/* the packet id came round again, or the frame never completed */
		frame_drop(r, f, FERRY_STT_REASON_TIMEOUT);
		f = NULL;
	}
	struct rte_mbuf *prev = NULL;
	if (f != NULL) {
		/* OVS never compared these: a packet id collision would splice two frames */
		if (unlikely(f->frame_len != s.frame_len))
			return drop_seg(r, m, FERRY_STT_REASON_LEN_MISMATCH);
		if (unlikely(!frame_place(f, s.off, s.len, &prev)))
			return drop_seg(r, m, FERRY_STT_REASON_OVERLAP);
	}

	struct rte_mbuf *seg = seg_shape(m, s.stt_off, s.len, &last, &nb, &mem);
	if (unlikely((f != NULL ? f->nb_mbufs : 0) + nb > STT_MAX_HELD_MBUFS)) {
		/* only a frame cut into tiny pieces gets here: its chain could not be built */
		free_links(seg);
		r->counters[FERRY_STT_REASON_BAD_LENGTH]++;
		return FERRY_STT_DROP;
	}

	/* the memory cap: other frames go first, least recently touched first */
	while (unlikely(r->mem + mem > r->mem_max)) {
		struct stt_frame *v = TAILQ_FIRST(&r->lru);
		if (v != NULL && v == f)
			v = TAILQ_NEXT(v, lru);
		if (v == NULL)
			break;
		frame_drop(r, v, FERRY_STT_REASON_EVICTED);
	}
	if (unlikely(r->mem + mem > r->mem_max)) {
		/* this frame alone is over the cap: it can never complete; the segment goes
		 * with it (or is the whole of it), counted once as the frame */
		if (f != NULL)
			frame_drop(r, f, FERRY_STT_REASON_EVICTED);
		else
			r->counters[FERRY_STT_REASON_EVICTED]++;
		free_links(seg);
		return FERRY_STT_DROP;
	}

	if (f == NULL)
		f = frame_new(r, &s, sig, now_ns);

	SEG_OFF(seg) = s.off;
	SEG_LEN(seg) = s.len;
	if (prev == NULL) {
		last->next = f->head;
		f->head = seg;
	} else {
		last->next = prev->next;
		prev->next = seg;
	}
	if (last->next == NULL) {
		f->tail = last;
		f->tail_end = s.off + s.len;
	}
	f->nb_mbufs += nb;
	f->mem += mem;
	r->mem += mem;
	f->rcvd += s.len;
	f->ce |= s.ce;
	if (s.off == 0) {
		f->hdr = s.hdr;
		f->dst_port = s.dst_port;
	}
	f->touch = ++r->touch;
	TAILQ_REMOVE(&r->lru, f, lru);
	TAILQ_INSERT_TAIL(&r->lru, f, lru);

	if (f->rcvd < f->frame_len)
		return FERRY_STT_HELD;

	/* no overlaps and every byte within frame_len: all of it is here, offset 0 (and
	 * so hdr) too */
	struct stt_frame whole = *f;
	frame_unlink(r, f);
	return frame_finish(r, &whole, rx);
}

void
ferry_stt_reasm_expire(struct ferry_stt_reasm *r, uint64_t now_ns)
{
	struct stt_frame *f;
	/* the age list is in first-segment order, so the first live one ends the walk */
	while ((f = TAILQ_FIRST(&r->age)) != NULL && frame_expired(r, f, now_ns))
		frame_drop(r, f, FERRY_STT_REASON_TIMEOUT);
}

const uint64_t *
ferry_stt_reasm_counters(const struct ferry_stt_reasm *r)
{
	return r->counters;
}

uint32_t
ferry_stt_reasm_frames(const struct ferry_stt_reasm *r)
{
	return r->max_frames - r->n_free;
}

uint64_t
ferry_stt_reasm_mem(const struct ferry_stt_reasm *r)
{
	return r->mem;
}
