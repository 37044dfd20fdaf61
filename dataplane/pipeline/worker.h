/* A worker lcore: polls its rx queues in run-to-completion bursts (rx -> classify ->
 * act -> tx), on its own tx queue of every port. No locks, syscalls or allocation on
 * that path; its counters live in the shared segment with the worker as sole writer. */
#ifndef FERRY_WORKER_H
#define FERRY_WORKER_H

#include <stdbool.h>
#include <stdint.h>
#include <rte_mbuf.h>
#include <rte_rcu_qsbr.h>
#include "ferry_proto.h"
#include "../common/clock.h"
#include "../classifier/flow_table.h"

#define FERRY_BURST 32
#define FERRY_MAX_RXQ_PER_WORKER 64

struct ferry_rxq {
	uint16_t port;
	uint16_t queue;
};

struct ferry_worker {
	uint16_t id;
	uint16_t txq;            /* this worker's tx queue on every port */
	uint16_t n_ports;
	uint16_t n_rxq;
	unsigned lcore;
	uint32_t sleep_us;       /* sleep when idle (0: pure polling) */
	struct ferry_rxq rxq[FERRY_MAX_RXQ_PER_WORKER];
	struct ferry_worker_stats *stats;  /* shared segment */
	struct ferry_flow_stats *flow_stats; /* shared segment, [max_flows] */
	const struct ferry_flow_table *flows;
	struct rte_rcu_qsbr *qsv;
	struct ferry_tsc_clock clock;
	const volatile bool *quit;
	/* packets staged per output port within one burst */
	uint16_t tx_n[RTE_MAX_ETHPORTS];
	uint64_t tx_bytes[RTE_MAX_ETHPORTS];
	struct rte_mbuf *tx[RTE_MAX_ETHPORTS][FERRY_BURST];
} __rte_cache_aligned;

/* Runs one received burst (n <= FERRY_BURST, all from in_port) through the pipeline
 * and transmits what it outputs. */
void ferry_worker_process_burst(struct ferry_worker *w, const struct ferry_classifier *cls,
				uint16_t in_port, struct rte_mbuf **pkts, uint16_t n, uint64_t now_ns);

/* lcore entry point (rte_eal_remote_launch) */
int ferry_worker_main(void *arg);

#endif
