/* Tunnel ports: the STT tunnels ferryd has, as the workers see them.
 *
 * A tunnel is an OpenFlow port (numbers n_ports..FERRY_MAX_PORTS-1, after the
 * ethdevs) bound to an underlay ethdev. Output to it encapsulates; a frame
 * decapsulated from its underlay with its local address, destination port, remote
 * (unless flow-based) and key (unless flow-based) comes in on it, with tun_id,
 * tun_src and tun_dst set.
 *
 * The main lcore owns the configuration. Workers read an immutable snapshot
 * (struct ferry_tunnels) through one pointer: a change builds a new snapshot,
 * publishes it, waits until every worker has passed a quiescent point (the same RCU
 * the flow table uses) and frees the old one. So a worker sees a whole
 * configuration, old or new, for a whole burst. */
#ifndef FERRY_TUNNEL_H
#define FERRY_TUNNEL_H

#include <stdbool.h>
#include <stdint.h>
#include <rte_byteorder.h>
#include <rte_ether.h>
#include <rte_rcu_qsbr.h>
#include "ferry_proto.h"
#include "stt.h"

#define FERRY_TUNNEL_MAX_UNDERLAY_MTU 9216u
#define FERRY_TUNNEL_DEFAULT_TTL 64

struct ferry_tunnel {
	uint8_t active;
	uint8_t tos;
	uint8_t ttl;
	uint8_t pad;
	uint32_t flags;               /* FERRY_TUNNEL_FLAG_* */
	uint64_t key;                 /* host order, when not KEY_FLOW */
	rte_be32_t local_ip;
	rte_be32_t remote_ip;         /* when not REMOTE_FLOW */
	rte_be32_t gateway;           /* 0: none */
	rte_be32_t netmask;           /* of the local subnet */
	rte_be16_t dst_port;
	uint16_t underlay_port;
	uint16_t mss;                 /* STT frame bytes per segment: underlay MTU - 40 */
	uint16_t underlay_mtu;
	struct rte_ether_addr src_mac; /* the underlay port's */
	uint64_t tx_offloads;         /* the underlay port's enabled tx offloads */
};

/* a local address and destination port segments arrive for */
struct ferry_tunnel_endpoint {
	rte_be32_t ip;
	rte_be16_t dst_port;
	uint16_t underlay_port;
};

/* One immutable snapshot. */
struct ferry_tunnels {
	uint64_t underlay_mask;       /* bit p: ethdev p carries a tunnel */
	uint32_t n_active;
	uint32_t n_endpoints;
	uint32_t fixed_remote_mask;   /* bit p: active tunnel port p with a fixed remote (NORMAL's) */
	struct ferry_tunnel_endpoint ep[FERRY_MAX_PORTS];
	struct ferry_tunnel t[FERRY_MAX_PORTS]; /* by port number */
};

/* What the main lcore knows of an ethdev that a tunnel may use as its underlay. */
struct ferry_underlay_info {
	struct rte_ether_addr mac;
	uint64_t tx_offloads;
};

struct ferry_tunnel_table {
	struct ferry_tunnels *live;   /* what the workers read */
	struct rte_rcu_qsbr *qsv;     /* NULL: no worker runs (tests): free at once */
	uint16_t n_ports;             /* ethdevs */
	struct ferry_underlay_info underlay[FERRY_MAX_PORTS];
};

/* Reassembly settings the workers pick up when version changes (STT_SET_OPTIONS). */
struct ferry_stt_settings {
	uint32_t version;
	uint32_t reasm_timeout_ms;
	uint32_t reasm_mem_max;
};

/* Bit p set for each active tunnel port. */
uint64_t ferry_tunnel_ports_mask(const struct ferry_tunnel_table *tt);

/* An empty table; 0 or -ENOMEM. */
int ferry_tunnel_table_init(struct ferry_tunnel_table *tt, uint16_t n_ports, struct rte_rcu_qsbr *qsv);
void ferry_tunnel_table_fini(struct ferry_tunnel_table *tt);

/* Creates or replaces the tunnel c->port. A FERRY_STATUS_* and, when not OK, why
 * ("field: reason"). */
int ferry_tunnel_set(struct ferry_tunnel_table *tt, const struct ferry_tunnel_config *c, char *why, size_t whylen);
/* FERRY_STATUS_OK or ENOENT */
int ferry_tunnel_del(struct ferry_tunnel_table *tt, uint32_t port);
bool ferry_tunnel_port_active(const struct ferry_tunnel_table *tt, uint32_t port);

/* ---- worker side ---- */

static inline const struct ferry_tunnels *ferry_tunnels_read(const struct ferry_tunnel_table *tt)
{
	return __atomic_load_n(&tt->live, __ATOMIC_ACQUIRE);
}

/* Is (ip, dst_port) a tunnel endpoint on underlay port? dst_port 0: any port (ip only,
 * for ARP and outer fragments). */
static inline bool ferry_tunnel_is_endpoint(const struct ferry_tunnels *ts, uint16_t port, rte_be32_t ip,
					    rte_be16_t dst_port)
{
	for (uint32_t i = 0; i < ts->n_endpoints; i++) {
		const struct ferry_tunnel_endpoint *e = &ts->ep[i];
		if (e->ip == ip && e->underlay_port == port && (dst_port == 0 || e->dst_port == dst_port))
			return true;
	}
	return false;
}

/* The tunnel port a decapsulated frame comes in on: the tunnel on this underlay with
 * this local address and port whose remote and key match (an exact remote or key
 * wins over a flow-based one, as OVS's tunnel port lookup does). FERRY_PORT_NONE
 * when none. */
uint32_t ferry_tunnel_match(const struct ferry_tunnels *ts, uint16_t underlay_port, rte_be32_t local_ip,
			    rte_be16_t dst_port, rte_be32_t remote_ip, uint64_t key);

/* The next hop towards remote: remote itself on the local subnet (or with no
 * gateway), else the gateway. */
static inline rte_be32_t ferry_tunnel_next_hop(const struct ferry_tunnel *t, rte_be32_t remote)
{
	if (t->gateway == 0 || ((remote ^ t->local_ip) & t->netmask) == 0)
		return remote;
	return t->gateway;
}

#endif
