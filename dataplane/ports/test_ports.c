/* Port setup over net_null vdevs: every probed ethdev becomes a port, queues per
 * worker, the shared info/stat records filled, clear errors when a device cannot
 * give a worker its own tx queue. */
#include <string.h>
#include "../common/eal_test.h"
#include "../common/ftest.h"
#include "../stats/seqlock.h"
#include "ports.h"

static struct ferry_ports ports;

static void test_too_many_workers_is_a_clear_error(void)
{
	char err[256] = "";
	struct ferry_ports_config cfg = { .n_workers = 4096, .nb_rxd = 128, .nb_txd = 128 };
	CHECK(ferry_ports_setup(&ports, &cfg, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "tx queues") != NULL);
	CHECK(strstr(err, "net_null0") != NULL);
}

static void test_setup_start_and_publish(void)
{
	char err[256] = "";
	struct ferry_ports_config cfg = { .n_workers = 2, .nb_rxd = 128, .nb_txd = 128 };
	int rc = ferry_ports_setup(&ports, &cfg, err, sizeof(err));
	if (rc != 0)
		fprintf(stderr, "  %s\n", err);
	CHECK(rc == 0);
	CHECK_EQ(ports.n_ports, 2);
	CHECK_EQ(ports.port[0].n_txq, 2);
	CHECK(ports.port[0].n_rxq >= 1 && ports.port[0].n_rxq <= 2);
	CHECK(ports.pool[0] != NULL);
	/* the pool holds at least every descriptor of every queue */
	CHECK(rte_mempool_avail_count(ports.pool[0]) >= 2u * (2 * 128 + 2 * 128));
	CHECK(ferry_ports_start(&ports, err, sizeof(err)) == 0);

	struct ferry_port_info info[2];
	struct ferry_port_hw_stats hw[2];
	memset(info, 0, sizeof(info));
	memset(hw, 0, sizeof(hw));
	ferry_ports_publish_info(&ports, info);
	CHECK(strcmp(info[1].name, "net_null1") == 0);
	CHECK(strcmp(info[0].driver, "net_null") == 0);
	CHECK_EQ(info[0].n_txq, 2);
	CHECK_EQ(info[1].port_id, 1);
	CHECK_EQ(info[0].seq % 2, 0);
	CHECK(info[0].seq > 0);

	/* net_null receives as fast as it is polled: stats must reflect it */
	struct rte_mbuf *pk[32];
	uint16_t n = rte_eth_rx_burst(0, 0, pk, 32);
	CHECK(n > 0);
	rte_pktmbuf_free_bulk(pk, n);
	ferry_ports_publish_stats(&ports, hw, 99);
	CHECK_EQ(hw[0].ipackets, n);
	CHECK_EQ(hw[0].updated_ns, 99);
	CHECK_EQ(hw[1].ipackets, 0);
	ferry_ports_stop(&ports);
}

int main(void)
{
	const char *vdevs[] = { "net_null0", "net_null1" };
	ferry_test_eal_init("ports", vdevs, 2);
	RUN(test_too_many_workers_is_a_clear_error);
	RUN(test_setup_start_and_publish);
	rte_eal_cleanup();
	return ftest_finish();
}
