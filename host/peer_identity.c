/* SPDX-License-Identifier: Apache-2.0 */
/* Verifies a client certificate chain with GnuTLS trust lists (client-auth key
 * purpose, validity at a given time, intermediates taken from the chain) and
 * extracts the subject names kube uses: CN as user, O values as groups. */
#include "peer_identity.h"

#include <stdio.h>
#include <string.h>

#include <gnutls/crypto.h>

struct chain {
    gnutls_x509_crt_t certs[PEER_MAX_CHAIN];
    unsigned length;
};

static void chain_free(struct chain *c)
{
    for (unsigned i = 0; i < c->length; i++)
        gnutls_x509_crt_deinit(c->certs[i]);
    c->length = 0;
}

static int chain_import(const gnutls_datum_t *der, unsigned n, struct chain *out)
{
    out->length = 0;
    if (n > PEER_MAX_CHAIN)
        return GNUTLS_E_CERTIFICATE_LIST_UNSORTED;
    for (unsigned i = 0; i < n; i++) {
        int rc = gnutls_x509_crt_init(&out->certs[i]);
        if (rc < 0)
            return rc;
        out->length++;
        rc = gnutls_x509_crt_import(out->certs[i], &der[i], GNUTLS_X509_FMT_DER);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Validity periods are checked by GnuTLS against the system clock, for every
 * certificate up to and including the trust anchor, as Go's verifier does. */
static bool verifies_against(const struct chain *c, gnutls_x509_trust_list_t trust,
                             unsigned *status_out)
{
    if (trust == NULL)
        return false;
    gnutls_typed_vdata_st purpose = {
        .type = GNUTLS_DT_KEY_PURPOSE_OID,
        .data = (unsigned char *)GNUTLS_KP_TLS_WWW_CLIENT,
        .size = 0,
    };
    unsigned status = 0;
    int rc = gnutls_x509_trust_list_verify_crt2(trust, (gnutls_x509_crt_t *)c->certs, c->length,
                                                &purpose, 1, 0, &status, NULL);
    *status_out |= status;
    return rc == 0 && status == 0;
}

static void copy_dn_values(gnutls_x509_crt_t leaf, const char *oid, char (*out)[PEER_MAX_NAME],
                           size_t max, size_t *count)
{
    *count = 0;
    for (unsigned idx = 0; *count < max; idx++) {
        size_t size = PEER_MAX_NAME;
        int rc = gnutls_x509_crt_get_dn_by_oid(leaf, oid, idx, 0, out[*count], &size);
        if (rc == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
            break;
        if (rc < 0 || strlen(out[*count]) != size) /* too long, or an embedded NUL */
            continue;
        (*count)++;
    }
}

/* The subject's last CN, as Go's pkix.Name (so kube) reads it. Empty when that
 * last one is unusable (too long, an embedded NUL): never an earlier CN. */
static void last_common_name(gnutls_x509_crt_t leaf, char *out, size_t out_size)
{
    out[0] = '\0';
    for (unsigned idx = 0; idx < 64; idx++) {
        char value[PEER_MAX_NAME];
        size_t size = sizeof value;
        int rc =
            gnutls_x509_crt_get_dn_by_oid(leaf, GNUTLS_OID_X520_COMMON_NAME, idx, 0, value, &size);
        if (rc == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
            return;
        if (rc < 0 || strlen(value) != size)
            out[0] = '\0';
        else
            snprintf(out, out_size, "%s", value);
    }
    out[0] = '\0'; /* 64 CNs: refuse rather than guess */
}

static void fill_names(gnutls_x509_crt_t leaf, const gnutls_datum_t *leaf_der,
                       struct peer_identity *out)
{
    last_common_name(leaf, out->common_name, sizeof out->common_name);
    copy_dn_values(leaf, GNUTLS_OID_X520_ORGANIZATION_NAME, out->organizations,
                   PEER_MAX_ORGANIZATIONS, &out->organization_count);
    unsigned char digest[32];
    if (gnutls_hash_fast(GNUTLS_DIG_SHA256, leaf_der->data, leaf_der->size, digest) == 0) {
        for (int i = 0; i < 32; i++)
            snprintf(out->sha256_hex + 2 * i, 3, "%02x", digest[i]);
    }
}

static void describe_failure(unsigned status, char *out, size_t size)
{
    const char *why = "certificate signed by unknown authority";
    if (status & (GNUTLS_CERT_EXPIRED | GNUTLS_CERT_NOT_ACTIVATED))
        why = "certificate expired or not yet valid";
    else if (status & GNUTLS_CERT_PURPOSE_MISMATCH)
        why = "certificate not valid for client authentication";
    snprintf(out, size, "%s", why);
}

void peer_identity_check(const gnutls_datum_t *chain_der, unsigned chain_length,
                         gnutls_x509_trust_list_t client_ca,
                         gnutls_x509_trust_list_t requestheader_ca, struct peer_identity *out)
{
    memset(out, 0, sizeof *out);
    out->presented = chain_length > 0;
    if (chain_length == 0)
        return;
    struct chain c;
    unsigned status = 0;
    if (chain_import(chain_der, chain_length, &c) < 0) {
        snprintf(out->error, sizeof out->error, "unparsable or too long certificate chain");
    } else {
        out->verified_client_ca = verifies_against(&c, client_ca, &status);
        out->verified_requestheader = verifies_against(&c, requestheader_ca, &status);
        if (out->verified_client_ca || out->verified_requestheader)
            fill_names(c.certs[0], &chain_der[0], out);
        else
            describe_failure(status, out->error, sizeof out->error);
    }
    chain_free(&c);
}
