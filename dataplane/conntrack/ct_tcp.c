/* TCP tracking after pf, as OVS does it (conntrack.md section 5, which this file
 * follows step by step): flag validity, the per-peer sequence window
 * [seqlo, seqhi], window scaling, the strict check, the loose check that accepts
 * but does not refresh the timeout, and reuse of a closed connection by a new SYN. */
#include "ct_private.h"

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_PSH 0x08
#define TCP_ACK 0x10
#define TCP_URG 0x20

/* how far an ACK may lag behind or run ahead of what the other side sent */
#define MAXACKWINDOW (0xffff + 1500)

#define SEQ_LT(a, b) ((int32_t)((a) - (b)) < 0)
#define SEQ_GT(a, b) ((int32_t)((a) - (b)) > 0)
#define SEQ_GEQ(a, b) ((int32_t)((a) - (b)) >= 0)

enum {
	CLOSED = FERRY_CT_TCP_STATE_CLOSED,
	SYN_SENT = FERRY_CT_TCP_STATE_SYN_SENT,
	ESTABLISHED = FERRY_CT_TCP_STATE_ESTABLISHED,
	CLOSING = FERRY_CT_TCP_STATE_CLOSING,
	FIN_WAIT_2 = FERRY_CT_TCP_STATE_FIN_WAIT_2,
	TIME_WAIT = FERRY_CT_TCP_STATE_TIME_WAIT,
};

/* 5.2: SYN with RST or FIN; neither SYN, ACK nor RST; FIN, PSH or URG without ACK */
static bool tcp_invalid_flags(uint8_t f)
{
	if ((f & TCP_SYN) && (f & (TCP_RST | TCP_FIN)))
		return true;
	if (!(f & TCP_SYN) && !(f & (TCP_ACK | TCP_RST)))
		return true;
	if (!(f & TCP_ACK) && (f & (TCP_FIN | TCP_PSH | TCP_URG)))
		return true;
	return false;
}

static bool tcp_valid_new(struct ferry_ct_thread *t, const struct ct_pktctx *p)
{
	if (tcp_invalid_flags(p->tcp_flags)) {
		ct_count_invalid(t, FERRY_CT_INVALID_REASON_TCP_FLAGS);
		return false;
	}
	/* a SYN-ACK answers a SYN this tracker never saw */
	if ((p->tcp_flags & (TCP_SYN | TCP_ACK)) == (TCP_SYN | TCP_ACK)) {
		ct_count_invalid(t, FERRY_CT_INVALID_REASON_NO_CONN);
		return false;
	}
	return true;
}

static void tcp_new_conn(struct ferry_ct *ct, struct ct_conn *c, const struct ct_pktctx *p)
{
	struct ct_tcp_peer *src = &c->peer[0], *dst = &c->peer[1];
	src->seqlo = p->tcp_seq;
	src->seqhi = p->tcp_seq + p->l4_payload + 1;
	if (p->tcp_flags & TCP_SYN) {
		src->seqhi++;
		src->wscale = p->tcp_wscale;
	} else {
		/* picked up mid-stream: neither scale is known */
		src->wscale = CT_WSCALE_UNKNOWN;
		dst->wscale = CT_WSCALE_UNKNOWN;
		c->flags |= CONN_LIBERAL;
	}
	uint32_t win = p->tcp_win ? p->tcp_win : 1;
	if (src->wscale & CT_WSCALE_FLAG) {
		unsigned s = src->wscale & CT_WSCALE_MASK;
		win = (win + (1u << s) - 1) >> s;
	}
	src->max_win = (uint16_t)win;
	if (p->tcp_flags & TCP_FIN)
		src->seqhi++;
	dst->seqlo = 0;
	dst->seqhi = 1;
	dst->max_win = 1;
	if (p->tcp_flags & TCP_SYN)
		dst->wscale = 0;
	src->state = SYN_SENT;
	dst->state = CLOSED;
	c->tm = FERRY_CT_TM_TCP_SYN_SENT;
	(void)ct;
}

/* the timeout class for the peers' states (5.4 step 7, first matching rule) */
static uint8_t tcp_tm(const struct ct_tcp_peer *a, const struct ct_tcp_peer *b)
{
	if (a->state >= FIN_WAIT_2 && b->state >= FIN_WAIT_2)
		return FERRY_CT_TM_TCP_CLOSE;
	if (a->state >= CLOSING && b->state >= CLOSING)
		return FERRY_CT_TM_TCP_TIME_WAIT;
	if (a->state < ESTABLISHED || b->state < ESTABLISHED)
		return FERRY_CT_TM_TCP_SYN_RECV;
	if (a->state >= CLOSING || b->state >= CLOSING)
		return FERRY_CT_TM_TCP_FIN_WAIT;
	return FERRY_CT_TM_TCP_ESTABLISHED;
}

/* An accepted packet moves the windows (5.4 steps 7 and 8 alike): the sender's
 * largest window and lowest expected sequence, and how far the other side may send. */
static inline void advance_windows(struct ct_tcp_peer *src, struct ct_tcp_peer *dst, uint32_t win, unsigned sws,
				   uint32_t end, uint32_t ack)
{
	if (src->max_win < win)
		src->max_win = (uint16_t)win;
	if (SEQ_GT(end, src->seqlo))
		src->seqlo = end;
	uint32_t wnd = win << sws;
	if (SEQ_GEQ(ack + wnd, dst->seqhi))
		dst->seqhi = ack + (wnd ? wnd : 1);
}

static enum ct_update tcp_update(struct ferry_ct_thread *t, struct ct_conn *c, const struct ct_pktctx *p,
				 bool reply, bool *refresh)
{
	struct ct_tcp_peer *src = &c->peer[reply], *dst = &c->peer[!reply];
	uint8_t flags = p->tcp_flags;
	*refresh = false;

	/* 1. flags */
	if (tcp_invalid_flags(flags)) {
		ct_count_invalid(t, FERRY_CT_INVALID_REASON_TCP_FLAGS);
		return CT_UPDATE_INVALID;
	}
	/* 2. a pure SYN: reuse of a closed connection, or a retransmitted SYN */
	if ((flags & (TCP_SYN | TCP_ACK)) == TCP_SYN) {
		if (dst->state >= FIN_WAIT_2 && src->state >= FIN_WAIT_2) {
			src->state = dst->state = CLOSED;
			return CT_UPDATE_NEW;
		}
		if (src->state <= SYN_SENT) {
			src->state = SYN_SENT;
			c->tm = FERRY_CT_TM_TCP_SYN_SENT;
			*refresh = true;
			return CT_UPDATE_VALID_NEW;
		}
	}
	/* 3. window scaling in force */
	unsigned sws = 0, dws = 0;
	if (!(flags & TCP_SYN)) {
		if ((src->wscale & CT_WSCALE_FLAG) && (dst->wscale & CT_WSCALE_FLAG)) {
			sws = src->wscale & CT_WSCALE_MASK;
			dws = dst->wscale & CT_WSCALE_MASK;
		} else if ((src->wscale & CT_WSCALE_UNKNOWN) && (dst->wscale & CT_WSCALE_UNKNOWN)) {
			sws = dws = 14; /* TCP_MAX_WSCALE: be liberal with a stream picked up mid-way */
		}
	}
	uint32_t seq = p->tcp_seq, ack = p->tcp_ack, end;
	uint32_t win = p->tcp_win;
	bool check_ackskew = true;

	if (src->state < SYN_SENT) {
		/* 4. the first packet from this peer */
		end = seq + p->l4_payload;
		if (flags & TCP_SYN) {
			end++;
			if (dst->wscale & CT_WSCALE_FLAG) {
				src->wscale = p->tcp_wscale;
				if (src->wscale & CT_WSCALE_FLAG) {
					sws = src->wscale & CT_WSCALE_MASK;
					win = (win + (1u << sws) - 1) >> sws;
					dws = dst->wscale & CT_WSCALE_MASK;
				} else {
					/* the other side offered scaling, this one did not: none */
					dst->max_win = (uint16_t)(dst->max_win << (dst->wscale & CT_WSCALE_MASK));
					dst->wscale = 0;
				}
			}
		}
		if (flags & TCP_FIN)
			end++;
		src->seqlo = seq;
		src->state = SYN_SENT;
		uint32_t reach = (uint32_t)dst->max_win << dws;
		if (reach == 0)
			reach = 1;
		if (src->seqhi == 1 || SEQ_GEQ(end + reach, src->seqhi)) {
			src->seqhi = end + reach;
			/* the other side's sequence is not known yet (pickup, migration) */
			check_ackskew = false;
		}
		if (win > src->max_win)
			src->max_win = (uint16_t)win;
	} else {
		end = seq + p->l4_payload;
		if (flags & TCP_SYN)
			end++;
		if (flags & TCP_FIN)
			end++;
	}

	/* 5. the ACK value to check */
	if (!(flags & TCP_ACK))
		ack = dst->seqlo;
	else if ((flags & (TCP_ACK | TCP_RST)) == (TCP_ACK | TCP_RST) && ack == 0)
		ack = dst->seqlo;

	uint32_t orig_seq = seq;
	/* 6. no data: the packet is at the sender's edge */
	if (seq == end)
		seq = end = src->seqlo;

	int32_t ackskew = check_ackskew ? (int32_t)(dst->seqlo - ack) : 0;
	uint32_t back = (uint32_t)dst->max_win << dws;
	bool seq_check = atomic_load_explicit(&t->ct->tcp_seq_check, memory_order_relaxed);

	/* 7. strict check */
	if (!seq_check ||
	    (SEQ_GEQ(src->seqhi, end) && SEQ_GEQ(seq, src->seqlo - back) && ackskew >= -MAXACKWINDOW &&
	     ackskew <= (MAXACKWINDOW << sws) &&
	     (!(flags & TCP_RST) || orig_seq == src->seqlo || orig_seq == src->seqlo + 1 ||
	      orig_seq + 1 == src->seqlo))) {
		advance_windows(src, dst, win, sws, end, ack);
		if ((flags & TCP_SYN) && src->state < SYN_SENT)
			src->state = SYN_SENT;
		if ((flags & TCP_FIN) && src->state < CLOSING)
			src->state = CLOSING;
		if (flags & TCP_ACK) {
			if (dst->state == SYN_SENT)
				dst->state = ESTABLISHED;
			else if (dst->state == CLOSING)
				dst->state = FIN_WAIT_2;
		}
		if (flags & TCP_RST)
			src->state = dst->state = TIME_WAIT;
		c->tm = tcp_tm(src, dst);
		*refresh = true;
		return CT_UPDATE_VALID;
	}
	/* 8. loose check: accepted, but the timeout is not refreshed, so a flood of such
	 * packets cannot keep the entry alive */
	if ((dst->state < SYN_SENT || dst->state >= FIN_WAIT_2 || src->state >= FIN_WAIT_2) &&
	    SEQ_GEQ(src->seqhi + MAXACKWINDOW, end) && SEQ_GEQ(seq, src->seqlo - MAXACKWINDOW)) {
		advance_windows(src, dst, win, sws, end, ack);
		if ((flags & TCP_FIN) && src->state < CLOSING)
			src->state = CLOSING;
		if (flags & TCP_RST)
			src->state = dst->state = TIME_WAIT;
		return CT_UPDATE_VALID;
	}
	/* 9. out of window: inv, and the entry stays */
	ct_count_invalid(t, FERRY_CT_INVALID_REASON_TCP_SEQ);
	return CT_UPDATE_INVALID;
}

const struct ct_l4_ops ct_tcp_ops = {
	.valid_new = tcp_valid_new,
	.new_conn = tcp_new_conn,
	.update = tcp_update,
};
