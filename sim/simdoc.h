/* simdoc_: the simulators' own CPF/CNPJ rules (reference/apis.md §3), written independently of
 * the pipeline's validator on purpose: the simulator is the oracle (SPEC §8).
 *
 * Pure functions, thread-safe, no allocation.
 */
#ifndef SIM_SIMDOC_H
#define SIM_SIMDOC_H

#include <stdbool.h>
#include <stddef.h>

/* Copies `in` into out without '.', '/', '-' and whitespace, letters uppercased. Returns false
 * when the result would not fit `size` (including the terminator) or contains any other byte. */
bool simdoc_normalize(const char *in, char *out, size_t size);

/* 11 digits with valid check digits, not all equal. Input must be normalised. */
bool simdoc_cpf_valid(const char *doc);

/* 14 characters: 12 of [0-9A-Z] then 2 digits, valid check digits (value = ASCII - 48),
 * not all equal. Input must be normalised. */
bool simdoc_cnpj_valid(const char *doc);

/* CPF or CNPJ, decided by length. */
bool simdoc_valid(const char *doc);

#endif
