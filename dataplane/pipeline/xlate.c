#include "xlate.h"

#include <string.h>
#include "actions.h"
#include "../parse/parse.h"

#define ETH_TYPE_IPV4 0x0800
#define ETH_TYPE_IPV6 0x86dd

struct xctx {
	const struct tss *tss;
	uint64_t version;
	struct ferry_flow_key *key;
	struct ferry_program *prog;
	unsigned steps;
	int stop;
	int missed;
};

static void xlate_table(struct xctx *x, uint8_t table);

static void emit(struct xctx *x, uint8_t type, uint32_t port, const void *act, const struct ferry_rule *r)
{
	struct ferry_program *p = x->prog;
	if (p->n_ops == FERRY_PROG_MAX_OPS) {
		p->drop_reason = FERRY_DROP_REASON_RESUBMIT_LIMIT;
		x->stop = 1;
		return;
	}
	struct ferry_op *op = &p->ops[p->n_ops++];
	memset(op, 0, sizeof(*op));
	op->type = type;
	op->port = port;
	op->act = act;
	op->rule = r;
	op->table = r ? r->table_id : 0;
}

static int is_ip(const struct ferry_flow_key *k)
{
	return k->eth_type == ETH_TYPE_IPV4 || k->eth_type == ETH_TYPE_IPV6;
}

static void set_field(struct xctx *x, const struct ferry_act_set_field *a, const struct ferry_rule *r)
{
	const struct ferry_field_desc *d = ferry_field_desc(a->field);
	struct ferry_flow_key *k = x->key;
	if (d->needs_l3 == 4 && k->eth_type != ETH_TYPE_IPV4)
		return;
	if (d->needs_l3 == 6 && k->eth_type != ETH_TYPE_IPV6)
		return;
	if (d->needs_l3 == 1 && !is_ip(k))
		return;
	if ((a->field == FERRY_FIELD_ID_TP_SRC || a->field == FERRY_FIELD_ID_TP_DST) &&
	    (k->nw_frag & FERRY_NW_FRAG_BIT_LATER))
		return; /* no L4 header to rewrite */
	if ((a->field == FERRY_FIELD_ID_VLAN_VID || a->field == FERRY_FIELD_ID_VLAN_PCP) &&
	    !(k->vlan_tci & FERRY_VLAN_PRESENT))
		return; /* set_field on a tag the packet does not have does nothing */
	uint8_t *kb = (uint8_t *)k + d->key_off;
	for (unsigned i = 0; i < d->len; i++)
		kb[i] = (uint8_t)((kb[i] & ~a->mask[i]) | (a->value[i] & a->mask[i]));
	if (a->field == FERRY_FIELD_ID_VLAN_VID || a->field == FERRY_FIELD_ID_VLAN_PCP)
		k->vlan_tci |= FERRY_VLAN_PRESENT;
	/* metadata, registers and ct fields live in the key only; the tunnel fields also
	 * travel with the packet to a tunnel output later in the list */
	if (a->field < FERRY_FIELD_ID_TUN_ID)
		emit(x, FERRY_OP_SET_FIELD, 0, a, r);
	else if (a->field <= FERRY_FIELD_ID_TUN_DST)
		emit(x, FERRY_OP_SET_TUNNEL, 0, a, r);
}

static void xlate_actions(struct xctx *x, const struct ferry_rule *r)
{
	struct ferry_flow_key *k = x->key;
	FERRY_ACT_FOREACH(h, r->actions, r->actions_len) {
		if (x->stop)
			return;
		switch (h->type) {
		case FERRY_ACTION_TYPE_OUTPUT: {
			const struct ferry_act_output *a = (const void *)h;
			if (a->port == FERRY_PORT_IN_PORT)
				emit(x, FERRY_OP_OUTPUT, k->in_port, a, r);
			else if (a->port != k->in_port) /* OpenFlow: never back out of in_port implicitly */
				emit(x, FERRY_OP_OUTPUT, a->port, a, r);
			break;
		}
		case FERRY_ACTION_TYPE_GOTO_TABLE:
			xlate_table(x, ((const struct ferry_act_goto_table *)(const void *)h)->table_id);
			return;
		case FERRY_ACTION_TYPE_RESUBMIT: {
			const struct ferry_act_resubmit *a = (const void *)h;
			uint32_t saved = k->in_port;
			if (a->in_port != FERRY_PORT_IN_PORT)
				k->in_port = a->in_port;
			xlate_table(x, a->table_id == FERRY_TABLE_NONE ? r->table_id : a->table_id);
			k->in_port = saved;
			break;
		}
		case FERRY_ACTION_TYPE_SET_FIELD:
			set_field(x, (const void *)h, r);
			break;
		case FERRY_ACTION_TYPE_PUSH_VLAN: {
			const struct ferry_act_push_vlan *a = (const void *)h;
			/* the new outer tag copies the old outer TCI, if any (OpenFlow) */
			k->vlan_inner_tci = k->vlan_tci;
			k->vlan_tci |= FERRY_VLAN_PRESENT;
			k->vlan_tpid = a->tpid;
			emit(x, FERRY_OP_PUSH_VLAN, 0, a, r);
			break;
		}
		case FERRY_ACTION_TYPE_POP_VLAN:
			if (k->vlan_tci & FERRY_VLAN_PRESENT) {
				k->vlan_tci = k->vlan_inner_tci;
				k->vlan_tpid = k->vlan_inner_tci ? 0x8100 : 0;
				k->vlan_inner_tci = 0;
				emit(x, FERRY_OP_POP_VLAN, 0, h, r);
			}
			break;
		case FERRY_ACTION_TYPE_DEC_TTL:
			if (!is_ip(k))
				break;
			if (k->nw_ttl <= 1) {
				x->prog->drop_reason = FERRY_DROP_REASON_TTL_EXCEEDED;
				x->stop = 1;
				return;
			}
			k->nw_ttl--;
			emit(x, FERRY_OP_DEC_TTL, 0, h, r);
			break;
		case FERRY_ACTION_TYPE_CT: {
			const struct ferry_act_ct *a = (const void *)h;
			/* an untracked packet (notrack) is not looked up, committed or given an
			 * entry: a ct() without table= does nothing to it; with table= it still
			 * recirculates, and the next pass starts with the untracked state
			 * (recirculate() sees it in exit_meta: ct(table=) ends the translation) */
			if ((k->ct_state & FERRY_CT_STATE_BIT_UNTRACKED) && a->table_id == FERRY_TABLE_NONE)
				break;
			/* port 1 marks the ct that recirculates: it consumes the packet */
			emit(x, FERRY_OP_CT, a->table_id != FERRY_TABLE_NONE, a, r);
			if (a->table_id != FERRY_TABLE_NONE) {
				/* the rest happens in the next pass, with the ct fields set */
				x->prog->recirc_table = a->table_id;
				x->stop = 1;
				return;
			}
			break;
		}
		case FERRY_ACTION_TYPE_CT_CLEAR:
			k->ct_state = 0;
			k->ct_zone = 0;
			k->ct_mark = 0;
			memset(k->ct_label, 0, sizeof(k->ct_label));
			emit(x, FERRY_OP_CT_CLEAR, 0, h, r);
			break;
		case FERRY_ACTION_TYPE_NOTRACK:
			/* The packet gets the untracked state for the rest of this pass and its
			 * recirculations (the state travels in the key's metadata), until a
			 * ct_clear. It is trk|untracked, not untracked alone: as netfilter's
			 * UNTRACKED (-m conntrack --ctstate UNTRACKED, nft "ct state untracked"),
			 * it is a verdict about the packet, not the absence of one. So
			 * "ct_state=-trk,actions=ct(table=N)" flows, written for packets that never
			 * met the tracker, do not take it (they would send it round again, up
			 * to the recirculation limit); +untracked matches it; +trk+new, +trk+est,
			 * +trk+inv... do not. It belongs to no connection: the other ct fields
			 * are cleared as ct_clear does, and the original-direction tuple too. */
			k->ct_state = FERRY_CT_STATE_BIT_TRK | FERRY_CT_STATE_BIT_UNTRACKED;
			k->ct_zone = 0;
			k->ct_mark = 0;
			memset(k->ct_label, 0, sizeof(k->ct_label));
			k->ct_nw_proto = 0;
			memset(k->ct_nw_src, 0, sizeof(k->ct_nw_src));
			memset(k->ct_nw_dst, 0, sizeof(k->ct_nw_dst));
			k->ct_tp_src = 0;
			k->ct_tp_dst = 0;
			emit(x, FERRY_OP_NOTRACK, 0, h, r);
			break;
		case FERRY_ACTION_TYPE_NORMAL:
			emit(x, FERRY_OP_NORMAL, 0, h, r);
			break;
		case FERRY_ACTION_TYPE_CONTROLLER:
			emit(x, FERRY_OP_CONTROLLER, 0, h, r);
			break;
		default: /* NOTE */
			break;
		}
	}
}

static void xlate_table(struct xctx *x, uint8_t table)
{
	struct ferry_program *p = x->prog;
	if (++x->steps > FERRY_MAX_RESUBMIT) {
		p->drop_reason = FERRY_DROP_REASON_RESUBMIT_LIMIT;
		x->stop = 1;
		return;
	}
	const struct ferry_rule *r = tss_lookup(x->tss, table, x->key, x->version, NULL);
	if (p->n_visits < FERRY_PROG_MAX_VISITS) {
		p->visit_table[p->n_visits] = table;
		if (r) {
			p->visit_hit |= (uint16_t)(1u << p->n_visits);
			p->rules[p->n_rules++] = r;
		}
		p->n_visits++;
	}
	if (r == NULL) {
		x->missed = 1; /* a miss drops (in this branch) */
		return;
	}
	xlate_actions(x, r);
}

void ferry_xlate(const struct tss *tss, uint64_t version, struct ferry_flow_key *key, uint8_t start_table,
		 struct ferry_program *prog)
{
	struct xctx x = { .tss = tss, .version = version, .key = key, .prog = prog };
	prog->n_ops = 0;
	prog->n_visits = 0;
	prog->n_rules = 0;
	prog->visit_hit = 0;
	prog->drop_reason = FERRY_NO_DROP;
	prog->recirc_table = FERRY_TABLE_NONE;
	xlate_table(&x, start_table);

	/* which consuming ops must send a copy: those with a rewrite after them */
	int rewrite_after = 0, seen_last = 0;
	for (int i = prog->n_ops - 1; i >= 0; i--) {
		struct ferry_op *op = &prog->ops[i];
		if (ferry_op_consumes(op)) {
			op->copy = (uint8_t)rewrite_after;
			if (!seen_last) {
				op->last = 1;
				seen_last = 1;
			}
		}
		/* a recirculation rewrites too: the next pass may change the same mbuf before
		 * this burst's output is sent */
		if (ferry_op_rewrites(op->type) ||
		    (op->type == FERRY_OP_CT &&
		     (op->port || (((const struct ferry_act_ct *)op->act)->flags & FERRY_CT_FLAG_NAT))))
			rewrite_after = 1;
	}
	if (!seen_last && prog->drop_reason == FERRY_NO_DROP)
		prog->drop_reason = x.missed ? FERRY_DROP_REASON_TABLE_MISS : FERRY_DROP_REASON_NO_ACTIONS;
}
