/* The child between clone and exec, and the parent's side of it (corral_spawn),
 * nothing else: the child runs in a process that shares the parent's memory
 * (clone3 with CLONE_VM | CLONE_VFORK, on a stack of its own, as glibc's
 * posix_spawn does; a copy of it where that is not available) and may only
 * make async-signal-safe calls until execve. The child cannot return to
 * Swift, so it retries EINTR itself; the parent keeps every signal blocked
 * until the child has exec'd or failed, so nothing interrupts it. The other
 * shims live in files.c, process.c, socket.c and watch.c. */
#define _GNU_SOURCE
#include "CCorralLinux.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <linux/filter.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
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
__attribute__((noreturn)) static void corral_child_fail(int pipe_fd, int stage, int error) {
    struct corral_child_report report = {stage, error};
    ssize_t ignored = write(pipe_fd, &report, sizeof report);
    (void)ignored;
    _exit(127);
}

/* Runs in the child between clone and exec. Only async-signal-safe calls. */
__attribute__((noreturn)) static void corral_child(const struct corral_spawn_request *req, int pipe_fd, int write_procs) {
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
     * cgroup files) would outlive it in the agent. They are closed here, all
     * but the report pipe and the listener socket (both needed until exec):
     * a daemon watching a hundred agents holds a thousand descriptors, and the
     * seccomp listener made below needs a number under the agent's own
     * RLIMIT_NOFILE (set below), which it only gets once they are gone. */
    {
        unsigned int keep[2] = {(unsigned int)pipe_fd, req->listener_socket >= 0 ? (unsigned int)req->listener_socket : ~0U};
        if (keep[0] > keep[1]) { unsigned int t = keep[0]; keep[0] = keep[1]; keep[1] = t; }
        unsigned int from = 3;
        int closed = 1;
        for (int i = 0; i <= 2 && closed; i++) {
            unsigned int to = i < 2 ? keep[i] : ~0U;
            if (to == ~0U && i < 2) continue;
            if (to > from && syscall(SYS_close_range, from, to - 1, 0U) < 0) closed = 0;
            if (i < 2) from = to + 1;
        }
        if (!closed) {
            /* No close_range (before 5.9): one by one, up to the limit. */
            struct rlimit nofile;
            long last = (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < 65536) ? (long)nofile.rlim_cur : 65536;
            for (int fd = 3; fd < last; fd++) {
                if ((unsigned int)fd != keep[0] && (unsigned int)fd != keep[1]) close(fd);
            }
        }
    }
    /* A cgroup namespace rooted at the cgroup the child was just placed in:
     * with the cgroup2 mount's nsdelegate it cannot migrate processes out. */
    if (req->cgroup_namespace) {
        if (unshare(CLONE_NEWCGROUP | (req->cgroup_mount ? CLONE_NEWNS : 0)) < 0)
            corral_child_fail(pipe_fd, CORRAL_STAGE_CGROUP_NAMESPACE, errno);
        /* The host's cgroup2 mount would still show every other agent's files:
         * a mount of the agent's own namespace covers it (as container runtimes do). */
        if (req->cgroup_mount) {
            if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
                corral_child_fail(pipe_fd, CORRAL_STAGE_CGROUP_MOUNT, errno);
            /* The same superblock cannot be mounted on its own mount's root (EBUSY):
             * detach the host's mount here first (in this namespace only). */
            if (umount2(req->cgroup_mount, MNT_DETACH) < 0 && errno != EINVAL)
                corral_child_fail(pipe_fd, CORRAL_STAGE_CGROUP_MOUNT, errno);
            if (mount("cgroup2", req->cgroup_mount, "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RELATIME, NULL) < 0)
                corral_child_fail(pipe_fd, CORRAL_STAGE_CGROUP_MOUNT, errno);
        }
    }
    for (int i = 0; i < req->rlimit_count; i++) {
        if (setrlimit(req->rlimits[i].resource, &req->rlimits[i].limit) < 0)
            corral_child_fail(pipe_fd, CORRAL_STAGE_RLIMIT, errno);
    }
    /* Raw system calls, not glibc's setgroups/setgid/setuid: those apply the
     * change to every thread glibc knows of (the setxid broadcast), and a child
     * of clone3 inherits a thread list naming the parent's threads; it would
     * wait for them forever. This child is single-threaded: the call is enough. */
    if (req->set_ids) {
        if (syscall(SYS_setgroups, (size_t)req->group_count, req->groups) < 0)
            corral_child_fail(pipe_fd, CORRAL_STAGE_SETGROUPS, errno);
        if (syscall(SYS_setresgid, req->gid, req->gid, req->gid) < 0) corral_child_fail(pipe_fd, CORRAL_STAGE_SETGID, errno);
        if (syscall(SYS_setresuid, req->uid, req->uid, req->uid) < 0) corral_child_fail(pipe_fd, CORRAL_STAGE_SETUID, errno);
    }
    if (req->drop_capabilities) {
        for (int cap = 0; cap < 64; cap++) {
            if (req->keep_capabilities & (1ULL << cap)) continue;
            /* EINVAL: past the kernel's last capability; EPERM: no CAP_SETPCAP
             * (the hardened unit), where no_new_privs keeps exec from regaining them. */
            if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL && errno != EPERM)
                corral_child_fail(pipe_fd, CORRAL_STAGE_CAPABILITIES, errno);
        }
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
            corral_child_fail(pipe_fd, CORRAL_STAGE_CAPABILITIES, errno);
        struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
        struct __user_cap_data_struct data[2];
        memset(data, 0, sizeof data);
        if (syscall(SYS_capget, &header, data) < 0) corral_child_fail(pipe_fd, CORRAL_STAGE_CAPABILITIES, errno);
        for (int i = 0; i < 2; i++) {
            uint32_t keep = (uint32_t)(req->keep_capabilities >> (32 * i));
            data[i].permitted &= keep;
            data[i].effective &= keep;
            data[i].inheritable &= keep;
        }
        if (syscall(SYS_capset, &header, data) < 0) corral_child_fail(pipe_fd, CORRAL_STAGE_CAPABILITIES, errno);
    }
    /* After the user change, so that the directory is one the agent may enter. */
    if (req->cwd && chdir(req->cwd) < 0) corral_child_fail(pipe_fd, CORRAL_STAGE_CHDIR, errno);
    /* Always with a capability drop: without no_new_privs a root exec would take
     * the bounding set back where CAP_SETPCAP was missing to shrink it. */
    if (req->no_new_privs || req->seccomp_filter || req->seccomp_notify_filter || req->drop_capabilities) {
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
            corral_child_fail(pipe_fd, CORRAL_STAGE_NO_NEW_PRIVS, errno);
    }
    int loaded = 0;
    if (req->seccomp_notify_filter && req->listener_socket >= 0) {
        struct sock_fprog program = {(unsigned short)req->seccomp_notify_filter_count, (struct sock_filter *)req->seccomp_notify_filter};
        long listener = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &program);
        if (listener >= 0) {
            /* The listener goes to the supervisor and never reaches the agent,
             * which could otherwise answer its own denied calls. */
            char data = 'L';
            struct iovec iov = {&data, 1};
            union {
                char buffer[CMSG_SPACE(sizeof(int))];
                struct cmsghdr align;
            } control;
            memset(&control, 0, sizeof control);
            struct msghdr message;
            memset(&message, 0, sizeof message);
            message.msg_iov = &iov;
            message.msg_iovlen = 1;
            message.msg_control = control.buffer;
            message.msg_controllen = sizeof control.buffer;
            struct cmsghdr *header = CMSG_FIRSTHDR(&message);
            header->cmsg_level = SOL_SOCKET;
            header->cmsg_type = SCM_RIGHTS;
            header->cmsg_len = CMSG_LEN(sizeof(int));
            int fd = (int)listener;
            memcpy(CMSG_DATA(header), &fd, sizeof fd);
            ssize_t sent;
            do { sent = sendmsg(req->listener_socket, &message, MSG_NOSIGNAL); } while (sent < 0 && errno == EINTR);
            int send_error = errno;
            close(fd);
            /* Without its supervisor every denied call fails with ENOSYS: closed, but unrecorded. */
            if (sent < 0) corral_child_fail(pipe_fd, CORRAL_STAGE_SECCOMP_LISTENER, send_error);
            loaded = 1;
        } else if (errno != EBUSY || !req->seccomp_filter) {
            corral_child_fail(pipe_fd, CORRAL_STAGE_SECCOMP, errno);
        }
    }
    if (!loaded && req->seccomp_filter) {
        struct sock_fprog program = {(unsigned short)req->seccomp_filter_count, (struct sock_filter *)req->seccomp_filter};
        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &program) < 0)
            corral_child_fail(pipe_fd, CORRAL_STAGE_SECCOMP, errno);
    }
    if (req->listener_socket >= 0) close(req->listener_socket);
    sigset_t none;
    sigemptyset(&none);
    if (sigprocmask(SIG_SETMASK, &none, NULL) < 0) corral_child_fail(pipe_fd, CORRAL_STAGE_SIGNALS, errno);
    execve(req->path, req->argv, req->envp);
    corral_child_fail(pipe_fd, CORRAL_STAGE_EXEC, errno);
}

/* What the child of corral_clone3_vfork is handed (on the parent's stack, which
 * stays untouched while the parent is suspended). */
struct corral_child_start {
    const struct corral_spawn_request *req;
    int pipe_fd;
    int write_procs;
};

__attribute__((noreturn)) static void corral_child_entry(void *start) {
    const struct corral_child_start *s = start;
    corral_child(s->req, s->pipe_fd, s->write_procs);
}

/* The child's stack: 128 KiB (the child makes system calls and nothing else)
 * above a guard page that turns an overflow into a fault, not a write into
 * another mapping. */
#define CORRAL_CHILD_STACK (128 * 1024)
#define CORRAL_CHILD_GUARD 4096

#if defined(__x86_64__) || defined(__aarch64__)
#define CORRAL_HAVE_CLONE3_VFORK 1
/* clone3 whose child shares this process's memory and runs entry(arg) on the
 * stack named in args, never returning here; the calling thread sleeps until
 * the child has exec'd or exited (CLONE_VFORK). Returns the child's pid, or
 * -errno. In assembly: the C library's syscall() would return into the
 * caller's frame in both processes, and a child returning through a frame the
 * parent still needs corrupts it. (A copy meant copying the page tables,
 * write-protecting every page of this process, with TLB shootdowns on the
 * other threads' CPUs, and copy-on-write faults on both sides afterwards:
 * 126 of the 701 page faults of a `corral run -- /bin/true` in the VM.) */
static long corral_clone3_vfork(struct clone_args *args, void (*entry)(void *), void *arg) {
#if defined(__x86_64__)
    register long rax __asm__("rax") = SYS_clone3;
    register struct clone_args *rdi __asm__("rdi") = args;
    register long rsi __asm__("rsi") = (long)sizeof *args;
    register void (*r12)(void *) __asm__("r12") = entry; /* callee-saved: the child finds them */
    register void *r13 __asm__("r13") = arg;
    __asm__ volatile(
        "syscall\n\t"
        "testq %%rax, %%rax\n\t"
        "jnz 1f\n\t"
        /* The child, on its own stack (16-byte aligned: the call pushes 8). */
        "xorl %%ebp, %%ebp\n\t"
        "movq %%r13, %%rdi\n\t"
        "callq *%%r12\n\t"
        "movl $60, %%eax\n\t" /* exit(127), should entry ever return */
        "movl $127, %%edi\n\t"
        "syscall\n\t"
        "hlt\n\t"
        "1:\n\t"
        : "+r"(rax)
        : "r"(rdi), "r"(rsi), "r"(r12), "r"(r13)
        : "rcx", "r11", "memory", "cc");
    return rax;
#else
    register long x8 __asm__("x8") = SYS_clone3;
    register long x0 __asm__("x0") = (long)args;
    register long x1 __asm__("x1") = (long)sizeof *args;
    register void (*x19)(void *) __asm__("x19") = entry; /* callee-saved: the child finds them */
    register void *x20 __asm__("x20") = arg;
    __asm__ volatile(
        "svc #0\n\t"
        "cbnz x0, 1f\n\t"
        "mov x29, xzr\n\t"
        "mov x30, xzr\n\t"
        "mov x0, x20\n\t"
        "blr x19\n\t"
        "mov x0, #127\n\t"
        "mov x8, #93\n\t" /* exit(127), should entry ever return */
        "svc #0\n\t"
        "1:\n\t"
        : "+r"(x0)
        : "r"(x8), "r"(x1), "r"(x19), "r"(x20)
        : "x30", "memory", "cc");
    return x0;
#endif
}
#endif

/* Starts the child of corral_spawn: clone3 with CLONE_PIDFD (and CLONE_INTO_CGROUP
 * when cgroup_fd >= 0), sharing this process's memory where the trampoline above
 * exists, else a copy of it; the child runs corral_child (writing itself to
 * cgroup.procs first when write_procs). Returns the child's pid, or -errno:
 * -ENOSYS also where clone3 is missing, or where only the copy exists and no
 * cgroup is asked for (the caller forks then). */
static long corral_start_child(
    const struct corral_spawn_request *req, const int pipe_fds[2], int cgroup_fd, int write_procs, int *pidfd) {
    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = CLONE_PIDFD | (cgroup_fd >= 0 ? CLONE_INTO_CGROUP : 0);
    args.pidfd = (uint64_t)(uintptr_t)pidfd;
    args.exit_signal = SIGCHLD;
    args.cgroup = cgroup_fd >= 0 ? (uint64_t)cgroup_fd : 0;
#ifdef CORRAL_HAVE_CLONE3_VFORK
    void *stack = mmap(NULL, CORRAL_CHILD_GUARD + CORRAL_CHILD_STACK, PROT_READ | PROT_WRITE,
        MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
    if (stack == MAP_FAILED) return -errno;
    if (mprotect(stack, CORRAL_CHILD_GUARD, PROT_NONE) < 0) {
        long error = -errno;
        munmap(stack, CORRAL_CHILD_GUARD + CORRAL_CHILD_STACK);
        return error;
    }
    struct corral_child_start start = {req, pipe_fds[1], write_procs};
    /* A child that changes its user makes the kernel mark the memory it runs in
     * non-dumpable (commit_creds), which keeps processes of that user from reading it
     * through ptrace or /proc/PID/mem before exec: here that memory is this process's,
     * which gets its own setting back once the child has exec'd into memory of its own. */
    int dumpable = req->set_ids ? prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) : -1;
    args.flags |= CLONE_VM | CLONE_VFORK;
    args.stack = (uint64_t)(uintptr_t)stack + CORRAL_CHILD_GUARD;
    args.stack_size = CORRAL_CHILD_STACK;
    long ret = corral_clone3_vfork(&args, corral_child_entry, &start);
    if (dumpable >= 0 && prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != dumpable) prctl(PR_SET_DUMPABLE, dumpable, 0, 0, 0);
    /* The child has exec'd or exited: its stack is free again. */
    munmap(stack, CORRAL_CHILD_GUARD + CORRAL_CHILD_STACK);
    return ret;
#else
    if (cgroup_fd < 0) return -ENOSYS;
    long ret = syscall(SYS_clone3, &args, sizeof args);
    if (ret == 0) {
        close(pipe_fds[0]);
        corral_child(req, pipe_fds[1], write_procs);
    }
    return ret < 0 ? -errno : ret;
#endif
}

int corral_spawn(const struct corral_spawn_request *req, struct corral_spawn_result *res) {
    memset(res, 0, sizeof *res);
    res->pidfd = -1;
    res->pid = -1;
    res->listener_fd = -1;

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
        long ret = corral_start_child(req, pipe_fds, req->cgroup_fd, 0, &pidfd);
        if (ret > 0) {
            pid = (pid_t)ret;
            res->method = CORRAL_SPAWN_CLONE3;
        } else {
            res->clone3_errno = (int)-ret;
        }
    } else {
        res->clone3_errno = EBADF;
    }

    if (pid < 0) {
        int clone_error = res->clone3_errno;
        /* ENOSYS: no clone3; E2BIG/EINVAL: no CLONE_INTO_CGROUP (before 5.7). */
        /* No cgroup at all (cgroup_fd and cgroup_procs_fd both -1): a child that stays in ours. */
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
        /* The child writes itself to cgroup.procs before exec. Sharing this process's
         * memory where clone3 allows, else a copy (fork). */
        long ret = clone_error == ENOSYS ? -ENOSYS : corral_start_child(req, pipe_fds, -1, !no_cgroup, &pidfd);
        if (ret == -ENOSYS) {
            ret = fork();
            if (ret == 0) {
                close(pipe_fds[0]);
                corral_child(req, pipe_fds[1], !no_cgroup);
            }
            if (ret < 0) ret = -errno;
            pidfd = -1;
            if (ret > 0) {
                pidfd = (int)syscall(SYS_pidfd_open, (pid_t)ret, 0);
                if (pidfd >= 0) fcntl(pidfd, F_SETFD, FD_CLOEXEC);
            }
        }
        if (ret < 0) {
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            close(pipe_fds[0]);
            close(pipe_fds[1]);
            res->error = (int)-ret;
            res->stage = CORRAL_STAGE_CLONE;
            return -1;
        }
        pid = (pid_t)ret;
        res->method = no_cgroup ? CORRAL_SPAWN_NO_CGROUP : CORRAL_SPAWN_PROCS_WRITE;
    }

    close(pipe_fds[1]);
    res->pid = pid;
    res->pidfd = pidfd;

    /* EOF means exec succeeded (the pipe is close-on-exec). The signals stay
     * blocked until then: no handler runs on this thread, so neither the read
     * nor the reaping of a failed child is interrupted (EINTR). */
    struct corral_child_report report;
    ssize_t n = read(pipe_fds[0], &report, sizeof report);
    close(pipe_fds[0]);
    if (n == (ssize_t)sizeof report) {
        int status;
        waitpid(pid, &status, 0);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (pidfd >= 0) close(pidfd);
        res->pidfd = -1;
        res->error = report.error;
        res->stage = report.stage;
        return -1;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    res->listener_fd = req->listener_socket >= 0 ? corral_receive_listener(req->listener_parent) : -1;
    return 0;
}
