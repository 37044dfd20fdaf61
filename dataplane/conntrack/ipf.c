/* IPv4/IPv6 fragment reassembly for the connection tracker (see ipf.h).
 *
 * Memory is one arena cut at create into:
 *  - datagrams (max_frags of them: each holds at least one fragment), chained from
 *    a power-of-two bucket array and linked in arrival order for expiry;
 *  - fragment descriptors (max_frags), each datagram keeping up to 64 of their
 *    indices sorted by offset;
 *  - the bytes of held fragments, in CHUNK-byte chunks chained per fragment. A
 *    fragment wastes less than one chunk, so max_bytes / CHUNK + max_frags + 1
 *    chunks always suffice while the max_bytes and max_frags limits hold;
 *  - the buffer the last whole datagram is built in.
 * Free datagrams, descriptors and chunks are LIFO lists threaded through them. */
#include "ipf.h"

#include <stdlib.h>
#include <string.h>

#define NIL UINT32_MAX
#define CHUNK 256u

#define IPV4_MIN_HLEN 20u
#define IPV6_HLEN 40u
#define FRAG_HLEN 8u
#define IP_MAX 65535u
/* L2 (up to a 16-bit l3_ofs), a v6 header, then up to 65535 bytes of payload */
#define WHOLE_MAX (65535u + IPV6_HLEN + IP_MAX)

#define IPV4_DF_RSV 0xc000u
#define IPV4_MF 0x2000u
#define IPV4_OFF 0x1fffu
#define IPV6_FRAG_M 0x0001u
#define IPV6_FRAG_OFF 0xfff8u

#define PROTO_HOPOPTS 0
#define PROTO_ROUTING 43
#define PROTO_FRAGMENT 44
#define PROTO_DSTOPTS 60

struct ipf_key {
	uint8_t src[16], dst[16];
	uint32_t id;
	uint16_t zone;
	uint8_t proto;
	uint8_t v6;
};
_Static_assert(sizeof(struct ipf_key) == 40, "ipf_key has no padding (compared and hashed as bytes)");

struct ipf_frag {
	void *handle;
	uint32_t chunk;      /* first chunk of the bytes kept; next free descriptor when free */
	uint32_t stored;     /* bytes kept: hdr bytes, then the payload */
	uint32_t hdr;        /* bytes kept before the payload (0 unless off == 0) */
	uint32_t off;        /* payload offset in the datagram */
	uint32_t len;        /* payload bytes */
	uint16_t l3_ofs;     /* off == 0: where the IP header starts in the kept bytes */
	uint16_t nh_pos;     /* off == 0, v6: IP-relative offset of the byte naming the fragment header */
	uint32_t lim_hdr;    /* off == 0: header bytes counted with the payload against 65535 */
};

struct ipf_dgram {
	struct ipf_key key;
	uint64_t first_ns;   /* arrival of its first fragment to come */
	uint32_t hnext;      /* bucket chain; next free datagram when free */
	uint32_t older, newer;
	uint32_t end;        /* payload length, once the last fragment is in */
	uint32_t have;       /* payload bytes held */
	uint8_t n;
	bool has_last;
	uint32_t frag[FERRY_IPF_MAX_FRAGS_PER_DGRAM]; /* sorted by off */
};

struct ferry_ipf {
	uint32_t max_frags, max_bytes, min_frag_v4, min_frag_v6;
	uint64_t timeout_ns;
	uint32_t held_frags, held_bytes;
	uint32_t bucket_mask;
	uint32_t free_dgram, free_frag, free_chunk;
	uint32_t oldest, newest;     /* age list of datagrams */
	void (*release)(void *arg, void *handle);
	void *release_arg;
	uint64_t counters[FERRY_FRAG_REASONS];
	struct ipf_dgram *dgrams;
	struct ipf_frag *frags;
	uint32_t *buckets;
	uint32_t *chunk_next;
	uint8_t *chunks;
	uint8_t *whole;
};

/* What one fragment says about itself. */
struct ipf_parsed {
	struct ipf_key key;
	uint32_t off, len;   /* payload offset in the datagram and bytes */
	uint32_t cut;        /* data offset where the kept headers stop (v6: the fragment header) */
	uint32_t pay;        /* data offset of the payload */
	uint32_t lim_hdr;    /* v4: IP header bytes; v6: extension bytes before the fragment header */
	uint16_t nh_pos;
	bool more;
};

enum { P_FRAG, P_NOT, P_DROP };

static inline uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline void wr16(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint16_t ip_csum(const uint8_t *p, uint32_t n)
{
	uint32_t s = 0;
	for (uint32_t i = 0; i + 1 < n; i += 2)
		s += rd16(p + i);
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

static uint32_t key_hash(const struct ipf_key *k)
{
	uint64_t h = 0x243f6a8885a308d3ull, w;
	const uint8_t *p = (const uint8_t *)k;
	for (unsigned i = 0; i < sizeof(*k); i += 8) {
		memcpy(&w, p + i, 8);
		h = (h ^ w) * 0x9e3779b97f4a7c15ull;
		h ^= h >> 29;
	}
	return (uint32_t)(h ^ h >> 32);
}

/* ---- parsing ---- */

/* Walks the v6 extension headers that may precede a fragment header. True when a
 * fragment header is reached; *fh is its offset from ip, *nh_pos the offset of the
 * byte naming it. */
static bool v6_find_frag(const uint8_t *ip, uint32_t avail, uint32_t *fh, uint16_t *nh_pos)
{
	uint32_t pos = IPV6_HLEN, at = 6;
	uint8_t nh = ip[6];
	while (nh == PROTO_HOPOPTS || nh == PROTO_ROUTING || nh == PROTO_DSTOPTS) {
		if (pos + 2 > avail)
			return false;
		at = pos;
		nh = ip[pos];
		pos += ((uint32_t)ip[pos + 1] + 1) * 8;
		if (pos > IP_MAX + IPV6_HLEN)
			return false;
	}
	if (nh != PROTO_FRAGMENT)
		return false;
	*fh = pos;
	*nh_pos = (uint16_t)at;
	return true;
}

bool ferry_ipf_is_fragment(const uint8_t *data, uint32_t len, uint16_t l3_ofs)
{
	if (len <= l3_ofs)
		return false;
	const uint8_t *ip = data + l3_ofs;
	uint32_t avail = len - l3_ofs;
	switch (ip[0] >> 4) {
	case 4:
		return avail >= IPV4_MIN_HLEN && (rd16(ip + 6) & (IPV4_MF | IPV4_OFF)) != 0;
	case 6: {
		uint32_t fh;
		uint16_t nh_pos;
		return avail >= IPV6_HLEN && v6_find_frag(ip, avail, &fh, &nh_pos);
	}
	default:
		return false;
	}
}

static int parse_v4(const struct ferry_ipf *ipf, const struct ferry_ipf_frag *f, struct ipf_parsed *p, uint8_t *why)
{
	const uint8_t *ip = f->data + f->l3_ofs;
	uint32_t avail = f->len - f->l3_ofs;
	if (avail < IPV4_MIN_HLEN)
		return P_NOT;
	uint16_t fl = rd16(ip + 6);
	if (!(fl & (IPV4_MF | IPV4_OFF)))
		return P_NOT;
	*why = FERRY_FRAG_REASON_BAD;
	uint32_t hl = (ip[0] & 0xfu) * 4u, tot = rd16(ip + 2);
	if (hl < IPV4_MIN_HLEN || hl > avail || tot <= hl || tot > avail)
		return P_DROP;
	/* a corrupt header must not become part of a datagram whose header is rebuilt */
	uint32_t sum = 0;
	for (uint32_t i = 0; i < hl; i += 2)
		sum += rd16(ip + i);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	if (sum != 0xffff)
		return P_DROP;
	p->more = fl & IPV4_MF;
	p->off = (fl & IPV4_OFF) * 8u;
	p->len = tot - hl;
	if (p->more && p->len % 8)
		return P_DROP;
	memset(&p->key, 0, sizeof(p->key));
	memcpy(p->key.src, ip + 12, 4);
	memcpy(p->key.dst, ip + 16, 4);
	p->key.id = rd16(ip + 4);
	p->key.proto = ip[9];
	p->key.zone = f->zone;
	p->pay = p->cut = f->l3_ofs + hl;
	p->lim_hdr = hl;
	p->nh_pos = 0;
	if (hl + p->off + p->len > IP_MAX) {
		*why = FERRY_FRAG_REASON_TOO_BIG;
		return P_DROP;
	}
	if (p->more && p->len < ipf->min_frag_v4) {
		*why = FERRY_FRAG_REASON_TOO_SMALL;
		return P_DROP;
	}
	return P_FRAG;
}

static int parse_v6(const struct ferry_ipf *ipf, const struct ferry_ipf_frag *f, struct ipf_parsed *p, uint8_t *why)
{
	const uint8_t *ip = f->data + f->l3_ofs;
	uint32_t avail = f->len - f->l3_ofs, fh;
	if (avail < IPV6_HLEN || !v6_find_frag(ip, avail, &fh, &p->nh_pos))
		return P_NOT;
	*why = FERRY_FRAG_REASON_BAD;
	uint32_t ip_end = IPV6_HLEN + rd16(ip + 4);
	if (ip_end > avail || fh + FRAG_HLEN > ip_end)
		return P_DROP;
	uint16_t ofl = rd16(ip + fh + 2);
	p->more = ofl & IPV6_FRAG_M;
	p->off = ofl & IPV6_FRAG_OFF;
	p->len = ip_end - fh - FRAG_HLEN;
	if (p->more && p->len % 8)
		return P_DROP;
	if (p->len == 0 && (p->more || p->off))
		return P_DROP;
	memset(&p->key, 0, sizeof(p->key));
	memcpy(p->key.src, ip + 8, 16);
	memcpy(p->key.dst, ip + 24, 16);
	p->key.id = (uint32_t)rd16(ip + fh + 4) << 16 | rd16(ip + fh + 6);
	p->key.proto = ip[fh];
	p->key.zone = f->zone;
	p->key.v6 = 1;
	p->cut = f->l3_ofs + fh;
	p->pay = p->cut + FRAG_HLEN;
	p->lim_hdr = fh - IPV6_HLEN;
	if (p->lim_hdr + p->off + p->len > IP_MAX) {
		*why = FERRY_FRAG_REASON_TOO_BIG;
		return P_DROP;
	}
	if (p->more && p->len < ipf->min_frag_v6) {
		*why = FERRY_FRAG_REASON_TOO_SMALL;
		return P_DROP;
	}
	return P_FRAG;
}

/* ---- chunks ---- */

struct chunk_writer {
	struct ferry_ipf *ipf;
	uint32_t chunk, ofs;
};

static void chunk_put(struct chunk_writer *w, const uint8_t *src, uint32_t n)
{
	while (n) {
		if (w->ofs == CHUNK) {
			w->chunk = w->ipf->chunk_next[w->chunk];
			w->ofs = 0;
		}
		uint32_t k = CHUNK - w->ofs < n ? CHUNK - w->ofs : n;
		memcpy(w->ipf->chunks + (size_t)w->chunk * CHUNK + w->ofs, src, k);
		w->ofs += k;
		src += k;
		n -= k;
	}
}

/* Keeps a then b in fresh chunks; NIL when none are left (not expected: see top). */
static uint32_t chunks_store(struct ferry_ipf *ipf, const uint8_t *a, uint32_t alen, const uint8_t *b, uint32_t blen)
{
	uint32_t need = (alen + blen + CHUNK - 1) / CHUNK, head = ipf->free_chunk, last = head;
	if (head == NIL)
		return NIL;
	for (uint32_t i = 1; i < need; i++) {
		last = ipf->chunk_next[last];
		if (last == NIL)
			return NIL;
	}
	ipf->free_chunk = ipf->chunk_next[last];
	ipf->chunk_next[last] = NIL;
	struct chunk_writer w = { ipf, head, 0 };
	chunk_put(&w, a, alen);
	chunk_put(&w, b, blen);
	return head;
}

static void chunks_copy_out(const struct ferry_ipf *ipf, uint32_t c, uint8_t *dst, uint32_t n)
{
	while (n) {
		uint32_t k = n < CHUNK ? n : CHUNK;
		memcpy(dst, ipf->chunks + (size_t)c * CHUNK, k);
		dst += k;
		n -= k;
		c = ipf->chunk_next[c];
	}
}

static void chunks_free(struct ferry_ipf *ipf, uint32_t head)
{
	uint32_t last = head;
	while (ipf->chunk_next[last] != NIL)
		last = ipf->chunk_next[last];
	ipf->chunk_next[last] = ipf->free_chunk;
	ipf->free_chunk = head;
}

/* ---- datagrams ---- */

static uint32_t dgram_find(const struct ferry_ipf *ipf, const struct ipf_key *k, uint32_t h)
{
	for (uint32_t d = ipf->buckets[h & ipf->bucket_mask]; d != NIL; d = ipf->dgrams[d].hnext)
		if (!memcmp(&ipf->dgrams[d].key, k, sizeof(*k)))
			return d;
	return NIL;
}

static uint32_t dgram_new(struct ferry_ipf *ipf, const struct ipf_key *k, uint32_t h, uint64_t now_ns)
{
	uint32_t d = ipf->free_dgram;
	struct ipf_dgram *dg = &ipf->dgrams[d];
	ipf->free_dgram = dg->hnext;
	dg->key = *k;
	dg->first_ns = now_ns;
	dg->end = dg->have = 0;
	dg->n = 0;
	dg->has_last = false;
	uint32_t *b = &ipf->buckets[h & ipf->bucket_mask];
	dg->hnext = *b;
	*b = d;
	dg->newer = NIL;
	dg->older = ipf->newest;
	if (ipf->newest != NIL)
		ipf->dgrams[ipf->newest].newer = d;
	else
		ipf->oldest = d;
	ipf->newest = d;
	return d;
}

/* Forgets a datagram: its fragments go back to the pools, their handles to the
 * release callback when release is set (counted under reason when it is below
 * FERRY_FRAG_REASONS). */
static void dgram_free(struct ferry_ipf *ipf, uint32_t d, bool release, unsigned reason)
{
	struct ipf_dgram *dg = &ipf->dgrams[d];
	for (unsigned i = 0; i < dg->n; i++) {
		struct ipf_frag *fr = &ipf->frags[dg->frag[i]];
		if (release && ipf->release)
			ipf->release(ipf->release_arg, fr->handle);
		if (reason < FERRY_FRAG_REASONS)
			ipf->counters[reason]++;
		ipf->held_bytes -= fr->stored;
		chunks_free(ipf, fr->chunk);
		fr->handle = NULL;
		fr->chunk = ipf->free_frag;
		ipf->free_frag = dg->frag[i];
	}
	ipf->held_frags -= dg->n;
	dg->n = 0;

	uint32_t *pp = &ipf->buckets[key_hash(&dg->key) & ipf->bucket_mask];
	while (*pp != d)
		pp = &ipf->dgrams[*pp].hnext;
	*pp = dg->hnext;

	if (dg->older != NIL)
		ipf->dgrams[dg->older].newer = dg->newer;
	else
		ipf->oldest = dg->newer;
	if (dg->newer != NIL)
		ipf->dgrams[dg->newer].older = dg->older;
	else
		ipf->newest = dg->older;

	dg->hnext = ipf->free_dgram;
	ipf->free_dgram = d;
}

static void expire(struct ferry_ipf *ipf, uint64_t now_ns)
{
	while (ipf->oldest != NIL) {
		uint64_t t = ipf->dgrams[ipf->oldest].first_ns;
		if (now_ns <= t || now_ns - t <= ipf->timeout_ns)
			break;
		dgram_free(ipf, ipf->oldest, true, FERRY_FRAG_REASON_TIMEOUT);
	}
}

void ferry_ipf_expire(struct ferry_ipf *ipf, uint64_t now_ns)
{
	expire(ipf, now_ns);
}

/* ---- the whole datagram ---- */

/* Turns the bytes at whole (L2, the first fragment's headers, all the payload)
 * into an unfragmented packet. */
static void whole_fix(const struct ferry_ipf *ipf, bool v6, uint8_t proto, uint16_t l3_ofs, uint16_t nh_pos,
		      uint32_t whole_len)
{
	uint8_t *ip = ipf->whole + l3_ofs;
	uint32_t ip_len = whole_len - l3_ofs;
	if (v6) {
		ip[nh_pos] = proto;
		wr16(ip + 4, ip_len - IPV6_HLEN);
	} else {
		uint32_t hl = (ip[0] & 0xfu) * 4u;
		wr16(ip + 2, ip_len);
		wr16(ip + 6, rd16(ip + 6) & IPV4_DF_RSV);
		wr16(ip + 10, 0);
		wr16(ip + 10, ip_csum(ip, hl));
	}
}

static void dgram_build(struct ferry_ipf *ipf, const struct ipf_dgram *dg, struct ferry_ipf_done *out)
{
	const struct ipf_frag *first = &ipf->frags[dg->frag[0]];
	uint32_t at = 0;
	for (unsigned i = 0; i < dg->n; i++) {
		const struct ipf_frag *fr = &ipf->frags[dg->frag[i]];
		chunks_copy_out(ipf, fr->chunk, ipf->whole + at, fr->stored);
		at += fr->stored;
		out->handles[i] = fr->handle;
	}
	out->n_handles = dg->n;
	whole_fix(ipf, dg->key.v6, dg->key.proto, first->l3_ofs, first->nh_pos, at);
	out->whole = ipf->whole;
	out->whole_len = at;
	out->l3_ofs = first->l3_ofs;
}

/* ---- adding ---- */

static enum ferry_ipf_verdict drop(struct ferry_ipf *ipf, uint8_t why, uint8_t *reason)
{
	ipf->counters[why]++;
	if (reason)
		*reason = why;
	return FERRY_IPF_DROP;
}

static enum ferry_ipf_verdict abandon(struct ferry_ipf *ipf, uint32_t d, uint8_t why, uint8_t *reason)
{
	dgram_free(ipf, d, true, why);
	return drop(ipf, why, reason);
}

enum ferry_ipf_verdict ferry_ipf_add(struct ferry_ipf *ipf, const struct ferry_ipf_frag *f, uint64_t now_ns,
				     struct ferry_ipf_done *out, uint8_t *reason)
{
	struct ipf_parsed p;
	uint8_t why = FERRY_FRAG_REASON_BAD;
	int r = P_NOT;

	if (f->len > f->l3_ofs) {
		switch (f->data[f->l3_ofs] >> 4) {
		case 4:
			r = parse_v4(ipf, f, &p, &why);
			break;
		case 6:
			r = parse_v6(ipf, f, &p, &why);
			break;
		}
	}
	if (r == P_NOT)
		return FERRY_IPF_NOT_FRAGMENT;

	expire(ipf, now_ns);

	if (r == P_DROP) {
		/* a datagram that would pass 65535 bytes is never delivered */
		if (why == FERRY_FRAG_REASON_TOO_BIG) {
			uint32_t d = dgram_find(ipf, &p.key, key_hash(&p.key));
			if (d != NIL)
				return abandon(ipf, d, why, reason);
		}
		return drop(ipf, why, reason);
	}

	if (p.off == 0 && !p.more) {
		/* a v6 atomic fragment: a datagram on its own (RFC 6946) */
		uint32_t tail = p.pay + p.len;
		memcpy(ipf->whole, f->data, p.cut);
		memcpy(ipf->whole + p.cut, f->data + p.pay, p.len);
		whole_fix(ipf, true, p.key.proto, f->l3_ofs, p.nh_pos, tail - FRAG_HLEN);
		out->handles[0] = f->handle;
		out->n_handles = 1;
		out->whole = ipf->whole;
		out->whole_len = tail - FRAG_HLEN;
		out->l3_ofs = f->l3_ofs;
		ipf->counters[FERRY_FRAG_REASON_REASSEMBLED]++;
		return FERRY_IPF_DONE;
	}

	uint32_t h = key_hash(&p.key);
	uint32_t d = dgram_find(ipf, &p.key, h);
	uint32_t hdr = p.off == 0 ? p.cut : 0, stored = hdr + p.len;
	unsigned pos = 0;

	if (d != NIL) {
		struct ipf_dgram *dg = &ipf->dgrams[d];
		pos = dg->n;
		while (pos > 0 && ipf->frags[dg->frag[pos - 1]].off >= p.off)
			pos--;
		const struct ipf_frag *prev = pos > 0 ? &ipf->frags[dg->frag[pos - 1]] : NULL;
		const struct ipf_frag *next = pos < dg->n ? &ipf->frags[dg->frag[pos]] : NULL;
		if ((prev && prev->off + prev->len > p.off) || (next && p.off + p.len > next->off))
			return abandon(ipf, d, FERRY_FRAG_REASON_OVERLAP, reason);
		/* a second last fragment, or bytes past the end */
		if (p.more ? dg->has_last && p.off + p.len > dg->end : dg->has_last || next)
			return abandon(ipf, d, FERRY_FRAG_REASON_BAD, reason);
		/* the whole size, once both the first fragment's headers and the end are known */
		const struct ipf_frag *first = dg->n && ipf->frags[dg->frag[0]].off == 0 ? &ipf->frags[dg->frag[0]] : NULL;
		uint32_t lim = p.off == 0 ? p.lim_hdr : first ? first->lim_hdr : 0;
		uint32_t end = !p.more ? p.off + p.len : dg->has_last ? dg->end : 0;
		if ((p.off == 0 || first) && (!p.more || dg->has_last) && lim + end > IP_MAX)
			return abandon(ipf, d, FERRY_FRAG_REASON_TOO_BIG, reason);
		if (dg->n == FERRY_IPF_MAX_FRAGS_PER_DGRAM)
			return abandon(ipf, d, FERRY_FRAG_REASON_TOO_MANY, reason);
	}

	if (ipf->held_frags >= ipf->max_frags || stored > ipf->max_bytes - ipf->held_bytes || ipf->free_frag == NIL)
		return drop(ipf, FERRY_FRAG_REASON_NO_SPACE, reason);
	uint32_t chunk = hdr ? chunks_store(ipf, f->data, p.cut, f->data + p.pay, p.len)
			     : chunks_store(ipf, f->data + p.pay, p.len, NULL, 0);
	if (chunk == NIL)
		return drop(ipf, FERRY_FRAG_REASON_NO_SPACE, reason);

	if (d == NIL)
		d = dgram_new(ipf, &p.key, h, now_ns);
	struct ipf_dgram *dg = &ipf->dgrams[d];

	uint32_t fi = ipf->free_frag;
	struct ipf_frag *fr = &ipf->frags[fi];
	ipf->free_frag = fr->chunk;
	fr->handle = f->handle;
	fr->chunk = chunk;
	fr->stored = stored;
	fr->hdr = hdr;
	fr->off = p.off;
	fr->len = p.len;
	fr->l3_ofs = f->l3_ofs;
	fr->nh_pos = p.nh_pos;
	fr->lim_hdr = p.lim_hdr;
	ipf->held_frags++;
	ipf->held_bytes += stored;

	memmove(&dg->frag[pos + 1], &dg->frag[pos], (dg->n - pos) * sizeof(dg->frag[0]));
	dg->frag[pos] = fi;
	dg->n++;
	dg->have += p.len;
	if (!p.more) {
		dg->has_last = true;
		dg->end = p.off + p.len;
	}

	/* no overlaps and nothing past the end: the bytes held cover it all */
	if (!dg->has_last || dg->have != dg->end)
		return FERRY_IPF_HELD;
	dgram_build(ipf, dg, out);
	dgram_free(ipf, d, false, FERRY_FRAG_REASONS);
	ipf->counters[FERRY_FRAG_REASON_REASSEMBLED]++;
	return FERRY_IPF_DONE;
}

/* ---- life cycle ---- */

static size_t carve(size_t *at, size_t bytes)
{
	size_t here = (*at + 63) & ~(size_t)63;
	*at = here + bytes;
	return here;
}

struct ferry_ipf *ferry_ipf_create(const struct ferry_ipf_config *cfg)
{
	struct ferry_ipf_config c = cfg ? *cfg : (struct ferry_ipf_config){ 0 };
	if (!c.max_frags)
		c.max_frags = FERRY_IPF_DEFAULT_MAX_FRAGS;
	if (!c.max_bytes)
		c.max_bytes = FERRY_IPF_DEFAULT_MAX_BYTES;
	if (!c.timeout_ms)
		c.timeout_ms = FERRY_IPF_DEFAULT_TIMEOUT_MS;
	if (!c.min_frag_v4)
		c.min_frag_v4 = FERRY_IPF_DEFAULT_MIN_FRAG;
	if (!c.min_frag_v6)
		c.min_frag_v6 = FERRY_IPF_DEFAULT_MIN_FRAG;
	if (c.max_frags > (1u << 24))
		return NULL;

	uint32_t n_buckets = 16;
	while (n_buckets < c.max_frags)
		n_buckets <<= 1;
	size_t n_chunks = c.max_bytes / CHUNK + 1 + c.max_frags;
	if (n_chunks >= NIL)
		return NULL;

	size_t at = sizeof(struct ferry_ipf);
	size_t o_dgrams = carve(&at, sizeof(struct ipf_dgram) * c.max_frags);
	size_t o_frags = carve(&at, sizeof(struct ipf_frag) * c.max_frags);
	size_t o_buckets = carve(&at, sizeof(uint32_t) * n_buckets);
	size_t o_next = carve(&at, sizeof(uint32_t) * n_chunks);
	size_t o_chunks = carve(&at, (size_t)CHUNK * n_chunks);
	size_t o_whole = carve(&at, WHOLE_MAX);

	uint8_t *base = calloc(1, at);
	if (!base)
		return NULL;
	struct ferry_ipf *ipf = (struct ferry_ipf *)base;
	ipf->max_frags = c.max_frags;
	ipf->max_bytes = c.max_bytes;
	ipf->min_frag_v4 = c.min_frag_v4;
	ipf->min_frag_v6 = c.min_frag_v6;
	ipf->timeout_ns = (uint64_t)c.timeout_ms * 1000000u;
	ipf->bucket_mask = n_buckets - 1;
	ipf->dgrams = (struct ipf_dgram *)(base + o_dgrams);
	ipf->frags = (struct ipf_frag *)(base + o_frags);
	ipf->buckets = (uint32_t *)(base + o_buckets);
	ipf->chunk_next = (uint32_t *)(base + o_next);
	ipf->chunks = base + o_chunks;
	ipf->whole = base + o_whole;

	for (uint32_t i = 0; i < c.max_frags; i++) {
		ipf->dgrams[i].hnext = i + 1 < c.max_frags ? i + 1 : NIL;
		ipf->frags[i].chunk = i + 1 < c.max_frags ? i + 1 : NIL;
	}
	ipf->free_dgram = ipf->free_frag = 0;
	for (uint32_t i = 0; i < n_buckets; i++)
		ipf->buckets[i] = NIL;
	for (uint32_t i = 0; i < n_chunks; i++)
		ipf->chunk_next[i] = i + 1 < n_chunks ? i + 1 : NIL;
	ipf->free_chunk = 0;
	ipf->oldest = ipf->newest = NIL;
	return ipf;
}

void ferry_ipf_destroy(struct ferry_ipf *ipf)
{
	if (!ipf)
		return;
	while (ipf->oldest != NIL)
		dgram_free(ipf, ipf->oldest, true, FERRY_FRAG_REASONS);
	free(ipf);
}

void ferry_ipf_set_release(struct ferry_ipf *ipf, void (*release)(void *arg, void *handle), void *arg)
{
	ipf->release = release;
	ipf->release_arg = arg;
}

const uint64_t *ferry_ipf_counters(const struct ferry_ipf *ipf)
{
	return ipf->counters;
}

uint32_t ferry_ipf_held(const struct ferry_ipf *ipf)
{
	return ipf->held_frags;
}
