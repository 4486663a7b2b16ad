/*
 * auth.c — bearer-token authentication and the role check of the REST API.
 *
 * Tokens are looked up by the store through their SHA-256 (the store never
 * holds a plaintext token), so the comparison is on a hash of the secret:
 * how long it takes says nothing useful about the secret itself.  This file
 * only parses the header, maps roles to what routes need, and makes the
 * very first admin token.
 */
#include "controller/auth.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "controller/store.h"
#include "lib/log.h"
#include "lib/util.h"

#define AUTH_BEARER "Bearer "
#define AUTH_BOOTSTRAP_NAME "admin"

bool
auth_role_allows(enum model_api_role role, enum auth_need need)
{
	switch (need) {
	case AUTH_NEED_NONE:
		return true;
	case AUTH_NEED_READONLY:
		return role == MODEL_API_READONLY ||
		    role == MODEL_API_OPERATOR || role == MODEL_API_ADMIN;
	case AUTH_NEED_OPERATOR:
		return role == MODEL_API_OPERATOR || role == MODEL_API_ADMIN;
	case AUTH_NEED_ADMIN:
		return role == MODEL_API_ADMIN;
	case AUTH_NEED_UNSET:
		break;
	}
	return false;
}

enum auth_result
auth_check(struct store *st, const char *authorization, enum auth_need need,
    struct auth_identity *who)
{
	struct model_api_token_info info;
	struct model_error err;
	const char *tok;
	size_t n;

	memset(who, 0, sizeof(*who));
	if (need == AUTH_NEED_NONE)
		return AUTH_OK;
	if (need == AUTH_NEED_UNSET)
		return AUTH_FORBIDDEN;
	if (authorization == NULL ||
	    strncasecmp(authorization, AUTH_BEARER, strlen(AUTH_BEARER)) != 0)
		return AUTH_UNAUTHENTICATED;
	tok = authorization + strlen(AUTH_BEARER);
	while (*tok == ' ')
		tok++;
	/* Bound what reaches the store: tokens have one fixed length. */
	n = strlen(tok);
	if (n != STORE_TOKEN_LEN)
		return AUTH_UNAUTHENTICATED;
	if (store_api_token_check(st, tok, &info, &err) == -1) {
		if (err.code == MODEL_E_TOKEN || err.code == MODEL_E_NOT_FOUND)
			return AUTH_UNAUTHENTICATED;
		if (err.code == MODEL_E_BUSY) {
			util_strcpy(who->unavailable, sizeof(who->unavailable),
			    err.message);
			return AUTH_UNAVAILABLE;
		}
		log_warnx("auth: token lookup failed: %s", err.message);
		return AUTH_ERROR;
	}
	util_strcpy(who->name, sizeof(who->name), info.name);
	who->role = info.role;
	return auth_role_allows(info.role, need) ? AUTH_OK : AUTH_FORBIDDEN;
}

/* Writes the token to path through a 0600 temporary file and rename. */
static int
auth_write_token_file(const char *path, const char *token)
{
	char tmp[4096];
	size_t len = strlen(token);
	ssize_t w;
	int fd;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path,
	    (long)getpid()) >= sizeof(tmp)) {
		log_warnx("auth: admin token path too long");
		return -1;
	}
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd == -1) {
		log_warn("auth: cannot create %s", tmp);
		return -1;
	}
	w = write(fd, token, len);
	if (w == (ssize_t)len)
		w = write(fd, "\n", 1) == 1 ? (ssize_t)len : -1;
	if (w != (ssize_t)len || fsync(fd) == -1) {
		log_warn("auth: cannot write %s", tmp);
		close(fd);
		unlink(tmp);
		return -1;
	}
	close(fd);
	if (rename(tmp, path) == -1) {
		log_warn("auth: cannot rename %s to %s", tmp, path);
		unlink(tmp);
		return -1;
	}
	return 0;
}

int
auth_bootstrap(struct store *st, const char *path, bool *created)
{
	struct model_api_token_info *list = NULL;
	struct model_error err;
	char token[STORE_TOKEN_LEN + 1];
	size_t n = 0;
	int64_t now = (int64_t)time(NULL);

	*created = false;
	if (store_api_token_list(st, &list, &n, &err) == -1) {
		log_warnx("auth: cannot list API tokens: %s", err.message);
		return -1;
	}
	free(list);
	if (n > 0)
		return 0;
	if (store_begin(st, &err) == -1) {
		log_warnx("auth: %s", err.message);
		return -1;
	}
	if (store_api_token_create(st, AUTH_BOOTSTRAP_NAME, MODEL_API_ADMIN,
	    now, token, &err) == -1 ||
	    store_audit_add(st, now, "system", "apitoken.bootstrap",
	    "{\"name\":\"" AUTH_BOOTSTRAP_NAME "\",\"role\":\"admin\"}",
	    &err) == -1) {
		log_warnx("auth: cannot create the admin token: %s",
		    err.message);
		store_rollback(st);
		util_wipe(token, sizeof(token));
		return -1;
	}
	if (auth_write_token_file(path, token) == -1) {
		store_rollback(st);
		util_wipe(token, sizeof(token));
		return -1;
	}
	util_wipe(token, sizeof(token));
	if (store_commit(st, &err) == -1) {
		log_warnx("auth: cannot store the admin token: %s",
		    err.message);
		unlink(path);
		return -1;
	}
	log_info("auth: created the first admin API token '%s' in %s",
	    AUTH_BOOTSTRAP_NAME, path);
	*created = true;
	return 0;
}
