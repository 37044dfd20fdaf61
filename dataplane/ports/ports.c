#include "ports.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include "../stats/seqlock.h"

#define MEMPOOL_CACHE 256u
#define BURST_SLACK 64u

static int port_socket(uint16_t port_id)
{
	int s = rte_eth_dev_socket_id(port_id);
	if (s < 0 || s >= FERRY_MAX_SOCKETS)
		s = 0; /* virtual devices report SOCKET_ID_ANY */
	return s;
}

static int create_pools(struct ferry_ports *ports, const struct ferry_ports_config *cfg,
			char *err, size_t errlen)
{
	uint64_t need[FERRY_MAX_SOCKETS] = {0};
	for (uint16_t i = 0; i < ports->n_ports; i++) {
		const struct ferry_port *p = &ports->port[i];
		need[p->socket] += (uint64_t)p->n_rxq * p->nb_rxd + (uint64_t)p->n_txq * p->nb_txd +
				   (uint64_t)p->n_txq * BURST_SLACK;
	}
	for (int s = 0; s < FERRY_MAX_SOCKETS; s++) {
		if (need[s] == 0)
			continue;
		/* each worker's cache plus the bursts a worker holds while processing */
		need[s] += (uint64_t)cfg->n_workers * (MEMPOOL_CACHE * 3 / 2 + BURST_SLACK * 2) +
			   cfg->extra_mbufs;
		uint32_t n = 1;
		while (n - 1 < need[s])
			n <<= 1;
		char name[RTE_MEMPOOL_NAMESIZE];
		snprintf(name, sizeof(name), "ferry_mbuf_%d", s);
		ports->pool[s] = rte_pktmbuf_pool_create(name, n - 1, MEMPOOL_CACHE, 0,
							 RTE_MBUF_DEFAULT_BUF_SIZE, s);
		if (ports->pool[s] == NULL) {
			snprintf(err, errlen, "mbuf pool of %u mbufs on socket %d: %s (raise EAL -m or "
				 "lower --rxd/--txd)", n - 1, s, rte_strerror(rte_errno));
			return -ENOMEM;
		}
	}
	return 0;
}

static int configure_port(struct ferry_port *p, const struct ferry_ports_config *cfg,
			  char *err, size_t errlen)
{
	int rc = rte_eth_dev_info_get(p->port_id, &p->info);
	if (rc != 0) {
		snprintf(err, errlen, "port %u: dev_info: %s", p->port_id, strerror(-rc));
		return rc;
	}
	rte_eth_dev_get_name_by_port(p->port_id, p->name);
	p->socket = port_socket(p->port_id);

	/* every worker transmits on its own queue: no lock on the tx path */
	if (p->info.max_tx_queues < cfg->n_workers) {
		snprintf(err, errlen, "port %u (%s) has %u tx queues, ferryd needs one per worker (%u); "
			 "run fewer workers or give the device more queues (e.g. qpairs=N)",
			 p->port_id, p->name, p->info.max_tx_queues, cfg->n_workers);
		return -EINVAL;
	}
	p->n_txq = cfg->n_workers;
	p->n_rxq = RTE_MIN(cfg->n_workers, p->info.max_rx_queues);
	if (p->n_rxq == 0)
		p->n_rxq = 1;

	struct rte_eth_conf conf;
	memset(&conf, 0, sizeof(conf));
	uint64_t rss_hf = (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP) &
			  p->info.flow_type_rss_offloads;
	if (p->n_rxq > 1 && rss_hf != 0) {
		conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
		p->rss = 1;
	} else if (p->n_rxq > 1) {
		p->n_rxq = 1; /* no RSS: one queue keeps flows in order on one worker */
	}
	/* what STT needs of a NIC to go fast (TSO for the segments, checksums, chained
	 * mbufs), enabled where the device has it; software does the rest */
	p->tx_offloads = p->info.tx_offload_capa &
			 (RTE_ETH_TX_OFFLOAD_MULTI_SEGS | RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_TCP_CKSUM |
			  RTE_ETH_TX_OFFLOAD_UDP_CKSUM | RTE_ETH_TX_OFFLOAD_TCP_TSO);
	conf.txmode.offloads = p->tx_offloads;
	rc = rte_eth_dev_configure(p->port_id, p->n_rxq, p->n_txq, &conf);
	if (rc != 0) {
		snprintf(err, errlen, "port %u (%s): configure %u rx / %u tx queues: %s",
			 p->port_id, p->name, p->n_rxq, p->n_txq, strerror(-rc));
		return rc;
	}
	p->nb_rxd = cfg->nb_rxd;
	p->nb_txd = cfg->nb_txd;
	rc = rte_eth_dev_adjust_nb_rx_tx_desc(p->port_id, &p->nb_rxd, &p->nb_txd);
	if (rc != 0) {
		snprintf(err, errlen, "port %u (%s): descriptor counts: %s", p->port_id, p->name,
			 strerror(-rc));
		return rc;
	}
	return 0;
}

static int setup_queues(struct ferry_ports *ports, struct ferry_port *p, char *err, size_t errlen)
{
	for (uint16_t q = 0; q < p->n_rxq; q++) {
		int rc = rte_eth_rx_queue_setup(p->port_id, q, p->nb_rxd, (unsigned)p->socket, NULL,
						ports->pool[p->socket]);
		if (rc != 0) {
			snprintf(err, errlen, "port %u (%s): rx queue %u: %s", p->port_id, p->name, q,
				 strerror(-rc));
			return rc;
		}
	}
	for (uint16_t q = 0; q < p->n_txq; q++) {
		int rc = rte_eth_tx_queue_setup(p->port_id, q, p->nb_txd, (unsigned)p->socket, NULL);
		if (rc != 0) {
			snprintf(err, errlen, "port %u (%s): tx queue %u: %s", p->port_id, p->name, q,
				 strerror(-rc));
			return rc;
		}
	}
	return 0;
}

int ferry_ports_setup(struct ferry_ports *ports, const struct ferry_ports_config *cfg,
		      char *err, size_t errlen)
{
	memset(ports, 0, sizeof(*ports));
	ports->n_workers = cfg->n_workers;
	uint16_t pid;
	RTE_ETH_FOREACH_DEV(pid) {
		/* Ferry port numbers are ethdev ids; they stay dense when nothing is hot-removed */
		if (pid != ports->n_ports) {
			snprintf(err, errlen, "ethdev ids are not dense (found %u after %u ports)", pid,
				 ports->n_ports);
			return -EINVAL;
		}
		if (ports->n_ports >= FERRY_MAX_PORTS) {
			snprintf(err, errlen, "more than %u ports", FERRY_MAX_PORTS);
			return -EINVAL;
		}
		struct ferry_port *p = &ports->port[ports->n_ports++];
		p->port_id = pid;
		int rc = configure_port(p, cfg, err, errlen);
		if (rc != 0)
			return rc;
	}
	if (ports->n_ports == 0) {
		snprintf(err, errlen, "no ports: give EAL a device (a PCI NIC bound to vfio-pci, or "
			 "--vdev net_af_packet0,iface=IF, net_tap0, net_pcap0,..., net_null0)");
		return -ENODEV;
	}
	int rc = create_pools(ports, cfg, err, errlen);
	if (rc != 0)
		return rc;
	for (uint16_t i = 0; i < ports->n_ports; i++) {
		rc = setup_queues(ports, &ports->port[i], err, errlen);
		if (rc != 0)
			return rc;
	}
	return 0;
}

int ferry_ports_start(struct ferry_ports *ports, char *err, size_t errlen)
{
	for (uint16_t i = 0; i < ports->n_ports; i++) {
		struct ferry_port *p = &ports->port[i];
		int rc = rte_eth_dev_start(p->port_id);
		if (rc != 0) {
			snprintf(err, errlen, "port %u (%s): start: %s", p->port_id, p->name, strerror(-rc));
			return rc;
		}
		/* a switch port sees every frame; devices without the knob already do */
		rc = rte_eth_promiscuous_enable(p->port_id);
		p->promiscuous = rc == 0 || rte_eth_promiscuous_get(p->port_id) == 1;
	}
	return 0;
}

void ferry_ports_stop(struct ferry_ports *ports)
{
	for (uint16_t i = 0; i < ports->n_ports; i++) {
		rte_eth_dev_stop(ports->port[i].port_id);
		rte_eth_dev_close(ports->port[i].port_id);
	}
	for (int s = 0; s < FERRY_MAX_SOCKETS; s++) {
		rte_mempool_free(ports->pool[s]);
		ports->pool[s] = NULL;
	}
}

void ferry_ports_publish_info(const struct ferry_ports *ports, struct ferry_port_info *info)
{
	for (uint16_t i = 0; i < ports->n_ports; i++) {
		const struct ferry_port *p = &ports->port[i];
		struct ferry_port_info *o = &info[i];
		struct rte_eth_link link;
		struct rte_ether_addr mac;
		uint16_t mtu = 0;
		memset(&link, 0, sizeof(link));
		memset(&mac, 0, sizeof(mac));
		rte_eth_link_get_nowait(p->port_id, &link);
		rte_eth_macaddr_get(p->port_id, &mac);
		rte_eth_dev_get_mtu(p->port_id, &mtu);

		ferry_seq_write_begin(&o->seq);
		o->port_id = p->port_id;
		o->socket_id = (int16_t)p->socket;
		snprintf(o->name, sizeof(o->name), "%s", p->name);
		snprintf(o->driver, sizeof(o->driver), "%s", p->info.driver_name ? p->info.driver_name : "");
		memcpy(o->mac, mac.addr_bytes, sizeof(o->mac));
		o->link_up = link.link_status == RTE_ETH_LINK_UP;
		o->link_full_duplex = link.link_duplex == RTE_ETH_LINK_FULL_DUPLEX;
		o->link_speed_mbps = link.link_speed == RTE_ETH_SPEED_NUM_UNKNOWN ? 0 : link.link_speed;
		o->mtu = mtu;
		o->n_rxq = p->n_rxq;
		o->n_txq = p->n_txq;
		o->nb_rxd = p->nb_rxd;
		o->nb_txd = p->nb_txd;
		o->rss = p->rss;
		o->promiscuous = p->promiscuous;
		ferry_seq_write_end(&o->seq);
	}
}

void ferry_ports_publish_stats(const struct ferry_ports *ports, struct ferry_port_hw_stats *hw,
			       uint64_t now_ns)
{
	for (uint16_t i = 0; i < ports->n_ports; i++) {
		struct rte_eth_stats st;
		if (rte_eth_stats_get(ports->port[i].port_id, &st) != 0)
			continue;
		struct ferry_port_hw_stats *o = &hw[i];
		ferry_seq_write_begin(&o->seq);
		o->updated_ns = now_ns;
		o->ipackets = st.ipackets;
		o->opackets = st.opackets;
		o->ibytes = st.ibytes;
		o->obytes = st.obytes;
		o->imissed = st.imissed;
		o->ierrors = st.ierrors;
		o->oerrors = st.oerrors;
		o->rx_nombuf = st.rx_nombuf;
		ferry_seq_write_end(&o->seq);
	}
}

unsigned ferry_ports_mbufs_available(const struct ferry_ports *ports)
{
	unsigned n = 0;
	for (int s = 0; s < FERRY_MAX_SOCKETS; s++)
		if (ports->pool[s])
			n += rte_mempool_avail_count(ports->pool[s]);
	return n;
}
