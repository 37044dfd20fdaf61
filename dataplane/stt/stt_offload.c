/* Inner offloads on the way out, and the mbuf-chain helpers the STT sources share.
 *
 * A frame may ask the NIC for checksums or TCP segmentation (DPDK tx flags) that the
 * port it leaves by cannot do: a decapsulated STT frame with CSUM_PARTIAL and an MSS
 * bound for a port without TSO, or an inner frame whose request STT cannot carry.
 * What the port cannot do is done here, in software, recomputing every checksum from
 * the bytes: the checksum field of a request holds a pseudo-header sum whose length
 * convention depends on who wrote it (research §1.5), so it is never trusted.
 *
 * Payload bytes are referenced, not copied, wherever that is cheaper: a segment of a
 * software TSO is a copy of the headers chained to indirect mbufs over the original's
 * data, which the original keeps alive through its reference counts. */
#include <string.h>
#include <rte_branch_prediction.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_tcp.h>
#include <rte_udp.h>
#include "stt.h"

#define IPV4_HLEN_MIN ((uint32_t)sizeof(struct rte_ipv4_hdr))
#define IPV6_HLEN ((uint32_t)sizeof(struct rte_ipv6_hdr))
#define TCP_HLEN_MIN ((uint32_t)sizeof(struct rte_tcp_hdr))
#define UDP_HLEN ((uint32_t)sizeof(struct rte_udp_hdr))
#define TCP_CKSUM_OFF offsetof(struct rte_tcp_hdr, cksum)
#define UDP_CKSUM_OFF offsetof(struct rte_udp_hdr, dgram_cksum)
/* the most header bytes the tx_offload fields can describe: l2_len (7 bits) + l3_len
 * (9 bits) + the largest TCP header (data offset 15 words) */
#define HDRS_MAX (127u + 511u + 60u)

/* ---- checksums ---- */

uint32_t ferry_stt_cksum(const void *buf, size_t len, uint32_t sum)
{
	/* Two 64-bit add-with-carry chains over 64 bytes a turn (add from memory, adc
	 * into carry counters, from the overflow builtins): measured ~19-21 GB/s on a
	 * 2020s Xeon against ~2.7 GB/s for rte_raw_cksum's 16-bit loop and ~18 GB/s for an
	 * SSE widening loop (-march=corei7: no AVX2). A 64-bit sum with end-around
	 * carries is congruent to the 16-bit one modulo 0xffff (2^16 = 1), whatever the
	 * byte order. Separate 8-byte memcpy loads, not one into an array: gcc copies
	 * an array through the stack. */
	const uint8_t *p = buf;
	unsigned long long a = sum, b = 0;
	uint64_t ca = 0, cb = 0, w0, w1, w2, w3, w4, w5, w6, w7;
	for (; len >= 64; p += 64, len -= 64) {
		memcpy(&w0, p, 8), memcpy(&w1, p + 8, 8), memcpy(&w2, p + 16, 8), memcpy(&w3, p + 24, 8);
		memcpy(&w4, p + 32, 8), memcpy(&w5, p + 40, 8), memcpy(&w6, p + 48, 8), memcpy(&w7, p + 56, 8);
		ca += __builtin_uaddll_overflow(a, w0, &a);
		cb += __builtin_uaddll_overflow(b, w1, &b);
		ca += __builtin_uaddll_overflow(a, w2, &a);
		cb += __builtin_uaddll_overflow(b, w3, &b);
		ca += __builtin_uaddll_overflow(a, w4, &a);
		cb += __builtin_uaddll_overflow(b, w5, &b);
		ca += __builtin_uaddll_overflow(a, w6, &a);
		cb += __builtin_uaddll_overflow(b, w7, &b);
	}
	for (; len >= 8; p += 8, len -= 8) {
		memcpy(&w0, p, 8);
		ca += __builtin_uaddll_overflow(a, w0, &a);
	}
	uint64_t s = (a & 0xffffffffu) + (a >> 32) + (b & 0xffffffffu) + (b >> 32) + ca + cb;
	if (len >= 4) {
		uint32_t w;
		memcpy(&w, p, sizeof(w));
		s += w;
		p += 4, len -= 4;
	}
	if (len >= 2) {
		uint16_t w;
		memcpy(&w, p, sizeof(w));
		s += w;
		p += 2, len -= 2;
	}
	if (len) {
		uint16_t w = 0; /* the odd byte pairs with a zero after it, in memory order */
		memcpy(&w, p, 1);
		s += w;
	}
	s = (s & 0xffffffffu) + (s >> 32);
	s = (s & 0xffffffffu) + (s >> 32);
	return (uint32_t)s;
}

/* a piece's sum placed at offset pos of the checksummed run: at an odd offset its
 * bytes pair the other way round */
static inline uint64_t cksum_at(uint32_t s, uint32_t pos)
{
	return (pos & 1) ? rte_bswap16(ferry_stt_cksum_fold(s)) : s;
}

uint32_t ferry_stt_cksum_chain(struct ferry_stt_cursor *c, uint32_t len)
{
	uint64_t sum = 0;
	uint32_t pos = 0;
	while (len > 0) {
		struct rte_mbuf *m = c->m;
		if (unlikely(m == NULL))
			break;
		if (c->off >= m->data_len) {
			c->off -= m->data_len;
			c->m = m->next;
			continue;
		}
		uint32_t n = RTE_MIN(len, (uint32_t)m->data_len - c->off);
		sum += cksum_at(ferry_stt_cksum(rte_pktmbuf_mtod_offset(m, const uint8_t *, c->off), n, 0), pos);
		pos += n, c->off += n, len -= n;
	}
	sum = (sum & 0xffffffffu) + (sum >> 32);
	return (uint32_t)((sum & 0xffffffffu) + (sum >> 32));
}

/* the pseudo-header sum of an L4 packet of l4_len bytes behind the IP header at l3;
 * TSO requests leave l4_len out (pass 0), like rte_ipv4_phdr_cksum */
static uint64_t phdr_sum(const uint8_t *l3, bool v4, uint8_t proto, uint32_t l4_len)
{
	uint64_t s = rte_cpu_to_be_16((uint16_t)proto) + rte_cpu_to_be_16((uint16_t)l4_len);
	if (v4)
		return s + ferry_stt_cksum(l3 + offsetof(struct rte_ipv4_hdr, src_addr), 8, 0);
	return s + ferry_stt_cksum(l3 + offsetof(struct rte_ipv6_hdr, src_addr), 32, 0);
}

/* ---- chains ---- */

/* links a new last segment t into packet h */
static inline void link_seg(struct rte_mbuf *h, struct rte_mbuf **tail, struct rte_mbuf *t)
{
	(*tail)->next = t;
	*tail = t;
	h->nb_segs++;
}

int ferry_stt_append(struct rte_mbuf *h, struct rte_mbuf **tail, struct ferry_stt_cursor *c, uint32_t len,
		     struct rte_mempool *pool, uint64_t *sum)
{
	uint32_t pos = 0;
	while (len > 0) {
		struct rte_mbuf *m = c->m;
		if (unlikely(m == NULL))
			return -1;
		if (c->off >= m->data_len) {
			c->off -= m->data_len;
			c->m = m->next;
			continue;
		}
		uint32_t n = RTE_MIN(len, (uint32_t)m->data_len - c->off);
		const uint8_t *src = rte_pktmbuf_mtod_offset(m, const uint8_t *, c->off);
		struct rte_mbuf *t = *tail;
		if (n <= FERRY_STT_COPY_MAX) {
			/* our own direct segments (h, earlier copies) take copies; an indirect
			 * one shares the source's buffer and must not be written */
			if (!RTE_MBUF_DIRECT(t) || rte_pktmbuf_tailroom(t) < n) {
				t = rte_pktmbuf_alloc(pool);
				if (unlikely(t == NULL))
					return -1;
				t->data_off = 0; /* a copy segment needs no headroom */
				link_seg(h, tail, t);
			}
			memcpy(rte_pktmbuf_mtod_offset(t, uint8_t *, t->data_len), src, n);
			t->data_len = (uint16_t)(t->data_len + n);
		} else {
			t = rte_pktmbuf_alloc(pool);
			if (unlikely(t == NULL))
				return -1;
			rte_pktmbuf_attach(t, m);
			t->ol_flags &= FERRY_STT_ATTACH_FLAGS; /* attach copied m's requests: not ours */
			t->data_off = (uint16_t)(m->data_off + c->off);
			t->data_len = (uint16_t)n;
			t->pkt_len = n;
			link_seg(h, tail, t);
		}
		if (sum != NULL)
			*sum += cksum_at(ferry_stt_cksum(src, n, 0), pos);
		h->pkt_len += n;
		pos += n, c->off += n, len -= n;
	}
	return 0;
}

/* m's packet metadata onto h, a new head for the same packet */
static void copy_meta(struct rte_mbuf *h, const struct rte_mbuf *m)
{
	h->ol_flags = (h->ol_flags & FERRY_STT_ATTACH_FLAGS) | (m->ol_flags & ~FERRY_STT_ATTACH_FLAGS);
	h->tx_offload = m->tx_offload;
	h->packet_type = m->packet_type;
	h->vlan_tci = m->vlan_tci;
	h->vlan_tci_outer = m->vlan_tci_outer;
	h->hash = m->hash;
	h->port = m->port;
}

/* m with its first need bytes contiguous and writable in its first segment: m itself
 * when it is, else a new head holding a copy of them, chained to the rest by
 * reference. NULL when that cannot be done (m freed). */
static struct rte_mbuf *own_head(struct rte_mbuf *m, uint32_t need, struct rte_mempool *pool)
{
	if (likely(RTE_MBUF_DIRECT(m) && rte_mbuf_refcnt_read(m) == 1 && m->data_len >= need))
		return m;
	struct rte_mbuf *h = rte_pktmbuf_alloc(pool);
	if (unlikely(h == NULL || rte_pktmbuf_tailroom(h) < need)) {
		rte_pktmbuf_free(h);
		rte_pktmbuf_free(m);
		return NULL;
	}
	uint8_t *d = rte_pktmbuf_mtod(h, uint8_t *);
	const void *src = rte_pktmbuf_read(m, 0, need, d);
	if (src != d)
		memcpy(d, src, need);
	h->data_len = (uint16_t)need;
	h->pkt_len = need;
	copy_meta(h, m);
	struct rte_mbuf *tail = h;
	struct ferry_stt_cursor c = { m, need };
	int rc = ferry_stt_append(h, &tail, &c, m->pkt_len - need, pool, NULL);
	rte_pktmbuf_free(m); /* what h references stays alive */
	if (unlikely(rc < 0)) {
		rte_pktmbuf_free(h);
		return NULL;
	}
	return h;
}

/* ---- checksums completed in place ---- */

/* Inner L3 is IPv4: from the request flags, else the version nibble. */
static inline bool l3_is_v4(const struct rte_mbuf *m, const uint8_t *l3)
{
	if (m->ol_flags & RTE_MBUF_F_TX_IPV4)
		return true;
	if (m->ol_flags & RTE_MBUF_F_TX_IPV6)
		return false;
	return (l3[0] >> 4) == 4;
}

/* bytes from the L3 header to the end of the IP packet, from the IP header; 0 if the
 * header is not one */
static uint32_t ip_len(const uint8_t *l3, bool v4)
{
	if (v4) {
		const struct rte_ipv4_hdr *ip = (const void *)l3;
		return (l3[0] >> 4) == 4 ? rte_be_to_cpu_16(ip->total_length) : 0;
	}
	const struct rte_ipv6_hdr *ip6 = (const void *)l3;
	return (l3[0] >> 4) == 6 ? IPV6_HLEN + rte_be_to_cpu_16(ip6->payload_len) : 0;
}

static inline void ipv4_cksum(uint8_t *l3)
{
	struct rte_ipv4_hdr *ip = (void *)l3;
	ip->hdr_checksum = 0;
	ip->hdr_checksum = (uint16_t)~ferry_stt_cksum_fold(ferry_stt_cksum(ip, (l3[0] & 0xf) * 4u, 0));
}

int ferry_stt_complete_cksums(struct rte_mbuf **mp, uint64_t port_offloads, struct rte_mempool *pool)
{
	struct rte_mbuf *m = *mp;
	uint64_t ol = m->ol_flags;
	uint64_t l4 = ol & RTE_MBUF_F_TX_L4_MASK;
	bool do_ip = (ol & RTE_MBUF_F_TX_IP_CKSUM) && !(port_offloads & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM);
	bool tcp = l4 == RTE_MBUF_F_TX_TCP_CKSUM;
	bool do_l4 = !(ol & RTE_MBUF_F_TX_TCP_SEG) &&
		     ((tcp && !(port_offloads & RTE_ETH_TX_OFFLOAD_TCP_CKSUM)) ||
		      (l4 == RTE_MBUF_F_TX_UDP_CKSUM && !(port_offloads & RTE_ETH_TX_OFFLOAD_UDP_CKSUM)));
	if (likely(!do_ip && !do_l4))
		return 0;

	uint32_t l3_off = m->l2_len, l4_off = l3_off + m->l3_len;
	uint32_t need = l4_off + (do_l4 ? (tcp ? TCP_HLEN_MIN : UDP_HLEN) : 0);
	if (unlikely(need > m->pkt_len || (do_ip && m->l3_len < IPV4_HLEN_MIN)))
		goto bad;
	m = own_head(m, need, pool);
	if (unlikely(m == NULL)) {
		*mp = NULL;
		return -FERRY_STT_REASON_NO_MBUF;
	}
	uint8_t *l3 = rte_pktmbuf_mtod_offset(m, uint8_t *, l3_off);
	bool v4 = l3_is_v4(m, l3);
	if (do_ip) {
		if (unlikely(!v4 || (l3[0] & 0xf) * 4u < IPV4_HLEN_MIN || (l3[0] & 0xf) * 4u > m->l3_len))
			goto bad;
		ipv4_cksum(l3);
		ol &= ~RTE_MBUF_F_TX_IP_CKSUM;
	}
	if (do_l4) {
		uint32_t ilen = ip_len(l3, v4);
		if (unlikely(ilen < m->l3_len + (tcp ? TCP_HLEN_MIN : UDP_HLEN) || l3_off + ilen > m->pkt_len))
			goto bad;
		uint32_t l4_len = ilen - m->l3_len;
		uint8_t *l4h = rte_pktmbuf_mtod_offset(m, uint8_t *, l4_off);
		uint16_t *field = (uint16_t *)(void *)(l4h + (tcp ? TCP_CKSUM_OFF : UDP_CKSUM_OFF));
		*field = 0;
		struct ferry_stt_cursor c = { m, l4_off };
		uint64_t s = phdr_sum(l3, v4, tcp ? IPPROTO_TCP : IPPROTO_UDP, l4_len) + ferry_stt_cksum_chain(&c, l4_len);
		uint16_t v = (uint16_t)~ferry_stt_cksum_fold(s);
		*field = (!tcp && v == 0) ? 0xffff : v; /* UDP sends a zero sum as all ones */
		ol &= ~RTE_MBUF_F_TX_L4_MASK;
	}
	m->ol_flags = ol;
	*mp = m;
	return 0;
bad:
	rte_pktmbuf_free(m);
	*mp = NULL;
	return -FERRY_STT_REASON_BAD_INNER;
}

/* ---- TCP segmentation in software ---- */

/* Cuts m, a TCP packet asking for TSO, into packets of at most tso_segsz payload bytes
 * in out[]: each a copy of the headers (IP length, ID and checksum, seq, flags and TCP
 * checksum fixed; FIN and PSH only on the last, CWR only on the first) chained to
 * m's payload. Returns how many, or 0 with m freed. */
static unsigned segment(struct rte_mbuf *m, uint64_t port_offloads, struct rte_mempool *pool, struct rte_mbuf **out,
			unsigned max_out)
{
	uint8_t hbuf[HDRS_MAX];
	uint32_t l3_off = m->l2_len, l4_off = l3_off + m->l3_len;
	const uint8_t *hdr = rte_pktmbuf_read(m, 0, l4_off + TCP_HLEN_MIN, hbuf);
	if (unlikely(hdr == NULL))
		goto drop;
	uint32_t thl = (uint32_t)(hdr[l4_off + 12] >> 4) * 4u;
	uint32_t hl = l4_off + thl;
	bool v4 = l3_is_v4(m, hdr + l3_off);
	uint32_t ilen = ip_len(hdr + l3_off, v4);
	if (unlikely(thl < TCP_HLEN_MIN || hl > HDRS_MAX || l3_off + ilen > m->pkt_len || l3_off + ilen < hl))
		goto drop;
	if (thl > TCP_HLEN_MIN && (hdr = rte_pktmbuf_read(m, 0, hl, hbuf)) == NULL)
		goto drop;
	uint32_t payload = l3_off + ilen - hl;
	uint32_t mss = m->tso_segsz;
	if (unlikely(mss == 0))
		goto drop;
	unsigned nseg = payload ? (payload + mss - 1) / mss : 1;
	if (unlikely(nseg > max_out))
		goto drop;
	if (unlikely(rte_pktmbuf_alloc_bulk(pool, out, nseg) != 0))
		goto drop;
	if (unlikely(rte_pktmbuf_tailroom(out[0]) < hl))
		goto drop_out;

	bool hw_ip = v4 && (port_offloads & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM);
	bool hw_l4 = port_offloads & RTE_ETH_TX_OFFLOAD_TCP_CKSUM;
	uint64_t ol = m->ol_flags & ~(FERRY_STT_ATTACH_FLAGS | RTE_MBUF_F_TX_TCP_SEG | RTE_MBUF_F_TX_L4_MASK | RTE_MBUF_F_TX_IP_CKSUM);
	if (hw_ip)
		ol |= RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM;
	if (hw_l4)
		ol |= (v4 ? RTE_MBUF_F_TX_IPV4 : RTE_MBUF_F_TX_IPV6) | RTE_MBUF_F_TX_TCP_CKSUM;
	const struct rte_tcp_hdr *th0 = (const void *)(hdr + l4_off);
	uint32_t seq0 = rte_be_to_cpu_32(th0->sent_seq);
	uint16_t id0 = v4 ? rte_be_to_cpu_16(((const struct rte_ipv4_hdr *)(const void *)(hdr + l3_off))->packet_id) : 0;
	struct ferry_stt_cursor c = { m, hl };
	for (unsigned i = 0; i < nseg; i++) {
		struct rte_mbuf *h = out[i], *tail = h;
		uint32_t plen = RTE_MIN(mss, payload - i * mss);
		uint8_t *d = (uint8_t *)rte_pktmbuf_append(h, (uint16_t)hl);
		memcpy(d, hdr, hl);
		uint64_t psum = 0;
		if (unlikely(ferry_stt_append(h, &tail, &c, plen, pool, hw_l4 ? NULL : &psum) < 0))
			goto drop_out;
		copy_meta(h, m);
		h->ol_flags = ol;
		h->l4_len = thl;
		h->tso_segsz = 0;

		uint8_t *l3 = d + l3_off;
		if (v4) {
			struct rte_ipv4_hdr *ip = (void *)l3;
			ip->total_length = rte_cpu_to_be_16((uint16_t)(hl - l3_off + plen));
			ip->packet_id = rte_cpu_to_be_16((uint16_t)(id0 + i));
			if (hw_ip)
				ip->hdr_checksum = 0;
			else
				ipv4_cksum(l3);
		} else {
			struct rte_ipv6_hdr *ip6 = (void *)l3;
			ip6->payload_len = rte_cpu_to_be_16((uint16_t)(hl - l3_off - IPV6_HLEN + plen));
		}
		struct rte_tcp_hdr *th = (void *)(d + l4_off);
		th->sent_seq = rte_cpu_to_be_32(seq0 + i * mss);
		if (i + 1 < nseg)
			th->tcp_flags &= (uint8_t)~(RTE_TCP_FIN_FLAG | RTE_TCP_PSH_FLAG);
		if (i > 0)
			th->tcp_flags &= (uint8_t)~RTE_TCP_CWR_FLAG;
		th->cksum = 0;
		uint64_t ph = phdr_sum(l3, v4, IPPROTO_TCP, thl + plen);
		if (hw_l4)
			th->cksum = ferry_stt_cksum_fold(ph); /* the NIC adds the rest */
		else
			th->cksum = (uint16_t)~ferry_stt_cksum_fold(ph + ferry_stt_cksum(th, thl, 0) + psum);
	}
	rte_pktmbuf_free(m);
	return nseg;
drop_out:
	for (unsigned i = 0; i < nseg; i++)
		rte_pktmbuf_free(out[i]);
drop:
	rte_pktmbuf_free(m);
	return 0;
}

unsigned ferry_stt_finish_offloads(struct rte_mbuf *m, uint64_t port_offloads, struct rte_mempool *pool,
				   struct rte_mbuf **out, unsigned max_out)
{
	if (unlikely(max_out == 0)) {
		rte_pktmbuf_free(m);
		return 0;
	}
	if (unlikely((m->ol_flags & RTE_MBUF_F_TX_TCP_SEG) && !(port_offloads & RTE_ETH_TX_OFFLOAD_TCP_TSO))) {
		/* what fits one segment needs only its checksums: ask for them instead */
		uint32_t hl = (uint32_t)m->l2_len + m->l3_len + m->l4_len;
		if (m->tso_segsz == 0 || m->l4_len == 0 || m->pkt_len > hl + m->tso_segsz)
			return segment(m, port_offloads, pool, out, max_out);
		m->ol_flags = (m->ol_flags & ~(RTE_MBUF_F_TX_TCP_SEG | RTE_MBUF_F_TX_L4_MASK)) | RTE_MBUF_F_TX_TCP_CKSUM;
		m->tso_segsz = 0;
	}
	if (unlikely(ferry_stt_complete_cksums(&m, port_offloads, pool) < 0))
		return 0;
	out[0] = m;
	return 1;
}
