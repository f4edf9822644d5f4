/* The watcher's descriptors: an eventfd to wake its loop, inotify, epoll. */
#define _GNU_SOURCE
#include "CCorralLinux.h"

#include <errno.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <unistd.h>

int corral_eventfd(void) {
    return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

int corral_eventfd_signal(int fd) {
    uint64_t one = 1;
    /* EAGAIN: the counter is saturated, so a wake-up is already pending. */
    if (write(fd, &one, sizeof one) < 0 && errno != EAGAIN) return -1;
    return 0;
}

int corral_eventfd_drain(int fd) {
    uint64_t value;
    if (read(fd, &value, sizeof value) < 0 && errno != EAGAIN) return -1;
    return 0;
}

int corral_inotify_init(void) {
    return inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
}

const uint32_t corral_epoll_in = EPOLLIN;
const uint32_t corral_epoll_pri = EPOLLPRI;
const uint32_t corral_epoll_err = EPOLLERR;
const uint32_t corral_epoll_hup = EPOLLHUP;

int corral_epoll_create(void) {
    return epoll_create1(EPOLL_CLOEXEC);
}

int corral_epoll_add(int epfd, int fd, uint32_t events, uint64_t token) {
    struct epoll_event event = {.events = events, .data.u64 = token};
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event);
}

int corral_epoll_delete(int epfd, int fd) {
    return epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
}

int corral_epoll_wait(int epfd, uint64_t *tokens, uint32_t *events, int capacity, int timeout_ms) {
    struct epoll_event ready[1024];
    if (capacity > 1024) capacity = 1024;
    if (capacity < 1) capacity = 1;
    int count = epoll_wait(epfd, ready, capacity, timeout_ms);
    for (int i = 0; i < count; i++) {
        tokens[i] = ready[i].data.u64;
        events[i] = ready[i].events;
    }
    return count;
}
