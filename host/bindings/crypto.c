/* SPDX-License-Identifier: Apache-2.0 */
/* host.crypto: hashes, HMAC, base64 and hex (nettle); RSA signing and randomness (GnuTLS).
 * Misuse raises; bad base64, hex or key input returns nil, message, code. */
#include "bindings/bindings.h"

#include <stdint.h>
#include <string.h>

#include <lauxlib.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <nettle/base16.h>
#include <nettle/base64.h>
#include <nettle/hmac.h>
#include <nettle/memops.h>
#include <nettle/nettle-meta.h>
#include <nettle/sha1.h>
#include <nettle/sha2.h>

#define RANDOM_BYTES_MAX 65536
#define SIGN_GUARD_METATABLE "host.crypto.sign_guard"

/* Expected failure: nil, message, code. */
static int push_failure(lua_State *L, const char *function, const char *problem, const char *code)
{
    lua_pushnil(L);
    lua_pushfstring(L, "host.crypto.%s: %s", function, problem);
    lua_pushstring(L, code);
    return 3;
}

/* Encoded sizes are computed as length * 8; refuse lengths where that could wrap. */
static void check_encodable(lua_State *L, const char *function, size_t len)
{
    if (len > SIZE_MAX / 8 - 8)
        luaL_error(L, "host.crypto.%s: input too large", function);
}

static int push_hash(lua_State *L, const struct nettle_hash *hash)
{
    size_t len;
    const char *data = luaL_checklstring(L, 1, &len);
    union {
        struct sha1_ctx sha1;
        struct sha256_ctx sha256;
    } ctx;
    uint8_t digest[SHA256_DIGEST_SIZE];

    hash->init(&ctx);
    hash->update(&ctx, len, (const uint8_t *)data);
    hash->digest(&ctx, hash->digest_size, digest);
    lua_pushlstring(L, (const char *)digest, hash->digest_size);
    return 1;
}

static int crypto_sha256(lua_State *L)
{
    return push_hash(L, &nettle_sha256);
}

static int crypto_sha1(lua_State *L)
{
    return push_hash(L, &nettle_sha1);
}

static int crypto_hmac_sha256(lua_State *L)
{
    size_t key_len, len;
    const char *key = luaL_checklstring(L, 1, &key_len);
    const char *data = luaL_checklstring(L, 2, &len);
    struct hmac_sha256_ctx ctx;
    uint8_t mac[SHA256_DIGEST_SIZE];

    hmac_sha256_set_key(&ctx, key_len, (const uint8_t *)key);
    hmac_sha256_update(&ctx, len, (const uint8_t *)data);
    hmac_sha256_digest(&ctx, sizeof mac, mac);
    lua_pushlstring(L, (const char *)mac, sizeof mac);
    return 1;
}

static int crypto_hmac_sha1(lua_State *L)
{
    size_t key_len, len;
    const char *key = luaL_checklstring(L, 1, &key_len);
    const char *data = luaL_checklstring(L, 2, &len);
    struct hmac_sha1_ctx ctx;
    uint8_t mac[SHA1_DIGEST_SIZE];

    hmac_sha1_set_key(&ctx, key_len, (const uint8_t *)key);
    hmac_sha1_update(&ctx, len, (const uint8_t *)data);
    hmac_sha1_digest(&ctx, sizeof mac, mac);
    lua_pushlstring(L, (const char *)mac, sizeof mac);
    return 1;
}

static int push_base64(lua_State *L, const char *function, int url)
{
    size_t len;
    const char *data = luaL_checklstring(L, 1, &len);
    struct base64_encode_ctx ctx;
    luaL_Buffer b;

    check_encodable(L, function, len);
    char *out = luaL_buffinitsize(L, &b, BASE64_ENCODE_LENGTH(len) + BASE64_ENCODE_FINAL_LENGTH);
    if (url)
        base64url_encode_init(&ctx);
    else
        base64_encode_init(&ctx);
    size_t n = base64_encode_update(&ctx, out, len, (const uint8_t *)data);
    n += base64_encode_final(&ctx, out + n);
    /* JWTs and most URL uses want the unpadded form (RFC 7515 section 2). */
    while (url && n > 0 && out[n - 1] == '=')
        n--;
    luaL_pushresultsize(&b, n);
    return 1;
}

static int decode_base64(lua_State *L, const char *function, int url)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    struct base64_decode_ctx ctx;
    luaL_Buffer b;

    check_encodable(L, function, len);
    uint8_t *out = (uint8_t *)luaL_buffinitsize(L, &b, BASE64_DECODE_LENGTH(len + 2));
    if (url)
        base64url_decode_init(&ctx);
    else
        base64_decode_init(&ctx);
    size_t n = 0;
    int ok = base64_decode_update(&ctx, &n, out, len, text);
    /* nettle only accepts complete quanta, so supply the padding an unpadded
     * base64url text left out: 4 or 2 pending bits mean 2 or 3 trailing characters. */
    if (ok && url && ctx.padding == 0 && (ctx.bits == 2 || ctx.bits == 4)) {
        size_t more = 0;
        ok = base64_decode_update(&ctx, &more, out + n, ctx.bits / 2, "==");
        n += more;
    }
    /* nettle lets a lone character take three '=' ("A===" -> ""); RFC 4648 allows two. */
    if (!ok || ctx.padding > 2 || !base64_decode_final(&ctx))
        return push_failure(L, function, "invalid base64 input", "invalid_base64");
    luaL_pushresultsize(&b, n);
    return 1;
}

static int crypto_base64_encode(lua_State *L)
{
    return push_base64(L, "base64_encode", 0);
}

static int crypto_base64_decode(lua_State *L)
{
    return decode_base64(L, "base64_decode", 0);
}

static int crypto_base64url_encode(lua_State *L)
{
    return push_base64(L, "base64url_encode", 1);
}

static int crypto_base64url_decode(lua_State *L)
{
    return decode_base64(L, "base64url_decode", 1);
}

static int crypto_hex_encode(lua_State *L)
{
    size_t len;
    const char *data = luaL_checklstring(L, 1, &len);
    luaL_Buffer b;

    check_encodable(L, "hex_encode", len);
    char *out = luaL_buffinitsize(L, &b, BASE16_ENCODE_LENGTH(len));
    base16_encode_update(out, len, (const uint8_t *)data);
    luaL_pushresultsize(&b, BASE16_ENCODE_LENGTH(len));
    return 1;
}

static int crypto_hex_decode(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    struct base16_decode_ctx ctx;
    luaL_Buffer b;

    uint8_t *out = (uint8_t *)luaL_buffinitsize(L, &b, BASE16_DECODE_LENGTH(len));
    base16_decode_init(&ctx);
    size_t n = 0;
    if (!base16_decode_update(&ctx, &n, out, len, text) || !base16_decode_final(&ctx))
        return push_failure(L, "hex_decode", "invalid hex input", "invalid_hex");
    luaL_pushresultsize(&b, n);
    return 1;
}

/* Owns the GnuTLS objects of one signing call, so that a Lua error (e.g. out of
 * memory while pushing the result) lets the garbage collector free them. */
struct sign_guard {
    gnutls_privkey_t key;
    gnutls_datum_t signature;
};

static void sign_guard_release(struct sign_guard *guard)
{
    if (guard->signature.data != NULL) {
        gnutls_free(guard->signature.data);
        guard->signature.data = NULL;
    }
    if (guard->key != NULL) {
        gnutls_privkey_deinit(guard->key);
        guard->key = NULL;
    }
}

static int sign_guard_gc(lua_State *L)
{
    sign_guard_release(luaL_checkudata(L, 1, SIGN_GUARD_METATABLE));
    return 0;
}

static struct sign_guard *push_sign_guard(lua_State *L)
{
    struct sign_guard *guard = lua_newuserdatauv(L, sizeof *guard, 0);
    memset(guard, 0, sizeof *guard);
    if (luaL_newmetatable(L, SIGN_GUARD_METATABLE)) {
        lua_pushcfunction(L, sign_guard_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    return guard;
}

/* Returns NULL on success, or a description that never quotes the key. */
static const char *sign_rsa_sha256(struct sign_guard *guard, const char *pem, size_t pem_len,
                                   const char *data, size_t len)
{
    gnutls_datum_t pem_datum = {(unsigned char *)pem, (unsigned int)pem_len};
    gnutls_datum_t data_datum = {(unsigned char *)data, (unsigned int)len};

    if (gnutls_privkey_init(&guard->key) < 0) {
        guard->key = NULL;
        return "cannot allocate a private key";
    }
    if (gnutls_privkey_import_x509_raw(guard->key, &pem_datum, GNUTLS_X509_FMT_PEM, NULL, 0) < 0)
        return "cannot parse the PEM private key";
    if (gnutls_privkey_get_pk_algorithm(guard->key, NULL) != GNUTLS_PK_RSA)
        return "the private key is not an RSA key";
    if (gnutls_privkey_sign_data(guard->key, GNUTLS_DIG_SHA256, 0, &data_datum, &guard->signature) <
        0) {
        guard->signature.data = NULL;
        return "signing failed (key too small?)";
    }
    return NULL;
}

static int crypto_rsa_sha256_sign(lua_State *L)
{
    size_t pem_len, len;
    const char *pem = luaL_checklstring(L, 1, &pem_len);
    const char *data = luaL_checklstring(L, 2, &len);

    /* gnutls_datum_t sizes are unsigned int. */
    if (pem_len > UINT32_MAX || len > UINT32_MAX)
        return luaL_error(L, "host.crypto.rsa_sha256_sign: input too large");
    struct sign_guard *guard = push_sign_guard(L);
    const char *problem = sign_rsa_sha256(guard, pem, pem_len, data, len);
    if (problem != NULL) {
        sign_guard_release(guard);
        return push_failure(L, "rsa_sha256_sign", problem, "invalid_key");
    }
    lua_pushlstring(L, (const char *)guard->signature.data, guard->signature.size);
    sign_guard_release(guard);
    return 1;
}

static int crypto_random_bytes(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_Buffer b;

    if (n < 0 || n > RANDOM_BYTES_MAX)
        return luaL_error(L, "host.crypto.random_bytes: n must be between 0 and %d",
                          RANDOM_BYTES_MAX);
    char *out = luaL_buffinitsize(L, &b, (size_t)n);
    /* The key-level generator: callers use these bytes for secrets and tokens. */
    if (n > 0 && gnutls_rnd(GNUTLS_RND_KEY, out, (size_t)n) < 0)
        return luaL_error(L, "host.crypto.random_bytes: the random generator failed");
    luaL_pushresultsize(&b, (size_t)n);
    return 1;
}

static int crypto_constant_time_equal(lua_State *L)
{
    size_t a_len, b_len;
    const char *a = luaL_checklstring(L, 1, &a_len);
    const char *b = luaL_checklstring(L, 2, &b_len);

    /* Only the length may leak; memeql_sec reads every byte wherever they differ. */
    lua_pushboolean(L, a_len == b_len && memeql_sec(a, b, a_len));
    return 1;
}

static const luaL_Reg crypto_functions[] = {
    {"sha256", crypto_sha256},
    {"sha1", crypto_sha1},
    {"hmac_sha256", crypto_hmac_sha256},
    {"hmac_sha1", crypto_hmac_sha1},
    {"base64_encode", crypto_base64_encode},
    {"base64_decode", crypto_base64_decode},
    {"base64url_encode", crypto_base64url_encode},
    {"base64url_decode", crypto_base64url_decode},
    {"hex_encode", crypto_hex_encode},
    {"hex_decode", crypto_hex_decode},
    {"rsa_sha256_sign", crypto_rsa_sha256_sign},
    {"random_bytes", crypto_random_bytes},
    {"constant_time_equal", crypto_constant_time_equal},
    {NULL, NULL},
};

int luaopen_host_crypto(lua_State *L)
{
    luaL_newlib(L, crypto_functions);
    return 1;
}
