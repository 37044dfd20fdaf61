#include "ctl.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <rte_ring.h>
#include "../common/clock.h"
#include "../pipeline/actions.h"
#include "../pipeline/worker.h"

#define CTL_MAX_BATCH 256u
#define CT_EVENT_RESERVE 256u /* event slots conntrack events leave to the others */
#define NS_PER_SEC 1000000000ull

void ferry_ctl_init(struct ferry_ctl *ctl, struct ferry_shm *shm, struct ferry_flow_table *flows,
		    struct ferry_worker *workers, uint16_t n_workers)
{
	memset(ctl, 0, sizeof(*ctl));
	ctl->shm = shm;
	ctl->flows = flows;
	ctl->workers = workers;
	ctl->n_workers = n_workers;
	const char *fault = getenv("FERRY_FAULT_KILL_AT_BUNDLE_OP");
	if (fault != NULL && *fault != '\0') {
		ctl->fault_kill_at_bundle_op = strtoull(fault, NULL, 10);
		fprintf(stderr, "ferryd: FERRY_FAULT_KILL_AT_BUNDLE_OP=%llu: will kill itself mid-bundle "
			"(fault injection for tests)\n", (unsigned long long)ctl->fault_kill_at_bundle_op);
	}
}

static void reply(struct ferry_response *resp, uint32_t status, const char *msg)
{
	resp->status = status;
	if (msg)
		snprintf(resp->message, sizeof(resp->message), "%s", msg);
}

/* Field-level checks of a FLOW_ADD before anything is staged. */
static int check_flow(const struct ferry_ctl *ctl, const struct ferry_flow_add *m, char *why, size_t whylen)
{
	if (m->table_id >= FERRY_N_TABLES) {
		snprintf(why, whylen, "table_id: %u is not a table (0..%u)", m->table_id, FERRY_N_TABLES - 1);
		return FERRY_STATUS_ENOTABLE;
	}
	const uint64_t *k = ferry_key_words(&m->key), *mk = ferry_key_words(&m->mask);
	for (unsigned w = 0; w < FERRY_KEY_WORDS; w++) {
		if (k[w] & ~mk[w]) {
			snprintf(why, whylen, "key: bits outside the mask in word %u", w);
			return FERRY_STATUS_EINVAL;
		}
	}
	uint64_t ports = ferry_ports_mask_first(ctl->flows->n_ports) | ferry_tunnel_ports_mask(ctl->tunnels);
	if (m->mask.in_port != 0 && (m->mask.in_port != UINT32_MAX || !FERRY_PORT_IN_MASK(ports, m->key.in_port))) {
		snprintf(why, whylen, "match in_port: port %u does not exist", m->key.in_port);
		return FERRY_STATUS_ENOPORT;
	}
	if (m->actions_len > sizeof(m->actions)) {
		snprintf(why, whylen, "actions_len: %u is more than %zu", m->actions_len, sizeof(m->actions));
		return FERRY_STATUS_EINVAL;
	}
	return ferry_actions_validate(m->actions, m->actions_len, m->table_id, ports, why, whylen);
}

static int handle_flow_add(struct ferry_ctl *ctl, const struct ferry_flow_add *m, bool in_bundle,
			   struct ferry_response *resp)
{
	static struct ferry_rule tmpl; /* main lcore only; too big for the stack budget we like */
	char why[FERRY_ERR_MSG_LEN] = "";
	int st = check_flow(ctl, m, why, sizeof(why));
	if (st == FERRY_STATUS_OK) {
		memset(&tmpl, 0, sizeof(tmpl));
		tmpl.id = m->id;
		tmpl.cookie = m->cookie;
		tmpl.priority = m->priority;
		tmpl.table_id = m->table_id;
		tmpl.flags = m->flags;
		tmpl.idle_timeout = m->idle_timeout;
		tmpl.hard_timeout = m->hard_timeout;
		tmpl.actions_len = m->actions_len;
		tmpl.key = m->key;
		tmpl.mask = m->mask;
		memcpy(tmpl.actions, m->actions, m->actions_len);
		tmpl.created_ns = ferry_monotonic_ns();
		uint32_t slot = 0;
		st = ferry_flow_table_add(ctl->flows, &tmpl, in_bundle, &slot, why, sizeof(why));
		resp->aux = slot;
	}
	reply(resp, (uint32_t)st, why[0] ? why : NULL);
	if (st != FERRY_STATUS_OK && in_bundle && st != FERRY_STATUS_EBUNDLE)
		ferry_flow_table_bundle_fail(ctl->flows, why);
	return st == FERRY_STATUS_OK && !in_bundle;
}


/* ---- conntrack requests ---- */

void ferry_ctl_attach_ct(struct ferry_ctl *ctl, struct ferry_ct *ct)
{
	ctl->ct = ct;
	ferry_ct_thread_init(ct, &ctl->ct_thread);
}

static bool check_len(struct ferry_response *resp, uint32_t len, size_t want, const char *what)
{
	if (len == want)
		return true;
	char why[FERRY_ERR_MSG_LEN];
	snprintf(why, sizeof(why), "len: %s body has the wrong size (%u, want %zu)", what, len, want);
	reply(resp, FERRY_STATUS_EINVAL, why);
	return false;
}

static bool check_filter(const struct ferry_ct_filter *f, struct ferry_response *resp)
{
	const uint32_t known = (FERRY_CT_FILTER_FLAG_EITHER_DIR << 1) - 1;
	if (f->flags & ~known) {
		reply(resp, FERRY_STATUS_EINVAL, "filter.flags: unknown bits");
		return false;
	}
	if ((f->flags & FERRY_CT_FILTER_FLAG_IP_VERSION) && f->ip_version != 4 && f->ip_version != 6) {
		reply(resp, FERRY_STATUS_EINVAL, "filter.ip_version: 4 or 6");
		return false;
	}
	if (((f->flags & FERRY_CT_FILTER_FLAG_SRC) && f->src_plen > 128) ||
	    ((f->flags & FERRY_CT_FILTER_FLAG_DST) && f->dst_plen > 128)) {
		reply(resp, FERRY_STATUS_EINVAL, "filter.src_plen/dst_plen: at most 128");
		return false;
	}
	if ((f->flags & FERRY_CT_FILTER_FLAG_TCP_STATE) && f->tcp_state >= FERRY_CT_TCP_STATE_COUNT) {
		reply(resp, FERRY_STATUS_EINVAL, "filter.tcp_state: not a TCP state");
		return false;
	}
	return true;
}

static void handle_ct(struct ferry_ctl *ctl, uint16_t type, const uint8_t *body, uint32_t len,
		      struct ferry_msg_hdr *rh, struct ferry_response *resp)
{
	if (ctl->ct == NULL) {
		reply(resp, FERRY_STATUS_EUNSUPPORTED, "this ferryd runs without a connection tracker");
		return;
	}
	uint64_t now = ferry_monotonic_ns();
	switch (type) {
	case FERRY_MSG_TYPE_CT_FLUSH: {
		struct ferry_ct_filter f;
		if (!check_len(resp, len, sizeof(f), "CT_FLUSH"))
			return;
		memcpy(&f, body, sizeof(f));
		if (!check_filter(&f, resp))
			return;
		resp->value = ferry_ct_flush(&ctl->ct_thread, &f, now);
		reply(resp, FERRY_STATUS_OK, NULL);
		return;
	}
	case FERRY_MSG_TYPE_CT_STATS: {
		struct ferry_ct_stats_req q;
		if (!check_len(resp, len, sizeof(q), "CT_STATS"))
			return;
		memcpy(&q, body, sizeof(q));
		if (q.zone_start > FERRY_CT_ZONE_NONE) {
			reply(resp, FERRY_STATUS_EINVAL, "zone_start: past the last zone");
			return;
		}
		static struct ferry_ct_stats_resp st;
		ferry_ct_stats(ctl->ct, q.zone_start, now, &st);
		memcpy((uint8_t *)resp + sizeof(*resp), &st, sizeof(st));
		rh->len = sizeof(*resp) + sizeof(st);
		resp->value = st.total;
		reply(resp, FERRY_STATUS_OK, NULL);
		return;
	}
	case FERRY_MSG_TYPE_CT_SET_LIMIT: {
		struct ferry_ct_limit_req q;
		if (!check_len(resp, len, sizeof(q), "CT_SET_LIMIT"))
			return;
		memcpy(&q, body, sizeof(q));
		if (ferry_ct_set_limit(ctl->ct, &q) != 0) {
			reply(resp, FERRY_STATUS_EINVAL, "target: GLOBAL, DEFAULT_ZONE or ZONE");
			return;
		}
		resp->value = ferry_ct_max_conns(ctl->ct);
		reply(resp, FERRY_STATUS_OK, NULL);
		return;
	}
	case FERRY_MSG_TYPE_CT_SET_TIMEOUT_POLICY: {
		struct ferry_ct_timeout_policy_req q;
		if (!check_len(resp, len, sizeof(q), "CT_SET_TIMEOUT_POLICY"))
			return;
		memcpy(&q, body, sizeof(q));
		for (unsigned i = 0; i < FERRY_CT_N_TM; i++) {
			if (q.seconds[i] > 10u * 365 * 86400) {
				char why[FERRY_ERR_MSG_LEN];
				snprintf(why, sizeof(why), "seconds[%u]: more than ten years", i);
				reply(resp, FERRY_STATUS_EINVAL, why);
				return;
			}
		}
		if (ferry_ct_set_timeout_policy(ctl->ct, &q) != 0) {
			reply(resp, FERRY_STATUS_ENOSPC, "no room for another zone's timeout policy");
			return;
		}
		reply(resp, FERRY_STATUS_OK, NULL);
		return;
	}
	case FERRY_MSG_TYPE_CT_SET_OPTIONS: {
		struct ferry_ct_options_req q;
		if (!check_len(resp, len, sizeof(q), "CT_SET_OPTIONS"))
			return;
		memcpy(&q, body, sizeof(q));
		if (q.tcp_seq_check > 1 || q.events > 1) {
			reply(resp, FERRY_STATUS_EINVAL, "tcp_seq_check/events: 0 or 1");
			return;
		}
		ferry_ct_set_tcp_seq_check(ctl->ct, q.tcp_seq_check);
		ferry_ct_set_events(ctl->ct, q.events);
		reply(resp, FERRY_STATUS_OK, NULL);
		return;
	}
	default: /* CT_DUMP alone: one part, as much as fits */
		reply(resp, FERRY_STATUS_EINVAL, "CT_DUMP is answered by ferry_ctl_poll");
		return;
	}
}

/* ---- tunnels, neighbours, STT settings ---- */

void ferry_ctl_attach_tunnels(struct ferry_ctl *ctl, struct ferry_tunnel_table *tunnels, struct ferry_neigh_table *neigh,
			      struct ferry_stt_settings *stt)
{
	ctl->tunnels = tunnels;
	ctl->neigh = neigh;
	ctl->stt = stt;
}

static bool mac_unicast(const uint8_t mac[6])
{
	static const uint8_t zero[6];
	return (mac[0] & 1) == 0 && memcmp(mac, zero, 6) != 0;
}

static void handle_tunnel(struct ferry_ctl *ctl, uint16_t type, const uint8_t *body, uint32_t len,
			  struct ferry_msg_hdr *rh, struct ferry_response *resp)
{
	if (ctl->tunnels == NULL || ctl->neigh == NULL || ctl->stt == NULL) {
		reply(resp, FERRY_STATUS_EUNSUPPORTED, "this ferryd runs without tunnels");
		return;
	}
	char why[FERRY_ERR_MSG_LEN] = "";
	switch (type) {
	case FERRY_MSG_TYPE_TUNNEL_SET: {
		struct ferry_tunnel_config c;
		if (!check_len(resp, len, sizeof(c), "TUNNEL_SET"))
			return;
		memcpy(&c, body, sizeof(c));
		int st = ferry_tunnel_set(ctl->tunnels, &c, why, sizeof(why));
		reply(resp, (uint32_t)st, why[0] ? why : NULL);
		return;
	}
	case FERRY_MSG_TYPE_TUNNEL_DEL: {
		struct ferry_tunnel_del d;
		if (!check_len(resp, len, sizeof(d), "TUNNEL_DEL"))
			return;
		memcpy(&d, body, sizeof(d));
		int st = ferry_tunnel_del(ctl->tunnels, d.port);
		reply(resp, (uint32_t)st, st == FERRY_STATUS_ENOENT ? "port: no such tunnel" : NULL);
		return;
	}
	case FERRY_MSG_TYPE_NEIGH_SET:
	case FERRY_MSG_TYPE_NEIGH_DEL: {
		struct ferry_neigh_entry e;
		if (!check_len(resp, len, sizeof(e), type == FERRY_MSG_TYPE_NEIGH_SET ? "NEIGH_SET" : "NEIGH_DEL"))
			return;
		memcpy(&e, body, sizeof(e));
		rte_be32_t ip;
		memcpy(&ip, e.ip, 4);
		if (e.port >= ctl->tunnels->n_ports) {
			snprintf(why, sizeof(why), "port: port %u does not exist", e.port);
			reply(resp, FERRY_STATUS_ENOPORT, why);
			return;
		}
		if (ip == 0) {
			reply(resp, FERRY_STATUS_EINVAL, "ip: 0.0.0.0 is not a neighbour");
			return;
		}
		if (type == FERRY_MSG_TYPE_NEIGH_DEL) {
			int rc = ferry_neigh_del(ctl->neigh, e.port, ip);
			reply(resp, rc == 0 ? FERRY_STATUS_OK : FERRY_STATUS_ENOENT, rc == 0 ? NULL : "ip: no such neighbour");
			return;
		}
		if (!mac_unicast(e.mac)) {
			reply(resp, FERRY_STATUS_EINVAL, "mac: not a unicast address");
			return;
		}
		struct rte_ether_addr mac;
		memcpy(mac.addr_bytes, e.mac, 6);
		int rc = ferry_neigh_set_static(ctl->neigh, e.port, ip, &mac);
		reply(resp, rc == 0 ? FERRY_STATUS_OK : FERRY_STATUS_ENOSPC, rc == 0 ? NULL : "the neighbour table is full");
		return;
	}
	case FERRY_MSG_TYPE_NEIGH_DUMP: {
		struct ferry_neigh_dump_req q;
		if (!check_len(resp, len, sizeof(q), "NEIGH_DUMP"))
			return;
		memcpy(&q, body, sizeof(q));
		static struct ferry_neigh_dump_resp d;
		memset(&d, 0, sizeof(d));
		uint32_t cursor = q.cursor;
		bool done = false;
		d.n_entries = (uint16_t)ferry_neigh_dump(ctl->neigh, &cursor, ferry_monotonic_ns(), d.entries,
							 FERRY_NEIGH_DUMP_ENTRIES, &done);
		d.next_cursor = cursor;
		d.done = done;
		memcpy((uint8_t *)resp + sizeof(*resp), &d, sizeof(d));
		rh->len = sizeof(*resp) + sizeof(d);
		resp->value = ferry_neigh_count(ctl->neigh);
		reply(resp, FERRY_STATUS_OK, NULL);
		return;
	}
	case FERRY_MSG_TYPE_STT_SET_OPTIONS: {
		struct ferry_stt_options_req q;
		if (!check_len(resp, len, sizeof(q), "STT_SET_OPTIONS"))
			return;
		memcpy(&q, body, sizeof(q));
		const char *bad = NULL;
		if (q.reasm_timeout_ms > 60000)
			bad = "reasm_timeout_ms: more than 60000";
		else if (q.reasm_mem_max != 0 && (q.reasm_mem_max < 65536 || q.reasm_mem_max > (1u << 30)))
			bad = "reasm_mem_max: out of 65536..1073741824";
		else if (q.neigh_timeout_s > 86400)
			bad = "neigh_timeout_s: more than 86400";
		else if (q.neigh_retries > 10)
			bad = "neigh_retries: more than 10";
		if (bad) {
			reply(resp, FERRY_STATUS_EINVAL, bad);
			return;
		}
		ferry_neigh_set_options(ctl->neigh, q.neigh_timeout_s, q.neigh_retries);
		if (q.reasm_timeout_ms)
			ctl->stt->reasm_timeout_ms = q.reasm_timeout_ms;
		if (q.reasm_mem_max)
			ctl->stt->reasm_mem_max = q.reasm_mem_max;
		__atomic_store_n(&ctl->stt->version, ctl->stt->version + 1, __ATOMIC_RELEASE);
		reply(resp, FERRY_STATUS_OK, NULL);
		return;
	}
	default:
		reply(resp, FERRY_STATUS_EINVAL, "type: unknown request type");
		return;
	}
}

/* A part must fit its response slot: ct_entry growing (ABI 6 added the reply tuple)
 * takes CT_DUMP_ENTRIES down with it */
_Static_assert(sizeof(struct ferry_msg_hdr) + sizeof(struct ferry_response) + sizeof(struct ferry_ct_dump_resp) <=
		       FERRY_MSG_SLOT_SIZE,
	       "a CT_DUMP part does not fit a response slot: lower CT_DUMP_ENTRIES");
_Static_assert(sizeof(((struct ferry_ct_dump_resp *)0)->entries) ==
		       FERRY_CT_DUMP_ENTRIES * sizeof(struct ferry_ct_entry),
	       "ct_dump_resp.entries holds CT_DUMP_ENTRIES entries");
_Static_assert(sizeof(struct ferry_msg_hdr) + sizeof(struct ferry_ct_event) <= FERRY_EVENT_SLOT_SIZE,
	       "a conntrack event does not fit an event slot");

/* A CT_DUMP answer being written: parts of up to CT_DUMP_ENTRIES entries, one
 * response slot each. */
struct dump_writer {
	struct ferry_ring *ring;
	uint32_t next;          /* response index of the part being filled */
	uint64_t req_id;
	struct ferry_ct_dump_resp *part;
};

/* A one-record answer at response index idx; its response struct, zeroed. */
static struct ferry_response *plain_answer(struct ferry_ring *ring, uint32_t idx, uint64_t req_id)
{
	uint8_t *out = ferry_ring_prepare(ring, idx);
	struct ferry_msg_hdr *rh = (struct ferry_msg_hdr *)out;
	struct ferry_response *r = (struct ferry_response *)(out + sizeof(*rh));
	memset(rh, 0, sizeof(*rh));
	memset(r, 0, sizeof(*r));
	rh->type = FERRY_MSG_TYPE_RESPONSE;
	rh->req_id = req_id;
	rh->len = sizeof(*r);
	return r;
}

static struct ferry_ct_dump_resp *dump_part(struct dump_writer *dw)
{
	struct ferry_response *r = plain_answer(dw->ring, dw->next, dw->req_id);
	struct ferry_msg_hdr *rh = (struct ferry_msg_hdr *)(void *)((uint8_t *)r - sizeof(*rh));
	rh->flags = FERRY_MSG_FLAG_MORE;
	rh->len = sizeof(*r) + sizeof(struct ferry_ct_dump_resp);
	struct ferry_ct_dump_resp *d = (struct ferry_ct_dump_resp *)(void *)((uint8_t *)r + sizeof(*r));
	memset(d, 0, sizeof(*d));
	return d;
}

static int dump_one(void *arg, const struct ferry_ct_entry *e)
{
	struct dump_writer *dw = arg;
	if (dw->part->n_entries == FERRY_CT_DUMP_ENTRIES) {
		dw->next++;
		dw->part = dump_part(dw);
	}
	dw->part->entries[dw->part->n_entries++] = *e;
	return 0;
}

/* Answers the CT_DUMP at request rec with parts from response index first, using at
 * most room slots. Returns the slots used; 0 when room is too small to start. */
static uint32_t answer_ct_dump(struct ferry_ctl *ctl, const uint8_t *rec, uint32_t first, uint32_t room)
{
	/* a slot visit may give up to FERRY_CT_DUMP_SLOT_MAX entries past the limit: keep
	 * the parts they fill in hand, and one more for the last */
	const uint32_t headroom = (FERRY_CT_DUMP_SLOT_MAX + FERRY_CT_DUMP_ENTRIES - 1) / FERRY_CT_DUMP_ENTRIES + 1;
	struct ferry_msg_hdr h;
	memcpy(&h, rec, sizeof(h));
	struct ferry_ct_dump_req q;
	struct dump_writer dw = { .ring = &ctl->shm->resp, .next = first, .req_id = h.req_id };
	if (h.len != sizeof(q) || ctl->ct == NULL || h.flags != 0) {
		struct ferry_response *r = plain_answer(dw.ring, first, h.req_id);
		if (ctl->ct == NULL)
			reply(r, FERRY_STATUS_EUNSUPPORTED, "this ferryd runs without a connection tracker");
		else
			reply(r, FERRY_STATUS_EINVAL, h.flags ? "flags: CT_DUMP is not bundled" : "len: CT_DUMP body has the wrong size");
		return 1;
	}
	if (room <= headroom)
		return 0;
	memcpy(&q, rec + sizeof(h), sizeof(q));
	struct ferry_response *r = plain_answer(dw.ring, first, h.req_id);
	if (!check_filter(&q.filter, r))
		return 1;
	uint32_t max = (room - headroom) * FERRY_CT_DUMP_ENTRIES;
	if (q.max_entries != 0 && q.max_entries < max)
		max = q.max_entries;
	dw.part = dump_part(&dw);
	bool done = false;
	uint64_t next = ferry_ct_dump(ctl->ct, &q.filter, q.cursor, max, ferry_monotonic_ns(), dump_one, &dw, &done);
	/* the last part: no MORE, where to go on */
	uint8_t *out = ferry_ring_prepare(dw.ring, dw.next);
	((struct ferry_msg_hdr *)out)->flags = 0;
	dw.part->next_cursor = next;
	dw.part->done = done;
	return dw.next - first + 1;
}

_Static_assert(sizeof(struct ferry_msg_hdr) + sizeof(struct ferry_response) + sizeof(struct ferry_ct_exp_dump_resp) <=
		       FERRY_MSG_SLOT_SIZE,
	       "a CT_EXP_DUMP part does not fit a response slot");
_Static_assert(sizeof(((struct ferry_ct_exp_dump_resp *)0)->entries) ==
		       FERRY_CT_EXP_DUMP_ENTRIES * sizeof(struct ferry_ct_exp_entry),
	       "ct_exp_dump_resp.entries holds CT_EXP_DUMP_ENTRIES entries");

/* A CT_EXP_DUMP answer being written, as a CT_DUMP's */
struct exp_writer {
	struct ferry_ring *ring;
	uint32_t next;
	uint64_t req_id;
	struct ferry_ct_exp_dump_resp *part;
};

static struct ferry_ct_exp_dump_resp *exp_part(struct exp_writer *xw)
{
	struct ferry_response *r = plain_answer(xw->ring, xw->next, xw->req_id);
	struct ferry_msg_hdr *rh = (struct ferry_msg_hdr *)(void *)((uint8_t *)r - sizeof(*rh));
	rh->flags = FERRY_MSG_FLAG_MORE;
	rh->len = sizeof(*r) + sizeof(struct ferry_ct_exp_dump_resp);
	struct ferry_ct_exp_dump_resp *d = (struct ferry_ct_exp_dump_resp *)(void *)((uint8_t *)r + sizeof(*r));
	memset(d, 0, sizeof(*d));
	return d;
}

static int exp_one(void *arg, const struct ferry_ct_exp_entry *e)
{
	struct exp_writer *xw = arg;
	if (xw->part->n_entries == FERRY_CT_EXP_DUMP_ENTRIES) {
		xw->next++;
		xw->part = exp_part(xw);
	}
	xw->part->entries[xw->part->n_entries++] = *e;
	return 0;
}

/* Answers the CT_EXP_DUMP at rec from response index first in at most room slots;
 * 0 when there is no room to start */
static uint32_t answer_ct_exp_dump(struct ferry_ctl *ctl, const uint8_t *rec, uint32_t first, uint32_t room)
{
	struct ferry_msg_hdr h;
	memcpy(&h, rec, sizeof(h));
	struct ferry_ct_exp_dump_req q;
	struct exp_writer xw = { .ring = &ctl->shm->resp, .next = first, .req_id = h.req_id };
	if (h.len != sizeof(q) || ctl->ct == NULL || h.flags != 0) {
		struct ferry_response *r = plain_answer(xw.ring, first, h.req_id);
		if (ctl->ct == NULL)
			reply(r, FERRY_STATUS_EUNSUPPORTED, "this ferryd runs without a connection tracker");
		else
			reply(r, FERRY_STATUS_EINVAL,
			      h.flags ? "flags: CT_EXP_DUMP is not bundled" : "len: CT_EXP_DUMP body has the wrong size");
		return 1;
	}
	if (room < 2)
		return 0;
	memcpy(&q, rec + sizeof(h), sizeof(q));
	uint32_t max = (room - 1) * FERRY_CT_EXP_DUMP_ENTRIES;
	xw.part = exp_part(&xw);
	bool done = false;
	uint32_t next = ferry_ct_exp_dump(ctl->ct, q.cursor, max, ferry_monotonic_ns(), exp_one, &xw, &done);
	uint8_t *out = ferry_ring_prepare(xw.ring, xw.next);
	((struct ferry_msg_hdr *)out)->flags = 0;
	xw.part->next_cursor = next;
	xw.part->done = done;
	return xw.next - first + 1;
}

static int push_event(struct ferry_ctl *ctl, uint16_t type, const void *body, uint32_t len, uint64_t now_ns);

uint32_t ferry_ctl_drain_ct(struct ferry_ctl *ctl, uint64_t now_ns)
{
	if (ctl->ct == NULL)
		return 0;
	struct ferry_shm_header *hdr = ctl->shm->hdr;
	struct ferry_ct_counters c;
	ferry_ct_counters(ctl->ct, &c);
	hdr->ct_conns = ferry_ct_count(ctl->ct);
	hdr->ct_max_conns = ferry_ct_max_conns(ctl->ct);
	hdr->ct_expired = c.expired;
	hdr->ct_flushed = c.flushed;
	hdr->ct_sweeps = c.sweeps;
	hdr->ct_expectations = ferry_ct_exp_count(ctl->ct);
	hdr->ct_exp_expired = c.exp_expired;
	uint32_t n = 0;
	uint16_t type;
	struct ferry_ct_event ev;
	/* leave room for flow-removed and packet-in events: they are rarer and not replayable */
	while (ferry_ring_free(&ctl->shm->events) > CT_EVENT_RESERVE && n < 1024 && ferry_ct_events_pop(ctl->ct, &type, &ev)) {
		push_event(ctl, type, &ev, sizeof(ev), now_ns);
		n++;
	}
	hdr->ct_events_dropped = c.events_dropped;
	return n;
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
	if (h.flags & ~(uint16_t)FERRY_MSG_FLAG_IN_BUNDLE) {
		reply(resp, FERRY_STATUS_EINVAL, "flags: unknown bits");
		return 0;
	}
	bool in_bundle = h.flags & FERRY_MSG_FLAG_IN_BUNDLE;
	const uint8_t *body = rec + sizeof(h);

	switch (h.type) {
	case FERRY_MSG_TYPE_PING:
		reply(resp, FERRY_STATUS_OK, NULL);
		resp->value = ferry_flow_table_version(ctl->flows);
		return 0;
	case FERRY_MSG_TYPE_FLOW_ADD: {
		static struct ferry_flow_add m;
		if (h.len != sizeof(m)) {
			reply(resp, FERRY_STATUS_EINVAL, "len: FLOW_ADD body has the wrong size");
			return 0;
		}
		memcpy(&m, body, sizeof(m));
		if (in_bundle && ++ctl->bundle_ops == ctl->fault_kill_at_bundle_op)
			raise(SIGKILL);
		return handle_flow_add(ctl, &m, in_bundle, resp);
	}
	case FERRY_MSG_TYPE_FLOW_DEL: {
		struct ferry_flow_del m;
		if (h.len != sizeof(m)) {
			reply(resp, FERRY_STATUS_EINVAL, "len: FLOW_DEL body has the wrong size");
			return 0;
		}
		memcpy(&m, body, sizeof(m));
		int st = ferry_flow_table_del(ctl->flows, m.id, in_bundle);
		reply(resp, (uint32_t)st, st == FERRY_STATUS_ENOENT ? "id: no such flow" :
				      st == FERRY_STATUS_EBUNDLE ? "a bundle is open: commit or abort it first" : NULL);
		if (st != FERRY_STATUS_OK && in_bundle)
			ferry_flow_table_bundle_fail(ctl->flows, resp->message);
		return st == FERRY_STATUS_OK && !in_bundle;
	}
	case FERRY_MSG_TYPE_FLOW_CLEAR:
		if (h.len != 0) {
			reply(resp, FERRY_STATUS_EINVAL, "len: FLOW_CLEAR has no body");
			return 0;
		}
		if (in_bundle) { /* the bundle replaces the table: see ferry_flow_table_sweep_bundle */
			char why[FERRY_ERR_MSG_LEN] = "";
			int st = ferry_flow_table_sweep_bundle(ctl->flows, why, sizeof(why));
			reply(resp, st, st == FERRY_STATUS_OK ? NULL : why);
			return 0;
		}
		if (ctl->flows->bundle_open) {
			reply(resp, FERRY_STATUS_EBUNDLE, "a bundle is open: commit or abort it first");
			return 0;
		}
		resp->value = ferry_flow_table_clear(ctl->flows);
		reply(resp, FERRY_STATUS_OK, NULL);
		return 1;
	case FERRY_MSG_TYPE_BUNDLE_COMMIT: {
		char why[FERRY_ERR_MSG_LEN] = "";
		int st = ferry_flow_table_commit_bundle(ctl->flows, why, sizeof(why));
		reply(resp, (uint32_t)st, why[0] ? why : NULL);
		resp->value = ferry_flow_table_version(ctl->flows);
		return 0;
	}
	case FERRY_MSG_TYPE_BUNDLE_ABORT:
		ferry_flow_table_abort_bundle(ctl->flows);
		reply(resp, FERRY_STATUS_OK, NULL);
		return 0;
	case FERRY_MSG_TYPE_CT_EXP_DUMP: /* in parts by ferry_ctl_poll, as CT_DUMP */
		reply(resp, FERRY_STATUS_EINVAL, "type: CT_EXP_DUMP is answered in parts by the poll loop");
		return 0;
	case FERRY_MSG_TYPE_CT_DUMP: /* answered in parts by ferry_ctl_poll; here only when called alone */
	case FERRY_MSG_TYPE_CT_FLUSH:
	case FERRY_MSG_TYPE_CT_STATS:
	case FERRY_MSG_TYPE_CT_SET_LIMIT:
	case FERRY_MSG_TYPE_CT_SET_TIMEOUT_POLICY:
	case FERRY_MSG_TYPE_CT_SET_OPTIONS:
		if (in_bundle) {
			reply(resp, FERRY_STATUS_EINVAL, "flags: conntrack requests are not bundled");
			return 0;
		}
		handle_ct(ctl, h.type, body, h.len, rh, resp);
		return 0;
	case FERRY_MSG_TYPE_TUNNEL_SET:
	case FERRY_MSG_TYPE_TUNNEL_DEL:
	case FERRY_MSG_TYPE_NEIGH_SET:
	case FERRY_MSG_TYPE_NEIGH_DEL:
	case FERRY_MSG_TYPE_NEIGH_DUMP:
	case FERRY_MSG_TYPE_STT_SET_OPTIONS:
		if (in_bundle) {
			reply(resp, FERRY_STATUS_EINVAL, "flags: tunnel requests are not bundled");
			return 0;
		}
		handle_tunnel(ctl, h.type, body, h.len, rh, resp);
		return 0;
	default:
		reply(resp, FERRY_STATUS_EINVAL, "type: unknown request type");
		return 0;
	}
}

static void publish_header(struct ferry_ctl *ctl)
{
	ctl->shm->hdr->flows_active = ctl->flows->n_active;
	ctl->shm->hdr->flows_generation = (uint32_t)ctl->flows->commits;
	__atomic_store_n(&ctl->shm->hdr->visible_version, ferry_flow_table_version(ctl->flows), __ATOMIC_RELEASE);
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
	uint32_t used = 0, i;
	for (i = 0; i < n && used < room; i++) {
		/* copy the record out first: the peer may scribble on the slot meanwhile */
		static uint8_t rec[FERRY_MSG_SLOT_SIZE];
		memcpy(rec, ferry_ring_peek(req, i), sizeof(rec));
		uint16_t type;
		memcpy(&type, rec, sizeof(type));
		if (type == FERRY_MSG_TYPE_CT_DUMP || type == FERRY_MSG_TYPE_CT_EXP_DUMP) {
			uint32_t k = type == FERRY_MSG_TYPE_CT_DUMP ? answer_ct_dump(ctl, rec, used, room - used)
								   : answer_ct_exp_dump(ctl, rec, used, room - used);
			if (k == 0)
				break; /* not enough room for a part: next poll */
			used += k;
			ctl->requests++;
			continue;
		}
		uint8_t *out = ferry_ring_prepare(resp, used++);
		struct ferry_msg_hdr *rh = (struct ferry_msg_hdr *)out;
		struct ferry_response *body = (struct ferry_response *)(out + sizeof(*rh));
		changed |= ferry_ctl_handle(ctl, rec, sizeof(rec), rh, body);
		ctl->requests++;
		ctl->bad_requests += body->status == FERRY_STATUS_EINVAL;
	}
	ferry_ring_release(req, i);
	if (changed)
		ferry_flow_table_commit_batch(ctl->flows);
	publish_header(ctl);
	ferry_ring_publish(resp, used);
	return i;
}

static int push_event(struct ferry_ctl *ctl, uint16_t type, const void *body, uint32_t len, uint64_t now_ns)
{
	struct ferry_ring *ev = &ctl->shm->events;
	if (ferry_ring_free(ev) == 0) {
		ctl->events_lost++;
		ev->ctl->full_events = ++ev->full_events;
		return -1;
	}
	uint8_t *slot = ferry_ring_prepare(ev, 0);
	struct ferry_event_hdr h = { .type = type, .len = len, .seq = ++ctl->event_seq, .time_ns = now_ns };
	memcpy(slot, &h, sizeof(h));
	memcpy(slot + sizeof(h), body, len);
	ferry_ring_publish(ev, 1);
	return 0;
}

uint32_t ferry_ctl_expire(struct ferry_ctl *ctl, uint64_t now_ns)
{
	struct ferry_flow_table *ft = ctl->flows;
	if (ft->n_timed_rules == 0 || ft->bundle_open)
		return 0; /* nothing can expire, or the next sweep will do */
	uint32_t n = 0;
	for (uint32_t s = 0; s < ft->max_flows; s++) {
		const struct ferry_rule *r = ft->slot_rule[s];
		if (r == NULL || (r->idle_timeout == 0 && r->hard_timeout == 0) ||
		    r->add_version == FERRY_VERSION_NEVER)
			continue;
		uint64_t last = r->created_ns, packets = 0, bytes = 0;
		for (uint16_t w = 0; w < ctl->shm->geo.n_workers; w++) {
			const struct ferry_flow_stats *fs = ferry_shm_flow_stats(ctl->shm, w, s);
			if (fs->last_hit_ns > last)
				last = fs->last_hit_ns;
			packets += fs->packets;
			bytes += fs->bytes;
		}
		uint8_t reason;
		if (r->hard_timeout && now_ns - r->created_ns >= r->hard_timeout * NS_PER_SEC)
			reason = FERRY_REMOVED_REASON_HARD_TIMEOUT;
		else if (r->idle_timeout && now_ns > last && now_ns - last >= r->idle_timeout * NS_PER_SEC)
			reason = FERRY_REMOVED_REASON_IDLE_TIMEOUT;
		else
			continue;
		struct ferry_event_flow_removed ev = {
			.id = r->id, .cookie = r->cookie, .packets = packets, .bytes = bytes,
			.duration_ns = now_ns - r->created_ns, .reason = reason, .table_id = r->table_id,
			.priority = r->priority,
		};
		if (ferry_flow_table_del(ft, r->id, false) == FERRY_STATUS_OK) {
			push_event(ctl, FERRY_EVENT_TYPE_FLOW_REMOVED, &ev, sizeof(ev), now_ns);
			n++;
		}
	}
	if (n) {
		ferry_flow_table_commit_batch(ft);
		publish_header(ctl);
	}
	return n;
}

uint32_t ferry_ctl_drain_punts(struct ferry_ctl *ctl, uint64_t now_ns)
{
	uint32_t n = 0;
	for (uint16_t w = 0; w < ctl->n_workers; w++) {
		struct ferry_punt p;
		while (rte_ring_sc_dequeue_elem(ctl->workers[w].punts, &p, sizeof(p)) == 0) {
			struct ferry_event_packet_in ev;
			memset(&ev, 0, sizeof(ev));
			uint32_t max = p.max_len ? p.max_len : sizeof(ev.data);
			if (max > sizeof(ev.data))
				max = sizeof(ev.data);
			uint32_t len = rte_pktmbuf_pkt_len(p.m) < max ? rte_pktmbuf_pkt_len(p.m) : max;
			const void *d = rte_pktmbuf_read(p.m, 0, len, ev.data);
			if (d != ev.data && d != NULL)
				memcpy(ev.data, d, len);
			ev.cookie = p.cookie;
			ev.in_port = p.in_port;
			ev.total_len = rte_pktmbuf_pkt_len(p.m);
			ev.table_id = p.table_id;
			ev.reason = p.reason;
			ev.data_len = (uint16_t)len;
			push_event(ctl, FERRY_EVENT_TYPE_PACKET_IN, &ev, sizeof(ev), now_ns);
			rte_pktmbuf_free(p.m);
			n++;
		}
	}
	return n;
}
