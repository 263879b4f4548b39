// The calls v2 continues (lets the kernel run, see docs/architecture.md, "Continued calls")
// must give the answers the emulation gave, and a path rewritten between the Sentry's check
// and the kernel's walk must reach nothing the program could not reach itself. Prints "FAIL
// <what>" for each wrong answer, then "done <n> failures".
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int failures;
static void expect(int ok, const char *what) {
    if (!ok) {
        printf("FAIL %s (errno %d)\n", what, errno);
        failures++;
    }
}

static char buf[256];
static volatile int stop;
static const char *flip_a, *flip_b;
static void *flipper(void *arg) {
    (void)arg;
    while (!stop) {
        strcpy(buf, flip_a);
        __asm__ volatile("" ::: "memory"); // both stores happen
        strcpy(buf, flip_b);
        __asm__ volatile("" ::: "memory");
    }
    return NULL;
}
static void flip(const char *a, const char *b, pthread_t *t) {
    flip_a = a;
    flip_b = b;
    stop = 0;
    strcpy(buf, a);
    pthread_create(t, NULL, flipper, NULL);
}
static void unflip(pthread_t t) {
    stop = 1;
    pthread_join(t, NULL);
}

int main(void) {
    struct stat st;
    // fstat and its AT_EMPTY_PATH forms: the kernel stats the descriptor.
    int fd = open("/etc/hostname", O_RDONLY);
    expect(fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode), "fstat of an open file");
    expect(fstatat(AT_FDCWD, "", &st, AT_EMPTY_PATH) == 0 && S_ISDIR(st.st_mode), "fstatat of the cwd");
    expect(fstatat(9999, "", &st, AT_EMPTY_PATH) == -1 && errno == EBADF, "fstat of a closed descriptor is EBADF");
    struct statx sx;
    expect(statx(fd, "", AT_EMPTY_PATH, STATX_SIZE, &sx) == 0 && S_ISREG(sx.stx_mode), "statx of a descriptor");
    // AT_EMPTY_PATH with a path is a path: /proc stays the Sentry's.
    expect(fstatat(AT_FDCWD, "/proc/self/status", &st, AT_EMPTY_PATH) == 0 && S_ISREG(st.st_mode),
           "fstatat(/proc/self/status, AT_EMPTY_PATH)");
    expect(statx(AT_FDCWD, "/proc/self", AT_EMPTY_PATH, STATX_TYPE, &sx) == 0 && S_ISDIR(sx.stx_mode),
           "statx(/proc/self, AT_EMPTY_PATH)");
    // The filter runs only fstat natively: a path without the flag, or with it in the upper
    // half of the register (which the kernel does not read), is still the Sentry's.
    expect(fstatat(AT_FDCWD, "/proc/self/status", &st, 0) == 0 && S_ISREG(st.st_mode), "stat(/proc/self/status)");
    expect(statx(AT_FDCWD, "/proc/self", 0, STATX_TYPE, &sx) == 0 && S_ISDIR(sx.stx_mode), "statx(/proc/self)");
    int root = open("/", O_RDONLY | O_DIRECTORY);
    expect(fstatat(root, "proc/self/status", &st, 0) == 0, "stat(proc/self/status) from a descriptor");
    expect(syscall(SYS_newfstatat, AT_FDCWD, "/proc/self/status", &st, (long)AT_EMPTY_PATH << 32) == 0,
           "AT_EMPTY_PATH in the upper half is no flag");
    // A NULL path with the flag: what this kernel says of a descriptor (Linux 6.11 and later
    // stat it, older ones fault), it says of the working directory.
    struct statx nx;
    long by_fd = syscall(SYS_statx, fd, NULL, AT_EMPTY_PATH, STATX_TYPE, &nx);
    long by_cwd = syscall(SYS_statx, AT_FDCWD, NULL, AT_EMPTY_PATH, STATX_TYPE, &nx);
    expect(by_fd == by_cwd, "statx(AT_FDCWD, NULL, AT_EMPTY_PATH) answers as for a descriptor");
    int pfd = open("/proc/self/status", O_RDONLY);
    expect(pfd >= 0 && fstat(pfd, &st) == 0 && S_ISREG(st.st_mode), "fstat of a synthetic /proc file");

    // Opens the kernel runs: plain files, creation with the umask, a symlink into /proc.
    umask(027);
    int c = open("/tmp/created", O_CREAT | O_WRONLY | O_EXCL, 0666);
    expect(c >= 0 && fstat(c, &st) == 0 && (st.st_mode & 0777) == 0640, "open(O_CREAT) applies the umask");
    expect(open("/tmp/created", O_CREAT | O_WRONLY | O_EXCL, 0666) == -1 && errno == EEXIST, "O_EXCL on a file");
    expect(open("/tmp/none/x", O_RDONLY) == -1 && errno == ENOENT, "ENOENT through a missing directory");
    expect(open("/etc/hostname/x", O_RDONLY) == -1 && errno == ENOTDIR, "ENOTDIR through a file");
    symlink("/proc/self/status", "/tmp/to-proc");
    int l = open("/tmp/to-proc", O_RDONLY);
    char text[64] = {0};
    expect(l >= 0 && read(l, text, sizeof text - 1) > 0 && strncmp(text, "Name:", 5) == 0,
           "a symlink into /proc opens the synthetic file");
    expect(open("/tmp/to-proc", O_RDONLY | O_NOFOLLOW) == -1 && errno == ELOOP, "O_NOFOLLOW on a symlink");
    symlink("/proc", "/tmp/proc-dir");
    int pd = open("/tmp/proc-dir", O_RDONLY | O_DIRECTORY);
    expect(pd >= 0 && fstatat(pd, "self", &st, 0) == 0, "a symlink to /proc opens the synthetic directory");
    chdir("/etc");
    expect(open("hostname", O_RDONLY) >= 0, "a path relative to the cwd");
    expect(open("../proc/self/status", O_RDONLY) >= 0, "../proc from the cwd is the synthetic /proc");

    // Relative paths after the working directory changed (the Sentry caches it per thread):
    // chdir, fchdir, and a rename of the directory itself.
    mkdir("/tmp/d1", 0755);
    mkdir("/tmp/d2", 0755);
    close(open("/tmp/d1/f1", O_CREAT | O_WRONLY, 0644));
    close(open("/tmp/d2/f2", O_CREAT | O_WRONLY, 0644));
    int d1 = open("/tmp/d1", O_RDONLY | O_DIRECTORY);
    expect(chdir("/tmp/d1") == 0 && stat("f1", &st) == 0, "stat relative to a new cwd");
    expect(chdir("/tmp/d2") == 0 && stat("f2", &st) == 0 && stat("f1", &st) != 0, "stat after chdir");
    expect(fchdir(d1) == 0 && stat("f1", &st) == 0 && stat("f2", &st) != 0, "stat after fchdir");
    expect(rename("/tmp/d1", "/tmp/d3") == 0 && stat("f1", &st) == 0, "stat after the cwd was renamed");
    expect(access("f1", F_OK) == 0 && open("f1", O_RDONLY) >= 0, "access and open after the rename");

    // Rewritten paths. From a materialised /proc directory as the cwd, a path flipping between
    // a file of the tree and a name to create must never create anything there.
    int self = open("/proc/self", O_RDONLY | O_DIRECTORY);
    expect(self >= 0 && fchdir(self) == 0, "fchdir into /proc/self");
    pthread_t t;
    flip("/tmp/ok", "planted", &t);
    int refused = 0; // continued with "planted": the kernel met the read-only area
    for (int i = 0; i < 20000; i++) {
        int f = open(buf, O_CREAT | O_WRONLY, 0644);
        if (f >= 0) close(f);
        refused += f < 0 && errno == EROFS;
    }
    unflip(t);
    expect(faccessat(self, "planted", F_OK, 0) != 0, "nothing planted in a /proc directory");
    DIR *d = opendir(".");
    struct dirent *e;
    while (d && (e = readdir(d))) expect(strcmp(e->d_name, "planted") != 0, "no planted entry listed");
    // An empty path flipping to a /proc one under fstatat(AT_EMPTY_PATH): every answer is the
    // cwd's (a directory) or a failure, never a host file.
    chdir("/");
    flip("", "/proc/self/status", &t);
    for (int i = 0; i < 20000; i++) {
        if (fstatat(AT_FDCWD, buf, &st, AT_EMPTY_PATH) == 0 && !S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) {
            expect(0, "fstatat under a rewritten path gave an odd file");
            break;
        }
    }
    unflip(t);
    printf("rewritten opens refused by the read-only area: %d\n", refused);
    printf("done %d failures\n", failures);
    return failures != 0;
}
