/* libFuzzer target: the document validator (common/doc.h). Every entry point gets the input as
 * a C string (stops at the first NUL, like the callers' strings) and, when the input is JSON,
 * the cJSON forms. Checks the header's promises: outputs NUL-terminated within their buffers,
 * valid kinds carry a normal form of the right length that verifies again. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "doc.h"
#include "fuzz_util.h"

static void check_kind(doc_kind_t k, const char *out, const char *reason)
{
    if (k == DOC_CPF || k == DOC_CNPJ) {
        size_t n = strlen(out);
        if ((k == DOC_CPF && n != 11) || (k == DOC_CNPJ && n != 14) || reason)
            abort();
        if (doc_verify(out, NULL) != k)
            abort(); /* a normal form must verify as the same kind */
        char fmt[DOC_DISPLAY_SIZE];
        if (!doc_format(out, fmt, sizeof fmt))
            abort();
        char back[DOC_BUF_SIZE];
        if (doc_parse(fmt, back, NULL) != k || strcmp(back, out) != 0)
            abort(); /* the display form parses back to the same document */
    } else if (k == DOC_INVALID) {
        if (!reason || strlen(out) > 14)
            abort();
    } else if (k == DOC_NONE) {
        if (out[0] != '\0')
            abort();
    } else {
        abort();
    }
    (void)doc_kind_name(k);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstr(data, size);
    if (!s)
        return 0;
    char out[DOC_BUF_SIZE];
    const char *reason = NULL;
    check_kind(doc_parse(s, out, &reason), out, reason);
    reason = NULL;
    check_kind(doc_from_milvus(s, out, &reason), out, reason);

    char norm[DOC_BUF_SIZE];
    int n = doc_normalize(s, norm);
    if (n < -1 || n > 14 || (n >= 0 && strlen(norm) != (size_t)n) || (n < 0 && norm[0]))
        abort();
    if (n >= 0)
        (void)doc_verify(norm, &reason);

    char disp[DOC_DISPLAY_SIZE];
    (void)doc_mask(size <= 14 ? s : "", disp, sizeof disp);
    if (strlen(disp) >= sizeof disp)
        abort();
    char small[5];
    (void)doc_mask(norm, small, sizeof small);
    (void)doc_format(norm, small, sizeof small);

    char cep[DOC_CEP_SIZE];
    int c = doc_cep_normalize(s, cep);
    if (c == 0 && strlen(cep) != 8)
        abort();
    if (c != 0 && cep[0])
        abort();

    cJSON *j = cJSON_ParseWithLength((const char *)data, size);
    if (j) {
        reason = NULL;
        check_kind(doc_from_milvus_json(j, out, &reason), out, reason);
        c = doc_cep_from_json(j, cep);
        if (c == 0 && strlen(cep) != 8)
            abort();
        cJSON_Delete(j);
    }
    free(s);
    return 0;
}
