/*
 * test_overlay_nonce.c — the uesp backend end to end on loopback, in a
 * network namespace of its own (unshare: nothing of the host's network is
 * touched, and nothing is left behind when the process exits).
 *
 * What a user checks on the wire:
 *  - an AES-GCM nonce (key, IV) is never sealed twice: the test plays the
 *    peer, captures every ESP datagram, and knows the key behind each;
 *    the three paths that used to restart the counter — a lifetime-only
 *    edit of meshwan-uesp's file, a tunnel re-made with the same key, a
 *    restart on the same reservation file — each followed by traffic;
 *  - the reservation file itself: marks ahead of use, fsynced, a key
 *    resuming above its mark after a restart, damage and locking refused;
 *  - an authenticated peer cannot inject inner packets from sources the
 *    tunnel does not allow (a forged source through real ESP);
 *  - inbound SPIs are unique across the instance's tunnels.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "lib/log.h"
#include "lib/util.h"
#include "overlay/overlay.h"
#include "overlay/uesp/esp.h"
#include "overlay/uesp/uesp_cfg.h"
#include "overlay/uesp/uesp_seq.h"

static char tmpdir[64];

static void
sysctl_write(const char *path, const char *v)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, v, strlen(v)), (ssize_t)strlen(v));
	close(fd);
}

static int
setup(void **state)
{
	struct ifreq ifr;
	int fd;

	if (unshare(CLONE_NEWNET) < 0) {
		fprintf(stderr, "unshare(CLONE_NEWNET): %s (needs root)\n",
		    strerror(errno));
		return -1;
	}
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "lo");
	if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		return -1;
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		return -1;
	close(fd);
	/* Quiet devices (no IPv6 chatter) and forged sources not filtered
	 * by the kernel before uesp's own check is what is tested. */
	sysctl_write("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1");
	sysctl_write("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
	sysctl_write("/proc/sys/net/ipv4/conf/all/rp_filter", "0");
	sysctl_write("/proc/sys/net/ipv4/conf/default/rp_filter", "0");
	strcpy(tmpdir, "/tmp/test_nonce.XXXXXX");
	return mkdtemp(tmpdir) != NULL ? 0 : -1;
}

static int
teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static int
udp_bound(const char *addr, uint16_t port)
{
	struct sockaddr_in sin;
	int fd, one = 1;

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(port);
	assert_int_equal(inet_pton(AF_INET, addr, &sin.sin_addr), 1);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	return fd;
}

static void
udp_send(int fd, const char *addr, uint16_t port, const void *buf, size_t len)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(port);
	assert_int_equal(inet_pton(AF_INET, addr, &sin.sin_addr), 1);
	assert_int_equal(sendto(fd, buf, len, 0, (struct sockaddr *)&sin,
	    sizeof(sin)), (ssize_t)len);
}

/* One datagram within ms, or -1. */
static ssize_t
udp_recv(int fd, void *buf, size_t len, int ms, struct sockaddr_in *from)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	socklen_t fl = sizeof(*from);

	if (poll(&pfd, 1, ms) != 1)
		return -1;
	return recvfrom(fd, buf, len, 0, (struct sockaddr *)from, &fl);
}

/* ---- nonces on the wire ------------------------------------------------- */

#define NONCE_MAX 256
static struct { int key; uint32_t spi; uint64_t iv; } seen[NONCE_MAX];
static unsigned nseen;

/*
 * Send n inner packets into the tunnel and capture the n ESP datagrams
 * they become, recording (key, IV); key is the key the test configured
 * for the outbound SA.  Returns how many were captured (keepalives and
 * other chatter skipped).
 */
static unsigned
send_and_capture(int cap, int key, unsigned n)
{
	uint8_t buf[2048];
	struct sockaddr_in from;
	uint64_t deadline = util_mono_ms() + 5000;
	unsigned got = 0, i;
	ssize_t r;
	int fd;

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	for (i = 0; i < n; i++)
		udp_send(fd, "169.254.9.1", 9, "nonce", 5);
	close(fd);
	while (got < n && util_mono_ms() < deadline) {
		r = udp_recv(cap, buf, sizeof(buf), 100, &from);
		if (r < ESP_HDR_LEN + ESP_ICV_LEN)
			continue;
		assert_true(nseen < NONCE_MAX);
		seen[nseen].key = key;
		seen[nseen].spi = (uint32_t)buf[0] << 24 |
		    (uint32_t)buf[1] << 16 | (uint32_t)buf[2] << 8 | buf[3];
		seen[nseen].iv = 0;
		for (i = 8; i < 16; i++)
			seen[nseen].iv = seen[nseen].iv << 8 | buf[i];
		nseen++;
		got++;
	}
	return got;
}

static void
assert_no_repeated_nonce(void)
{
	unsigned i, j;

	for (i = 0; i < nseen; i++)
		for (j = i + 1; j < nseen; j++)
			if (seen[i].key == seen[j].key && seen[i].iv == seen[j].iv)
				fail_msg("key %d sealed IV %llu twice (datagrams "
				    "%u and %u)", seen[i].key,
				    (unsigned long long)seen[i].iv, i, j);
}

#define KEY(c) #c #c #c #c #c #c #c #c #c #c #c #c #c #c #c #c \
	#c #c #c #c #c #c #c #c #c #c #c #c #c #c #c #c \
	#c #c #c #c #c #c #c #c #c #c #c #c #c #c #c #c \
	#c #c #c #c #c #c #c #c #c #c #c #c #c #c #c #c

/* The file meshwan-uesp would read; apply it to the running backend. */
static int
apply(const struct overlay_ops *o, void *ctx, struct uesp_cfg *cur,
    const char *dev, const char *outkey, const char *hard)
{
	char path[128], json[2048];
	struct uesp_cfg *want;
	FILE *f;
	int rc;

	snprintf(json, sizeof(json),
	    "{\"tunnels\": [{\"id\": 9, \"device\": \"%s\", "
	    "\"local\": \"127.0.0.1\", \"remote\": \"127.0.0.2\", "
	    "\"remote_port\": 4600, \"inner\": \"169.254.9.0/31\", "
	    "\"peer\": \"169.254.9.1\", \"mtu\": 1400, \"sas\": ["
	    "{\"dir\": \"out\", \"spi\": 4097, \"key\": \"%s\", "
	    "\"salt\": \"01020304\", \"hard\": {\"seconds\": %s}}, "
	    "{\"dir\": \"in\", \"spi\": 4098, \"key\": \"%s\", "
	    "\"salt\": \"01020304\"}]}]}", dev, outkey, hard, KEY(9));
	snprintf(path, sizeof(path), "%s/uesp.json", tmpdir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(json, f);
	fclose(f);
	want = uesp_cfg_load(path);
	assert_non_null(want);
	rc = uesp_cfg_apply(o, ctx, cur, want);
	uesp_cfg_free(want);
	return rc;
}

static void
start(const struct overlay_ops *o, void **ctx, const char *seq)
{
	struct overlay_init_params ip;

	memset(&ip, 0, sizeof(ip));
	ip.udp_port = 4500;
	ip.workers = 1;
	ip.no_udp_gso = true;
	ip.seq_file = seq;
	assert_int_equal(o->init(&ip, ctx), 0);
}

static void
test_nonce_never_repeats(void **state)
{
	const struct overlay_ops *o = overlay_find("uesp");
	struct uesp_cfg *cur;
	char seq[128];
	uint64_t before;
	void *ctx;
	int cap;
	unsigned i;

	snprintf(seq, sizeof(seq), "%s/uesp.json.seq", tmpdir);
	cap = udp_bound("127.0.0.2", 4600);
	start(o, &ctx, seq);
	cur = uesp_cfg_empty();
	assert_int_equal(apply(o, ctx, cur, "nonce0", KEY(1), "0"), 0);
	assert_int_equal(send_and_capture(cap, 1, 4), 4);

	/* 1. Only the lifetimes change. */
	assert_int_equal(apply(o, ctx, cur, "nonce0", KEY(1), "3600"), 0);
	assert_int_equal(send_and_capture(cap, 1, 4), 4);
	assert_no_repeated_nonce();

	/* 2. The tunnel must be re-made (new device), same outbound key:
	 * refused as a whole, the running tunnel goes on. */
	assert_int_not_equal(apply(o, ctx, cur, "nonce1", KEY(1), "3600"), 0);
	assert_int_equal(send_and_capture(cap, 1, 4), 4);
	assert_no_repeated_nonce();
	/* With a new key it is re-made. */
	assert_int_equal(apply(o, ctx, cur, "nonce1", KEY(2), "3600"), 0);
	assert_int_equal(send_and_capture(cap, 2, 4), 4);
	assert_no_repeated_nonce();

	/* 3. A restart on the same file and the same keys. */
	before = seen[nseen - 1].iv;
	o->fini(ctx);
	uesp_cfg_free(cur);
	start(o, &ctx, seq);
	cur = uesp_cfg_empty();
	assert_int_equal(apply(o, ctx, cur, "nonce1", KEY(2), "3600"), 0);
	assert_int_equal(send_and_capture(cap, 2, 4), 4);
	assert_no_repeated_nonce();
	/* It resumed above its reservation, not just above what it sent. */
	assert_true(seen[nseen - 4].iv > before);
	assert_true(seen[nseen - 4].iv > UESP_SEQ_STEP);
	for (i = 0; i < nseen; i++)
		assert_int_equal(seen[i].spi, 4097);

	/* A second process (instance) on the same file is refused. */
	{
		struct overlay_init_params ip;
		void *ctx2;

		memset(&ip, 0, sizeof(ip));
		ip.udp_port = 4510;
		ip.workers = 1;
		ip.seq_file = seq;
		assert_int_equal(o->init(&ip, &ctx2), -EIO);
	}
	o->fini(ctx);
	uesp_cfg_free(cur);
	close(cap);
}

/* ---- the reservation file ----------------------------------------------- */

static void
sa_out(struct overlay_sa_params *p, uint8_t k)
{
	memset(p, 0, sizeof(*p));
	p->tunnel_id = 1;
	p->dir = OVERLAY_DIR_OUT;
	p->spi = 4096;
	p->cipher = OVERLAY_AES_GCM_128;
	memset(p->key, k, 16);
	memset(p->salt, 0x5a, 4);
	p->esn = true;
}

static void
test_seq_file(void **state)
{
	struct overlay_sa_params p;
	struct uesp_seq_res *r;
	struct uesp_seq_stats st;
	struct uesp_seq *s;
	char path[128], buf[4096];
	uint64_t startseq, seq, deadline;
	unsigned i;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/res.seq", tmpdir);
	s = uesp_seq_open(path);
	assert_non_null(s);
	assert_null(uesp_seq_open(path));	/* locked */
	sa_out(&p, 1);
	assert_int_equal(uesp_seq_acquire(s, &p, &r, &startseq), 0);
	assert_int_equal(startseq, 0);
	assert_int_equal(atomic_load(&r->limit), UESP_SEQ_STEP);
	assert_int_equal(uesp_seq_acquire(s, &p, &r, &startseq), -EEXIST);

	/* The worker's view: everything up to the limit may go; past half
	 * the step the writer moves the limit ahead, well before need. */
	for (seq = 1; seq <= UESP_SEQ_STEP / 2 + 1; seq++)
		assert_true(uesp_seq_allow(r, seq));
	deadline = util_mono_ms() + 5000;
	while (atomic_load(&r->limit) == UESP_SEQ_STEP &&
	    util_mono_ms() < deadline)
		usleep(1000);
	assert_int_equal(atomic_load(&r->limit), 2 * UESP_SEQ_STEP);
	/* Caught up with the reservation: refused, and more is asked for. */
	assert_false(uesp_seq_allow(r, 2 * UESP_SEQ_STEP + 1));
	deadline = util_mono_ms() + 5000;
	while (atomic_load(&r->limit) == 2 * UESP_SEQ_STEP &&
	    util_mono_ms() < deadline)
		usleep(1000);
	assert_int_equal(atomic_load(&r->limit), 3 * UESP_SEQ_STEP);
	assert_true(uesp_seq_allow(r, 2 * UESP_SEQ_STEP + 1));

	/* No key bytes in the file. */
	fd = open(path, O_RDONLY);
	n = read(fd, buf, sizeof(buf));
	close(fd);
	assert_true(n > 32);
	assert_null(memmem(buf, (size_t)n, p.key, 16));

	/* The fsync cost, reported; each acquire of a new key is one. */
	for (i = 0; i < 50; i++) {
		struct uesp_seq_res *x;

		sa_out(&p, (uint8_t)(i + 2));
		assert_int_equal(uesp_seq_acquire(s, &p, &x, &startseq), 0);
		uesp_seq_release(x);
	}
	uesp_seq_stats(s, &st);
	print_message("reservation fsyncs: %llu, %.0f us on average, "
	    "%.0f us at most (step %llu numbers)\n",
	    (unsigned long long)st.fsyncs,
	    (double)st.fsync_ns_total / (double)st.fsyncs / 1000.0,
	    (double)st.fsync_ns_max / 1000.0,
	    (unsigned long long)UESP_SEQ_STEP);
	assert_int_equal(st.slots, 51);
	uesp_seq_release(r);
	uesp_seq_close(s);

	/* After a restart the key resumes above its last mark. */
	s = uesp_seq_open(path);
	assert_non_null(s);
	sa_out(&p, 1);
	p.seq_start = 7;
	assert_int_equal(uesp_seq_acquire(s, &p, &r, &startseq), 0);
	assert_int_equal(startseq, 3 * UESP_SEQ_STEP);
	uesp_seq_release(r);
	/* A caller's own start above the mark wins. */
	sa_out(&p, 2);
	p.seq_start = 10 * UESP_SEQ_STEP;
	assert_int_equal(uesp_seq_acquire(s, &p, &r, &startseq), 0);
	assert_int_equal(startseq, 10 * UESP_SEQ_STEP);
	uesp_seq_release(r);
	/* Without ESN, a key whose 32-bit space is used up is refused. */
	sa_out(&p, 3);
	p.esn = false;
	p.seq_start = UINT32_MAX;
	assert_int_equal(uesp_seq_acquire(s, &p, &r, &startseq), -EOVERFLOW);
	uesp_seq_close(s);

	/* A damaged record (torn mark): that key is refused, not restarted. */
	fd = open(path, O_RDWR);
	assert_int_equal(pwrite(fd, "\xff", 1, 32 + 16 + 3), 1);
	close(fd);
	s = uesp_seq_open(path);
	assert_non_null(s);
	sa_out(&p, 1);
	assert_int_equal(uesp_seq_acquire(s, &p, &r, &startseq), -EIO);
	sa_out(&p, 2);
	assert_int_equal(uesp_seq_acquire(s, &p, &r, &startseq), 0);
	uesp_seq_release(r);
	uesp_seq_close(s);

	/* Not a reservation file: refused. */
	fd = open(path, O_RDWR);
	assert_int_equal(pwrite(fd, "X", 1, 0), 1);
	close(fd);
	assert_null(uesp_seq_open(path));
}

/*
 * A file opened with its own step (the kernel backend's 2^30): the first
 * mark, the ask at half a step left (what xfrm's stats read does with the
 * kernel's counter), and the restart above the moved mark.
 */
static void
test_seq_file_step(void **state)
{
	const uint64_t step = (uint64_t)1 << 30;
	struct overlay_sa_params p;
	struct uesp_seq_res *r;
	struct uesp_seq *s;
	char path[128];
	uint64_t startseq, deadline;

	(void)state;
	snprintf(path, sizeof(path), "%s/step.seq", tmpdir);
	s = uesp_seq_open_step(path, step);
	assert_non_null(s);
	sa_out(&p, 9);
	assert_int_equal(uesp_seq_acquire(s, &p, &r, &startseq), 0);
	assert_int_equal(startseq, 0);
	assert_int_equal(atomic_load(&r->limit), step);
	assert_true(uesp_seq_allow(r, step / 2 - 1));	/* no ask yet */
	usleep(20000);
	assert_int_equal(atomic_load(&r->limit), step);
	assert_true(uesp_seq_allow(r, step / 2 + 1));	/* asks */
	deadline = util_mono_ms() + 5000;
	while (atomic_load(&r->limit) == step && util_mono_ms() < deadline)
		usleep(1000);
	assert_int_equal(atomic_load(&r->limit), 2 * step);
	uesp_seq_release(r);
	uesp_seq_close(s);

	s = uesp_seq_open_step(path, step);
	assert_non_null(s);
	assert_int_equal(uesp_seq_acquire(s, &p, &r, &startseq), 0);
	assert_int_equal(startseq, 2 * step);
	assert_int_equal(atomic_load(&r->limit), 3 * step);
	uesp_seq_release(r);
	uesp_seq_close(s);
}

/* ---- forged inner sources and SPIs -------------------------------------- */

static uint16_t
ip_csum(const uint8_t *p, size_t len)
{
	uint32_t sum = 0;
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* GRE + IPv4/UDP from src to 169.254.8.0:7777, sealed with sa into
 * pkt (256 bytes); its length. */
static size_t
peer_seal(struct esp_sa *sa, const char *src, const char *msg, uint8_t *pkt)
{
	uint8_t *gre = pkt + ESP_HDR_LEN, *ip = gre + 4;
	size_t ml = strlen(msg), iplen = 20 + 8 + ml, len;
	uint16_t c;

	memset(pkt, 0, 256);
	gre[2] = 0x08;		/* protocol IPv4 */
	ip[0] = 0x45;
	ip[2] = (uint8_t)(iplen >> 8);
	ip[3] = (uint8_t)iplen;
	ip[8] = 64;
	ip[9] = 17;
	assert_int_equal(inet_pton(AF_INET, src, ip + 12), 1);
	assert_int_equal(inet_pton(AF_INET, "169.254.8.0", ip + 16), 1);
	c = ip_csum(ip, 20);
	ip[10] = (uint8_t)(c >> 8);
	ip[11] = (uint8_t)c;
	ip[20] = 0x30;		/* sport 12345 */
	ip[21] = 0x39;
	ip[22] = 0x1e;		/* dport 7777 */
	ip[23] = 0x61;
	ip[25] = (uint8_t)(8 + ml);
	memcpy(ip + 28, msg, ml);	/* UDP checksum 0: none */
	assert_int_equal(esp_seal(sa, pkt, 4 + iplen, 256, ESP_NH_GRE,
	    &len), 0);
	return len;
}

/* The same, sent to the backend (127.0.0.1:4501). */
static void
peer_send(int fd, struct esp_sa *sa, const char *src, const char *msg)
{
	uint8_t pkt[256];
	size_t len = peer_seal(sa, src, msg, pkt);

	udp_send(fd, "127.0.0.1", 4501, pkt, len);
}

static void
test_forged_source(void **state)
{
	const struct overlay_ops *o = overlay_find("uesp");
	struct overlay_init_params ip;
	struct overlay_tunnel_params tp;
	struct overlay_tunnel_stats ts;
	struct overlay_sa_params sp;
	struct esp_sa_params ep;
	struct sockaddr_in from;
	struct esp_sa *peer;
	char buf[64], a[INET_ADDRSTRLEN];
	uint64_t deadline;
	bool legit = false, self = false;
	int fd, app;
	void *ctx;
	ssize_t r;

	memset(&ip, 0, sizeof(ip));
	ip.udp_port = 4501;
	ip.workers = 1;
	assert_int_equal(o->init(&ip, &ctx), 0);
	memset(&tp, 0, sizeof(tp));
	tp.id = 8;
	overlay_addr_parse("127.0.0.1", &tp.local);
	overlay_addr_parse("127.0.0.3", &tp.remote);
	tp.remote_port = 4601;
	overlay_addr_parse("169.254.8.0", &tp.inner_local);
	overlay_addr_parse("169.254.8.1", &tp.inner_peer);
	tp.encap = OVERLAY_ENCAP_GRE;
	tp.mtu = 1400;
	strcpy(tp.ifname, "forge0");
	assert_int_equal(overlay_prefix_parse("10.20.0.0/16", &tp.allowed[0]), 0);
	tp.nallowed = 1;
	assert_int_equal(o->tunnel_add(ctx, &tp), 0);
	memset(&sp, 0, sizeof(sp));
	sp.tunnel_id = 8;
	sp.dir = OVERLAY_DIR_IN;
	sp.spi = 5000;
	sp.cipher = OVERLAY_AES_GCM_256;
	memset(sp.key, 0x55, 32);
	memset(sp.salt, 0x66, 4);
	sp.esn = true;
	assert_int_equal(o->sa_add(ctx, &sp), 0);

	/* The peer: holds the key, so everything it sends authenticates. */
	memset(&ep, 0, sizeof(ep));
	ep.spi = 5000;
	ep.cipher = ESP_AES_GCM_256;
	ep.key = sp.key;
	ep.salt = sp.salt;
	ep.esn = true;
	peer = esp_sa_new(&ep, false);
	assert_non_null(peer);
	fd = udp_bound("127.0.0.3", 4601);
	app = udp_bound("0.0.0.0", 7777);

	/* Forged first: what arrives after it proves it had its chance. */
	peer_send(fd, peer, "10.30.1.1", "forged");
	peer_send(fd, peer, "10.20.1.1", "lan");
	peer_send(fd, peer, "169.254.8.1", "peer");
	deadline = util_mono_ms() + 5000;
	while (!(legit && self) && util_mono_ms() < deadline) {
		if ((r = udp_recv(app, buf, sizeof(buf) - 1, 100, &from)) < 0)
			continue;
		buf[r] = '\0';
		inet_ntop(AF_INET, &from.sin_addr, a, sizeof(a));
		if (strcmp(buf, "forged") == 0)
			fail_msg("a forged source (%s) was delivered", a);
		legit |= strcmp(a, "10.20.1.1") == 0;
		self |= strcmp(a, "169.254.8.1") == 0;
	}
	assert_true(legit);
	assert_true(self);
	assert_int_equal(o->tunnel_stats(ctx, 8, &ts), 0);
	assert_int_equal(ts.drops.source, 1);
	assert_int_equal(ts.drops.auth, 0);
	assert_int_equal(ts.rx_packets, 2);

	/* The list changes in place: the same source is now accepted. */
	assert_int_equal(overlay_prefix_parse("10.30.0.0/16", &tp.allowed[1]), 0);
	tp.nallowed = 2;
	assert_int_equal(o->tunnel_update(ctx, &tp), 0);
	peer_send(fd, peer, "10.30.1.1", "now allowed");
	assert_true(udp_recv(app, buf, sizeof(buf), 5000, &from) > 0);
	inet_ntop(AF_INET, &from.sin_addr, a, sizeof(a));
	assert_string_equal(a, "10.30.1.1");

	/* Inbound SPIs are unique across the site's tunnels. */
	tp.id = 7;
	overlay_addr_parse("127.0.0.4", &tp.remote);
	overlay_addr_parse("169.254.8.2", &tp.inner_local);
	overlay_addr_parse("169.254.8.3", &tp.inner_peer);
	strcpy(tp.ifname, "forge1");
	assert_int_equal(o->tunnel_add(ctx, &tp), 0);
	sp.tunnel_id = 7;
	memset(sp.key, 0x77, 32);
	assert_int_equal(o->sa_add(ctx, &sp), -EEXIST);
	sp.spi = 5001;
	assert_int_equal(o->sa_add(ctx, &sp), 0);
	/* Freed with the SA (or its tunnel) it belonged to. */
	assert_int_equal(o->tunnel_del(ctx, 8), 0);
	sp.spi = 5000;
	assert_int_equal(o->sa_add(ctx, &sp), 0);

	esp_sa_free(peer);
	close(fd);
	close(app);
	o->fini(ctx);
}

/* Waits for msg on app within 5 s. */
static void
expect_delivered(int app, const char *msg)
{
	char buf[64];
	struct sockaddr_in from;
	uint64_t deadline = util_mono_ms() + 5000;
	ssize_t r;

	while (util_mono_ms() < deadline) {
		if ((r = udp_recv(app, buf, sizeof(buf) - 1, 100, &from)) < 0)
			continue;
		buf[r] = '\0';
		if (strcmp(buf, msg) == 0)
			return;
	}
	fail_msg("'%s' not delivered", msg);
}

/*
 * NAT rebinding through the real backend, two workers (overlay.h,
 * overlay/uesp/README.md): each tunnel's peer moves to a new source port,
 * so its datagrams reach the unconnected socket of worker 0, which hands
 * them to the tunnel's worker.  Forged and replayed datagrams from the
 * new source are dropped and noted nowhere; the first authentic one is
 * delivered, noted (moved_addr/port) and signalled on moved_fd; after
 * tunnel_update to the new port the note is gone and traffic flows on
 * the connected socket.
 */
static void
test_moved_peer(void **state)
{
	const struct overlay_ops *o = overlay_find("uesp");
	struct overlay_init_params ip;
	struct overlay_tunnel_params tp[2];
	struct overlay_tunnel_stats ts;
	struct overlay_sa_params sp;
	struct esp_sa_params ep;
	struct esp_sa *peer[2];
	const char *remote[2] = { "127.0.0.3", "127.0.0.5" };
	uint8_t old[256], junk[64];
	size_t oldlen;
	struct pollfd pfd;
	char a[INET_ADDRSTRLEN];
	uint64_t v, deadline;
	int fd_old[2], fd_new[2], app, mfd;
	void *ctx;

	memset(&ip, 0, sizeof(ip));
	ip.udp_port = 4501;
	ip.workers = 2;
	assert_int_equal(o->init(&ip, &ctx), 0);
	assert_non_null(o->moved_fd);
	mfd = o->moved_fd(ctx);
	assert_true(mfd >= 0);
	app = udp_bound("0.0.0.0", 7777);
	for (int i = 0; i < 2; i++) {
		memset(&tp[i], 0, sizeof(tp[i]));
		tp[i].id = 20 + (uint64_t)i;
		overlay_addr_parse("127.0.0.1", &tp[i].local);
		overlay_addr_parse(remote[i], &tp[i].remote);
		tp[i].remote_port = 4601;
		overlay_addr_parse(i ? "169.254.9.0" : "169.254.8.0",
		    &tp[i].inner_local);
		overlay_addr_parse(i ? "169.254.9.1" : "169.254.8.1",
		    &tp[i].inner_peer);
		tp[i].encap = OVERLAY_ENCAP_GRE;
		tp[i].mtu = 1400;
		snprintf(tp[i].ifname, sizeof(tp[i].ifname), "move%d", i);
		assert_int_equal(overlay_prefix_parse("10.20.0.0/16",
		    &tp[i].allowed[0]), 0);
		tp[i].nallowed = 1;
		/* Least loaded first: tunnel 20 on worker 0, 21 on worker 1. */
		assert_int_equal(o->tunnel_add(ctx, &tp[i]), 0);
		memset(&sp, 0, sizeof(sp));
		sp.tunnel_id = tp[i].id;
		sp.dir = OVERLAY_DIR_IN;
		sp.spi = 6000 + (uint32_t)i;
		sp.cipher = OVERLAY_AES_GCM_256;
		memset(sp.key, 0x31 + i, 32);
		memset(sp.salt, 0x41 + i, 4);
		sp.esn = true;
		assert_int_equal(o->sa_add(ctx, &sp), 0);
		memset(&ep, 0, sizeof(ep));
		ep.spi = sp.spi;
		ep.cipher = ESP_AES_GCM_256;
		ep.key = sp.key;
		ep.salt = sp.salt;
		ep.esn = true;
		peer[i] = esp_sa_new(&ep, false);
		assert_non_null(peer[i]);
		fd_old[i] = udp_bound(remote[i], 4601);
		fd_new[i] = udp_bound(remote[i], 4602);
	}
	for (int i = 0; i < 2; i++) {
		/* From the configured endpoint: no note. */
		oldlen = peer_seal(peer[i], "10.20.1.1", "before", old);
		udp_send(fd_old[i], "127.0.0.1", 4501, old, oldlen);
		expect_delivered(app, "before");

		/* The peer's NAT moves it to port 4602.  A forgery with its
		 * SPI and the replay of the packet above: dropped, no note. */
		memset(junk, 0xa5, sizeof(junk));
		junk[0] = 0;
		junk[1] = 0;
		junk[2] = (uint8_t)((6000 + i) >> 8);
		junk[3] = (uint8_t)(6000 + i);
		udp_send(fd_new[i], "127.0.0.1", 4501, junk, sizeof(junk));
		udp_send(fd_new[i], "127.0.0.1", 4501, old, oldlen);
		deadline = util_mono_ms() + 5000;
		do {
			assert_int_equal(o->tunnel_stats(ctx, tp[i].id, &ts), 0);
		} while ((ts.drops.auth < 1 || ts.drops.replay < 1) &&
		    util_mono_ms() < deadline && usleep(10000) == 0);
		assert_int_equal(ts.drops.auth, 1);
		assert_int_equal(ts.drops.replay, 1);
		assert_int_equal(ts.moved_addr.family, AF_UNSPEC);
		assert_int_equal(ts.moved_rx, 0);

		/* Authentic, the newest, from the new port: delivered and
		 * noted, and moved_fd says so. */
		peer_send(fd_new[i], peer[i], "10.20.1.1", "moved");
		expect_delivered(app, "moved");
		assert_int_equal(o->tunnel_stats(ctx, tp[i].id, &ts), 0);
		assert_string_equal(overlay_addr_str(&ts.moved_addr, a,
		    sizeof(a)), remote[i]);
		assert_int_equal(ts.moved_port, 4602);
		assert_int_equal(ts.moved_rx, 1);
		pfd.fd = mfd;
		pfd.events = POLLIN;
		assert_int_equal(poll(&pfd, 1, 1000), 1);
		assert_int_equal(read(mfd, &v, sizeof(v)), (ssize_t)sizeof(v));

		/* Followed: the note clears, and the new port is the
		 * connected one (nothing more is noted). */
		tp[i].remote_port = 4602;
		assert_int_equal(o->tunnel_update(ctx, &tp[i]), 0);
		assert_int_equal(o->tunnel_stats(ctx, tp[i].id, &ts), 0);
		assert_int_equal(ts.moved_addr.family, AF_UNSPEC);
		peer_send(fd_new[i], peer[i], "10.20.1.1", "after");
		expect_delivered(app, "after");
		assert_int_equal(o->tunnel_stats(ctx, tp[i].id, &ts), 0);
		assert_int_equal(ts.moved_rx, 1);
		assert_int_equal(ts.moved_addr.family, AF_UNSPEC);
	}
	for (int i = 0; i < 2; i++) {
		esp_sa_free(peer[i]);
		close(fd_old[i]);
		close(fd_new[i]);
	}
	close(app);
	o->fini(ctx);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_seq_file),
		cmocka_unit_test(test_seq_file_step),
		cmocka_unit_test(test_nonce_never_repeats),
		cmocka_unit_test(test_forged_source),
		cmocka_unit_test(test_moved_peer),
	};

	log_init("test_overlay_nonce", true);
	return cmocka_run_group_tests(tests, setup, teardown);
}
