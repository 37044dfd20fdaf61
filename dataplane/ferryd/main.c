/* ferryd: Ferry's dataplane. EAL arguments first, then "--" and ferryd's own:
 *   ferryd -l 0,1 --vdev net_af_packet0,iface=veth0 ... -- --shm-name ferry0
 * The main lcore serves the control channel and housekeeping; every other lcore
 * is a worker. SIGINT/SIGTERM stop it cleanly (ports stopped, segment unlinked, 0). */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_rcu_qsbr.h>

#include "ferry_proto.h"
#include "../common/clock.h"
#include "../common/log.h"
#include "../ctl/ctl.h"
#include "../ctl/doorbell.h"
#include "../ctl/shm.h"
#include "../classifier/flow_table.h"
#include "../ports/ports.h"
#include "../pipeline/l2.h"
#include "../pipeline/worker.h"
#include "../stt/tunnel.h"
#include "../underlay/neigh.h"

#define FERRY_VERSION "0.2.0"
#define EXPIRY_PERIOD_NS 100000000ull
#define DOORBELL_SERVICE_NS 1000000ull /* a busy main loop still serves the doorbell this often */
#define DOORBELL_RETRY_NS 1000000000ull /* and tries to open one it could not, this often */ /* idle/hard timeouts are checked every 100 ms */
#define NEIGH_AGE_PERIOD_NS 1000000000ull
/* mbufs a worker may hold outside the rings: STT reassembly (its memory cap in
 * mbufs), frames waiting for a neighbour, and fragments in its two reassemblers */
#define WORKER_HELD_MBUFS (FERRY_STT_DEFAULT_MEM_MAX / (RTE_MBUF_DEFAULT_BUF_SIZE + 128u) + FERRY_NEIGH_HOLD + 512u)

struct options {
	const char *shm_name;
	uint32_t max_flows;
	uint16_t nb_rxd;
	uint16_t nb_txd;
	uint32_t pmd_sleep_us;
	uint32_t housekeeping_us;
	uint32_t ctl_idle_min_us;
	uint32_t ctl_idle_max_us;
	uint32_t ct_max;
	uint32_t ct_buckets;
	uint32_t ct_sweep_ms;
};

static volatile bool quit;

static void on_signal(int sig)
{
	(void)sig;
	quit = true;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ferryd [EAL options] -- --shm-name NAME [options]\n"
		"  --shm-name NAME        POSIX shared memory segment /NAME for ferry-control (required)\n"
		"  --max-flows N          flow table size (default %u)\n"
		"  --rxd N / --txd N      rx / tx descriptors per queue (default 1024)\n"
		"  --pmd-sleep-us N       workers nap N us after a run of empty polls (default 0: pure polling)\n"
		"  --housekeeping-us N    heartbeat, link and hw-stats period (default 10000)\n"
		"  --ct-max N             connections the tracker holds at most; memory is reserved\n"
		"                         for N and touched as they come (default %u)\n"
		"  --ct-buckets N         lock buckets of the tracker (default %u)\n"
		"  --ct-sweep-ms N        pause between the cleanup thread's sweeps (default %u)\n"
		"  --version, --help\n"
		"Every lcore but the main one is a worker; every probed ethdev is a port.\n",
		FERRY_DEFAULT_MAX_FLOWS, FERRY_CT_DEFAULT_MAX_CONNS, FERRY_CT_DEFAULT_BUCKETS, FERRY_CT_DEFAULT_SWEEP_MS);
}

static int parse_u32(const char *opt, const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || end == s || v < lo || v > hi) {
		fprintf(stderr, "ferryd: %s: '%s' is not a number in %u..%u\n", opt, s, lo, hi);
		return -1;
	}
	*out = (uint32_t)v;
	return 0;
}

static int parse_options(int argc, char **argv, struct options *o)
{
	enum { O_SHM = 256, O_FLOWS, O_RXD, O_TXD, O_SLEEP, O_HK, O_CT_MAX, O_CT_BUCKETS, O_CT_SWEEP, O_VERSION, O_HELP };
	static const struct option longopts[] = {
		{ "shm-name", required_argument, NULL, O_SHM },
		{ "max-flows", required_argument, NULL, O_FLOWS },
		{ "rxd", required_argument, NULL, O_RXD },
		{ "txd", required_argument, NULL, O_TXD },
		{ "pmd-sleep-us", required_argument, NULL, O_SLEEP },
		{ "housekeeping-us", required_argument, NULL, O_HK },
		{ "ct-max", required_argument, NULL, O_CT_MAX },
		{ "ct-buckets", required_argument, NULL, O_CT_BUCKETS },
		{ "ct-sweep-ms", required_argument, NULL, O_CT_SWEEP },
		{ "version", no_argument, NULL, O_VERSION },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	uint32_t v;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case O_SHM: o->shm_name = optarg; break;
		case O_FLOWS:
			if (parse_u32("--max-flows", optarg, 1, 1u << 24, &o->max_flows)) return -1;
			break;
		case O_RXD:
			if (parse_u32("--rxd", optarg, 32, 32768, &v)) return -1;
			o->nb_rxd = (uint16_t)v;
			break;
		case O_TXD:
			if (parse_u32("--txd", optarg, 32, 32768, &v)) return -1;
			o->nb_txd = (uint16_t)v;
			break;
		case O_SLEEP:
			if (parse_u32("--pmd-sleep-us", optarg, 0, 100000, &o->pmd_sleep_us)) return -1;
			break;
		case O_HK:
			if (parse_u32("--housekeeping-us", optarg, 1000, 1000000, &o->housekeeping_us)) return -1;
			break;
		case O_CT_MAX:
			if (parse_u32("--ct-max", optarg, 1, 1u << 28, &o->ct_max)) return -1;
			break;
		case O_CT_BUCKETS:
			if (parse_u32("--ct-buckets", optarg, 1, 1u << 20, &o->ct_buckets)) return -1;
			break;
		case O_CT_SWEEP:
			if (parse_u32("--ct-sweep-ms", optarg, 1, 3600000, &o->ct_sweep_ms)) return -1;
			break;
		case O_VERSION: printf("ferryd %s (ABI %u)\n", FERRY_VERSION, FERRY_ABI_VERSION); exit(0);
		case O_HELP: usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "ferryd: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	if (o->shm_name == NULL) {
		fprintf(stderr, "ferryd: --shm-name is required (after the EAL options and '--')\n");
		return -1;
	}
	return 0;
}

struct slot_reset_ctx {
	struct ferry_shm *shm;
};

static void reset_flow_slot(void *arg, uint32_t slot)
{
	struct ferry_shm *shm = arg;
	for (uint32_t w = 0; w < shm->geo.n_workers; w++)
		memset(ferry_shm_flow_stats(shm, w, slot), 0, sizeof(struct ferry_flow_stats));
}

static void housekeeping(struct ferry_shm *shm, const struct ferry_ports *ports)
{
	uint64_t now = ferry_monotonic_ns();
	ferry_ports_publish_info(ports, shm->port_info);
	ferry_ports_publish_stats(ports, shm->port_hw, now);
	__atomic_store_n(&shm->hdr->mbufs_available, ferry_ports_mbufs_available(ports), __ATOMIC_RELAXED);
	__atomic_store_n(&shm->hdr->heartbeat_ns, now, __ATOMIC_RELEASE);
	__atomic_store_n(&shm->hdr->heartbeat, shm->hdr->heartbeat + 1, __ATOMIC_RELEASE);
}

int main(int argc, char **argv)
{
	static struct ferry_ports ports;
	static struct ferry_flow_table flows;
	static struct ferry_shm shm;
	static struct ferry_ctl ctl;
	static struct ferry_worker workers[RTE_MAX_LCORE];
	char err[512] = "";
	struct options opt = {
		.max_flows = FERRY_DEFAULT_MAX_FLOWS,
		.nb_rxd = 1024,
		.nb_txd = 1024,
		.housekeeping_us = 10000,
		.ctl_idle_min_us = 50,
		.ctl_idle_max_us = 1000,
	};

	int eal_args = rte_eal_init(argc, argv);
	if (eal_args < 0) {
		fprintf(stderr, "ferryd: EAL init failed: %s\n", rte_strerror(rte_errno));
		return 1;
	}
	argc -= eal_args;
	argv += eal_args;
	argv[0] = "ferryd";
	if (parse_options(argc, argv, &opt) < 0) {
		rte_eal_cleanup();
		return 2;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);

	uint16_t n_workers = (uint16_t)rte_lcore_count() - 1;
	if (n_workers == 0 || n_workers > FERRY_MAX_WORKERS) {
		fprintf(stderr, "ferryd: needs 1..%u worker lcores besides the main lcore (e.g. -l 0,1); "
			"got %u\n", FERRY_MAX_WORKERS, n_workers);
		rte_eal_cleanup();
		return 1;
	}

	int rc = 1;
	struct ferry_ports_config pcfg = {
		.n_workers = n_workers, .nb_rxd = opt.nb_rxd, .nb_txd = opt.nb_txd, .extra_mbufs = (uint32_t)n_workers * WORKER_HELD_MBUFS,
	};
	if (ferry_ports_setup(&ports, &pcfg, err, sizeof(err)) != 0)
		goto fail_ports;

	struct ferry_shm_geometry geo = {
		.n_ports = ports.n_ports, .n_workers = n_workers, .max_flows = opt.max_flows,
	};
	/* ferry-control rings when it has put requests on the ring, and is rung when
	 * their answers are out: neither side waits out a nap (doorbell.h). Open before
	 * the segment exists, so a control that attaches finds it. (Without it, ferryd
	 * works on: the control channel is polled.) */
	struct ferry_doorbell bell;
	if (ferry_doorbell_open(&bell, NULL, opt.shm_name, err, sizeof(err)) != 0)
		FERRY_LOG(WARNING, "%s: requests are noticed at the next poll only", err);
	if (ferry_shm_create(&shm, opt.shm_name, &geo, err, sizeof(err)) != 0) {
		ferry_doorbell_close(&bell);
		goto fail_ports;
	}
	shm.hdr->tsc_hz = rte_get_tsc_hz();
	shm.hdr->start_ns = ferry_monotonic_ns();
	shm.hdr->housekeeping_us = opt.housekeeping_us;
	for (int s = 0; s < FERRY_MAX_SOCKETS; s++)
		if (ports.pool[s] != NULL)
			shm.hdr->mbufs_total += ports.pool[s]->size;

	size_t qsz = rte_rcu_qsbr_get_memsize(n_workers);
	struct rte_rcu_qsbr *qsv = rte_zmalloc("ferry_rcu", qsz, RTE_CACHE_LINE_SIZE);
	if (qsv == NULL || rte_rcu_qsbr_init(qsv, n_workers) != 0) {
		snprintf(err, sizeof(err), "RCU state: out of memory");
		goto fail_shm;
	}
	if (ferry_flow_table_init(&flows, opt.max_flows, ports.n_ports, qsv, reset_flow_slot, &shm) != 0) {
		snprintf(err, sizeof(err), "flow table of %u flows: out of memory (raise EAL -m or lower "
			 "--max-flows)", opt.max_flows);
		goto fail_rcu;
	}
	ferry_ctl_init(&ctl, &shm, &flows, workers, n_workers);
	/* the connection tracker: its memory is reserved here and touched as connections
	 * come; its cleanup thread is an ordinary thread, not an lcore */
	struct ferry_ct *ct = ferry_ct_create(&(struct ferry_ct_config){
		.max_conns = opt.ct_max, .n_buckets = opt.ct_buckets, .sweep_interval_ms = opt.ct_sweep_ms,
		.cleanup_thread = true });
	if (ct == NULL) {
		snprintf(err, sizeof(err), "connection tracker of %u entries: out of memory (lower --ct-max)",
			 opt.ct_max ? opt.ct_max : FERRY_CT_DEFAULT_MAX_CONNS);
		goto fail_flows;
	}
	ferry_ctl_attach_ct(&ctl, ct);
	struct ferry_l2 *l2 = rte_zmalloc("ferry_l2", sizeof(*l2), RTE_CACHE_LINE_SIZE);
	if (l2 == NULL) {
		snprintf(err, sizeof(err), "MAC learning table: out of memory");
		goto fail_ct;
	}
	/* tunnel ports (none until configured), the underlay's neighbours and the STT
	 * reassembly settings every worker follows */
	static struct ferry_tunnel_table tunnels;
	static struct ferry_stt_settings stt_settings = {
		.version = 1, .reasm_timeout_ms = FERRY_STT_DEFAULT_TIMEOUT_MS, .reasm_mem_max = FERRY_STT_DEFAULT_MEM_MAX };
	struct ferry_neigh_table *neigh = ferry_neigh_create((int)rte_socket_id());
	if (neigh == NULL || ferry_tunnel_table_init(&tunnels, ports.n_ports, qsv) != 0) {
		snprintf(err, sizeof(err), "tunnel and neighbour tables: out of memory");
		ferry_neigh_destroy(neigh);
		rte_free(l2);
		goto fail_ct;
	}
	for (uint16_t p = 0; p < ports.n_ports; p++) {
		rte_eth_macaddr_get(p, &tunnels.underlay[p].mac);
		tunnels.underlay[p].tx_offloads = ports.port[p].tx_offloads;
	}
	ferry_ctl_attach_tunnels(&ctl, &tunnels, neigh, &stt_settings);

	/* rx queue q of every port goes to worker q % n_workers */
	unsigned lcore, wi = 0;
	RTE_LCORE_FOREACH_WORKER(lcore) {
		struct ferry_worker *w = &workers[wi];
		w->id = (uint16_t)wi;
		w->txq = (uint16_t)wi;
		w->lcore = lcore;
		w->n_ports = ports.n_ports;
		w->sleep_us = opt.pmd_sleep_us;
		w->stats = &shm.workers[wi];
		w->flow_stats = ferry_shm_flow_stats(&shm, wi, 0);
		w->flows = &flows;
		w->table_stats = &shm.table_stats[(size_t)wi * FERRY_N_TABLES];
		w->l2 = l2;
		w->ct = ct;
		w->tunnels = &tunnels;
		w->neigh = neigh;
		w->stt_settings = &stt_settings;
		for (uint16_t p = 0; p < ports.n_ports; p++)
			w->port_tx_offloads[p] = ports.port[p].tx_offloads;
		w->qsv = qsv;
		w->quit = &quit;
		int sock = (int)rte_lcore_to_socket_id(lcore);
		w->pool = ports.pool[sock < FERRY_MAX_SOCKETS && ports.pool[sock] ? sock : 0];
		ferry_tsc_clock_init(&w->clock);
		if (ferry_worker_init(w, sock) != 0) {
			snprintf(err, sizeof(err), "worker %u: exact-match cache of %u entries: out of memory "
				 "(raise EAL -m)", wi, FERRY_EMC_ENTRIES);
			goto fail_workers;
		}
		wi++;
	}
	for (uint16_t p = 0; p < ports.n_ports; p++) {
		for (uint16_t q = 0; q < ports.port[p].n_rxq; q++) {
			struct ferry_worker *w = &workers[q % n_workers];
			if (w->n_rxq == FERRY_MAX_RXQ_PER_WORKER) {
				snprintf(err, sizeof(err), "worker %u would poll more than %u queues", w->id,
					 FERRY_MAX_RXQ_PER_WORKER);
				goto fail_workers;
			}
			w->rxq[w->n_rxq++] = (struct ferry_rxq){ .port = p, .queue = q };
		}
	}

	if (ferry_ports_start(&ports, err, sizeof(err)) != 0)
		goto fail_workers;
	housekeeping(&shm, &ports);

	for (unsigned i = 0; i < n_workers; i++)
		rte_eal_remote_launch(ferry_worker_main, &workers[i], workers[i].lcore);

	for (uint16_t p = 0; p < ports.n_ports; p++) {
		const struct ferry_port *pt = &ports.port[p];
		printf("ferryd: port %u %s (%s) rxq %u txq %u rxd %u txd %u%s\n", p, pt->name,
		       pt->info.driver_name, pt->n_rxq, pt->n_txq, pt->nb_rxd, pt->nb_txd,
		       pt->rss ? " rss" : "");
	}
	__atomic_store_n(&shm.hdr->state, FERRY_DP_STATE_RUNNING, __ATOMIC_RELEASE);
	printf("ferryd: running: %u port(s), %u worker(s), shared memory %s (%zu bytes), pid %d\n",
	       ports.n_ports, n_workers, shm.name, shm.size, getpid());
	fflush(stdout);

	uint64_t hk_period = (uint64_t)opt.housekeeping_us * 1000;
	uint64_t next_hk = ferry_monotonic_ns() + hk_period;
	uint64_t next_expiry = ferry_monotonic_ns() + EXPIRY_PERIOD_NS;
	uint64_t next_neigh_age = ferry_monotonic_ns() + NEIGH_AGE_PERIOD_NS;
	/* The main lcore naps between polls of the request ring: briefly while requests
	 * are flowing, up to ctl_idle_max_us when the channel is quiet, so an idle control
	 * plane does not keep waking the core a worker may share with it. */
	uint32_t idle_us = opt.ctl_idle_min_us;
	uint64_t next_bell = 0;
	while (!quit) {
		uint32_t handled = ferry_ctl_poll(&ctl, UINT32_MAX);
		if (handled != 0)
			ferry_doorbell_ring(&bell);
		uint64_t now = ferry_monotonic_ns();
		if (now >= next_bell) {
			/* a busy loop never naps: peers are taken in and heard here too; a
			 * doorbell that could not be opened (a predecessor still held it) is
			 * tried again, once a second */
			if (bell.listen_fd >= 0) {
				if (handled != 0)
					(void)ferry_doorbell_wait(&bell, 0);
				next_bell = now + DOORBELL_SERVICE_NS;
			} else {
				if (ferry_doorbell_open(&bell, NULL, opt.shm_name, err, sizeof(err)) == 0)
					FERRY_LOG(INFO, "doorbell %s open", bell.path);
				next_bell = now + DOORBELL_RETRY_NS;
			}
		}
		handled += ferry_ctl_drain_punts(&ctl, now);
		handled += ferry_ctl_drain_ct(&ctl, now);
		if (now >= next_hk) {
			housekeeping(&shm, &ports);
			next_hk = now + hk_period;
		}
		if (now >= next_expiry) {
			ferry_ctl_expire(&ctl, now);
			next_expiry = now + EXPIRY_PERIOD_NS;
		}
		if (now >= next_neigh_age) {
			ferry_neigh_age(neigh, now);
			next_neigh_age = now + NEIGH_AGE_PERIOD_NS;
		}
		if (handled != 0) {
			idle_us = opt.ctl_idle_min_us;
			continue;
		}
		if (ferry_doorbell_wait(&bell, idle_us))
			idle_us = opt.ctl_idle_min_us;
		else
			idle_us = idle_us * 2 > opt.ctl_idle_max_us ? opt.ctl_idle_max_us : idle_us * 2;
	}

	printf("ferryd: stopping\n");
	/* first: a successor starting now finds the doorbell's name free */
	ferry_doorbell_close(&bell);
	__atomic_store_n(&shm.hdr->state, FERRY_DP_STATE_STOPPING, __ATOMIC_RELEASE);
	rte_eal_mp_wait_lcore();
	ferry_ctl_drain_punts(&ctl, ferry_monotonic_ns()); /* give back punted mbufs */
	ferry_ports_stop(&ports);
	rc = 0;
fail_workers:
	for (unsigned i = 0; i < n_workers; i++)
		ferry_worker_fini(&workers[i]);
	ferry_tunnel_table_fini(&tunnels);
	ferry_neigh_destroy(neigh);
	rte_free(l2);
fail_ct:
	ferry_ct_thread_fini(&ctl.ct_thread);
	ferry_ct_destroy(ct);
fail_flows:
	ferry_flow_table_fini(&flows);
fail_rcu:
	rte_free(qsv);
fail_shm:
	ferry_doorbell_close(&bell);
	ferry_shm_destroy(&shm);
fail_ports:
	if (rc != 0) {
		fprintf(stderr, "ferryd: %s\n", err);
		if (ports.n_ports)
			ferry_ports_stop(&ports);
	}
	rte_eal_cleanup();
	return rc;
}
