#ifndef CDROVERTLS_H
#define CDROVERTLS_H

#include <stddef.h>

/// One HTTP/1.1 exchange over TCP, with TLS when `use_tls` is set: connects to host:port,
/// writes `request` whole, reads until the peer closes (the request says Connection: close)
/// or `max_response` bytes. With TLS and `ca_pem` set, the server's chain must lead to that
/// CA and its certificate must name `host` (DNS name or IP address); with `ca_pem` NULL and
/// `verify` 0, the certificate is not checked (only to fetch a CA whose fingerprint the
/// caller then checks). Returns 0, or -1 with a message in `error`. `*response` is malloc'ed;
/// the caller frees it with drover_tls_free.
int drover_tls_exchange(const char *host, int port, int use_tls, const char *ca_pem, int verify,
                        const char *request, size_t request_len, size_t max_response, int timeout_seconds,
                        char **response, size_t *response_len, char *error, size_t error_len);

void drover_tls_free(void *p);

/// Like drover_tls_exchange, for a download: the response head (status line and headers, up
/// to `head_capacity` bytes) goes to `head`, the body is written to `fd` as it arrives, up to
/// the Content-Length the head gives (or the end of the connection), and never more than
/// `max_body` bytes (-1: no cap; a longer answer is an error). `*body_bytes` says how
/// many body bytes were written, also on failure, so that a cut download can resume.
/// Chunked bodies are refused (registries send blobs with a length). Returns 0 or -1.
int drover_tls_download(const char *host, int port, int use_tls, const char *ca_pem, int verify,
                        const char *request, size_t request_len, int timeout_seconds,
                        char *head, size_t head_capacity, size_t *head_len, int fd, long long max_body, long long *body_bytes,
                        char *error, size_t error_len);

/// SHA-256 of `len` bytes at `data`. Returns 0 or -1.
int drover_sha256(const void *data, size_t len, unsigned char out[32]);

/// SHA-256 of everything readable from `fd`, from where it stands. Returns 0 or -1.
int drover_sha256_fd(int fd, unsigned char out[32]);

/// Connects to host:port and makes a TLS handshake that checks the server's certificate
/// against `ca_pem` (or the system's roots when NULL) and `host`, then closes. Returns 0 when
/// the server would be trusted, 1 when its certificate is refused (the reason, as OpenSSL
/// names it, in `error`), -1 when it cannot be reached or speaks no TLS.
int drover_tls_probe(const char *host, int port, const char *ca_pem, int timeout_seconds, char *error, size_t error_len);

/// SHA-256 of the DER SubjectPublicKeyInfo of the certificate in `pem`, as kubeadm's
/// discovery hash. Returns 0, or -1 unless `pem` holds exactly one certificate.
int drover_tls_spki_sha256(const char *pem, size_t pem_len, unsigned char out[32]);

#endif
