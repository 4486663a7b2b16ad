/*
 * udp_encap.c — holds a UDP socket with UDP_ENCAP_ESPINUDP for the kernel
 * lab (tests/lab/scenarios).  The kernel decapsulates ESP-in-UDP (RFC
 * 3948) only on a socket marked this way; without one, inbound datagrams
 * to port 4500 never reach XFRM.  The overlay's xfrm backend opens the
 * same socket itself; scenarios that configure XFRM by hand with iproute2
 * run this instead.
 *
 * Usage: udp_encap [-a ADDR] PORT
 * Binds ADDR:PORT (IPv4, default any), sets the option, prints "ready"
 * on stdout, and waits until SIGTERM or SIGINT.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int udp_encap_usage(void)
{
	fprintf(stderr, "usage: udp_encap [-a ADDR] PORT\n");
	return 2;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sin;
	const char *addr = "0.0.0.0";
	int type = UDP_ENCAP_ESPINUDP;
	sigset_t set;
	char *end;
	long port;
	int fd, opt, sig;

	while ((opt = getopt(argc, argv, "a:")) != -1) {
		if (opt != 'a')
			return udp_encap_usage();
		addr = optarg;
	}
	if (optind != argc - 1)
		return udp_encap_usage();
	errno = 0;
	port = strtol(argv[optind], &end, 10);
	if (errno || *end || port < 1 || port > 65535)
		return udp_encap_usage();

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((unsigned short)port);
	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1)
		return udp_encap_usage();

	/* Block the stop signals before anything else can deliver them. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (sigprocmask(SIG_BLOCK, &set, NULL) != 0) {
		perror("udp_encap: sigprocmask");
		return 1;
	}
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0) {
		perror("udp_encap: socket");
		return 1;
	}
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
		perror("udp_encap: bind");
		return 1;
	}
	if (setsockopt(fd, IPPROTO_UDP, UDP_ENCAP, &type, sizeof(type)) != 0) {
		perror("udp_encap: setsockopt UDP_ENCAP");
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	if (sigwait(&set, &sig) != 0)
		return 1;
	close(fd);
	return 0;
}
