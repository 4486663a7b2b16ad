/*
 * fieldpath.h — names of message fields for error texts, shared by the
 * two validators of proto/ (msg.c checks the daemons' structs, pbconv.c
 * the decoded wire messages) so that both report a bad field the same way:
 * "snapshot.tunnels[3].crypto.cipher".
 *
 * A path is a chain of components up to the root (up == NULL), built on
 * the stack while validating and turned into text only when an error
 * names it: validation visits every field of every message, errors are
 * rare.  A component points at its parent, so a parent must stay put
 * while its children are in use.
 */
#ifndef MESHWAN_FIELDPATH_H
#define MESHWAN_FIELDPATH_H

#include <stdbool.h>
#include <stddef.h>

#define FIELDPATH_LEN 160

struct fieldpath {
	const struct fieldpath *up;
	const char *name;
	size_t idx;
	bool has_idx;
};

/*
 * The text of path in buf (FIELDPATH_LEN bytes): the parent's text, "."
 * when that is not empty, the name, and "[i]" for a list element.  Paths
 * are far shorter than the buffer; a truncated one still names the
 * field's start.  Returns buf.
 */
const char *fieldpath_str(const struct fieldpath *path, char *buf);

/* parent + "." + name, or name alone at the root (parent NULL). */
const struct fieldpath *fieldpath_child(struct fieldpath *buf,
    const struct fieldpath *parent, const char *name);
/* parent + "." + name + "[i]". */
const struct fieldpath *fieldpath_idx(struct fieldpath *buf,
    const struct fieldpath *parent, const char *name, size_t i);

/* Formats the error text into err (if given) and returns -1. */
int fieldpath_fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* A path at the root, for the rest of the enclosing block. */
#define FIELDPATH_ROOT(name)                                                   \
	(&(const struct fieldpath){ NULL, (name), 0, false })
/* The text of a path for one error message (buffer of the expression's
 * lifetime). */
#define FIELDPATH_STR(path)                                                    \
	fieldpath_str((path), (char[FIELDPATH_LEN]){ 0 })

#endif
