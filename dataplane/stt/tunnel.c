#include "tunnel.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <rte_malloc.h>

int ferry_tunnel_table_init(struct ferry_tunnel_table *tt, uint16_t n_ports, struct rte_rcu_qsbr *qsv)
{
	memset(tt, 0, sizeof(*tt));
	tt->qsv = qsv;
	tt->n_ports = n_ports;
	tt->live = rte_zmalloc("ferry_tunnels", sizeof(*tt->live), RTE_CACHE_LINE_SIZE);
	return tt->live ? 0 : -ENOMEM;
}

void ferry_tunnel_table_fini(struct ferry_tunnel_table *tt)
{
	rte_free(tt->live);
	tt->live = NULL;
}

/* Rebuilds what is derived from the tunnels: endpoints and the port masks. */
static void derive(struct ferry_tunnels *ts)
{
	ts->underlay_mask = 0;
	ts->fixed_remote_mask = 0;
	ts->n_active = 0;
	ts->n_endpoints = 0;
	for (uint32_t p = 0; p < FERRY_MAX_PORTS; p++) {
		const struct ferry_tunnel *t = &ts->t[p];
		if (!t->active)
			continue;
		ts->n_active++;
		ts->underlay_mask |= 1ull << t->underlay_port;
		if (!(t->flags & FERRY_TUNNEL_FLAG_REMOTE_FLOW))
			ts->fixed_remote_mask |= 1u << p;
		bool seen = false;
		for (uint32_t i = 0; i < ts->n_endpoints; i++) {
			const struct ferry_tunnel_endpoint *e = &ts->ep[i];
			seen |= e->ip == t->local_ip && e->dst_port == t->dst_port && e->underlay_port == t->underlay_port;
		}
		if (!seen)
			ts->ep[ts->n_endpoints++] = (struct ferry_tunnel_endpoint){
				.ip = t->local_ip, .dst_port = t->dst_port, .underlay_port = t->underlay_port };
	}
}

/* Publishes next in place of the live snapshot; the old one is freed once no worker
 * can hold it. */
static int publish(struct ferry_tunnel_table *tt, struct ferry_tunnels *next)
{
	derive(next);
	struct ferry_tunnels *old = tt->live;
	__atomic_store_n(&tt->live, next, __ATOMIC_RELEASE);
	if (tt->qsv != NULL)
		rte_rcu_qsbr_synchronize(tt->qsv, RTE_QSBR_THRID_INVALID);
	rte_free(old);
	return FERRY_STATUS_OK;
}

static struct ferry_tunnels *copy_live(const struct ferry_tunnel_table *tt)
{
	struct ferry_tunnels *n = rte_malloc("ferry_tunnels", sizeof(*n), RTE_CACHE_LINE_SIZE);
	if (n != NULL)
		memcpy(n, tt->live, sizeof(*n));
	return n;
}

static rte_be32_t be32_of(const uint8_t b[4])
{
	rte_be32_t v;
	memcpy(&v, b, 4);
	return v;
}

int ferry_tunnel_set(struct ferry_tunnel_table *tt, const struct ferry_tunnel_config *c, char *why, size_t whylen)
{
	const uint32_t known = FERRY_TUNNEL_FLAG_REMOTE_FLOW | FERRY_TUNNEL_FLAG_KEY_FLOW;
	if (c->port < tt->n_ports || c->port >= FERRY_MAX_PORTS) {
		snprintf(why, whylen, "port: %u is not a tunnel port number (%u..%u)", c->port, tt->n_ports,
			 FERRY_MAX_PORTS - 1);
		return FERRY_STATUS_ENOPORT;
	}
	if (c->underlay_port >= tt->n_ports) {
		snprintf(why, whylen, "underlay_port: port %u does not exist", c->underlay_port);
		return FERRY_STATUS_ENOPORT;
	}
	const char *bad = NULL;
	if (c->flags & ~known)
		bad = "flags: unknown bits";
	else if (be32_of(c->local_ip) == 0)
		bad = "local_ip: 0.0.0.0 is not an address";
	else if (!(c->flags & FERRY_TUNNEL_FLAG_REMOTE_FLOW) && be32_of(c->remote_ip) == 0)
		bad = "remote_ip: 0.0.0.0 without a flow-based remote";
	else if (c->underlay_mtu < FERRY_STT_MIN_UNDERLAY_MTU || c->underlay_mtu > FERRY_TUNNEL_MAX_UNDERLAY_MTU)
		bad = "underlay_mtu: out of 576..9216";
	else if (c->local_plen > 32)
		bad = "local_plen: more than 32";
	else if (c->dst_port == 0)
		bad = "dst_port: 0";
	else if (c->ttl == 0)
		bad = "ttl: 0";
	if (bad) {
		snprintf(why, whylen, "%s", bad);
		return FERRY_STATUS_EINVAL;
	}
	struct ferry_tunnels *n = copy_live(tt);
	if (n == NULL) {
		snprintf(why, whylen, "out of memory");
		return FERRY_STATUS_EINTERNAL;
	}
	struct ferry_tunnel *t = &n->t[c->port];
	memset(t, 0, sizeof(*t));
	t->active = 1;
	t->flags = c->flags;
	t->key = c->key;
	t->local_ip = be32_of(c->local_ip);
	t->remote_ip = be32_of(c->remote_ip);
	t->gateway = be32_of(c->gateway);
	t->netmask = c->local_plen ? rte_cpu_to_be_32(~0u << (32 - c->local_plen)) : 0;
	t->tos = c->tos;
	t->ttl = c->ttl;
	t->dst_port = rte_cpu_to_be_16(c->dst_port);
	t->underlay_port = c->underlay_port;
	t->underlay_mtu = c->underlay_mtu;
	t->mss = (uint16_t)(c->underlay_mtu - 40u);
	t->src_mac = tt->underlay[c->underlay_port].mac;
	t->tx_offloads = tt->underlay[c->underlay_port].tx_offloads;
	return publish(tt, n);
}

int ferry_tunnel_del(struct ferry_tunnel_table *tt, uint32_t port)
{
	if (port >= FERRY_MAX_PORTS || !tt->live->t[port].active)
		return FERRY_STATUS_ENOENT;
	struct ferry_tunnels *n = copy_live(tt);
	if (n == NULL)
		return FERRY_STATUS_EINTERNAL;
	memset(&n->t[port], 0, sizeof(n->t[port]));
	return publish(tt, n);
}

bool ferry_tunnel_port_active(const struct ferry_tunnel_table *tt, uint32_t port)
{
	return tt != NULL && tt->live != NULL && port < FERRY_MAX_PORTS && tt->live->t[port].active;
}

uint32_t ferry_tunnel_match(const struct ferry_tunnels *ts, uint16_t underlay_port, rte_be32_t local_ip,
			    rte_be16_t dst_port, rte_be32_t remote_ip, uint64_t key)
{
	uint32_t best = FERRY_PORT_NONE;
	int best_score = -1;
	for (uint32_t p = 0; p < FERRY_MAX_PORTS; p++) {
		const struct ferry_tunnel *t = &ts->t[p];
		if (!t->active || t->underlay_port != underlay_port || t->local_ip != local_ip || t->dst_port != dst_port)
			continue;
		bool remote_flow = t->flags & FERRY_TUNNEL_FLAG_REMOTE_FLOW;
		bool key_flow = t->flags & FERRY_TUNNEL_FLAG_KEY_FLOW;
		if ((!remote_flow && t->remote_ip != remote_ip) || (!key_flow && t->key != key))
			continue;
		int score = (remote_flow ? 0 : 2) + (key_flow ? 0 : 1);
		if (score > best_score) {
			best_score = score;
			best = p;
		}
	}
	return best;
}

uint64_t ferry_tunnel_ports_mask(const struct ferry_tunnel_table *tt)
{
	uint64_t m = 0;
	if (tt == NULL || tt->live == NULL)
		return 0;
	for (uint32_t p = 0; p < FERRY_MAX_PORTS; p++)
		if (tt->live->t[p].active)
			m |= 1ull << p;
	return m;
}
