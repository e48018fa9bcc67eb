/* SPDX-License-Identifier: Apache-2.0 */
/* Who is on the other end of a TLS connection: the presented chain checked
 * against the client CA and the front-proxy (request-header) CA, and the
 * leaf's CN and O values. An unverified chain yields no names at all. */
#ifndef PEER_IDENTITY_H
#define PEER_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

enum { PEER_MAX_ORGANIZATIONS = 16, PEER_MAX_NAME = 256, PEER_MAX_CHAIN = 8 };

struct peer_identity {
    bool presented;              /* a certificate was sent */
    bool verified_client_ca;     /* chain verifies against --client-ca-file */
    bool verified_requestheader; /* chain verifies against the front-proxy CA */
    char common_name[PEER_MAX_NAME];
    size_t organization_count;
    char organizations[PEER_MAX_ORGANIZATIONS][PEER_MAX_NAME];
    char sha256_hex[65]; /* of the leaf DER, for kube's credential-id */
    char error[128];     /* why nothing verified, for logs */
};

/// Fills out from the DER chain (leaf first) presented by the peer. Names are
/// filled only if the chain verified against at least one of the trust lists
/// (either may be NULL) for TLS client authentication, now.
void peer_identity_check(const gnutls_datum_t *chain, unsigned chain_length,
                         gnutls_x509_trust_list_t client_ca,
                         gnutls_x509_trust_list_t requestheader_ca, struct peer_identity *out);

#endif
