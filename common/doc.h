/* doc_: Brazilian documents (CPF / CNPJ, including the 2026 alphanumeric CNPJ) and CEP postal
 * codes, per SPEC §5 and reference/apis.md §3.
 *
 * Normal form of a document: separators '.', '/', '-' and ASCII whitespace removed, letters
 * uppercased. CPF = 11 digits. CNPJ = 14 characters, positions 1-12 in [0-9A-Z], 13-14 digits.
 * Check digits: mod-11 with value = ASCII - 48 (so 'A' = 17 ... 'Z' = 42); all-equal
 * sequences are invalid. A document is always a string, never a number.
 * Any byte >= 0x80 (UTF-8 or not) or any other character makes the input DOC_INVALID; the
 * functions never read past the terminating NUL and never write past the given buffers.
 *
 * Personal data: a document is personal data (LGPD). Log only doc_mask() output, only at debug.
 * The `reason` strings below never contain the document.
 *
 * Ownership: callers supply every buffer. Thread-safety: reentrant, no state.
 */
#ifndef PIPELINE_DOC_H
#define PIPELINE_DOC_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

/* Normalised document + NUL. */
#define DOC_BUF_SIZE 15
/* Masked or formatted display (e.g. "00.000.000/0000-00") + NUL. */
#define DOC_DISPLAY_SIZE 24
/* CEP: 8 digits + NUL. */
#define DOC_CEP_SIZE 9

typedef enum {
    DOC_NONE = 0,    /* no document at all: NULL, empty, only separators, JSON null/missing */
    DOC_CPF = 1,     /* valid CPF (person) */
    DOC_CNPJ = 2,    /* valid CNPJ (company), numeric or alphanumeric */
    DOC_INVALID = 3  /* something is there but it is not a valid CPF/CNPJ */
} doc_kind_t;

/* "none", "cpf", "cnpj", "invalid". */
const char *doc_kind_name(doc_kind_t kind);

/* Normalises, classifies and verifies `raw`.
 * out (DOC_BUF_SIZE): the normal form when the result is DOC_CPF or DOC_CNPJ; for DOC_INVALID
 * the normal form when it fits in 14 characters (so it can be masked for a debug log), else "";
 * for DOC_NONE "". reason (may be NULL): NULL for valid/none, else a static sentence such as
 * "wrong check digits", "wrong length (9 characters; expected 11 or 14)",
 * "non-ASCII character", "all characters equal". Lowercase letters are accepted (uppercased). */
doc_kind_t doc_parse(const char *raw, char out[DOC_BUF_SIZE], const char **reason);

/* Normal form only (no classification): strips separators, uppercases. Returns the normalised
 * length (0..14), or -1 when the input holds a character outside [0-9A-Za-z./-] and ASCII
 * whitespace, or more than 14 significant characters (out is then ""). */
int doc_normalize(const char *raw, char out[DOC_BUF_SIZE]);

/* Verifies a NORMALISED document's shape and check digits (includes the all-equal rule).
 * Returns DOC_CPF, DOC_CNPJ, DOC_NONE for "" and DOC_INVALID otherwise. */
doc_kind_t doc_verify(const char *normalized, const char **reason);

/* Like doc_parse(), for a Milvus `cnpj_cpf` that may have been stored as a number and lost
 * its leading zeros: after normalisation, a digits-only value of 12-13 digits is left-padded
 * with zeros to 14 (CNPJ) and of 9-10 digits to 11 (CPF), then verified. */
doc_kind_t doc_from_milvus(const char *raw, char out[DOC_BUF_SIZE], const char **reason);

/* doc_from_milvus() for a cJSON value: a string goes through doc_from_milvus(); a number is
 * accepted when it is an exact non-negative integer below 10^14, turned into its decimal text
 * and padded as above; NULL item, JSON null or "" → DOC_NONE; any other type → DOC_INVALID. */
doc_kind_t doc_from_milvus_json(const cJSON *item, char out[DOC_BUF_SIZE], const char **reason);

/* Masked form for DEBUG logs, revealing only a middle part:
 *   CPF  52998224725    → "***.982.247-**"
 *   CNPJ 11222333000181 → "**.222.333/ ****-**" without the space (a C comment cannot hold it)
 *   anything else       → one '*' per character (at most 14), "" for "" / NULL.
 * Takes a normalised document; writes at most `size` bytes (DOC_DISPLAY_SIZE is enough), always
 * NUL-terminated. Returns buf. */
const char *doc_mask(const char *normalized, char *buf, size_t size);

/* Display (punctuated) form of a normalised document: CPF "529.982.247-25", CNPJ
 * "11.222.333/0001-81" / "12.ABC.345/01DE-35". Used to search Ploomes by the masked Register.
 * Returns buf, or NULL (buf = "") when the input is not 11 or 14 characters or buf is too
 * small (DOC_DISPLAY_SIZE is enough). */
const char *doc_format(const char *normalized, char *buf, size_t size);

/* CEP (Brazilian postal code) to 8 digits with leading zeros. Accepts "01310-100",
 * "01310100", "01.310-100", " 1310100" (separators and ASCII whitespace stripped; 7 digits get
 * one leading zero because the smallest CEP is 01000-000 and a number loses exactly one zero).
 * Returns 0 with out filled; 1 when there is no CEP (NULL, empty, only separators: out = "");
 * -1 when it is not a CEP (letters, non-ASCII, fewer than 7 or more than 8 digits, or a value
 * below 01000000: out = ""). */
int doc_cep_normalize(const char *raw, char out[DOC_CEP_SIZE]);

/* doc_cep_normalize() for a cJSON value: strings as above; a number (Ploomes' ZipCode) must be
 * an exact non-negative integer, printed in decimal then handled as above; NULL item / JSON null
 * → 1; other types → -1. */
int doc_cep_from_json(const cJSON *item, char out[DOC_CEP_SIZE]);

#endif
