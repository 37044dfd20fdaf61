#include "ctl.h"

#include <stdio.h>
#include <string.h>

#define CTL_MAX_BATCH 256u

void ferry_ctl_init(struct ferry_ctl *ctl, struct ferry_shm *shm, struct ferry_flow_table *flows)
{
	memset(ctl, 0, sizeof(*ctl));
	ctl->shm = shm;
	ctl->flows = flows;
}

static void reply(struct ferry_response *resp, uint32_t status, const char *msg)
{
	resp->status = status;
	if (msg)
		snprintf(resp->message, sizeof(resp->message), "%s", msg);
}

static int handle_flow_add(struct ferry_ctl *ctl, const struct ferry_flow_add *m,
			   struct ferry_response *resp)
{
	struct ferry_rule r = {
		.id = m->id,
		.priority = m->priority,
		.table_id = m->table_id,
		.action = m->action,
		.in_port = m->in_port,
		.out_port = m->out_port,
	};
	if (m->priority > UINT16_MAX) {
		reply(resp, FERRY_STATUS_EINVAL, "priority: must be 0..65535");
		return 0;
	}
	uint32_t slot = 0;
	const char *why = NULL;
	int st = ferry_flow_table_add(ctl->flows, &r, &slot, &why);
	reply(resp, (uint32_t)st, why);
	resp->aux = slot;
	return st == FERRY_STATUS_OK;
}

int ferry_ctl_handle(struct ferry_ctl *ctl, const uint8_t *rec, uint32_t rec_len,
		     struct ferry_msg_hdr *rh, struct ferry_response *resp)
{
	struct ferry_msg_hdr h;
	memset(resp, 0, sizeof(*resp));
	memset(rh, 0, sizeof(*rh));
	rh->type = FERRY_MSG_TYPE_RESPONSE;
	rh->len = sizeof(*resp);
	if (rec_len < sizeof(h)) {
		reply(resp, FERRY_STATUS_EINVAL, "record shorter than its header");
		return 0;
	}
	memcpy(&h, rec, sizeof(h));
	rh->req_id = h.req_id;
	if (h.len > rec_len - sizeof(h)) {
		reply(resp, FERRY_STATUS_EINVAL, "len: body longer than a record");
		return 0;
	}
	const uint8_t *body = rec + sizeof(h);

	switch (h.type) {
	case FERRY_MSG_TYPE_PING:
		reply(resp, FERRY_STATUS_OK, NULL);
		resp->value = ctl->flows->generation;
		return 0;
	case FERRY_MSG_TYPE_FLOW_ADD: {
		struct ferry_flow_add m;
		if (h.len != sizeof(m)) {
			reply(resp, FERRY_STATUS_EINVAL, "len: FLOW_ADD body has the wrong size");
			return 0;
		}
		memcpy(&m, body, sizeof(m));
		return handle_flow_add(ctl, &m, resp);
	}
	case FERRY_MSG_TYPE_FLOW_DEL: {
		struct ferry_flow_del m;
		if (h.len != sizeof(m)) {
			reply(resp, FERRY_STATUS_EINVAL, "len: FLOW_DEL body has the wrong size");
			return 0;
		}
		memcpy(&m, body, sizeof(m));
		int st = ferry_flow_table_del(ctl->flows, m.id);
		reply(resp, (uint32_t)st, st == FERRY_STATUS_ENOENT ? "id: no such flow" : NULL);
		return st == FERRY_STATUS_OK;
	}
	case FERRY_MSG_TYPE_FLOW_CLEAR:
		if (h.len != 0) {
			reply(resp, FERRY_STATUS_EINVAL, "len: FLOW_CLEAR has no body");
			return 0;
		}
		resp->value = ctl->flows->n_active;
		ferry_flow_table_clear(ctl->flows);
		reply(resp, FERRY_STATUS_OK, NULL);
		return 1;
	default:
		reply(resp, FERRY_STATUS_EINVAL, "type: unknown request type");
		return 0;
	}
}

uint32_t ferry_ctl_poll(struct ferry_ctl *ctl, uint32_t max)
{
	struct ferry_ring *req = &ctl->shm->req;
	struct ferry_ring *resp = &ctl->shm->resp;
	uint32_t n = ferry_ring_count(req);
	uint32_t room = ferry_ring_free(resp);

	if (n > room)
		n = room;
	if (n > max)
		n = max;
	if (n > CTL_MAX_BATCH)
		n = CTL_MAX_BATCH;
	if (n == 0)
		return 0;

	int changed = 0;
	for (uint32_t i = 0; i < n; i++) {
		uint8_t *out = ferry_ring_prepare(resp, i);
		struct ferry_msg_hdr *rh = (struct ferry_msg_hdr *)out;
		struct ferry_response *body = (struct ferry_response *)(out + sizeof(*rh));
		/* copy the record out first: the peer may scribble on the slot meanwhile */
		uint8_t rec[FERRY_MSG_SLOT_SIZE];
		memcpy(rec, ferry_ring_peek(req, i), sizeof(rec));
		int c = ferry_ctl_handle(ctl, rec, sizeof(rec), rh, body);
		changed |= c;
		ctl->requests++;
		ctl->bad_requests += body->status == FERRY_STATUS_EINVAL;
	}
	ferry_ring_release(req, n);

	if (changed) {
		int st = ferry_flow_table_publish(ctl->flows);
		if (st != FERRY_STATUS_OK) {
			/* the batch's changes are held but not in force; say so to each */
			for (uint32_t i = 0; i < n; i++) {
				struct ferry_response *body = (struct ferry_response *)
					(ferry_ring_prepare(resp, i) + sizeof(struct ferry_msg_hdr));
				if (body->status == FERRY_STATUS_OK)
					reply(body, FERRY_STATUS_EINTERNAL,
					      "out of memory publishing the flow table; retried on the next change");
			}
		}
		ctl->shm->hdr->flows_active = ctl->flows->n_active;
		__atomic_store_n(&ctl->shm->hdr->flows_generation, ctl->flows->generation,
				 __ATOMIC_RELEASE);
	}
	ferry_ring_publish(resp, n);
	return n;
}
