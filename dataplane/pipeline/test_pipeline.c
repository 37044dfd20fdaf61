/* The worker's burst path over ring-backed ethdevs: where packets come out, what
 * every counter says, drops by reason, and no mbuf leaked. */
#include <string.h>
#include <rte_eth_ring.h>
#include <rte_ring.h>
#include "../common/eal_test.h"
#include "../common/ftest.h"
#include "../ports/ports.h"
#include "worker.h"

#define N_PORTS 3
#define MAX_FLOWS 16
#define TX_RING 16 /* holds 15: small enough to overflow in one burst */

static struct rte_ring *rx_ring[N_PORTS], *tx_ring[N_PORTS];
static struct ferry_ports ports;
static struct ferry_flow_table ft;
static struct ferry_worker w;
static struct ferry_worker_stats wstats __rte_cache_aligned;
static struct ferry_flow_stats fstats[MAX_FLOWS];
static uint32_t slot_out, slot_drop;
static unsigned mbufs_expected;

static struct rte_mbuf *mk(uint16_t port, uint16_t len)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(ports.pool[0]);
	CHECK(m != NULL);
	char *d = rte_pktmbuf_append(m, len);
	memset(d, 0xab, len);
	m->port = port;
	return m;
}

static void burst(uint16_t in_port, uint16_t n, uint16_t len)
{
	struct rte_mbuf *pk[FERRY_BURST];
	for (uint16_t i = 0; i < n; i++)
		pk[i] = mk(in_port, len);
	ferry_worker_process_burst(&w, ferry_flow_table_current(&ft), in_port, pk, n, 12345);
}

static unsigned drain(uint16_t port)
{
	void *objs[64];
	unsigned n = rte_ring_dequeue_burst(tx_ring[port], objs, 64, NULL);
	for (unsigned i = 0; i < n; i++)
		rte_pktmbuf_free(objs[i]);
	return n;
}

static void test_output_and_counters(void)
{
	burst(0, 8, 100);
	CHECK_EQ(drain(1), 8);
	CHECK_EQ(drain(0), 0);
	CHECK_EQ(drain(2), 0);
	CHECK_EQ(wstats.ports[0].rx_packets, 8);
	CHECK_EQ(wstats.ports[0].rx_bytes, 800);
	CHECK_EQ(wstats.ports[0].rx_dropped, 0);
	CHECK_EQ(wstats.ports[1].tx_packets, 8);
	CHECK_EQ(wstats.ports[1].tx_bytes, 800);
	CHECK_EQ(fstats[slot_out].packets, 8);
	CHECK_EQ(fstats[slot_out].bytes, 800);
	CHECK_EQ(fstats[slot_out].last_hit_ns, 12345);
}

static void test_drop_action_and_table_miss(void)
{
	burst(1, 5, 60);
	burst(2, 3, 60);
	CHECK_EQ(drain(0) + drain(1) + drain(2), 0);
	CHECK_EQ(wstats.drops[FERRY_DROP_REASON_ACTION_DROP], 5);
	CHECK_EQ(wstats.drops[FERRY_DROP_REASON_TABLE_MISS], 3);
	CHECK_EQ(wstats.ports[1].rx_dropped, 5);
	CHECK_EQ(wstats.ports[2].rx_dropped, 3);
	CHECK_EQ(fstats[slot_drop].packets, 5);
}

static void test_tx_full_is_counted(void)
{
	uint64_t before = wstats.ports[1].tx_packets;
	burst(0, 32, 64);
	unsigned out = drain(1);
	CHECK_EQ(out, TX_RING - 1);
	CHECK_EQ(wstats.ports[1].tx_packets - before, out);
	CHECK_EQ(wstats.ports[1].tx_dropped, 32 - out);
	CHECK_EQ(wstats.drops[FERRY_DROP_REASON_TX_FULL], 32 - out);
	CHECK_EQ(wstats.ports[0].rx_packets, 8 + 32);
}

/* A burst belongs to the port it was received on (as in OVS's dp_netdev_input): the
 * rule is the in_port's, whatever the mbufs' port fields say. */
static void test_burst_takes_its_in_port(void)
{
	struct ferry_worker_stats before = wstats;
	uint64_t out_before = fstats[slot_out].packets;
	struct rte_mbuf *pk[4] = { mk(0, 70), mk(1, 80), mk(2, 90), mk(0, 100) };
	ferry_worker_process_burst(&w, ferry_flow_table_current(&ft), 0, pk, 4, 777);
	CHECK_EQ(drain(1), 4);
	CHECK_EQ(drain(0) + drain(2), 0);
	CHECK_EQ(wstats.ports[0].rx_packets - before.ports[0].rx_packets, 4);
	CHECK_EQ(wstats.ports[0].rx_bytes - before.ports[0].rx_bytes, 340);
	CHECK_EQ(wstats.ports[1].tx_bytes - before.ports[1].tx_bytes, 340);
	CHECK_EQ(wstats.ports[1].rx_packets, before.ports[1].rx_packets);
	CHECK_EQ(fstats[slot_out].packets - out_before, 4);
	CHECK_EQ(fstats[slot_out].last_hit_ns, 777);
}

static void test_flow_change_takes_effect(void)
{
	struct ferry_rule r = { .id = 1, .priority = 10, .in_port = 0,
				.action = FERRY_FLOW_ACTION_OUTPUT, .out_port = 2 };
	const char *why;
	uint32_t slot;
	CHECK_EQ(ferry_flow_table_add(&ft, &r, &slot, &why), FERRY_STATUS_OK);
	CHECK_EQ(ferry_flow_table_publish(&ft), FERRY_STATUS_OK);
	burst(0, 4, 64);
	CHECK_EQ(drain(2), 4);
	CHECK_EQ(drain(1), 0);
}

static void test_no_mbuf_leaked(void)
{
	CHECK_EQ(ferry_ports_mbufs_available(&ports), mbufs_expected);
}

int main(void)
{
	ferry_test_eal_init("pipeline", NULL, 0);
	for (int p = 0; p < N_PORTS; p++) {
		char n[32];
		snprintf(n, sizeof(n), "rx%d", p);
		rx_ring[p] = rte_ring_create(n, 64, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
		snprintf(n, sizeof(n), "tx%d", p);
		tx_ring[p] = rte_ring_create(n, TX_RING, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
		snprintf(n, sizeof(n), "ferry_ring%d", p);
		if (rte_eth_from_rings(n, &rx_ring[p], 1, &tx_ring[p], 1, 0) < 0)
			return 1;
	}
	char err[256];
	struct ferry_ports_config cfg = { .n_workers = 1, .nb_rxd = 64, .nb_txd = 64 };
	if (ferry_ports_setup(&ports, &cfg, err, sizeof(err)) != 0 ||
	    ferry_ports_start(&ports, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	unsigned mbufs_at_start = ferry_ports_mbufs_available(&ports);
	if (ferry_flow_table_init(&ft, MAX_FLOWS, N_PORTS, NULL, NULL, NULL) != 0)
		return 1;
	const char *why;
	struct ferry_rule out = { .id = 1, .priority = 10, .in_port = 0,
				  .action = FERRY_FLOW_ACTION_OUTPUT, .out_port = 1 };
	struct ferry_rule dr = { .id = 2, .priority = 10, .in_port = 1, .action = FERRY_FLOW_ACTION_DROP };
	ferry_flow_table_add(&ft, &out, &slot_out, &why);
	ferry_flow_table_add(&ft, &dr, &slot_drop, &why);
	ferry_flow_table_publish(&ft);

	w.n_ports = N_PORTS;
	w.stats = &wstats;
	w.flow_stats = fstats;
	w.flows = &ft;

	RUN(test_output_and_counters);
	RUN(test_drop_action_and_table_miss);
	RUN(test_tx_full_is_counted);
	RUN(test_burst_takes_its_in_port);
	RUN(test_flow_change_takes_effect);

	/* every mbuf the tests made went back to its pool */
	mbufs_expected = mbufs_at_start;
	RUN(test_no_mbuf_leaked);
	ferry_flow_table_fini(&ft);
	ferry_ports_stop(&ports);
	rte_eal_cleanup();
	return ftest_finish();
}
