/* ALGs: the FTP and TFTP helpers and the expectations they set up.
 *
 * A connection committed with ct(alg=ftp) has its packets read for the commands and
 * answers that announce a data connection: PORT and EPRT from the client, 227 (PASV)
 * and 229 (EPSV) from the server. Each sets up an expectation: a connection from one
 * address (any source port) to an address and port, in the parent's zone. ct(alg=tftp)
 * expects the server's answer from a new port back to the client's port at once.
 * The first packet of a connection an expectation waits for is new|rel; committed,
 * the connection is related for good and carries its parent's mark and label.
 *
 * Beyond OVS: expectations time out on their own (FERRY_CT_EXP_TIMEOUT_SEC), not only
 * with their parent, and the addresses a client or server announces must be its own
 * (the FTP "bounce" is refused), as netfilter does.
 *
 * Expectations are few and short-lived: one table behind one mutex, taken only by a
 * connection's first packet while any expectation is pending, by the helpers, and
 * by the sweep. It is a leaf lock: nothing else is taken while it is held. */
#include "ct_private.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17
#define EXP_SLOTS 1024u             /* hash chains over (zone, proto, dst, dport) */
#define EXP_NIL UINT32_MAX
#define FTP_LINE_MAX 256u           /* a command or answer is read within this */

struct ct_exp {
	uint32_t next;          /* chain, or the free list */
	uint8_t used, alg, proto, l3;
	uint16_t zone, dport;
	uint8_t src[16], dst[16];
	uint64_t expiration;
	uint32_t parent;        /* the parent's index in the pool */
	uint32_t mark;
	uint8_t label[16];
	uint8_t labeled;
	uint8_t nat_kind;       /* what the expected connection's commit translates */
	uint16_t nat_port;
	uint8_t nat_addr[16];
};

struct ct_exp_table {
	pthread_mutex_t lock;
	uint32_t free_head;
	uint32_t heads[EXP_SLOTS];
	struct ct_exp e[FERRY_CT_EXP_MAX];
};

bool ct_alg_init(struct ferry_ct *ct)
{
	struct ct_exp_table *x = calloc(1, sizeof(*x));
	if (x == NULL)
		return false;
	pthread_mutex_init(&x->lock, NULL);
	for (uint32_t i = 0; i < EXP_SLOTS; i++)
		x->heads[i] = EXP_NIL;
	for (uint32_t i = 0; i < FERRY_CT_EXP_MAX; i++)
		x->e[i].next = i + 1 < FERRY_CT_EXP_MAX ? i + 1 : EXP_NIL;
	x->free_head = 0;
	ct->exp = x;
	atomic_init(&ct->n_exp, 0);
	return true;
}

void ct_alg_fini(struct ferry_ct *ct)
{
	if (ct->exp) {
		pthread_mutex_destroy(&ct->exp->lock);
		free(ct->exp);
		ct->exp = NULL;
	}
}

static uint32_t exp_slot(uint16_t zone, uint8_t proto, const uint8_t *dst, uint16_t dport)
{
	uint64_t w0, w1;
	memcpy(&w0, dst, 8);
	memcpy(&w1, dst + 8, 8);
	uint64_t h = _mm_crc32_u64(0x243f6a88u, w0);
	h = _mm_crc32_u64(h, w1);
	h = _mm_crc32_u64(h, (uint64_t)zone << 32 | (uint64_t)proto << 16 | dport);
	return (uint32_t)h & (EXP_SLOTS - 1);
}

/* unlinks and frees e[i], whose chain starts at *head (lock held) */
static void exp_free(struct ferry_ct *ct, uint32_t *link, uint32_t i)
{
	struct ct_exp_table *x = ct->exp;
	*link = x->e[i].next;
	x->e[i].used = 0;
	x->e[i].next = x->free_head;
	x->free_head = i;
	atomic_fetch_sub_explicit(&ct->n_exp, 1, memory_order_relaxed);
}

/* the original direction's tuple of a connection */
static void conn_orig(const struct ct_conn *c, const uint8_t **src, const uint8_t **dst, uint16_t *sport,
		      uint16_t *dport)
{
	const struct ct_key *k = &c->key;
	*src = c->orig_b ? k->b : k->a;
	*dst = c->orig_b ? k->a : k->b;
	*sport = c->orig_b ? k->pb : k->pa;
	*dport = c->orig_b ? k->pa : k->pb;
}

/* Sets up (or renews) the expectation of a connection src -> dst:dport for parent
 * c (its bucket held). */
struct exp_nat {
	uint8_t kind;           /* 0: none */
	const uint8_t *addr;
	uint16_t port;          /* 0: kept */
};
static const struct exp_nat NO_NAT = { 0, NULL, 0 };

static void exp_add(struct ferry_ct_thread *t, struct ct_conn *c, uint8_t alg, uint8_t proto, const uint8_t *src,
		    const uint8_t *dst, uint16_t dport, struct exp_nat nat, uint64_t now)
{
	struct ferry_ct *ct = t->ct;
	struct ct_exp_table *x = ct->exp;
	uint32_t slot = exp_slot(c->key.zone, proto, dst, dport);
	uint32_t parent = (uint32_t)(c - ct->conns);
	pthread_mutex_lock(&x->lock);
	struct ct_exp *e = NULL;
	for (uint32_t i = x->heads[slot]; i != EXP_NIL; i = x->e[i].next) {
		struct ct_exp *y = &x->e[i];
		if (y->zone == c->key.zone && y->proto == proto && y->dport == dport && memcmp(y->dst, dst, 16) == 0 &&
		    memcmp(y->src, src, 16) == 0) {
			if (y->parent != parent) {
				/* another connection expects the same (two clients behind one
				 * SNAT address naming one port): the first keeps it */
				pthread_mutex_unlock(&x->lock);
				return;
			}
			e = y; /* announced again: renewed */
			break;
		}
	}
	if (e == NULL) {
		if (x->free_head == EXP_NIL) {
			pthread_mutex_unlock(&x->lock);
			return; /* full: the data connection will be new, not related */
		}
		uint32_t i = x->free_head;
		e = &x->e[i];
		x->free_head = e->next;
		e->next = x->heads[slot];
		x->heads[slot] = i;
		atomic_fetch_add_explicit(&ct->n_exp, 1, memory_order_relaxed);
		(*t->exp_created)++;
	}
	e->used = 1;
	e->alg = alg;
	e->proto = proto;
	e->l3 = c->key.l3;
	e->zone = c->key.zone;
	e->dport = dport;
	memcpy(e->src, src, 16);
	memcpy(e->dst, dst, 16);
	e->expiration = now + (uint64_t)FERRY_CT_EXP_TIMEOUT_SEC * NS_PER_SEC;
	e->parent = parent;
	e->mark = c->mark;
	memcpy(e->label, c->label, 16);
	e->labeled = (c->flags & CONN_LABELED) != 0;
	e->nat_kind = nat.kind;
	e->nat_port = nat.port;
	if (nat.kind)
		memcpy(e->nat_addr, nat.addr, 16);
	c->flags |= CONN_HAS_EXP;
	pthread_mutex_unlock(&x->lock);
}

bool ct_exp_match(struct ferry_ct *ct, const struct ct_pktctx *p, uint64_t now, bool take, struct ct_exp_match *out)
{
	struct ct_exp_table *x = ct->exp;
	const struct ct_key *k = &p->key;
	const uint8_t *src = p->swapped ? k->b : k->a, *dst = p->swapped ? k->a : k->b;
	uint16_t dport = p->swapped ? k->pa : k->pb;
	uint32_t slot = exp_slot(k->zone, k->proto, dst, dport);
	bool found = false;
	pthread_mutex_lock(&x->lock);
	for (uint32_t *link = &x->heads[slot]; *link != EXP_NIL; link = &x->e[*link].next) {
		uint32_t i = *link;
		struct ct_exp *e = &x->e[i];
		if (e->zone != k->zone || e->proto != k->proto || e->l3 != k->l3 || e->dport != dport ||
		    memcmp(e->dst, dst, 16) != 0 || memcmp(e->src, src, 16) != 0 || now >= e->expiration)
			continue;
		out->mark = e->mark;
		memcpy(out->label, e->label, 16);
		out->labeled = e->labeled;
		out->nat_kind = e->nat_kind;
		memcpy(out->nat_addr, e->nat_addr, 16);
		out->nat_port = e->nat_port;
		if (take)
			exp_free(ct, link, i);
		found = true;
		break;
	}
	pthread_mutex_unlock(&x->lock);
	return found;
}

void ct_exp_remove_parent(struct ferry_ct *ct, const struct ct_conn *c)
{
	if (atomic_load_explicit(&ct->n_exp, memory_order_relaxed) == 0)
		return;
	struct ct_exp_table *x = ct->exp;
	uint32_t parent = (uint32_t)(c - ct->conns);
	pthread_mutex_lock(&x->lock);
	for (uint32_t s = 0; s < EXP_SLOTS; s++) {
		uint32_t *link = &x->heads[s];
		while (*link != EXP_NIL) {
			uint32_t i = *link;
			if (x->e[i].parent == parent)
				exp_free(ct, link, i);
			else
				link = &x->e[i].next;
		}
	}
	pthread_mutex_unlock(&x->lock);
}

uint32_t ct_exp_expire(struct ferry_ct *ct, uint64_t now)
{
	if (atomic_load_explicit(&ct->n_exp, memory_order_relaxed) == 0)
		return 0;
	struct ct_exp_table *x = ct->exp;
	uint32_t gone = 0;
	pthread_mutex_lock(&x->lock);
	for (uint32_t s = 0; s < EXP_SLOTS; s++) {
		uint32_t *link = &x->heads[s];
		while (*link != EXP_NIL) {
			uint32_t i = *link;
			if (now >= x->e[i].expiration) {
				exp_free(ct, link, i);
				gone++;
			} else {
				link = &x->e[i].next;
			}
		}
	}
	pthread_mutex_unlock(&x->lock);
	atomic_fetch_add_explicit(&ct->exp_expired, gone, memory_order_relaxed);
	return gone;
}

void ct_alg_commit(struct ferry_ct_thread *t, struct ct_conn *c, uint8_t alg, uint64_t now)
{
	c->flags |= CONN_ALG;
	c->alg = alg;
	if (alg == FERRY_CT_ALG_TFTP && c->key.proto == IPPROTO_UDP_) {
		/* the server answers from a port of its own, to the client's: behind SNAT
		 * to the translated client, DNATed back; from behind DNAT, the server's
		 * real address answers and is SNATed to the one the client dialled */
		const uint8_t *client, *server;
		uint16_t csport, sport;
		conn_orig(c, &client, &server, &csport, &sport);
		const struct ct_nat *n = (c->flags & CONN_NAT) && t->ct->nat[c - t->ct->conns].linked
						 ? &t->ct->nat[c - t->ct->conns] : NULL;
		if (n && n->kind == CT_NAT_SRC)
			exp_add(t, c, FERRY_CT_ALG_TFTP, IPPROTO_UDP_, server, n->addr, n->port,
				(struct exp_nat){ CT_NAT_DST, client, csport }, now);
		else if (n && n->kind == CT_NAT_DST)
			exp_add(t, c, FERRY_CT_ALG_TFTP, IPPROTO_UDP_, n->addr, client, csport,
				(struct exp_nat){ CT_NAT_SRC, server, 0 }, now);
		else
			exp_add(t, c, FERRY_CT_ALG_TFTP, IPPROTO_UDP_, server, client, csport, NO_NAT, now);
	}
}

/* ---- FTP ---- */

/* n decimal numbers separated by commas, each at most 255, from s; false otherwise.
 * *end: just past the last. */
static bool ftp_numbers(const char *s, unsigned n, unsigned *v, const char **end)
{
	for (unsigned i = 0; i < n; i++) {
		if (*s < '0' || *s > '9')
			return false;
		unsigned x = 0;
		for (unsigned d = 0; *s >= '0' && *s <= '9'; s++, d++) {
			x = x * 10 + (unsigned)(*s - '0');
			if (d > 2 || x > 255)
				return false;
		}
		v[i] = x;
		if (i + 1 < n && *s++ != ',')
			return false;
	}
	*end = s;
	return true;
}

/* Where an announcement names an address: the span of its text in the line */
struct ftp_addr {
	uint8_t addr[16];
	uint16_t port;
	uint16_t at, len;       /* the address's text: line[at .. at + len) */
	bool comma;             /* h1,h2,h3,h4 (PORT, 227) rather than text (EPRT) */
};

/* "h1,h2,h3,h4,p1,p2" at line + at: an IPv4 address and a port */
static bool ftp_hostport(const char *line, unsigned at, struct ftp_addr *fa)
{
	unsigned v[6];
	const char *end;
	if (!ftp_numbers(line + at, 6, v, &end))
		return false;
	memset(fa->addr, 0, 16);
	for (unsigned i = 0; i < 4; i++)
		fa->addr[i] = (uint8_t)v[i];
	fa->port = (uint16_t)(v[4] << 8 | v[5]);
	/* the address is the first four numbers: up to the fourth comma */
	const char *p = line + at;
	for (unsigned commas = 0; commas < 4; p++)
		commas += *p == ',';
	fa->at = (uint16_t)at;
	fa->len = (uint16_t)(p - 1 - (line + at));
	fa->comma = true;
	return fa->port != 0;
}

/* a decimal port up to the delimiter d */
static const char *ftp_port(const char *s, char d, uint16_t *port)
{
	unsigned x = 0, n = 0;
	for (; *s >= '0' && *s <= '9'; s++, n++) {
		x = x * 10 + (unsigned)(*s - '0');
		if (n > 4 || x > 65535)
			return NULL;
	}
	if (n == 0 || *s != d || x == 0)
		return NULL;
	*port = (uint16_t)x;
	return s + 1;
}

/* EPRT's argument at line + at (RFC 2428): <d>af<d>addr<d>port<d>, af 1 (IPv4) or 2 */
static bool ftp_eprt(const char *line, unsigned at, uint8_t l3, struct ftp_addr *fa)
{
	const char *s = line + at;
	char d = *s++;
	if (d < 33 || d > 126)
		return false;
	char af = *s++;
	if ((af != '1' && af != '2') || *s++ != d || (af == '1') != (l3 == 4))
		return false;
	const char *end = strchr(s, d);
	if (end == NULL || end - s >= 64)
		return false;
	char text[64];
	memcpy(text, s, (size_t)(end - s));
	text[end - s] = 0;
	memset(fa->addr, 0, 16);
	if (inet_pton(af == '1' ? AF_INET : AF_INET6, text, fa->addr) != 1)
		return false;
	fa->at = (uint16_t)(s - line);
	fa->len = (uint16_t)(end - s);
	fa->comma = false;
	return ftp_port(end + 1, d, &fa->port) != NULL;
}

/* 229's answer: ...(<d><d><d>port<d>) */
static bool ftp_epsv(const char *s, uint16_t *port)
{
	const char *open = strchr(s, '(');
	if (open == NULL)
		return false;
	char d = open[1];
	if (d < 33 || d > 126 || open[2] != d || open[3] != d)
		return false;
	return ftp_port(open + 4, d, port) != NULL;
}

/* The TCP payload of pkt, which extraction found to have p->l4_payload bytes */
static const char *tcp_payload(const struct ferry_ct_pkt *pkt, const struct ct_pktctx *p, uint32_t *len)
{
	const uint8_t *ip = pkt->data + pkt->l3_ofs;
	uint32_t avail = pkt->len - pkt->l3_ofs;
	uint32_t l4_ofs;
	if (p->key.l3 == 4) {
		l4_ofs = (uint32_t)(ip[0] & 0x0f) * 4u;
	} else {
		if (ip[6] != IPPROTO_TCP_)
			return NULL; /* extension headers: not read by the helper */
		l4_ofs = 40;
	}
	if (l4_ofs + 20 > avail)
		return NULL;
	uint32_t doff = (uint32_t)(ip[l4_ofs + 12] >> 4) * 4u;
	if (l4_ofs + doff + p->l4_payload > avail)
		return NULL;
	*len = p->l4_payload;
	return (const char *)ip + l4_ofs + doff;
}

/* The text an address becomes in an announcement: "a,b,c,d" or a presentation form */
static unsigned addr_text(const uint8_t *addr, uint8_t l3, bool comma, char *out)
{
	if (comma)
		return (unsigned)snprintf(out, FERRY_NAT_TEXT_MAX, "%u,%u,%u,%u", addr[0], addr[1], addr[2], addr[3]);
	if (inet_ntop(l3 == 4 ? AF_INET : AF_INET6, addr, out, FERRY_NAT_TEXT_MAX) == NULL)
		return 0;
	return (unsigned)strlen(out);
}

/* Puts 'to' in place of the announced address and records the shift the edit leaves
 * in direction dir, for the segments after it (seq: this segment's, sender's
 * numbering). false: the edit does not fit (the announcement goes untranslated). */
static bool ftp_edit(const struct ferry_ct *ct, struct ct_conn *c, bool dir, uint32_t seq, const struct ftp_addr *fa,
		     const uint8_t *to, struct ferry_nat_tcp_edit *edit)
{
	char text[FERRY_NAT_TEXT_MAX];
	unsigned n = addr_text(to, c->key.l3, fa->comma, text);
	if (n == 0 || n >= FERRY_NAT_TEXT_MAX || fa->len > UINT8_MAX)
		return false;
	edit->pl_off = fa->at;
	edit->pl_old = (uint8_t)fa->len;
	edit->pl_new = (uint8_t)n;
	memcpy(edit->text, text, n);
	struct ct_seqadj *a = &ct->nat[c - ct->conns].seq[dir];
	int32_t grow = (int32_t)n - (int32_t)fa->len;
	if (!(c->flags & CONN_SEQADJ)) {
		memset(&ct->nat[c - ct->conns].seq, 0, sizeof(ct->nat[c - ct->conns].seq));
		c->flags |= CONN_SEQADJ;
	}
	/* a retransmission of the edited segment shifts as the first did */
	if ((int32_t)(seq - a->pos) > 0 || (a->before == 0 && a->after == 0)) {
		a->pos = seq;
		a->before = a->after;
		a->after += grow;
	}
	return true;
}

void ct_seqadj_of(const struct ferry_ct *ct, const struct ct_conn *c, bool dir, uint32_t seq, uint32_t ack,
		  int32_t *seq_add, int32_t *ack_add)
{
	const struct ct_seqadj *mine = &ct->nat[c - ct->conns].seq[dir];
	const struct ct_seqadj *theirs = &ct->nat[c - ct->conns].seq[!dir];
	*seq_add = (int32_t)(seq - mine->pos) > 0 ? mine->after : mine->before;
	/* an ack counts the other side's bytes as they arrived: shifted */
	*ack_add = -((int32_t)(ack - theirs->before - theirs->pos) > 0 ? theirs->after : theirs->before);
}

/* Reads one segment of an FTP control connection. Without NAT, an announcement sets
 * up the data connection's expectation. With NAT, an address on the translated side
 * is replaced by the one the other side sees (edit), and the expectation carries the
 * translation the data connection gets:
 *   SNAT, client's PORT/EPRT: its address becomes T's source; the server's
 *     connection to it is DNATed back to the client.
 *   SNAT, server's 227/229: the client's connection to the server is SNATed as the
 *     control connection is.
 *   DNAT, server's 227/229: its address becomes the one the client dialled; the
 *     client's connection to it is DNATed to the server.
 *   DNAT, client's PORT/EPRT: the server's connection to the client is SNATed to the
 *     address the client dialled. */
static void ftp_inspect(struct ferry_ct_thread *t, struct ct_conn *c, const struct ct_pktctx *p, bool reply,
			const struct ferry_ct_pkt *pkt, uint64_t now, struct ferry_nat_tcp_edit *edit)
{
	uint32_t n;
	const char *data = tcp_payload(pkt, p, &n);
	if (data == NULL || n < 4)
		return;
	char line[FTP_LINE_MAX];
	if (n >= sizeof(line))
		n = sizeof(line) - 1;
	memcpy(line, data, n);
	line[n] = 0;
	const uint8_t *client, *server;
	uint16_t csport, sport;
	conn_orig(c, &client, &server, &csport, &sport);
	struct ferry_ct *ct = t->ct;
	const struct ct_nat *nat = (c->flags & CONN_NAT) ? &ct->nat[c - ct->conns] : NULL;
	bool snat = nat && nat->kind == CT_NAT_SRC, dnat = nat && nat->kind == CT_NAT_DST;
	/* the server's and the client's addresses as each side sees them */
	const uint8_t *real_server = dnat ? nat->addr : server;
	uint8_t xlat_client[16];
	memcpy(xlat_client, snat ? nat->addr : client, 16);
	struct ftp_addr fa;
	if (!reply) {
		/* the client names where the server is to connect: its own address only */
		bool ok = (strncasecmp(line, "PORT ", 5) == 0 && c->key.l3 == 4 && ftp_hostport(line, 5, &fa)) ||
			  (strncasecmp(line, "EPRT ", 5) == 0 && ftp_eprt(line, 5, c->key.l3, &fa));
		if (!ok || memcmp(fa.addr, client, 16) != 0)
			return;
		if (snat) {
			if (!ftp_edit(ct, c, false, p->tcp_seq, &fa, xlat_client, edit))
				return;
			exp_add(t, c, FERRY_CT_ALG_FTP, IPPROTO_TCP_, server, xlat_client, fa.port,
				(struct exp_nat){ CT_NAT_DST, client, fa.port }, now);
		} else if (dnat) {
			exp_add(t, c, FERRY_CT_ALG_FTP, IPPROTO_TCP_, real_server, client, fa.port,
				(struct exp_nat){ CT_NAT_SRC, server, 0 }, now);
		} else {
			exp_add(t, c, FERRY_CT_ALG_FTP, IPPROTO_TCP_, server, client, fa.port, NO_NAT, now);
		}
		return;
	}
	/* the server names where the client is to connect: its own address only */
	uint16_t port;
	if (strncmp(line, "227", 3) == 0 && c->key.l3 == 4) {
		unsigned at = 3;
		while (line[at] && (line[at] < '0' || line[at] > '9'))
			at++;
		if (!ftp_hostport(line, at, &fa) || memcmp(fa.addr, real_server, 16) != 0)
			return;
		port = fa.port;
		if (dnat && !ftp_edit(ct, c, true, p->tcp_seq, &fa, server, edit))
			return;
	} else if (strncmp(line, "229", 3) == 0 && ftp_epsv(line + 3, &port)) {
		/* no address to edit */
	} else {
		return;
	}
	if (dnat)
		exp_add(t, c, FERRY_CT_ALG_FTP, IPPROTO_TCP_, client, server, port,
			(struct exp_nat){ CT_NAT_DST, real_server, port }, now);
	else if (snat)
		exp_add(t, c, FERRY_CT_ALG_FTP, IPPROTO_TCP_, client, server, port,
			(struct exp_nat){ CT_NAT_SRC, nat->addr, 0 }, now);
	else
		exp_add(t, c, FERRY_CT_ALG_FTP, IPPROTO_TCP_, client, server, port, NO_NAT, now);
}

void ct_alg_inspect(struct ferry_ct_thread *t, struct ct_conn *c, const struct ct_pktctx *p, bool reply,
		    const struct ferry_ct_pkt *pkt, uint64_t now, struct ferry_nat_tcp_edit *edit)
{
	/* a reassembled datagram's fragments go on as they came: no edit could reach them */
	if (c->alg == FERRY_CT_ALG_FTP && c->key.proto == IPPROTO_TCP_ && p->l4_payload > 0 && pkt != NULL &&
	    !((c->flags & CONN_NAT) && (pkt->flags & FERRY_CT_PKT_REASSEMBLED)))
		ftp_inspect(t, c, p, reply, pkt, now, edit);
}

/* ---- the control side ---- */

uint32_t ferry_ct_exp_count(const struct ferry_ct *ct)
{
	return atomic_load_explicit(&ct->n_exp, memory_order_relaxed);
}

uint32_t ferry_ct_exp_dump(struct ferry_ct *ct, uint32_t cursor, uint32_t max, uint64_t now, ferry_ct_exp_cb cb,
			   void *arg, bool *done)
{
	struct ct_exp_table *x = ct->exp;
	uint32_t given = 0;
	*done = false;
	for (uint32_t i = cursor; i < FERRY_CT_EXP_MAX; i++) {
		if (max && given >= max)
			return i;
		struct ferry_ct_exp_entry e;
		pthread_mutex_lock(&x->lock);
		const struct ct_exp *y = &x->e[i];
		bool live = y->used && now < y->expiration;
		if (live) {
			memset(&e, 0, sizeof(e));
			unsigned alen = y->l3 == 4 ? 4 : 16;
			memcpy(e.src, y->src, alen);
			memcpy(e.dst, y->dst, alen);
			e.dport = y->dport;
			e.zone = y->zone;
			e.proto = y->proto;
			e.ip_version = y->l3;
			e.alg = y->alg;
			uint64_t left = (y->expiration - now) / 1000000ull;
			e.timeout_ms = left > UINT32_MAX ? UINT32_MAX : (uint32_t)left;
			e.mark = y->mark;
			memcpy(e.label, y->label, 16);
			/* the parent lives while its expectations do (they leave with it) */
			const uint8_t *ps, *pd;
			conn_orig(&ct->conns[y->parent], &ps, &pd, &e.parent_sport, &e.parent_dport);
			memcpy(e.parent_src, ps, alen);
			memcpy(e.parent_dst, pd, alen);
		}
		pthread_mutex_unlock(&x->lock);
		if (live) {
			given++;
			if (cb(arg, &e) != 0)
				return i + 1;
		}
	}
	*done = true;
	return 0;
}
