/* Ferry "hypervisors" in one process for the pipeline tests that join workers through
 * STT (test_tunnel.c, test_floods.c): each node is a worker with its own flow table,
 * tunnel table, neighbour cache and STT settings, as two ferryds would have, over the
 * ring ethdevs of test_ring_ports.h. The includer defines N_PORTS, RING and MAX_FLOWS;
 * time is the test's (now), so timeouts pass without sleeping. */
#ifndef FERRY_TEST_NODE_H
#define FERRY_TEST_NODE_H

#include <stdlib.h>
#include <rte_malloc.h>
#include <rte_ring.h>
#include "../common/ftest.h"
#include "../stt/stt.h"
#include "test_ring_ports.h"
#include "worker.h"

static struct rte_ring *rx_ring[N_PORTS], *tx_ring[N_PORTS];
static struct ferry_ports ports;
static uint64_t now = 1000000000000ull;
static unsigned mbufs_at_start; /* ferry_ports_mbufs_available once the ports are up */

struct node {
	uint16_t vm_port, underlay_port;
	struct ferry_flow_table ft;
	struct ferry_tunnel_table tt;
	struct ferry_neigh_table *neigh;
	struct ferry_stt_settings settings; /* what STT_SET_OPTIONS writes */
	struct ferry_worker w;
	struct ferry_worker_stats ws __rte_cache_aligned;
	struct ferry_flow_stats fs[MAX_FLOWS];
	struct ferry_table_stats ts[FERRY_N_TABLES];
};

/* ring ports have no address of their own: the nodes give each port one, as ferryd
 * takes a NIC's */
static inline void port_mac(uint16_t port, struct rte_ether_addr *mac)
{
	*mac = (struct rte_ether_addr){ { 0x02, 0xf0, 0, 0, 0, (uint8_t)(port + 1) } };
}

/* A node on vm_port and underlay_port. With ct, a conntrack node without tunnels
 * (the two ports only name its two sides). */
static inline void node_init(struct node *n, uint16_t id, uint16_t vm_port, uint16_t underlay_port, struct ferry_ct *ct)
{
	n->vm_port = vm_port;
	n->underlay_port = underlay_port;
	/* ferryd's defaults, as its main() sets them */
	n->settings = (struct ferry_stt_settings){ .version = 1, .reasm_timeout_ms = FERRY_STT_DEFAULT_TIMEOUT_MS,
						   .reasm_mem_max = FERRY_STT_DEFAULT_MEM_MAX };
	if (ferry_flow_table_init(&n->ft, MAX_FLOWS, N_PORTS, NULL, NULL, NULL) != 0 ||
	    ferry_tunnel_table_init(&n->tt, N_PORTS, NULL) != 0 || (n->neigh = ferry_neigh_create(0)) == NULL)
		exit(1);
	for (uint16_t p = 0; p < N_PORTS; p++)
		port_mac(p, &n->tt.underlay[p].mac);
	struct ferry_worker *w = &n->w;
	w->id = id, w->txq = 0, w->n_ports = N_PORTS, w->qsv = NULL;
	w->stats = &n->ws, w->flow_stats = n->fs, w->table_stats = n->ts;
	w->flows = &n->ft, w->version = ferry_flow_table_version(&n->ft);
	w->pool = ports.pool[0];
	w->tunnels = ct ? NULL : &n->tt;
	w->neigh = n->neigh;
	w->stt_settings = &n->settings;
	w->ct = ct;
	w->l2 = rte_zmalloc("test_l2", sizeof(struct ferry_l2), RTE_CACHE_LINE_SIZE);
	if (w->l2 == NULL || ferry_worker_init(w, 0) != 0)
		exit(1);
	w->tn = ferry_tunnels_read(&n->tt);
}

static inline void node_fini(struct node *n)
{
	ferry_worker_fini(&n->w);
	rte_free(n->w.l2);
	ferry_tunnel_table_fini(&n->tt);
	ferry_neigh_destroy(n->neigh);
	ferry_flow_table_fini(&n->ft);
}

/* n_pkts packets in on in_port, in bursts, at the test's time; then the tunnel I/O */
static inline void run(struct node *n, uint16_t in_port, struct rte_mbuf **pkts, uint16_t n_pkts)
{
	n->w.now_ns = now;
	n->w.version = ferry_flow_table_version(&n->ft);
	n->w.headers_needed = n->ft.headers_needed;
	n->w.tn = ferry_tunnels_read(&n->tt);
	for (uint16_t i = 0; i < n_pkts; i += FERRY_BURST)
		ferry_worker_process_burst(&n->w, in_port, pkts + i, (uint16_t)RTE_MIN(FERRY_BURST, n_pkts - i));
	ferry_tunnel_io_poll(&n->w);
}

/* the tunnel I/O alone (ARP retries, reassembly timeouts, new STT settings) */
static inline void poll_node(struct node *n)
{
	n->w.now_ns = now;
	n->w.tn = ferry_tunnels_read(&n->tt);
	ferry_tunnel_io_poll(&n->w);
}

/* frees what port sent; returns how many */
static inline unsigned drain(uint16_t port)
{
	struct rte_mbuf *m[RING];
	unsigned n = rte_ring_dequeue_burst(tx_ring[port], (void **)m, RING, NULL);
	rte_pktmbuf_free_bulk(m, n);
	return n;
}

/* After the tests: nothing left on any port, held by a worker or in reassembly, and
 * every mbuf back where it was at the start. */
static inline void check_no_mbuf_leaked(const struct node *a, const struct node *b)
{
	for (uint16_t p = 0; p < N_PORTS; p++)
		drain(p);
	CHECK_EQ(a->w.n_held + b->w.n_held, 0);
	CHECK_EQ(ferry_stt_reasm_frames(a->w.reasm) + ferry_stt_reasm_frames(b->w.reasm), 0);
	CHECK_EQ(ferry_ports_mbufs_available(&ports), mbufs_at_start);
}

#endif
