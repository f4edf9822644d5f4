#include <seccomp.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* libseccomp 2.5.4 (Debian 12) can only write a filter to a descriptor
 * (no seccomp_export_bpf_mem): write it to a memfd and read it back.
 * pfc != 0 writes libseccomp's pseudo-code instead of BPF.
 * Returns 0 and a malloc'ed buffer in *out (the caller frees it), or -errno. */
static inline int corral_seccomp_export(scmp_filter_ctx ctx, int pfc, unsigned char **out, size_t *length) {
    *out = NULL;
    *length = 0;
    int fd = (int)syscall(SYS_memfd_create, "corral-seccomp", 1U /* MFD_CLOEXEC */);
    if (fd < 0) return -errno;
    int rc = pfc ? seccomp_export_pfc(ctx, fd) : seccomp_export_bpf(ctx, fd);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    off_t size = lseek(fd, 0, SEEK_END);
    if (size < 0 || lseek(fd, 0, SEEK_SET) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    unsigned char *buffer = malloc((size_t)size + 1);
    if (!buffer) {
        close(fd);
        return -ENOMEM;
    }
    size_t done = 0;
    while (done < (size_t)size) {
        ssize_t n = read(fd, buffer + done, (size_t)size - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : -EIO;
            free(buffer);
            close(fd);
            return rc;
        }
        done += (size_t)n;
    }
    close(fd);
    buffer[done] = 0;
    *out = buffer;
    *length = done;
    return 0;
}

/* Swift cannot see these macros. */
static inline uint32_t corral_scmp_act_errno(uint16_t error) { return SCMP_ACT_ERRNO(error); }
static inline uint32_t corral_scmp_act_allow(void) { return SCMP_ACT_ALLOW; }
static inline uint32_t corral_scmp_act_notify(void) { return SCMP_ACT_NOTIFY; }
static inline uint32_t corral_scmp_act_kill_process(void) { return SCMP_ACT_KILL_PROCESS; }
static inline uint32_t corral_scmp_arch_native(void) { return SCMP_ARCH_NATIVE; }
static inline int corral_nr_scmp_error(void) { return __NR_SCMP_ERROR; }
