#ifndef CDROVER_EPOLL_H
#define CDROVER_EPOLL_H
#include <stdint.h>

// epoll for drover-sim, without Swift having to import the packed `struct epoll_event`.
// Each watched descriptor carries a 64-bit tag, handed back with its readiness.

/// An epoll set, close-on-exec; -1 with errno on failure.
int drover_epoll_create(void);
/// Starts watching `fd` for reading (and writing when `want_write`), tagged `tag`.
int drover_epoll_add(int epfd, int fd, int want_write, uint64_t tag);
/// Changes what `fd` is watched for.
int drover_epoll_modify(int epfd, int fd, int want_write, uint64_t tag);
int drover_epoll_remove(int epfd, int fd);

#define DROVER_EPOLL_READ 1u
#define DROVER_EPOLL_WRITE 2u
#define DROVER_EPOLL_ERROR 4u

/// Waits up to `timeout_ms` for at most `max` ready descriptors; fills `tags` and `flags`
/// (DROVER_EPOLL_*). Returns how many, 0 on timeout or EINTR, -1 with errno otherwise.
int drover_epoll_wait(int epfd, uint64_t *tags, uint32_t *flags, int max, int timeout_ms);
#endif
