/*
 * test_rpc.c — unit tests of proto/rpc's pure parts: the reconnection
 * backoff (0.5 s doubling to a 30 s cap, +-20 % jitter) and the option
 * checks that need no network.
 */
#include <setjmp.h>
#include <stdio.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "lib/log.h"
#include "proto/rpc.h"

static void
test_close_reason_names(void **state)
{
	(void)state;
	assert_string_equal(rpc_close_reason_str(RPC_CLOSE_FINISHED),
	    "finished");
	assert_string_equal(rpc_close_reason_str(RPC_CLOSE_DEADLINE),
	    "deadline exceeded");
	assert_string_equal(rpc_close_reason_str(RPC_CLOSE_SHUTDOWN),
	    "shutdown");
}

static void
test_bad_options(void **state)
{
	struct rpc_server_opts so;
	struct rpc_client_opts co;

	(void)state;
	memset(&so, 0, sizeof(so));
	assert_null(rpc_server_new(&so)); /* no listen address */
	memset(&co, 0, sizeof(co));
	assert_null(rpc_client_new(&co)); /* no target */
	co.target = "127.0.0.1:1";
	assert_null(rpc_client_new(&co)); /* TLS without a CA, not insecure */
	co.tls.ca_file = "/nonexistent/ca.pem";
	assert_null(rpc_client_new(&co));
	/* A TLS server without certificate files does not start. */
	so.listen = "127.0.0.1:0";
	{
		struct rpc_server *srv = rpc_server_new(&so);

		assert_non_null(srv);
		assert_int_equal(rpc_server_start(srv), -1);
		rpc_server_free(srv);
	}
	rpc_server_free(NULL);
	rpc_client_free(NULL);
}

/*
 * The session port binds, the enrollment port is taken: start fails with
 * the rpc layer's own error and freeing the half-started server returns
 * (gRPC used to abort: "ShutdownCalled() || listeners_.empty()").
 */
static void
test_second_port_taken(void **state)
{
	struct rpc_server_opts so;
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	char busy[32];
	int fd;

	(void)state;
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, 1), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	snprintf(busy, sizeof(busy), "127.0.0.1:%u", ntohs(sin.sin_port));

	memset(&so, 0, sizeof(so));
	so.listen = "127.0.0.1:0";
	so.enroll_listen = busy;
	so.insecure = true;
	{
		struct rpc_server *srv = rpc_server_new(&so);

		assert_non_null(srv);
		assert_int_equal(rpc_server_start(srv), -1);
		assert_true(rpc_server_port(srv, false) > 0);
		rpc_server_free(srv);
	}
	close(fd);
}

/*
 * idle_ms: a client with nothing to time sleeps up to idle_ms instead of
 * waking every 100 ms (ctl_load's 10,000 idle edges woke their threads
 * ~100,000 times a second); without it the 100 ms tick stays.
 */
static void
test_client_idle(void **state)
{
	struct rpc_client_opts co;
	struct rpc_client *tick, *idle;
	struct rpc_stats st_tick, st_idle;

	(void)state;
	memset(&co, 0, sizeof(co));
	co.target = "127.0.0.1:1"; /* never dialled: no call is made */
	co.insecure = true;
	tick = rpc_client_new(&co);
	co.idle_ms = 5000;
	idle = rpc_client_new(&co);
	assert_non_null(tick);
	assert_non_null(idle);
	usleep(1200 * 1000);
	rpc_client_stats(tick, &st_tick);
	rpc_client_stats(idle, &st_idle);
	/* ~12 ticks in 1.2 s; a loaded machine may lose a few. */
	assert_true(st_tick.ticks >= 5);
	/* The first wait is a tick; then one wait of up to 5 s. */
	assert_true(st_idle.wakeups <= 2);
	rpc_client_free(tick);
	rpc_client_free(idle);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_close_reason_names),
		cmocka_unit_test(test_bad_options),
		cmocka_unit_test(test_second_port_taken),
		cmocka_unit_test(test_client_idle),
	};

	log_init("test_rpc", true);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
