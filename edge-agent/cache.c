/*
 * cache.c — atomic small files and the cached intent (see cache.h).
 */
#include "edge-agent/cache.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"
#include "proto/pbconv.h"

/* fsync the folder holding path, so a rename in it is durable. */
static int
cache_sync_dir(const char *path)
{
	char dir[PATH_MAX];
	char *slash;
	int fd, rc;

	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
		return -1;
	if ((slash = strrchr(dir, '/')) == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

int
cache_write_file(const char *path, const void *buf, size_t len, mode_t mode)
{
	char tmp[PATH_MAX];
	const uint8_t *p = buf;
	size_t off = 0;
	int fd;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
		log_warnx("cache: path too long: %s", path);
		return -1;
	}
	(void)unlink(tmp);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
	    O_NOFOLLOW, mode)) == -1) {
		log_warn("cache: %s", tmp);
		return -1;
	}
	/* The umask may have narrowed it; never widen beyond mode. */
	(void)fchmod(fd, mode);
	while (off < len) {
		ssize_t n = write(fd, p + off, len - off);

		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			log_warn("cache: write %s", tmp);
			close(fd);
			(void)unlink(tmp);
			return -1;
		}
		off += (size_t)n;
	}
	if (fsync(fd) == -1 || close(fd) == -1) {
		log_warn("cache: sync %s", tmp);
		(void)unlink(tmp);
		return -1;
	}
	if (rename(tmp, path) == -1) {
		log_warn("cache: rename %s", path);
		(void)unlink(tmp);
		return -1;
	}
	if (cache_sync_dir(path) == -1)
		log_warn("cache: sync of the folder of %s", path);
	return 0;
}

int
cache_read_file(const char *path, uint8_t **buf, size_t *len, size_t max)
{
	struct stat st;
	uint8_t *b;
	size_t off = 0;
	int fd;

	*buf = NULL;
	*len = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1) {
		if (errno == ENOENT)
			return 1;
		log_warn("cache: %s", path);
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    (size_t)st.st_size > max) {
		log_warnx("cache: %s: not a regular file of at most %zu bytes",
		    path, max);
		close(fd);
		return -1;
	}
	if ((b = malloc((size_t)st.st_size + 1)) == NULL) {
		close(fd);
		return -1;
	}
	while (off < (size_t)st.st_size) {
		ssize_t n = read(fd, b + off, (size_t)st.st_size - off);

		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	close(fd);
	if (off != (size_t)st.st_size) {
		log_warnx("cache: %s: short read", path);
		free(b);
		return -1;
	}
	b[off] = '\0';
	*buf = b;
	*len = off;
	return 0;
}

int
cache_write_intent(const char *dir, const struct msg_intent *in)
{
	struct msg_controller_message m;
	char path[PATH_MAX];
	uint8_t *buf;
	size_t len;
	int rc;

	if (snprintf(path, sizeof(path), "%s/%s", dir, CACHE_INTENT_FILE) >=
	    (int)sizeof(path))
		return -1;
	/* Encoding only reads: a shallow copy, never freed. */
	memset(&m, 0, sizeof(m));
	m.kind = MSG_CONTROLLER_SNAPSHOT;
	m.u.snapshot = *in;
	if (pbconv_encode_controller_message(&m, &buf, &len) == -1) {
		log_warnx("cache: cannot encode intent version %llu",
		    (unsigned long long)in->version);
		return -1;
	}
	rc = cache_write_file(path, buf, len, 0600);
	free(buf);
	return rc;
}

int
cache_read_intent(const char *dir, struct msg_intent *out)
{
	struct msg_controller_message m;
	char path[PATH_MAX], err[PBCONV_ERR_LEN];
	uint8_t *buf;
	size_t len;
	int rc;

	memset(out, 0, sizeof(*out));
	if (snprintf(path, sizeof(path), "%s/%s", dir, CACHE_INTENT_FILE) >=
	    (int)sizeof(path))
		return -1;
	if ((rc = cache_read_file(path, &buf, &len, PBCONV_MAX_SESSION_MSG))
	    != 0)
		return rc;
	rc = pbconv_decode_controller_message(buf, len, &m, err, sizeof(err));
	free(buf);
	if (rc == -1 || m.kind != MSG_CONTROLLER_SNAPSHOT) {
		log_warnx("cache: %s: not a cached intent: %s", path,
		    rc == -1 ? err : "wrong message");
		if (rc == 0)
			msg_controller_message_free(&m);
		return -1;
	}
	*out = m.u.snapshot;
	return 0;
}
