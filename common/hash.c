/* hash_: SHA-256 hex via OpenSSL EVP. See hash.h. */
#include "hash.h"

#include <openssl/evp.h>
#include <string.h>

static void to_hex(const unsigned char *digest, unsigned int n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (unsigned int i = 0; i < n; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 15];
    }
    out[2 * n] = '\0';
}

/* Feeds `count` parts separated by '|' into one digest. */
static int sha256_parts(const char *const *parts, size_t count, char out[HASH_HEX_SIZE])
{
    int rc = -1;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    out[0] = '\0';
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return -1;
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
        goto out;
    for (size_t i = 0; i < count; i++) {
        if (i > 0 && EVP_DigestUpdate(ctx, "|", 1) != 1)
            goto out;
        const char *p = parts[i] ? parts[i] : "";
        if (EVP_DigestUpdate(ctx, p, strlen(p)) != 1)
            goto out;
    }
    if (EVP_DigestFinal_ex(ctx, digest, &dlen) != 1 || dlen != 32)
        goto out;
    to_hex(digest, dlen, out);
    rc = 0;
out:
    EVP_MD_CTX_free(ctx);
    return rc;
}

int hash_sha256_hex(const void *data, size_t len, char out[HASH_HEX_SIZE])
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    out[0] = '\0';
    if (!data && len > 0)
        return -1;
    /* EVP_Digest() refuses a NULL pointer even for zero bytes on some versions. */
    if (EVP_Digest(data ? data : "", len, digest, &dlen, EVP_sha256(), NULL) != 1 || dlen != 32)
        return -1;
    to_hex(digest, dlen, out);
    return 0;
}

int hash_event_id(const char *source, const char *entity, const char *id, const char *stamp,
                  char out[HASH_HEX_SIZE])
{
    const char *parts[4] = {source, entity, id, stamp};
    return sha256_parts(parts, 4, out);
}
