/* Files and directories: openat2, statfs, flock, extended attributes. */
#define _GNU_SOURCE
#include "CCorralLinux.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <string.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

int corral_openat2(int dirfd, const char *path, int flags, unsigned int mode, uint64_t resolve) {
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (uint64_t)flags;
    how.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0;
    how.resolve = resolve;
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

uint64_t corral_resolve_strict(void) {
    return RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
}

int corral_o_path(void) { return O_PATH; }

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

int corral_lock_exclusive(int fd) { return flock(fd, LOCK_EX); }

int corral_unlock(int fd) { return flock(fd, LOCK_UN); }

int corral_fsetxattr(int fd, const char *name, const void *value, size_t size, int flags) {
    return fsetxattr(fd, name, value, size, flags);
}

long corral_fgetxattr(int fd, const char *name, void *value, size_t size) {
    return (long)fgetxattr(fd, name, value, size);
}

long corral_lgetxattr(const char *path, const char *name, void *value, size_t size) {
    return (long)lgetxattr(path, name, value, size);
}
