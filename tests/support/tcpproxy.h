/* tcpproxy_: a TCP proxy for tests that puts a service (the shared MongoDB, say) behind a
 * switch, so a test can make it go away and come back without touching the shared server.
 *
 *   char err[256];
 *   tcpproxy_t *px = tcpproxy_start("127.0.0.1", 27017, err, sizeof err);
 *   if (!px) fail_msg("%s", err);
 *   char uri[640];
 *   tcpproxy_uri(mongodb_uri, tcpproxy_port(px), uri, sizeof uri);  // the proxy as its host
 *   ...  tcpproxy_cut(px);  ...  tcpproxy_restore(px);  ...
 *   tcpproxy_stop(px);
 *
 * It listens on 127.0.0.1 (an ephemeral port) and pairs every accepted connection with its
 * own connection to the upstream, forwarding bytes both ways. Three modes:
 *   forwarding  (the start, and after tcpproxy_restore) the normal proxy;
 *   cut         every pair is closed and every new connection is accepted and closed at once
 *               (counted by tcpproxy_refused): the service is down, the client sees resets;
 *   frozen      every connection stays open and new ones are accepted, but nothing is
 *               forwarded either way: the service hangs (tcpproxy_held_requests counts the
 *               client connections with bytes waiting that nobody reads).
 * Restoring from frozen forwards again what was held; a connection accepted while frozen gets
 * its upstream connection then (closed if the upstream refuses). At most 64 pairs at once; a
 * connection past that, or one the upstream refuses, is closed at once.
 *
 * tcpproxy_bytes_up counts the bytes forwarded from clients to the upstream, so a test can wait
 * until a request has really reached the service (not merely left, or been about to leave, its
 * client): e.g. put it in front of a simulator and wait for the counter to move.
 *
 * Kafka mode (tcpproxy_start_kafka): a plain TCP proxy is not enough in front of Kafka: the
 * broker advertises its own address in its metadata and the client then connects there
 * directly, around the proxy. In Kafka mode the proxy reads the upstream -> client stream frame
 * by frame (Kafka's 4-byte size, then the response) and, in every response, rewrites the
 * broker's advertised port to its own wherever a Kafka string holding the upstream host is
 * followed by the upstream port (a broker's host and port in Metadata, FindCoordinator...), so
 * every later connection of the client comes to the proxy too. Client -> upstream bytes are
 * forwarded as is; cut/freeze/restore and the counters work as above.
 *   tcpproxy_t *px = tcpproxy_start_kafka("127.0.0.1", 19092, err, sizeof err);
 *   ... KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:<tcpproxy_port(px)> ... tcpproxy_freeze(px) ...
 *   if (tcpproxy_kafka_rewrites(px) == 0) fail_msg("the client bypassed the proxy");
 * Limits: one broker only (a cluster's other brokers are left as advertised, and reached
 * directly); the rewrite needs the advertised host to equal `host` ("localhost" and "127.0.0.1"
 * count as equal) and the advertised port to equal `port` — otherwise nothing is rewritten and
 * the client silently bypasses the proxy: check tcpproxy_kafka_rewrites. Hosts up to 63 bytes.
 * A response frame is held whole in memory (one over 64 MiB closes the pair). No TLS/SASL.
 *
 * Ownership: tcpproxy_start (or tcpproxy_start_kafka) returns a proxy the caller owns and frees
 * with tcpproxy_stop (which closes every connection). Thread-safety: one background thread does
 * all the socket work; tcpproxy_port/cut/freeze/restore/refused/held_requests/bytes_up/
 * kafka_rewrites may be called from any thread while it runs. tcpproxy_stop must not race with
 * them.
 */
#ifndef PIPELINE_TCPPROXY_H
#define PIPELINE_TCPPROXY_H

#include <stddef.h>

typedef struct tcpproxy tcpproxy_t;

/* Starts a proxy in front of host:port (an IPv4 address, or "localhost"), forwarding. NULL with
 * err (when errlen > 0) on failure. */
tcpproxy_t *tcpproxy_start(const char *host, int port, char *err, size_t errlen);

/* The same in Kafka mode (see above): host:port is the broker as it advertises itself (its
 * advertised listener, e.g. KAFKA_BOOTSTRAP_SERVERS when that is the one broker). NULL with err
 * on failure. */
tcpproxy_t *tcpproxy_start_kafka(const char *host, int port, char *err, size_t errlen);

/* tcpproxy_start_kafka in front of `bootstrap` when it is one broker's "host:port" (e.g. the
 * test's KAFKA_BOOTSTRAP_SERVERS; host at most 63 bytes, port 1-65535). NULL with err (when
 * errlen > 0) when it is a list, not host:port, or the proxy cannot start: a test can skip
 * then, saying err. */
tcpproxy_t *tcpproxy_start_kafka_at(const char *bootstrap, char *err, size_t errlen);

/* tcpproxy_start_kafka_at in front of the test's KAFKA_BOOTSTRAP_SERVERS (unset: exits, as
 * testenv_require does). NULL with `why` set to a whole skip reason naming the variable and its
 * value: the caller prints it and skips (a cluster or a host the proxy cannot reach). */
tcpproxy_t *tcpproxy_start_kafka_env(char *why, size_t whylen);

/* Kafka mode: how many advertised broker addresses were rewritten to the proxy since the start.
 * Still 0 after a client fetched metadata through the proxy means the broker advertises another
 * host:port and the client goes there directly. Always 0 for a plain proxy. */
long long tcpproxy_kafka_rewrites(tcpproxy_t *px);

/* The local port the proxy listens on (127.0.0.1). */
int tcpproxy_port(const tcpproxy_t *px);

/* Cut: closes every pair (within ~50 ms, on the proxy thread) and refuses new connections
 * (accepted, then closed) until tcpproxy_restore or tcpproxy_freeze. */
void tcpproxy_cut(tcpproxy_t *px);

/* Freeze: keeps every connection open and accepts new ones, forwards nothing, until
 * tcpproxy_restore or tcpproxy_cut. */
void tcpproxy_freeze(tcpproxy_t *px);

/* Back to forwarding (from cut or frozen; a no-op when forwarding). */
void tcpproxy_restore(tcpproxy_t *px);

/* Connections accepted (and closed at once) while cut, since the start. */
int tcpproxy_refused(tcpproxy_t *px);

/* While frozen: the client connections with bytes waiting that the proxy holds (updated every
 * ~50 ms); 0 when not frozen. */
int tcpproxy_held_requests(tcpproxy_t *px);

/* Bytes forwarded from clients to the upstream since the start, all connections together. A
 * chunk read from a client counts once send() has taken all of it for the upstream's socket
 * (the kernel delivers it even if the client dies next), never before; a chunk cut short by a
 * failed send counts nothing. Never decreases. */
long long tcpproxy_bytes_up(tcpproxy_t *px);

/* Writes into out `uri` ("scheme://[user[:pass]@]hosts[/path][?query]") with the proxy
 * ("127.0.0.1:<port>") as its only host; everything else is kept. 0, or -1 when the URI has no
 * "://" or out is too small (out is then unusable). */
int tcpproxy_uri(const char *uri, int port, char *out, size_t size);

/* Stops the thread, closes every connection and the listener, frees. NULL is accepted. */
void tcpproxy_stop(tcpproxy_t *px);

#endif
