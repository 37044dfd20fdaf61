/* The tunnel side of a worker: what arrives on an underlay port for one of our
 * tunnel endpoints (ARP, STT segments, outer fragments) and what leaves through a
 * tunnel port (next-hop resolution, encapsulation). The pipeline itself is in
 * worker.c; this file only hands it decapsulated frames and takes its tunnel
 * outputs. */
#include "worker.h"

#include <rte_arp.h>
#include <rte_hash_crc.h>
#include <rte_ip_frag.h>
#include <rte_ip.h>
#include <rte_malloc.h>
#include <rte_random.h>
#include <rte_tcp.h>
#include "worker_io.h"
#include "../common/mbuf_bytes.h"
#include "../underlay/arp.h"

#define ETH_TYPE_IPV4 0x0800
#define ETH_TYPE_ARP 0x0806
#define ETH_HLEN 14u
/* the packet id's low bits are the worker id, so ids are unique across workers
 * without sharing a counter (OVS's ack_seq() does the same with the cpu id) */
#define PACKET_ID_WORKER_BITS 6
_Static_assert(FERRY_MAX_WORKERS <= (1u << PACKET_ID_WORKER_BITS), "worker id fits the packet id's low bits");
/* source ports from the dynamic range keep entropy and never look like a service */
#define ENTROPY_PORT_BASE 32768u

static inline void count_stt(struct ferry_worker *w, unsigned reason)
{
	w->stt_own[reason]++;
	w->stats->drops[FERRY_DROP_REASON_TUNNEL]++;
}

/* an outer fragment of an abandoned datagram */
static void release_outer_fragment(void *arg, void *handle)
{
	struct ferry_worker *w = arg;
	count_stt(w, FERRY_STT_REASON_OUTER_FRAG);
	rte_pktmbuf_free(handle);
}

int ferry_tunnel_io_init(struct ferry_worker *w, int socket)
{
	if (w->tunnels == NULL)
		return 0;
	w->reasm = ferry_stt_reasm_create(&(struct ferry_stt_reasm_config){
		.seed = (uint32_t)rte_rand(), .socket = socket, .pool = w->pool,
		.timeout_ms = w->stt_settings ? w->stt_settings->reasm_timeout_ms : 0,
		.mem_max = w->stt_settings ? w->stt_settings->reasm_mem_max : 0 });
	w->outer_ipf = ferry_ipf_create(&(struct ferry_ipf_config){ 0 });
	if (w->reasm == NULL || w->outer_ipf == NULL)
		return -1;
	ferry_ipf_set_release(w->outer_ipf, release_outer_fragment, w);
	w->stt_settings_version = w->stt_settings ? w->stt_settings->version : 0;
	w->stt_packet_id = (uint32_t)rte_rand();
	w->stt_ip_id = (uint16_t)rte_rand();
	return 0;
}

void ferry_tunnel_io_fini(struct ferry_worker *w)
{
	for (uint16_t i = 0; i < w->n_held; i++)
		rte_pktmbuf_free(w->held[i].m);
	w->n_held = 0;
	ferry_stt_reasm_destroy(w->reasm);
	w->reasm = NULL;
	ferry_ipf_destroy(w->outer_ipf);
	w->outer_ipf = NULL;
}

/* ---- receive ---- */

/* ARP on an underlay port: requests for our addresses are answered, replies to us
 * learned (the neighbour cache also refreshes entries it has from other ARP it
 * sees). Returns true when m was consumed. */
static bool arp_in(struct ferry_worker *w, uint16_t port, struct rte_mbuf *m)
{
	struct ferry_arp_info a;
	if (!ferry_arp_parse(rte_pktmbuf_mtod(m, const uint8_t *), rte_pktmbuf_data_len(m), &a))
		return false;
	bool for_us = ferry_tunnel_is_endpoint(w->tn, port, a.tpa, 0);
	if (a.spa != 0)
		ferry_neigh_learn(w->neigh, port, a.spa, &a.sha, w->now_ns, for_us);
	if (!for_us)
		return false; /* someone else's: the pipeline decides */
	if (a.op == RTE_ARP_OP_REQUEST) {
		w->stats->arp_rx_requests++;
		ferry_arp_make_reply(m, &a, &w->tunnels->underlay[port].mac);
		stage_raw(w, port, m);
		w->stats->arp_tx_replies++;
		return true;
	}
	w->stats->arp_rx_replies++;
	rte_pktmbuf_free(m);
	return true;
}

/* An outer IPv4 fragment for one of our endpoints: held until its datagram is
 * whole (seed 002: the underlay may fragment what a peer sent without DF). Returns
 * the whole datagram as a new packet, or NULL when nothing goes on now. */
static struct rte_mbuf *outer_fragment(struct ferry_worker *w, struct rte_mbuf *m)
{
	if (unlikely(m->nb_segs > 1) && rte_pktmbuf_linearize(m) != 0) {
		rte_pktmbuf_free(m);
		count_stt(w, FERRY_STT_REASON_OUTER_FRAG);
		return NULL;
	}
	struct ferry_ipf_frag f = { .data = rte_pktmbuf_mtod(m, const uint8_t *), .len = rte_pktmbuf_data_len(m),
				    .l3_ofs = ETH_HLEN, .zone = 0, .handle = m };
	struct ferry_ipf_done done;
	switch (ferry_ipf_add(w->outer_ipf, &f, w->now_ns, &done, NULL)) {
	case FERRY_IPF_NOT_FRAGMENT:
		return m;
	case FERRY_IPF_HELD:
		return NULL;
	case FERRY_IPF_DROP:
		rte_pktmbuf_free(m);
		count_stt(w, FERRY_STT_REASON_OUTER_FRAG);
		return NULL;
	case FERRY_IPF_DONE:
	default:
		break;
	}
	struct rte_mbuf *whole = ferry_mbuf_from_bytes(w->pool, done.whole, done.whole_len, 0);
	for (unsigned k = 0; k < done.n_handles; k++)
		rte_pktmbuf_free(done.handles[k]);
	if (whole == NULL)
		count_stt(w, FERRY_STT_REASON_NO_MBUF);
	return whole;
}

uint16_t ferry_underlay_rx(struct ferry_worker *w, uint16_t port, struct rte_mbuf **pkts, uint16_t n)
{
	const struct ferry_tunnels *ts = w->tn;
	struct rte_mbuf *frames[FERRY_BURST];
	uint32_t fport[FERRY_BURST];
	struct ferry_tun_md md[FERRY_BURST];
	uint16_t nf = 0, kept = 0;
	uint64_t bytes = 0;
	uint32_t taken = 0;

	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *m = pkts[i];
		const uint8_t *d = rte_pktmbuf_mtod(m, const uint8_t *);
		uint32_t len = rte_pktmbuf_data_len(m);
		if (unlikely(len < ETH_HLEN + sizeof(struct rte_ipv4_hdr)))
			goto keep_arp;
		uint16_t et = (uint16_t)(d[12] << 8 | d[13]);
		if (et != ETH_TYPE_IPV4)
			goto keep_arp;
		const struct rte_ipv4_hdr *ip = (const struct rte_ipv4_hdr *)(const void *)(d + ETH_HLEN);
		if (ip->next_proto_id != IPPROTO_TCP || !ferry_tunnel_is_endpoint(ts, port, ip->dst_addr, 0))
			goto keep;
		uint32_t plen = m->pkt_len;
		if (unlikely(rte_ipv4_frag_pkt_is_fragmented(ip))) {
			bytes += plen;
			taken++;
			m = outer_fragment(w, m);
			if (m == NULL)
				continue;
			d = rte_pktmbuf_mtod(m, const uint8_t *);
			ip = (const struct rte_ipv4_hdr *)(const void *)(d + ETH_HLEN);
			plen = 0; /* counted */
		}
		uint32_t ihl = (ip->version_ihl & 0x0f) * 4u;
		if (unlikely(rte_pktmbuf_data_len(m) < ETH_HLEN + ihl + 4u)) {
			if (plen == 0) { /* a reassembled datagram we cannot read: ours, dropped */
				rte_pktmbuf_free(m);
				count_stt(w, FERRY_STT_REASON_BAD_HEADER);
				continue;
			}
			goto keep;
		}
		const struct rte_tcp_hdr *th = (const struct rte_tcp_hdr *)(const void *)(d + ETH_HLEN + ihl);
		if (!ferry_tunnel_is_endpoint(ts, port, ip->dst_addr, th->dst_port)) {
			if (plen == 0) { /* reassembled, but for no tunnel's port: the pipeline's */
				pkts[kept++] = m;
				continue;
			}
			goto keep;
		}
		bytes += plen;
		taken += plen != 0;
		w->stats->stt_rx_segments++;
		struct ferry_stt_rx rx;
		if (ferry_stt_reasm_add(w->reasm, m, ETH_HLEN, w->now_ns, &rx) != FERRY_STT_DONE)
			continue; /* held, or dropped and counted */
		uint32_t tport = ferry_tunnel_match(ts, port, rx.dst_ip, rx.dst_port, rx.src_ip, rx.context);
		if (unlikely(tport == FERRY_PORT_NONE)) {
			rte_pktmbuf_free(rx.frame);
			count_stt(w, FERRY_STT_REASON_NO_TUNNEL);
			continue;
		}
		w->stats->stt_rx_frames++;
		frames[nf] = rx.frame;
		fport[nf] = tport;
		md[nf].tun_id = rx.context;
		memcpy(md[nf].tun_src, &rx.src_ip, 4);
		memcpy(md[nf].tun_dst, &rx.dst_ip, 4);
		nf++;
		continue;
keep_arp:
		if (len >= ETH_HLEN && d[12] == (ETH_TYPE_ARP >> 8) && d[13] == (ETH_TYPE_ARP & 0xff)) {
			uint32_t arp_len = m->pkt_len; /* m may be freed or become a reply */
			if (arp_in(w, port, m)) {
				bytes += arp_len;
				taken++;
				continue;
			}
		}
keep:
		pkts[kept++] = m;
	}
	struct ferry_worker_port_stats *in = &w->stats->ports[port];
	in->rx_packets += taken;
	in->rx_bytes += bytes;
	if (nf)
		ferry_worker_process_decapped(w, frames, fport, md, nf);
	return kept;
}

/* ---- send ---- */

/* The outer source port: a hash of the inner flow, so ECMP and RSS spread tunnels
 * and one inner flow keeps one path (and one rx queue at the far end). */
static rte_be16_t entropy(const struct rte_mbuf *m, const struct ferry_flow_key *k)
{
	uint32_t h;
	if (k != NULL && k->eth_type != 0) {
		uint8_t macs[12] __rte_aligned(8); /* the key's MACs are not 8-byte aligned */
		memcpy(macs, k->eth_src, sizeof(macs));
		h = rte_hash_crc(k->nw_src, sizeof(k->nw_src) + sizeof(k->nw_dst), k->eth_type);
		h = rte_hash_crc_4byte((uint32_t)k->tp_src << 16 | k->tp_dst, h ^ k->nw_proto);
		h = rte_hash_crc(macs, sizeof(macs), h);
	} else if (m->ol_flags & RTE_MBUF_F_RX_RSS_HASH) {
		h = m->hash.rss;
	} else { /* not parsed (no flow reads headers): the MAC pair still separates hosts */
		h = rte_hash_crc(rte_pktmbuf_mtod(m, const void *), m->data_len < 12 ? m->data_len : 12, 0);
	}
	return rte_cpu_to_be_16((uint16_t)(ENTROPY_PORT_BASE | (h & (ENTROPY_PORT_BASE - 1))));
}

static void arp_request(struct ferry_worker *w, const struct ferry_tunnel *t, rte_be32_t next_hop)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(w->pool);
	if (m == NULL) {
		w->stats->drops[FERRY_DROP_REASON_NO_MBUF]++;
		return;
	}
	ferry_arp_build_request(m, &t->src_mac, t->local_ip, next_hop);
	stage_raw(w, t->underlay_port, m);
	w->stats->arp_tx_requests++;
}

/* the inner packet's ECN field, copied to the outer header (RFC 6040 normal mode) so
 * congestion marked in the underlay reaches the inner packet at decapsulation */
static uint8_t inner_ecn(const struct rte_mbuf *m)
{
	const uint8_t *d = rte_pktmbuf_mtod(m, const uint8_t *);
	if (m->data_len < ETH_HLEN + 2u)
		return 0;
	uint16_t et = (uint16_t)(d[12] << 8 | d[13]);
	if (et == ETH_TYPE_IPV4)
		return d[ETH_HLEN + 1] & 3;
	if (et == 0x86dd)
		return (uint8_t)((d[ETH_HLEN + 1] >> 4) & 3);
	return 0;
}

static void encap_send(struct ferry_worker *w, struct rte_mbuf *m, uint32_t tport, rte_be32_t remote, uint64_t context,
		       rte_be16_t src_port, const struct rte_ether_addr *next_hop_mac)
{
	const struct ferry_tunnel *t = &w->tn->t[tport];
	struct ferry_worker_port_stats *ps = &w->stats->ports[tport];
	uint32_t inner_len = m->pkt_len;
	struct ferry_stt_encap p = {
		.src_mac = t->src_mac, .dst_mac = *next_hop_mac,
		.src_ip = t->local_ip, .dst_ip = remote,
		.src_port = src_port, .dst_port = t->dst_port,
		.tos = (uint8_t)((t->tos & ~3u) | inner_ecn(m)), .ttl = t->ttl,
		.context = context,
		.packet_id = w->stt_packet_id++ << PACKET_ID_WORKER_BITS | w->id,
		.ip_id = w->stt_ip_id,
		.mss = t->mss,
		.tx_offloads = t->tx_offloads,
	};
	struct rte_mbuf *segs[FERRY_STT_MAX_SEGS];
	int n = ferry_stt_encap(m, &p, w->pool, segs, FERRY_STT_MAX_SEGS);
	if (unlikely(n < 0)) {
		count_stt(w, (unsigned)-n);
		ps->tx_dropped++;
		return;
	}
	/* under TSO the NIC numbers the segments: leave room for all of them */
	w->stt_ip_id = (uint16_t)(w->stt_ip_id + (inner_len + FERRY_STT_HDR_LEN + t->mss - 1) / t->mss);
	w->stats->stt_tx_frames++;
	w->stats->stt_tx_segments += (uint64_t)n;
	ps->tx_packets++;
	ps->tx_bytes += inner_len;
	for (int i = 0; i < n; i++)
		stage_raw(w, t->underlay_port, segs[i]);
}

static void drop_unresolved(struct ferry_worker *w, struct rte_mbuf *m, uint32_t tport)
{
	w->stats->neigh_failures++;
	w->stats->drops[FERRY_DROP_REASON_NEIGH_UNRESOLVED]++;
	w->stats->ports[tport].tx_dropped++;
	rte_pktmbuf_free(m);
}

/* Resolves the next hop and sends, or tells the caller to hold m (returns false). */
static bool try_send(struct ferry_worker *w, struct rte_mbuf *m, uint32_t tport, rte_be32_t remote, uint64_t context,
		     rte_be16_t src_port)
{
	const struct ferry_tunnel *t = &w->tn->t[tport];
	rte_be32_t nh = ferry_tunnel_next_hop(t, remote);
	struct rte_ether_addr mac;
	bool ask = false;
	enum ferry_neigh_result r = ferry_neigh_lookup(w->neigh, t->underlay_port, nh, w->now_ns, &mac, &ask);
	if (ask)
		arp_request(w, t, nh);
	if (likely(r == FERRY_NEIGH_HIT)) {
		encap_send(w, m, tport, remote, context, src_port, &mac);
		return true;
	}
	if (r == FERRY_NEIGH_FAILED) {
		drop_unresolved(w, m, tport);
		return true;
	}
	return false;
}

void ferry_tunnel_output(struct ferry_worker *w, struct rte_mbuf *m, uint32_t tport, const struct ferry_tun_md *md,
			 const struct ferry_flow_key *key)
{
	const struct ferry_tunnel *t = &w->tn->t[tport];
	rte_be32_t remote = t->remote_ip;
	if (t->flags & FERRY_TUNNEL_FLAG_REMOTE_FLOW)
		memcpy(&remote, md->tun_dst, 4);
	if (unlikely(remote == 0)) {
		rte_pktmbuf_free(m);
		count_stt(w, FERRY_STT_REASON_NO_REMOTE);
		w->stats->ports[tport].tx_dropped++;
		return;
	}
	uint64_t context = t->flags & FERRY_TUNNEL_FLAG_KEY_FLOW ? md->tun_id : t->key;
	rte_be16_t src_port = entropy(m, key);
	/* encapsulation writes headers in front of the frame: never into a buffer another
	 * output of this packet still holds */
	if (unlikely(rte_mbuf_refcnt_read(m) > 1 || RTE_MBUF_CLONED(m))) {
		struct rte_mbuf *c = rte_pktmbuf_copy(m, w->pool, 0, UINT32_MAX);
		rte_pktmbuf_free(m);
		if (c == NULL) {
			count_stt(w, FERRY_STT_REASON_NO_MBUF);
			w->stats->ports[tport].tx_dropped++;
			return;
		}
		m = c;
	}
	if (try_send(w, m, tport, remote, context, src_port))
		return;
	w->stats->neigh_misses++;
	if (w->n_held == FERRY_NEIGH_HOLD) {
		drop_unresolved(w, m, tport);
		return;
	}
	w->held[w->n_held++] = (struct ferry_held){ .m = m, .since_ns = w->now_ns, .tport = tport, .remote = remote,
						    .context = context, .src_port = src_port };
}

/* Held frames whose next hop answered go out; those whose next hop failed, or whose
 * tunnel went away, are dropped. */
static void process_held(struct ferry_worker *w)
{
	uint64_t give_up = (uint64_t)(ferry_neigh_retries(w->neigh) + 1) * FERRY_NEIGH_RETRY_NS;
	for (uint16_t i = 0; i < w->n_held;) {
		struct ferry_held *h = &w->held[i];
		bool done;
		if (!w->tn->t[h->tport].active) {
			rte_pktmbuf_free(h->m);
			count_stt(w, FERRY_STT_REASON_NO_TUNNEL);
			done = true;
		} else if (w->now_ns - h->since_ns > give_up) {
			drop_unresolved(w, h->m, h->tport);
			done = true;
		} else {
			done = try_send(w, h->m, h->tport, h->remote, h->context, h->src_port);
		}
		if (done)
			*h = w->held[--w->n_held];
		else
			i++;
	}
}

void ferry_tunnel_io_poll(struct ferry_worker *w)
{
	if (w->reasm == NULL)
		return;
	const struct ferry_stt_settings *s = w->stt_settings;
	if (s != NULL && unlikely(__atomic_load_n(&s->version, __ATOMIC_ACQUIRE) != w->stt_settings_version)) {
		w->stt_settings_version = s->version;
		ferry_stt_reasm_set_limits(w->reasm, s->reasm_timeout_ms, s->reasm_mem_max);
	}
	if (unlikely(w->n_held != 0))
		process_held(w);
	if (ferry_stt_reasm_frames(w->reasm) != 0)
		ferry_stt_reasm_expire(w->reasm, w->now_ns);
	if (unlikely(ferry_ipf_held(w->outer_ipf) != 0))
		ferry_ipf_expire(w->outer_ipf, w->now_ns);
	const uint64_t *c = ferry_stt_reasm_counters(w->reasm);
	for (unsigned i = 0; i < FERRY_STT_REASONS; i++)
		w->stats->stt[i] = c[i] + w->stt_own[i];
	w->stats->stt_reasm_frames = ferry_stt_reasm_frames(w->reasm);
	w->stats->stt_reasm_bytes = ferry_stt_reasm_mem(w->reasm);
	w->stats->neigh_held = w->n_held;
	if (w->tx_mask)
		flush_all(w); /* held frames sent, ARP requests */
}
