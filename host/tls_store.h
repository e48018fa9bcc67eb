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

enum tls_ca { TLS_CA_CLIENT, TLS_CA_REQUESTHEADER };

/// Sets the CA bundles published by the cluster (the authentication ConfigMap),
/// used only for the CAs no flag names; NULL means none. Returns 1 if a new
/// generation was installed, 0 if nothing changed, -1 (err filled, nothing
/// changed) if a bundle does not load.
int tls_store_set_cluster_cas(struct tls_store *store, const char *client_ca_pem,
                              const char *requestheader_ca_pem, char *err, size_t errlen);

/// True if a flag names this CA's file (then the cluster's bundle is ignored).
bool tls_store_has_file(const struct tls_store *store, enum tls_ca which);

void tls_store_close(struct tls_store *store);

/// Loads a PEM CA bundle held in memory into a new trust list.
int tls_trust_list_from_pem(const char *pem, gnutls_x509_trust_list_t *out, char *err,
                            size_t errlen);

/// Loads a PEM CA bundle into a new trust list. Exposed for tests.
int tls_trust_list_from_file(const char *path, gnutls_x509_trust_list_t *out, char *err,
                             size_t errlen);

#endif
