/* The main lcore's side of the control channel: drains the request ring, validates
 * every field of every record (a buggy or hostile control process must not crash
 * ferryd), stages the changes, commits the batch as one flow-table version, then
 * answers: an answer means the change is visible to every worker. Bundles stage
 * across requests until BUNDLE_COMMIT. The main lcore also expires flows whose idle
 * or hard timeout passed, and forwards the workers' punted packets as events. */
#ifndef FERRY_CTL_H
#define FERRY_CTL_H

#include <stdint.h>
#include "shm.h"
#include "../classifier/flow_table.h"
#include "../conntrack/conntrack.h"
#include "../stt/tunnel.h"
#include "../underlay/neigh.h"

struct ferry_worker;

struct ferry_ctl {
	struct ferry_shm *shm;
	struct ferry_flow_table *flows;
	struct ferry_worker *workers;
	uint16_t n_workers;
	uint64_t requests;
	uint64_t bad_requests;
	uint64_t event_seq;
	uint64_t events_lost;
	struct ferry_ct *ct;                /* NULL: the CT_* requests answer EUNSUPPORTED */
	struct ferry_ct_thread ct_thread;   /* for flushes */
	struct ferry_tunnel_table *tunnels; /* NULL: the tunnel requests answer EUNSUPPORTED */
	struct ferry_neigh_table *neigh;
	struct ferry_stt_settings *stt;
	/* fault injection for tests (FERRY_FAULT_KILL_AT_BUNDLE_OP=N in the environment): ferryd
	 * kills itself (SIGKILL) when it receives its Nth bundled FLOW_ADD, i.e. mid-bundle */
	uint64_t fault_kill_at_bundle_op;
	uint64_t bundle_ops;
};

void ferry_ctl_init(struct ferry_ctl *ctl, struct ferry_shm *shm, struct ferry_flow_table *flows,
		    struct ferry_worker *workers, uint16_t n_workers);

/* Handles up to max requests (bounded by the room in the response ring: a full
 * response ring pushes back on the request ring instead of losing answers).
 * Returns how many were handled. */
uint32_t ferry_ctl_poll(struct ferry_ctl *ctl, uint32_t max);

/* Decodes and stages one request record, filling its response (exposed for the unit
 * and fuzz tests). resp is the body of a response slot: answers with a payload
 * (CT_STATS, NEIGH_DUMP) write it right after the response struct, up to
 * MSG_BODY_SIZE bytes in all, and say so in resp_hdr->len. Returns 1 when the plain
 * batch changed and needs a commit. */
int ferry_ctl_handle(struct ferry_ctl *ctl, const uint8_t *rec, uint32_t rec_len,
		     struct ferry_msg_hdr *resp_hdr, struct ferry_response *resp);

/* Removes flows past their idle or hard timeout (FLOW_REMOVED events). Returns how many. */
uint32_t ferry_ctl_expire(struct ferry_ctl *ctl, uint64_t now_ns);

/* Attaches the connection tracker the CT_* requests act on. */
void ferry_ctl_attach_ct(struct ferry_ctl *ctl, struct ferry_ct *ct);

/* Attaches the tunnel ports, the neighbour cache and the reassembly settings the
 * TUNNEL_*, NEIGH_* and STT_SET_OPTIONS requests act on. */
void ferry_ctl_attach_tunnels(struct ferry_ctl *ctl, struct ferry_tunnel_table *tunnels, struct ferry_neigh_table *neigh,
			      struct ferry_stt_settings *stt);

/* Moves the tracker's events into the event ring (as room allows); publishes its
 * gauges in the header. Returns how many events moved. */
uint32_t ferry_ctl_drain_ct(struct ferry_ctl *ctl, uint64_t now_ns);

/* Moves packets the workers punted to the controller into the event ring. */
uint32_t ferry_ctl_drain_punts(struct ferry_ctl *ctl, uint64_t now_ns);

#endif
