/*
 * json_u64.h — the one rule for uint64 values in the REST API's JSON
 * (controller/API.md, "Large integers"), shared by api.c and the status
 * JSON of session_status.c.  Only for files that already use jansson;
 * no other header of the controller exposes jansson types.
 */
#ifndef MESHWAN_JSON_U64_H
#define MESHWAN_JSON_U64_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#define JSON_U64_EXACT_MAX ((1ull << 53) - 1)

/*
 * A JSON number up to 2^53 - 1, where every integer is exact for readers
 * that keep numbers as doubles (JavaScript, jq), a decimal string above.
 * jansson's integers are signed 64-bit: a plain cast would show values
 * above 2^63 as negative.
 */
static inline json_t *
json_u64(uint64_t v)
{
	char buf[24];

	if (v <= JSON_U64_EXACT_MAX)
		return json_integer((json_int_t)v);
	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	return json_string(buf);
}

#endif
