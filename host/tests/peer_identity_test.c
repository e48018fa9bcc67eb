/* SPDX-License-Identifier: Apache-2.0 */
/* ctest for peer_identity_check: client chains from hack/test-pki.sh (argv[1]) against CAs. */
#include "peer_identity.h"
#include "tls_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>

static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            fprintf(stdout, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                        \
            fprintf(stdout, __VA_ARGS__);                                                          \
            fputc('\n', stdout);                                                                   \
        }                                                                                          \
    } while (0)

static const char *pki_dir;

/* A PEM file's certificates as DER datums, leaf first. */
struct der_chain {
    gnutls_datum_t certs[PEER_MAX_CHAIN + 2];
    unsigned length;
};

static void der_chain_free(struct der_chain *c)
{
    for (unsigned i = 0; i < c->length; i++)
        gnutls_free(c->certs[i].data);
    c->length = 0;
}

static void path_of(const char *name, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", pki_dir, name);
}

static void load_chain(const char *name, struct der_chain *out)
{
    char path[4096];
    path_of(name, path, sizeof path);
    memset(out, 0, sizeof *out);
    gnutls_datum_t pem = {NULL, 0};
    int rc = gnutls_load_file(path, &pem);
    if (rc < 0) {
        fprintf(stdout, "cannot read %s: %s\n", path, gnutls_strerror(rc));
        exit(2);
    }
    gnutls_x509_crt_t *crts = NULL;
    unsigned n = 0;
    rc = gnutls_x509_crt_list_import2(&crts, &n, &pem, GNUTLS_X509_FMT_PEM, 0);
    gnutls_free(pem.data);
    if (rc < 0 || n == 0 || n > PEER_MAX_CHAIN) {
        fprintf(stdout, "cannot import %s: %s\n", path, gnutls_strerror(rc));
        exit(2);
    }
    for (unsigned i = 0; i < n; i++) {
        rc = gnutls_x509_crt_export2(crts[i], GNUTLS_X509_FMT_DER, &out->certs[i]);
        if (rc < 0) {
            fprintf(stdout, "cannot export %s: %s\n", path, gnutls_strerror(rc));
            exit(2);
        }
        out->length++;
        gnutls_x509_crt_deinit(crts[i]);
    }
    gnutls_free(crts);
}

static gnutls_x509_trust_list_t load_trust(const char *name)
{
    char path[4096], err[512];
    path_of(name, path, sizeof path);
    gnutls_x509_trust_list_t list = NULL;
    if (tls_trust_list_from_file(path, &list, err, sizeof err) < 0) {
        fprintf(stdout, "cannot load trust list %s: %s\n", path, err);
        exit(2);
    }
    return list;
}

static void sha256_hex(const gnutls_datum_t *der, char out[65])
{
    unsigned char digest[32];
    if (gnutls_hash_fast(GNUTLS_DIG_SHA256, der->data, der->size, digest) != 0) {
        fprintf(stdout, "gnutls_hash_fast failed\n");
        exit(2);
    }
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", digest[i]);
}

static gnutls_x509_trust_list_t client_ca, front_proxy_ca, client_ca_2;

static void check_one(const char *file, gnutls_x509_trust_list_t client,
                      gnutls_x509_trust_list_t requestheader, struct peer_identity *out)
{
    struct der_chain chain;
    load_chain(file, &chain);
    peer_identity_check(chain.certs, chain.length, client, requestheader, out);
    der_chain_free(&chain);
}

/* Nothing verified: no names, no digest, a reason. */
static void expect_unverified(const char *what, const struct peer_identity *id)
{
    CHECK(id->presented, "%s: presented false", what);
    CHECK(!id->verified_client_ca, "%s: verified against the client CA", what);
    CHECK(!id->verified_requestheader, "%s: verified against the front-proxy CA", what);
    CHECK(id->common_name[0] == '\0', "%s: common_name \"%s\"", what, id->common_name);
    CHECK(id->organization_count == 0, "%s: %zu organizations", what, id->organization_count);
    CHECK(id->sha256_hex[0] == '\0', "%s: sha256 \"%s\"", what, id->sha256_hex);
    CHECK(id->error[0] != '\0', "%s: no error", what);
}

static void test_alice(void)
{
    struct der_chain chain;
    load_chain("alice.crt", &chain);
    char want_sha[65];
    sha256_hex(&chain.certs[0], want_sha);
    struct peer_identity id;
    peer_identity_check(chain.certs, chain.length, client_ca, front_proxy_ca, &id);
    CHECK(id.presented, "alice: presented false");
    CHECK(id.verified_client_ca, "alice: not verified against the client CA (%s)", id.error);
    CHECK(!id.verified_requestheader, "alice: verified against the front-proxy CA");
    CHECK(strcmp(id.common_name, "alice") == 0, "alice: CN \"%s\"", id.common_name);
    CHECK(id.organization_count == 2, "alice: %zu organizations", id.organization_count);
    if (id.organization_count == 2) {
        CHECK(strcmp(id.organizations[0], "dev") == 0, "alice: O[0] \"%s\"", id.organizations[0]);
        CHECK(strcmp(id.organizations[1], "ops") == 0, "alice: O[1] \"%s\"", id.organizations[1]);
    }
    CHECK(strcmp(id.sha256_hex, want_sha) == 0, "alice: sha256 %s, want %s", id.sha256_hex,
          want_sha);
    CHECK(id.error[0] == '\0', "alice: error \"%s\"", id.error);

    /* The same chain with only the front-proxy CA, or none, verifies nowhere. */
    peer_identity_check(chain.certs, chain.length, NULL, front_proxy_ca, &id);
    expect_unverified("alice vs front-proxy CA only", &id);
    peer_identity_check(chain.certs, chain.length, NULL, NULL, &id);
    expect_unverified("alice with NULL trust lists", &id);
    peer_identity_check(chain.certs, chain.length, client_ca_2, NULL, &id);
    expect_unverified("alice vs client-ca-2", &id);
    der_chain_free(&chain);
}

static void test_admin(void)
{
    struct peer_identity id;
    check_one("admin.crt", client_ca, front_proxy_ca, &id);
    CHECK(id.verified_client_ca, "admin: not verified (%s)", id.error);
    CHECK(strcmp(id.common_name, "admin") == 0, "admin: CN \"%s\"", id.common_name);
    CHECK(id.organization_count == 1 && strcmp(id.organizations[0], "system:masters") == 0,
          "admin: organizations %zu", id.organization_count);
}

static void test_front_proxy(void)
{
    struct peer_identity id;
    check_one("front-proxy-client.crt", client_ca, front_proxy_ca, &id);
    CHECK(id.presented, "front-proxy: presented false");
    CHECK(!id.verified_client_ca, "front-proxy: verified against the client CA");
    CHECK(id.verified_requestheader, "front-proxy: not verified against its CA (%s)", id.error);
    CHECK(strcmp(id.common_name, "front-proxy-client") == 0, "front-proxy: CN \"%s\"",
          id.common_name);
    CHECK(id.organization_count == 0, "front-proxy: %zu organizations", id.organization_count);
    CHECK(strlen(id.sha256_hex) == 64, "front-proxy: sha256 \"%s\"", id.sha256_hex);

    check_one("front-proxy-client.crt", client_ca, NULL, &id);
    expect_unverified("front-proxy without the front-proxy CA", &id);

    check_one("front-proxy-other.crt", NULL, front_proxy_ca, &id);
    CHECK(id.verified_requestheader, "front-proxy-other: not verified (%s)", id.error);
    CHECK(strcmp(id.common_name, "not-allowed") == 0, "front-proxy-other: CN \"%s\"",
          id.common_name);
}

static void test_rogue(void)
{
    struct peer_identity id;
    check_one("rogue-front-proxy.crt", client_ca, front_proxy_ca, &id);
    expect_unverified("rogue-front-proxy", &id);
    check_one("rogue-alice.crt", client_ca, front_proxy_ca, &id);
    expect_unverified("rogue-alice", &id);

    /* The real client CA appended to a rogue leaf does not make it trusted. */
    struct der_chain rogue, ca;
    load_chain("rogue-alice.crt", &rogue);
    load_chain("client-ca.crt", &ca);
    gnutls_datum_t both[2] = {rogue.certs[0], ca.certs[0]};
    peer_identity_check(both, 2, client_ca, front_proxy_ca, &id);
    expect_unverified("rogue-alice + client CA", &id);
    der_chain_free(&rogue);
    der_chain_free(&ca);
}

static void test_expired_and_purpose(void)
{
    struct peer_identity id;
    check_one("expired.crt", client_ca, front_proxy_ca, &id);
    expect_unverified("expired", &id);
    CHECK(strstr(id.error, "expired") != NULL, "expired: error \"%s\"", id.error);

    check_one("server-only.crt", client_ca, front_proxy_ca, &id);
    expect_unverified("server-only", &id);
    CHECK(strstr(id.error, "client authentication") != NULL, "server-only: error \"%s\"", id.error);
}

static void test_chains(void)
{
    struct peer_identity id;
    struct der_chain chain;
    load_chain("bob-chain.crt", &chain);
    CHECK(chain.length == 2, "bob-chain.crt holds %u certificates", chain.length);
    char want_sha[65];
    sha256_hex(&chain.certs[0], want_sha);
    peer_identity_check(chain.certs, chain.length, client_ca, front_proxy_ca, &id);
    CHECK(id.verified_client_ca, "bob chain: not verified (%s)", id.error);
    CHECK(!id.verified_requestheader, "bob chain: verified against the front-proxy CA");
    CHECK(strcmp(id.common_name, "bob") == 0, "bob chain: CN \"%s\"", id.common_name);
    CHECK(id.organization_count == 1 && strcmp(id.organizations[0], "dev") == 0,
          "bob chain: organizations %zu", id.organization_count);
    CHECK(strcmp(id.sha256_hex, want_sha) == 0, "bob chain: sha256 of the leaf %s, want %s",
          id.sha256_hex, want_sha);

    /* The leaf alone: the intermediate is missing. */
    peer_identity_check(chain.certs, 1, client_ca, front_proxy_ca, &id);
    expect_unverified("bob leaf without intermediate", &id);
    der_chain_free(&chain);

    check_one("bob.crt", client_ca, front_proxy_ca, &id);
    expect_unverified("bob.crt", &id);

    check_one("carol.crt", client_ca_2, NULL, &id);
    CHECK(id.verified_client_ca, "carol vs client-ca-2: not verified (%s)", id.error);
    CHECK(strcmp(id.common_name, "carol") == 0, "carol: CN \"%s\"", id.common_name);
    CHECK(id.organization_count == 0, "carol: %zu organizations", id.organization_count);
    check_one("carol.crt", client_ca, front_proxy_ca, &id);
    expect_unverified("carol vs client CA", &id);
}

static void test_degenerate(void)
{
    struct peer_identity id;
    memset(&id, 0x5a, sizeof id);
    peer_identity_check(NULL, 0, client_ca, front_proxy_ca, &id);
    CHECK(!id.presented, "empty chain: presented");
    CHECK(!id.verified_client_ca && !id.verified_requestheader, "empty chain: verified");
    CHECK(id.common_name[0] == '\0' && id.organization_count == 0 && id.sha256_hex[0] == '\0',
          "empty chain: names not cleared");

    unsigned char junk[] = {0x30, 0x82, 0x01, 0x00, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x01};
    gnutls_datum_t garbage = {junk, sizeof junk};
    peer_identity_check(&garbage, 1, client_ca, front_proxy_ca, &id);
    expect_unverified("garbage DER", &id);

    gnutls_datum_t empty = {junk, 0};
    peer_identity_check(&empty, 1, client_ca, front_proxy_ca, &id);
    expect_unverified("zero-length DER", &id);

    /* A valid leaf followed by garbage. */
    struct der_chain alice;
    load_chain("alice.crt", &alice);
    gnutls_datum_t mixed[2] = {alice.certs[0], garbage};
    peer_identity_check(mixed, 2, client_ca, front_proxy_ca, &id);
    expect_unverified("alice + garbage", &id);

    /* Longer than PEER_MAX_CHAIN. */
    gnutls_datum_t many[PEER_MAX_CHAIN + 1];
    for (unsigned i = 0; i < PEER_MAX_CHAIN + 1; i++)
        many[i] = alice.certs[0];
    peer_identity_check(many, PEER_MAX_CHAIN + 1, client_ca, front_proxy_ca, &id);
    expect_unverified("chain too long", &id);
    der_chain_free(&alice);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PKI_DIR (from hack/test-pki.sh)\n", argv[0]);
        return 2;
    }
    pki_dir = argv[1];
    client_ca = load_trust("client-ca.crt");
    front_proxy_ca = load_trust("front-proxy-ca.crt");
    client_ca_2 = load_trust("client-ca-2.crt");

    test_alice();
    test_admin();
    test_front_proxy();
    test_rogue();
    test_expired_and_purpose();
    test_chains();
    test_degenerate();

    gnutls_x509_trust_list_deinit(client_ca, 1);
    gnutls_x509_trust_list_deinit(front_proxy_ca, 1);
    gnutls_x509_trust_list_deinit(client_ca_2, 1);
    if (failures != 0) {
        printf("peer_identity_test: %d failure(s)\n", failures);
        return 1;
    }
    printf("peer_identity_test: ok\n");
    return 0;
}
