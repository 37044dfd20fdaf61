/* A worker lcore: polls its rx queues in run-to-completion bursts (rx -> parse ->
 * exact-match cache or translation -> execute -> tx) on its own tx queue of every
 * port. No locks, syscalls or allocation on that path; counters live in the shared
 * segment with the worker as sole writer. */
#ifndef FERRY_WORKER_H
#define FERRY_WORKER_H

#include <stdbool.h>
#include <stdint.h>
#include <rte_mbuf.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>
#include "ferry_proto.h"
#include "../common/clock.h"
#include "../classifier/flow_table.h"
#include "../conntrack/conntrack.h"
#include "../conntrack/ipf.h"
#include "../parse/parse.h"
#include "../stt/stt.h"
#include "../stt/tunnel.h"
#include "../underlay/neigh.h"
#include "emc.h"
#include "l2.h"

#define FERRY_BURST 32
#define FERRY_MAX_RXQ_PER_WORKER 64
#define FERRY_TX_STAGE 64
#define FERRY_RECIRC_SLOTS 64
#define FERRY_PUNT_SLOTS 256
#define FERRY_PUNT_RATE_DEFAULT 1000 /* packets/s per worker to the controller */
/* bytes of the key kept across a recirculation: metadata, registers, tunnel, ct */
#define FERRY_KEY_META_BYTES offsetof(struct ferry_flow_key, ct_nw_src)
#define FERRY_NEIGH_HOLD 64      /* frames a worker holds for unresolved next hops */

/* A packet's tunnel metadata as the key lays it out (tun_id, tun_src, tun_dst):
 * set by decapsulation, changed by set_field, read by output to a tunnel port. */
struct ferry_tun_md {
	uint64_t tun_id;
	uint8_t tun_src[4];
	uint8_t tun_dst[4];
};

/* a frame waiting for its next hop's MAC */
struct ferry_held {
	struct rte_mbuf *m;
	uint64_t since_ns;
	uint32_t tport;
	rte_be32_t remote;
	uint64_t context;
	rte_be16_t src_port;
};

struct ferry_rxq {
	uint16_t port;
	uint16_t queue;
};

/* a packet for ferry-control (controller action), handed to the main lcore by value */
struct ferry_punt {
	struct rte_mbuf *m;
	uint64_t cookie;
	uint32_t in_port;
	uint16_t max_len;
	uint8_t table_id;
	uint8_t reason;
};

struct ferry_recirc {
	struct rte_mbuf *m;
	uint8_t table;
	uint8_t depth;
	uint32_t in_port;
	const struct ferry_act_ct *ct;  /* the ct(table=) that sent it round, tracked at the next pass
					 * (NULL: not tracked: untracked by notrack, or has_result) */
	bool has_result;                /* a fragment whose datagram was tracked already: ct_result */
	struct ferry_ct_result ct_result;
	uint8_t meta[FERRY_KEY_META_BYTES] __attribute__((aligned(8)));
};

struct ferry_worker {
	uint16_t id;
	uint16_t txq;            /* this worker's tx queue on every port */
	uint16_t n_ports;
	uint16_t n_rxq;
	unsigned lcore;
	uint32_t sleep_us;       /* sleep when idle (0: pure polling) */
	struct ferry_rxq rxq[FERRY_MAX_RXQ_PER_WORKER];
	struct ferry_worker_stats *stats;    /* shared segment */
	struct ferry_flow_stats *flow_stats; /* shared segment, [max_flows] */
	struct ferry_table_stats *table_stats; /* shared segment, [N_TABLES] */
	const struct ferry_flow_table *flows;
	struct ferry_ct *ct;                 /* shared tracker (NULL: ct() gives +trk+inv) */
	struct ferry_ct_thread ct_thread;    /* this worker's entry cache and counters */
	struct ferry_ipf *ipf;               /* fragments held until their datagram is whole */
	uint8_t *whole;                      /* the last datagram reassembled, for a later ct() */
	uint32_t whole_len;                  /* 0: none */
	uint16_t whole_l3;
	struct ferry_emc *emc;
	struct ferry_l2 *l2;
	/* tunnels (NULL: none) */
	const struct ferry_tunnel_table *tunnels;
	const struct ferry_tunnels *tn;      /* this loop's snapshot */
	struct ferry_neigh_table *neigh;
	const struct ferry_stt_settings *stt_settings;
	uint32_t stt_settings_version;
	struct ferry_stt_reasm *reasm;
	struct ferry_ipf *outer_ipf;         /* outer IPv4 fragments to a tunnel endpoint */
	uint32_t stt_packet_id;
	uint16_t stt_ip_id;
	uint16_t n_held;
	uint64_t stt_own[FERRY_STT_REASONS]; /* counted by the worker, besides the reassembler's */
	uint64_t port_tx_offloads[RTE_MAX_ETHPORTS];
	struct ferry_held held[FERRY_NEIGH_HOLD];
	struct rte_mempool *pool;            /* for copies */
	struct rte_ring *punts;              /* to the main lcore */
	uint64_t punt_tokens, punt_refill_ns;
	uint32_t punt_rate;
	struct rte_rcu_qsbr *qsv;
	struct ferry_tsc_clock clock;
	const volatile bool *quit;
	uint64_t now_ns;                     /* of the current burst */
	uint64_t version;                    /* of the current burst */
	uint32_t headers_needed;             /* of the current burst */
	/* headerless mode: each in_port's program for one version */
	uint64_t hl_version[RTE_MAX_ETHPORTS];
	const struct ferry_emc_entry *hl_entry[RTE_MAX_ETHPORTS];
	/* recirculation queue (ct(table=)) */
	uint16_t rq_n;
	struct ferry_recirc rq[FERRY_RECIRC_SLOTS];
	/* packets staged per output port */
	uint64_t tx_mask;
	uint16_t tx_n[RTE_MAX_ETHPORTS];
	uint64_t tx_bytes[RTE_MAX_ETHPORTS];
	struct rte_mbuf *tx[RTE_MAX_ETHPORTS][FERRY_TX_STAGE];
} __rte_cache_aligned;

/* Sets up what a worker owns besides its shared counters: cache, punt ring. */
int ferry_worker_init(struct ferry_worker *w, int socket);
void ferry_worker_fini(struct ferry_worker *w);

/* Runs one received burst (n <= FERRY_BURST, all from in_port) through the pipeline,
 * recirculations included, and transmits what it outputs. */
void ferry_worker_process_burst(struct ferry_worker *w, uint16_t in_port, struct rte_mbuf **pkts, uint16_t n);

/* Runs decapsulated frames through the pipeline: frame i comes in on in_port[i] with
 * tunnel metadata md[i]. */
void ferry_worker_process_decapped(struct ferry_worker *w, struct rte_mbuf **pkts, const uint32_t *in_port,
				   const struct ferry_tun_md *md, uint16_t n);

/* ---- tunnel_io.c ---- */

/* Sets up the reassembler and outer-fragment table when w->tunnels is set. 0 or -1. */
int ferry_tunnel_io_init(struct ferry_worker *w, int socket);
void ferry_tunnel_io_fini(struct ferry_worker *w);
/* A burst from an underlay port: ARP for our addresses is answered or learned, STT
 * segments for our endpoints are reassembled and their frames run through the
 * pipeline; returns how many packets are left for the pipeline (pkts compacted). */
uint16_t ferry_underlay_rx(struct ferry_worker *w, uint16_t port, struct rte_mbuf **pkts, uint16_t n);
/* Output of m (owned) to tunnel port tport: encapsulated and staged on the underlay,
 * or held until the next hop resolves, or dropped and counted. */
void ferry_tunnel_output(struct ferry_worker *w, struct rte_mbuf *m, uint32_t tport, const struct ferry_tun_md *md,
			 const struct ferry_flow_key *key);
/* Once a loop: held frames, reassembly timeouts, settings, counters. */
void ferry_tunnel_io_poll(struct ferry_worker *w);

/* lcore entry point (rte_eal_remote_launch) */
int ferry_worker_main(void *arg);

#endif
