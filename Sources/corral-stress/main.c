/* corral-stress: load generator for Corral's real-kernel tests and benchmarks.
 *
 *   corral-stress mem SIZE_MB [HOLD_SECONDS] [STEP_MB] [START_DELAY_SECONDS]
 *       wait START_DELAY_SECONDS (default 0), allocate and touch SIZE_MB (in STEP_MB
 *       steps, default all at once), print "allocated N MB" after each step, then
 *       sleep HOLD_SECONDS (default 0)
 *   corral-stress memramp SIZE_MB SECONDS [HOLD_SECONDS]
 *       allocate and touch SIZE_MB evenly over SECONDS (1 MB at a time), then sleep
 *       HOLD_SECONDS (default 600): a steadily growing agent for the analytics tests
 *   corral-stress spin SECONDS     burn one CPU for SECONDS of wall time
 *   corral-stress fork N [HOLD]    fork up to N children that sleep HOLD seconds (default 30);
 *                                  prints "forked K of N, first failure errno E"
 *   corral-stress tree N SECONDS   fork N sleeping children, sleep SECONDS (freeze/kill tests)
 *   corral-stress forkloop N SECONDS
 *                                  keep up to N sleeping children for SECONDS, retrying a refused
 *                                  fork every 100 ms (a process that keeps hitting pids.max)
 *   corral-stress spintree N SECONDS
 *                                  fork N children that each burn CPU for SECONDS, and wait
 *   corral-stress syscalls NAME...
 *       make each named call with arguments that fail harmlessly (or do nothing) when
 *       it is not filtered; print "NAME RC ERRNONAME" per call (the seccomp tests):
 *       mount, umount2, unshare-user, clone-user, clone3, ptrace, bpf, io_uring_setup,
 *       kexec_load, perf_event_open, keyctl, setns, personality, socket-netlink, getpid
 *   corral-stress getpid N          N getpid system calls, then the time per call in ns
 *   corral-stress write FILE TEXT   write TEXT into FILE; print "write FILE OK" or the errno
 *   corral-stress bystander SECONDS
 *       a program sharing the host: one thread counts loop iterations (CPU share), another
 *       sleeps 10 ms at a time and measures how late it wakes (scheduling latency); prints
 *       "bystander ITERATIONS_PER_SECOND p50_MS p99_MS max_MS WAKEUPS"
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static volatile int bystander_done;

static void *bystander_counter(void *out) {
    unsigned long count = 0;
    volatile unsigned long x = 0;
    while (!bystander_done) {
        for (int i = 0; i < 1000; i++) x += i;
        count++;
    }
    *(unsigned long *)out = count;
    return NULL;
}

static int compare_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* One CPU loop and a 10 ms sleep/wake probe for SECONDS; see the usage above. */
static int bystander(double seconds) {
    unsigned long count = 0;
    pthread_t counter;
    if (pthread_create(&counter, NULL, bystander_counter, &count) != 0) return 1;
    size_t capacity = (size_t)(seconds * 100) + 16, n = 0;
    double *late = malloc(capacity * sizeof(double));
    if (!late) return 1;
    double start = now(), end = start + seconds;
    while (now() < end && n < capacity) {
        struct timespec ts = {0, 10000000};
        double before = now();
        nanosleep(&ts, NULL);
        late[n++] = (now() - before - 0.010) * 1000;
    }
    bystander_done = 1;
    pthread_join(counter, NULL);
    double elapsed = now() - start;
    qsort(late, n, sizeof(double), compare_double);
    printf("bystander %.0f %.3f %.3f %.3f %zu\n", (double)count / elapsed, n ? late[n / 2] : 0,
           n ? late[(size_t)(n * 0.99)] : 0, n ? late[n - 1] : 0, n);
    free(late);
    return 0;
}

static int usage(void) {
    fprintf(stderr, "usage: corral-stress mem SIZE_MB [HOLD_SECONDS] [STEP_MB] [START_DELAY] | memramp SIZE_MB SECONDS [HOLD] | spin SECONDS | fork N [HOLD] | tree N SECONDS | spintree N SECONDS | syscalls NAME... | getpid N | write FILE TEXT | bystander SECONDS\n");
    return 2;
}

static long call(const char *name) {
    if (strcmp(name, "mount") == 0) return syscall(SYS_mount, "none", "/nonexistent-corral-test", "tmpfs", 0UL, NULL);
    if (strcmp(name, "umount2") == 0) return syscall(SYS_umount2, "/nonexistent-corral-test", 0);
    if (strcmp(name, "unshare-user") == 0) return syscall(SYS_unshare, CLONE_NEWUSER);
    if (strcmp(name, "clone-user") == 0) {
        long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, NULL);
        if (pid == 0) _exit(0);
        if (pid > 0) waitpid((pid_t)pid, NULL, 0);
        return pid > 0 ? 0 : pid;
    }
    if (strcmp(name, "clone3") == 0) return syscall(435, NULL, 0);
    if (strcmp(name, "ptrace") == 0) return syscall(SYS_ptrace, 0 /* PTRACE_TRACEME */, 0, NULL, NULL);
    if (strcmp(name, "bpf") == 0) return syscall(SYS_bpf, -1, NULL, 0);
    if (strcmp(name, "io_uring_setup") == 0) return syscall(425, 0, NULL);
    if (strcmp(name, "kexec_load") == 0) return syscall(SYS_kexec_load, 0UL, 0UL, NULL, 0xdead0000UL);
    if (strcmp(name, "perf_event_open") == 0) return syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0);
    if (strcmp(name, "keyctl") == 0) return syscall(SYS_keyctl, -1, 0, 0, 0, 0);
    if (strcmp(name, "setns") == 0) return syscall(SYS_setns, -1, 0);
    if (strcmp(name, "personality") == 0) return syscall(SYS_personality, 0x0040000UL /* ADDR_NO_RANDOMIZE */);
    if (strcmp(name, "socket-netlink") == 0) {
        long fd = syscall(SYS_socket, 16 /* AF_NETLINK */, SOCK_RAW, 0);
        if (fd >= 0) close((int)fd);
        return fd >= 0 ? 0 : fd;
    }
    if (strcmp(name, "getpid") == 0) return syscall(SYS_getpid) > 0 ? 0 : -1;
    errno = EINVAL;
    return -2;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 3) return usage();
    if (strcmp(argv[1], "mem") == 0) {
        long total = atol(argv[2]);
        double hold = argc > 3 ? atof(argv[3]) : 0;
        long step = argc > 4 ? atol(argv[4]) : total;
        double delay = argc > 5 ? atof(argv[5]) : 0;
        if (total <= 0 || step <= 0 || delay < 0) return usage();
        if (delay > 0) {
            struct timespec ts = {(time_t)delay, (long)((delay - (time_t)delay) * 1e9)};
            nanosleep(&ts, NULL);
        }
        long page = sysconf(_SC_PAGESIZE);
        long done = 0;
        while (done < total) {
            long chunk = step < total - done ? step : total - done;
            size_t bytes = (size_t)chunk << 20;
            volatile char *p = malloc(bytes);
            if (!p) { printf("malloc failed after %ld MB\n", done); return 1; }
            for (size_t i = 0; i < bytes; i += (size_t)page) p[i] = (char)(i | 1);
            done += chunk;
            printf("allocated %ld MB\n", done);
        }
        if (hold > 0) {
            struct timespec ts = {(time_t)hold, (long)((hold - (time_t)hold) * 1e9)};
            nanosleep(&ts, NULL);
        }
        return 0;
    }
    if (strcmp(argv[1], "memramp") == 0) {
        long total = argc > 2 ? atol(argv[2]) : 0;
        double seconds = argc > 3 ? atof(argv[3]) : 0;
        double hold = argc > 4 ? atof(argv[4]) : 600;
        if (total <= 0 || seconds <= 0 || hold < 0) return usage();
        long page = sysconf(_SC_PAGESIZE);
        double start = now();
        for (long done = 1; done <= total; done++) {
            volatile char *p = malloc((size_t)1 << 20);
            if (!p) { printf("malloc failed after %ld MB\n", done - 1); return 1; }
            for (size_t i = 0; i < ((size_t)1 << 20); i += (size_t)page) p[i] = (char)(i | 1);
            double due = start + seconds * (double)done / (double)total;
            double wait = due - now();
            if (wait > 0) {
                struct timespec ts = {(time_t)wait, (long)((wait - (time_t)wait) * 1e9)};
                nanosleep(&ts, NULL);
            }
        }
        printf("allocated %ld MB over %.0f s\n", total, seconds);
        fflush(stdout);
        struct timespec ts = {(time_t)hold, 0};
        nanosleep(&ts, NULL);
        return 0;
    }
    if (strcmp(argv[1], "spin") == 0) {
        double seconds = atof(argv[2]);
        double end = now() + seconds;
        volatile unsigned long x = 0;
        while (now() < end) for (int i = 0; i < 100000; i++) x += i;
        return 0;
    }
    if (strcmp(argv[1], "fork") == 0 || strcmp(argv[1], "tree") == 0) {
        int n = atoi(argv[2]);
        int hold = argc > 3 ? atoi(argv[3]) : 30;
        int forked = 0, first_errno = 0;
        for (int i = 0; i < n; i++) {
            pid_t pid = fork();
            if (pid == 0) { sleep((unsigned)hold); _exit(0); }
            if (pid < 0) { if (!first_errno) first_errno = errno; continue; }
            forked++;
        }
        printf("forked %d of %d, first failure errno %d\n", forked, n, first_errno);
        if (strcmp(argv[1], "tree") == 0) {
            sleep((unsigned)hold);
        }
        while (wait(NULL) > 0) {}
        return 0;
    }
    if (strcmp(argv[1], "forkloop") == 0) {
        int n = atoi(argv[2]);
        double seconds = argc > 3 ? atof(argv[3]) : 60;
        double end = now() + seconds;
        int alive = 0, refused = 0;
        while (now() < end) {
            while (waitpid(-1, NULL, WNOHANG) > 0) alive--;
            if (alive < n) {
                pid_t pid = fork();
                if (pid == 0) { sleep((unsigned)seconds + 1); _exit(0); }
                if (pid > 0) { alive++; continue; }
                refused++;
            }
            struct timespec ts = {0, 100000000};
            nanosleep(&ts, NULL);
        }
        printf("forkloop: %d alive, %d forks refused\n", alive, refused);
        return 0;
    }
    if (strcmp(argv[1], "syscalls") == 0) {
        for (int i = 2; i < argc; i++) {
            errno = 0;
            long rc = call(argv[i]);
            if (rc == -2) {
                fprintf(stderr, "corral-stress: unknown call %s\n", argv[i]);
                return 2;
            }
            printf("%s %ld %s\n", argv[i], rc < 0 ? -1L : rc > 0 ? 1L : 0L, rc < 0 ? strerrorname_np(errno) : "OK");
        }
        return 0;
    }
    if (strcmp(argv[1], "getpid") == 0) {
        long count = atol(argv[2]);
        double start = now();
        for (long i = 0; i < count; i++) syscall(SYS_getpid);
        printf("getpid %.1f ns per call\n", (now() - start) * 1e9 / (double)(count > 0 ? count : 1));
        return 0;
    }
    if (strcmp(argv[1], "write") == 0) {
        if (argc < 4) return usage();
        int fd = open(argv[2], O_WRONLY | O_CLOEXEC);
        ssize_t n = fd >= 0 ? write(fd, argv[3], strlen(argv[3])) : -1;
        printf("write %s %s\n", argv[2], n >= 0 ? "OK" : strerrorname_np(errno));
        return 0;
    }
    if (strcmp(argv[1], "bystander") == 0) return bystander(atof(argv[2]));
    if (strcmp(argv[1], "spintree") == 0) {
        int n = atoi(argv[2]);
        double seconds = argc > 3 ? atof(argv[3]) : 30;
        for (int i = 0; i < n; i++) {
            if (fork() == 0) {
                double end = now() + seconds;
                volatile unsigned long x = 0;
                while (now() < end) for (int k = 0; k < 100000; k++) x += k;
                _exit(0);
            }
        }
        printf("started %d spinners\n", n);
        while (wait(NULL) > 0) {}
        return 0;
    }
    return usage();
}
