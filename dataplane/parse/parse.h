/* Packet parsing into the flow key: Ethernet, up to two VLAN tags (802.1Q and an
 * 802.1ad outer tag), ARP, IPv4 with options, IPv6 with extension headers, TCP, UDP,
 * SCTP, ICMP, ICMPv6. A truncated or malformed header is counted by reason and the
 * key keeps only the fields parsed before it: it never matches fields it does not
 * have. The layout records where each header starts, for the actions that rewrite. */
#ifndef FERRY_PARSE_H
#define FERRY_PARSE_H

#include <stdint.h>
#include <rte_mbuf.h>
#include "ferry_proto.h"

#define FERRY_ETH_TYPE_NONE 0x05ff /* OVS's dl_type for 802.3 frames (length, not type) */
#define FERRY_VLAN_PRESENT 0x1000u
#define FERRY_PARSE_OK 0xff

enum ferry_l3 { FERRY_L3_NONE = 0, FERRY_L3_IPV4, FERRY_L3_IPV6, FERRY_L3_ARP };

struct ferry_pkt_layout {
	uint16_t l3_off;      /* first byte after the L2 header (and tags) */
	uint16_t l4_off;      /* 0 when no L4 header was parsed */
	uint8_t n_vlans;
	uint8_t l3;           /* enum ferry_l3 */
	uint8_t l4_proto;     /* set when l4_off != 0 */
	uint8_t parse_error;  /* enum ferry_parse_reason or FERRY_PARSE_OK */
};

/* Fills key (zeroed first) from the packet received on in_port. Returns the parse
 * error (FERRY_PARSE_REASON_*) or FERRY_PARSE_OK. Reads only the first segment. */
uint8_t ferry_parse(const struct rte_mbuf *m, uint32_t in_port, struct ferry_flow_key *key,
		    struct ferry_pkt_layout *lay);

/* The same over a plain buffer (tests, fuzzing). */
uint8_t ferry_parse_buf(const uint8_t *data, uint32_t len, uint32_t in_port,
			struct ferry_flow_key *key, struct ferry_pkt_layout *lay);

#endif
