/* The watcher's descriptors: an eventfd to wake its poll loop, inotify. */
#define _GNU_SOURCE
#include "CCorralLinux.h"

#include <errno.h>
#include <stdint.h>
#include <sys/eventfd.h>
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
