/* Every ethdev EAL probed becomes a Ferry port: queues per worker (RSS where the
 * device has it), one mbuf pool per socket sized from the ports and queues, started
 * promiscuous. The main lcore refreshes link state and hardware stats into the shared
 * segment. Nothing here assumes a virtual device. */
#ifndef FERRY_PORTS_H
#define FERRY_PORTS_H

#include <stdint.h>
#include <rte_ethdev.h>
#include <rte_mempool.h>
#include "ferry_proto.h"

#define FERRY_MAX_SOCKETS 8

struct ferry_port {
	uint16_t port_id;
	uint16_t n_rxq;
	uint16_t n_txq;
	uint16_t nb_rxd;
	uint16_t nb_txd;
	int socket;
	uint8_t rss;
	uint8_t promiscuous;
	uint64_t tx_offloads;   /* enabled: what the tunnel and offload paths may ask of the NIC */
	char name[RTE_ETH_NAME_MAX_LEN];
	struct rte_eth_dev_info info;
};

struct ferry_ports {
	uint16_t n_ports;
	uint16_t n_workers;
	struct ferry_port port[RTE_MAX_ETHPORTS];
	struct rte_mempool *pool[FERRY_MAX_SOCKETS];
};

struct ferry_ports_config {
	uint16_t n_workers;  /* tx queues per port; rx queues up to this */
	uint16_t nb_rxd;
	uint16_t nb_txd;
	uint32_t extra_mbufs; /* per pool, for mbufs held outside the rings */
};

/* Probes and configures all ports (not started). 0 or -errno, message in err. */
int ferry_ports_setup(struct ferry_ports *ports, const struct ferry_ports_config *cfg,
		      char *err, size_t errlen);
int ferry_ports_start(struct ferry_ports *ports, char *err, size_t errlen);
void ferry_ports_stop(struct ferry_ports *ports);

/* Fills port_info[] and port_hw_stats[] (seqlocked) for the shared segment. */
void ferry_ports_publish_info(const struct ferry_ports *ports, struct ferry_port_info *info);
void ferry_ports_publish_stats(const struct ferry_ports *ports, struct ferry_port_hw_stats *hw,
			       uint64_t now_ns);

/* Mbufs free in all pools (leak checks). */
unsigned ferry_ports_mbufs_available(const struct ferry_ports *ports);

#endif
