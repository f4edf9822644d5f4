#ifndef CCORRALDINIT_H
#define CCORRALDINIT_H

/* Non-zero when corrald started as PID 1 of its pid namespace (a container's init) and
   forked itself: this process is the daemon and its parent, PID 1, the minimal init that
   reaps orphans and forwards signals (see init.c). */
int corrald_has_init_parent(void);

#endif
