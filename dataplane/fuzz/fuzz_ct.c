/* libFuzzer: the connection tracker and the fragment reassembler on arbitrary input.
 * The input is cut into packets (2-byte length prefixes); each goes through the
 * reassembler when it is a fragment and through ct(commit) in bursts, with the time
 * and the zone taken from the input too, so TCP state machines, ICMP errors, limits
 * and expiry all see hostile sequences. Beyond not crashing (ASan, UBSan): the count
 * never exceeds the limit, a result always has trk, and the table walks agree. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "../conntrack/conntrack.h"
#include "../conntrack/ipf.h"

static struct ferry_ct *ct;
static struct ferry_ipf *ipf;
static struct ferry_ct_thread t;

static void released(void *arg, void *handle)
{
	(void)arg;
	(void)handle;
}

static int count_entry(void *arg, const struct ferry_ct_entry *e)
{
	(void)e;
	(*(uint64_t *)arg)++;
	return 0;
}

/* The rewrite the tracker asked for, on a copy (the input is read-only), at L4
 * offsets right and wrong: the rewriter must refuse what does not fit, never write
 * outside the packet */
static void rewrite_copy(const struct ferry_ct_pkt *p, const struct ferry_nat_rewrite *rw, uint16_t salt)
{
	static uint8_t copy[65536 + 64];
	if (p->len > sizeof(copy))
		return;
	memcpy(copy, p->data, p->len);
	uint16_t l4 = (uint16_t)(p->l3_ofs + ((p->eth_type == 0x86dd) ? 40 : 20) + (salt & 3) * 4);
	(void)ferry_nat_rewrite(copy, p->len, p->l3_ofs, l4, salt & 0x3, rw);
	(void)ferry_nat_rewrite(copy, p->len, p->l3_ofs, 0, 0, rw);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (ct == NULL) {
		ct = ferry_ct_create(&(struct ferry_ct_config){ .max_conns = 64, .n_buckets = 4, .events = true });
		ipf = ferry_ipf_create(&(struct ferry_ipf_config){ .max_frags = 32, .max_bytes = 65536 });
		ferry_ipf_set_release(ipf, released, NULL);
		ferry_ct_thread_init(ct, &t);
	}
	uint64_t now = 1000000000ull;
	struct ferry_ct_pkt pkts[8];
	struct ferry_ct_action acts[8];
	const struct ferry_ct_action *ap[8];
	struct ferry_ct_result res[8];
	static uint8_t whole[8][65536 + 64];
	unsigned n = 0;
	size_t off = 0;
	while (off + 4 <= size) {
		uint16_t len = (uint16_t)(data[off] | data[off + 1] << 8);
		uint8_t ctl = data[off + 2], zone = data[off + 3];
		off += 4;
		if (len > size - off)
			len = (uint16_t)(size - off);
		const uint8_t *f = data + off;
		off += len;
		now += (uint64_t)(ctl >> 4) * 7000000000ull; /* up to 105 s between packets */
		acts[n] = (struct ferry_ct_action){ .zone = zone & 3, .flags = (ctl & 1) ? FERRY_CT_FLAG_COMMIT : 0 };
		if (ctl & 2)
			acts[n].flags |= FERRY_CT_FLAG_FORCE;
		acts[n].mark = zone;
		acts[n].mark_mask = (ctl & 4) ? 0xff : 0;
		/* NAT: zone's bits 2-3 pick none, ct(nat), SNAT to two addresses and four
		 * ports (exhausted soon), or DNAT to one address and port */
		switch ((zone >> 2) & 3) {
		case 1:
			acts[n].flags |= FERRY_CT_FLAG_NAT;
			break;
		case 2:
			acts[n].flags |= FERRY_CT_FLAG_NAT | FERRY_CT_FLAG_NAT_SRC |
					 ((zone & 16) ? FERRY_CT_FLAG_NAT_PERSISTENT : 0);
			acts[n].nat_is_ipv6 = (ctl & 8) != 0;
			acts[n].nat_addr_min[0] = acts[n].nat_addr_max[0] = 10;
			acts[n].nat_addr_min[3] = 1;
			acts[n].nat_addr_max[3] = 2;
			acts[n].nat_port_min = 1000;
			acts[n].nat_port_max = 1003;
			break;
		case 3:
			acts[n].flags |= FERRY_CT_FLAG_NAT | FERRY_CT_FLAG_NAT_DST;
			acts[n].nat_is_ipv6 = (ctl & 8) != 0;
			acts[n].nat_addr_min[0] = 10;
			acts[n].nat_addr_min[3] = 5;
			acts[n].nat_port_min = acts[n].nat_port_max = 80;
			break;
		default:
			break;
		}
		ap[n] = &acts[n];
		pkts[n] = (struct ferry_ct_pkt){ .data = f, .len = len, .l3_ofs = 14,
						  .eth_type = (ctl & 8) ? 0x86dd : 0x0800 };
		if (len > 14 && ferry_ipf_is_fragment(f, len, 14)) {
			struct ferry_ipf_frag fr = { .data = f, .len = len, .l3_ofs = 14, .zone = zone & 3, .handle = NULL };
			struct ferry_ipf_done done;
			uint8_t why;
			if (ferry_ipf_add(ipf, &fr, now, &done, &why) != FERRY_IPF_DONE)
				continue;
			if (done.whole_len > sizeof(whole[0]))
				abort();
			memcpy(whole[n], done.whole, done.whole_len);
			pkts[n] = (struct ferry_ct_pkt){ .data = whole[n], .len = done.whole_len, .l3_ofs = done.l3_ofs,
							  .eth_type = pkts[n].eth_type, .flags = FERRY_CT_PKT_REASSEMBLED };
		}
		if (++n == 8) {
			ferry_ct_execute(&t, pkts, ap, n, now, res);
			for (unsigned i = 0; i < n; i++) {
				if (!(res[i].state & FERRY_CT_STATE_BIT_TRK))
					abort();
				if (t.nat_mask & (1ull << i))
					rewrite_copy(&pkts[i], &t.rw[i], ap[i]->zone);
			}
			n = 0;
		}
	}
	if (n)
		ferry_ct_execute(&t, pkts, ap, n, now, res);
	if (ferry_ct_count(ct) > ferry_ct_max_conns(ct))
		abort();
	uint16_t type;
	struct ferry_ct_event ev;
	while (ferry_ct_events_pop(ct, &type, &ev))
		;
	/* everything dumped is still counted; the flush empties the table */
	uint64_t dumped = 0;
	bool done;
	ferry_ct_dump(ct, NULL, 0, 0, now, count_entry, &dumped, &done);
	if (!done || dumped > ferry_ct_count(ct))
		abort();
	ferry_ct_flush(&t, NULL, now);
	ferry_ct_sweep(&t, now + 200000000000ull);
	if (ferry_ct_count(ct) != 0)
		abort();
	while (ferry_ct_events_pop(ct, &type, &ev))
		;
	return 0;
}
