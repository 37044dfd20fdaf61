/* ferry-ct-replay FILE.pcap [--zone N] [--no-commit] [--no-seq-check]
 * Runs every packet of a capture through ct(commit) as Ferry's tracker does and
 * prints each packet's ct_state in OVS's notation, one line a packet:
 *   <n>  <ct_state>  <proto> <src>:<sport> > <dst>:<dport>  [<why inv>]
 * Time is the capture's, so timeouts apply as they did on the wire. IP fragments are
 * reassembled first; each fragment gets its datagram's state once it is complete
 * (fragments still held at the end print "held"). */
#include <arpa/inet.h>
#include <getopt.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../conntrack/conntrack.h"
#include "../conntrack/ipf.h"
#include "../parse/parse.h"

#define MAX_PENDING 4096

static const char *const invalid_names[] = {
	"l3_short", "l4_short", "l3_csum", "l4_csum", "port_zero", "tcp_flags", "tcp_seq", "no_conn",
	"icmp_type", "fragment", "icmp_error", "not_ip",
};

/* a fragment waiting for its datagram: its line is printed when the state is known */
struct pending {
	unsigned long n;
	char what[192];
	bool done;
	char state[64];
};

static struct pending pend[MAX_PENDING];
static unsigned n_pend;

static void describe(const uint8_t *data, uint32_t len, char *out, size_t outlen)
{
	struct ferry_flow_key k;
	struct ferry_pkt_layout lay;
	ferry_parse_buf(data, len, 0, &k, &lay);
	char s[INET6_ADDRSTRLEN] = "?", d[INET6_ADDRSTRLEN] = "?";
	const char *proto = "ip";
	if (k.eth_type == 0x0800) {
		inet_ntop(AF_INET, k.nw_src, s, sizeof(s));
		inet_ntop(AF_INET, k.nw_dst, d, sizeof(d));
	} else if (k.eth_type == 0x86dd) {
		inet_ntop(AF_INET6, k.nw_src, s, sizeof(s));
		inet_ntop(AF_INET6, k.nw_dst, d, sizeof(d));
	} else {
		snprintf(out, outlen, "eth_type 0x%04x", k.eth_type);
		return;
	}
	switch (k.nw_proto) {
	case 6: proto = "tcp"; break;
	case 17: proto = "udp"; break;
	case 1: proto = "icmp"; break;
	case 58: proto = "icmp6"; break;
	case 132: proto = "sctp"; break;
	default: break;
	}
	if (k.nw_proto == 6 || k.nw_proto == 17 || k.nw_proto == 132)
		snprintf(out, outlen, "%s %s:%u > %s:%u", proto, s, k.tp_src, d, k.tp_dst);
	else if (k.nw_proto == 1 || k.nw_proto == 58)
		snprintf(out, outlen, "%s %s > %s type %u code %u", proto, s, d, k.tp_src, k.tp_dst);
	else
		snprintf(out, outlen, "%s(%u) %s > %s", proto, k.nw_proto, s, d);
}

static void state_of(const struct ferry_ct_result *r, char *out, size_t len)
{
	size_t n = ferry_ct_state_str(r->state, out, len);
	if ((r->state & FERRY_CT_STATE_BIT_INV) && r->invalid_reason < sizeof(invalid_names) / sizeof(invalid_names[0]))
		snprintf(out + n, len > n ? len - n : 0, "  (%s)", invalid_names[r->invalid_reason]);
}

static void flush_pending(void)
{
	unsigned i = 0;
	while (i < n_pend && pend[i].done) {
		printf("%lu\t%s\t%s\n", pend[i].n, pend[i].state, pend[i].what);
		i++;
	}
	memmove(pend, pend + i, (n_pend - i) * sizeof(pend[0]));
	n_pend -= i;
}

/* a datagram given up (overlap, timeout, too big...): its held fragments end here */
static void released(void *arg, void *handle)
{
	(void)arg;
	struct pending *q = handle;
	q->done = true;
	snprintf(q->state, sizeof(q->state), "dropped (datagram abandoned)");
}

/* A line waiting behind fragments still held. When the list is full, the oldest
 * held fragment is given up as "held" so the output can move on. */
static struct pending *pend_push(unsigned long n)
{
	if (n_pend == MAX_PENDING) {
		for (unsigned i = 0; i < n_pend; i++)
			if (!pend[i].done) {
				snprintf(pend[i].state, sizeof(pend[i].state), "held");
				pend[i].done = true;
				break;
			}
		flush_pending();
	}
	struct pending *pd = &pend[n_pend++];
	pd->n = n;
	pd->done = false;
	return pd;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: ferry-ct-replay FILE.pcap [--zone N] [--no-commit] [--no-seq-check]\n"
		   "Prints each packet's ct_state after ct(commit[,zone=N]) in OVS's notation.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "zone", required_argument, NULL, 'z' }, { "no-commit", no_argument, NULL, 'n' },
		{ "no-seq-check", no_argument, NULL, 's' }, { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	struct ferry_ct_action act = { .zone = 0, .flags = FERRY_CT_FLAG_COMMIT };
	bool seq_check = true;
	int c;
	while ((c = getopt_long(argc, argv, "z:nsh", opts, NULL)) != -1) {
		switch (c) {
		case 'z': {
			char *end;
			unsigned long z = strtoul(optarg, &end, 0);
			if (*optarg == 0 || *end || z > 65535) {
				fprintf(stderr, "ferry-ct-replay: --zone: '%s' is not a zone (0..65535)\n", optarg);
				return 2;
			}
			act.zone = (uint16_t)z;
			break;
		}
		case 'n': act.flags = 0; break;
		case 's': seq_check = false; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind + 1 != argc) {
		usage(stderr);
		return 2;
	}
	char err[PCAP_ERRBUF_SIZE];
	pcap_t *pc = pcap_open_offline_with_tstamp_precision(argv[optind], PCAP_TSTAMP_PRECISION_NANO, err);
	if (pc == NULL) {
		fprintf(stderr, "ferry-ct-replay: %s: %s\n", argv[optind], err);
		return 1;
	}
	if (pcap_datalink(pc) != DLT_EN10MB) {
		fprintf(stderr, "ferry-ct-replay: %s: link type %s, only Ethernet captures are read\n", argv[optind],
			pcap_datalink_val_to_name(pcap_datalink(pc)));
		return 1;
	}
	struct ferry_ct *ct = ferry_ct_create(&(struct ferry_ct_config){ .max_conns = 1u << 20 });
	struct ferry_ipf *ipf = ferry_ipf_create(&(struct ferry_ipf_config){ 0 });
	if (ct == NULL || ipf == NULL) {
		fprintf(stderr, "ferry-ct-replay: out of memory\n");
		return 1;
	}
	ferry_ct_set_tcp_seq_check(ct, seq_check);
	ferry_ipf_set_release(ipf, released, NULL);
	struct ferry_ct_thread t;
	ferry_ct_thread_init(ct, &t);
	const struct ferry_ct_action *ap = &act;
	struct pcap_pkthdr *h;
	const u_char *data;
	unsigned long n = 0;
	int rc;
	while ((rc = pcap_next_ex(pc, &h, &data)) == 1) {
		n++;
		uint64_t now = (uint64_t)h->ts.tv_sec * 1000000000ull + (uint64_t)h->ts.tv_usec; /* nano precision */
		struct ferry_flow_key k;
		struct ferry_pkt_layout lay;
		ferry_parse_buf(data, h->caplen, 0, &k, &lay);
		struct ferry_ct_pkt p = { .data = data, .len = h->caplen, .l3_ofs = lay.l3_off, .eth_type = k.eth_type };
		struct ferry_ct_result r;
		char what[160], st[64];
		describe(data, h->caplen, what, sizeof(what));
		if ((k.eth_type == 0x0800 || k.eth_type == 0x86dd) && ferry_ipf_is_fragment(data, h->caplen, lay.l3_off)) {
			struct pending *pd = pend_push(n);
			snprintf(pd->what, sizeof(pd->what), "%s (fragment)", what);
			struct ferry_ipf_frag f = { .data = data, .len = h->caplen, .l3_ofs = lay.l3_off, .zone = act.zone,
						    .handle = pd };
			struct ferry_ipf_done done;
			uint8_t why = 0;
			enum ferry_ipf_verdict v = ferry_ipf_add(ipf, &f, now, &done, &why);
			if (v == FERRY_IPF_DONE) {
				struct ferry_ct_pkt w = { .data = done.whole, .len = done.whole_len, .l3_ofs = done.l3_ofs,
							  .eth_type = k.eth_type, .flags = FERRY_CT_PKT_REASSEMBLED };
				ferry_ct_execute(&t, &w, &ap, 1, now, &r);
				state_of(&r, st, sizeof(st));
				for (unsigned i = 0; i < done.n_handles; i++) {
					struct pending *q = done.handles[i];
					q->done = true;
					snprintf(q->state, sizeof(q->state), "%s", st);
				}
			} else if (v == FERRY_IPF_DROP) {
				/* as OVS: a fragment the reassembler refused meets the tracker as it is (inv) */
				ferry_ct_execute(&t, &p, &ap, 1, now, &r);
				state_of(&r, pd->state, sizeof(pd->state));
				pd->done = true;
			}
			flush_pending();
			continue;
		}
		ferry_ct_execute(&t, &p, &ap, 1, now, &r);
		state_of(&r, st, sizeof(st));
		if (n_pend) {
			/* keep the output in capture order behind fragments still held */
			struct pending *pd = pend_push(n);
			pd->done = true;
			snprintf(pd->what, sizeof(pd->what), "%s", what);
			snprintf(pd->state, sizeof(pd->state), "%s", st);
			flush_pending();
		} else {
			printf("%lu\t%s\t%s\n", n, st, what);
		}
	}
	for (unsigned i = 0; i < n_pend; i++)
		if (!pend[i].done)
			snprintf(pend[i].state, sizeof(pend[i].state), "held"), pend[i].done = true;
	flush_pending();
	if (rc == -1)
		fprintf(stderr, "ferry-ct-replay: %s: %s\n", argv[optind], pcap_geterr(pc));
	pcap_close(pc);
	ferry_ct_thread_fini(&t);
	ferry_ipf_destroy(ipf);
	ferry_ct_destroy(ct);
	return rc == -1 ? 1 : 0;
}
