#include "shm.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define REGION_ALIGN 4096u

static size_t align_up(size_t v, size_t a)
{
	return (v + a - 1) & ~(a - 1);
}

size_t ferry_shm_layout(const struct ferry_shm_geometry *geo, struct ferry_shm_header *h)
{
	size_t off = align_up(sizeof(struct ferry_shm_header), REGION_ALIGN);

	h->req_ring_off = off;
	off = align_up(off + ferry_ring_bytes(FERRY_REQ_RING_SLOTS, FERRY_MSG_SLOT_SIZE), REGION_ALIGN);
	h->resp_ring_off = off;
	off = align_up(off + ferry_ring_bytes(FERRY_RESP_RING_SLOTS, FERRY_MSG_SLOT_SIZE), REGION_ALIGN);
	h->event_ring_off = off;
	off = align_up(off + ferry_ring_bytes(FERRY_EVENT_RING_SLOTS, FERRY_EVENT_SLOT_SIZE), REGION_ALIGN);
	h->port_info_off = off;
	off = align_up(off + (size_t)geo->n_ports * sizeof(struct ferry_port_info), REGION_ALIGN);
	h->port_hw_stats_off = off;
	off = align_up(off + (size_t)geo->n_ports * sizeof(struct ferry_port_hw_stats), REGION_ALIGN);
	h->worker_stats_off = off;
	off = align_up(off + (size_t)geo->n_workers * sizeof(struct ferry_worker_stats), REGION_ALIGN);
	h->flow_stats_off = off;
	off = align_up(off + (size_t)geo->n_workers * geo->max_flows * sizeof(struct ferry_flow_stats),
		       REGION_ALIGN);
	h->table_stats_off = off;
	off = align_up(off + (size_t)geo->n_workers * FERRY_N_TABLES * sizeof(struct ferry_table_stats),
		       REGION_ALIGN);
	return off;
}

/* A segment left by a ferryd that died (kill -9) is replaced; one whose owner still
 * runs is not: two dataplanes on one segment would corrupt each other. */
static int check_existing(const char *name, char *err, size_t errlen)
{
	int fd = shm_open(name, O_RDONLY, 0);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	struct ferry_shm_header h;
	ssize_t n = pread(fd, &h, sizeof(h), 0);
	close(fd);
	if (n == (ssize_t)sizeof(h) && h.magic == FERRY_SHM_MAGIC && h.pid != 0 &&
	    (pid_t)h.pid != getpid() && (kill((pid_t)h.pid, 0) == 0 || errno == EPERM) &&
	    h.state != FERRY_DP_STATE_STOPPING) {
		snprintf(err, errlen, "shared memory %s belongs to a running ferryd (pid %u); "
			 "pick another --shm-name or stop it", name, h.pid);
		return -EEXIST;
	}
	if (shm_unlink(name) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

int ferry_shm_create(struct ferry_shm *shm, const char *name, const struct ferry_shm_geometry *geo,
		     char *err, size_t errlen)
{
	memset(shm, 0, sizeof(*shm));
	if (snprintf(shm->name, sizeof(shm->name), "%s%s", name[0] == '/' ? "" : "/", name) >=
		    (int)sizeof(shm->name) || strchr(shm->name + 1, '/') != NULL) {
		snprintf(err, errlen, "bad --shm-name '%s': one path component, at most 254 bytes", name);
		return -EINVAL;
	}
	int rc = check_existing(shm->name, err, errlen);
	if (rc < 0) {
		if (rc != -EEXIST)
			snprintf(err, errlen, "cannot inspect %s: %s", shm->name, strerror(-rc));
		return rc;
	}

	struct ferry_shm_header layout;
	memset(&layout, 0, sizeof(layout));
	size_t size = ferry_shm_layout(geo, &layout);

	mode_t old = umask(077);
	int fd = shm_open(shm->name, O_RDWR | O_CREAT | O_EXCL, 0600);
	umask(old);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "shm_open(%s): %s", shm->name, strerror(errno));
		return rc;
	}
	if (fchmod(fd, 0600) < 0 || ftruncate(fd, (off_t)size) < 0) {
		rc = -errno;
		snprintf(err, errlen, "sizing %s to %zu bytes: %s", shm->name, size, strerror(errno));
		close(fd);
		shm_unlink(shm->name);
		return rc;
	}
	void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (base == MAP_FAILED) {
		rc = -errno;
		snprintf(err, errlen, "mmap(%s): %s", shm->name, strerror(errno));
		shm_unlink(shm->name);
		return rc;
	}
	memset(base, 0, size); /* touch every page now, not on the packet path */

	uint8_t *b = base;
	shm->base = base;
	shm->size = size;
	shm->geo = *geo;
	shm->hdr = base;
	*shm->hdr = layout;
	shm->hdr->abi_version = FERRY_ABI_VERSION;
	shm->hdr->header_size = sizeof(struct ferry_shm_header);
	shm->hdr->layout_hash = FERRY_LAYOUT_HASH;
	shm->hdr->segment_size = size;
	shm->hdr->pid = (uint32_t)getpid();
	shm->hdr->state = FERRY_DP_STATE_STARTING;
	shm->hdr->n_ports = geo->n_ports;
	shm->hdr->n_workers = geo->n_workers;
	shm->hdr->max_flows = geo->max_flows;

	ferry_ring_init(&shm->req, (struct ferry_ring_ctl *)(b + layout.req_ring_off),
			FERRY_REQ_RING_SLOTS, FERRY_MSG_SLOT_SIZE);
	ferry_ring_init(&shm->resp, (struct ferry_ring_ctl *)(b + layout.resp_ring_off),
			FERRY_RESP_RING_SLOTS, FERRY_MSG_SLOT_SIZE);
	ferry_ring_init(&shm->events, (struct ferry_ring_ctl *)(b + layout.event_ring_off),
			FERRY_EVENT_RING_SLOTS, FERRY_EVENT_SLOT_SIZE);
	shm->port_info = (struct ferry_port_info *)(b + layout.port_info_off);
	shm->port_hw = (struct ferry_port_hw_stats *)(b + layout.port_hw_stats_off);
	shm->workers = (struct ferry_worker_stats *)(b + layout.worker_stats_off);
	shm->flow_stats = (struct ferry_flow_stats *)(b + layout.flow_stats_off);
	shm->table_stats = (struct ferry_table_stats *)(b + layout.table_stats_off);

	/* magic last: a reader that sees it sees a laid-out segment */
	__atomic_store_n(&shm->hdr->magic, FERRY_SHM_MAGIC, __ATOMIC_RELEASE);
	return 0;
}

void ferry_shm_destroy(struct ferry_shm *shm)
{
	if (shm->base == NULL)
		return;
	__atomic_store_n(&shm->hdr->state, FERRY_DP_STATE_STOPPING, __ATOMIC_RELEASE);
	munmap(shm->base, shm->size);
	shm_unlink(shm->name);
	shm->base = NULL;
}
