/*
 * nfq_accept: the minimal libnetfilter_queue handler qguard is measured
 * against. It accepts every packet on one queue.
 *
 * Usage: nfq_accept QUEUE_NUM BATCH MAXLEN RCVBUF [gso]
 *
 * With BATCH > 1 it sends one nfq_set_verdict_batch per BATCH packets, and
 * also whenever the socket runs dry, so no packet waits for a batch to fill.
 * With BATCH == 1 it sends one nfq_set_verdict per packet. With "gso" it
 * asks for NFQA_CFG_F_GSO, as qguard's daemon does by default: GSO
 * super-packets are queued whole instead of segmented first.
 *
 * It prints "ready" on stdout once the queue is bound, and on SIGTERM or
 * SIGINT it verdicts what it holds, unbinds and prints "received N".
 *
 * Build: cc -O2 -o nfq_accept nfq_accept.c -lnetfilter_queue
 */
#define _GNU_SOURCE /* ppoll */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <linux/netlink.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

#ifndef NETLINK_NO_ENOBUFS
#define NETLINK_NO_ENOBUFS 5
#endif

static volatile sig_atomic_t stop;
static unsigned long batch = 32;
static unsigned long pending;   /* packets not yet verdicted */
static uint32_t last_id;        /* highest id received */
static unsigned long long received;

static void on_signal(int sig) { (void)sig; stop = 1; }

static void flush(struct nfq_q_handle *qh)
{
	if (pending == 0)
		return;
	if (nfq_set_verdict_batch(qh, last_id, NF_ACCEPT) < 0)
		perror("nfq_set_verdict_batch");
	pending = 0;
}

static int on_packet(struct nfq_q_handle *qh, struct nfgenmsg *m,
		     struct nfq_data *d, void *data)
{
	struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(d);
	(void)m; (void)data;
	if (ph == NULL)
		return 0;
	uint32_t id = ntohl(ph->packet_id);
	received++;
	if (batch <= 1)
		return nfq_set_verdict(qh, id, NF_ACCEPT, 0, NULL);
	last_id = id;
	if (++pending >= batch)
		flush(qh);
	return 0;
}

static unsigned long arg(char **argv, int i, const char *name)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(argv[i], &end, 10);
	if (errno != 0 || *end != '\0') {
		fprintf(stderr, "nfq_accept: bad %s \"%s\"\n", name, argv[i]);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	if (argc != 5 && !(argc == 6 && strcmp(argv[5], "gso") == 0)) {
		fprintf(stderr, "usage: nfq_accept QUEUE_NUM BATCH MAXLEN RCVBUF [gso]\n");
		return 2;
	}
	unsigned long num = arg(argv, 1, "QUEUE_NUM");
	batch = arg(argv, 2, "BATCH");
	unsigned long maxlen = arg(argv, 3, "MAXLEN");
	unsigned long rcvbuf = arg(argv, 4, "RCVBUF");

	/* SIGTERM and SIGINT stay blocked except inside ppoll, which unblocks
	 * them atomically: a signal that came while a batch was handled is
	 * delivered there (EINTR) instead of before a blocking recv that would
	 * then wait forever on an idle queue. */
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigset_t stopsigs, waitmask;
	sigemptyset(&stopsigs);
	sigaddset(&stopsigs, SIGTERM);
	sigaddset(&stopsigs, SIGINT);
	sigprocmask(SIG_BLOCK, &stopsigs, &waitmask);
	sigdelset(&waitmask, SIGTERM);
	sigdelset(&waitmask, SIGINT);

	struct nfq_handle *h = nfq_open();
	if (h == NULL) {
		perror("nfq_open");
		return 1;
	}
	struct nfq_q_handle *qh = nfq_create_queue(h, (uint16_t)num, on_packet, NULL);
	if (qh == NULL) {
		perror("nfq_create_queue");
		return 1;
	}
	if (nfq_set_mode(qh, NFQNL_COPY_PACKET, 0xffff) < 0) {
		perror("nfq_set_mode");
		return 1;
	}
	if (maxlen > 0 && nfq_set_queue_maxlen(qh, (uint32_t)maxlen) < 0) {
		perror("nfq_set_queue_maxlen");
		return 1;
	}
	if (argc == 6 && nfq_set_queue_flags(qh, NFQA_CFG_F_GSO, NFQA_CFG_F_GSO) < 0) {
		perror("nfq_set_queue_flags NFQA_CFG_F_GSO");
		return 1;
	}
	int fd = nfq_fd(h);
	if (rcvbuf > 0) {
		/* Forced where allowed (root), else capped by rmem_max. */
		int sz = (int)rcvbuf;
		if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) < 0)
			setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	}
	int one = 1;
	if (setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof(one)) < 0)
		perror("setsockopt NETLINK_NO_ENOBUFS");

	printf("ready\n");
	fflush(stdout);

	static char buf[256 * 1024] __attribute__((aligned));
	while (!stop) {
		/* Drain without blocking; flush the batch when the socket runs dry. */
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			flush(qh);
			struct pollfd pfd = {.fd = fd, .events = POLLIN};
			if (ppoll(&pfd, 1, NULL, &waitmask) < 0 && errno != EINTR) {
				perror("ppoll");
				break;
			}
			continue;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ENOBUFS)
				continue;
			perror("recv");
			break;
		}
		nfq_handle_packet(h, buf, (int)n);
	}
	flush(qh);
	nfq_destroy_queue(qh);
	nfq_close(h);
	printf("received %llu\n", received);
	return 0;
}
