/*
 * util.c — clocks, secret wiping, bounded string and number parsing.
 */
#include "lib/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

uint64_t
util_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t
util_mono_ms(void)
{
	return util_mono_ns() / 1000000ull;
}

void
util_wipe(void *p, size_t len)
{
	if (p != NULL)
		explicit_bzero(p, len);
}

int
util_strcpy(char *dst, size_t dstsz, const char *src)
{
	size_t n = strlen(src);

	if (dstsz == 0)
		return -1;
	if (n >= dstsz) {
		memcpy(dst, src, dstsz - 1);
		dst[dstsz - 1] = '\0';
		return -1;
	}
	memcpy(dst, src, n + 1);
	return 0;
}

char *
util_printable(char *dst, size_t dstsz, const char *src)
{
	size_t i;

	if (src == NULL)
		src = "";
	for (i = 0; i + 1 < dstsz && src[i] != '\0'; i++)
		dst[i] = src[i] >= 0x20 && src[i] < 0x7f ? src[i] : '?';
	dst[i] = '\0';
	return dst;
}

int
util_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

void
util_hex(const void *buf, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	const uint8_t *b = buf;
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 0xf];
	}
	out[2 * len] = '\0';
}

void *
util_grow(void *v, size_t *cap, size_t need, size_t elem, size_t first)
{
	size_t ncap;
	void *nv;

	if (need <= *cap)
		return v;
	if (elem == 0)
		return NULL;
	ncap = *cap != 0 ? *cap : (first != 0 ? first : 1);
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2)
			return NULL;
		ncap *= 2;
	}
	if (ncap > SIZE_MAX / elem)
		return NULL;
	if ((nv = realloc(v, ncap * elem)) == NULL)
		return NULL;
	*cap = ncap;
	return nv;
}

size_t
util_size_class(size_t n)
{
	size_t step = 2;	/* an eighth of the largest power of two <= n */

	if (n < 16)
		return n;
	while (step <= n / 16)
		step *= 2;
	if (n > SIZE_MAX - (step - 1))
		return n;
	return (n + step - 1) & ~(step - 1);
}

static int
util_nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
util_unhex(const char *hex, uint8_t *out, size_t max, size_t *len)
{
	size_t n = strlen(hex);

	if (n % 2 != 0 || n / 2 > max)
		return -1;
	for (size_t i = 0; i < n / 2; i++) {
		int hi = util_nibble(hex[2 * i]);
		int lo = util_nibble(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	*len = n / 2;
	return 0;
}

int
util_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

void
util_sort_unique_u64(uint64_t *v, size_t *n)
{
	size_t o = 1;

	if (*n == 0)
		return;
	qsort(v, *n, sizeof(*v), util_cmp_u64);
	for (size_t i = 1; i < *n; i++)
		if (v[i] != v[o - 1])
			v[o++] = v[i];
	*n = o;
}

static uint64_t
util_key_u64(const char *base, size_t size, size_t off, size_t i)
{
	uint64_t v;

	memcpy(&v, base + i * size + off, sizeof(v));
	return v;
}

size_t
util_lower_bound_u64(const void *base, size_t n, size_t size, size_t off,
    uint64_t key)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (util_key_u64(base, size, off, mid) < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int
util_random(void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = getrandom(p, len, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}
