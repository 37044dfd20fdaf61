/* ferryd's shared-memory segment: created at start (mode 0600), laid out as
 * proto/layout.json says, unlinked at exit. */
#ifndef FERRY_CTL_SHM_H
#define FERRY_CTL_SHM_H

#include <stddef.h>
#include <stdint.h>
#include "ferry_proto.h"
#include "ring.h"

struct ferry_shm_geometry {
	uint32_t n_ports;
	uint32_t n_workers;
	uint32_t max_flows;
};

struct ferry_shm {
	char name[256];       /* "/NAME" */
	void *base;
	size_t size;
	struct ferry_shm_header *hdr;
	struct ferry_ring req;    /* control -> ferryd; ferryd consumes */
	struct ferry_ring resp;   /* ferryd -> control; ferryd produces */
	struct ferry_ring events; /* ferryd -> control; ferryd produces */
	struct ferry_port_info *port_info;
	struct ferry_port_hw_stats *port_hw;
	struct ferry_worker_stats *workers;
	struct ferry_flow_stats *flow_stats; /* [n_workers][max_flows] */
	struct ferry_table_stats *table_stats; /* [n_workers][N_TABLES] */
	struct ferry_shm_geometry geo;
};

/* Bytes of the segment for a geometry, and where each region starts (header offsets). */
size_t ferry_shm_layout(const struct ferry_shm_geometry *geo, struct ferry_shm_header *offsets);

/* Creates /name (refusing if a live ferryd owns it, replacing a stale one).
 * Returns 0 or -errno, with a message in err. */
int ferry_shm_create(struct ferry_shm *shm, const char *name, const struct ferry_shm_geometry *geo,
		     char *err, size_t errlen);

/* Unmaps and unlinks. */
void ferry_shm_destroy(struct ferry_shm *shm);

static inline struct ferry_flow_stats *
ferry_shm_flow_stats(const struct ferry_shm *shm, uint32_t worker, uint32_t slot)
{
	return &shm->flow_stats[(size_t)worker * shm->geo.max_flows + slot];
}

#endif
