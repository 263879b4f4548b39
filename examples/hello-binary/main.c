/* A function in C: serves HTTP/1.1 on the Unix socket fnbox gives it as descriptor
 * $FNBOX_LISTEN_FD (bound, not yet listening: fnbox knows it is ready when it listens), one
 * request at a time, keeping connections open. Build: cc -O2 -o main main.c */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void serve(int c) {
    char buf[65536];
    size_t have = 0;
    for (;;) {
        char *end;
        while (!(end = memmem(buf, have, "\r\n\r\n", 4))) {
            if (have == sizeof buf) return;
            ssize_t n = read(c, buf + have, sizeof buf - have);
            if (n <= 0) return;
            have += (size_t)n;
        }
        size_t head = (size_t)(end - buf) + 4, body = 0;
        char *cl = memmem(buf, head, "ontent-Length:", 14);
        if (!cl) cl = memmem(buf, head, "ontent-length:", 14);
        if (cl) body = strtoul(cl + 14, NULL, 10);
        while (have < head + body) { /* read (and ignore) the body */
            if (have == sizeof buf) return;
            ssize_t n = read(c, buf + have, sizeof buf - have);
            if (n <= 0) return;
            have += (size_t)n;
        }
        const char *msg = "hello, world, from C\n";
        char out[256];
        int len = snprintf(out, sizeof out,
                           "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n\r\n%s",
                           strlen(msg), msg);
        if (write(c, out, (size_t)len) != len) return;
        memmove(buf, buf + head + body, have - head - body);
        have -= head + body;
    }
}

int main(void) {
    const char *fd = getenv("FNBOX_LISTEN_FD");
    if (!fd) { fprintf(stderr, "FNBOX_LISTEN_FD is not set: run me with fnbox\n"); return 1; }
    int s = atoi(fd);
    if (listen(s, 64)) { perror("listen"); return 1; }
    for (;;) {
        int c = accept(s, NULL, NULL);
        if (c < 0) continue;
        serve(c);
        close(c);
    }
}
