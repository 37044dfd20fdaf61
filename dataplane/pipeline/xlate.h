/* Translation: running a packet's key through the OpenFlow tables (lookups, goto_table,
 * resubmit, set_field on the key, ...) and compiling what it must do into a program
 * of datapath ops. A program depends only on the exact key, the start table and the
 * table version, so the exact-match cache (emc.h) can reuse it for every packet with
 * the same key until the version changes (OVS: xlate + the EMC/megaflow cache). */
#ifndef FERRY_XLATE_H
#define FERRY_XLATE_H

#include <stdint.h>
#include "ferry_proto.h"
#include "../classifier/tss.h"

#define FERRY_PROG_MAX_OPS 24
#define FERRY_PROG_MAX_VISITS 16
#define FERRY_NO_DROP 0xff

enum ferry_op_type {
	FERRY_OP_OUTPUT = 1,
	FERRY_OP_SET_FIELD,
	FERRY_OP_PUSH_VLAN,
	FERRY_OP_POP_VLAN,
	FERRY_OP_DEC_TTL,
	FERRY_OP_CT,
	FERRY_OP_CT_CLEAR,
	FERRY_OP_NOTRACK,
	FERRY_OP_NORMAL,
	FERRY_OP_CONTROLLER,
	FERRY_OP_SET_TUNNEL, /* set_field on tun_id/tun_src/tun_dst: read by a later tunnel output */
};

struct ferry_op {
	uint8_t type;
	uint8_t table;      /* CONTROLLER: the table of the rule */
	uint8_t copy;       /* consuming op with a rewrite after it: send a copy */
	uint8_t last;       /* the last op that consumes the packet */
	uint32_t port;      /* OUTPUT */
	const void *act;    /* the action in its rule (rules outlive programs of their version) */
	const struct ferry_rule *rule;
};

struct ferry_program {
	uint8_t n_ops;
	uint8_t n_visits;
	uint8_t drop_reason;   /* FERRY_NO_DROP or a FERRY_DROP_REASON_* for packets it consumes nowhere */
	uint8_t recirc_table;  /* FERRY_TABLE_NONE or the table a ct(table=) resumes at */
	uint8_t visit_table[FERRY_PROG_MAX_VISITS];
	uint16_t visit_hit;    /* bit i: visit i matched a rule */
	uint16_t n_rules;
	const struct ferry_rule *rules[FERRY_PROG_MAX_VISITS];
	struct ferry_op ops[FERRY_PROG_MAX_OPS];
	/* the key's metadata, registers, tunnel and ct fields as translation left them:
	 * what a recirculated packet carries into its next pass */
	uint8_t exit_meta[96] __attribute__((aligned(8)));
};

/* Translates key (which it may change: set_field, vlan, ttl) from start_table. */
void ferry_xlate(const struct tss *tss, uint64_t version, struct ferry_flow_key *key, uint8_t start_table,
		 struct ferry_program *prog);

static inline int ferry_op_rewrites(uint8_t type)
{
	return type == FERRY_OP_SET_FIELD || type == FERRY_OP_PUSH_VLAN || type == FERRY_OP_POP_VLAN ||
	       type == FERRY_OP_DEC_TTL;
}

/* Ops that take the packet somewhere (the last of them gets the original mbuf). */
static inline int ferry_op_consumes(const struct ferry_op *op)
{
	return op->type == FERRY_OP_OUTPUT || op->type == FERRY_OP_NORMAL ||
	       op->type == FERRY_OP_CONTROLLER || (op->type == FERRY_OP_CT && op->port != 0);
}

#endif
