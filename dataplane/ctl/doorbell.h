/* The control channel's doorbell: the rings in shared memory carry every message; this
 * only wakes the side that sleeps, as a virtio queue's kick and call eventfds do.
 *
 * ferryd listens on the unix socket /dev/shm/<shm name>.doorbell, beside the segment
 * (whoever can map the segment sees it, in any network namespace: a container that
 * mounts /dev/shm for the segment gets the doorbell with it). A ferry-control connected
 * to it writes a byte after it puts requests on the ring, and ferryd, napping in
 * ferry_doorbell_wait between polls, wakes at once instead of at the end of its nap;
 * ferryd writes a byte after it posts responses, and ferry-control reads its ring then
 * instead of polling on a timer. A lost or absent doorbell costs only latency: both
 * sides keep polling, the doorbell just shortens the naps. A socket file left by a
 * ferryd that died is replaced; one a live ferryd answers on is not.
 *
 * Only a peer of ferryd's own uid (or root) is kept: the rings themselves are guarded by
 * the segment's mode, and a stranger must not take the few places either. */
#ifndef FERRY_DOORBELL_H
#define FERRY_DOORBELL_H

#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>

#define FERRY_DOORBELL_DIR "/dev/shm/"
#define FERRY_DOORBELL_SUFFIX ".doorbell"
#define FERRY_DOORBELL_MAX_PEERS 4

struct ferry_doorbell {
	int listen_fd;                          /* -1: no doorbell (naps only) */
	char path[108];                         /* the socket file, unlinked at close */
	unsigned long dev, ino;                 /* ... if it is still the one bound here */
	int peer_fd[FERRY_DOORBELL_MAX_PEERS];  /* -1: free */
	uint64_t rings_sent, wakes, peers_refused;
};

/* Listens for shm_name's control (in dir, FERRY_DOORBELL_DIR when NULL). Returns 0, or
 * -1 with err filled (then d still works as a plain nap). */
int ferry_doorbell_open(struct ferry_doorbell *d, const char *dir, const char *shm_name, char *err, size_t errlen);
void ferry_doorbell_close(struct ferry_doorbell *d);

/* Naps up to timeout_us, less when a peer rings (or connects); takes in new peers (each
 * gets a first ring, so it knows it will hear from ferryd) and drains what peers wrote.
 * 0: only looks. Returns true when woken by a ring. */
bool ferry_doorbell_wait(struct ferry_doorbell *d, uint32_t timeout_us);

/* Tells every peer there is something on the rings for it. Never blocks: a peer that
 * has not read the last ring yet will read the rings anyway. */
void ferry_doorbell_ring(struct ferry_doorbell *d);

#endif
