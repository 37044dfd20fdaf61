/* EAL for unit tests: no hugepages, no PCI, a prefix of our own, optional vdevs. */
#ifndef FERRY_EAL_TEST_H
#define FERRY_EAL_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <dirent.h>
#include <string.h>
#include <unistd.h>
#include <rte_eal.h>

static char ferry_test_runtime_dir[4096];

/* EAL leaves its runtime directory behind even with --no-shconf; a test removes its own. */
static inline void ferry_test_remove_runtime_dir(void)
{
	DIR *d = opendir(ferry_test_runtime_dir);
	if (d == NULL)
		return;
	struct dirent *e;
	char path[4400];
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", ferry_test_runtime_dir, e->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(ferry_test_runtime_dir);
}

static inline void ferry_test_eal_init(const char *name, const char *const *vdevs, int n_vdevs)
{
	char prefix[64];
	snprintf(prefix, sizeof(prefix), "ferry-test-%s-%d", name, getpid());
	const char *argv[32] = { "test", "--no-huge", "-m", "256", "--no-pci", "--no-shconf",
				 "--log-level", "error", "-l", "0", "--file-prefix", prefix };
	int argc = 12;
	for (int i = 0; i < n_vdevs && argc < 30; i++) {
		argv[argc++] = "--vdev";
		argv[argc++] = vdevs[i];
	}
	if (rte_eal_init(argc, (char **)argv) < 0) {
		fprintf(stderr, "EAL init failed\n");
		exit(1);
	}
	snprintf(ferry_test_runtime_dir, sizeof(ferry_test_runtime_dir), "%s", rte_eal_get_runtime_dir());
	atexit(ferry_test_remove_runtime_dir);
}

#endif
