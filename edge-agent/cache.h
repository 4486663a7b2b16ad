/*
 * cache.h — what meshwan-edge keeps in its state folder between runs:
 * small files written atomically (a temporary file in the same folder,
 * fsync, rename, fsync of the folder), so a crash leaves the old file or
 * the new one, never half of one; and the last applied intent, encoded
 * as the wire contract's Intent (a ControllerMessage snapshot, through
 * proto/pbconv), so a headless restart rebuilds the site from it.
 */
#ifndef MESHWAN_EDGE_CACHE_H
#define MESHWAN_EDGE_CACHE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto/msg.h"

#define CACHE_INTENT_FILE	"intent.pb"
#define CACHE_FILE_MAX		((size_t)64 * 1024 * 1024)

/* Write len bytes to path atomically with the given mode.  0 / -1 (logged). */
int cache_write_file(const char *path, const void *buf, size_t len,
    mode_t mode);
/*
 * Read the whole file at path (at most max bytes) into a malloc'd *buf.
 * 0, 1 when the file does not exist, -1 on error (logged).
 */
int cache_read_file(const char *path, uint8_t **buf, size_t *len, size_t max);

/* The intent, into dir/intent.pb (0600).  0 / -1. */
int cache_write_intent(const char *dir, const struct msg_intent *in);
/* 0 with *out filled (msg_intent_free), 1 when none, -1 when the file is
 * unreadable or does not decode (logged; it is then ignored). */
int cache_read_intent(const char *dir, struct msg_intent *out);

#endif
