/*
 * fieldpath.c — field paths for the error texts of proto/'s validators
 * (see fieldpath.h).
 */
#include "proto/fieldpath.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Append s to the path in buf (FIELDPATH_LEN), truncating if ever needed. */
static void
fieldpath_add(char *buf, const char *s)
{
	size_t n = strlen(buf), m = strlen(s);

	if (m > FIELDPATH_LEN - 1 - n)
		m = FIELDPATH_LEN - 1 - n;
	memcpy(buf + n, s, m);
	buf[n + m] = '\0';
}

const char *
fieldpath_str(const struct fieldpath *path, char *buf)
{
	char idx[24];

	buf[0] = '\0';
	if (path == NULL)
		return buf;
	(void)fieldpath_str(path->up, buf);
	if (buf[0] != '\0')
		fieldpath_add(buf, ".");
	fieldpath_add(buf, path->name);
	if (path->has_idx) {
		snprintf(idx, sizeof(idx), "[%zu]", path->idx);
		fieldpath_add(buf, idx);
	}
	return buf;
}

const struct fieldpath *
fieldpath_child(struct fieldpath *buf, const struct fieldpath *parent,
    const char *name)
{
	buf->up = parent;
	buf->name = name;
	buf->idx = 0;
	buf->has_idx = false;
	return buf;
}

const struct fieldpath *
fieldpath_idx(struct fieldpath *buf, const struct fieldpath *parent,
    const char *name, size_t i)
{
	fieldpath_child(buf, parent, name);
	buf->has_idx = true;
	buf->idx = i;
	return buf;
}

int
fieldpath_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}
