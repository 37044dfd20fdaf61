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

static struct ferry_shm shm;
static struct ferry_flow_table flows;
static struct ferry_ctl ctl;
static uint64_t next_id = 1;

static void push(uint16_t type, const void *body, uint32_t len, uint32_t claimed_len)
{
	uint8_t rec[FERRY_MSG_SLOT_SIZE] = {0};
	struct ferry_msg_hdr h = { .type = type, .len = claimed_len, .req_id = next_id++ };
	memcpy(rec, &h, sizeof(h));
	if (body)
		memcpy(rec + sizeof(h), body, len);
	/* the test plays the control service: producer of the request ring */
	struct ferry_ring prod = shm.req;
	prod.own = shm.req.ctl->head;
	CHECK(ferry_ring_push(&prod, rec, sizeof(rec)));
}

static void push_add(const struct ferry_flow_add *m)
{
	push(FERRY_MSG_TYPE_FLOW_ADD, m, sizeof(*m), sizeof(*m));
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

static uint32_t roundtrip_status(uint16_t type, const void *body, uint32_t len, uint32_t claimed,
				 struct ferry_response *out)
{
	uint64_t sent = next_id, got = 0;
	push(type, body, len, claimed);
	CHECK_EQ(ferry_ctl_poll(&ctl, UINT32_MAX), 1);
	struct ferry_response r = pop(&got);
	CHECK_EQ(got, sent);
	if (out)
		*out = r;
	return r.status;
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
	CHECK(shm.hdr->flow_stats_off + (uint64_t)2 * 64 * sizeof(struct ferry_flow_stats) <= shm.size);
}

static void test_ping(void)
{
	CHECK_EQ(roundtrip_status(FERRY_MSG_TYPE_PING, NULL, 0, 0, NULL), FERRY_STATUS_OK);
}

static void test_flow_add_replace_delete(void)
{
	struct ferry_response r;
	struct ferry_flow_add a = { .id = 42, .priority = 10, .in_port = 1,
				    .action = FERRY_FLOW_ACTION_OUTPUT, .out_port = 2 };
	CHECK_EQ(roundtrip_status(FERRY_MSG_TYPE_FLOW_ADD, &a, sizeof(a), sizeof(a), &r), FERRY_STATUS_OK);
	uint32_t slot = r.aux;
	CHECK_EQ(flows.n_active, 1);
	CHECK_EQ(shm.hdr->flows_active, 1);
	uint32_t gen = shm.hdr->flows_generation;
	CHECK(gen >= 1);
	/* the same id replaces in place and keeps its slot */
	a.out_port = 3;
	CHECK_EQ(roundtrip_status(FERRY_MSG_TYPE_FLOW_ADD, &a, sizeof(a), sizeof(a), &r), FERRY_STATUS_OK);
	CHECK_EQ(r.aux, slot);
	CHECK_EQ(flows.n_active, 1);
	CHECK_EQ(flows.rules[slot].out_port, 3);
	CHECK_EQ(shm.hdr->flows_generation, gen + 1);
	struct ferry_flow_del d = { .id = 42 };
	CHECK_EQ(roundtrip_status(FERRY_MSG_TYPE_FLOW_DEL, &d, sizeof(d), sizeof(d), NULL), FERRY_STATUS_OK);
	CHECK_EQ(flows.n_active, 0);
	CHECK_EQ(roundtrip_status(FERRY_MSG_TYPE_FLOW_DEL, &d, sizeof(d), sizeof(d), &r), FERRY_STATUS_ENOENT);
	CHECK(strstr(r.message, "id") != NULL);
}

static void test_bad_fields_are_refused_by_name(void)
{
	struct ferry_response r;
	struct ferry_flow_add a = { .id = 7, .priority = 1, .in_port = 9, .action = FERRY_FLOW_ACTION_OUTPUT };
	CHECK_EQ(roundtrip_status(FERRY_MSG_TYPE_FLOW_ADD, &a, sizeof(a), sizeof(a), &r), FERRY_STATUS_ENOPORT);
	CHECK(strncmp(r.message, "in_port", 7) == 0);
	a.in_port = 0;
	a.out_port = 4;
	CHECK_EQ(roundtrip_status(FERRY_MSG_TYPE_FLOW_ADD, &a, sizeof(a), sizeof(a), &r), FERRY_STATUS_ENOPORT);
	CHECK(strncmp(r.message, "out_port", 8) == 0);
	a.out_port = 1;
	a.action = 77;
	CHECK_EQ(roundtrip_status(FERRY_MSG_TYPE_FLOW_ADD, &a, sizeof(a), sizeof(a), &r), FERRY_STATUS_EINVAL);
	CHECK(strncmp(r.message, "action", 6) == 0);
	a.action = FERRY_FLOW_ACTION_DROP;
	a.priority = 70000;
	CHECK_EQ(roundtrip_status(FERRY_MSG_TYPE_FLOW_ADD, &a, sizeof(a), sizeof(a), &r), FERRY_STATUS_EINVAL);
	CHECK(strncmp(r.message, "priority", 8) == 0);
	a.priority = 1;
	a.table_id = 3;
	CHECK_EQ(roundtrip_status(FERRY_MSG_TYPE_FLOW_ADD, &a, sizeof(a), sizeof(a), &r), FERRY_STATUS_EUNSUPPORTED);
	a.table_id = 0;
	CHECK_EQ(roundtrip_status(FERRY_MSG_TYPE_FLOW_ADD, &a, sizeof(a), sizeof(a) - 1, &r), FERRY_STATUS_EINVAL);
	CHECK(strncmp(r.message, "len", 3) == 0);
	CHECK_EQ(roundtrip_status(FERRY_MSG_TYPE_FLOW_ADD, &a, sizeof(a), 100000, &r), FERRY_STATUS_EINVAL);
	CHECK_EQ(roundtrip_status(999, NULL, 0, 0, &r), FERRY_STATUS_EINVAL);
	CHECK(strncmp(r.message, "type", 4) == 0);
	CHECK_EQ(flows.n_active, 0); /* nothing half-installed */
}

static void test_clear(void)
{
	for (uint64_t i = 0; i < 5; i++) {
		struct ferry_flow_add a = { .id = 100 + i, .priority = (uint32_t)i, .in_port = FERRY_PORT_ANY,
					    .action = FERRY_FLOW_ACTION_DROP };
		push_add(&a);
	}
	CHECK_EQ(ferry_ctl_poll(&ctl, UINT32_MAX), 5);
	uint64_t id;
	for (int i = 0; i < 5; i++)
		CHECK_EQ(pop(&id).status, FERRY_STATUS_OK);
	CHECK_EQ(flows.n_active, 5);
	struct ferry_response r;
	CHECK_EQ(roundtrip_status(FERRY_MSG_TYPE_FLOW_CLEAR, NULL, 0, 0, &r), FERRY_STATUS_OK);
	CHECK_EQ(r.value, 5);
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
	ferry_ctl_init(&ctl, &shm, &flows);

	RUN(test_header_is_laid_out);
	RUN(test_ping);
	RUN(test_flow_add_replace_delete);
	RUN(test_bad_fields_are_refused_by_name);
	RUN(test_clear);
	RUN(test_full_response_ring_pushes_back);
	RUN(test_stale_segment_is_replaced);

	ferry_flow_table_fini(&flows);
	ferry_shm_destroy(&shm);
	rte_eal_cleanup();
	return ftest_finish();
}
