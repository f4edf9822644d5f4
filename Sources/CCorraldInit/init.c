/* corrald as a container's init.
 *
 * As PID 1 of a pid namespace (a container's first process) corrald would inherit every
 * orphan: a process whose parent ended (an agent's grandchild, a daemonized helper) is
 * reparented to PID 1, and the daemon waits only for its agents, so the orphans would stay
 * zombies, counting in pids.current. An init in front of it (tini, `init: true`) would sit in
 * the container's cgroup as a process that is not Corral's. So, before main and before any
 * thread exists, PID 1 forks: the child returns and runs the daemon (which moves its parent
 * into supervisor/ with itself); the parent stays PID 1 as "corrald-init", reaps every child
 * that ends, forwards every signal to the daemon and exits with its status. Only corrald links
 * this. CORRALD_NO_INIT=1 turns it off.
 */
#define _GNU_SOURCE
#include "CCorraldInit.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static int has_init_parent = 0;

int corrald_has_init_parent(void) { return has_init_parent; }

__attribute__((constructor)) static void corrald_init(void) {
    if (getpid() != 1) return;
    const char *off = getenv("CORRALD_NO_INIT");
    if (off && off[0] == '1') return;

    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    pid_t daemon = fork();
    if (daemon < 0) {
        /* Go on as PID 1 without an init: orphans are not reaped. */
        sigprocmask(SIG_SETMASK, &old, NULL);
        return;
    }
    if (daemon == 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        has_init_parent = 1;
        return;
    }
    prctl(PR_SET_NAME, "corrald-init", 0, 0, 0);
    for (;;) {
        siginfo_t info;
        int sig = sigwaitinfo(&all, &info);
        if (sig < 0) continue;
        if (sig != SIGCHLD) {
            kill(daemon, sig);
            continue;
        }
        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            if (pid == daemon) _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
        }
    }
}
