#define _GNU_SOURCE
#include "CCorralLinux.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

int corral_eventfd(void) {
    return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

int corral_eventfd_signal(int fd) {
    uint64_t one = 1;
    ssize_t n;
    do { n = write(fd, &one, sizeof one); } while (n < 0 && errno == EINTR);
    /* EAGAIN: the counter is saturated, so a wake-up is already pending. */
    if (n < 0 && errno != EAGAIN) return -1;
    return 0;
}

int corral_eventfd_drain(int fd) {
    uint64_t value;
    ssize_t n;
    do { n = read(fd, &value, sizeof value); } while (n < 0 && errno == EINTR);
    if (n < 0 && errno != EAGAIN) return -1;
    return 0;
}

int corral_inotify_init(void) {
    return inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
}

int corral_set_thread_name(const char *name) {
    return pthread_setname_np(pthread_self(), name);
}
