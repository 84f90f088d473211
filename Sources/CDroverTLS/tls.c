#include "CDroverTLS.h"

#include <errno.h>
#include <limits.h>
#include <strings.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

static void set_error(char *error, size_t error_len, const char *what) {
    unsigned long e = ERR_get_error();
    if (e != 0) {
        char detail[256];
        ERR_error_string_n(e, detail, sizeof detail);
        snprintf(error, error_len, "%s: %s", what, detail);
    } else if (errno != 0) {
        snprintf(error, error_len, "%s: %s", what, strerror(errno));
    } else {
        snprintf(error, error_len, "%s", what);
    }
    ERR_clear_error();
}

static int connect_tcp(const char *host, int port, int timeout_seconds, char *error, size_t error_len) {
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints = {0}, *list = NULL;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, service, &hints, &list);
    if (rc != 0) {
        snprintf(error, error_len, "cannot resolve %s: %s", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *a = list; a != NULL; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) continue;
        struct timeval tv = {.tv_sec = timeout_seconds, .tv_usec = 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(list);
    if (fd < 0) snprintf(error, error_len, "cannot connect to %s:%d: %s", host, port, strerror(errno));
    return fd;
}

/// Trusts exactly the certificates in `pem`.
static int load_ca(SSL_CTX *ctx, const char *pem) {
    BIO *bio = BIO_new_mem_buf(pem, -1);
    if (bio == NULL) return -1;
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    int count = 0;
    X509 *cert;
    while ((cert = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        if (X509_STORE_add_cert(store, cert) == 1) count++;
        X509_free(cert);
    }
    ERR_clear_error();
    BIO_free(bio);
    return count > 0 ? 0 : -1;
}

static int write_all(SSL *ssl, int fd, const char *data, size_t len) {
    size_t done = 0;
    while (done < len) {
        int n = ssl ? SSL_write(ssl, data + done, (int)(len - done)) : (int)send(fd, data + done, len - done, MSG_NOSIGNAL);
        if (n <= 0) return -1;
        done += (size_t)n;
    }
    return 0;
}

/// A client context that checks the peer against `ca_pem` (NULL: the system's roots when
/// `verify`, nothing otherwise), and a connection on `fd` that checks `host` when verifying.
static SSL *tls_client(SSL_CTX **out_ctx, int fd, const char *host, const char *ca_pem, int verify, char *error, size_t error_len) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    *out_ctx = ctx;
    if (ctx == NULL) { set_error(error, error_len, "TLS setup failed"); return NULL; }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (ca_pem != NULL) {
        if (load_ca(ctx, ca_pem) != 0) { set_error(error, error_len, "no certificate in the CA"); return NULL; }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    } else if (verify) {
        SSL_CTX_set_default_verify_paths(ctx);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    SSL *ssl = SSL_new(ctx);
    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) { set_error(error, error_len, "TLS setup failed"); SSL_free(ssl); return NULL; }
    unsigned char ip[16];
    int is_ip = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
    if (!is_ip) SSL_set_tlsext_host_name(ssl, host);
    if (ca_pem != NULL || verify) {
        X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
        int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host) : X509_VERIFY_PARAM_set1_host(param, host, 0);
        if (ok != 1) { set_error(error, error_len, "cannot set the host name to verify"); SSL_free(ssl); return NULL; }
    }
    return ssl;
}

/// The handshake; 1 when the peer's certificate was refused (reason in `error`).
static int tls_handshake(SSL *ssl, char *error, size_t error_len) {
    if (SSL_connect(ssl) == 1) return 0;
    long v = SSL_get_verify_result(ssl);
    if (v != X509_V_OK) {
        snprintf(error, error_len, "the server's certificate is not trusted: %s", X509_verify_cert_error_string(v));
        ERR_clear_error();
        return 1;
    }
    set_error(error, error_len, "TLS handshake failed");
    return -1;
}

int drover_tls_probe(const char *host, int port, const char *ca_pem, int timeout_seconds, char *error, size_t error_len) {
    errno = 0;
    ERR_clear_error();
    int fd = connect_tcp(host, port, timeout_seconds, error, error_len);
    if (fd < 0) return -1;
    SSL_CTX *ctx = NULL;
    SSL *ssl = tls_client(&ctx, fd, host, ca_pem, 1, error, error_len);
    int result = ssl == NULL ? -1 : tls_handshake(ssl, error, error_len);
    if (ssl != NULL) { if (result == 0) SSL_shutdown(ssl); SSL_free(ssl); }
    if (ctx != NULL) SSL_CTX_free(ctx);
    close(fd);
    ERR_clear_error();
    return result;
}

int drover_tls_exchange(const char *host, int port, int use_tls, const char *ca_pem, int verify,
                        const char *request, size_t request_len, size_t max_response, int timeout_seconds,
                        char **response, size_t *response_len, char *error, size_t error_len) {
    *response = NULL;
    *response_len = 0;
    errno = 0;
    ERR_clear_error();
    SSL_CTX *ctx = NULL;
    SSL *ssl = NULL;
    int result = -1;
    int fd = connect_tcp(host, port, timeout_seconds, error, error_len);
    if (fd < 0) return -1;

    if (use_tls) {
        ssl = tls_client(&ctx, fd, host, ca_pem, verify, error, error_len);
        if (ssl == NULL || tls_handshake(ssl, error, error_len) != 0) goto done;
    }

    if (write_all(ssl, fd, request, request_len) != 0) { set_error(error, error_len, "cannot send the request"); goto done; }
    size_t capacity = 16384;
    char *buffer = malloc(capacity);
    if (buffer == NULL) { snprintf(error, error_len, "out of memory"); goto done; }
    size_t used = 0;
    for (;;) {
        if (used == capacity) {
            if (capacity >= max_response) { free(buffer); snprintf(error, error_len, "response larger than %zu bytes", max_response); goto done; }
            size_t bigger = capacity * 2 > max_response ? max_response : capacity * 2;
            char *grown = realloc(buffer, bigger);
            if (grown == NULL) { free(buffer); snprintf(error, error_len, "out of memory"); goto done; }
            buffer = grown;
            capacity = bigger;
        }
        int n = ssl ? SSL_read(ssl, buffer + used, (int)(capacity - used)) : (int)recv(fd, buffer + used, capacity - used, 0);
        if (n > 0) { used += (size_t)n; continue; }
        if (ssl) {
            int code = SSL_get_error(ssl, n);
            // A peer that closes without close_notify still ends the answer: HTTP framing says
            // whether it is whole, and the caller checks that.
            if (code == SSL_ERROR_ZERO_RETURN || (code == SSL_ERROR_SYSCALL && errno == 0)) break;
            if (code == SSL_ERROR_SSL) { ERR_clear_error(); break; }
        } else if (n == 0) {
            break;
        }
        free(buffer);
        set_error(error, error_len, errno == EAGAIN || errno == EWOULDBLOCK ? "no answer in time" : "cannot read the answer");
        goto done;
    }
    *response = buffer;
    *response_len = used;
    result = 0;

done:
    if (ssl != NULL) { SSL_shutdown(ssl); SSL_free(ssl); }
    if (ctx != NULL) SSL_CTX_free(ctx);
    close(fd);
    ERR_clear_error();
    return result;
}

void drover_tls_free(void *p) { free(p); }

int drover_tls_spki_sha256(const char *pem, size_t pem_len, unsigned char out[32]) {
    BIO *bio = BIO_new_mem_buf(pem, (int)pem_len);
    if (bio == NULL) return -1;
    X509 *cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    // Exactly one certificate: a second one would be trusted too once the PEM is used as the
    // trust store, without its fingerprint having been checked.
    X509 *second = cert == NULL ? NULL : PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    ERR_clear_error();
    if (second != NULL) { X509_free(second); X509_free(cert); return -1; }
    if (cert == NULL) return -1;
    unsigned char *der = NULL;
    int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
    X509_free(cert);
    if (len <= 0) { ERR_clear_error(); return -1; }
    unsigned int out_len = 0;
    int ok = EVP_Digest(der, (size_t)len, out, &out_len, EVP_sha256(), NULL);
    OPENSSL_free(der);
    return ok == 1 && out_len == 32 ? 0 : -1;
}

static long long content_length(const char *head, size_t len) {
    // Header names are case-insensitive; the value is digits.
    const char *p = head;
    const char *end = head + len;
    while (p < end) {
        const char *line_end = memchr(p, '\n', (size_t)(end - p));
        if (line_end == NULL) line_end = end;
        if ((size_t)(line_end - p) > 15 && strncasecmp(p, "content-length:", 15) == 0) {
            long long value = 0;
            const char *q = p + 15;
            while (q < line_end && (*q == ' ' || *q == '\t')) q++;
            if (q == line_end || *q < '0' || *q > '9') return -1;
            while (q < line_end && *q >= '0' && *q <= '9') {
                if (value > (LLONG_MAX - 9) / 10) return -1;
                value = value * 10 + (*q - '0');
                q++;
            }
            return value;
        }
        if ((size_t)(line_end - p) > 18 && strncasecmp(p, "transfer-encoding:", 18) == 0) return -2;
        p = line_end + 1;
    }
    return -1;
}

int drover_tls_download(const char *host, int port, int use_tls, const char *ca_pem, int verify,
                        const char *request, size_t request_len, int timeout_seconds,
                        char *head, size_t head_capacity, size_t *head_len, int fd, long long max_body, long long *body_bytes,
                        char *error, size_t error_len) {
    *head_len = 0;
    *body_bytes = 0;
    errno = 0;
    ERR_clear_error();
    SSL_CTX *ctx = NULL;
    SSL *ssl = NULL;
    int result = -1;
    int sock = connect_tcp(host, port, timeout_seconds, error, error_len);
    if (sock < 0) return -1;
    if (use_tls) {
        ssl = tls_client(&ctx, sock, host, ca_pem, verify, error, error_len);
        if (ssl == NULL || tls_handshake(ssl, error, error_len) != 0) goto done;
    }
    if (write_all(ssl, sock, request, request_len) != 0) { set_error(error, error_len, "cannot send the request"); goto done; }

    char buffer[65536];
    size_t used = 0;
    long long expected = -1;
    int in_body = 0;
    for (;;) {
        errno = 0;
        int n = ssl ? SSL_read(ssl, buffer, (int)sizeof buffer) : (int)recv(sock, buffer, sizeof buffer, 0);
        if (n <= 0) {
            if (ssl) {
                int code = SSL_get_error(ssl, n);
                // Only a close_notify ends a TLS body cleanly; anything else is a cut.
                n = code == SSL_ERROR_ZERO_RETURN ? 0 : -1;
            }
            if (n < 0) {
                set_error(error, error_len, errno == EAGAIN || errno == EWOULDBLOCK ? "no data in time" : "the connection broke");
                goto done;
            }
            // The end of the connection: the body is whole only if no length was promised, or all of it came.
            if (!in_body) { snprintf(error, error_len, "the answer ended inside its header"); goto done; }
            if (expected >= 0 && *body_bytes < expected) { snprintf(error, error_len, "the answer was cut after %lld of %lld bytes", *body_bytes, expected); goto done; }
            result = 0;
            goto done;
        }
        char *data = buffer;
        size_t len = (size_t)n;
        if (!in_body) {
            size_t take = len < head_capacity - used ? len : head_capacity - used;
            memcpy(head + used, data, take);
            size_t before = used;
            used += take;
            char *end = NULL;
            for (size_t i = before >= 3 ? before - 3 : 0; i + 3 < used; i++) {
                if (memcmp(head + i, "\r\n\r\n", 4) == 0) { end = head + i + 4; break; }
            }
            if (end == NULL) {
                if (used == head_capacity) { snprintf(error, error_len, "the answer's header is too long"); goto done; }
                continue;
            }
            *head_len = (size_t)(end - head);
            expected = content_length(head, *head_len);
            if (expected == -2) { snprintf(error, error_len, "chunked downloads are not supported"); goto done; }
            if (max_body >= 0 && expected > max_body) { snprintf(error, error_len, "the answer would be %lld bytes, more than the %lld expected", expected, max_body); goto done; }
            in_body = 1;
            size_t consumed = *head_len - before;
            data += consumed;
            len -= consumed;
        }
        if (expected >= 0 && (long long)len > expected - *body_bytes) len = (size_t)(expected - *body_bytes);
        if (max_body >= 0 && (long long)len > max_body - *body_bytes) { snprintf(error, error_len, "the answer is longer than the %lld bytes expected", max_body); goto done; }
        size_t written = 0;
        while (written < len) {
            ssize_t w = write(fd, data + written, len - written);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) { set_error(error, error_len, "cannot write the download"); goto done; }
            written += (size_t)w;
            *body_bytes += w;
        }
        if (expected >= 0 && *body_bytes >= expected) { result = 0; goto done; }
    }

done:
    if (ssl != NULL) { if (result == 0) SSL_shutdown(ssl); SSL_free(ssl); }
    if (ctx != NULL) SSL_CTX_free(ctx);
    close(sock);
    ERR_clear_error();
    return result;
}

int drover_sha256_fd(int fd, unsigned char out[32]) {
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) { EVP_MD_CTX_free(md); return -1; }
    unsigned char buffer[65536];
    for (;;) {
        ssize_t n = read(fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) { EVP_MD_CTX_free(md); return -1; }
        if (n == 0) break;
        EVP_DigestUpdate(md, buffer, (size_t)n);
    }
    unsigned int len = 0;
    int ok = EVP_DigestFinal_ex(md, out, &len);
    EVP_MD_CTX_free(md);
    return ok == 1 && len == 32 ? 0 : -1;
}

int drover_sha256(const void *data, size_t len, unsigned char out[32]) {
    unsigned int out_len = 0;
    return EVP_Digest(data, len, out, &out_len, EVP_sha256(), NULL) == 1 && out_len == 32 ? 0 : -1;
}
