/*
 * agent_keys.c — test tool: every secret a meshwan-edge state folder
 * holds or derives, in hex, one per line, so that a test can search logs,
 * status documents and API replies for them (tests/edge/agent_keygrep.sh).
 *
 *   agent_keys STATE_DIR
 *     own   EPOCH PRIVATE_KEY_HEX
 *     sa    TUNNEL in|out SPI KEY_HEX SALT_HEX
 *
 * SA keys are derived with edge-agent/keys.c from the cached intent, as
 * the agent does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <dirent.h>

#include "edge-agent/cache.h"
#include "edge-agent/keys.h"
#include "lib/util.h"

static void
hexline(const char *what, const uint8_t *b, size_t n)
{
	char hex[2 * 64 + 1];

	util_hex(b, n, hex);
	printf("%s %s\n", what, hex);
}

int
main(int argc, char **argv)
{
	char dir[4096], path[4096 + 300];
	struct msg_intent in;
	struct keys *k;
	DIR *d;
	const struct dirent *de;

	if (argc != 2)
		return 2;
	snprintf(dir, sizeof(dir), "%s/keys", argv[1]);
	if ((d = opendir(dir)) == NULL)
		return 1;
	while ((de = readdir(d)) != NULL) {
		uint8_t *b;
		size_t len;

		if (strncmp(de->d_name, "epoch-", 6) != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (cache_read_file(path, &b, &len, 4096) != 0)
			continue;
		if (len >= 56)
			hexline("own", b + 24, 32);
		util_wipe(b, len);
		free(b);
	}
	closedir(d);
	if ((k = keys_open(dir)) == NULL)
		return 1;
	if (cache_read_intent(argv[1], &in) == 0) {
		for (size_t i = 0; i < in.n_tunnels; i++) {
			const struct msg_tunnel *t = &in.tunnels[i];

			for (int dir_in = 0; dir_in < 2; dir_in++) {
				const struct msg_sa_key_ref *r = dir_in ?
				    &t->sa_in : &t->sa_out;
				struct sakey sk;
				char err[256], what[128];

				if (r->spi == 0 || r->sender_key_epoch == 0 ||
				    keys_sa_derive(k, &in, t, in.site.id,
				    dir_in, r, (int64_t)time(NULL), &sk, err,
				    sizeof(err)) == -1)
					continue;
				snprintf(what, sizeof(what), "sa %llu %s %u",
				    (unsigned long long)t->id,
				    dir_in ? "in" : "out", r->spi);
				hexline(what, sk.key, sk.key_len);
				hexline("salt", sk.salt, sizeof(sk.salt));
				sakey_clear(&sk);
			}
		}
		msg_intent_free(&in);
	}
	keys_free(k);
	return 0;
}
