/* ARP for Ethernet/IPv4 (arp.h). Frames are read with memcpy into host structures:
 * an ARP header behind an 802.1Q tag, or in a buffer of any alignment, is not
 * aligned for its 16- and 32-bit fields. */
#include "arp.h"

#include <string.h>
#include <rte_arp.h>
#include <rte_common.h>

#define ARP_HW_LEN RTE_ETHER_ADDR_LEN
#define ARP_PROTO_LEN 4u
#define VLAN_TAG_LEN 4u

_Static_assert(sizeof(struct rte_ether_hdr) == RTE_ETHER_HDR_LEN, "Ethernet header");
_Static_assert(sizeof(struct rte_arp_hdr) == 28, "ARP header for Ethernet/IPv4");
_Static_assert(RTE_ETHER_HDR_LEN + sizeof(struct rte_arp_hdr) <= FERRY_ARP_FRAME_LEN, "a request fits the frame");

/* Where the ARP header starts in the frame (after the Ethernet header and a tag, if
 * any): 0 when the frame is not ARP or too short to tell. */
static uint32_t arp_offset(const uint8_t *frame, uint32_t len)
{
	rte_be16_t type;

	if (len < RTE_ETHER_HDR_LEN)
		return 0;
	memcpy(&type, frame + offsetof(struct rte_ether_hdr, ether_type), sizeof(type));
	if (type == RTE_BE16(RTE_ETHER_TYPE_VLAN)) {
		/* One tag only: the type after it must be ARP itself (a second tag is
		 * not what ferryd's underlay speaks). */
		if (len < RTE_ETHER_HDR_LEN + VLAN_TAG_LEN)
			return 0;
		memcpy(&type, frame + RTE_ETHER_HDR_LEN + offsetof(struct rte_vlan_hdr, eth_proto), sizeof(type));
		return type == RTE_BE16(RTE_ETHER_TYPE_ARP) ? RTE_ETHER_HDR_LEN + VLAN_TAG_LEN : 0;
	}
	return type == RTE_BE16(RTE_ETHER_TYPE_ARP) ? RTE_ETHER_HDR_LEN : 0;
}

/* A sender with spa 0 is an ARP probe (RFC 5227: "is this address taken?"): it is
 * accepted, and answered when it asks for one of our addresses, but it says nothing
 * about where 0.0.0.0 is, so the caller must not learn from it (info->spa == 0).
 * A reply from 0.0.0.0 means nothing and is refused here. A multicast (or
 * broadcast) or all-zero sender hardware address is refused: learning it would send
 * unicast traffic everywhere or nowhere. */
bool ferry_arp_parse(const uint8_t *frame, uint32_t len, struct ferry_arp_info *info)
{
	struct rte_arp_hdr arp;
	uint32_t off = arp_offset(frame, len);

	if (off == 0 || len < off + sizeof(arp))
		return false;
	memcpy(&arp, frame + off, sizeof(arp));

	if (arp.arp_hardware != RTE_BE16(RTE_ARP_HRD_ETHER) || arp.arp_protocol != RTE_BE16(RTE_ETHER_TYPE_IPV4) ||
	    arp.arp_hlen != ARP_HW_LEN || arp.arp_plen != ARP_PROTO_LEN)
		return false;

	uint16_t op = rte_be_to_cpu_16(arp.arp_opcode);
	if (op != RTE_ARP_OP_REQUEST && op != RTE_ARP_OP_REPLY)
		return false;

	const struct rte_arp_ipv4 *d = &arp.arp_data;
	if (rte_is_multicast_ether_addr(&d->arp_sha) || rte_is_zero_ether_addr(&d->arp_sha))
		return false;
	if (d->arp_sip == 0 && op != RTE_ARP_OP_REQUEST)
		return false;

	info->op = op;
	rte_ether_addr_copy(&d->arp_sha, &info->sha);
	info->spa = d->arp_sip;
	rte_ether_addr_copy(&d->arp_tha, &info->tha);
	info->tpa = d->arp_tip;
	return true;
}

/* Writes the Ethernet/IPv4 ARP header fields every packet here shares, then op and
 * the four addresses. */
static void arp_write(uint8_t *p, uint16_t op, const struct rte_ether_addr *sha, rte_be32_t spa,
		      const struct rte_ether_addr *tha, rte_be32_t tpa)
{
	struct rte_arp_hdr arp = {
		.arp_hardware = RTE_BE16(RTE_ARP_HRD_ETHER),
		.arp_protocol = RTE_BE16(RTE_ETHER_TYPE_IPV4),
		.arp_hlen = ARP_HW_LEN,
		.arp_plen = ARP_PROTO_LEN,
		.arp_opcode = rte_cpu_to_be_16(op),
	};
	rte_ether_addr_copy(sha, &arp.arp_data.arp_sha);
	arp.arp_data.arp_sip = spa;
	rte_ether_addr_copy(tha, &arp.arp_data.arp_tha);
	arp.arp_data.arp_tip = tpa;
	memcpy(p, &arp, sizeof(arp));
}

/* m is a single segment afterwards (further segments of a recycled chain are freed).
 * A data room under FERRY_ARP_FRAME_LEN bytes, which no packet pool has, would leave
 * it empty. */
void ferry_arp_build_request(struct rte_mbuf *m, const struct rte_ether_addr *src_mac, rte_be32_t src_ip,
			     rte_be32_t target_ip)
{
	static const struct rte_ether_addr unknown; /* tha of a request: all zero */
	struct rte_ether_hdr eth = { .ether_type = RTE_BE16(RTE_ETHER_TYPE_ARP) };
	uint8_t *p;

	if (m->next != NULL) {
		rte_pktmbuf_free(m->next);
		m->next = NULL;
	}
	rte_pktmbuf_reset(m);
	p = (uint8_t *)rte_pktmbuf_append(m, FERRY_ARP_FRAME_LEN);
	if (p == NULL)
		return;

	memset(p, 0, FERRY_ARP_FRAME_LEN); /* the padding to the Ethernet minimum */
	memset(eth.dst_addr.addr_bytes, 0xff, RTE_ETHER_ADDR_LEN);
	rte_ether_addr_copy(src_mac, &eth.src_addr);
	memcpy(p, &eth, sizeof(eth));
	arp_write(p + RTE_ETHER_HDR_LEN, RTE_ARP_OP_REQUEST, src_mac, src_ip, &unknown, target_ip);
}

/* The ARP header is where ferry_arp_parse found it, in the first segment (ARP
 * frames are small). The reply keeps the request's length; trailing padding is
 * zeroed so nothing of the request's tail goes back out. */
void ferry_arp_make_reply(struct rte_mbuf *m, const struct ferry_arp_info *req, const struct rte_ether_addr *our_mac)
{
	uint8_t *p = rte_pktmbuf_mtod(m, uint8_t *);
	uint32_t off = arp_offset(p, m->data_len);
	uint32_t end = off + sizeof(struct rte_arp_hdr);
	struct rte_ether_addr eth_addrs[2];

	if (off == 0 || m->data_len < end)
		return; /* not a parsed request: leave it alone */

	rte_ether_addr_copy(&req->sha, &eth_addrs[0]); /* dst: the requester */
	rte_ether_addr_copy(our_mac, &eth_addrs[1]);   /* src */
	memcpy(p, eth_addrs, sizeof(eth_addrs));
	arp_write(p + off, RTE_ARP_OP_REPLY, our_mac, req->tpa, &req->sha, req->spa);
	memset(p + end, 0, m->data_len - end);
}
