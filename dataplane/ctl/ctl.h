/* The main lcore's side of the control channel: drains the request ring, validates
 * every field of every record (a buggy or hostile control process must not crash
 * ferryd), applies a whole batch, publishes it once, then answers. Answers come only
 * after the change is visible to every worker. */
#ifndef FERRY_CTL_H
#define FERRY_CTL_H

#include <stdint.h>
#include "shm.h"
#include "../classifier/flow_table.h"

struct ferry_ctl {
	struct ferry_shm *shm;
	struct ferry_flow_table *flows;
	uint64_t requests;
	uint64_t bad_requests;
};

void ferry_ctl_init(struct ferry_ctl *ctl, struct ferry_shm *shm, struct ferry_flow_table *flows);

/* Handles up to max requests (bounded by the room in the response ring: a full
 * response ring pushes back on the request ring instead of losing answers).
 * Returns how many were handled. */
uint32_t ferry_ctl_poll(struct ferry_ctl *ctl, uint32_t max);

/* Decodes one request record into a response (exposed for the unit and fuzz tests).
 * Returns 1 when the flow table changed. */
int ferry_ctl_handle(struct ferry_ctl *ctl, const uint8_t *rec, uint32_t rec_len,
		     struct ferry_msg_hdr *resp_hdr, struct ferry_response *resp);

#endif
