/* A user of the sandbox other than root opens root's files through /proc's magic links
 * (/proc/self/root/..., /proc/self/cwd/..., /proc/self/fd/N, another process's fd/N), stats
 * through them, and reads a root process's environment and maps: every one must be refused,
 * as Linux refuses it. Its own pipe, made after the drop (which leaves it not dumpable) and
 * reopened through /proc/self/fd/N, must open, as on Linux. Prints each difference and "done N
 * bypasses". */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static int bypasses;

static void must_fail(const char *path, int flags) {
    int fd = open(path, flags);
    if (fd >= 0) {
        printf("BYPASS open(%s, %s)\n", path, (flags & O_ACCMODE) == O_RDONLY ? "read" : "write");
        bypasses++;
        close(fd);
    }
}

static void make(const char *path, int mode, const char *text) {
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, mode);
    if (fd < 0 || write(fd, text, strlen(text)) < 0) {
        perror(path);
        _exit(2);
    }
    fchmod(fd, mode);
    close(fd);
}

int main(void) {
    mkdir("/tmp/d", 0755);
    mkdir("/tmp/priv", 0700);
    chmod("/tmp/priv", 0700);
    make("/tmp/d/secret", 0600, "secret\n");
    make("/tmp/d/rofile", 0644, "ro\n");
    make("/tmp/priv/inner", 0644, "inner\n");
    int file = open("/tmp/d/secret", O_PATH); /* 3 */
    int dir = open("/tmp/priv", O_PATH | O_DIRECTORY);
    int held = open("/tmp/d/secret", O_RDONLY);

    if (file < 0 || dir < 0 || held < 0) {
        perror("open as root");
        return 2;
    }
    /* A root process holding the secret open. */
    int ready[2], done[2];
    if (pipe(ready) < 0 || pipe(done) < 0) return 2;
    pid_t child = fork();
    if (child == 0) {
        char c;
        close(ready[0]);
        close(done[1]);
        if (write(ready[1], "x", 1) < 0) _exit(1);
        (void)!read(done[0], &c, 1); /* until the parent, no longer root, lets go */
        _exit(0);
    }
    char c;
    close(ready[1]);
    close(done[0]);
    if (read(ready[0], &c, 1) != 1) return 2;
    close(held);
    if (chdir("/") < 0 || setgroups(0, NULL) < 0 || setresgid(1000, 1000, 1000) < 0 ||
        setresuid(1000, 1000, 1000) < 0) {
        perror("drop to uid 1000");
        return 2;
    }
    /* A pipe of its own, made after the drop. */
    int own[2];
    if (pipe(own) < 0 || write(own[1], "p", 1) != 1) return 2;
    /* The direct paths, for reference: Linux refuses them. */
    must_fail("/tmp/d/secret", O_RDONLY);
    must_fail("/tmp/d/rofile", O_WRONLY);
    must_fail("/tmp/priv/inner", O_RDONLY);
    char p[128];
    const char *roots[] = {"/proc/self/root", "/proc/self/cwd", "/proc/1/root", "/proc/thread-self/root"};
    for (unsigned i = 0; i < sizeof roots / sizeof *roots; i++) {
        snprintf(p, sizeof p, "%s/tmp/d/secret", roots[i]);
        must_fail(p, O_RDONLY);
        snprintf(p, sizeof p, "%s/tmp/d/rofile", roots[i]);
        must_fail(p, O_WRONLY);
        snprintf(p, sizeof p, "%s/tmp/priv/inner", roots[i]);
        must_fail(p, O_RDONLY);
    }
    snprintf(p, sizeof p, "/proc/self/fd/%d", file);
    must_fail(p, O_RDONLY);
    snprintf(p, sizeof p, "/proc/self/fd/%d/inner", dir);
    must_fail(p, O_RDONLY);
    snprintf(p, sizeof p, "/proc/%d/fd/%d", (int)child, held);
    must_fail(p, O_RDONLY);
    snprintf(p, sizeof p, "/proc/%d/environ", (int)child);
    must_fail(p, O_RDONLY);
    snprintf(p, sizeof p, "/proc/%d/maps", (int)child);
    must_fail(p, O_RDONLY);
    struct stat st;
    if (stat("/proc/self/root/tmp/priv/inner", &st) == 0) {
        printf("BYPASS stat(/proc/self/root/tmp/priv/inner)\n");
        bypasses++;
    }
    snprintf(p, sizeof p, "/proc/self/fd/%d", own[0]);
    int again = open(p, O_RDONLY);
    if (again < 0) {
        printf("REFUSED own pipe %s: %s\n", p, strerror(errno));
        bypasses++;
    }
    close(done[1]);
    waitpid(child, NULL, 0);
    printf("done %d bypasses\n", bypasses);
    return 0;
}
