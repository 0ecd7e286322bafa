/* hash_: SHA-256 as lowercase hex through OpenSSL libcrypto's EVP interface, and the Kafka
 * `event-id` header of SPEC §2.
 *
 * Ownership: callers supply every buffer; nothing is allocated that outlives a call.
 * Thread-safety: reentrant (OpenSSL >= 1.1 needs no locking setup).
 */
#ifndef PIPELINE_HASH_H
#define PIPELINE_HASH_H

#include <stddef.h>

/* Size of a hex SHA-256 buffer: 64 hex characters + NUL. */
#define HASH_HEX_SIZE 65

/* SHA-256 of data[0..len) as 64 lowercase hex characters + NUL into out. data may be NULL
 * when len is 0. Returns 0, or -1 when libcrypto fails (out is then the empty string). */
int hash_sha256_hex(const void *data, size_t len, char out[HASH_HEX_SIZE]);

/* The event id of SPEC §2: hash_sha256_hex("source|entity|id|stamp").
 * source: "ploomes"|"milvus"; entity: "contact"|"task"|"interaction"|"client"; id: the record
 * id as decimal text; stamp: Ploomes' LastUpdateDate text as received, or for Milvus the hex
 * SHA-256 of the message value. NULL arguments count as "". Returns 0, or -1 on failure
 * (out is then the empty string). */
int hash_event_id(const char *source, const char *entity, const char *id, const char *stamp,
                  char out[HASH_HEX_SIZE]);

#endif
