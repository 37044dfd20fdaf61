/* For the pipeline tests that join worker pairs (tunnel, floods, mesh): n ethdevs made
 * of rte_rings, a test's packets go in through rx[p] and come out of tx[p], and
 * Ferry's ports set up and started over them. */
#ifndef FERRY_TEST_RING_PORTS_H
#define FERRY_TEST_RING_PORTS_H

#include <stdio.h>
#include <rte_eth_ring.h>
#include <rte_ring.h>
#include "../ports/ports.h"

/* 0, or -1 with the reason printed. Port p is ring pair p (ethdevs created in order). */
static inline int ferry_test_ring_ports(const char *tag, unsigned n, unsigned ring_size, struct rte_ring **rx,
					struct rte_ring **tx, struct ferry_ports *ports)
{
	for (unsigned p = 0; p < n; p++) {
		char name[32];
		snprintf(name, sizeof(name), "rx%u", p);
		rx[p] = rte_ring_create(name, ring_size, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
		snprintf(name, sizeof(name), "tx%u", p);
		tx[p] = rte_ring_create(name, ring_size, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
		snprintf(name, sizeof(name), "ferry_%sring%u", tag, p);
		if (!rx[p] || !tx[p] || rte_eth_from_rings(name, &rx[p], 1, &tx[p], 1, 0) != (int)p) {
			fprintf(stderr, "ring port %u could not be made\n", p);
			return -1;
		}
	}
	char err[256];
	struct ferry_ports_config cfg = { .n_workers = 1, .nb_rxd = 64, .nb_txd = 64, .extra_mbufs = 4096 };
	if (ferry_ports_setup(ports, &cfg, err, sizeof(err)) != 0 || ferry_ports_start(ports, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	return 0;
}

#endif
