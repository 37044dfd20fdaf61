/* The flow lookup as the workers see it: an immutable table built by the main lcore
 * from the rule set and published whole (RCU), looked up a burst at a time. The
 * foundation's implementation matches in_port only; the pipeline issue replaces it
 * with tuple space search behind this same interface. */
#ifndef FERRY_CLASSIFIER_H
#define FERRY_CLASSIFIER_H

#include <stdint.h>
#include <rte_mbuf.h>
#include "ferry_proto.h"

/* A rule as the dataplane holds it. slot indexes flow_stats and the rule array. */
struct ferry_rule {
	uint64_t id;
	uint32_t priority;
	uint32_t slot;
	uint16_t in_port;   /* FERRY_PORT_ANY = wildcard */
	uint16_t out_port;
	uint8_t table_id;
	uint8_t action;     /* enum ferry_flow_action */
	uint8_t in_use;
};

struct ferry_classifier;

/* Builds a lookup table from the rules in use among rules[0..n). NULL on ENOMEM. */
struct ferry_classifier *ferry_classifier_build(const struct ferry_rule *rules, uint32_t n,
						uint16_t n_ports);
void ferry_classifier_free(struct ferry_classifier *cls);

/* Looks up a burst received on in_port (like OVS's dp_netdev_input, a burst comes from
 * one port). For each packet the winning rule (highest priority, then the exact in_port
 * over the wildcard) or NULL on a table miss. Returns FERRY_CLS_UNIFORM when every
 * packet hits the rule in out[0] (only out[0] is then written), FERRY_CLS_MIXED when
 * out[0..n) hold each packet's own rule. */
enum ferry_cls_result { FERRY_CLS_MIXED = 0, FERRY_CLS_UNIFORM = 1 };
enum ferry_cls_result ferry_classifier_lookup_burst(const struct ferry_classifier *cls, uint16_t in_port,
						    struct rte_mbuf **pkts, uint16_t n,
						    const struct ferry_rule **out);

/* Rules the table holds. */
uint32_t ferry_classifier_size(const struct ferry_classifier *cls);

#endif
