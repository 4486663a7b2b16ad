/*
 * log.c — stderr/syslog logging with per-subsystem debug switches.
 * Modelled on OpenBSD's log.c: small, no allocation, one write per line.
 */
#include "lib/log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 2048
#define LOG_DEBUG_LIST_MAX 256

static const char *log_prog = "meshwan";
static bool log_fg = true;
static _Atomic int log_level = LOG_LVL_INFO;
/* Written at start-up or on reload only; read without a lock. */
static char log_debug_list[LOG_DEBUG_LIST_MAX];

void
log_init(const char *progname, bool foreground)
{
	log_prog = progname;
	log_fg = foreground;
	if (!foreground)
		openlog(progname, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void
log_setlevel(enum log_level lvl)
{
	log_level = lvl;
}

enum log_level
log_getlevel(void)
{
	return (enum log_level)log_level;
}

int
log_setdebug(const char *subsystems)
{
	if (subsystems == NULL || *subsystems == '\0') {
		log_debug_list[0] = '\0';
		return 0;
	}
	if (strlen(subsystems) >= sizeof(log_debug_list))
		return -1;
	snprintf(log_debug_list, sizeof(log_debug_list), "%s", subsystems);
	log_level = LOG_LVL_DEBUG;
	return 0;
}

bool
log_debug_on(const char *subsys)
{
	const char *p;
	size_t n;

	if (log_level < LOG_LVL_DEBUG || log_debug_list[0] == '\0')
		return false;
	if (strcmp(log_debug_list, "all") == 0)
		return true;
	n = strlen(subsys);
	for (p = log_debug_list; (p = strstr(p, subsys)) != NULL; p += n) {
		if ((p == log_debug_list || p[-1] == ',') &&
		    (p[n] == '\0' || p[n] == ','))
			return true;
	}
	return false;
}

/* Advance len by an snprintf result, never past the last byte of line. */
static size_t
log_advance(size_t len, int n, size_t cap)
{
	if (n <= 0)
		return len;
	if ((size_t)n >= cap - len)
		return cap - 1;
	return len + (size_t)n;
}

static void
log_vemit(int pri, const char *tag, int errnum, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX];
	size_t len = 0;
	int n;

	if (log_fg) {
		struct timespec ts;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = snprintf(line, sizeof(line),
		    "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%d]: ",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		    tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, log_prog,
		    (int)getpid());
		len = log_advance(0, n, sizeof(line));
	}
	if (tag != NULL) {
		n = snprintf(line + len, sizeof(line) - len, "%s: ", tag);
		len = log_advance(len, n, sizeof(line));
	}
	n = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
	len = log_advance(len, n, sizeof(line));
	if (errnum != 0) {
		n = snprintf(line + len, sizeof(line) - len, ": %s",
		    strerror(errnum));
		len = log_advance(len, n, sizeof(line));
	}
	if (log_fg) {
		if (len >= sizeof(line) - 1)
			len = sizeof(line) - 2;
		line[len++] = '\n';
		/* One write per line keeps threads' lines whole. */
		(void)!write(STDERR_FILENO, line, len);
	} else {
		syslog(pri, "%s", line);
	}
}

void
log_warn(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_WARNING, NULL, saved, fmt, ap);
	va_end(ap);
	errno = saved;
}

void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_WARNING, NULL, 0, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;

	if (log_level < LOG_LVL_INFO)
		return;
	va_start(ap, fmt);
	log_vemit(LOG_INFO, NULL, 0, fmt, ap);
	va_end(ap);
}

void
log_debug_emit(const char *subsys, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_DEBUG, subsys, 0, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_CRIT, "fatal", saved, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_CRIT, "fatal", 0, fmt, ap);
	va_end(ap);
	exit(1);
}
