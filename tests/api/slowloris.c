/*
 * slowloris.c — a slow HTTP client for tests/api/slowloris.sh: it holds
 * many connections open that each send part of a request header and then
 * dribble one more byte now and then, while a normal client keeps asking
 * the same server for GET /healthz.  Then it closes every slow connection
 * and measures how long the server takes to answer again.
 *
 * usage: slowloris -t PORT [-n CONNS] [-a ADDRS] [-s FIRST] [-h HOLD_MS]
 *                  [-d DRIBBLE_MS] [-w PROBE_GAP_MS]
 *   -n  slow connections to open (default 1000)
 *   -a  spread them over this many source addresses 127.0.0.FIRST.. (1)
 *   -s  first source address' last byte (default 2; the probe uses
 *       127.0.0.1, so it never shares an address with the attackers)
 *   -h  how long to hold them (default 3000 ms)
 *   -d  interval between dribbled bytes on each connection (default 500)
 *   -w  gap between two probe requests (default 20 ms)
 *
 * Prints one line of key=value figures:
 *   opened   slow connections whose TCP connect succeeded
 *   held     those the server had not closed at the end of the hold
 *   probes, failed, p50_ms, p99_ms, max_ms
 *            normal requests made while they were held (a probe fails
 *            when no complete "HTTP/1.1 200" status line arrives within
 *            3 s)
 *   recovery_ms
 *            from closing the slow connections until a probe succeeds
 *            (-1: none did within 10 s)
 * Only loopback is used.  Exit status 0 unless the tool itself failed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PROBE_TIMEOUT_MS 3000
#define RECOVERY_MAX_MS 10000
#define PROBES_MAX 100000

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void
addr_of(struct sockaddr_in *sin, unsigned last, unsigned port)
{
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)port);
	sin->sin_addr.s_addr = htonl(0x7f000000u | last);
}

/* A non-blocking socket from 127.0.0.src, connecting to port. */
static int
open_from(unsigned src, unsigned port)
{
	struct sockaddr_in from, to;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd == -1)
		return -1;
	addr_of(&from, src, 0);
	addr_of(&to, 1, port);
	if (bind(fd, (struct sockaddr *)&from, sizeof(from)) == -1 ||
	    (connect(fd, (struct sockaddr *)&to, sizeof(to)) == -1 &&
	    errno != EINPROGRESS)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Waits until fd is writable (connected) or ms pass; 0 when connected. */
static int
wait_connected(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	int soerr = 0;
	socklen_t len = sizeof(soerr);

	if (poll(&p, 1, ms) != 1)
		return -1;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == -1 ||
	    soerr != 0)
		return -1;
	return 0;
}

/*
 * One normal request from 127.0.0.1; its latency in ms, or -1 when no
 * 200 status line arrived within PROBE_TIMEOUT_MS.
 */
static double
probe(unsigned port)
{
	static const char req[] = "GET /healthz HTTP/1.1\r\nHost: probe\r\n"
	    "Connection: close\r\n\r\n";
	char buf[512];
	size_t got = 0;
	double t0 = now_ms(), left;
	struct pollfd p;
	ssize_t n;
	int fd = open_from(1, port), ok = 0;

	if (fd == -1)
		return -1;
	if (wait_connected(fd, PROBE_TIMEOUT_MS) == -1 ||
	    send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) !=
	    (ssize_t)(sizeof(req) - 1))
		goto out;
	while (got < 12) {
		left = PROBE_TIMEOUT_MS - (now_ms() - t0);
		p.fd = fd;
		p.events = POLLIN;
		if (left <= 0 || poll(&p, 1, (int)left) != 1)
			goto out;
		n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
		if (n <= 0)
			goto out;
		got += (size_t)n;
	}
	ok = strncmp(buf, "HTTP/1.1 200", 12) == 0;
out:
	close(fd);
	return ok ? now_ms() - t0 : -1;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* True when the server has closed (or answered on) fd. */
static int
server_closed(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };

	return poll(&p, 1, 0) == 1;
}

int
main(int argc, char **argv)
{
	static const char head[] = "GET /healthz HTTP/1.1\r\nHost: slow\r\n"
	    "X-Slow: ";
	unsigned port = 0, nconn = 1000, naddr = 1, first = 2;
	unsigned hold = 3000, dribble = 500, gap = 20;
	double *lat, t_end, t_next_dribble, t0, rec = -1, l;
	size_t nprobe = 0, failed = 0, opened = 0, held = 0, i;
	struct rlimit rl;
	int *fds, ch;

	while ((ch = getopt(argc, argv, "t:n:a:s:h:d:w:")) != -1) {
		unsigned long v = strtoul(optarg, NULL, 10);

		switch (ch) {
		case 't': port = (unsigned)v; break;
		case 'n': nconn = (unsigned)v; break;
		case 'a': naddr = (unsigned)v; break;
		case 's': first = (unsigned)v; break;
		case 'h': hold = (unsigned)v; break;
		case 'd': dribble = (unsigned)v; break;
		case 'w': gap = (unsigned)v; break;
		default:
			fprintf(stderr, "usage: slowloris -t PORT [-n CONNS] "
			    "[-a ADDRS] [-s FIRST] [-h HOLD_MS] [-d MS] "
			    "[-w MS]\n");
			return 2;
		}
	}
	if (port == 0 || port > 65535 || naddr == 0 || first < 2 ||
	    first + naddr > 255 || nconn == 0 || dribble == 0) {
		fprintf(stderr, "slowloris: bad arguments\n");
		return 2;
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < nconn + 64) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	fds = calloc(nconn, sizeof(*fds));
	lat = calloc(PROBES_MAX, sizeof(*lat));
	if (fds == NULL || lat == NULL)
		return 1;

	for (i = 0; i < nconn; i++) {
		fds[i] = open_from(first + (unsigned)(i % naddr), port);
		if (fds[i] != -1 && wait_connected(fds[i], 200) == 0 &&
		    send(fds[i], head, sizeof(head) - 1, MSG_NOSIGNAL) > 0) {
			opened++;
			continue;
		}
		if (fds[i] != -1)
			close(fds[i]);
		fds[i] = -1;
	}

	/* Hold: dribble a byte on every connection, probe in between. */
	t_end = now_ms() + hold;
	t_next_dribble = now_ms() + dribble;
	while (now_ms() < t_end && nprobe < PROBES_MAX) {
		if (now_ms() >= t_next_dribble) {
			for (i = 0; i < nconn; i++)
				if (fds[i] != -1)
					(void)send(fds[i], "x", 1,
					    MSG_NOSIGNAL | MSG_DONTWAIT);
			t_next_dribble += dribble;
		}
		l = probe(port);
		if (l < 0) {
			failed++;
			l = PROBE_TIMEOUT_MS;
		}
		lat[nprobe++] = l;
		usleep(gap * 1000);
	}
	for (i = 0; i < nconn; i++)
		if (fds[i] != -1 && !server_closed(fds[i]))
			held++;

	/* Leave, then wait for the first answer. */
	for (i = 0; i < nconn; i++)
		if (fds[i] != -1)
			close(fds[i]);
	t0 = now_ms();
	while (now_ms() - t0 < RECOVERY_MAX_MS) {
		if (probe(port) >= 0) {
			rec = now_ms() - t0;
			break;
		}
		usleep(10 * 1000);
	}

	qsort(lat, nprobe, sizeof(*lat), cmp_double);
	printf("opened=%zu held=%zu probes=%zu failed=%zu p50_ms=%.1f "
	    "p99_ms=%.1f max_ms=%.1f recovery_ms=%.0f\n", opened, held, nprobe,
	    failed, nprobe > 0 ? lat[nprobe / 2] : -1.0,
	    nprobe > 0 ? lat[(nprobe * 99) / 100 < nprobe ?
	    (nprobe * 99) / 100 : nprobe - 1] : -1.0,
	    nprobe > 0 ? lat[nprobe - 1] : -1.0, rec);
	free(fds);
	free(lat);
	return 0;
}
