/* The control channel end to end inside ferryd: records in the request ring of a real
 * segment, answers in the response ring, every malformed field refused by name. */
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>
#include "../common/eal_test.h"
#include "../common/ftest.h"
#include "ctl.h"
#include "shm.h"
#include "../common/clock.h"

static struct ferry_shm shm;
static struct ferry_flow_table flows;
static struct ferry_ctl ctl;
static uint64_t next_id = 1;

static void push_flags(uint16_t type, uint16_t flags, const void *body, uint32_t len, uint32_t claimed_len)
{
	static uint8_t rec[FERRY_MSG_SLOT_SIZE];
	memset(rec, 0, sizeof(rec));
	struct ferry_msg_hdr h = { .type = type, .flags = flags, .len = claimed_len, .req_id = next_id++ };
	memcpy(rec, &h, sizeof(h));
	if (body)
		memcpy(rec + sizeof(h), body, len);
	/* the test plays the control service: producer of the request ring */
	struct ferry_ring prod = shm.req;
	prod.own = shm.req.ctl->head;
	CHECK(ferry_ring_push(&prod, rec, sizeof(rec)));
}

static void push(uint16_t type, const void *body, uint32_t len, uint32_t claimed_len)
{
	push_flags(type, 0, body, len, claimed_len);
}

/* A flow_add matching in_port (or any port) with one output action (or none). */
static struct ferry_flow_add flow(uint64_t id, uint16_t prio, int64_t in_port, int64_t out_port)
{
	struct ferry_flow_add a;
	memset(&a, 0, sizeof(a));
	a.id = id;
	a.priority = prio;
	if (in_port >= 0) {
		a.key.in_port = (uint32_t)in_port;
		a.mask.in_port = UINT32_MAX;
	}
	if (out_port >= 0) {
		struct ferry_act_output o = { .hdr = { .type = FERRY_ACTION_TYPE_OUTPUT, .len = sizeof(o) },
					      .port = (uint32_t)out_port };
		memcpy(a.actions, &o, sizeof(o));
		a.actions_len = sizeof(o);
	}
	return a;
}

/* Pops one response (the test is the response ring's consumer). */
static struct ferry_response pop(uint64_t *req_id)
{
	struct ferry_ring cons = shm.resp;
	cons.own = shm.resp.ctl->tail;
	struct ferry_response r;
	memset(&r, 0xff, sizeof(r));
	if (ferry_ring_count(&cons) == 0) {
		CHECK(!"no response");
		return r;
	}
	const uint8_t *rec = ferry_ring_peek(&cons, 0);
	struct ferry_msg_hdr h;
	memcpy(&h, rec, sizeof(h));
	CHECK_EQ(h.type, FERRY_MSG_TYPE_RESPONSE);
	*req_id = h.req_id;
	memcpy(&r, rec + sizeof(h), sizeof(r));
	ferry_ring_release(&cons, 1);
	return r;
}

static uint32_t roundtrip(uint16_t type, uint16_t flags, const void *body, uint32_t len, uint32_t claimed,
			  struct ferry_response *out)
{
	uint64_t sent = next_id, got = 0;
	push_flags(type, flags, body, len, claimed);
	CHECK_EQ(ferry_ctl_poll(&ctl, UINT32_MAX), 1);
	struct ferry_response r = pop(&got);
	CHECK_EQ(got, sent);
	if (out)
		*out = r;
	return r.status;
}

static uint32_t roundtrip_status(uint16_t type, const void *body, uint32_t len, uint32_t claimed,
				 struct ferry_response *out)
{
	return roundtrip(type, 0, body, len, claimed, out);
}

static uint32_t add(const struct ferry_flow_add *a, uint16_t flags, struct ferry_response *out)
{
	return roundtrip(FERRY_MSG_TYPE_FLOW_ADD, flags, a, sizeof(*a), sizeof(*a), out);
}

static void test_header_is_laid_out(void)
{
	CHECK_EQ(shm.hdr->magic, FERRY_SHM_MAGIC);
	CHECK_EQ(shm.hdr->abi_version, FERRY_ABI_VERSION);
	CHECK_EQ(shm.hdr->layout_hash, FERRY_LAYOUT_HASH);
	CHECK_EQ(shm.hdr->n_ports, 4);
	CHECK_EQ(shm.hdr->pid, (uint64_t)getpid());
	struct stat st;
	int fd = shm_open(shm.name, O_RDONLY, 0);
	CHECK(fd >= 0);
	CHECK(fstat(fd, &st) == 0);
	CHECK_EQ(st.st_mode & 0777, 0600);
	CHECK_EQ((uint64_t)st.st_size, shm.size);
	close(fd);
	CHECK(shm.hdr->table_stats_off + (uint64_t)2 * FERRY_N_TABLES * sizeof(struct ferry_table_stats) <= shm.size);
}

static void test_ping(void)
{
	CHECK_EQ(roundtrip_status(FERRY_MSG_TYPE_PING, NULL, 0, 0, NULL), FERRY_STATUS_OK);
}

static void test_flow_add_replace_delete(void)
{
	struct ferry_response r;
	struct ferry_flow_add a = flow(42, 10, 1, 2);
	uint64_t v = shm.hdr->visible_version;
	CHECK_EQ(add(&a, 0, &r), FERRY_STATUS_OK);
	uint32_t slot = r.aux;
	CHECK_EQ(flows.n_active, 1);
	CHECK_EQ(shm.hdr->flows_active, 1);
	CHECK_EQ(shm.hdr->visible_version, v + 1); /* answered once visible */
	/* the same id replaces in place and keeps its slot */
	a = flow(42, 10, 1, 3);
	CHECK_EQ(add(&a, 0, &r), FERRY_STATUS_OK);
	CHECK_EQ(r.aux, slot);
	CHECK_EQ(flows.n_active, 1);
	const struct ferry_rule *now = ferry_flow_table_get(&flows, 42);
	CHECK(now != NULL && ((const struct ferry_act_output *)(const void *)now->actions)->port == 3);
	struct ferry_flow_del d = { .id = 42 };
	CHECK_EQ(roundtrip_status(FERRY_MSG_TYPE_FLOW_DEL, &d, sizeof(d), sizeof(d), NULL), FERRY_STATUS_OK);
	CHECK_EQ(flows.n_active, 0);
	CHECK_EQ(roundtrip_status(FERRY_MSG_TYPE_FLOW_DEL, &d, sizeof(d), sizeof(d), &r), FERRY_STATUS_ENOENT);
	CHECK(strstr(r.message, "id") != NULL);
}

static void test_bad_fields_are_refused_by_name(void)
{
	struct ferry_response r;
	struct ferry_flow_add a = flow(7, 1, 9, 1);
	CHECK_EQ(add(&a, 0, &r), FERRY_STATUS_ENOPORT);
	CHECK(strstr(r.message, "in_port") != NULL);
	a = flow(7, 1, 0, 4);
	CHECK_EQ(add(&a, 0, &r), FERRY_STATUS_ENOPORT);
	CHECK(strncmp(r.message, "actions[0]", 10) == 0);
	a = flow(7, 1, 0, 1);
	a.key.nw_proto = 6; /* not in the mask */
	CHECK_EQ(add(&a, 0, &r), FERRY_STATUS_EINVAL);
	CHECK(strncmp(r.message, "key", 3) == 0);
	a = flow(7, 1, 0, 1);
	a.table_id = 255;
	CHECK_EQ(add(&a, 0, &r), FERRY_STATUS_ENOTABLE);
	CHECK(strncmp(r.message, "table_id", 8) == 0);
	a = flow(7, 1, 0, -1);
	struct ferry_act_goto_table g = { .hdr = { .type = FERRY_ACTION_TYPE_GOTO_TABLE, .len = sizeof(g) }, .table_id = 0 };
	memcpy(a.actions, &g, sizeof(g));
	a.actions_len = sizeof(g);
	CHECK_EQ(add(&a, 0, &r), FERRY_STATUS_ENOTABLE); /* goto must go forward */
	CHECK(strstr(r.message, "goto_table") != NULL);
	a = flow(7, 1, 0, 1);
	((struct ferry_act_hdr *)(void *)a.actions)->type = 99;
	CHECK_EQ(add(&a, 0, &r), FERRY_STATUS_EINVAL);
	CHECK(strstr(r.message, "unknown action") != NULL);
	a = flow(7, 1, 0, 1);
	((struct ferry_act_hdr *)(void *)a.actions)->len = 12;
	CHECK_EQ(add(&a, 0, &r), FERRY_STATUS_EINVAL);
	a = flow(7, 1, 0, 1);
	a.actions_len = 4000;
	CHECK_EQ(add(&a, 0, &r), FERRY_STATUS_EINVAL);
	CHECK(strncmp(r.message, "actions_len", 11) == 0);
	a = flow(7, 1, 0, 1);
	CHECK_EQ(roundtrip_status(FERRY_MSG_TYPE_FLOW_ADD, &a, sizeof(a), sizeof(a) - 1, &r), FERRY_STATUS_EINVAL);
	CHECK(strncmp(r.message, "len", 3) == 0);
	CHECK_EQ(roundtrip(FERRY_MSG_TYPE_FLOW_ADD, 0x80, &a, sizeof(a), sizeof(a), &r), FERRY_STATUS_EINVAL);
	CHECK(strncmp(r.message, "flags", 5) == 0);
	CHECK_EQ(roundtrip_status(FERRY_MSG_TYPE_FLOW_ADD, &a, sizeof(a), 100000, &r), FERRY_STATUS_EINVAL);
	CHECK_EQ(roundtrip_status(999, NULL, 0, 0, &r), FERRY_STATUS_EINVAL);
	CHECK(strncmp(r.message, "type", 4) == 0);
	CHECK_EQ(flows.n_active, 0); /* nothing half-installed */
}

static void test_bundles_over_the_ring(void)
{
	struct ferry_response r;
	uint64_t v = shm.hdr->visible_version;
	struct ferry_flow_add a = flow(201, 5, 0, 1), b = flow(202, 5, 1, 0);
	CHECK_EQ(add(&a, FERRY_MSG_FLAG_IN_BUNDLE, NULL), FERRY_STATUS_OK);
	CHECK_EQ(add(&b, FERRY_MSG_FLAG_IN_BUNDLE, NULL), FERRY_STATUS_OK);
	CHECK_EQ(shm.hdr->visible_version, v); /* staged, not visible */
	struct ferry_flow_add c = flow(203, 5, 2, 0);
	CHECK_EQ(add(&c, 0, &r), FERRY_STATUS_EBUNDLE);
	CHECK_EQ(roundtrip_status(FERRY_MSG_TYPE_BUNDLE_COMMIT, NULL, 0, 0, &r), FERRY_STATUS_OK);
	CHECK_EQ(shm.hdr->visible_version, v + 1);
	CHECK_EQ(flows.n_active, 2);
	/* one bad op fails the commit and leaves nothing behind */
	struct ferry_flow_add bad = flow(204, 5, 3, 9);
	CHECK_EQ(add(&c, FERRY_MSG_FLAG_IN_BUNDLE, NULL), FERRY_STATUS_OK);
	CHECK_EQ(add(&bad, FERRY_MSG_FLAG_IN_BUNDLE, NULL), FERRY_STATUS_ENOPORT);
	CHECK_EQ(roundtrip_status(FERRY_MSG_TYPE_BUNDLE_COMMIT, NULL, 0, 0, &r), FERRY_STATUS_EBUNDLE);
	CHECK(strstr(r.message, "actions[0]") != NULL);
	CHECK_EQ(flows.n_active, 2);
	CHECK(ferry_flow_table_get(&flows, 203) == NULL);
	/* abort */
	CHECK_EQ(add(&c, FERRY_MSG_FLAG_IN_BUNDLE, NULL), FERRY_STATUS_OK);
	CHECK_EQ(roundtrip_status(FERRY_MSG_TYPE_BUNDLE_ABORT, NULL, 0, 0, NULL), FERRY_STATUS_OK);
	CHECK(ferry_flow_table_get(&flows, 203) == NULL);
	CHECK_EQ(add(&c, 0, NULL), FERRY_STATUS_OK);
	CHECK_EQ(flows.n_active, 3);
}

/* FLOW_CLEAR inside a bundle: the bundle replaces the table in one version; flows it re-adds
 * keep their slots (and so their counters); an aborted sweep changes nothing. */
static void test_sweeping_bundle_replaces_the_table(void)
{
	struct ferry_response r;
	CHECK_EQ(flows.n_active, 3); /* 201, 202, 203 from the bundle test */
	uint32_t slot201 = ferry_flow_table_get(&flows, 201)->slot;
	uint32_t slot202 = ferry_flow_table_get(&flows, 202)->slot;
	struct ferry_flow_add a = flow(201, 5, 0, 1), b = flow(202, 5, 1, 0), d = flow(206, 5, 3, 0);

	/* aborted: nothing changes */
	CHECK_EQ(roundtrip(FERRY_MSG_TYPE_FLOW_CLEAR, FERRY_MSG_FLAG_IN_BUNDLE, NULL, 0, 0, &r), FERRY_STATUS_OK);
	CHECK_EQ(add(&a, FERRY_MSG_FLAG_IN_BUNDLE, NULL), FERRY_STATUS_OK);
	CHECK_EQ(roundtrip_status(FERRY_MSG_TYPE_BUNDLE_ABORT, NULL, 0, 0, NULL), FERRY_STATUS_OK);
	CHECK_EQ(flows.n_active, 3);
	CHECK(ferry_flow_table_get(&flows, 203) != NULL);

	uint64_t v = shm.hdr->visible_version;
	CHECK_EQ(add(&a, FERRY_MSG_FLAG_IN_BUNDLE, NULL), FERRY_STATUS_OK);
	/* the clear may come anywhere in the bundle: it means "what this bundle did not add" */
	CHECK_EQ(roundtrip(FERRY_MSG_TYPE_FLOW_CLEAR, FERRY_MSG_FLAG_IN_BUNDLE, NULL, 0, 0, &r), FERRY_STATUS_OK);
	CHECK_EQ(add(&b, FERRY_MSG_FLAG_IN_BUNDLE, NULL), FERRY_STATUS_OK);
	CHECK_EQ(add(&d, FERRY_MSG_FLAG_IN_BUNDLE, NULL), FERRY_STATUS_OK);
	CHECK_EQ(shm.hdr->visible_version, v);
	CHECK(ferry_flow_table_get(&flows, 203) != NULL); /* not yet */
	CHECK_EQ(roundtrip_status(FERRY_MSG_TYPE_BUNDLE_COMMIT, NULL, 0, 0, &r), FERRY_STATUS_OK);
	CHECK_EQ(shm.hdr->visible_version, v + 1); /* one step */
	CHECK_EQ(flows.n_active, 3);
	CHECK(ferry_flow_table_get(&flows, 203) == NULL);
	CHECK(ferry_flow_table_get(&flows, 206) != NULL);
	CHECK_EQ(ferry_flow_table_get(&flows, 201)->slot, slot201);
	CHECK_EQ(ferry_flow_table_get(&flows, 202)->slot, slot202);
	/* a plain (unbundled) clear still refuses a body */
	CHECK_EQ(roundtrip_status(FERRY_MSG_TYPE_FLOW_CLEAR, &a, 8, 8, &r), FERRY_STATUS_EINVAL);
}

static void test_clear(void)
{
	struct ferry_response r;
	CHECK_EQ(roundtrip_status(FERRY_MSG_TYPE_FLOW_CLEAR, NULL, 0, 0, &r), FERRY_STATUS_OK);
	CHECK_EQ(r.value, 3);
	CHECK_EQ(flows.n_active, 0);
}

static void test_full_response_ring_pushes_back(void)
{
	/* leave answers unread until the response ring has 24 free slots */
	uint32_t room = ferry_ring_free(&shm.resp);
	uint32_t first = room - 24, handled = 0, n;
	for (uint32_t i = 0; i < first; i++)
		push(FERRY_MSG_TYPE_PING, NULL, 0, 0);
	while ((n = ferry_ctl_poll(&ctl, UINT32_MAX)) > 0)
		handled += n;
	CHECK_EQ(handled, first);
	for (uint32_t i = 0; i < 30; i++)
		push(FERRY_MSG_TYPE_PING, NULL, 0, 0);
	handled = 0;
	while ((n = ferry_ctl_poll(&ctl, UINT32_MAX)) > 0)
		handled += n;
	CHECK_EQ(handled, 24);
	CHECK_EQ(ferry_ring_count(&shm.req), 6); /* kept, not lost */
	uint64_t id;
	for (uint32_t i = 0; i < room; i++)
		pop(&id);
	CHECK_EQ(ferry_ctl_poll(&ctl, UINT32_MAX), 6);
	for (int i = 0; i < 6; i++)
		pop(&id);
	CHECK_EQ(ferry_ring_count(&shm.req), 0);
}

static void test_stale_segment_is_replaced(void)
{
	/* a segment left behind by a dead ferryd: pid of a process that no longer exists */
	struct ferry_shm other;
	char err[256];
	struct ferry_shm_geometry geo = { .n_ports = 1, .n_workers = 1, .max_flows = 8 };
	char name[64];
	snprintf(name, sizeof(name), "ferry-test-stale-%d", getpid());
	CHECK(ferry_shm_create(&other, name, &geo, err, sizeof(err)) == 0);
	pid_t child = fork();
	if (child == 0)
		_exit(0);
	waitpid(child, NULL, 0);
	other.hdr->pid = (uint32_t)child; /* dead now */
	other.hdr->state = FERRY_DP_STATE_RUNNING;
	struct ferry_shm again;
	CHECK(ferry_shm_create(&again, name, &geo, err, sizeof(err)) == 0);
	CHECK_EQ(again.hdr->pid, (uint64_t)getpid());
	munmap(other.base, other.size);
	ferry_shm_destroy(&again);

	/* a name with a slash in it is refused */
	CHECK(ferry_shm_create(&again, "a/b", &geo, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "--shm-name") != NULL);
}

/* UDP 10.0.0.1:sport -> 10.0.0.2:53, committed in zone, into the tracker */
static void ct_commit_udp(struct ferry_ct *ct, uint16_t zone, uint16_t sport)
{
	uint8_t f[42] = { 0 };
	f[12] = 0x08;
	uint8_t *ip = f + 14;
	ip[0] = 0x45;
	ip[3] = 28;
	ip[8] = 64;
	ip[9] = 17;
	ip[12] = 10, ip[15] = 1, ip[16] = 10, ip[19] = 2;
	uint32_t sum = 0;
	for (int i = 0; i < 20; i += 2)
		sum += (uint32_t)(ip[i] << 8 | ip[i + 1]);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	ip[10] = (uint8_t)(~sum >> 8), ip[11] = (uint8_t)~sum;
	uint8_t *u = ip + 20;
	u[0] = (uint8_t)(sport >> 8), u[1] = (uint8_t)sport, u[3] = 53, u[5] = 8;
	struct ferry_ct_pkt p = { .data = f, .len = sizeof(f), .l3_ofs = 14, .eth_type = 0x0800 };
	struct ferry_ct_action a = { .zone = zone, .flags = FERRY_CT_FLAG_COMMIT };
	const struct ferry_ct_action *ap = &a;
	struct ferry_ct_result r;
	struct ferry_ct_thread t;
	ferry_ct_thread_init(ct, &t);
	ferry_ct_execute(&t, &p, &ap, 1, ferry_monotonic_ns(), &r);
	ferry_ct_thread_fini(&t);
	CHECK(r.state & FERRY_CT_STATE_BIT_NEW);
}

static void test_conntrack_requests(void)
{
	struct ferry_response r;
	/* without a tracker the requests say so */
	struct ferry_ct_filter all;
	memset(&all, 0, sizeof(all));
	CHECK_EQ(roundtrip_status(FERRY_MSG_TYPE_CT_FLUSH, &all, sizeof(all), sizeof(all), &r), FERRY_STATUS_EUNSUPPORTED);

	struct ferry_ct *ct = ferry_ct_create(&(struct ferry_ct_config){ .max_conns = 4096 });
	CHECK(ct != NULL);
	ferry_ctl_attach_ct(&ctl, ct);
	for (uint16_t i = 0; i < 20; i++)
		ct_commit_udp(ct, (uint16_t)(i < 15 ? 5 : 6), (uint16_t)(1000 + i));

	/* a dump of 20 entries answers in parts of 6: MORE on all but the last */
	struct ferry_ct_dump_req q;
	memset(&q, 0, sizeof(q));
	uint64_t id = next_id;
	push(FERRY_MSG_TYPE_CT_DUMP, &q, sizeof(q), sizeof(q));
	CHECK_EQ(ferry_ctl_poll(&ctl, UINT32_MAX), 1);
	struct ferry_ring cons = shm.resp;
	cons.own = shm.resp.ctl->tail;
	uint32_t parts = ferry_ring_count(&cons), entries = 0, more = 0, done = 0;
	CHECK_EQ(parts, 4);
	for (uint32_t i = 0; i < parts; i++) {
		const uint8_t *rec = ferry_ring_peek(&cons, i);
		struct ferry_msg_hdr h;
		memcpy(&h, rec, sizeof(h));
		CHECK_EQ(h.req_id, id);
		more += (h.flags & FERRY_MSG_FLAG_MORE) != 0;
		struct ferry_ct_dump_resp d;
		memcpy(&d, rec + sizeof(h) + sizeof(struct ferry_response), sizeof(d));
		entries += d.n_entries;
		done += d.done;
		for (unsigned k = 0; k < d.n_entries; k++)
			CHECK(d.entries[k].proto == 17 && d.entries[k].dport == 53 && d.entries[k].packets_orig == 1);
	}
	ferry_ring_release(&cons, parts);
	CHECK_EQ(entries, 20);
	CHECK_EQ(more, parts - 1);
	CHECK_EQ(done, 1);

	/* a zone filter is applied in the dataplane; a bad filter is refused by name */
	q.filter.flags = FERRY_CT_FILTER_FLAG_ZONE;
	q.filter.zone = 6;
	push(FERRY_MSG_TYPE_CT_DUMP, &q, sizeof(q), sizeof(q));
	CHECK_EQ(ferry_ctl_poll(&ctl, UINT32_MAX), 1);
	cons.own = shm.resp.ctl->tail;
	CHECK_EQ(ferry_ring_count(&cons), 1);
	struct ferry_ct_dump_resp d;
	memcpy(&d, ferry_ring_peek(&cons, 0) + sizeof(struct ferry_msg_hdr) + sizeof(struct ferry_response), sizeof(d));
	CHECK_EQ(d.n_entries, 5);
	ferry_ring_release(&cons, 1);
	q.filter.flags = 1u << 20;
	push(FERRY_MSG_TYPE_CT_DUMP, &q, sizeof(q), sizeof(q));
	CHECK_EQ(ferry_ctl_poll(&ctl, UINT32_MAX), 1);
	uint64_t got;
	r = pop(&got);
	CHECK_EQ(r.status, FERRY_STATUS_EINVAL);
	CHECK(strstr(r.message, "filter.flags") != NULL);

	/* stats: per zone counts follow the response struct */
	struct ferry_ct_stats_req sq = { .zone_start = 0 };
	push(FERRY_MSG_TYPE_CT_STATS, &sq, sizeof(sq), sizeof(sq));
	CHECK_EQ(ferry_ctl_poll(&ctl, UINT32_MAX), 1);
	cons.own = shm.resp.ctl->tail;
	struct ferry_ct_stats_resp st;
	memcpy(&st, ferry_ring_peek(&cons, 0) + sizeof(struct ferry_msg_hdr) + sizeof(struct ferry_response), sizeof(st));
	ferry_ring_release(&cons, 1);
	CHECK_EQ(st.total, 20);
	CHECK_EQ(st.by_proto[FERRY_CT_PROTO_INDEX_UDP], 20);
	CHECK_EQ(st.n_zones, 2);
	CHECK(st.zones[0].zone == 5 && st.zones[0].count == 15 && st.zones[1].zone == 6 && st.zones[1].count == 5);

	/* limits and policies, with their fields checked */
	struct ferry_ct_limit_req l = { .target = FERRY_CT_LIMIT_TARGET_ZONE, .zone = 9, .limit = 3 };
	CHECK_EQ(roundtrip_status(FERRY_MSG_TYPE_CT_SET_LIMIT, &l, sizeof(l), sizeof(l), &r), FERRY_STATUS_OK);
	CHECK_EQ(ferry_ct_zone_limit(ct, 9), 3);
	l.target = 7;
	CHECK_EQ(roundtrip_status(FERRY_MSG_TYPE_CT_SET_LIMIT, &l, sizeof(l), sizeof(l), &r), FERRY_STATUS_EINVAL);
	CHECK(strstr(r.message, "target") != NULL);
	struct ferry_ct_timeout_policy_req tp;
	memset(&tp, 0, sizeof(tp));
	tp.zone = 5;
	tp.seconds[FERRY_CT_TM_UDP_FIRST] = 7;
	CHECK_EQ(roundtrip_status(FERRY_MSG_TYPE_CT_SET_TIMEOUT_POLICY, &tp, sizeof(tp), sizeof(tp), &r), FERRY_STATUS_OK);
	CHECK_EQ(ferry_ct_timeout(ct, 5, FERRY_CT_TM_UDP_FIRST), 7);
	CHECK_EQ(ferry_ct_timeout(ct, 6, FERRY_CT_TM_UDP_FIRST), 60);
	CHECK_EQ(roundtrip_status(FERRY_MSG_TYPE_CT_SET_TIMEOUT_POLICY, &tp, sizeof(tp), sizeof(tp) - 4, &r),
		 FERRY_STATUS_EINVAL);

	/* flush by zone removes exactly that zone */
	all.flags = FERRY_CT_FILTER_FLAG_ZONE;
	all.zone = 5;
	CHECK_EQ(roundtrip_status(FERRY_MSG_TYPE_CT_FLUSH, &all, sizeof(all), sizeof(all), &r), FERRY_STATUS_OK);
	CHECK_EQ(r.value, 15);
	CHECK_EQ(ferry_ct_count(ct), 5);

	ferry_ct_thread_fini(&ctl.ct_thread);
	ctl.ct = NULL;
	ferry_ct_destroy(ct);
}

static struct ferry_tunnel_config good_tunnel(void)
{
	struct ferry_tunnel_config c;
	memset(&c, 0, sizeof(c));
	c.port = 5;
	c.local_ip[0] = 192, c.local_ip[1] = 168, c.local_ip[3] = 1;
	c.remote_ip[0] = 192, c.remote_ip[1] = 168, c.remote_ip[3] = 2;
	c.local_plen = 24;
	c.ttl = 64;
	c.dst_port = FERRY_STT_PORT;
	c.underlay_port = 1;
	c.underlay_mtu = 1500;
	return c;
}

/* The answer to TUNNEL_SET with c: its status; the message must start with field. */
static uint32_t tunnel_set(const struct ferry_tunnel_config *c, const char *field)
{
	struct ferry_response r;
	uint32_t st = roundtrip_status(FERRY_MSG_TYPE_TUNNEL_SET, c, sizeof(*c), sizeof(*c), &r);
	if (field != NULL && strncmp(r.message, field, strlen(field)) != 0) {
		fprintf(stderr, "  message '%s' does not name %s\n", r.message, field);
		CHECK(!"the message names the field");
	}
	return st;
}

/* The tunnel, neighbour and STT requests: refused without the tables, every bad
 * field named, a tunnel port usable by flows once it exists, neighbours paged. */
static void test_tunnel_requests(void)
{
	struct ferry_response r;
	struct ferry_tunnel_config c = good_tunnel();
	CHECK_EQ(roundtrip_status(FERRY_MSG_TYPE_TUNNEL_SET, &c, sizeof(c), sizeof(c), &r), FERRY_STATUS_EUNSUPPORTED);

	static struct ferry_tunnel_table tt;
	static struct ferry_stt_settings settings = { .version = 1 };
	struct ferry_neigh_table *neigh = ferry_neigh_create(0);
	CHECK(neigh != NULL);
	CHECK_EQ(ferry_tunnel_table_init(&tt, 4, NULL), 0);
	ferry_ctl_attach_tunnels(&ctl, &tt, neigh, &settings);

	/* a flow to port 5 is refused while no tunnel is there */
	struct ferry_flow_add f = flow(900, 10, 0, 5);
	CHECK_EQ(add(&f, 0, &r), FERRY_STATUS_ENOPORT);

	c = good_tunnel(), c.port = 3;
	CHECK_EQ(tunnel_set(&c, "port:"), FERRY_STATUS_ENOPORT);
	c = good_tunnel(), c.port = FERRY_MAX_PORTS;
	CHECK_EQ(tunnel_set(&c, "port:"), FERRY_STATUS_ENOPORT);
	c = good_tunnel(), c.underlay_port = 4;
	CHECK_EQ(tunnel_set(&c, "underlay_port:"), FERRY_STATUS_ENOPORT);
	c = good_tunnel(), memset(c.local_ip, 0, 4);
	CHECK_EQ(tunnel_set(&c, "local_ip:"), FERRY_STATUS_EINVAL);
	c = good_tunnel(), memset(c.remote_ip, 0, 4);
	CHECK_EQ(tunnel_set(&c, "remote_ip:"), FERRY_STATUS_EINVAL);
	c.flags = FERRY_TUNNEL_FLAG_REMOTE_FLOW; /* a flow-based remote needs none */
	CHECK_EQ(tunnel_set(&c, NULL), FERRY_STATUS_OK);
	c = good_tunnel(), c.underlay_mtu = 575;
	CHECK_EQ(tunnel_set(&c, "underlay_mtu:"), FERRY_STATUS_EINVAL);
	c = good_tunnel(), c.local_plen = 33;
	CHECK_EQ(tunnel_set(&c, "local_plen:"), FERRY_STATUS_EINVAL);
	c = good_tunnel(), c.dst_port = 0;
	CHECK_EQ(tunnel_set(&c, "dst_port:"), FERRY_STATUS_EINVAL);
	c = good_tunnel(), c.ttl = 0;
	CHECK_EQ(tunnel_set(&c, "ttl:"), FERRY_STATUS_EINVAL);
	c = good_tunnel(), c.flags = 4;
	CHECK_EQ(tunnel_set(&c, "flags:"), FERRY_STATUS_EINVAL);
	c = good_tunnel();
	CHECK_EQ(tunnel_set(&c, NULL), FERRY_STATUS_OK);
	CHECK(tt.live->t[5].active);
	CHECK_EQ(tt.live->t[5].mss, 1460);
	CHECK_EQ(tt.live->underlay_mask, 1u << 1);
	CHECK_EQ(tt.live->n_endpoints, 1);

	/* now port 5 exists for flows, as output and as in_port */
	CHECK_EQ(add(&f, 0, &r), FERRY_STATUS_OK);
	f = flow(901, 10, 5, 0);
	CHECK_EQ(add(&f, 0, &r), FERRY_STATUS_OK);
	struct ferry_tunnel_del d = { .port = 5 };
	CHECK_EQ(roundtrip_status(FERRY_MSG_TYPE_TUNNEL_DEL, &d, sizeof(d), sizeof(d), &r), FERRY_STATUS_OK);
	CHECK(!tt.live->t[5].active);
	CHECK_EQ(tt.live->underlay_mask, 0);
	CHECK_EQ(roundtrip_status(FERRY_MSG_TYPE_TUNNEL_DEL, &d, sizeof(d), sizeof(d), &r), FERRY_STATUS_ENOENT);
	CHECK_EQ(roundtrip_status(FERRY_MSG_TYPE_TUNNEL_DEL, &d, sizeof(d), sizeof(d) - 1, &r), FERRY_STATUS_EINVAL);

	/* neighbours */
	struct ferry_neigh_entry e;
	memset(&e, 0, sizeof(e));
	e.port = 1;
	e.mac[0] = 2, e.mac[5] = 7;
	CHECK_EQ(roundtrip_status(FERRY_MSG_TYPE_NEIGH_SET, &e, sizeof(e), sizeof(e), &r), FERRY_STATUS_EINVAL);
	CHECK(strncmp(r.message, "ip:", 3) == 0);
	e.ip[0] = 10, e.ip[3] = 1;
	e.port = 9;
	CHECK_EQ(roundtrip_status(FERRY_MSG_TYPE_NEIGH_SET, &e, sizeof(e), sizeof(e), &r), FERRY_STATUS_ENOPORT);
	e.port = 1, e.mac[0] = 1; /* multicast */
	CHECK_EQ(roundtrip_status(FERRY_MSG_TYPE_NEIGH_SET, &e, sizeof(e), sizeof(e), &r), FERRY_STATUS_EINVAL);
	CHECK(strncmp(r.message, "mac:", 4) == 0);
	e.mac[0] = 2;
	for (uint8_t i = 1; i <= 30; i++) {
		e.ip[3] = i;
		CHECK_EQ(roundtrip_status(FERRY_MSG_TYPE_NEIGH_SET, &e, sizeof(e), sizeof(e), &r), FERRY_STATUS_OK);
	}
	/* a dump in pages of NEIGH_DUMP_ENTRIES gives every entry once */
	unsigned seen = 0, pages = 0;
	uint32_t mask = 0;
	struct ferry_neigh_dump_req q = { .cursor = 0 };
	for (;;) {
		push(FERRY_MSG_TYPE_NEIGH_DUMP, &q, sizeof(q), sizeof(q));
		CHECK_EQ(ferry_ctl_poll(&ctl, UINT32_MAX), 1);
		struct ferry_ring cons = shm.resp;
		cons.own = shm.resp.ctl->tail;
		const uint8_t *rec = ferry_ring_peek(&cons, 0);
		struct ferry_msg_hdr h;
		struct ferry_neigh_dump_resp dr;
		memcpy(&h, rec, sizeof(h));
		CHECK_EQ(h.len, sizeof(struct ferry_response) + sizeof(dr));
		memcpy(&dr, rec + sizeof(h) + sizeof(struct ferry_response), sizeof(dr));
		ferry_ring_release(&cons, 1);
		for (unsigned i = 0; i < dr.n_entries; i++) {
			CHECK(dr.entries[i].flags & FERRY_NEIGH_FLAG_STATIC);
			mask |= 1u << (dr.entries[i].ip[3] - 1);
		}
		seen += dr.n_entries;
		pages++;
		if (dr.done || pages > 10)
			break;
		q.cursor = dr.next_cursor;
	}
	CHECK_EQ(seen, 30);
	CHECK_EQ(mask, (1u << 30) - 1);
	CHECK(pages >= 2);
	e.ip[3] = 30;
	CHECK_EQ(roundtrip_status(FERRY_MSG_TYPE_NEIGH_DEL, &e, sizeof(e), sizeof(e), &r), FERRY_STATUS_OK);
	CHECK_EQ(roundtrip_status(FERRY_MSG_TYPE_NEIGH_DEL, &e, sizeof(e), sizeof(e), &r), FERRY_STATUS_ENOENT);

	/* settings: out of range named, 0 leaves a value, a change bumps the version */
	struct ferry_stt_options_req o = { .reasm_timeout_ms = 60001 };
	CHECK_EQ(roundtrip_status(FERRY_MSG_TYPE_STT_SET_OPTIONS, &o, sizeof(o), sizeof(o), &r), FERRY_STATUS_EINVAL);
	CHECK(strncmp(r.message, "reasm_timeout_ms:", 17) == 0);
	o = (struct ferry_stt_options_req){ .reasm_mem_max = 1000 };
	CHECK_EQ(roundtrip_status(FERRY_MSG_TYPE_STT_SET_OPTIONS, &o, sizeof(o), sizeof(o), &r), FERRY_STATUS_EINVAL);
	o = (struct ferry_stt_options_req){ .neigh_retries = 11 };
	CHECK_EQ(roundtrip_status(FERRY_MSG_TYPE_STT_SET_OPTIONS, &o, sizeof(o), sizeof(o), &r), FERRY_STATUS_EINVAL);
	CHECK_EQ(settings.version, 1);
	o = (struct ferry_stt_options_req){ .reasm_timeout_ms = 250, .neigh_retries = 5 };
	CHECK_EQ(roundtrip_status(FERRY_MSG_TYPE_STT_SET_OPTIONS, &o, sizeof(o), sizeof(o), &r), FERRY_STATUS_OK);
	CHECK_EQ(settings.version, 2);
	CHECK_EQ(settings.reasm_timeout_ms, 250);
	CHECK_EQ(ferry_neigh_retries(neigh), 5);
	/* not in bundles */
	CHECK_EQ(roundtrip(FERRY_MSG_TYPE_STT_SET_OPTIONS, FERRY_MSG_FLAG_IN_BUNDLE, &o, sizeof(o), sizeof(o), &r),
		 FERRY_STATUS_EINVAL);

	ferry_ctl_attach_tunnels(&ctl, NULL, NULL, NULL);
	ferry_tunnel_table_fini(&tt);
	ferry_neigh_destroy(neigh);
}

int main(void)
{
	ferry_test_eal_init("ctl", NULL, 0);
	char err[256], name[64];
	snprintf(name, sizeof(name), "ferry-test-ctl-%d", getpid());
	struct ferry_shm_geometry geo = { .n_ports = 4, .n_workers = 2, .max_flows = 64 };
	if (ferry_shm_create(&shm, name, &geo, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	if (ferry_flow_table_init(&flows, 64, 4, NULL, NULL, NULL) != 0)
		return 1;
	ferry_ctl_init(&ctl, &shm, &flows, NULL, 0);

	RUN(test_header_is_laid_out);
	RUN(test_ping);
	RUN(test_flow_add_replace_delete);
	RUN(test_bad_fields_are_refused_by_name);
	RUN(test_bundles_over_the_ring);
	RUN(test_sweeping_bundle_replaces_the_table);
	RUN(test_clear);
	RUN(test_full_response_ring_pushes_back);
	RUN(test_stale_segment_is_replaced);
	RUN(test_conntrack_requests);
	RUN(test_tunnel_requests);

	ferry_flow_table_fini(&flows);
	ferry_shm_destroy(&shm);
	rte_eal_cleanup();
	return ftest_finish();
}
