#include "worker.h"

#include <rte_cycles.h>
#include <rte_ethdev.h>

/* Idle loops in a row before a worker with sleep_us set naps; short gaps between
 * bursts must not cost a wake-up. */
#define IDLE_LOOPS_BEFORE_SLEEP 128u

static inline void drop(struct ferry_worker *w, struct rte_mbuf *m, enum ferry_drop_reason why)
{
	w->stats->drops[why]++;
	rte_pktmbuf_free(m);
}

static inline void flush_flow(struct ferry_worker *w, const struct ferry_rule *r,
			      uint64_t pkts, uint64_t bytes, uint64_t now_ns)
{
	struct ferry_flow_stats *fs = &w->flow_stats[r->slot];
	fs->packets += pkts;
	fs->bytes += bytes;
	fs->last_hit_ns = now_ns;
}

/* Sends pkts[0..n) of bytes total on out and counts what the NIC did not take. */
static inline void transmit(struct ferry_worker *w, uint16_t out, struct rte_mbuf **pkts,
			    uint16_t n, uint64_t bytes)
{
	uint16_t sent = rte_eth_tx_burst(out, w->txq, pkts, n);
	struct ferry_worker_port_stats *ps = &w->stats->ports[out];
	if (unlikely(sent < n)) {
		/* the NIC is full: the rest are ours to count and free */
		for (uint16_t i = sent; i < n; i++) {
			bytes -= pkts[i]->pkt_len;
			drop(w, pkts[i], FERRY_DROP_REASON_TX_FULL);
		}
		ps->tx_dropped += n - sent;
	}
	ps->tx_packets += sent;
	ps->tx_bytes += bytes;
}

/* The general path: packets of one burst hit different rules. */
static void process_mixed(struct ferry_worker *w, struct rte_mbuf **pkts, uint16_t n,
			  const struct ferry_rule **rule, struct ferry_worker_port_stats *in,
			  uint64_t now_ns)
{
	uint64_t out_mask = 0; /* bit p: tx[p] has packets (FERRY_MAX_PORTS <= 64) */
	uint64_t dropped = 0;
	/* flow counters accumulate over runs of packets hitting the same rule */
	const struct ferry_rule *run_rule = NULL;
	uint64_t run_pkts = 0, run_bytes = 0;

	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *m = pkts[i];
		const struct ferry_rule *r = rule[i];
		uint32_t len = m->pkt_len;
		if (unlikely(r == NULL)) {
			drop(w, m, FERRY_DROP_REASON_TABLE_MISS);
			dropped++;
			continue;
		}
		if (r != run_rule) {
			if (run_rule != NULL)
				flush_flow(w, run_rule, run_pkts, run_bytes, now_ns);
			run_rule = r;
			run_pkts = 0;
			run_bytes = 0;
		}
		run_pkts++;
		run_bytes += len;
		if (unlikely(r->action != FERRY_FLOW_ACTION_OUTPUT)) {
			drop(w, m, FERRY_DROP_REASON_ACTION_DROP);
			dropped++;
			continue;
		}
		uint16_t out = r->out_port; /* < n_ports: checked when the rule was added */
		w->tx[out][w->tx_n[out]++] = m;
		w->tx_bytes[out] += len;
		out_mask |= 1ull << out;
	}
	if (run_rule != NULL)
		flush_flow(w, run_rule, run_pkts, run_bytes, now_ns);
	in->rx_dropped += dropped;

	while (out_mask != 0) {
		uint16_t out = (uint16_t)__builtin_ctzll(out_mask);
		out_mask &= out_mask - 1;
		transmit(w, out, w->tx[out], w->tx_n[out], w->tx_bytes[out]);
		w->tx_n[out] = 0;
		w->tx_bytes[out] = 0;
	}
}

void ferry_worker_process_burst(struct ferry_worker *w, const struct ferry_classifier *cls,
				uint16_t in_port, struct rte_mbuf **pkts, uint16_t n, uint64_t now_ns)
{
	const struct ferry_rule *rule[FERRY_BURST];
	struct ferry_worker_port_stats *in = &w->stats->ports[in_port];
	uint64_t bytes = 0;

	enum ferry_cls_result how = ferry_classifier_lookup_burst(cls, in_port, pkts, n, rule);
	const struct ferry_rule *r0 = rule[0];
	for (uint16_t i = 0; i < n; i++)
		bytes += pkts[i]->pkt_len;
	in->rx_packets += n;
	in->rx_bytes += bytes;

	if (unlikely(how != FERRY_CLS_UNIFORM || r0 == NULL)) {
		if (how == FERRY_CLS_UNIFORM)
			for (uint16_t i = 1; i < n; i++)
				rule[i] = r0;
		process_mixed(w, pkts, n, rule, in, now_ns);
		return;
	}
	/* the whole burst hit one rule (the common case): act on the array as received */
	flush_flow(w, r0, n, bytes, now_ns);
	if (likely(r0->action == FERRY_FLOW_ACTION_OUTPUT)) {
		transmit(w, r0->out_port, pkts, n, bytes);
		return;
	}
	for (uint16_t i = 0; i < n; i++)
		drop(w, pkts[i], FERRY_DROP_REASON_ACTION_DROP);
	in->rx_dropped += n;
}

int ferry_worker_main(void *arg)
{
	struct ferry_worker *w = arg;
	struct ferry_worker_stats *st = w->stats;
	struct rte_mbuf *pkts[FERRY_BURST];
	uint32_t idle_streak = 0;

	rte_rcu_qsbr_thread_register(w->qsv, w->id);
	rte_rcu_qsbr_thread_online(w->qsv, w->id);
	st->lcore_id = w->lcore;
	st->n_rxq = w->n_rxq;

	uint64_t prev = rte_rdtsc();
	while (likely(!*w->quit)) {
		const struct ferry_classifier *cls = ferry_flow_table_current(w->flows);
		uint64_t now_ns = ferry_tsc_to_ns(&w->clock, prev);
		uint32_t got = 0;

		for (uint16_t q = 0; q < w->n_rxq; q++) {
			const struct ferry_rxq *rq = &w->rxq[q];
			uint16_t n = rte_eth_rx_burst(rq->port, rq->queue, pkts, FERRY_BURST);
			if (n == 0)
				continue;
			st->rx_bursts++;
			got += n;
			ferry_worker_process_burst(w, cls, rq->port, pkts, n, now_ns);
		}
		/* no reference to cls survives this point */
		rte_rcu_qsbr_quiescent(w->qsv, w->id);

		uint64_t now = rte_rdtsc();
		st->loops++;
		if (likely(got != 0)) {
			st->busy_loops++;
			st->rx_packets += got;
			st->busy_cycles += now - prev;
			idle_streak = 0;
		} else {
			st->idle_cycles += now - prev;
			if (w->sleep_us != 0 && ++idle_streak >= IDLE_LOOPS_BEFORE_SLEEP) {
				/* offline while asleep so flow updates need not wait for us */
				rte_rcu_qsbr_thread_offline(w->qsv, w->id);
				rte_delay_us_sleep(w->sleep_us);
				rte_rcu_qsbr_thread_online(w->qsv, w->id);
				uint64_t woke = rte_rdtsc();
				st->idle_cycles += woke - now;
				now = woke;
			}
		}
		prev = now;
	}
	rte_rcu_qsbr_thread_offline(w->qsv, w->id);
	rte_rcu_qsbr_thread_unregister(w->qsv, w->id);
	return 0;
}
