/* The control channel's doorbell (doorbell.h). */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include "doorbell.h"

static void nap(uint32_t us)
{
	struct timespec ts = { .tv_sec = us / 1000000u, .tv_nsec = (long)(us % 1000000u) * 1000 };
	nanosleep(&ts, NULL);
}

/* Is something answering at a? (a live ferryd: leave its socket alone) */
static bool answered(const struct sockaddr_un *a)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	bool up = connect(fd, (const struct sockaddr *)a, sizeof(*a)) == 0;
	close(fd);
	return up;
}

int ferry_doorbell_open(struct ferry_doorbell *d, const char *dir, const char *shm_name, char *err, size_t errlen)
{
	memset(d, 0, sizeof(*d));
	d->listen_fd = -1;
	for (unsigned i = 0; i < FERRY_DOORBELL_MAX_PEERS; i++)
		d->peer_fd[i] = -1;
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int n = snprintf(a.sun_path, sizeof(a.sun_path), "%s%s%s", dir ? dir : FERRY_DOORBELL_DIR, shm_name,
			 FERRY_DOORBELL_SUFFIX);
	if (n < 0 || (size_t)n >= sizeof(a.sun_path) || (size_t)n >= sizeof(d->path)) {
		snprintf(err, errlen, "doorbell: path too long for a unix socket (%d bytes): %s%s%s", n,
			 dir ? dir : FERRY_DOORBELL_DIR, shm_name, FERRY_DOORBELL_SUFFIX);
		return -1;
	}
	if (answered(&a)) {
		snprintf(err, errlen, "doorbell: %s: another ferryd answers on it", a.sun_path);
		return -1;
	}
	(void)unlink(a.sun_path); /* a dead ferryd's */
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "doorbell: socket: %s", strerror(errno));
		return -1;
	}
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, FERRY_DOORBELL_MAX_PEERS) != 0) {
		snprintf(err, errlen, "doorbell: %s: %s", a.sun_path, strerror(errno));
		close(fd);
		return -1;
	}
	struct stat st;
	if (stat(a.sun_path, &st) == 0) {
		d->dev = st.st_dev;
		d->ino = st.st_ino;
	}
	memcpy(d->path, a.sun_path, (size_t)n + 1);
	d->listen_fd = fd;
	return 0;
}

void ferry_doorbell_close(struct ferry_doorbell *d)
{
	for (unsigned i = 0; i < FERRY_DOORBELL_MAX_PEERS; i++)
		if (d->peer_fd[i] >= 0) {
			close(d->peer_fd[i]);
			d->peer_fd[i] = -1;
		}
	if (d->listen_fd >= 0) {
		/* only our own socket file: a successor may have bound the name since */
		struct stat st;
		if (stat(d->path, &st) == 0 && st.st_dev == d->dev && st.st_ino == d->ino)
			(void)unlink(d->path);
		close(d->listen_fd);
	}
	d->listen_fd = -1;
}

static void accept_peers(struct ferry_doorbell *d)
{
	for (;;) {
		int fd = accept4(d->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			/* EAGAIN: no more. Anything else (out of descriptors): the listening
			 * socket stays readable; nap rather than spin on it */
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				nap(1000);
			return;
		}
		struct ucred cred;
		socklen_t cl = sizeof(cred);
		unsigned slot = FERRY_DOORBELL_MAX_PEERS;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0 &&
		    (cred.uid == 0 || cred.uid == geteuid()))
			for (slot = 0; slot < FERRY_DOORBELL_MAX_PEERS && d->peer_fd[slot] >= 0; slot++)
				;
		if (slot == FERRY_DOORBELL_MAX_PEERS) {
			d->peers_refused++;
			close(fd);
			continue;
		}
		d->peer_fd[slot] = fd;
		/* a first ring: the peer knows it was taken in (until then it polls) */
		static const char hello = 1;
		if (send(fd, &hello, 1, MSG_DONTWAIT | MSG_NOSIGNAL) == 1)
			d->rings_sent++;
	}
}

/* Reads what peer i wrote; closes it at its end. Returns whether it had rung. */
static bool drain_peer(struct ferry_doorbell *d, unsigned i)
{
	char buf[256];
	bool rang = false;
	for (;;) {
		ssize_t r = recv(d->peer_fd[i], buf, sizeof(buf), MSG_DONTWAIT);
		if (r > 0) {
			rang = true;
			continue;
		}
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return rang;
		close(d->peer_fd[i]); /* 0: the peer went away */
		d->peer_fd[i] = -1;
		return rang;
	}
}

bool ferry_doorbell_wait(struct ferry_doorbell *d, uint32_t timeout_us)
{
	if (d->listen_fd < 0) {
		nap(timeout_us);
		return false;
	}
	struct pollfd pf[1 + FERRY_DOORBELL_MAX_PEERS];
	unsigned owner[1 + FERRY_DOORBELL_MAX_PEERS];
	nfds_t n = 0;
	pf[n] = (struct pollfd){ .fd = d->listen_fd, .events = POLLIN };
	owner[n++] = FERRY_DOORBELL_MAX_PEERS;
	for (unsigned i = 0; i < FERRY_DOORBELL_MAX_PEERS; i++)
		if (d->peer_fd[i] >= 0) {
			pf[n] = (struct pollfd){ .fd = d->peer_fd[i], .events = POLLIN };
			owner[n++] = i;
		}
	struct timespec ts = { .tv_sec = timeout_us / 1000000u, .tv_nsec = (long)(timeout_us % 1000000u) * 1000 };
	int r = ppoll(pf, n, &ts, NULL);
	if (r <= 0)
		return false;
	bool rang = false;
	for (nfds_t k = 0; k < n; k++) {
		if (pf[k].revents == 0)
			continue;
		if (owner[k] == FERRY_DOORBELL_MAX_PEERS)
			accept_peers(d);
		else
			rang |= drain_peer(d, owner[k]);
	}
	d->wakes += rang;
	return rang;
}

void ferry_doorbell_ring(struct ferry_doorbell *d)
{
	static const char one = 1;
	for (unsigned i = 0; i < FERRY_DOORBELL_MAX_PEERS; i++) {
		if (d->peer_fd[i] < 0)
			continue;
		ssize_t r = send(d->peer_fd[i], &one, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (r == 1)
			d->rings_sent++;
		else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			close(d->peer_fd[i]); /* EPIPE and the like: gone */
			d->peer_fd[i] = -1;
		}
	}
}
