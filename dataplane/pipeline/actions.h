/* A flow's action list: TLVs (act_hdr + body, len a multiple of 8) as proto/layout.json
 * defines them. Validation happens once, when the flow arrives; translation then walks
 * lists it can trust. */
#ifndef FERRY_ACTIONS_H
#define FERRY_ACTIONS_H

#include <stddef.h>
#include <stdint.h>
#include "ferry_proto.h"

struct ferry_field_desc {
	uint16_t key_off; /* offset in struct ferry_flow_key */
	uint8_t len;      /* bytes */
	uint8_t needs_l3; /* 0 none, 4 IPv4, 6 IPv6, 1 IPv4 or IPv6 */
};

/* Where set_field's field lives in the key; NULL for an unknown id. */
const struct ferry_field_desc *ferry_field_desc(uint16_t field_id);

#define FERRY_ACT_FOREACH(ACT, LIST, LIST_LEN) \
	for (const struct ferry_act_hdr *ACT = (const struct ferry_act_hdr *)(const void *)(LIST); \
	     (const uint8_t *)ACT < (const uint8_t *)(LIST) + (LIST_LEN); \
	     ACT = (const struct ferry_act_hdr *)(const void *)((const uint8_t *)ACT + ACT->len))

/* bit p of a port mask: port p exists (an ethdev or a tunnel) */
#define FERRY_PORT_IN_MASK(mask, p) ((p) < 64 && (((mask) >> (p)) & 1))
static inline uint64_t ferry_ports_mask_first(uint16_t n)
{
	return n >= 64 ? ~0ull : (1ull << n) - 1;
}

/* Checks every action of a flow in table_id against the ports that exist (mask).
 * FERRY_STATUS_* and a reason naming the action ("actions[2]: ..."). */
int ferry_actions_validate(const uint8_t *actions, uint32_t len, uint8_t table_id, uint64_t ports,
			   char *why, size_t whylen);

#endif
