/* http_: libcurl client with a body cap, plus classification/backoff/encoding helpers. See http.h. */
#include "http.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "clock.h"
#include "errbuf.h"
#include "json.h"

#ifndef PIPELINE_VERSION
#define PIPELINE_VERSION "dev"
#endif

#define HTTP_DEFAULT_CONNECT_MS 10000L
#define HTTP_DEFAULT_TOTAL_MS 60000L
#define HTTP_DEFAULT_MAX_BODY ((size_t)8 * 1024 * 1024)
#define HTTP_RETRY_AFTER_CAP_S 86400
#define HTTP_RA_TEXT 128
/* libcurl's per-transfer buffers (issue 13, worker memory): each transfer allocates a receive
 * buffer (CURLOPT_BUFFERSIZE, default 16 KiB) and, over TLS, an upload buffer
 * (CURLOPT_UPLOAD_BUFFERSIZE, default 64 KiB), freed when it ends; a worker runs MAX_IN_FLIGHT
 * transfers at once (measured with Debian's libcurl 7.88.1: 16385 + 65536 bytes per HTTPS POST,
 * now 8193 + 16384; ~1.8 MB less at 32 in flight). The answers are small JSON documents: 8 KiB
 * reads take a 1 MiB page in 128 reads instead of 64, and any body is still read whole, up to
 * max_body_bytes. 16 KiB is libcurl's smallest upload buffer (a larger request body is sent in
 * several writes). */
#define HTTP_RECV_BUFFER_BYTES 8192L
#define HTTP_UPLOAD_BUFFER_BYTES 16384L

struct http_client {
    CURL *curl;
    long connect_timeout_ms;
    long total_timeout_ms;
    size_t max_body_bytes;
    char *user_agent;
    bool no_resend; /* see http_client_set_no_resend() */
};

/* Per-request state handed to curl's callbacks. */
typedef struct {
    char *data;
    size_t len;
    size_t cap;
    size_t limit;
    int too_large;
    int oom;
    char retry_after[HTTP_RA_TEXT];
    char location[HTTP_LOCATION_MAX]; /* Location of a redirect (raw; redacted when copied out) */
    bool no_resend;      /* refuse a second start of the request (http_client_set_no_resend) */
    int starts;          /* times libcurl began sending the request in this transfer */
    bool resend_refused; /* a second start was refused: the first one's answer was lost */
} http_sink_t;

static pthread_once_t http_global_once = PTHREAD_ONCE_INIT;
static CURLcode http_global_rc = CURLE_OK;

static void http_global_init(void) { http_global_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

const char *http_method_name(http_method_t method)
{
    switch (method) {
    case HTTP_GET: return "GET";
    case HTTP_POST: return "POST";
    case HTTP_PATCH: return "PATCH";
    case HTTP_PUT: return "PUT";
    case HTTP_DELETE: return "DELETE";
    }
    return "GET";
}

const char *http_class_name(http_class_t cls)
{
    switch (cls) {
    case HTTP_CLASS_SUCCESS: return "success";
    case HTTP_CLASS_RETRIABLE: return "retriable";
    case HTTP_CLASS_AUTH: return "auth";
    case HTTP_CLASS_PERMANENT: return "permanent";
    }
    return "permanent";
}

/* ---- client ------------------------------------------------------------------------------- */

http_client_t *http_client_new(const http_options_t *opts, char *err, size_t errlen)
{
    pthread_once(&http_global_once, http_global_init);
    if (http_global_rc != CURLE_OK) {
        errbuf_set(err, errlen, "libcurl global initialisation failed: %s",
                   curl_easy_strerror(http_global_rc));
        return NULL;
    }
    http_client_t *c = calloc(1, sizeof *c);
    if (!c) {
        errbuf_set(err, errlen, "out of memory creating the HTTP client");
        return NULL;
    }
    c->connect_timeout_ms =
        opts && opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : HTTP_DEFAULT_CONNECT_MS;
    c->total_timeout_ms =
        opts && opts->total_timeout_ms > 0 ? opts->total_timeout_ms : HTTP_DEFAULT_TOTAL_MS;
    c->max_body_bytes =
        opts && opts->max_body_bytes > 0 ? opts->max_body_bytes : HTTP_DEFAULT_MAX_BODY;
    c->user_agent = strdup(opts && opts->user_agent ? opts->user_agent
                                                    : "ploomes-milvus-pipeline/" PIPELINE_VERSION);
    c->curl = curl_easy_init();
    if (!c->user_agent || !c->curl) {
        errbuf_set(err, errlen, "out of memory creating the HTTP client (curl_easy_init failed)");
        http_client_free(c);
        return NULL;
    }
    return c;
}

void http_client_set_no_resend(http_client_t *client, bool on) { client->no_resend = on; }

void http_client_free(http_client_t *client)
{
    if (!client)
        return;
    if (client->curl)
        curl_easy_cleanup(client->curl);
    free(client->user_agent);
    free(client);
}

void http_response_clear(http_response_t *out)
{
    if (!out)
        return;
    free(out->body);
    memset(out, 0, sizeof *out);
    out->retry_after_ms = -1;
}

static size_t sink_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    http_sink_t *s = userdata;
    size_t n = size * nmemb;
    if (n == 0)
        return 0;
    if (n > s->limit - s->len) {
        s->too_large = 1;
        return 0; /* CURLE_WRITE_ERROR ends the transfer */
    }
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + n + 1)
            cap *= 2;
        if (cap > s->limit + 1)
            cap = s->limit + 1;
        char *grown = realloc(s->data, cap);
        if (!grown) {
            s->oom = 1;
            return 0;
        }
        s->data = grown;
        s->cap = cap;
    }
    memcpy(s->data + s->len, ptr, n);
    s->len += n;
    s->data[s->len] = '\0';
    return n;
}

#if LIBCURL_VERSION_NUM >= 0x075000 /* 7.80.0: CURLOPT_PREREQFUNCTION */
#define HTTP_HAS_PREREQ 1
/* Called by libcurl right before it sends the request on a new or reused connection; a second
 * call in one transfer is its silent re-send after a reused connection died unanswered. */
static int sink_prereq(void *userdata, char *conn_primary_ip, char *conn_local_ip,
                       int conn_primary_port, int conn_local_port)
{
    (void)conn_primary_ip;
    (void)conn_local_ip;
    (void)conn_primary_port;
    (void)conn_local_port;
    http_sink_t *s = userdata;
    if (++s->starts > 1 && s->no_resend) {
        s->resend_refused = true;
        return CURL_PREREQFUNC_ABORT;
    }
    return CURL_PREREQFUNC_OK;
}
#else
#define HTTP_HAS_PREREQ 0
#endif

static size_t sink_header(char *buffer, size_t size, size_t nitems, void *userdata)
{
    http_sink_t *s = userdata;
    size_t n = size * nitems;
    static const char name[] = "retry-after:";
    static const char loc[] = "location:";
    char *dst = NULL;
    size_t dstsize = 0, skip = 0;
    if (n >= 5 && memcmp(buffer, "HTTP/", 5) == 0) {
        s->retry_after[0] = '\0'; /* a new response (after 1xx): forget the previous headers */
        s->location[0] = '\0';
    } else if (n > sizeof name - 1 && strncasecmp(buffer, name, sizeof name - 1) == 0) {
        dst = s->retry_after, dstsize = sizeof s->retry_after, skip = sizeof name - 1;
    } else if (n > sizeof loc - 1 && strncasecmp(buffer, loc, sizeof loc - 1) == 0) {
        dst = s->location, dstsize = sizeof s->location, skip = sizeof loc - 1;
    }
    if (dst) {
        const char *v = buffer + skip;
        size_t vlen = n - skip;
        while (vlen > 0 && (*v == ' ' || *v == '\t')) {
            v++;
            vlen--;
        }
        while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' ' ||
                            v[vlen - 1] == '\t'))
            vlen--;
        if (vlen >= dstsize)
            vlen = dstsize - 1;
        memcpy(dst, v, vlen);
        dst[vlen] = '\0';
    }
    return n;
}

/* A certificate or TLS set-up problem (not a handshake cut short, CURLE_SSL_CONNECT_ERROR,
 * which is usually transient): permanent, and always before any byte of the request. */
static bool tls_failure(CURLcode rc)
{
    switch (rc) {
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_USE_SSL_FAILED: return true;
    default: return false;
    }
}

/* True for the curl codes that end a transfer before any byte of the request is sent: name
 * resolution, the TCP connect, the TLS handshake, a URL curl refuses. */
static bool fails_before_sending(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL: return true;
    default: return tls_failure(rc);
    }
}

static http_transport_t transport_of(CURLcode rc, const http_sink_t *sink)
{
    if (sink->too_large)
        return HTTP_TRANSPORT_TOO_LARGE;
    if (tls_failure(rc))
        return HTTP_TRANSPORT_TLS;
    switch (rc) {
    case CURLE_OK: return HTTP_TRANSPORT_OK;
    case CURLE_OPERATION_TIMEDOUT: return HTTP_TRANSPORT_TIMEOUT;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY: return HTTP_TRANSPORT_RESOLVE;
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR: /* handshake cut short: usually a transient network problem */
        return HTTP_TRANSPORT_CONNECT;
    case CURLE_SEND_ERROR: return HTTP_TRANSPORT_SEND;
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM: return HTTP_TRANSPORT_RECV;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL: return HTTP_TRANSPORT_BAD_URL;
    case CURLE_FILESIZE_EXCEEDED: return HTTP_TRANSPORT_TOO_LARGE;
    default: return HTTP_TRANSPORT_OTHER;
    }
}

int http_request(http_client_t *client, http_method_t method, const char *url,
                 const char *const *headers, const char *body, size_t body_len,
                 http_response_t *out, char *err, size_t errlen)
{
    http_response_clear(out);
    int rc = -1;
    struct curl_slist *list = NULL;
    char errbuf[CURL_ERROR_SIZE] = "";
    char shown[512];
    http_sink_t sink = {.limit = client->max_body_bytes, .no_resend = client->no_resend};
    int64_t start = clock_mono_ms();

    http_redact_url(url ? url : "", shown, sizeof shown);
    if (!url || !url[0]) {
        errbuf_set(err, errlen, "%s: empty URL", http_method_name(method));
        out->transport = HTTP_TRANSPORT_BAD_URL;
        goto out;
    }

    for (size_t i = 0; headers && headers[i]; i++) {
        struct curl_slist *next = curl_slist_append(list, headers[i]);
        if (!next) {
            errbuf_set(err, errlen, "%s %s: out of memory building headers",
                       http_method_name(method), shown);
            out->transport = HTTP_TRANSPORT_OTHER;
            goto out;
        }
        list = next;
    }
    struct curl_slist *next = curl_slist_append(list, "Expect:");
    if (!next) {
        errbuf_set(err, errlen, "%s %s: out of memory building headers", http_method_name(method),
                   shown);
        out->transport = HTTP_TRANSPORT_OTHER;
        goto out;
    }
    list = next;

    CURL *c = client->curl;
    curl_easy_reset(c); /* keeps the connection cache: keep-alive across requests */
    curl_easy_setopt(c, CURLOPT_URL, url);
    /* After every reset (it restores the defaults); libcurl clamps them to its own range. */
    curl_easy_setopt(c, CURLOPT_BUFFERSIZE, HTTP_RECV_BUFFER_BYTES);
    curl_easy_setopt(c, CURLOPT_UPLOAD_BUFFERSIZE, HTTP_UPLOAD_BUFFER_BYTES);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
#if HTTP_HAS_PREREQ
    curl_easy_setopt(c, CURLOPT_PREREQFUNCTION, sink_prereq);
    curl_easy_setopt(c, CURLOPT_PREREQDATA, &sink);
#else
    curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, client->no_resend ? 1L : 0L);
#endif
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, client->connect_timeout_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, client->total_timeout_ms);
    curl_easy_setopt(c, CURLOPT_USERAGENT, client->user_agent);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, ""); /* the cap applies to decoded bytes */
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)client->max_body_bytes);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, sink_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &sink);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    switch (method) {
    case HTTP_GET:
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
        break;
    case HTTP_POST:
    case HTTP_PATCH:
    case HTTP_PUT:
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? body_len : 0));
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
        if (method != HTTP_POST)
            curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, http_method_name(method));
        break;
    case HTTP_DELETE:
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "DELETE");
        if (body) {
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        }
        break;
    }

    CURLcode cc = curl_easy_perform(c);
    /* Headers must not outlive the call inside the handle: the slist is freed below. */
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);

    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    out->status = status;
    out->curl_code = (int)cc;
    out->transport = transport_of(cc, &sink);
    /* Sent unless it failed before sending: curl sets the pre-transfer time just before it
     * starts sending the request (after connect and TLS), so 0 means nothing left us. */
    curl_off_t pretransfer_us = 0;
    if (curl_easy_getinfo(c, CURLINFO_PRETRANSFER_TIME_T, &pretransfer_us) != CURLE_OK)
        pretransfer_us = 1; /* unknown: assume it may have been sent */
    out->request_sent = cc == CURLE_OK || (!fails_before_sending(cc) && pretransfer_us > 0);
    if (sink.resend_refused) { /* the first send's connection died before any answer */
        out->transport = HTTP_TRANSPORT_RECV;
        out->request_sent = true;
        snprintf(errbuf, sizeof errbuf, "connection closed before any answer (not sent again: "
                                        "the request is not idempotent)");
    }
    if (sink.oom && out->transport == HTTP_TRANSPORT_OTHER) {
        errbuf_set(err, errlen, "%s %s: out of memory reading the response",
                   http_method_name(method), shown);
        snprintf(out->curl_error, sizeof out->curl_error, "out of memory");
        goto out;
    }
    if (sink.location[0] && out->status >= 300 && out->status < 400)
        http_redact_url(sink.location, out->location, sizeof out->location);
    if (sink.retry_after[0]) {
        int64_t ms;
        if (http_parse_retry_after(sink.retry_after, time(NULL), &ms) == 0)
            out->retry_after_ms = ms;
    }
    if (out->transport != HTTP_TRANSPORT_OK) {
        if (out->transport == HTTP_TRANSPORT_TOO_LARGE)
            snprintf(out->curl_error, sizeof out->curl_error,
                     "response body larger than %zu bytes", client->max_body_bytes);
        else
            snprintf(out->curl_error, sizeof out->curl_error, "%s",
                     errbuf[0] ? errbuf : curl_easy_strerror(cc));
        size_t l = strlen(out->curl_error);
        while (l > 0 && (out->curl_error[l - 1] == '\n' || out->curl_error[l - 1] == '\r'))
            out->curl_error[--l] = '\0';
        errbuf_set(err, errlen, "%s %s: %s", http_method_name(method), shown, out->curl_error);
        goto out;
    }
    rc = 0;

out:
    curl_slist_free_all(list);
    if (rc == 0 && sink.data) {
        out->body = sink.data;
        out->body_len = sink.len;
        sink.data = NULL;
    } else {
        free(sink.data);
        out->body = NULL;
        out->body_len = 0;
    }
    if (!out->body)
        out->body = calloc(1, 1); /* "" (NULL only if even this fails) */
    out->elapsed_ms = clock_mono_ms() - start;
    return rc;
}

/* ---- classification ------------------------------------------------------------------------ */

http_class_t http_classify(long status, http_transport_t transport, bool forbidden_is_retriable)
{
    switch (transport) {
    case HTTP_TRANSPORT_OK: break;
    case HTTP_TRANSPORT_TIMEOUT:
    case HTTP_TRANSPORT_RESOLVE:
    case HTTP_TRANSPORT_CONNECT:
    case HTTP_TRANSPORT_SEND:
    case HTTP_TRANSPORT_RECV: return HTTP_CLASS_RETRIABLE;
    case HTTP_TRANSPORT_TLS:
    case HTTP_TRANSPORT_BAD_URL:
    case HTTP_TRANSPORT_TOO_LARGE:
    case HTTP_TRANSPORT_OTHER: return HTTP_CLASS_PERMANENT;
    }
    if (status >= 200 && status <= 299)
        return HTTP_CLASS_SUCCESS;
    switch (status) {
    case 401: return HTTP_CLASS_AUTH;
    case 403: return forbidden_is_retriable ? HTTP_CLASS_RETRIABLE : HTTP_CLASS_PERMANENT;
    case 408:
    case 425:
    case 429:
    case 500:
    case 502:
    case 503:
    case 504: return HTTP_CLASS_RETRIABLE;
    default: return HTTP_CLASS_PERMANENT;
    }
}

http_class_t http_classify_response(const http_response_t *resp, bool forbidden_is_retriable)
{
    return http_classify(resp->status, resp->transport, forbidden_is_retriable);
}

const char *http_error_class(long status, http_transport_t transport, char *buf, size_t size)
{
    const char *name = NULL;
    switch (transport) {
    case HTTP_TRANSPORT_OK: break;
    case HTTP_TRANSPORT_TIMEOUT: name = "CurlTimeout"; break;
    case HTTP_TRANSPORT_RESOLVE: name = "CurlResolve"; break;
    case HTTP_TRANSPORT_CONNECT: name = "CurlConnect"; break;
    case HTTP_TRANSPORT_SEND: name = "CurlSend"; break;
    case HTTP_TRANSPORT_RECV: name = "CurlRecv"; break;
    case HTTP_TRANSPORT_TLS: name = "CurlTls"; break;
    case HTTP_TRANSPORT_BAD_URL: name = "CurlBadUrl"; break;
    case HTTP_TRANSPORT_TOO_LARGE: name = "ResponseTooLarge"; break;
    case HTTP_TRANSPORT_OTHER: name = "CurlError"; break;
    }
    if (name)
        snprintf(buf, size, "%s", name);
    else if (status >= 200 && status <= 299)
        snprintf(buf, size, "%s", "");
    else
        snprintf(buf, size, "HttpStatus%ld", status);
    return buf;
}

/* ---- Retry-After --------------------------------------------------------------------------- */

int http_parse_retry_after(const char *value, time_t now, int64_t *ms)
{
    if (!value)
        return -1;
    while (*value == ' ' || *value == '\t')
        value++;
    size_t len = strlen(value);
    while (len > 0 && isspace((unsigned char)value[len - 1]))
        len--;
    if (len == 0)
        return -1;
    char text[HTTP_RA_TEXT];
    if (len >= sizeof text)
        return -1;
    memcpy(text, value, len);
    text[len] = '\0';

    bool digits = true;
    for (size_t i = 0; i < len; i++)
        if (!isdigit((unsigned char)text[i]))
            digits = false;
    if (digits) {
        errno = 0;
        char *end = NULL;
        long long secs = strtoll(text, &end, 10);
        if (end == text || *end != '\0')
            return -1;
        if (errno == ERANGE || secs > HTTP_RETRY_AFTER_CAP_S)
            secs = HTTP_RETRY_AFTER_CAP_S;
        *ms = (int64_t)secs * 1000;
        return 0;
    }
    /* HTTP-date: require a letter first (every HTTP-date form starts with a day name), so that
     * curl_getdate's liberal parser does not take "5s" or "-1" for a date. */
    if (!isalpha((unsigned char)text[0]))
        return -1;
    time_t when = curl_getdate(text, NULL);
    if (when == (time_t)-1)
        return -1;
    int64_t delta = (int64_t)when - (int64_t)now;
    if (delta < 0)
        delta = 0;
    if (delta > HTTP_RETRY_AFTER_CAP_S)
        delta = HTTP_RETRY_AFTER_CAP_S;
    *ms = delta * 1000;
    return 0;
}

/* ---- readable error messages --------------------------------------------------------------- */

/* Copies text into out as one clean line: control bytes -> space, whitespace runs collapsed,
 * invalid UTF-8 -> '?', trimmed, cut at a character boundary with "..." when it does not fit. */
static void clean_line(const char *text, size_t len, char *out, size_t size)
{
    if (size == 0)
        return;
    out[0] = '\0';
    const unsigned char *s = (const unsigned char *)text;
    size_t o = 0;
    bool pending_space = false;
    bool truncated = false;
    size_t i = 0;
    while (i < len) {
        size_t n = json_utf8_seq_len(text + i, len - i);
        const unsigned char *piece = s + i;
        unsigned char repl;
        if (n == 0) {
            repl = '?';
            piece = &repl;
            n = 1;
            i += 1;
        } else {
            i += n;
        }
        if (n == 1 && (piece[0] < 0x20 || piece[0] == 0x7F || piece[0] == ' ')) {
            pending_space = o > 0;
            continue;
        }
        size_t want = n + (pending_space ? 1 : 0);
        if (o + want + 1 > size) {
            truncated = true;
            break;
        }
        if (pending_space)
            out[o++] = ' ';
        pending_space = false;
        memcpy(out + o, piece, n);
        o += n;
    }
    out[o] = '\0';
    if (truncated) {
        /* make room for "..." at a character boundary */
        while (o > 0 && o + 4 > size) {
            o--;
            while (o > 0 && (((unsigned char)out[o]) & 0xC0) == 0x80)
                o--;
        }
        if (o + 4 <= size) {
            memcpy(out + o, "...", 4);
        } else {
            out[o] = '\0';
        }
    }
}

const char *http_error_message(const char *body, size_t body_len, char *out, size_t size)
{
    if (size == 0)
        return out;
    out[0] = '\0';
    if (!body || body_len == 0)
        return out;
    cJSON *root = cJSON_ParseWithLength(body, body_len);
    const char *msg = NULL;
    if (root) {
        if (cJSON_IsString(root)) {
            msg = root->valuestring;
        } else if (cJSON_IsObject(root)) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "value");
            const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
            const cJSON *m1 = cJSON_GetObjectItemCaseSensitive(root, "Message");
            const cJSON *m2 = cJSON_GetObjectItemCaseSensitive(root, "message");
            if (cJSON_IsString(v)) {
                msg = v->valuestring;
            } else if (cJSON_IsObject(e) &&
                       cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "message"))) {
                msg = cJSON_GetObjectItemCaseSensitive(e, "message")->valuestring;
            } else if (cJSON_IsString(e)) {
                msg = e->valuestring;
            } else if (cJSON_IsString(m1)) {
                msg = m1->valuestring;
            } else if (cJSON_IsString(m2)) {
                msg = m2->valuestring;
            }
        }
    }
    if (msg && msg[0])
        clean_line(msg, strlen(msg), out, size);
    else
        clean_line(body, body_len, out, size);
    cJSON_Delete(root);
    return out;
}

/* ---- percent-encoding, backoff, random, redaction ------------------------------------------ */

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

int http_percent_encode(const char *in, char *out, size_t size)
{
    static const char hex[] = "0123456789ABCDEF";
    if (size == 0)
        return -1;
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)(in ? in : ""); *p; p++) {
        size_t need = unreserved(*p) ? 1 : 3;
        if (o + need + 1 > size) {
            out[0] = '\0';
            return -1;
        }
        if (need == 1) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 0x0F];
        }
    }
    out[o] = '\0';
    return (int)o;
}

char *http_percent_encode_dup(const char *in)
{
    size_t size = strlen(in ? in : "") * 3 + 1;
    char *out = malloc(size);
    if (!out)
        return NULL;
    if (http_percent_encode(in, out, size) < 0) {
        free(out);
        return NULL;
    }
    return out;
}

int64_t http_backoff_ms(int attempt, int64_t base_ms, int64_t max_ms, uint64_t random)
{
    if (attempt < 1)
        attempt = 1;
    if (base_ms <= 0 || max_ms <= 0)
        return 0;
    int shift = attempt - 1;
    int64_t cap;
    if (shift >= 62 || base_ms > (max_ms >> shift))
        cap = max_ms;
    else
        cap = base_ms << shift;
    if (cap > max_ms)
        cap = max_ms;
    return (int64_t)(random % ((uint64_t)cap + 1));
}

uint64_t http_random_u64(void)
{
    uint64_t v = 0;
    if (getrandom(&v, sizeof v, GRND_NONBLOCK) == (ssize_t)sizeof v)
        return v;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    v = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ULL ^ (uint64_t)ts.tv_sec ^ (uint64_t)&v;
    v ^= v >> 31;
    v *= 0xBF58476D1CE4E5B9ULL;
    v ^= v >> 29;
    return v;
}

const char *http_redact_url(const char *url, char *out, size_t size)
{
    if (size == 0)
        return out;
    size_t o = 0;
    bool in_query = false;
    bool in_value = false;
    for (const char *p = url ? url : ""; *p && *p != '#'; p++) {
        char c = *p;
        if (!in_query && c == '?') {
            in_query = true;
        } else if (in_query && c == '&') {
            in_value = false;
        } else if (in_query && c == '=' && !in_value) {
            in_value = true;
            if (o + 2 < size) {
                out[o++] = '=';
                out[o++] = '*';
            }
            continue;
        } else if (in_value) {
            continue;
        }
        if (o + 1 < size)
            out[o++] = c;
    }
    out[o] = '\0';
    return out;
}
