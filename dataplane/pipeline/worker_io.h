/* A worker's output side, shared by the pipeline (worker.c) and the tunnel paths
 * (tunnel_io.c): packets are staged per output port and sent in bursts. Private to
 * the pipeline folder. */
#ifndef FERRY_WORKER_IO_H
#define FERRY_WORKER_IO_H

#include <rte_ethdev.h>
#include "worker.h"

/* offload requests a packet may carry to its NIC (virtio guests, decapsulated STT
 * frames with CSUM_PARTIAL, encapsulations handed to TSO) */
#define FERRY_TX_REQUEST_FLAGS (RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_L4_MASK | RTE_MBUF_F_TX_TCP_SEG | \
				RTE_MBUF_F_TX_UDP_SEG)

/* ---- output ---- */

/* Sends pkts[0..n) of bytes total out of port; what the NIC does not take is counted
 * and freed. */
static inline void transmit(struct ferry_worker *w, uint16_t out, struct rte_mbuf **pkts, uint16_t n, uint64_t bytes)
{
	uint16_t sent = rte_eth_tx_burst(out, w->txq, pkts, n);
	struct ferry_worker_port_stats *ps = &w->stats->ports[out];
	if (unlikely(sent < n)) {
		for (uint16_t i = sent; i < n; i++) {
			bytes -= pkts[i]->pkt_len;
			rte_pktmbuf_free(pkts[i]);
		}
		ps->tx_dropped += n - sent;
		w->stats->drops[FERRY_DROP_REASON_TX_FULL] += n - sent;
	}
	ps->tx_packets += sent;
	ps->tx_bytes += bytes;
}

static inline void flush_port(struct ferry_worker *w, uint16_t out)
{
	transmit(w, out, w->tx[out], w->tx_n[out], w->tx_bytes[out]);
	w->tx_n[out] = 0;
	w->tx_bytes[out] = 0;
}

static inline void flush_all(struct ferry_worker *w)
{
	uint64_t mask = w->tx_mask;
	while (mask) {
		uint16_t out = (uint16_t)__builtin_ctzll(mask);
		mask &= mask - 1;
		flush_port(w, out);
	}
	w->tx_mask = 0;
}

static inline void stage_raw(struct ferry_worker *w, uint16_t out, struct rte_mbuf *m)
{
	if (unlikely(w->tx_n[out] == FERRY_TX_STAGE))
		flush_port(w, out);
	w->tx[out][w->tx_n[out]++] = m;
	w->tx_bytes[out] += m->pkt_len;
	w->tx_mask |= 1ull << out;
}

/* Stages m for port out; what m asks of the NIC that the port cannot do is done
 * here in software first (rare: checked with one flag test). */
static inline void stage(struct ferry_worker *w, uint16_t out, struct rte_mbuf *m)
{
	if (unlikely(m->ol_flags & FERRY_TX_REQUEST_FLAGS)) {
		struct rte_mbuf *segs[FERRY_STT_MAX_SEGS];
		unsigned n = ferry_stt_finish_offloads(m, w->port_tx_offloads[out], w->pool, segs, FERRY_STT_MAX_SEGS);
		if (n == 0)
			w->stats->drops[FERRY_DROP_REASON_NO_MBUF]++;
		for (unsigned i = 0; i < n; i++)
			stage_raw(w, out, segs[i]);
		return;
	}
	stage_raw(w, out, m);
}

#endif
