#define _GNU_SOURCE
#include "CCorralLinux.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <linux/openat2.h>
#include <linux/sched.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <linux/close_range.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

struct corral_child_report {
    int stage;
    int error;
};

/* Async-signal-safe: writes the failing stage and errno to the parent, exits. */
static void corral_child_fail(int pipe_fd, int stage, int error) {
    struct corral_child_report report = {stage, error};
    ssize_t ignored = write(pipe_fd, &report, sizeof report);
    (void)ignored;
    _exit(127);
}

/* Runs in the child between clone and exec. Only async-signal-safe calls. */
static void corral_child(const struct corral_spawn_request *req, int pipe_fd, int write_procs) {
    if (write_procs) {
        /* "0" moves the writing process itself. */
        ssize_t n;
        do { n = write(req->cgroup_procs_fd, "0", 1); } while (n < 0 && errno == EINTR);
        if (n < 0) corral_child_fail(pipe_fd, CORRAL_STAGE_CGROUP_PROCS, errno);
    }
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        /* Signals reserved by glibc (32, 33) reject changes: ignore EINVAL. */
        if (sigaction(sig, &dfl, NULL) < 0 && errno != EINVAL)
            corral_child_fail(pipe_fd, CORRAL_STAGE_SIGNALS, errno);
    }
    if (req->new_session && setsid() < 0) corral_child_fail(pipe_fd, CORRAL_STAGE_SETSID, errno);
    /* dup2 clears close-on-exec on the copies; a source that is already 0/1/2 stays. */
    int stdio[3] = {req->stdin_fd, req->stdout_fd, req->stderr_fd};
    for (int target = 0; target < 3; target++) {
        if (stdio[target] < 0 || stdio[target] == target) continue;
        if (dup2(stdio[target], target) < 0) corral_child_fail(pipe_fd, CORRAL_STAGE_STDIO, errno);
    }
    /* Nothing but stdio reaches the command: descriptors the parent opened
     * without O_CLOEXEC (a listening socket, the state database, watched
     * cgroup files) would outlive it in the agent. The report pipe is already
     * close-on-exec; marking rather than closing keeps it usable until exec. */
    if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
        struct rlimit nofile;
        long last = (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < 65536) ? (long)nofile.rlim_cur : 65536;
        for (int fd = 3; fd < last; fd++) {
            int flags = fcntl(fd, F_GETFD);
            if (flags >= 0 && !(flags & FD_CLOEXEC)) fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
        }
    }
    if (req->cwd && chdir(req->cwd) < 0) corral_child_fail(pipe_fd, CORRAL_STAGE_CHDIR, errno);
    for (int i = 0; i < req->rlimit_count; i++) {
        if (setrlimit(req->rlimits[i].resource, &req->rlimits[i].limit) < 0)
            corral_child_fail(pipe_fd, CORRAL_STAGE_RLIMIT, errno);
    }
    if (req->set_ids) {
        if (setgroups(0, NULL) < 0 && errno != EPERM) corral_child_fail(pipe_fd, CORRAL_STAGE_SETGID, errno);
        if (setgid(req->gid) < 0) corral_child_fail(pipe_fd, CORRAL_STAGE_SETGID, errno);
        if (setuid(req->uid) < 0) corral_child_fail(pipe_fd, CORRAL_STAGE_SETUID, errno);
    }
    if (req->no_new_privs || req->seccomp_filter) {
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
            corral_child_fail(pipe_fd, CORRAL_STAGE_NO_NEW_PRIVS, errno);
    }
    if (req->seccomp_filter) {
        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, req->seccomp_filter) < 0)
            corral_child_fail(pipe_fd, CORRAL_STAGE_SECCOMP, errno);
    }
    sigset_t none;
    sigemptyset(&none);
    if (sigprocmask(SIG_SETMASK, &none, NULL) < 0) corral_child_fail(pipe_fd, CORRAL_STAGE_SIGNALS, errno);
    execve(req->path, req->argv, req->envp);
    corral_child_fail(pipe_fd, CORRAL_STAGE_EXEC, errno);
}

int corral_spawn(const struct corral_spawn_request *req, struct corral_spawn_result *res) {
    memset(res, 0, sizeof *res);
    res->pidfd = -1;
    res->pid = -1;

    int pipe_fds[2];
    if (pipe2(pipe_fds, O_CLOEXEC) < 0) {
        res->error = errno;
        res->stage = CORRAL_STAGE_PIPE;
        return -1;
    }

    /* No signal handler of the parent may run in the child before exec. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);

    pid_t pid = -1;
    int pidfd = -1;
    if (req->cgroup_fd >= 0) {
        struct clone_args args;
        memset(&args, 0, sizeof args);
        args.flags = CLONE_INTO_CGROUP | CLONE_PIDFD;
        args.pidfd = (uint64_t)(uintptr_t)&pidfd;
        args.exit_signal = SIGCHLD;
        args.cgroup = (uint64_t)req->cgroup_fd;
        long ret = syscall(SYS_clone3, &args, sizeof args);
        if (ret == 0) {
            close(pipe_fds[0]);
            corral_child(req, pipe_fds[1], 0);
        }
        if (ret > 0) {
            pid = (pid_t)ret;
            res->method = CORRAL_SPAWN_CLONE3;
        } else {
            res->clone3_errno = errno;
        }
    } else {
        res->clone3_errno = EBADF;
    }

    if (pid < 0) {
        int clone_error = res->clone3_errno;
        /* ENOSYS: no clone3; E2BIG/EINVAL: no CLONE_INTO_CGROUP (before 5.7). */
        /* No cgroup at all (cgroup_fd and cgroup_procs_fd both -1): a plain fork. */
        int no_cgroup = req->cgroup_fd < 0 && req->cgroup_procs_fd < 0;
        int can_fall_back = no_cgroup || (req->allow_fallback && req->cgroup_procs_fd >= 0 &&
            (clone_error == ENOSYS || clone_error == E2BIG || clone_error == EINVAL || clone_error == EBADF));
        if (!can_fall_back) {
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            close(pipe_fds[0]);
            close(pipe_fds[1]);
            res->error = clone_error;
            res->stage = CORRAL_STAGE_CLONE;
            return -1;
        }
        pid = fork();
        if (pid == 0) {
            close(pipe_fds[0]);
            corral_child(req, pipe_fds[1], !no_cgroup);
        }
        if (pid < 0) {
            int error = errno;
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            close(pipe_fds[0]);
            close(pipe_fds[1]);
            res->error = error;
            res->stage = CORRAL_STAGE_CLONE;
            return -1;
        }
        res->method = no_cgroup ? CORRAL_SPAWN_NO_CGROUP : CORRAL_SPAWN_PROCS_WRITE;
        pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        if (pidfd >= 0) fcntl(pidfd, F_SETFD, FD_CLOEXEC);
    }

    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(pipe_fds[1]);
    res->pid = pid;
    res->pidfd = pidfd;

    /* EOF means exec succeeded (the pipe is close-on-exec). */
    struct corral_child_report report;
    ssize_t n;
    do { n = read(pipe_fds[0], &report, sizeof report); } while (n < 0 && errno == EINTR);
    close(pipe_fds[0]);
    if (n == (ssize_t)sizeof report) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        if (pidfd >= 0) close(pidfd);
        res->pidfd = -1;
        res->error = report.error;
        res->stage = report.stage;
        return -1;
    }
    return 0;
}

int corral_openat2(int dirfd, const char *path, int flags, unsigned int mode, uint64_t resolve) {
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (uint64_t)flags;
    how.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0;
    how.resolve = resolve;
    long fd;
    do { fd = syscall(SYS_openat2, dirfd, path, &how, sizeof how); } while (fd < 0 && errno == EINTR);
    return (int)fd;
}

uint64_t corral_resolve_strict(void) {
    return RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
}

int corral_pidfd_open(pid_t pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

int corral_pidfd_send_signal(int pidfd, int sig) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

int corral_signalfd(const int *signals, int count) {
    sigset_t set;
    sigemptyset(&set);
    for (int i = 0; i < count; i++) sigaddset(&set, signals[i]);
    int rc = pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

int corral_signalfd_read(int fd, int *code, pid_t *sender) {
    struct signalfd_siginfo info;
    ssize_t n;
    do { n = read(fd, &info, sizeof info); } while (n < 0 && errno == EINTR);
    if (n < 0) return errno == EAGAIN ? 0 : -1;
    if (n != (ssize_t)sizeof info) return 0;
    *code = info.ssi_code;
    *sender = (pid_t)info.ssi_pid;
    return (int)info.ssi_signo;
}

int corral_block_signals(const int *signals, int count, int *were_blocked) {
    sigset_t set, old;
    sigemptyset(&set);
    for (int i = 0; i < count; i++) sigaddset(&set, signals[i]);
    int rc = pthread_sigmask(SIG_BLOCK, &set, &old);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
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
    sigset_t set;
    sigemptyset(&set);
    for (int i = 0; i < count; i++) sigaddset(&set, signals[i]);
    int rc = pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    return 0;
}

int corral_si_kernel(void) { return SI_KERNEL; }

pid_t corral_wait(pid_t pid, int *exited, int *code, int *signaled, int *signal, struct rusage *usage) {
    int status = 0;
    pid_t ret;
    do { ret = wait4(pid, &status, 0, usage); } while (ret < 0 && errno == EINTR);
    if (ret < 0) return -1;
    *exited = WIFEXITED(status);
    *code = WIFEXITED(status) ? WEXITSTATUS(status) : 0;
    *signaled = WIFSIGNALED(status);
    *signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    return ret;
}

long corral_statfs_type(const char *path) {
    struct statfs info;
    if (statfs(path, &info) < 0) return -1;
    return (long)info.f_type;
}

long corral_fstatfs_type(int fd) {
    struct statfs info;
    if (fstatfs(fd, &info) < 0) return -1;
    return (long)info.f_type;
}

int corral_lock_exclusive(int fd) {
    int rc;
    do { rc = flock(fd, LOCK_EX); } while (rc < 0 && errno == EINTR);
    return rc;
}

int corral_unlock(int fd) {
    return flock(fd, LOCK_UN);
}

int corral_o_path(void) { return O_PATH; }

int corral_so_peercred(void) { return SO_PEERCRED; }

int corral_peer_credentials(int fd, struct corral_ucred *out) {
    struct ucred credentials;
    socklen_t length = sizeof credentials;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) < 0) return -1;
    out->pid = credentials.pid;
    out->uid = credentials.uid;
    out->gid = credentials.gid;
    return 0;
}

int corral_connect_unix(const char *path) {
    struct sockaddr_un address;
    memset(&address, 0, sizeof address);
    address.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof address.sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(address.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int rc;
    do { rc = connect(fd, (struct sockaddr *)&address, sizeof address); } while (rc < 0 && errno == EINTR);
    if (rc < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}
