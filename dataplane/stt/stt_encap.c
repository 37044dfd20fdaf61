/* STT encapsulation: an inner Ethernet frame becomes outer Eth | IPv4 (DF) | TCP-like
 * header | STT frame, cut into segments of at most mss payload bytes (research §1).
 *
 * Four ways out, cheapest first:
 *   - TSO: the underlay NIC segments. One super-packet, the outer headers (and STT
 *     header) in inner's headroom or in one header mbuf chained to inner.
 *   - in place: a frame of one or two segments whose first mbuf is ours: the headers go
 *     into inner's headroom; the second segment's bytes move to one new mbuf.
 *   - chained: one segment of a frame we may not write in front of: one header mbuf
 *     chained to inner.
 *   - segments: a header mbuf per segment chained to inner's bytes, copied when small,
 *     else referenced by indirect mbufs (no copy of a 64 KB frame); slices may cross
 *     inner's segment boundaries.
 * Checksums the port cannot offload are computed here; the payload is summed piece by
 * piece as it is chained (ferry_stt_cksum, several times rte_raw_cksum's speed). */
#include <string.h>
#include <rte_branch_prediction.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_tcp.h>
#include "stt.h"

#define IP4_HLEN ((uint32_t)sizeof(struct rte_ipv4_hdr))
#define IP4_TOTAL_MAX 65535u
/* what each segment adds to its payload in the IP total length */
#define SEG_HLEN (IP4_HLEN + FERRY_STT_TCP_LEN)
#define MSS_MAX (IP4_TOTAL_MAX - SEG_HLEN)
/* what the first segment puts in front of the inner frame */
#define FIRST_HLEN (FERRY_STT_OUTER_LEN + FERRY_STT_HDR_LEN)
#define TCP_DOFF_5 ((FERRY_STT_TCP_LEN / 4) << 4)
#define OUTER_PTYPE (RTE_PTYPE_L2_ETHER | RTE_PTYPE_L3_IPV4 | RTE_PTYPE_L4_TCP)

/* One frame's encapsulation, resolved once for all its segments. */
struct encap {
	uint8_t tmpl[FERRY_STT_OUTER_LEN];  /* outer headers: lengths, ID, seq, checksums 0, flags ACK */
	uint64_t ip_sum;                    /* the template IP header's sum */
	uint64_t tcp_sum;                   /* pseudo-header (but its length) + template TCP header + seq[31:16] */
	uint16_t ip_id;
	uint32_t frame_len;
	uint32_t mss;
	uint32_t nseg;
	bool hw_ip, hw_l4, tso;
};

static void encap_init(struct encap *x, const struct ferry_stt_encap *p, uint32_t frame_len, uint32_t mss)
{
	struct rte_ether_hdr *eth = (void *)x->tmpl;
	struct rte_ipv4_hdr *ip = (void *)(eth + 1);
	struct rte_tcp_hdr *tcp = (void *)(ip + 1);

	eth->dst_addr = p->dst_mac;
	eth->src_addr = p->src_mac;
	eth->ether_type = RTE_BE16(RTE_ETHER_TYPE_IPV4);
	ip->version_ihl = RTE_IPV4_VHL_DEF;
	ip->type_of_service = p->tos;
	ip->total_length = 0;
	ip->packet_id = 0;
	ip->fragment_offset = RTE_BE16(RTE_IPV4_HDR_DF_FLAG); /* segments are sized to the path: never fragment */
	ip->time_to_live = p->ttl;
	ip->next_proto_id = IPPROTO_TCP;
	ip->hdr_checksum = 0;
	ip->src_addr = p->src_ip;
	ip->dst_addr = p->dst_ip;
	tcp->src_port = p->src_port;
	tcp->dst_port = p->dst_port;
	tcp->sent_seq = 0;
	tcp->recv_ack = rte_cpu_to_be_32(p->packet_id);
	tcp->data_off = TCP_DOFF_5;
	tcp->tcp_flags = RTE_TCP_ACK_FLAG;
	tcp->rx_win = RTE_BE16(FERRY_STT_WINDOW);
	tcp->cksum = 0;
	tcp->tcp_urp = 0;

	x->ip_sum = ferry_stt_cksum(ip, IP4_HLEN, 0);
	x->tcp_sum = ferry_stt_cksum(tcp, FERRY_STT_TCP_LEN, 0) + ferry_stt_cksum(&ip->src_addr, 8, 0) +
		     rte_cpu_to_be_16(IPPROTO_TCP) + rte_cpu_to_be_16((uint16_t)frame_len);
	x->ip_id = p->ip_id;
	x->frame_len = frame_len;
	x->mss = mss;
	x->nseg = (frame_len + mss - 1) / mss;
	x->hw_ip = p->tx_offloads & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM;
	x->hw_l4 = p->tx_offloads & RTE_ETH_TX_OFFLOAD_TCP_CKSUM;
	x->tso = false;
}

/* Writes segment i's outer headers at d, its payload plen bytes from frame offset off
 * summing to psum (unused when the NIC sums), and sets h's tx metadata. */
static void put_outer(const struct encap *x, struct rte_mbuf *h, uint8_t *d, uint32_t i, uint32_t off, uint32_t plen,
		      uint64_t psum)
{
	struct rte_ipv4_hdr *ip = (void *)(d + RTE_ETHER_HDR_LEN);
	struct rte_tcp_hdr *tcp = (void *)(ip + 1);
	uint16_t tot = (uint16_t)(SEG_HLEN + plen), id = (uint16_t)(x->ip_id + i);
	/* a TSO engine clears PSH on all but the last segment; so do we */
	bool last = x->tso || i + 1 == x->nseg;
	uint64_t ol = 0;

	memcpy(d, x->tmpl, FERRY_STT_OUTER_LEN);
	ip->total_length = rte_cpu_to_be_16(tot);
	ip->packet_id = rte_cpu_to_be_16(id);
	tcp->sent_seq = rte_cpu_to_be_32(x->frame_len << FERRY_STT_SEQ_LEN_SHIFT | off);
	if (last)
		tcp->tcp_flags |= RTE_TCP_PSH_FLAG;

	if (x->tso) {
		/* the NIC cuts at mss, numbers IDs and seq (the low half becomes the offset)
		 * and sums each segment over a pseudo-header seeded without length */
		ol = RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_TCP_SEG;
		tcp->cksum = rte_ipv4_phdr_cksum(ip, ol);
	} else {
		if (x->hw_ip)
			ol |= RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM;
		else
			ip->hdr_checksum = (uint16_t)~ferry_stt_cksum_fold(x->ip_sum + rte_cpu_to_be_16(tot) +
									     rte_cpu_to_be_16(id));
		if (x->hw_l4) {
			ol |= RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_TCP_CKSUM;
			tcp->cksum = rte_ipv4_phdr_cksum(ip, ol);
		} else {
			uint64_t s = x->tcp_sum + psum + rte_cpu_to_be_16((uint16_t)(FERRY_STT_TCP_LEN + plen)) +
				     rte_cpu_to_be_16((uint16_t)off) + (last ? rte_cpu_to_be_16(RTE_TCP_PSH_FLAG) : 0);
			tcp->cksum = (uint16_t)~ferry_stt_cksum_fold(s);
		}
	}
	h->ol_flags = (h->ol_flags & FERRY_STT_ATTACH_FLAGS) | ol;
	h->tx_offload = 0;
	h->l2_len = RTE_ETHER_HDR_LEN;
	h->l3_len = IP4_HLEN;
	h->l4_len = FERRY_STT_TCP_LEN;
	if (x->tso)
		h->tso_segsz = (uint16_t)x->mss;
	h->packet_type = OUTER_PTYPE;
	h->vlan_tci = 0;
}

/* The STT header from inner's offload metadata (research §5.2): a TX checksum or TSO
 * request is CSUM_PARTIAL (with the L4 offset, the IPv4/TCP bits and the MSS), an rx
 * checksum found good is VERIFIED, else 0. What STT cannot carry (an inner IPv4 header
 * checksum; an L4 offset over 255) is completed here, which may replace *mp. Returns
 * 0, or -reason with *mp freed (NULL) or not. */
static int stt_header(struct rte_mbuf **mp, const struct ferry_stt_encap *p, struct rte_mempool *pool,
		      struct ferry_stt_hdr *sh)
{
	struct rte_mbuf *m = *mp;
	uint64_t ol = m->ol_flags;
	uint64_t l4 = ol & RTE_MBUF_F_TX_L4_MASK;
	bool seg = ol & RTE_MBUF_F_TX_TCP_SEG;
	uint32_t l4_off = (uint32_t)m->l2_len + m->l3_len;

	memset(sh, 0, sizeof(*sh));
	sh->version = FERRY_STT_VERSION;
	sh->context = rte_cpu_to_be_64(p->context);
	/* Ferry keeps tags in the frame; one the NIC was to insert travels in the header */
	if (unlikely(ol & RTE_MBUF_F_TX_VLAN))
		sh->vlan_tci = rte_cpu_to_be_16(m->vlan_tci | FERRY_STT_VLAN_PRESENT);

	if (likely(!seg && l4 != RTE_MBUF_F_TX_TCP_CKSUM && l4 != RTE_MBUF_F_TX_UDP_CKSUM)) {
		if ((ol & RTE_MBUF_F_RX_L4_CKSUM_MASK) == RTE_MBUF_F_RX_L4_CKSUM_GOOD)
			sh->flags = FERRY_STT_F_CSUM_VERIFIED;
		if (unlikely(ol & RTE_MBUF_F_TX_IP_CKSUM))
			return ferry_stt_complete_cksums(mp, 0, pool);
		return 0;
	}
	if (unlikely(l4_off > UINT8_MAX)) {
		/* no way to tell the receiver where to sum: sum here, send a plain frame;
		 * a TSO request must be segmented before (ferry_stt_finish_offloads) */
		if (seg)
			return -FERRY_STT_REASON_TOO_BIG;
		return ferry_stt_complete_cksums(mp, 0, pool);
	}
	if (unlikely(ol & RTE_MBUF_F_TX_IP_CKSUM)) {
		/* STT carries the L4 request only; the receiver takes the IP header as is */
		int rc = ferry_stt_complete_cksums(mp, RTE_ETH_TX_OFFLOAD_TCP_CKSUM | RTE_ETH_TX_OFFLOAD_UDP_CKSUM, pool);
		if (rc < 0)
			return rc;
		m = *mp;
	}
	bool v4;
	if (ol & (RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IPV6))
		v4 = ol & RTE_MBUF_F_TX_IPV4;
	else if (m->l2_len < m->data_len)
		v4 = *rte_pktmbuf_mtod_offset(m, const uint8_t *, m->l2_len) >> 4 == 4;
	else
		return -FERRY_STT_REASON_BAD_INNER;
	sh->flags = FERRY_STT_F_CSUM_PARTIAL | (v4 ? FERRY_STT_F_IPV4 : 0) |
		    (seg || l4 == RTE_MBUF_F_TX_TCP_CKSUM ? FERRY_STT_F_TCP : 0);
	sh->l4_offset = (uint8_t)l4_off;
	sh->mss = seg ? rte_cpu_to_be_16(m->tso_segsz) : 0;
	return 0;
}

static inline bool writable_head(const struct rte_mbuf *m)
{
	return RTE_MBUF_DIRECT(m) && rte_mbuf_refcnt_read(m) == 1 && rte_pktmbuf_headroom(m) >= FIRST_HLEN;
}

/* the mbufs' data room can take the headers (a pool of bare indirect mbufs cannot) */
static inline bool pool_fits(struct rte_mempool *pool)
{
	return rte_pktmbuf_data_room_size(pool) >= RTE_PKTMBUF_HEADROOM + FIRST_HLEN;
}

/* TSO: one super-packet for the NIC to cut. */
static int encap_tso(struct encap *x, struct rte_mbuf *inner, const struct ferry_stt_hdr *sh,
		     struct rte_mempool *pool, struct rte_mbuf **out)
{
	struct rte_mbuf *h = inner;
	uint8_t *d;
	x->tso = true;
	if (writable_head(inner)) {
		d = (uint8_t *)rte_pktmbuf_prepend(inner, FIRST_HLEN);
	} else {
		h = pool_fits(pool) ? rte_pktmbuf_alloc(pool) : NULL;
		if (unlikely(h == NULL)) {
			rte_pktmbuf_free(inner);
			return -FERRY_STT_REASON_NO_MBUF;
		}
		d = (uint8_t *)rte_pktmbuf_append(h, FIRST_HLEN);
		if (unlikely(rte_pktmbuf_chain(h, inner) != 0)) {
			rte_pktmbuf_free(h);
			rte_pktmbuf_free(inner);
			return -FERRY_STT_REASON_TOO_BIG;
		}
	}
	memcpy(d + FERRY_STT_OUTER_LEN, sh, FERRY_STT_HDR_LEN);
	put_outer(x, h, d, 0, 0, x->frame_len, 0);
	out[0] = h;
	return 1;
}

/* One or two segments, inner's first mbuf ours with the headroom: the headers go in
 * front of inner, and the bytes past the first segment (inner is one mbuf then) to a
 * second packet, copied when small. No allocation for one segment, one or two for two. */
static int encap_in_place(struct encap *x, struct rte_mbuf *inner, const struct ferry_stt_hdr *sh,
			  struct rte_mempool *pool, struct rte_mbuf **out)
{
	struct rte_mbuf *t = NULL;
	uint32_t plen0 = x->frame_len;
	if (x->nseg == 2) {
		uint32_t plen1 = x->frame_len - x->mss;
		uint64_t psum = 0;
		t = rte_pktmbuf_alloc(pool);
		if (unlikely(t == NULL)) {
			rte_pktmbuf_free(inner);
			return -FERRY_STT_REASON_NO_MBUF;
		}
		uint8_t *d1 = (uint8_t *)rte_pktmbuf_append(t, FERRY_STT_OUTER_LEN);
		struct rte_mbuf *tail = t;
		struct ferry_stt_cursor c = { inner, x->mss - FERRY_STT_HDR_LEN };
		if (unlikely(d1 == NULL || ferry_stt_append(t, &tail, &c, plen1, pool, x->hw_l4 ? NULL : &psum) < 0)) {
			rte_pktmbuf_free(t);
			rte_pktmbuf_free(inner);
			return -FERRY_STT_REASON_NO_MBUF;
		}
		put_outer(x, t, d1, 1, x->mss, plen1, psum);
		/* an indirect in t may reference these bytes; trimming changes only inner's view */
		rte_pktmbuf_trim(inner, (uint16_t)plen1);
		plen0 = x->mss;
	}
	uint8_t *d = (uint8_t *)rte_pktmbuf_prepend(inner, FIRST_HLEN);
	memcpy(d + FERRY_STT_OUTER_LEN, sh, FERRY_STT_HDR_LEN);
	uint64_t psum = 0;
	if (!x->hw_l4) {
		if (inner->nb_segs == 1) {
			psum = ferry_stt_cksum(d + FERRY_STT_OUTER_LEN, plen0, 0);
		} else {
			struct ferry_stt_cursor c = { inner, FERRY_STT_OUTER_LEN };
			psum = ferry_stt_cksum_chain(&c, plen0);
		}
	}
	put_outer(x, inner, d, 0, 0, plen0, psum);
	out[0] = inner;
	if (t != NULL)
		out[1] = t;
	return (int)x->nseg;
}

/* One segment in front of a frame we may not write to: a header mbuf chained to it. */
static int encap_chained(struct encap *x, struct rte_mbuf *inner, const struct ferry_stt_hdr *sh,
			 struct rte_mempool *pool, struct rte_mbuf **out)
{
	struct rte_mbuf *h = pool_fits(pool) ? rte_pktmbuf_alloc(pool) : NULL;
	if (unlikely(h == NULL)) {
		rte_pktmbuf_free(inner);
		return -FERRY_STT_REASON_NO_MBUF;
	}
	uint8_t *d = (uint8_t *)rte_pktmbuf_append(h, FIRST_HLEN);
	memcpy(d + FERRY_STT_OUTER_LEN, sh, FERRY_STT_HDR_LEN);
	uint64_t psum = 0;
	if (!x->hw_l4) {
		struct ferry_stt_cursor c = { inner, 0 };
		psum = ferry_stt_cksum(sh, FERRY_STT_HDR_LEN, 0) + ferry_stt_cksum_chain(&c, inner->pkt_len);
	}
	if (unlikely(rte_pktmbuf_chain(h, inner) != 0)) {
		rte_pktmbuf_free(h);
		rte_pktmbuf_free(inner);
		return -FERRY_STT_REASON_TOO_BIG;
	}
	put_outer(x, h, d, 0, 0, x->frame_len, psum);
	out[0] = h;
	return 1;
}

/* Any number of segments: a header mbuf each, then the frame's bytes (the STT header
 * from sh, the rest from inner) copied or referenced. inner is freed at the end: the
 * indirect mbufs hold what they reference. */
static int encap_segments(struct encap *x, struct rte_mbuf *inner, const struct ferry_stt_hdr *sh,
			  struct rte_mempool *pool, struct rte_mbuf **out)
{
	if (unlikely(!pool_fits(pool) || rte_pktmbuf_alloc_bulk(pool, out, x->nseg) != 0)) {
		rte_pktmbuf_free(inner);
		return -FERRY_STT_REASON_NO_MBUF;
	}
	struct ferry_stt_cursor c = { inner, 0 };
	for (uint32_t i = 0; i < x->nseg; i++) {
		struct rte_mbuf *h = out[i], *tail = h;
		uint32_t off = i * x->mss;
		uint32_t plen = RTE_MIN(x->mss, x->frame_len - off);
		uint8_t *d = (uint8_t *)rte_pktmbuf_append(h, FERRY_STT_OUTER_LEN);
		uint64_t psum = 0;
		uint32_t done = 0;
		if (off < FERRY_STT_HDR_LEN) {
			/* the STT header; split over segments only with an mss under 18 */
			done = RTE_MIN(FERRY_STT_HDR_LEN - off, plen);
			const uint8_t *src = (const uint8_t *)sh + off;
			memcpy(rte_pktmbuf_append(h, (uint16_t)done), src, done);
			if (!x->hw_l4)
				psum = ferry_stt_cksum(src, done, 0);
		}
		if (plen > done) {
			uint64_t s = 0;
			if (unlikely(ferry_stt_append(h, &tail, &c, plen - done, pool, x->hw_l4 ? NULL : &s) < 0))
				goto no_mbuf;
			/* the inner bytes start at an odd offset only after an odd piece of header */
			psum += (done & 1) ? rte_bswap16(ferry_stt_cksum_fold(s)) : s;
		}
		put_outer(x, h, d, i, off, plen, psum);
	}
	rte_pktmbuf_free(inner);
	return (int)x->nseg;
no_mbuf:
	for (uint32_t i = 0; i < x->nseg; i++)
		rte_pktmbuf_free(out[i]);
	rte_pktmbuf_free(inner);
	return -FERRY_STT_REASON_NO_MBUF;
}

int ferry_stt_encap(struct rte_mbuf *inner, const struct ferry_stt_encap *p, struct rte_mempool *pool,
		    struct rte_mbuf **out, unsigned max_out)
{
	struct ferry_stt_hdr sh;
	struct encap x;
	int rc;

	if (unlikely(inner->pkt_len > FERRY_STT_INNER_MAX || p->mss == 0 || max_out == 0)) {
		rc = -FERRY_STT_REASON_TOO_BIG;
		goto drop;
	}
	rc = stt_header(&inner, p, pool, &sh);
	if (unlikely(rc < 0))
		goto drop;

	uint32_t frame_len = FERRY_STT_HDR_LEN + inner->pkt_len;
	encap_init(&x, p, frame_len, RTE_MIN((uint32_t)p->mss, MSS_MAX));
	/* a frame too long for one IPv4 super-packet is still a frame: cut it here */
	if (x.nseg > 1 && (p->tx_offloads & RTE_ETH_TX_OFFLOAD_TCP_TSO) && x.mss >= FERRY_STT_HDR_LEN &&
	    SEG_HLEN + frame_len <= IP4_TOTAL_MAX)
		return encap_tso(&x, inner, &sh, pool, out);
	if (unlikely(x.nseg > max_out)) {
		rc = -FERRY_STT_REASON_TOO_BIG;
		goto drop;
	}
	if (x.nseg == 1 || (x.nseg == 2 && inner->nb_segs == 1 && x.mss >= FERRY_STT_HDR_LEN)) {
		if (writable_head(inner))
			return encap_in_place(&x, inner, &sh, pool, out);
		if (x.nseg == 1 && inner->pkt_len > FERRY_STT_COPY_MAX)
			return encap_chained(&x, inner, &sh, pool, out);
	}
	return encap_segments(&x, inner, &sh, pool, out);
drop:
	rte_pktmbuf_free(inner); /* NULL when stt_header already freed it */
	return rc;
}
