/* libFuzzer: the control-channel decoder, as a buggy or hostile ferry-control would
 * drive it. Each input is a sequence of request records (a 2-byte length, then the
 * record) fed to ferry_ctl_handle over a real segment and flow table; then a key made
 * of the input's tail is translated through whatever flows were accepted, so the
 * translation walks actions that only the validator stood between. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <rte_eal.h>
#include "../ctl/ctl.h"
#include "../pipeline/xlate.h"

static struct ferry_shm shm;
static struct ferry_flow_table flows;
static struct ferry_ctl ctl;
static struct ferry_tunnel_table tunnels;
static struct ferry_stt_settings stt = { .version = 1 };

static void cleanup(void)
{
	ferry_shm_destroy(&shm); /* unlink: no segment is left behind */
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	char prefix[64], name[64], err[256];
	snprintf(prefix, sizeof(prefix), "ferry-fuzz-%d", getpid());
	const char *eal[] = { "fuzz", "--no-huge", "-m", "128", "--no-pci", "--no-shconf", "--log-level", "error",
			      "-l", "0", "--file-prefix", prefix };
	if (rte_eal_init(12, (char **)eal) < 0)
		abort();
	snprintf(name, sizeof(name), "ferry-fuzz-%d", getpid());
	struct ferry_shm_geometry geo = { .n_ports = 4, .n_workers = 1, .max_flows = 64 };
	if (ferry_shm_create(&shm, name, &geo, err, sizeof(err)) != 0 ||
	    ferry_flow_table_init(&flows, 64, 4, NULL, NULL, NULL) != 0)
		abort();
	ferry_ctl_init(&ctl, &shm, &flows, NULL, 0);
	struct ferry_neigh_table *neigh = ferry_neigh_create(0);
	if (neigh == NULL || ferry_tunnel_table_init(&tunnels, 4, NULL) != 0)
		abort();
	ferry_ctl_attach_tunnels(&ctl, &tunnels, neigh, &stt);
	atexit(cleanup);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t rec[FERRY_MSG_SLOT_SIZE];
	struct ferry_msg_hdr rh;
	/* a response slot's body: answers may carry a payload after the response struct */
	static union {
		struct ferry_response r;
		uint8_t body[FERRY_MSG_BODY_SIZE];
	} out;
	struct ferry_response *resp = &out.r;
	size_t off = 0;
	while (off + 2 <= size) {
		size_t n = (size_t)data[off] | (size_t)data[off + 1] << 8;
		off += 2;
		if (n > size - off)
			n = size - off;
		if (n > sizeof(rec))
			n = sizeof(rec);
		memset(rec, 0, sizeof(rec));
		memcpy(rec, data + off, n);
		off += n;
		int changed = ferry_ctl_handle(&ctl, rec, sizeof(rec), &rh, resp);
		if (resp->status >= FERRY_STATUS_COUNT || rh.type != FERRY_MSG_TYPE_RESPONSE || rh.len > FERRY_MSG_BODY_SIZE ||
		    memchr(resp->message, 0, sizeof(resp->message)) == NULL)
			abort();
		if (changed)
			ferry_flow_table_commit_batch(&flows);
	}
	/* translate a key made of what is left (or zeros) through the accepted flows */
	struct ferry_flow_key key;
	memset(&key, 0, sizeof(key));
	size_t tail = size > sizeof(key) ? sizeof(key) : size;
	memcpy(&key, data + size - tail, tail);
	struct ferry_program prog;
	ferry_xlate(&flows.tss, ferry_flow_table_version(&flows), &key, (uint8_t)(key.in_port % FERRY_N_TABLES), &prog);
	if (prog.n_ops > FERRY_PROG_MAX_OPS || prog.n_visits > FERRY_PROG_MAX_VISITS)
		abort();
	/* keep the state small and every input independent */
	for (uint32_t p = 0; p < FERRY_MAX_PORTS; p++)
		ferry_tunnel_del(&tunnels, p);
	if (flows.bundle_open)
		ferry_flow_table_abort_bundle(&flows);
	ferry_flow_table_clear(&flows);
	ferry_flow_table_commit_batch(&flows);
	return 0;
}
