/*
 * pin.h — the controller's CA learned from its TLS handshake and kept
 * only when it matches the configured ca_pin (see pin.c).
 */
#ifndef MESHWAN_EDGE_PIN_H
#define MESHWAN_EDGE_PIN_H

#include <stddef.h>
#include <stdint.h>

#define PIN_LEN	32	/* SHA-256 */

/*
 * Connect to target (host:port, [v6]:port) with TLS (SNI server_name),
 * find the certificate in the server's chain whose DER hashes to pin,
 * check it is a CA and that the server certificate chains to it and
 * names server_name, and write it as PEM to path (0644, atomically).
 * At most 5 s.  0, or -1 with the reason in err.
 */
int pin_fetch_ca(const char *target, const char *server_name,
    const uint8_t pin[PIN_LEN], const char *path, char *err, size_t errlen);

/* 0 when the PEM certificate hashes to pin, -1 (err says why). */
int pin_check_pem(const uint8_t *pem, size_t len, const uint8_t pin[PIN_LEN],
    char *err, size_t errlen);

#endif
