/* SPDX-License-Identifier: Apache-2.0 */
/* The serving certificate, its key and the two client CA bundles, loaded as
 * one immutable, reference-counted "generation". A reload that finds changed
 * files builds a new generation; connections keep the one they started with. */
#ifndef TLS_STORE_H
#define TLS_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

struct tls_paths {
    const char *cert_file;
    const char *key_file;
    const char *client_ca_file;               /* NULL: no client CA */
    const char *requestheader_client_ca_file; /* NULL: no front-proxy CA */
};

struct tls_generation {
    unsigned long id; /* 1, 2, ...: changes on every successful reload */
    gnutls_certificate_credentials_t credentials;
    gnutls_x509_trust_list_t client_ca;        /* NULL when not configured */
    gnutls_x509_trust_list_t requestheader_ca; /* NULL when not configured */
    gnutls_datum_t cert_pem;                   /* as loaded, for the first MHD setup */
    gnutls_datum_t key_pem;
};

struct tls_store;

/// Loads every file. On failure writes one line naming the flag and path.
struct tls_store *tls_store_open(const struct tls_paths *paths, char *err, size_t errlen);

/// The current generation, with a reference the caller must release.
struct tls_generation *tls_store_acquire(struct tls_store *store);
void tls_generation_release(struct tls_generation *generation);

/// Rebuilds the generation if any file changed on disk. A file that fails to
/// load is logged once per change and the previous generation stays in use.
/// Returns true if a new generation was installed.
bool tls_store_reload_if_changed(struct tls_store *store);

void tls_store_close(struct tls_store *store);

/// Loads a PEM CA bundle into a new trust list. Exposed for tests.
int tls_trust_list_from_file(const char *path, gnutls_x509_trust_list_t *out, char *err,
                             size_t errlen);

#endif
