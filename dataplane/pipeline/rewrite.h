/* Header rewrites for the datapath ops, with checksums updated incrementally
 * (RFC 1624). Each works on the first segment at the offsets the parser recorded and
 * keeps that layout current (push/pop VLAN move the L3 and L4 offsets). A rewrite of a
 * header the packet does not have does nothing. */
#ifndef FERRY_REWRITE_H
#define FERRY_REWRITE_H

#include <rte_mbuf.h>
#include "ferry_proto.h"
#include "../parse/parse.h"

void ferry_rewrite_set_field(struct rte_mbuf *m, struct ferry_pkt_layout *lay, const struct ferry_act_set_field *a);
/* 0, or -1 when the mbuf has no headroom for the tag */
int ferry_rewrite_push_vlan(struct rte_mbuf *m, struct ferry_pkt_layout *lay, uint16_t tpid);
void ferry_rewrite_pop_vlan(struct rte_mbuf *m, struct ferry_pkt_layout *lay);
void ferry_rewrite_dec_ttl(struct rte_mbuf *m, const struct ferry_pkt_layout *lay);

#endif
