/*
 * auth.h — who is calling the REST API and what they may do.
 *
 * Bearer tokens ("Authorization: Bearer mwa_...") name an API token whose
 * SHA-256 is kept by the store; the plaintext exists only in the reply
 * that created it.  Roles are ordered: admin ⊃ operator ⊃ readonly.  A
 * route states the least role it needs; a route that states none is
 * refused (deny by default).
 */
#ifndef MESHWAN_AUTH_H
#define MESHWAN_AUTH_H

#include <stdbool.h>

#include "controller/model.h"

struct store;

/* What a route needs.  AUTH_NEED_UNSET refuses everyone. */
enum auth_need {
	AUTH_NEED_UNSET = 0,
	AUTH_NEED_NONE,		/* public: /healthz, the OpenAPI document */
	AUTH_NEED_READONLY,
	AUTH_NEED_OPERATOR,
	AUTH_NEED_ADMIN,
};

struct auth_identity {
	char name[MODEL_TOKEN_NAME_MAX + 1];	/* audit actor */
	enum model_api_role role;
	char unavailable[160];	/* AUTH_UNAVAILABLE: why (no secrets) */
};

enum auth_result {
	AUTH_OK = 0,
	AUTH_UNAUTHENTICATED,	/* no, malformed or unknown token: 401 */
	AUTH_FORBIDDEN,		/* known token, role too weak: 403 */
	AUTH_ERROR,		/* store failure: 500 */
	AUTH_UNAVAILABLE,	/* database unreachable or busy: 503 */
};

/*
 * Checks the Authorization header value (may be NULL) against what the
 * route needs; fills *who on AUTH_OK for routes that need a token.
 */
enum auth_result auth_check(struct store *st, const char *authorization,
    enum auth_need need, struct auth_identity *who);

/* True when role may do what need asks. */
bool auth_role_allows(enum model_api_role role, enum auth_need need);

/*
 * First-start bootstrap, called by the daemon after opening the store:
 * when no API token exists yet, creates the admin token "admin" (audited
 * as actor "system") and writes its plaintext, with a newline, to path
 * (mode 0600, created atomically; an existing file is replaced).  When
 * tokens already exist it does nothing.  *created says which happened.
 * Returns 0, or -1 (logged) with the store unchanged.
 */
int auth_bootstrap(struct store *st, const char *path, bool *created);

#endif
