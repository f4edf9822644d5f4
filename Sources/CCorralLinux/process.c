/* Signals, pidfds, waiting for a child, and the calling thread's settings. */
#define _GNU_SOURCE
#include "CCorralLinux.h"

#include <sys/prctl.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef MCL_ONFAULT
#define MCL_ONFAULT 4
#endif

int corral_pidfd_open(pid_t pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

int corral_pidfd_send_signal(int pidfd, int sig) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

/* pthread_sigmask reports its error as the return value: moved to errno. */
static int corral_mask(int how, const int *signals, int count, sigset_t *old) {
    sigset_t set;
    sigemptyset(&set);
    for (int i = 0; i < count; i++) sigaddset(&set, signals[i]);
    int rc = pthread_sigmask(how, &set, old);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    return 0;
}

int corral_signalfd(const int *signals, int count) {
    if (corral_mask(SIG_BLOCK, signals, count, NULL) < 0) return -1;
    sigset_t set;
    sigemptyset(&set);
    for (int i = 0; i < count; i++) sigaddset(&set, signals[i]);
    return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

int corral_signalfd_read(int fd, int *code, pid_t *sender) {
    struct signalfd_siginfo info;
    ssize_t n = read(fd, &info, sizeof info);
    if (n < 0) return errno == EAGAIN ? 0 : -1;
    if (n != (ssize_t)sizeof info) return 0;
    *code = info.ssi_code;
    *sender = (pid_t)info.ssi_pid;
    return (int)info.ssi_signo;
}

int corral_block_signals(const int *signals, int count, int *were_blocked) {
    sigset_t old;
    if (corral_mask(SIG_BLOCK, signals, count, &old) < 0) return -1;
    if (were_blocked) {
        *were_blocked = 1;
        for (int i = 0; i < count; i++)
            if (!sigismember(&old, signals[i])) *were_blocked = 0;
    }
    return 0;
}

int corral_block_async_signals(void) {
    sigset_t set;
    sigfillset(&set);
    /* Faults are delivered to the faulting thread whatever its mask. */
    static const int synchronous[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGSYS};
    for (unsigned i = 0; i < sizeof synchronous / sizeof synchronous[0]; i++) sigdelset(&set, synchronous[i]);
    int rc = pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    return 0;
}

int corral_unblock_signals(const int *signals, int count) {
    return corral_mask(SIG_UNBLOCK, signals, count, NULL);
}

int corral_si_kernel(void) { return SI_KERNEL; }

int corral_set_thread_name(const char *name) {
    int rc = pthread_setname_np(pthread_self(), name);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    return 0;
}

int corral_set_thread_nice(int nice) {
    pid_t tid = (pid_t)syscall(SYS_gettid);
    return setpriority(PRIO_PROCESS, (id_t)tid, nice);
}

int corral_mlockall_onfault(void) {
    return mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT);
}

int corral_set_dumpable(int dumpable) {
    return prctl(PR_SET_DUMPABLE, dumpable, 0, 0, 0);
}

int corral_get_dumpable(void) {
    return prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
}
