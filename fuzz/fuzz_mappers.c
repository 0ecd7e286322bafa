/* libFuzzer target: the record mappers of the workers (workers/milvus_client.h,
 * workers/ticket.h): a Ploomes contact → its document and the /cliente/criar body; a Milvus row
 * → its document; a task / interaction → filter, subject, description and /chamado/criar
 * body; the bare-id and Milvus-time parsers. The input is a record as a producer would publish
 * it (any bytes: invalid JSON is a normal outcome). Promises checked: every body produced is
 * valid UTF-8 JSON, the description starts with its marker line, cut text stays within its
 * character cap. */
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "fuzz_util.h"
#include "json.h"
#include "milvus_client.h"
#include "ticket.h"

static config_t cfg;
static bool cfg_ready;

static void check_json_text(const char *text)
{
    if (!text)
        return;
    if (!json_utf8_valid(text, strlen(text)))
        abort();
    cJSON *back = cJSON_Parse(text);
    if (!back)
        abort();
    cJSON_Delete(back);
}

static void contact(const cJSON *rec)
{
    char doc[DOC_BUF_SIZE];
    const char *reason = NULL;
    bool mismatch = false;
    doc_kind_t k = milvus_contact_document(rec, doc, &reason, &mismatch);
    char err[256];
    if (k == DOC_CPF || k == DOC_CNPJ) {
        milvus_doc_forms_t forms;
        if (milvus_doc_forms(doc, &forms) < 1)
            abort();
        cJSON *body = milvus_client_body(rec, doc, k, err, sizeof err);
        if (body) {
            char *text = json_print(body, NULL);
            check_json_text(text);
            free(text);
            cJSON_Delete(body);
        }
    }
    (void)milvus_row_document(rec, doc, &reason);
    const char *s = NULL;
    (void)milvus_client_opt_string(rec, "Name", &s);
    char date[11];
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(rec, "Birthday");
    if (cJSON_IsString(b) && milvus_client_date(b->valuestring, date) && strlen(date) != 10)
        abort();
}

static void ticket(const cJSON *rec, bool task)
{
    ticket_record_t r;
    memset(&r, 0, sizeof r);
    worker_result_t out;
    memset(&out, 0, sizeof out);
    (void)ticket_filter(&cfg, 0, 1764547200000LL, false, rec, &r, &out);
    int64_t id = 0;
    (void)json_get_int64(rec, "Id", &id);
    char subject[512];
    if (task)
        ticket_task_subject(rec, id, subject, sizeof subject);
    else
        ticket_interaction_subject(rec, id, subject, sizeof subject);
    if (!subject[0] || !json_utf8_valid(subject, strlen(subject)))
        abort();
    char marker[TICKET_MARKER_SIZE];
    if (ticket_marker(task ? "task" : "interaction", id, marker, sizeof marker) != 0)
        abort();
    const char *text = NULL;
    (void)json_get_string(rec, task ? "Description" : "Content", &text);
    bool capped = false;
    char *desc = ticket_description(marker, text, 200, &capped);
    if (!desc)
        return;
    if (!ticket_marker_first_line(desc, marker))
        abort();
    size_t chars = 0;
    (void)ticket_utf8_prefix(desc, strlen(desc), (size_t)-1, &chars);
    if (chars > 200)
        abort();
    ticket_body_t b = {"tok", subject, desc, r.category, text, text, NULL};
    char *body = ticket_body_json(&cfg, &b);
    if (body && text && json_utf8_valid(text, strlen(text)))
        check_json_text(body);
    free(body);
    free(desc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!cfg_ready) {
        char *envp[] = {(char *)"TICKET_TAGS=40049716=Instala\xC3\xA7\xC3\xA3o,40049715=Entrega",
                        (char *)"SYNC_SINCE=2024-02-24T00:00:00-03:00", NULL};
        if (config_load_env(&cfg, CONFIG_NEED_WORKER | CONFIG_NEED_TICKETS, envp) != 0)
            abort();
        cfg_ready = true; /* kept for the whole run */
    }
    char *s = fuzz_cstr(data, size);
    if (!s)
        return 0;
    int64_t id = 0;
    if (milvus_parse_bare_id(s, size, &id) == 0 && id <= 0)
        abort();
    int64_t ms = 0;
    (void)ticket_parse_milvus_time(s, &ms);
    char line[64];
    ticket_first_line(s, 20, line, sizeof line);
    (void)ticket_marker_first_line(s, "[ploomes:task:1]");

    cJSON *rec = json_parse_bounded(s, size, 1 << 20, NULL, 0);
    if (rec) {
        contact(rec);
        ticket(rec, true);
        ticket(rec, false);
        cJSON_Delete(rec);
    }
    free(s);
    return 0;
}
