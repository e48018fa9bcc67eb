/* SPDX-License-Identifier: Apache-2.0 */
/* Loads and reloads the TLS material (GnuTLS). Generations are swapped under a
 * mutex and freed by the last connection that used them, so a rotated Secret
 * never pulls credentials from under a live handshake. */
#include "tls_store.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bindings/log.h"

enum { FILE_CERT, FILE_KEY, FILE_CLIENT_CA, FILE_REQUESTHEADER_CA, FILE_COUNT };

static const char *const file_flags[FILE_COUNT] = {"--tls-cert-file", "--tls-private-key-file",
                                                   "--client-ca-file",
                                                   "--requestheader-client-ca-file"};

struct file_stamp {
    bool present;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
};

struct generation_box {
    struct tls_generation generation; /* first: a tls_generation* is a generation_box* */
    atomic_int refs;
};

struct tls_store {
    const char *paths[FILE_COUNT];
    /* CA bundles from the cluster (the authentication ConfigMap), used for the
     * CAs that no flag names; NULL when none. Guarded by reload_lock. */
    char *cluster_pems[FILE_COUNT];
    pthread_mutex_t reload_lock;              /* one reload at a time: file watcher or ConfigMap */
    struct file_stamp stamps[FILE_COUNT];     /* of the files behind `current` */
    struct file_stamp bad_stamps[FILE_COUNT]; /* last change that failed: logged once */
    pthread_mutex_t lock;
    struct generation_box *current;
    unsigned long next_id;
};

static void stamp_file(const char *path, struct file_stamp *out)
{
    struct stat st;
    memset(out, 0, sizeof *out);
    if (path == NULL || stat(path, &st) != 0)
        return;
    *out = (struct file_stamp){true, st.st_dev, st.st_ino, st.st_size, st.st_mtim};
}

static bool stamps_equal(const struct file_stamp *a, const struct file_stamp *b)
{
    return a->present == b->present && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

int tls_trust_list_from_file(const char *path, gnutls_x509_trust_list_t *out, char *err,
                             size_t errlen)
{
    gnutls_x509_trust_list_t list = NULL;
    int rc = gnutls_x509_trust_list_init(&list, 0);
    if (rc == 0) {
        rc = gnutls_x509_trust_list_add_trust_file(list, path, NULL, GNUTLS_X509_FMT_PEM, 0, 0);
        if (rc == 0)
            rc = GNUTLS_E_NO_CERTIFICATE_FOUND; /* a bundle with no CA trusts nobody */
    }
    if (rc < 0) {
        snprintf(err, errlen, "cannot load CA bundle %s: %s", path, gnutls_strerror(rc));
        if (list != NULL)
            gnutls_x509_trust_list_deinit(list, 1);
        return rc;
    }
    *out = list;
    return 0;
}

static void generation_free(struct generation_box *box)
{
    struct tls_generation *g = &box->generation;
    if (g->credentials != NULL)
        gnutls_certificate_free_credentials(g->credentials);
    if (g->client_ca != NULL)
        gnutls_x509_trust_list_deinit(g->client_ca, 1);
    if (g->requestheader_ca != NULL)
        gnutls_x509_trust_list_deinit(g->requestheader_ca, 1);
    gnutls_free(g->cert_pem.data);
    gnutls_free(g->key_pem.data);
    free(box);
}

static int load_key_pair(struct tls_generation *g, const char *cert, const char *key, char *err,
                         size_t errlen)
{
    int rc = gnutls_load_file(cert, &g->cert_pem);
    if (rc < 0) {
        snprintf(err, errlen, "--tls-cert-file: cannot read %s: %s", cert, gnutls_strerror(rc));
        return rc;
    }
    rc = gnutls_load_file(key, &g->key_pem);
    if (rc < 0) {
        snprintf(err, errlen, "--tls-private-key-file: cannot read %s: %s", key,
                 gnutls_strerror(rc));
        return rc;
    }
    rc = gnutls_certificate_allocate_credentials(&g->credentials);
    if (rc == 0)
        rc = gnutls_certificate_set_x509_key_mem2(g->credentials, &g->cert_pem, &g->key_pem,
                                                  GNUTLS_X509_FMT_PEM, NULL, 0);
    if (rc < 0) {
        snprintf(err, errlen, "--tls-cert-file %s / --tls-private-key-file %s: %s", cert, key,
                 rc == GNUTLS_E_CERTIFICATE_KEY_MISMATCH ? "the certificate does not match the key"
                                                         : gnutls_strerror(rc));
        return rc;
    }
    return 0;
}

int tls_trust_list_from_pem(const char *pem, gnutls_x509_trust_list_t *out, char *err,
                            size_t errlen)
{
    gnutls_x509_trust_list_t list = NULL;
    gnutls_datum_t data = {(unsigned char *)pem, (unsigned)strlen(pem)};
    int rc = gnutls_x509_trust_list_init(&list, 0);
    if (rc == 0) {
        rc = gnutls_x509_trust_list_add_trust_mem(list, &data, NULL, GNUTLS_X509_FMT_PEM, 0, 0);
        if (rc == 0)
            rc = GNUTLS_E_NO_CERTIFICATE_FOUND;
    }
    if (rc < 0) {
        snprintf(err, errlen, "cannot load CA bundle: %s", gnutls_strerror(rc));
        if (list != NULL)
            gnutls_x509_trust_list_deinit(list, 1);
        return rc;
    }
    *out = list;
    return 0;
}

/* A CA named by a flag comes from its file; otherwise from the cluster, if given. */
static int load_ca(const char *flag, const char *path, const char *cluster_pem,
                   gnutls_x509_trust_list_t *out, char *err, size_t errlen)
{
    char reason[512];
    int rc = 0;
    if (path != NULL)
        rc = tls_trust_list_from_file(path, out, reason, sizeof reason);
    else if (cluster_pem != NULL)
        rc = tls_trust_list_from_pem(cluster_pem, out, reason, sizeof reason);
    if (rc < 0)
        snprintf(err, errlen, "%s: %s", path != NULL ? flag : "cluster CA bundle", reason);
    return rc;
}

static struct generation_box *generation_load(const char *const paths[FILE_COUNT],
                                              char *const cluster_pems[FILE_COUNT], char *err,
                                              size_t errlen)
{
    struct generation_box *box = calloc(1, sizeof *box);
    if (box == NULL) {
        snprintf(err, errlen, "out of memory loading TLS files");
        return NULL;
    }
    atomic_init(&box->refs, 1);
    struct tls_generation *g = &box->generation;
    if (load_key_pair(g, paths[FILE_CERT], paths[FILE_KEY], err, errlen) < 0 ||
        load_ca(file_flags[FILE_CLIENT_CA], paths[FILE_CLIENT_CA], cluster_pems[FILE_CLIENT_CA],
                &g->client_ca, err, errlen) < 0 ||
        load_ca(file_flags[FILE_REQUESTHEADER_CA], paths[FILE_REQUESTHEADER_CA],
                cluster_pems[FILE_REQUESTHEADER_CA], &g->requestheader_ca, err, errlen) < 0) {
        generation_free(box);
        return NULL;
    }
    return box;
}

struct tls_store *tls_store_open(const struct tls_paths *paths, char *err, size_t errlen)
{
    struct tls_store *store = calloc(1, sizeof *store);
    if (store == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    store->paths[FILE_CERT] = paths->cert_file;
    store->paths[FILE_KEY] = paths->key_file;
    store->paths[FILE_CLIENT_CA] = paths->client_ca_file;
    store->paths[FILE_REQUESTHEADER_CA] = paths->requestheader_client_ca_file;
    for (int i = 0; i < FILE_COUNT; i++)
        stamp_file(store->paths[i], &store->stamps[i]);
    store->current = generation_load(store->paths, store->cluster_pems, err, errlen);
    if (store->current == NULL) {
        free(store);
        return NULL;
    }
    store->current->generation.id = store->next_id = 1;
    pthread_mutex_init(&store->lock, NULL);
    pthread_mutex_init(&store->reload_lock, NULL);
    return store;
}

struct tls_generation *tls_store_acquire(struct tls_store *store)
{
    pthread_mutex_lock(&store->lock);
    struct generation_box *box = store->current;
    atomic_fetch_add(&box->refs, 1);
    pthread_mutex_unlock(&store->lock);
    return &box->generation;
}

void tls_generation_release(struct tls_generation *generation)
{
    struct generation_box *box = (struct generation_box *)generation;
    if (box != NULL && atomic_fetch_sub(&box->refs, 1) == 1)
        generation_free(box);
}

/* True when some file differs from the loaded generation and from the last failed attempt
 * (so a broken file is reported once, not every interval). */
static bool files_changed(struct tls_store *store, struct file_stamp now[FILE_COUNT])
{
    bool changed = false, all_known_bad = true;
    for (int i = 0; i < FILE_COUNT; i++) {
        stamp_file(store->paths[i], &now[i]);
        if (!stamps_equal(&now[i], &store->stamps[i]))
            changed = true;
        if (!stamps_equal(&now[i], &store->bad_stamps[i]))
            all_known_bad = false;
    }
    return changed && !all_known_bad;
}

static void install_generation(struct tls_store *store, struct generation_box *box, const char *why)
{
    pthread_mutex_lock(&store->lock);
    struct generation_box *old = store->current;
    box->generation.id = ++store->next_id;
    store->current = box;
    pthread_mutex_unlock(&store->lock);
    tls_generation_release(&old->generation);
    char id[32];
    snprintf(id, sizeof id, "%lu", box->generation.id);
    const char *fields[] = {"generation", id, "cause", why, NULL};
    log_write(LOG_LEVEL_INFO, "reloaded TLS certificates and CA bundles", fields);
}

bool tls_store_reload_if_changed(struct tls_store *store)
{
    struct file_stamp now[FILE_COUNT];
    pthread_mutex_lock(&store->reload_lock);
    if (!files_changed(store, now)) {
        pthread_mutex_unlock(&store->reload_lock);
        return false;
    }
    char err[1024];
    struct generation_box *box =
        generation_load(store->paths, store->cluster_pems, err, sizeof err);
    if (box == NULL) {
        memcpy(store->bad_stamps, now, sizeof now);
        pthread_mutex_unlock(&store->reload_lock);
        const char *fields[] = {"error", err, NULL};
        log_write(LOG_LEVEL_ERROR,
                  "TLS files changed but cannot be loaded; still serving the previous certificates",
                  fields);
        return false;
    }
    memcpy(store->stamps, now, sizeof now);
    install_generation(store, box, "files changed");
    pthread_mutex_unlock(&store->reload_lock);
    return true;
}

static bool same_text(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static char *copy_text(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

int tls_store_set_cluster_cas(struct tls_store *store, const char *client_ca_pem,
                              const char *requestheader_ca_pem, char *err, size_t errlen)
{
    pthread_mutex_lock(&store->reload_lock);
    if (same_text(client_ca_pem, store->cluster_pems[FILE_CLIENT_CA]) &&
        same_text(requestheader_ca_pem, store->cluster_pems[FILE_REQUESTHEADER_CA])) {
        pthread_mutex_unlock(&store->reload_lock);
        return 0;
    }
    char *pems[FILE_COUNT] = {NULL};
    pems[FILE_CLIENT_CA] = copy_text(client_ca_pem);
    pems[FILE_REQUESTHEADER_CA] = copy_text(requestheader_ca_pem);
    struct generation_box *box = generation_load(store->paths, pems, err, errlen);
    if (box == NULL) {
        free(pems[FILE_CLIENT_CA]);
        free(pems[FILE_REQUESTHEADER_CA]);
        pthread_mutex_unlock(&store->reload_lock);
        return -1;
    }
    for (int i = 0; i < FILE_COUNT; i++) {
        free(store->cluster_pems[i]);
        store->cluster_pems[i] = pems[i];
    }
    install_generation(store, box, "cluster CA bundles changed");
    pthread_mutex_unlock(&store->reload_lock);
    return 1;
}

bool tls_store_has_file(const struct tls_store *store, enum tls_ca which)
{
    return store->paths[which == TLS_CA_CLIENT ? FILE_CLIENT_CA : FILE_REQUESTHEADER_CA] != NULL;
}

void tls_store_close(struct tls_store *store)
{
    if (store == NULL)
        return;
    tls_generation_release(&store->current->generation);
    for (int i = 0; i < FILE_COUNT; i++)
        free(store->cluster_pems[i]);
    pthread_mutex_destroy(&store->lock);
    pthread_mutex_destroy(&store->reload_lock);
    free(store);
}
