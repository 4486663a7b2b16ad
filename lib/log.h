/*
 * log.h — the one logging API of both daemons and their tools.
 *
 * Lines go to stderr in the foreground and to syslog when daemonised.
 * Debug output is switched on per subsystem ("rpc", "store", "uesp", ...)
 * so that an operator can follow one part without drowning in the rest.
 * Never pass key material to these functions: there is no redaction layer,
 * the rule is simply that secrets are not formatted.
 *
 * The functions are safe to call from several threads: each line is
 * written with a single write.
 */
#ifndef MESHWAN_LOG_H
#define MESHWAN_LOG_H

#include <stdarg.h>
#include <stdbool.h>

enum log_level {
	LOG_LVL_ERR = 0,
	LOG_LVL_WARN,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG,
};

/* progname appears on every line; foreground selects stderr over syslog. */
void log_init(const char *progname, bool foreground);
void log_setlevel(enum log_level lvl);
enum log_level log_getlevel(void);
/*
 * Comma-separated subsystem names, or "all"; NULL or "" turns debug off.
 * Enabling any subsystem also raises the level to LOG_LVL_DEBUG.
 * Returns 0, or -1 if the list is longer than the fixed limit.
 */
int log_setdebug(const char *subsystems);
bool log_debug_on(const char *subsys);

/* log_warn/fatal append strerror(errno); the ...x variants do not. */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug_emit(const char *subsys, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Start-up failures only: log and exit(1). */
void fatal(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

#define log_debug(subsys, ...)                                                 \
	do {                                                                   \
		if (log_debug_on(subsys))                                      \
			log_debug_emit(subsys, __VA_ARGS__);                   \
	} while (0)

#endif
