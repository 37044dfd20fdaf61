/* The control channel's doorbell (doorbell.h): a peer's ring wakes ferryd's wait, ferryd's
 * ring reaches its peers, a peer that leaves frees its place, a stranger (another uid) is
 * refused, a second ferryd on the same segment name gets a clear error while a dead one's
 * socket file is replaced, and with no doorbell the wait is a plain nap. Sockets go in a
 * directory of the test's own. */
#include <errno.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include "../common/ftest.h"
#include "doorbell.h"

static char dir[64], name[64];

static void sock_addr(struct sockaddr_un *a)
{
	*a = (struct sockaddr_un){ .sun_family = AF_UNIX };
	snprintf(a->sun_path, sizeof(a->sun_path), "%.40s%.40s%s", dir, name, FERRY_DOORBELL_SUFFIX);
}

static int peer_connect(void)
{
	struct sockaddr_un a;
	sock_addr(&a);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static unsigned peers(const struct ferry_doorbell *d)
{
	unsigned n = 0;
	for (unsigned i = 0; i < FERRY_DOORBELL_MAX_PEERS; i++)
		n += d->peer_fd[i] >= 0;
	return n;
}

/* waits (up to 50 x 20 ms) until one wait returns a ring */
static bool rung(struct ferry_doorbell *d)
{
	for (int i = 0; i < 50; i++)
		if (ferry_doorbell_wait(d, 20000))
			return true;
	return false;
}

static void test_ring_both_ways(void)
{
	struct ferry_doorbell d;
	char err[160];
	CHECK_EQ(ferry_doorbell_open(&d, dir, name, err, sizeof(err)), 0);
	int p = peer_connect();
	CHECK(p >= 0);
	CHECK(!ferry_doorbell_wait(&d, 20000)); /* accepts it: a connection is not a ring */
	CHECK_EQ(peers(&d), 1);
	char hello = 0;
	CHECK_EQ(read(p, &hello, 1), 1); /* taken in: the first ring says so */
	CHECK_EQ(d.rings_sent, 1);
	CHECK_EQ(write(p, "\1\1\1", 3), 3);     /* three rings before ferryd looks: one wake */
	CHECK(rung(&d));
	CHECK(!ferry_doorbell_wait(&d, 1000));  /* all of them drained */
	CHECK_EQ(d.wakes, 1);

	ferry_doorbell_ring(&d);
	char b = 0;
	CHECK_EQ(read(p, &b, 1), 1);
	CHECK_EQ(b, 1);
	CHECK_EQ(d.rings_sent, 2);

	close(p); /* the peer leaves: its place is free again */
	for (int i = 0; i < 50 && peers(&d) > 0; i++)
		ferry_doorbell_wait(&d, 20000);
	CHECK_EQ(peers(&d), 0);
	ferry_doorbell_ring(&d); /* to nobody: nothing happens */
	CHECK_EQ(d.rings_sent, 2);
	ferry_doorbell_close(&d);
	CHECK(peer_connect() < 0); /* gone with its ferryd */
}

static void test_places_and_strangers(void)
{
	struct ferry_doorbell d;
	char err[160];
	CHECK_EQ(ferry_doorbell_open(&d, dir, name, err, sizeof(err)), 0);
	int fds[FERRY_DOORBELL_MAX_PEERS + 1];
	for (unsigned i = 0; i <= FERRY_DOORBELL_MAX_PEERS; i++)
		fds[i] = peer_connect();
	for (int i = 0; i < 10; i++)
		ferry_doorbell_wait(&d, 10000);
	CHECK_EQ(peers(&d), FERRY_DOORBELL_MAX_PEERS);
	CHECK_EQ(d.peers_refused, 1); /* one too many */
	for (unsigned i = 0; i <= FERRY_DOORBELL_MAX_PEERS; i++)
		close(fds[i]);
	for (int i = 0; i < 50 && peers(&d) > 0; i++)
		ferry_doorbell_wait(&d, 20000);
	CHECK_EQ(peers(&d), 0);

	if (geteuid() == 0) {
		/* a process of another uid connects and rings: refused, no wake. (ferryd's
		 * socket file is not writable by others, so such a process cannot even
		 * connect; opened to all here to reach the check behind it.) */
		struct sockaddr_un sa;
		sock_addr(&sa);
		CHECK(chmod(sa.sun_path, 0777) == 0);
		pid_t pid = fork();
		if (pid == 0) {
			if (setuid(65534) != 0)
				_exit(2);
			int p = peer_connect();
			if (p < 0)
				_exit(3);
			(void)send(p, "\1", 1, MSG_NOSIGNAL); /* may find it closed already */
			sleep(1);
			_exit(0);
		}
		bool woke = false;
		for (int i = 0; i < 20; i++)
			woke |= ferry_doorbell_wait(&d, 20000);
		int st = 0;
		waitpid(pid, &st, 0);
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
		CHECK(!woke);
		CHECK_EQ(d.peers_refused, 2);
		CHECK_EQ(peers(&d), 0);
	}
	ferry_doorbell_close(&d);
}

static void test_name_taken_and_no_doorbell(void)
{
	struct ferry_doorbell a, b;
	char err[160] = "";
	CHECK_EQ(ferry_doorbell_open(&a, dir, name, err, sizeof(err)), 0);
	CHECK_EQ(ferry_doorbell_open(&b, dir, name, err, sizeof(err)), -1);
	CHECK(strstr(err, "another ferryd answers") != NULL);
	CHECK(strstr(err, name) != NULL);
	CHECK(peer_connect() >= 0); /* a's socket was left alone */
	/* b works on as a nap */
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK(!ferry_doorbell_wait(&b, 2000));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CHECK((t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec) >= 2000000L);
	ferry_doorbell_ring(&b); /* no peers, no socket: nothing */
	ferry_doorbell_close(&b);
	/* a ferryd stopping while its successor already has the name: the successor's
	 * socket file stays */
	struct sockaddr_un sa;
	sock_addr(&sa);
	CHECK_EQ(unlink(sa.sun_path), 0);
	CHECK_EQ(ferry_doorbell_open(&b, dir, name, err, sizeof(err)), 0);
	ferry_doorbell_close(&a);
	CHECK(access(sa.sun_path, F_OK) == 0);
	CHECK(peer_connect() >= 0);
	ferry_doorbell_close(&b);
	CHECK(access(sa.sun_path, F_OK) != 0); /* unlinked at close */

	/* a dead ferryd's socket file: bound, never unlinked, nobody listening */
	int dead = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK(bind(dead, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	close(dead);
	CHECK(access(sa.sun_path, F_OK) == 0);
	CHECK_EQ(ferry_doorbell_open(&a, dir, name, err, sizeof(err)), 0);
	int p = peer_connect();
	CHECK(p >= 0);
	CHECK(p >= 0 && write(p, "\1", 1) == 1);
	CHECK(rung(&a));
	close(p);
	ferry_doorbell_close(&a);

	char longname[200];
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	CHECK_EQ(ferry_doorbell_open(&a, dir, longname, err, sizeof(err)), -1);
	CHECK(strstr(err, "too long") != NULL);
	ferry_doorbell_close(&a);
}

int main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/ferry-doorbell-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return 1;
	chmod(dir, 0755); /* the stranger must reach the socket to be refused by ferryd */
	strcat(dir, "/");
	snprintf(name, sizeof(name), "test-%d", (int)getpid());
	RUN(test_ring_both_ways);
	RUN(test_places_and_strangers);
	RUN(test_name_taken_and_no_doorbell);
	dir[strlen(dir) - 1] = 0;
	rmdir(dir);
	return ftest_finish();
}
