/* The three-state machines: UDP and every protocol without its own tracker
 * (FIRST -> MULTIPLE on more originator packets -> BIDIR once a reply is seen), and
 * ICMP/ICMPv6 echo (FIRST -> REPLY). Until a reply is seen packets stay 'new', as
 * in OVS; a reply and everything after it is 'est'. */
#include "ct_private.h"

enum { ICMP_FIRST, ICMP_REPLY };

static bool other_valid_new(struct ferry_ct_thread *t, const struct ct_pktctx *p)
{
	(void)t;
	(void)p;
	return true;
}

static void other_new_conn(struct ferry_ct *ct, struct ct_conn *c, const struct ct_pktctx *p)
{
	(void)ct;
	(void)p;
	c->l4state = OTHER_FIRST;
	c->tm = FERRY_CT_TM_UDP_FIRST;
}

/* the machine itself is ct_other_update (ct_private.h), which the burst path inlines */
static enum ct_update other_update(struct ferry_ct_thread *t, struct ct_conn *c, const struct ct_pktctx *p,
				   bool reply, bool *refresh)
{
	(void)t;
	(void)p;
	*refresh = true;
	return ct_other_update(c, reply);
}

/* only requests open an ICMP connection */
static bool icmp_valid_new(struct ferry_ct_thread *t, const struct ct_pktctx *p)
{
	if (p->icmp_reply) {
		ct_count_invalid(t, FERRY_CT_INVALID_REASON_NO_CONN);
		return false;
	}
	return true;
}

static void icmp_new_conn(struct ferry_ct *ct, struct ct_conn *c, const struct ct_pktctx *p)
{
	(void)ct;
	c->l4state = ICMP_FIRST;
	c->tm = FERRY_CT_TM_ICMP_FIRST;
	c->icmp_type = p->icmp_type;
	c->icmp_code = p->icmp_code;
}

static enum ct_update icmp_update(struct ferry_ct_thread *t, struct ct_conn *c, const struct ct_pktctx *p,
				  bool reply, bool *refresh)
{
	/* a request must travel the way the first one did, a reply the other way */
	if (p->icmp_reply != reply) {
		ct_count_invalid(t, FERRY_CT_INVALID_REASON_NO_CONN);
		return CT_UPDATE_INVALID;
	}
	enum ct_update r = CT_UPDATE_VALID;
	if (reply)
		c->l4state = ICMP_REPLY;
	else if (c->l4state != ICMP_REPLY)
		r = CT_UPDATE_VALID_NEW;
	c->tm = c->l4state == ICMP_REPLY ? FERRY_CT_TM_ICMP_REPLY : FERRY_CT_TM_ICMP_FIRST;
	*refresh = true;
	return r;
}

const struct ct_l4_ops ct_other_ops = {
	.valid_new = other_valid_new,
	.new_conn = other_new_conn,
	.update = other_update,
};

const struct ct_l4_ops ct_icmp_ops = {
	.valid_new = icmp_valid_new,
	.new_conn = icmp_new_conn,
	.update = icmp_update,
};
