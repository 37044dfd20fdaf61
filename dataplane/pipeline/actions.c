#include "actions.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define KOFF(f) ((uint16_t)offsetof(struct ferry_flow_key, f))
#define KLEN(f) ((uint8_t)sizeof(((struct ferry_flow_key *)0)->f))

static const struct ferry_field_desc fields[] = {
	[FERRY_FIELD_ID_ETH_SRC] = { KOFF(eth_src), KLEN(eth_src), 0 },
	[FERRY_FIELD_ID_ETH_DST] = { KOFF(eth_dst), KLEN(eth_dst), 0 },
	[FERRY_FIELD_ID_VLAN_VID] = { KOFF(vlan_tci), KLEN(vlan_tci), 0 },
	[FERRY_FIELD_ID_VLAN_PCP] = { KOFF(vlan_tci), KLEN(vlan_tci), 0 },
	[FERRY_FIELD_ID_IPV4_SRC] = { KOFF(nw_src), 4, 4 },
	[FERRY_FIELD_ID_IPV4_DST] = { KOFF(nw_dst), 4, 4 },
	[FERRY_FIELD_ID_IPV6_SRC] = { KOFF(nw_src), 16, 6 },
	[FERRY_FIELD_ID_IPV6_DST] = { KOFF(nw_dst), 16, 6 },
	[FERRY_FIELD_ID_IP_DSCP] = { KOFF(nw_tos), 1, 1 },
	[FERRY_FIELD_ID_IP_ECN] = { KOFF(nw_tos), 1, 1 },
	[FERRY_FIELD_ID_IP_TTL] = { KOFF(nw_ttl), 1, 1 },
	[FERRY_FIELD_ID_TP_SRC] = { KOFF(tp_src), 2, 1 },
	[FERRY_FIELD_ID_TP_DST] = { KOFF(tp_dst), 2, 1 },
	[FERRY_FIELD_ID_TUN_ID] = { KOFF(tun_id), KLEN(tun_id), 0 },
	[FERRY_FIELD_ID_TUN_SRC] = { KOFF(tun_src), KLEN(tun_src), 0 },
	[FERRY_FIELD_ID_TUN_DST] = { KOFF(tun_dst), KLEN(tun_dst), 0 },
	[FERRY_FIELD_ID_METADATA] = { KOFF(metadata), KLEN(metadata), 0 },
	[FERRY_FIELD_ID_REG0] = { KOFF(reg[0]), 4, 0 },
	[FERRY_FIELD_ID_REG1] = { KOFF(reg[1]), 4, 0 },
	[FERRY_FIELD_ID_REG2] = { KOFF(reg[2]), 4, 0 },
	[FERRY_FIELD_ID_REG3] = { KOFF(reg[3]), 4, 0 },
	[FERRY_FIELD_ID_REG4] = { KOFF(reg[4]), 4, 0 },
	[FERRY_FIELD_ID_REG5] = { KOFF(reg[5]), 4, 0 },
	[FERRY_FIELD_ID_REG6] = { KOFF(reg[6]), 4, 0 },
	[FERRY_FIELD_ID_REG7] = { KOFF(reg[7]), 4, 0 },
	[FERRY_FIELD_ID_CT_MARK] = { KOFF(ct_mark), KLEN(ct_mark), 0 },
	[FERRY_FIELD_ID_CT_LABEL] = { KOFF(ct_label), KLEN(ct_label), 0 },
};

const struct ferry_field_desc *ferry_field_desc(uint16_t id)
{
	if (id == 0 || id >= sizeof(fields) / sizeof(fields[0]) || fields[id].len == 0)
		return NULL;
	return &fields[id];
}

/* Body size each fixed-size action must have (0: any length, e.g. NOTE). */
static uint32_t expected_len(uint16_t type)
{
	switch (type) {
	case FERRY_ACTION_TYPE_OUTPUT: return sizeof(struct ferry_act_output);
	case FERRY_ACTION_TYPE_GOTO_TABLE: return sizeof(struct ferry_act_goto_table);
	case FERRY_ACTION_TYPE_RESUBMIT: return sizeof(struct ferry_act_resubmit);
	case FERRY_ACTION_TYPE_SET_FIELD: return sizeof(struct ferry_act_set_field);
	case FERRY_ACTION_TYPE_PUSH_VLAN: return sizeof(struct ferry_act_push_vlan);
	case FERRY_ACTION_TYPE_CT: return sizeof(struct ferry_act_ct);
	case FERRY_ACTION_TYPE_CONTROLLER: return sizeof(struct ferry_act_controller);
	case FERRY_ACTION_TYPE_POP_VLAN:
	case FERRY_ACTION_TYPE_DEC_TTL:
	case FERRY_ACTION_TYPE_CT_CLEAR:
	case FERRY_ACTION_TYPE_NORMAL:
	case FERRY_ACTION_TYPE_NOTRACK:
		return sizeof(struct ferry_act_hdr);
	case FERRY_ACTION_TYPE_NOTE:
		return 0;
	default:
		return UINT32_MAX;
	}
}

#define FAIL(st, ...) do { snprintf(why, whylen, __VA_ARGS__); return (st); } while (0)

int ferry_actions_validate(const uint8_t *actions, uint32_t len, uint8_t table_id, uint64_t ports,
			   char *why, size_t whylen)
{
	uint32_t off = 0;
	unsigned i = 0;
	if (len > FERRY_ACTIONS_MAX)
		FAIL(FERRY_STATUS_EINVAL, "actions_len: %u is more than %u", len, FERRY_ACTIONS_MAX);
	while (off < len) {
		struct ferry_act_hdr h;
		if (len - off < sizeof(h))
			FAIL(FERRY_STATUS_EINVAL, "actions[%u]: truncated header", i);
		memcpy(&h, actions + off, sizeof(h));
		if (h.len < sizeof(h) || h.len % 8 != 0 || h.len > len - off)
			FAIL(FERRY_STATUS_EINVAL, "actions[%u]: bad length %u", i, h.len);
		uint32_t want = expected_len(h.type);
		if (want == UINT32_MAX)
			FAIL(FERRY_STATUS_EINVAL, "actions[%u]: unknown action type %u", i, h.type);
		if (want != 0 && h.len != want)
			FAIL(FERRY_STATUS_EINVAL, "actions[%u]: length %u, this action has %u", i, h.len, want);
		const uint8_t *body = actions + off;
		bool last = off + h.len == len;
		switch (h.type) {
		case FERRY_ACTION_TYPE_OUTPUT: {
			struct ferry_act_output a;
			memcpy(&a, body, sizeof(a));
			if (a.port != FERRY_PORT_IN_PORT && !FERRY_PORT_IN_MASK(ports, a.port))
				FAIL(FERRY_STATUS_ENOPORT, "actions[%u]: output port %u does not exist", i, a.port);
			break;
		}
		case FERRY_ACTION_TYPE_GOTO_TABLE: {
			struct ferry_act_goto_table a;
			memcpy(&a, body, sizeof(a));
			if (a.table_id >= FERRY_N_TABLES || a.table_id <= table_id)
				FAIL(FERRY_STATUS_ENOTABLE, "actions[%u]: goto_table:%u must name a later table than %u",
				     i, a.table_id, table_id);
			if (!last)
				FAIL(FERRY_STATUS_EINVAL, "actions[%u]: goto_table must be the last action", i);
			break;
		}
		case FERRY_ACTION_TYPE_RESUBMIT: {
			struct ferry_act_resubmit a;
			memcpy(&a, body, sizeof(a));
			if (a.table_id != FERRY_TABLE_NONE && a.table_id >= FERRY_N_TABLES)
				FAIL(FERRY_STATUS_ENOTABLE, "actions[%u]: resubmit to table %u", i, a.table_id);
			if (a.in_port != FERRY_PORT_IN_PORT && !FERRY_PORT_IN_MASK(ports, a.in_port))
				FAIL(FERRY_STATUS_ENOPORT, "actions[%u]: resubmit port %u does not exist", i, a.in_port);
			break;
		}
		case FERRY_ACTION_TYPE_SET_FIELD: {
			struct ferry_act_set_field a;
			memcpy(&a, body, sizeof(a));
			const struct ferry_field_desc *d = ferry_field_desc(a.field);
			if (d == NULL)
				FAIL(FERRY_STATUS_EINVAL, "actions[%u]: set_field of unknown field %u", i, a.field);
			for (unsigned b = d->len; b < sizeof(a.value); b++)
				if (a.value[b] || a.mask[b])
					FAIL(FERRY_STATUS_EINVAL, "actions[%u]: set_field value wider than the field", i);
			break;
		}
		case FERRY_ACTION_TYPE_PUSH_VLAN: {
			struct ferry_act_push_vlan a;
			memcpy(&a, body, sizeof(a));
			if (a.tpid != 0x8100 && a.tpid != 0x88a8)
				FAIL(FERRY_STATUS_EINVAL, "actions[%u]: push_vlan tpid 0x%04x (0x8100 or 0x88a8)", i, a.tpid);
			break;
		}
		case FERRY_ACTION_TYPE_CT: {
			struct ferry_act_ct a;
			memcpy(&a, body, sizeof(a));
			if (a.table_id != FERRY_TABLE_NONE && a.table_id >= FERRY_N_TABLES)
				FAIL(FERRY_STATUS_ENOTABLE, "actions[%u]: ct table %u", i, a.table_id);
			if ((a.flags & FERRY_CT_FLAG_ZONE_FROM_REG) && (a.zone_reg > 7 || a.zone_reg_ofs > 16))
				FAIL(FERRY_STATUS_EINVAL, "actions[%u]: ct zone register reg%u[%u..]", i, a.zone_reg,
				     a.zone_reg_ofs);
			if (a.alg > FERRY_CT_ALG_TFTP)
				FAIL(FERRY_STATUS_EINVAL, "actions[%u]: ct alg %u", i, a.alg);
			if ((a.flags & (FERRY_CT_FLAG_NAT_SRC | FERRY_CT_FLAG_NAT_DST)) ==
			    (FERRY_CT_FLAG_NAT_SRC | FERRY_CT_FLAG_NAT_DST))
				FAIL(FERRY_STATUS_EINVAL, "actions[%u]: nat is src or dst, not both", i);
			break;
		}
		default:
			break;
		}
		off += h.len;
		i++;
	}
	return FERRY_STATUS_OK;
}
