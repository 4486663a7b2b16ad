/*
 * web.h — the dashboard's static files (controller/web/), served at "/"
 * from a web root folder without authentication: the API is what is
 * protected, the files hold nothing secret.
 *
 * Resolution is done segment by segment with openat(O_NOFOLLOW) below a
 * folder opened once at start, so neither "..", nor a symbolic link, nor
 * a folder renamed under the server reaches outside the root.  Hidden
 * names (a segment starting with '.') are never served.
 */
#ifndef MESHWAN_WEB_H
#define MESHWAN_WEB_H

#include <stdint.h>

/* Largest file served (bytes). */
#define WEB_FILE_MAX ((uint64_t)8 * 1024 * 1024)
/* Longest request path looked at, and deepest folder nesting. */
#define WEB_PATH_MAX 512
#define WEB_DEPTH_MAX 8

/* Opens the web root (a folder); the fd, or -1 (logged). */
int web_open_root(const char *path);

/*
 * Resolves a decoded request path ("/", "/app.js", "/img/a.png") under
 * root: 0 with *fd (read-only, the caller closes it), its *size and
 * *type (a static string), or an HTTP status: 400 for a path that is
 * not allowed ("..", hidden names, control characters, too long), 404
 * when there is no such regular file (symbolic links included), 413 when
 * it is larger than WEB_FILE_MAX, 500 on another error.  A folder serves
 * its index.html.
 */
int web_resolve(int root, const char *path, int *fd, uint64_t *size,
    const char **type);

#endif
