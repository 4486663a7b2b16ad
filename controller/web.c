/*
 * web.c — safe lookup of the dashboard's static files (see web.h).
 */
#include "controller/web.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"

static const struct {
	const char *ext;
	const char *type;
} web_types[] = {
	{ ".html", "text/html; charset=utf-8" },
	{ ".js", "text/javascript; charset=utf-8" },
	{ ".mjs", "text/javascript; charset=utf-8" },
	{ ".css", "text/css; charset=utf-8" },
	{ ".json", "application/json" },
	{ ".svg", "image/svg+xml" },
	{ ".png", "image/png" },
	{ ".ico", "image/x-icon" },
	{ ".txt", "text/plain; charset=utf-8" },
	{ ".woff2", "font/woff2" },
	{ ".map", "application/json" },
};

static const char *
web_type(const char *name)
{
	size_t nl = strlen(name);

	for (size_t i = 0; i < ARRAY_SIZE(web_types); i++) {
		size_t el = strlen(web_types[i].ext);

		if (nl > el && strcmp(name + nl - el, web_types[i].ext) == 0)
			return web_types[i].type;
	}
	return "application/octet-stream";
}

int
web_open_root(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd == -1)
		log_warn("web: web root %s", path);
	return fd;
}

/* Opens name in dir as a folder or a regular file, never a link. */
static int
web_open_at(int dir, const char *name)
{
	return openat(dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
	    O_NONBLOCK);
}

int
web_resolve(int root, const char *path, int *fd, uint64_t *size,
    const char **type)
{
	char buf[WEB_PATH_MAX + sizeof("index.html")];
	char *seg, *save = NULL;
	const char *last = "";
	struct stat sb;
	int dir = -1, cur, depth = 0;
	size_t len = strlen(path);

	if (path[0] != '/' || len >= WEB_PATH_MAX)
		return 400;
	for (const char *p = path; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '\\')
			return 400;
	memcpy(buf, path, len + 1);
	if ((cur = dup(root)) == -1)
		return 500;
	for (seg = strtok_r(buf, "/", &save); seg != NULL;
	    seg = strtok_r(NULL, "/", &save)) {
		if (seg[0] == '.' || ++depth > WEB_DEPTH_MAX) {
			close(cur);
			return 400;
		}
		if (fstat(cur, &sb) == -1 || !S_ISDIR(sb.st_mode)) {
			close(cur);
			return 404;
		}
		dir = cur;
		cur = web_open_at(dir, seg);
		close(dir);
		if (cur == -1)
			return errno == ENOENT || errno == ELOOP ||
			    errno == ENOTDIR || errno == EACCES ? 404 : 500;
		last = seg;
	}
	if (fstat(cur, &sb) == -1) {
		close(cur);
		return 500;
	}
	if (S_ISDIR(sb.st_mode)) {
		dir = cur;
		cur = web_open_at(dir, "index.html");
		close(dir);
		if (cur == -1)
			return 404;
		last = "index.html";
		if (fstat(cur, &sb) == -1) {
			close(cur);
			return 500;
		}
	}
	if (!S_ISREG(sb.st_mode)) {
		close(cur);
		return 404;
	}
	if ((uint64_t)sb.st_size > WEB_FILE_MAX) {
		close(cur);
		return 413;
	}
	/* Reads will block-free; drop O_NONBLOCK (a FIFO never gets here). */
	(void)fcntl(cur, F_SETFL, 0);
	*fd = cur;
	*size = (uint64_t)sb.st_size;
	*type = web_type(last);
	return 0;
}
