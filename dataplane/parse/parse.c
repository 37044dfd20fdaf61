#include "parse.h"

#include <string.h>

/* Header sizes and protocol numbers, named once. */
#define ETH_HLEN 14
#define VLAN_HLEN 4
#define ARP_ETH_IPV4_LEN 28
#define IPV4_MIN_HLEN 20
#define IPV6_HLEN 40
#define IPV6_EXT_MIN 8
#define IPV6_FRAG_HLEN 8
#define TCP_MIN_HLEN 20
#define UDP_HLEN 8
#define SCTP_HLEN 12
#define ICMP_HLEN 8
#define ICMPV6_HLEN 4

#define ETHERTYPE_IPV4 0x0800
#define ETHERTYPE_ARP 0x0806
#define ETHERTYPE_VLAN 0x8100
#define ETHERTYPE_QINQ 0x88a8
#define ETHERTYPE_IPV6 0x86dd
#define ETHERTYPE_MIN 0x0600

#define IPPROTO_HOPOPTS_ 0
#define IPPROTO_ICMP_ 1
#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17
#define IPPROTO_ROUTING_ 43
#define IPPROTO_FRAGMENT_ 44
#define IPPROTO_AH_ 51
#define IPPROTO_ICMPV6_ 58
#define IPPROTO_DSTOPTS_ 60
#define IPPROTO_SCTP_ 132

#define IPV4_MF 0x2000
#define IPV4_FRAG_OFF 0x1fff

static inline uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* L4 from p (avail bytes of it). Returns the error or OK. */
static uint8_t parse_l4(const uint8_t *p, uint32_t avail, uint8_t proto, int ipv6,
			struct ferry_flow_key *k, struct ferry_pkt_layout *lay, uint16_t off)
{
	switch (proto) {
	case IPPROTO_TCP_: {
		if (avail < TCP_MIN_HLEN)
			return FERRY_PARSE_REASON_TCP_SHORT;
		uint32_t doff = (uint32_t)(p[12] >> 4) * 4;
		if (doff < TCP_MIN_HLEN)
			return FERRY_PARSE_REASON_TCP_BAD_OFF;
		if (doff > avail)
			return FERRY_PARSE_REASON_TCP_SHORT;
		k->tp_src = be16(p);
		k->tp_dst = be16(p + 2);
		k->tcp_flags = be16(p + 12) & 0x0fff;
		break;
	}
	case IPPROTO_UDP_:
		if (avail < UDP_HLEN)
			return FERRY_PARSE_REASON_UDP_SHORT;
		k->tp_src = be16(p);
		k->tp_dst = be16(p + 2);
		break;
	case IPPROTO_SCTP_:
		if (avail < SCTP_HLEN)
			return FERRY_PARSE_REASON_SCTP_SHORT;
		k->tp_src = be16(p);
		k->tp_dst = be16(p + 2);
		break;
	case IPPROTO_ICMP_:
		if (ipv6)
			return FERRY_PARSE_OK; /* ICMPv4 inside IPv6 is not ICMP */
		if (avail < ICMP_HLEN)
			return FERRY_PARSE_REASON_ICMP_SHORT;
		k->tp_src = p[0];
		k->tp_dst = p[1];
		break;
	case IPPROTO_ICMPV6_:
		if (!ipv6)
			return FERRY_PARSE_OK;
		if (avail < ICMPV6_HLEN)
			return FERRY_PARSE_REASON_ICMPV6_SHORT;
		k->tp_src = p[0];
		k->tp_dst = p[1];
		break;
	default:
		return FERRY_PARSE_OK; /* no L4 fields for this protocol */
	}
	lay->l4_off = off;
	lay->l4_proto = proto;
	return FERRY_PARSE_OK;
}

/* avail: bytes of p readable here; beyond: more bytes of the packet in later
 * segments of a chained mbuf (the length fields may count them; headers are read
 * only from the first segment) */
static uint8_t parse_ipv4(const uint8_t *p, uint32_t avail, uint32_t beyond, struct ferry_flow_key *k,
			  struct ferry_pkt_layout *lay)
{
	if (avail < IPV4_MIN_HLEN)
		return FERRY_PARSE_REASON_IPV4_SHORT;
	uint32_t ihl = (uint32_t)(p[0] & 0x0f) * 4;
	if ((p[0] >> 4) != 4 || ihl < IPV4_MIN_HLEN)
		return FERRY_PARSE_REASON_IPV4_BAD_IHL;
	if (ihl > avail)
		return FERRY_PARSE_REASON_IPV4_SHORT;
	uint32_t tot = be16(p + 2);
	k->nw_tos = p[1];
	k->nw_ttl = p[8];
	k->nw_proto = p[9];
	memcpy(k->nw_src, p + 12, 4);
	memcpy(k->nw_dst, p + 16, 4);
	uint16_t frag = be16(p + 6);
	if (frag & (IPV4_MF | IPV4_FRAG_OFF)) {
		k->nw_frag = FERRY_NW_FRAG_BIT_ANY;
		if (frag & IPV4_FRAG_OFF)
			k->nw_frag |= FERRY_NW_FRAG_BIT_LATER;
	}
	lay->l3 = FERRY_L3_IPV4;
	if (tot < ihl || tot > avail + beyond)
		return FERRY_PARSE_REASON_IPV4_BAD_LEN; /* header fields stand; no L4 */
	if (k->nw_frag & FERRY_NW_FRAG_BIT_LATER)
		return FERRY_PARSE_OK; /* later fragments carry no L4 header */
	return parse_l4(p + ihl, (tot < avail ? tot : avail) - ihl, k->nw_proto, 0, k, lay, (uint16_t)(lay->l3_off + ihl));
}

static uint8_t parse_ipv6(const uint8_t *p, uint32_t avail, struct ferry_flow_key *k,
			  struct ferry_pkt_layout *lay)
{
	if (avail < IPV6_HLEN)
		return FERRY_PARSE_REASON_IPV6_SHORT;
	uint32_t vtcfl = be32(p);
	if ((vtcfl >> 28) != 6)
		return FERRY_PARSE_REASON_IPV6_BAD_VERSION;
	k->nw_tos = (uint8_t)(vtcfl >> 20);
	k->ipv6_label = vtcfl & 0xfffff;
	k->nw_ttl = p[7];
	memcpy(k->nw_src, p + 8, 16);
	memcpy(k->nw_dst, p + 24, 16);
	lay->l3 = FERRY_L3_IPV6;
	uint32_t payload = be16(p + 4);
	uint32_t end = IPV6_HLEN + payload;
	if (end > avail)
		end = avail; /* truncated payload: walk what is there */
	uint8_t nh = p[6];
	uint32_t off = IPV6_HLEN;
	/* extension headers until the upper layer */
	for (int hops = 0; hops < 16; hops++) {
		if (nh == IPPROTO_HOPOPTS_ || nh == IPPROTO_ROUTING_ || nh == IPPROTO_DSTOPTS_ ||
		    nh == IPPROTO_AH_) {
			if (off + IPV6_EXT_MIN > end)
				return FERRY_PARSE_REASON_IPV6_EXT_SHORT; /* upper protocol unknown */
			uint32_t elen = nh == IPPROTO_AH_ ? ((uint32_t)p[off + 1] + 2) * 4
							 : ((uint32_t)p[off + 1] + 1) * 8;
			if (off + elen > end)
				return FERRY_PARSE_REASON_IPV6_EXT_SHORT;
			nh = p[off];
			off += elen;
			continue;
		}
		if (nh == IPPROTO_FRAGMENT_) {
			if (off + IPV6_FRAG_HLEN > end)
				return FERRY_PARSE_REASON_IPV6_EXT_SHORT;
			uint16_t fo = be16(p + off + 2);
			k->nw_frag = FERRY_NW_FRAG_BIT_ANY;
			if (fo & 0xfff8)
				k->nw_frag |= FERRY_NW_FRAG_BIT_LATER;
			nh = p[off];
			off += IPV6_FRAG_HLEN;
			if (k->nw_frag & FERRY_NW_FRAG_BIT_LATER) {
				k->nw_proto = nh;
				return FERRY_PARSE_OK;
			}
			continue;
		}
		break;
	}
	k->nw_proto = nh;
	return parse_l4(p + off, end - off, nh, 1, k, lay, (uint16_t)(lay->l3_off + off));
}

static uint8_t parse_arp(const uint8_t *p, uint32_t avail, struct ferry_flow_key *k,
			 struct ferry_pkt_layout *lay)
{
	if (avail < ARP_ETH_IPV4_LEN)
		return FERRY_PARSE_REASON_ARP_SHORT;
	/* only Ethernet/IPv4 ARP has the fields OpenFlow names */
	if (be16(p) != 1 || be16(p + 2) != ETHERTYPE_IPV4 || p[4] != 6 || p[5] != 4)
		return FERRY_PARSE_OK;
	uint16_t op = be16(p + 6);
	if (op <= 0xff)
		k->nw_proto = (uint8_t)op;
	memcpy(k->arp_sha, p + 8, 6);
	memcpy(k->nw_src, p + 14, 4);
	memcpy(k->arp_tha, p + 18, 6);
	memcpy(k->nw_dst, p + 24, 4);
	lay->l3 = FERRY_L3_ARP;
	return FERRY_PARSE_OK;
}

static uint8_t parse_frame(const uint8_t *d, uint32_t len, uint32_t beyond, uint32_t in_port,
			   struct ferry_flow_key *k, struct ferry_pkt_layout *lay)
{
	memset(k, 0, sizeof(*k));
	memset(lay, 0, sizeof(*lay));
	k->in_port = in_port;
	lay->parse_error = FERRY_PARSE_OK;
	if (unlikely(len < ETH_HLEN))
		return lay->parse_error = FERRY_PARSE_REASON_ETH_SHORT;
	memcpy(k->eth_dst, d, 6);
	memcpy(k->eth_src, d + 6, 6);
	uint16_t type = be16(d + 12);
	uint32_t off = ETH_HLEN;

	while (type == ETHERTYPE_VLAN || type == ETHERTYPE_QINQ) {
		if (lay->n_vlans == 2) {
			lay->l3_off = (uint16_t)off;
			k->eth_type = type; /* a third tag is left as the payload's type */
			return lay->parse_error = FERRY_PARSE_REASON_TOO_MANY_VLANS;
		}
		if (off + VLAN_HLEN > len)
			return lay->parse_error = FERRY_PARSE_REASON_VLAN_SHORT;
		uint16_t tci = be16(d + off) | FERRY_VLAN_PRESENT;
		if (lay->n_vlans == 0) {
			k->vlan_tci = tci;
			k->vlan_tpid = type;
		} else {
			k->vlan_inner_tci = tci;
		}
		lay->n_vlans++;
		type = be16(d + off + 2);
		off += VLAN_HLEN;
	}
	k->eth_type = type >= ETHERTYPE_MIN ? type : FERRY_ETH_TYPE_NONE;
	lay->l3_off = (uint16_t)off;

	uint8_t err = FERRY_PARSE_OK;
	switch (type) {
	case ETHERTYPE_IPV4:
		err = parse_ipv4(d + off, len - off, beyond, k, lay);
		break;
	case ETHERTYPE_IPV6:
		err = parse_ipv6(d + off, len - off, k, lay);
		break;
	case ETHERTYPE_ARP:
		err = parse_arp(d + off, len - off, k, lay);
		break;
	default:
		break;
	}
	return lay->parse_error = err;
}

uint8_t ferry_parse_buf(const uint8_t *d, uint32_t len, uint32_t in_port,
			struct ferry_flow_key *k, struct ferry_pkt_layout *lay)
{
	return parse_frame(d, len, 0, in_port, k, lay);
}

uint8_t ferry_parse(const struct rte_mbuf *m, uint32_t in_port, struct ferry_flow_key *key,
		    struct ferry_pkt_layout *lay)
{
	/* a chained packet (a reassembled STT frame, a jumbo from a virtio guest) is
	 * parsed from its first segment, which holds its headers */
	return parse_frame(rte_pktmbuf_mtod(m, const uint8_t *), rte_pktmbuf_data_len(m),
			   rte_pktmbuf_pkt_len(m) - rte_pktmbuf_data_len(m), in_port, key, lay);
}
