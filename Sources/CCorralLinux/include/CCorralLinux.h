#ifndef CCORRAL_LINUX_H
#define CCORRAL_LINUX_H

/* What Swift cannot express on Linux: macros and _GNU_SOURCE declarations,
 * system calls without a libc wrapper, and the child between fork and exec.
 *
 * One return convention: a value >= 0 on success, -1 with errno set on
 * failure, as the system calls themselves (Swift's `valueOrErrno` reads it).
 * No function retries EINTR, so that Swift retries it in one place
 * (`retryOnInterrupt`); the exception is corral_spawn's child, which cannot
 * return to Swift (its parent side blocks signals instead: nothing interrupts it). */

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/resource.h>
#include <signal.h>

/* How corral_spawn placed the child into its cgroup. */
enum corral_spawn_method {
    CORRAL_SPAWN_CLONE3 = 1,      /* clone3(CLONE_INTO_CGROUP): born in the cgroup */
    CORRAL_SPAWN_PROCS_WRITE = 2, /* fork, child writes itself to cgroup.procs before exec */
    CORRAL_SPAWN_NO_CGROUP = 3    /* fork, no cgroup asked for: stays in the parent's */
};

/* The step of the child setup that failed (reported with its errno). */
enum corral_spawn_stage {
    CORRAL_STAGE_NONE = 0,
    CORRAL_STAGE_CLONE = 1,
    CORRAL_STAGE_CGROUP_PROCS = 2,
    CORRAL_STAGE_SIGNALS = 3,
    CORRAL_STAGE_CHDIR = 4,
    CORRAL_STAGE_RLIMIT = 5,
    CORRAL_STAGE_NO_NEW_PRIVS = 6,
    CORRAL_STAGE_SECCOMP = 7,
    CORRAL_STAGE_EXEC = 8,
    CORRAL_STAGE_PIPE = 9,
    CORRAL_STAGE_SETGID = 10,
    CORRAL_STAGE_SETUID = 11,
    CORRAL_STAGE_STDIO = 12,
    CORRAL_STAGE_SETSID = 13,
    CORRAL_STAGE_CGROUP_NAMESPACE = 14,
    CORRAL_STAGE_SETGROUPS = 15,
    CORRAL_STAGE_SECCOMP_LISTENER = 16,
    CORRAL_STAGE_CGROUP_MOUNT = 17,
    CORRAL_STAGE_CAPABILITIES = 18
};

struct corral_rlimit {
    int resource;
    struct rlimit limit;
};

/* What to start and where. Everything is prepared by the parent: the child
   only makes async-signal-safe system calls between clone and exec. */
struct corral_spawn_request {
    const char *path;          /* executable, already resolved against PATH */
    char *const *argv;         /* NULL-terminated */
    char *const *envp;         /* NULL-terminated */
    int cgroup_fd;             /* directory fd of the target cgroup, or -1 */
    int cgroup_procs_fd;       /* O_WRONLY fd of its cgroup.procs for the fallback, or -1 */
    int allow_fallback;        /* use fork + cgroup.procs when clone3 cannot place the child */
    const char *cwd;           /* NULL: inherit */
    int no_new_privs;
    const struct corral_rlimit *rlimits;
    int rlimit_count;
    /* Classic BPF (struct sock_filter[], count instructions) loaded last before
       exec; NULL: none. */
    const void *seccomp_filter;
    int seccomp_filter_count;
    /* The same filter with user notification, loaded with
       SECCOMP_FILTER_FLAG_NEW_LISTENER; its listener descriptor goes to the
       parent over listener_socket. If the kernel refuses a listener (EBUSY:
       one is installed above already), seccomp_filter is loaded instead.
       NULL: seccomp_filter only. */
    const void *seccomp_notify_filter;
    int seccomp_notify_filter_count;
    int listener_socket;       /* the child's end of an AF_UNIX socketpair, or -1 */
    int listener_parent;       /* the parent's end, read after exec */
    int cgroup_namespace;      /* unshare(CLONE_NEWCGROUP) once in the cgroup */
    /* With cgroup_namespace: also a mount namespace (mounts stay slaves of the
       parent's) where a fresh cgroup2 mount at this path shows the agent's
       cgroup as the root, and nothing of the host's tree. NULL: none. */
    const char *cgroup_mount;
    int set_ids;               /* when non-zero, setgroups(groups), setgid(gid), setuid(uid) */
    uid_t uid;
    gid_t gid;
    const gid_t *groups;       /* supplementary groups (set_ids only) */
    int group_count;
    /* For an agent that stays root: keep only these capabilities (capability(7)
       bits) in the bounding set (where CAP_SETPCAP allows) and in the effective,
       permitted and inheritable sets; ambient ones are cleared. With no_new_privs
       exec cannot give them back. */
    int drop_capabilities;
    uint64_t keep_capabilities;
    int stdin_fd;              /* dup2'ed onto 0/1/2 when >= 0; -1 inherits */
    int stdout_fd;
    int stderr_fd;
    int new_session;           /* setsid(): no controlling terminal (daemon-launched agents) */
};

struct corral_spawn_result {
    pid_t pid;
    int pidfd;                 /* -1 when the kernel offers none */
    int method;                /* enum corral_spawn_method */
    int clone3_errno;          /* why clone3 was not used (0 when it was) */
    int error;                 /* errno of the failure, 0 on success */
    int stage;                 /* enum corral_spawn_stage of the failure */
    int listener_fd;           /* the seccomp listener received from the child, or -1 */
};

/* spawn.c. Starts req->path in the cgroup. Returns 0 and fills res, or -1
   with res->error/res->stage set (the child, if any, has been reaped). */
int corral_spawn(const struct corral_spawn_request *req, struct corral_spawn_result *res);

/* files.c */

/* openat2(2) with RESOLVE_* flags (ENOSYS on kernels before 5.6). */
int corral_openat2(int dirfd, const char *path, int flags, unsigned int mode, uint64_t resolve);

/* RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV */
uint64_t corral_resolve_strict(void);

/* O_PATH, which needs _GNU_SOURCE. */
int corral_o_path(void);

/* statfs(path)->f_type and fstatfs(fd)->f_type. */
long corral_statfs_type(const char *path);
long corral_fstatfs_type(int fd);

/* flock(fd, LOCK_EX) and flock(fd, LOCK_UN). */
int corral_lock_exclusive(int fd);
int corral_unlock(int fd);

/* fsetxattr(2), fgetxattr(2), lgetxattr(2): Glibc's Swift module does not
   import <sys/xattr.h>. The getters return the value's size. */
int corral_fsetxattr(int fd, const char *name, const void *value, size_t size, int flags);
long corral_fgetxattr(int fd, const char *name, void *value, size_t size);
long corral_lgetxattr(const char *path, const char *name, void *value, size_t size);

/* process.c */

int corral_pidfd_open(pid_t pid);
int corral_pidfd_send_signal(int pidfd, int sig);

/* Blocks `signals` in the calling thread and returns a signalfd for them
   (SFD_CLOEXEC|SFD_NONBLOCK). */
int corral_signalfd(const int *signals, int count);

/* Reads one signalfd_siginfo: returns the signal number (0 when none is
   pending), sets *code to ssi_code and *sender to ssi_pid. */
int corral_signalfd_read(int fd, int *code, pid_t *sender);

/* Blocks `signals` in the calling thread (threads it creates afterwards
   inherit the mask). *were_blocked (may be NULL) is set to 1 when all of them
   were blocked already. */
int corral_block_signals(const int *signals, int count, int *were_blocked);

/* Blocks every asynchronous signal in the calling thread, for helper threads:
   a process-directed signal must reach the thread that waits for it (a
   signalfd, a handler), never a helper whose default action ends the process. */
int corral_block_async_signals(void);

/* Unblocks `signals` in the calling thread. */
int corral_unblock_signals(const int *signals, int count);

/* SI_KERNEL, which Swift cannot see as a macro. */
int corral_si_kernel(void);

/* Names the calling thread (at most 15 bytes) for ps/top. */
int corral_set_thread_name(const char *name);

/* Sets the calling thread's nice value (this thread only: setpriority on its
 * tid); lowering it needs CAP_SYS_NICE. */
int corral_set_thread_nice(int nice);

/* mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT): every page of the process
 * stays in memory once touched (no prefaulting), so that a host short of
 * memory cannot evict the daemon's code or data while it must act.
 * Needs CAP_IPC_LOCK or a large enough RLIMIT_MEMLOCK. */
int corral_mlockall_onfault(void);

/* prctl(PR_SET_DUMPABLE): 0 keeps processes of the same user (an agent that runs
 * as the caller) from opening this one's /proc/PID/mem, where the filter cannot see. */
int corral_set_dumpable(int dumpable);
/* prctl(PR_GET_DUMPABLE). */
int corral_get_dumpable(void);

/* socket.c */

/* SO_PEERCRED's value (struct ucred needs _GNU_SOURCE, so Swift gets this copy). */
struct corral_ucred {
    int32_t pid;
    uint32_t uid;
    uint32_t gid;
};
int corral_so_peercred(void);
/* getsockopt(fd, SOL_SOCKET, SO_PEERCRED). */
int corral_peer_credentials(int fd, struct corral_ucred *out);

/* An AF_UNIX stream socket (close-on-exec), not connected. */
int corral_unix_socket(void);
/* connect(2) of the AF_UNIX socket fd to `path` (ENAMETOOLONG when it does
   not fit in sun_path). An interrupted connect (EINTR) may be made again. */
int corral_unix_connect(int fd, const char *path);

/* The descriptor a process sent over the AF_UNIX socket with SCM_RIGHTS and
   queued already (MSG_DONTWAIT; received close-on-exec): corral_spawn's child
   sends its seccomp listener so before exec. -1 when none came. */
int corral_receive_listener(int socket_fd);

/* watch.c */

/* An eventfd (EFD_CLOEXEC|EFD_NONBLOCK) that wakes a poll loop. */
int corral_eventfd(void);
/* Adds 1 to the eventfd (a saturated counter counts as success). */
int corral_eventfd_signal(int fd);
/* Resets the eventfd's counter; nothing pending is not an error. */
int corral_eventfd_drain(int fd);

/* inotify_init1(IN_NONBLOCK | IN_CLOEXEC). */
int corral_inotify_init(void);

/* epoll (glibc's sys/epoll.h is not in Swift's Glibc module; epoll_event is
   packed on x86-64). The event masks Corral uses: */
extern const uint32_t corral_epoll_in, corral_epoll_pri, corral_epoll_err, corral_epoll_hup;
/* epoll_create1(EPOLL_CLOEXEC). */
int corral_epoll_create(void);
/* EPOLL_CTL_ADD of fd for events, with token as its data. */
int corral_epoll_add(int epfd, int fd, uint32_t events, uint64_t token);
/* EPOLL_CTL_DEL of fd. */
int corral_epoll_delete(int epfd, int fd);
/* epoll_wait into tokens[] and events[] (at most capacity, at most 1024): the count, or -1 and errno. */
int corral_epoll_wait(int epfd, uint64_t *tokens, uint32_t *events, int capacity, int timeout_ms);

#endif
