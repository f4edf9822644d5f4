/* What a copy and a page fault cost: scripts/bench-vm-cpu runs this natively and in the VM
 * under two qemu CPU models. Prints one line of figures:
 *   fault_us   system time per anonymous page fault (256 MiB touched, 4 times)
 *   memcpy_ms  user time per memcpy of 638,000 bytes (a 200-agent /metrics body)
 *   send_ms    the sender's system time per write of 638,000 bytes over loopback TCP
 *              (a reader thread drains; what corrald's kernel does per scrape) */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static double ms(struct timeval t) { return t.tv_sec * 1e3 + t.tv_usec / 1e3; }

static void *drain(void *arg) {
    int fd = *(int *)arg;
    char *buffer = malloc(1 << 20);
    while (read(fd, buffer, 1 << 20) > 0) {}
    free(buffer);
    return NULL;
}

static double fault_us(void) {
    size_t size = (size_t)256 << 20;
    struct rusage a, b;
    getrusage(RUSAGE_SELF, &a);
    for (int round = 0; round < 4; round++) {
        volatile char *p = mmap(0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) { perror("mmap"); exit(1); }
        for (size_t i = 0; i < size; i += 4096) p[i] = 1;
        munmap((void *)p, size);
    }
    getrusage(RUSAGE_SELF, &b);
    return (ms(b.ru_stime) - ms(a.ru_stime)) * 1e3 / (4.0 * size / 4096);
}

int main(void) {
    const size_t size = 638000;
    const int copies = 400, sends = 200;
    double fault = fault_us();

    char *a = malloc(size), *b = malloc(size);
    memset(a, 'x', size);
    memset(b, 'y', size);
    struct rusage u0, u1;
    getrusage(RUSAGE_SELF, &u0);
    for (int i = 0; i < copies; i++) {
        memcpy(b, a, size);
        __asm__ volatile("" ::: "memory");
    }
    getrusage(RUSAGE_SELF, &u1);
    double copy = (ms(u1.ru_utime) - ms(u0.ru_utime)) / copies;

    int listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t length = sizeof address;
    if (bind(listener, (void *)&address, sizeof address) || listen(listener, 1) ||
        getsockname(listener, (void *)&address, &length)) { perror("listen"); return 1; }
    int sender = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(sender, (void *)&address, sizeof address)) { perror("connect"); return 1; }
    int receiver = accept(listener, NULL, NULL);
    pthread_t reader;
    pthread_create(&reader, NULL, drain, &receiver);
    getrusage(RUSAGE_THREAD, &u0);
    for (int i = 0; i < sends; i++) {
        for (size_t sent = 0; sent < size;) {
            ssize_t n = write(sender, a + sent, size - sent);
            if (n <= 0) { perror("write"); return 1; }
            sent += (size_t)n;
        }
    }
    getrusage(RUSAGE_THREAD, &u1);
    double send = (ms(u1.ru_stime) - ms(u0.ru_stime)) / sends;
    close(sender);
    pthread_join(reader, NULL);
    printf("fault_us=%.2f memcpy_ms=%.3f send_ms=%.3f\n", fault, copy, send);
    return 0;
}
