/* errbuf_: fills the caller-supplied `char *err, size_t errlen` buffer that every fallible
 * common/ function takes (docs/CONVENTIONS.md, "Errors").
 *
 * Ownership: writes only into the caller's buffer; allocates nothing.
 * Thread-safety: reentrant.
 */
#ifndef PIPELINE_ERRBUF_H
#define PIPELINE_ERRBUF_H

#include <stddef.h>

/* printf-style message into err[0..errlen), truncated and always NUL-terminated. Does nothing
 * when err is NULL or errlen is 0, so callers may pass (NULL, 0) to ignore the message. */
void errbuf_set(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
