/*
 * util.h — small helpers that both daemons need and no library provides
 * in the right shape.  No outside dependency may enter lib/.
 */
#ifndef MESHWAN_UTIL_H
#define MESHWAN_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Monotonic clock, for timeouts and ages; never goes backwards. */
uint64_t util_mono_ms(void);
uint64_t util_mono_ns(void);

/* Wipe memory that held secrets; not removed by the optimiser. */
void util_wipe(void *p, size_t len);

/*
 * Copy src into dst of size dstsz, always NUL-terminated.
 * Returns 0, or -1 if src did not fit (dst then holds a truncated copy).
 */
int util_strcpy(char *dst, size_t dstsz, const char *src);

/*
 * Copy untrusted text (an edge's words, a bad field) into dst of size
 * dstsz >= 1 for a log line, an error or an API reply: at most dstsz - 1
 * bytes, each byte that is not printable ASCII (0x20-0x7e) as '?', so no
 * control byte reaches a terminal or a dashboard.  NUL-terminated; src NULL
 * reads as "".  Returns dst.
 */
char *util_printable(char *dst, size_t dstsz, const char *src);

/*
 * Parse a decimal unsigned integer that must lie within [min, max] and have
 * no trailing characters.  Returns 0, or -1 with *out untouched.
 */
int util_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Lower-case hex of len bytes into out (size >= 2*len+1). */
void util_hex(const void *buf, size_t len, char *out);

/*
 * The bytes of a whole hex string (either case, even length, at most max
 * bytes) into out, their count in *len.  0, or -1 with out partly
 * written (wipe it if it was to hold a secret).
 */
int util_unhex(const char *hex, uint8_t *out, size_t max, size_t *len);

/*
 * Room for at least `need` elements of `elem` bytes in the array v that
 * has *cap of them (doubling from `first`): returns v itself, the moved
 * array with *cap updated, or NULL when out of memory or on size overflow
 * (v is then still valid; the caller frees it).
 */
void *util_grow(void *v, size_t *cap, size_t need, size_t elem, size_t first);

/*
 * n rounded up to one of eight steps per power of two (n itself below 16):
 * the size to realloc an array to when its capacity is not stored.  Growing
 * one element at a time then moves the block once per step (~1/8 of its
 * size) instead of every time, since realloc to a size the block already
 * has keeps it where it is.  At most 1/8 more than n; n when rounding up
 * would overflow.
 */
size_t util_size_class(size_t n);

/* qsort/bsearch comparator for uint64_t. */
int util_cmp_u64(const void *a, const void *b);

/* Sort v[0..*n) and drop repeated values; *n becomes the count left. */
void util_sort_unique_u64(uint64_t *v, size_t *n);

/*
 * In an array of n elements of size bytes, sorted by the uint64_t at
 * offset off in each, the index of the first element whose key is not
 * below key (n when all are): where key is, or would be inserted.
 * E.g. util_lower_bound_u64(v, n, sizeof(*v), offsetof(struct x, id), id).
 */
size_t util_lower_bound_u64(const void *base, size_t n, size_t size,
    size_t off, uint64_t key);

/* Fill buf with bytes from the kernel's CSPRNG; 0 or -1. */
int util_random(void *buf, size_t len);

#endif
