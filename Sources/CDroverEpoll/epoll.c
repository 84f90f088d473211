#include <errno.h>
#include <sys/epoll.h>
#include "CDroverEpoll.h"

int drover_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

static int control(int epfd, int op, int fd, int want_write, uint64_t tag) {
    struct epoll_event event = {.events = EPOLLIN | (want_write ? EPOLLOUT : 0), .data.u64 = tag};
    return epoll_ctl(epfd, op, fd, &event);
}

int drover_epoll_add(int epfd, int fd, int want_write, uint64_t tag) { return control(epfd, EPOLL_CTL_ADD, fd, want_write, tag); }

int drover_epoll_modify(int epfd, int fd, int want_write, uint64_t tag) { return control(epfd, EPOLL_CTL_MOD, fd, want_write, tag); }

int drover_epoll_remove(int epfd, int fd) {
    struct epoll_event event = {0};
    return epoll_ctl(epfd, EPOLL_CTL_DEL, fd, &event);
}

int drover_epoll_wait(int epfd, uint64_t *tags, uint32_t *flags, int max, int timeout_ms) {
    struct epoll_event events[256];
    if (max > 256) max = 256;
    int n = epoll_wait(epfd, events, max, timeout_ms);
    if (n < 0) return errno == EINTR ? 0 : -1;
    for (int i = 0; i < n; i++) {
        tags[i] = events[i].data.u64;
        flags[i] = ((events[i].events & EPOLLIN) ? DROVER_EPOLL_READ : 0) | ((events[i].events & EPOLLOUT) ? DROVER_EPOLL_WRITE : 0)
            | ((events[i].events & (EPOLLERR | EPOLLHUP)) ? DROVER_EPOLL_ERROR : 0);
    }
    return n;
}
