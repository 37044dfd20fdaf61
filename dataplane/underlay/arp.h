/* ARP for the underlay (RFC 826, Ethernet/IPv4 only): what ferryd needs to answer
 * for its tunnel addresses and to resolve its next hops. No state here: the
 * neighbour cache is neigh.h. */
#ifndef FERRY_ARP_H
#define FERRY_ARP_H

#include <stdbool.h>
#include <stdint.h>
#include <rte_byteorder.h>
#include <rte_ether.h>
#include <rte_mbuf.h>

#define FERRY_ARP_FRAME_LEN 60u /* 42 bytes of Ethernet + ARP, padded to the Ethernet minimum */

struct ferry_arp_info {
	uint16_t op;                 /* RTE_ARP_OP_REQUEST or RTE_ARP_OP_REPLY */
	struct rte_ether_addr sha;
	rte_be32_t spa;
	struct rte_ether_addr tha;
	rte_be32_t tpa;
};

/* Parses an Ethernet frame (an 802.1Q tag allowed) as ARP for Ethernet/IPv4.
 * Returns false for anything else or anything malformed (hardware type, protocol
 * type, address lengths, truncation, a multicast sender). */
bool ferry_arp_parse(const uint8_t *frame, uint32_t len, struct ferry_arp_info *info);

/* Writes into m (reset to an empty packet of FERRY_ARP_FRAME_LEN bytes) a broadcast
 * request from (src_mac, src_ip) for target_ip. */
void ferry_arp_build_request(struct rte_mbuf *m, const struct rte_ether_addr *src_mac, rte_be32_t src_ip,
			     rte_be32_t target_ip);

/* Turns the request m (as parsed into req) into the reply "req->tpa is at our_mac",
 * in place, addressed to the requester (a VLAN tag stays). */
void ferry_arp_make_reply(struct rte_mbuf *m, const struct ferry_arp_info *req, const struct rte_ether_addr *our_mac);

#endif
