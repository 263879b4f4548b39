/*
 * Syscall conformance probe for fnbox's end-to-end tests (crates/fnbox/tests/programs/conformance.rs).
 *
 * `conformance DIR...` creates each DIR (which must not exist), works inside it, and exercises the
 * path-taking syscall families, printing one deterministic line per check:
 *
 *     DIR FAMILY.CHECK: RESULT
 *
 * RESULT is the return value ("0", a count, or "fd" for a new descriptor) or "-1 ERRNO_NAME",
 * followed by the result fields that matter and do not depend on inode numbers, timestamps we did
 * not set, or descriptor numbers. The same binary run in two sandboxes must print the same lines:
 * that is how an emulated syscall (sandbox v2) is checked against Linux (sandbox v1).
 * The last line is "conformance: complete, N checks"; a missing last line means a check hung or
 * crashed the program.
 *
 * `conformance --forbidden` calls the syscalls a sandbox must refuse, with arguments that would fail
 * differently (or harmlessly) if the call ever reached the kernel, and prints "forbidden NAME: RESULT".
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif
#ifndef SYS_faccessat2
#define SYS_faccessat2 439
#endif

static const char *label = "";
static int nchecks;

static const char *ename(int e) {
    const char *s = strerrorname_np(e);
    return s ? s : "E?";
}

/* One check's line. */
static void out(const char *name, const char *fmt, ...) {
    va_list ap;
    printf("%s %s: ", label, name);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
    nchecks++;
}

/* "N" or "-1 ENAME". */
static const char *res(long r, int e) {
    static char buf[64];
    if (r < 0)
        snprintf(buf, sizeof buf, "-1 %s", ename(e));
    else
        snprintf(buf, sizeof buf, "%ld", r);
    return buf;
}

#define CALL(expr) (errno = 0, (long)(expr))

/* A call returning 0/-1 or a count. */
#define CHECK(name, expr)            \
    do {                             \
        long r_ = CALL(expr);        \
        int e_ = errno;              \
        out(name, "%s", res(r_, e_)); \
    } while (0)

/* A call returning a new descriptor: "fd" (closed at once) or the error. */
#define CHECK_FD(name, expr)                 \
    do {                                     \
        long r_ = CALL(expr);                \
        int e_ = errno;                      \
        if (r_ >= 0) {                       \
            out(name, "fd");                 \
            close((int)r_);                  \
        } else {                             \
            out(name, "%s", res(r_, e_));    \
        }                                    \
    } while (0)

static const char *ftype(mode_t m) {
    switch (m & S_IFMT) {
    case S_IFREG: return "reg";
    case S_IFDIR: return "dir";
    case S_IFLNK: return "lnk";
    case S_IFCHR: return "chr";
    case S_IFBLK: return "blk";
    case S_IFIFO: return "fifo";
    case S_IFSOCK: return "sock";
    }
    return "?";
}

/* The fields of a stat that do not depend on inode numbers or unset times. Directory sizes and
 * link counts depend on the file system, so they are left out for directories. */
static const char *desc_stat(const struct stat *st) {
    static char buf[160];
    int n = snprintf(buf, sizeof buf, "type=%s mode=%04o uid=%u gid=%u", ftype(st->st_mode),
                     (unsigned)(st->st_mode & 07777), (unsigned)st->st_uid, (unsigned)st->st_gid);
    if (!S_ISDIR(st->st_mode))
        n += snprintf(buf + n, sizeof buf - n, " size=%lld nlink=%lu", (long long)st->st_size,
                      (unsigned long)st->st_nlink);
    if (S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode))
        snprintf(buf + n, sizeof buf - n, " rdev=%u:%u", major(st->st_rdev), minor(st->st_rdev));
    return buf;
}

static void stat_line(const char *name, long r, int e, const struct stat *st) {
    if (r < 0)
        out(name, "%s", res(r, e));
    else
        out(name, "%ld %s", r, desc_stat(st));
}

#define CHECK_STAT(name, expr)          \
    do {                                \
        struct stat st_;                \
        memset(&st_, 0, sizeof st_);    \
        long r_ = CALL(expr);           \
        int e_ = errno;                 \
        stat_line(name, r_, e_, &st_);  \
    } while (0)
/* Inside CHECK_STAT, `ST` is the stat buffer to fill. */
#define ST (&st_)

/* Printable contents of a descriptor (up to 200 bytes), from offset 0. */
static const char *contents_fd(int fd) {
    static char raw[201], buf[801];
    ssize_t n = pread(fd, raw, 200, 0);
    if (n < 0) {
        snprintf(buf, sizeof buf, "<read %s>", ename(errno));
        return buf;
    }
    char *p = buf;
    for (ssize_t i = 0; i < n; i++) {
        unsigned char c = raw[i];
        if (c == '\n')
            p += sprintf(p, "\\n");
        else if (c < 32 || c > 126 || c == '\\')
            p += sprintf(p, "\\x%02x", c);
        else
            *p++ = c;
    }
    *p = 0;
    return buf;
}

/* Opens and reports what was opened: "fd TYPE 'contents'" (contents for regular files). */
static void open_line(const char *name, long fd, int e) {
    if (fd < 0) {
        out(name, "%s", res(fd, e));
        return;
    }
    struct stat st;
    fstat((int)fd, &st);
    if (S_ISREG(st.st_mode))
        out(name, "fd reg '%s'", contents_fd((int)fd));
    else
        out(name, "fd %s", ftype(st.st_mode));
    close((int)fd);
}

#define CHECK_OPEN(name, expr)      \
    do {                            \
        long r_ = CALL(expr);       \
        int e_ = errno;             \
        open_line(name, r_, e_);    \
    } while (0)

/* The first line of a file, for files whose identity matters (the sandbox's /etc/passwd). */
static void first_line(const char *name, long fd, int e) {
    if (fd < 0) {
        out(name, "%s", res(fd, e));
        return;
    }
    char buf[256] = {0};
    ssize_t n = pread((int)fd, buf, sizeof buf - 1, 0);
    close((int)fd);
    if (n < 0) {
        out(name, "fd <read %s>", ename(errno));
        return;
    }
    buf[strcspn(buf, "\n")] = 0;
    out(name, "fd '%s'", buf);
}

#define FIRST_LINE(name, expr)      \
    do {                            \
        long r_ = CALL(expr);       \
        int e_ = errno;             \
        first_line(name, r_, e_);   \
    } while (0)

static void write_file(const char *path, const char *text, mode_t mode) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
        printf("setup: cannot write %s: %s\n", path, strerror(errno));
        exit(2);
    }
    close(fd);
}

static void setup(int ok, const char *what) {
    if (!ok) {
        printf("setup: %s failed: %s\n", what, strerror(errno));
        exit(2);
    }
}

/* Same inode as `ref`? Reports identity without printing inode numbers. */
static const char *same_file(const struct stat *a, const char *ref) {
    struct stat b;
    if (stat(ref, &b) < 0)
        return "ref-missing";
    return (a->st_dev == b.st_dev && a->st_ino == b.st_ino) ? "same" : "different";
}

/* With RESOLVE_BENEATH or RESOLVE_IN_ROOT, a ".." walked while any rename or mount happens on
 * the machine gives EAGAIN, and openat2(2) says to retry: a test running beside this one once
 * made the kernel's own answer (v1's) EAGAIN. */
static long sys_openat2(int dfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve) {
    struct open_how how = {.flags = flags, .mode = mode, .resolve = resolve};
    long r;
    int tries = 0;
    do
        r = syscall(SYS_openat2, dfd, path, &how, sizeof how);
    while (r < 0 && errno == EAGAIN && (resolve & (RESOLVE_BENEATH | RESOLVE_IN_ROOT)) && ++tries < 100);
    return r;
}

/* ---------------------------------------------------------------------------------------------- */

static void open_family(void) {
    write_file("f", "hello\n", 0644);
    CHECK_FD("open.creat_excl_new", open("new", O_WRONLY | O_CREAT | O_EXCL, 0640));
    CHECK_STAT("open.creat_excl_new_mode", stat("new", ST));
    CHECK_FD("open.creat_excl_exists", open("f", O_WRONLY | O_CREAT | O_EXCL, 0644));
    CHECK_OPEN("open.rdonly", open("f", O_RDONLY));
    CHECK_FD("open.directory_on_file", open("f", O_RDONLY | O_DIRECTORY));
    CHECK_OPEN("open.directory_on_dir", open(".", O_RDONLY | O_DIRECTORY));
    setup(symlink("f", "lnk") == 0, "symlink lnk");
    CHECK_OPEN("open.follow_symlink", open("lnk", O_RDONLY));
    CHECK_FD("open.nofollow_symlink", open("lnk", O_RDONLY | O_NOFOLLOW));
    CHECK_OPEN("open.path_nofollow_symlink", open("lnk", O_PATH | O_NOFOLLOW));
    CHECK_FD("open.enoent", open("missing", O_RDONLY));
    CHECK_FD("open.enoent_parent", open("missing/x", O_WRONLY | O_CREAT, 0644));
    CHECK_FD("open.enotdir_component", open("f/x", O_RDONLY));
    CHECK_FD("open.eisdir_write", open(".", O_WRONLY));
    CHECK_FD("open.eisdir_creat", open(".", O_RDWR | O_CREAT, 0644));
    CHECK_FD("open.trailing_slash_creat", open("newdir/", O_WRONLY | O_CREAT, 0644));
    CHECK_FD("open.bad_pointer", syscall(SYS_open, (char *)1, O_RDONLY));
    CHECK_FD("open.empty_path", open("", O_RDONLY));
    char longname[300];
    memset(longname, 'a', 256);
    longname[256] = 0;
    CHECK_FD("open.name_too_long", open(longname, O_RDONLY));
    char *longpath = malloc(5000);
    for (int i = 0; i < 4998; i += 2)
        memcpy(longpath + i, "./", 2);
    longpath[4998] = 'f';
    longpath[4999] = 0;
    CHECK_FD("open.path_too_long", open(longpath, O_RDONLY));
    free(longpath);
    setup(symlink("loop2", "loop1") == 0 && symlink("loop1", "loop2") == 0, "symlink loop");
    CHECK_FD("open.symlink_loop", open("loop1", O_RDONLY));
    setup(symlink("nowhere", "dangling") == 0, "symlink dangling");
    CHECK_FD("open.dangling_creat", open("dangling", O_WRONLY | O_CREAT, 0644));
    CHECK_STAT("open.dangling_creat_made_target", stat("nowhere", ST));
    CHECK_FD("open.dangling_creat_excl", open("dangling", O_WRONLY | O_CREAT | O_EXCL, 0644));

    int fd = open("f", O_WRONLY | O_TRUNC);
    CHECK_STAT("open.trunc", fstat(fd, ST));
    setup(write(fd, "hello\n", 6) == 6, "write f");
    close(fd);
    fd = open("f", O_WRONLY | O_APPEND);
    setup(write(fd, "more\n", 5) == 5, "append f");
    close(fd);
    CHECK_OPEN("open.append", open("f", O_RDONLY));
    write_file("f", "hello\n", 0644);

    long t = CALL(open(".", O_TMPFILE | O_RDWR, 0600));
    int te = errno;
    if (t >= 0) {
        struct stat st;
        fstat((int)t, &st);
        out("open.tmpfile", "fd %s", desc_stat(&st));
        CHECK("open.tmpfile_linkat_empty_path", linkat((int)t, "", AT_FDCWD, "tmpfile-linked", AT_EMPTY_PATH));
        close((int)t);
    } else {
        out("open.tmpfile", "%s", res(t, te));
    }

    /* openat: dirfd-relative, `..` and absolute symlinks stay inside the sandbox root. */
    setup(mkdir("sub", 0755) == 0, "mkdir sub");
    write_file("sub/g", "in sub\n", 0644);
    int dfd = open("sub", O_RDONLY | O_DIRECTORY);
    setup(dfd >= 0, "open sub");
    CHECK_OPEN("openat.relative", openat(dfd, "g", O_RDONLY));
    CHECK_FD("openat.creat", openat(dfd, "inner", O_WRONLY | O_CREAT | O_EXCL, 0600));
    CHECK_STAT("openat.creat_visible", stat("sub/inner", ST));
    CHECK_OPEN("openat.dotdot", openat(dfd, "../f", O_RDONLY));
    CHECK_OPEN("openat.absolute_ignores_dirfd", openat(dfd, "/etc/hostname", O_RDONLY));
    setup(symlink("/etc", "etclink") == 0, "symlink etclink");
    CHECK_OPEN("openat.absolute_symlink", openat(AT_FDCWD, "etclink/hostname", O_RDONLY));
    FIRST_LINE("openat.dotdot_past_root", openat(dfd, "../../../../../../../../etc/passwd", O_RDONLY));
    setup(symlink("/etc/passwd", "passwdlink") == 0, "symlink passwdlink");
    FIRST_LINE("openat.absolute_symlink_to_file", openat(AT_FDCWD, "passwdlink", O_RDONLY));
    setup(symlink("../../../../../../../../..", "uplink") == 0, "symlink uplink");
    FIRST_LINE("openat.relative_symlink_past_root", openat(AT_FDCWD, "uplink/etc/passwd", O_RDONLY));
    setup(symlink("/etc/shadow", "shadowlink") == 0, "symlink shadowlink");
    CHECK_FD("openat.host_only_file_via_symlink", openat(AT_FDCWD, "shadowlink", O_RDONLY));
    CHECK_FD("openat.bad_dirfd", openat(9999, "g", O_RDONLY));
    int ffd = open("f", O_RDONLY);
    CHECK_FD("openat.file_as_dirfd", openat(ffd, "g", O_RDONLY));
    CHECK_OPEN("openat.file_as_dirfd_absolute", openat(ffd, "/etc/hostname", O_RDONLY));
    close(ffd);

    /* openat2 and its RESOLVE_* flags. */
    CHECK_OPEN("openat2.plain", sys_openat2(dfd, "g", O_RDONLY, 0, 0));
    CHECK_FD("openat2.creat", sys_openat2(dfd, "made-by-openat2", O_WRONLY | O_CREAT | O_EXCL, 0600, 0));
    CHECK_STAT("openat2.creat_mode", stat("sub/made-by-openat2", ST));
    CHECK_FD("openat2.beneath_dotdot", sys_openat2(dfd, "../f", O_RDONLY, 0, RESOLVE_BENEATH));
    CHECK_FD("openat2.beneath_absolute", sys_openat2(dfd, "/etc/hostname", O_RDONLY, 0, RESOLVE_BENEATH));
    int dot = open(".", O_RDONLY | O_DIRECTORY);
    CHECK_FD("openat2.beneath_absolute_symlink", sys_openat2(dot, "etclink/hostname", O_RDONLY, 0, RESOLVE_BENEATH));
    CHECK_OPEN("openat2.beneath_inside", sys_openat2(dot, "sub/../sub/g", O_RDONLY, 0, RESOLVE_BENEATH));
    CHECK_OPEN("openat2.in_root_dotdot", sys_openat2(dfd, "../../../g", O_RDONLY, 0, RESOLVE_IN_ROOT));
    setup(symlink("/g", "sub/abs") == 0, "symlink sub/abs");
    CHECK_OPEN("openat2.in_root_absolute_symlink", sys_openat2(dfd, "abs", O_RDONLY, 0, RESOLVE_IN_ROOT));
    CHECK_OPEN("openat2.in_root_absolute_path", sys_openat2(dfd, "/g", O_RDONLY, 0, RESOLVE_IN_ROOT));
    CHECK_FD("openat2.in_root_outside_name", sys_openat2(dfd, "/f", O_RDONLY, 0, RESOLVE_IN_ROOT));
    CHECK_FD("openat2.no_symlinks", sys_openat2(dot, "lnk", O_RDONLY, 0, RESOLVE_NO_SYMLINKS));
    CHECK_FD("openat2.no_magiclinks", sys_openat2(AT_FDCWD, "/proc/self/exe", O_RDONLY, 0, RESOLVE_NO_MAGICLINKS));
    CHECK_FD("openat2.no_xdev", sys_openat2(AT_FDCWD, "/proc/self/status", O_RDONLY, 0, RESOLVE_NO_XDEV));
    CHECK_FD("openat2.unknown_resolve_flag", sys_openat2(dfd, "g", O_RDONLY, 0, 0x80));
    CHECK_FD("openat2.mode_without_creat", sys_openat2(dfd, "g", O_RDONLY, 0644, 0));
    CHECK_FD("openat2.beneath_and_in_root", sys_openat2(dfd, "g", O_RDONLY, 0, RESOLVE_BENEATH | RESOLVE_IN_ROOT));
    {
        struct open_how how = {.flags = O_RDONLY};
        CHECK_FD("openat2.size_too_small", syscall(SYS_openat2, dfd, "g", &how, 8));
    }
    close(dot);

    /* creat */
    CHECK_FD("creat.new", creat("c", 0600));
    CHECK_STAT("creat.new_mode", stat("c", ST));
    write_file("c", "data", 0600);
    CHECK_FD("creat.existing_truncates", creat("c", 0644));
    CHECK_STAT("creat.existing_truncated", stat("c", ST));
    CHECK_FD("creat.on_dir", creat("sub", 0644));
    close(dfd);
}

static void stat_family(void) {
    int dfd = open("sub", O_RDONLY | O_DIRECTORY);
    CHECK_STAT("stat.file", stat("f", ST));
    CHECK_STAT("stat.dir", stat("sub", ST));
    CHECK_STAT("stat.follows_symlink", stat("lnk", ST));
    CHECK_STAT("lstat.symlink", lstat("lnk", ST));
    CHECK_STAT("lstat.file", lstat("f", ST));
    CHECK_STAT("stat.enoent", stat("missing", ST));
    CHECK_STAT("stat.enotdir", stat("f/x", ST));
    CHECK_STAT("stat.trailing_slash_on_file", stat("f/", ST));
    CHECK_STAT("stat.trailing_slash_on_symlink_to_dir", lstat("etclink/", ST));
    CHECK_STAT("stat.dangling_symlink", stat("loop1", ST));
    CHECK_STAT("stat.dev_null", stat("/dev/null", ST));
    CHECK_STAT("stat.root", stat("/", ST));
    CHECK_STAT("newfstatat.relative", fstatat(dfd, "g", ST, 0));
    CHECK_STAT("newfstatat.dotdot", fstatat(dfd, "../f", ST, 0));
    CHECK_STAT("newfstatat.symlink_nofollow", fstatat(AT_FDCWD, "lnk", ST, AT_SYMLINK_NOFOLLOW));
    CHECK_STAT("newfstatat.symlink_follow", fstatat(AT_FDCWD, "lnk", ST, 0));
    int fd = open("f", O_RDONLY);
    CHECK_STAT("newfstatat.empty_path_fd", fstatat(fd, "", ST, AT_EMPTY_PATH));
    CHECK_STAT("newfstatat.empty_path_without_flag", fstatat(fd, "", ST, 0));
    CHECK_STAT("newfstatat.empty_path_cwd", fstatat(AT_FDCWD, "", ST, AT_EMPTY_PATH));
    CHECK_STAT("newfstatat.bad_flags", syscall(SYS_newfstatat, AT_FDCWD, "f", ST, 0x40000000));
    int pfd = open("lnk", O_PATH | O_NOFOLLOW);
    CHECK_STAT("newfstatat.empty_path_opath_symlink", fstatat(pfd, "", ST, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW));
    CHECK_STAT("fstat.opath_symlink", fstat(pfd, ST));
    close(pfd);
    {
        struct stat st;
        long r = CALL(fstatat(dfd, "../../../../../../..", &st, 0));
        int e = errno;
        out("newfstatat.dotdot_stops_at_root", "%s %s", res(r, e), r == 0 ? same_file(&st, "/") : "");
        r = CALL(stat("etclink/..", &st));
        e = errno;
        out("stat.absolute_symlink_dotdot", "%s %s", res(r, e), r == 0 ? same_file(&st, "/") : "");
    }

    /* statx */
    struct statx sx;
    const unsigned basic = STATX_BASIC_STATS;
#define STATX_LINE(name, expr)                                                                                    \
    do {                                                                                                          \
        memset(&sx, 0, sizeof sx);                                                                                \
        long r_ = CALL(expr);                                                                                     \
        int e_ = errno;                                                                                           \
        if (r_ < 0)                                                                                               \
            out(name, "%s", res(r_, e_));                                                                         \
        else                                                                                                      \
            out(name, "0 basic_mask=%#x type=%s mode=%04o size=%llu nlink=%u uid=%u", sx.stx_mask & basic,        \
                ftype(sx.stx_mode), sx.stx_mode & 07777, (unsigned long long)sx.stx_size,                         \
                S_ISDIR(sx.stx_mode) ? 0 : sx.stx_nlink, sx.stx_uid);                                             \
    } while (0)
    STATX_LINE("statx.file", statx(AT_FDCWD, "f", 0, STATX_BASIC_STATS, &sx));
    STATX_LINE("statx.only_size", statx(AT_FDCWD, "f", 0, STATX_SIZE, &sx));
    STATX_LINE("statx.symlink_follow", statx(AT_FDCWD, "lnk", 0, STATX_BASIC_STATS, &sx));
    STATX_LINE("statx.symlink_nofollow", statx(AT_FDCWD, "lnk", AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &sx));
    STATX_LINE("statx.empty_path_fd", statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &sx));
    STATX_LINE("statx.dirfd_relative", statx(dfd, "g", 0, STATX_BASIC_STATS, &sx));
    STATX_LINE("statx.enoent", statx(AT_FDCWD, "missing", 0, STATX_BASIC_STATS, &sx));
    STATX_LINE("statx.bad_flags", statx(AT_FDCWD, "f", 0x40000000, STATX_BASIC_STATS, &sx));
    STATX_LINE("statx.reserved_mask", statx(AT_FDCWD, "f", 0, 0x80000000u, &sx));
    STATX_LINE("statx.sync_flags_both", statx(AT_FDCWD, "f", AT_STATX_FORCE_SYNC | AT_STATX_DONT_SYNC, STATX_BASIC_STATS, &sx));
    close(fd);
    close(dfd);
}

static void access_family(void) {
    write_file("secret", "s", 0600);
    write_file("noperm", "n", 0000);
    CHECK("access.read_write", access("f", R_OK | W_OK));
    CHECK("access.exec_on_plain_file", access("f", X_OK));
    CHECK("access.exists", access("f", F_OK));
    CHECK("access.enoent", access("missing", F_OK));
    CHECK("access.enotdir", access("f/x", F_OK));
    CHECK("access.root_reads_mode_0", access("noperm", R_OK));
    CHECK("access.dir_search", access("sub", X_OK));
    CHECK("access.bad_mode", access("f", 0x10));
    CHECK("access.readonly_fs", access("/usr/bin", W_OK));
    CHECK("faccessat.relative", syscall(SYS_faccessat, AT_FDCWD, "sub/g", R_OK));
    int dfd = open("sub", O_RDONLY | O_DIRECTORY);
    CHECK("faccessat.dirfd", syscall(SYS_faccessat, dfd, "g", R_OK));
    CHECK("faccessat2.eaccess", syscall(SYS_faccessat2, AT_FDCWD, "f", R_OK, AT_EACCESS));
    CHECK("faccessat2.symlink_nofollow_dangling", syscall(SYS_faccessat2, AT_FDCWD, "dangling2", F_OK, AT_SYMLINK_NOFOLLOW));
    setup(symlink("nothing-here", "dangling2") == 0, "symlink dangling2");
    CHECK("faccessat2.symlink_nofollow", syscall(SYS_faccessat2, AT_FDCWD, "dangling2", F_OK, AT_SYMLINK_NOFOLLOW));
    CHECK("faccessat2.symlink_follow", syscall(SYS_faccessat2, AT_FDCWD, "dangling2", F_OK, 0));
    int fd = open("f", O_RDONLY);
    CHECK("faccessat2.empty_path", syscall(SYS_faccessat2, fd, "", R_OK, AT_EMPTY_PATH));
    CHECK("faccessat2.bad_flags", syscall(SYS_faccessat2, AT_FDCWD, "f", R_OK, 0x40000000));
    close(fd);
    close(dfd);

    /* Real vs effective ids: with real uid 1000 and effective uid 0, access() checks the real uid
     * (and drops capabilities), AT_EACCESS the effective one. */
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        if (setresuid(1000, 0, 0) != 0) {
            out("access.setresuid", "%s", res(-1, errno));
        } else {
            CHECK("access.real_uid_1000_secret", access("secret", R_OK));
            CHECK("faccessat2.eaccess_euid_0_secret", syscall(SYS_faccessat2, AT_FDCWD, "secret", R_OK, AT_EACCESS));
            CHECK("access.real_uid_1000_world_readable", access("f", R_OK));
            CHECK("access.real_uid_1000_write_to_root_file", access("f", W_OK));
        }
        fflush(stdout);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    nchecks += 4;
}

static void readlink_family(const char *dir) {
    char buf[PATH_MAX];
    long r;
#define READLINK_LINE(name, expr, size)                                 \
    do {                                                                \
        memset(buf, 0, sizeof buf);                                     \
        r = CALL(expr);                                                 \
        int e_ = errno;                                                 \
        if (r < 0)                                                      \
            out(name, "%s", res(r, e_));                                \
        else                                                            \
            out(name, "%ld '%.*s'", r, (int)r, buf);                    \
        (void)(size);                                                   \
    } while (0)
    READLINK_LINE("readlink.relative_target", readlink("lnk", buf, sizeof buf), 0);
    READLINK_LINE("readlink.absolute_target", readlink("etclink", buf, sizeof buf), 0);
    setup(symlink("a-rather-long-target-name", "longlink") == 0, "symlink longlink");
    READLINK_LINE("readlink.short_buffer", readlink("longlink", buf, 4), 4);
    READLINK_LINE("readlink.zero_buffer", readlink("longlink", buf, 0), 0);
    READLINK_LINE("readlink.not_a_symlink", readlink("f", buf, sizeof buf), 0);
    READLINK_LINE("readlink.enoent", readlink("missing", buf, sizeof buf), 0);
    READLINK_LINE("readlink.through_symlinked_dir", readlink("sub/abs", buf, sizeof buf), 0);
    int dfd = open("sub", O_RDONLY | O_DIRECTORY);
    READLINK_LINE("readlinkat.dirfd", readlinkat(dfd, "abs", buf, sizeof buf), 0);
    READLINK_LINE("readlinkat.dirfd_dotdot", readlinkat(dfd, "../lnk", buf, sizeof buf), 0);
    int pfd = open("longlink", O_PATH | O_NOFOLLOW);
    READLINK_LINE("readlinkat.empty_path_opath", readlinkat(pfd, "", buf, sizeof buf), 0);
    close(pfd);
    close(dfd);
    /* The program's own view of itself and its working directory. */
    READLINK_LINE("readlink.proc_self_exe", readlink("/proc/self/exe", buf, sizeof buf), 0);
    READLINK_LINE("readlink.proc_self_cwd", readlink("/proc/self/cwd", buf, sizeof buf), 0);
    (void)dir;
}

static void mkdir_rmdir(void) {
    CHECK("mkdir.new", mkdir("d", 0777));
    CHECK_STAT("mkdir.umask_applied", stat("d", ST));
    CHECK("mkdir.eexist", mkdir("d", 0755));
    CHECK("mkdir.eexist_file", mkdir("f", 0755));
    CHECK("mkdir.eexist_symlink", mkdir("lnk", 0755));
    CHECK("mkdir.eexist_dangling_symlink", mkdir("dangling2", 0755));
    CHECK("mkdir.enoent_parent", mkdir("missing/d", 0755));
    CHECK("mkdir.enotdir_parent", mkdir("f/d", 0755));
    CHECK("mkdir.trailing_slash", mkdir("d2/", 0755));
    CHECK("mkdir.readonly_fs", mkdir("/usr/fnbox-conformance", 0755));
    int dfd = open("sub", O_RDONLY | O_DIRECTORY);
    CHECK("mkdirat.dirfd", mkdirat(dfd, "d3", 0700));
    CHECK_STAT("mkdirat.mode", stat("sub/d3", ST));
    CHECK("mkdirat.dirfd_dotdot", mkdirat(dfd, "../d4", 0755));
    CHECK_STAT("mkdirat.dotdot_visible", stat("d4", ST));
    CHECK("mkdir.sticky_setgid_bits", mkdir("d5", 03777));
    CHECK_STAT("mkdir.sticky_setgid_mode", stat("d5", ST));

    write_file("d/inside", "x", 0644);
    CHECK("rmdir.enotempty", rmdir("d"));
    CHECK("rmdir.enotdir", rmdir("f"));
    CHECK("rmdir.dot", rmdir("."));
    CHECK("rmdir.dotdot", rmdir("d/.."));
    CHECK("rmdir.enoent", rmdir("missing"));
    CHECK("rmdir.symlink_to_dir", rmdir("etclink"));
    CHECK("rmdir.empty", rmdir("d2"));
    CHECK("rmdir.empty_via_dirfd_path", rmdir("sub/d3"));
    CHECK_STAT("rmdir.gone", stat("sub/d3", ST));
    close(dfd);
}

static void unlink_family(void) {
    write_file("u1", "1", 0644);
    write_file("u2", "2", 0644);
    CHECK("unlink.file", unlink("u1"));
    CHECK_STAT("unlink.gone", stat("u1", ST));
    CHECK("unlink.enoent", unlink("u1"));
    CHECK("unlink.dir", unlink("d4"));
    CHECK("unlink.trailing_slash", unlink("u2/"));
    setup(symlink("u2", "u2link") == 0, "symlink u2link");
    CHECK("unlink.symlink", unlink("u2link"));
    CHECK_STAT("unlink.symlink_target_kept", stat("u2", ST));
    CHECK("unlinkat.removedir", unlinkat(AT_FDCWD, "d4", AT_REMOVEDIR));
    CHECK("unlinkat.removedir_on_file", unlinkat(AT_FDCWD, "u2", AT_REMOVEDIR));
    CHECK("unlinkat.removedir_nonempty", unlinkat(AT_FDCWD, "d", AT_REMOVEDIR));
    CHECK("unlinkat.bad_flags", unlinkat(AT_FDCWD, "u2", 0x1));
    int dfd = open("sub", O_RDONLY | O_DIRECTORY);
    write_file("sub/u3", "3", 0644);
    CHECK("unlinkat.dirfd", unlinkat(dfd, "u3", 0));
    CHECK("unlinkat.dirfd_dotdot", unlinkat(dfd, "../u2", 0));
    CHECK("unlink.readonly_fs", unlink("/usr/bin/env"));
    close(dfd);
}

static void rename_family(void) {
    write_file("r1", "one", 0644);
    write_file("r2", "two", 0644);
    CHECK("rename.file", rename("r1", "r1b"));
    CHECK_OPEN("rename.file_content", open("r1b", O_RDONLY));
    CHECK("rename.over_file", rename("r1b", "r2"));
    CHECK_OPEN("rename.over_file_content", open("r2", O_RDONLY));
    CHECK("rename.enoent", rename("r1", "r3"));
    setup(mkdir("rd1", 0755) == 0 && mkdir("rd2", 0755) == 0, "mkdir rd");
    write_file("rd2/x", "x", 0644);
    CHECK("rename.dir_over_nonempty_dir", rename("rd1", "rd2"));
    CHECK("rename.file_over_dir", rename("r2", "rd1"));
    CHECK("rename.dir_over_file", rename("rd1", "r2"));
    CHECK("rename.dir_into_itself", rename("rd2", "rd2/sub"));
    CHECK("rename.dir_over_empty_dir", rename("rd2", "rd1"));
    CHECK_STAT("rename.dir_moved", stat("rd1/x", ST));
    CHECK("rename.same_file", rename("r2", "r2"));
    CHECK("rename.readonly_fs", rename("/usr/bin/env", "/usr/bin/env2"));
    CHECK("rename.across_mounts", rename("/usr/bin/true", "true-copy"));
    int dfd = open("sub", O_RDONLY | O_DIRECTORY);
    CHECK("renameat.dirfd", renameat(AT_FDCWD, "r2", dfd, "r2-in-sub"));
    CHECK_OPEN("renameat.dirfd_content", open("sub/r2-in-sub", O_RDONLY));
    CHECK("renameat.dirfd_dotdot", renameat(dfd, "r2-in-sub", dfd, "../r2"));
    write_file("x1", "x1", 0644);
    write_file("x2", "x2", 0644);
    CHECK("renameat2.noreplace_existing", renameat2(AT_FDCWD, "x1", AT_FDCWD, "x2", RENAME_NOREPLACE));
    CHECK("renameat2.noreplace_new", renameat2(AT_FDCWD, "x1", AT_FDCWD, "x3", RENAME_NOREPLACE));
    CHECK("renameat2.exchange", renameat2(AT_FDCWD, "x2", AT_FDCWD, "x3", RENAME_EXCHANGE));
    CHECK_OPEN("renameat2.exchange_x2", open("x2", O_RDONLY));
    CHECK_OPEN("renameat2.exchange_x3", open("x3", O_RDONLY));
    CHECK("renameat2.exchange_file_and_dir", renameat2(AT_FDCWD, "x2", AT_FDCWD, "rd1", RENAME_EXCHANGE));
    CHECK_STAT("renameat2.exchange_file_and_dir_now_dir", stat("x2", ST));
    CHECK("renameat2.exchange_missing", renameat2(AT_FDCWD, "x3", AT_FDCWD, "missing", RENAME_EXCHANGE));
    CHECK("renameat2.exchange_and_noreplace", renameat2(AT_FDCWD, "x2", AT_FDCWD, "x3", RENAME_EXCHANGE | RENAME_NOREPLACE));
    CHECK("renameat2.whiteout", renameat2(AT_FDCWD, "x3", AT_FDCWD, "x4", RENAME_WHITEOUT));
    CHECK("renameat2.bad_flags", renameat2(AT_FDCWD, "x3", AT_FDCWD, "x4", 0x100));
    close(dfd);
}

static void link_symlink(void) {
    write_file("l1", "linked", 0644);
    CHECK("link.new", link("l1", "l2"));
    CHECK_STAT("link.nlink", stat("l1", ST));
    CHECK("link.eexist", link("l1", "l2"));
    CHECK("link.enoent", link("missing", "l3"));
    CHECK("link.dir", link("sub", "sublink-hard"));
    CHECK("link.across_mounts", link("/usr/bin/true", "true-hard"));
    int dfd = open("sub", O_RDONLY | O_DIRECTORY);
    CHECK("linkat.dirfd", linkat(AT_FDCWD, "l1", dfd, "l-in-sub", 0));
    CHECK_STAT("linkat.dirfd_nlink", stat("sub/l-in-sub", ST));
    CHECK("linkat.symlink_nofollow", linkat(AT_FDCWD, "lnk", AT_FDCWD, "lnk-hard", 0));
    CHECK_STAT("linkat.symlink_nofollow_is_link", lstat("lnk-hard", ST));
    CHECK("linkat.symlink_follow", linkat(AT_FDCWD, "lnk", AT_FDCWD, "lnk-followed", AT_SYMLINK_FOLLOW));
    CHECK_STAT("linkat.symlink_follow_is_file", lstat("lnk-followed", ST));
    CHECK("linkat.bad_flags", linkat(AT_FDCWD, "l1", AT_FDCWD, "l4", 0x1));

    CHECK("symlink.new", symlink("target-text", "s1"));
    CHECK_STAT("symlink.lstat", lstat("s1", ST));
    CHECK("symlink.eexist", symlink("other", "s1"));
    CHECK("symlink.empty_target", symlink("", "s2"));
    CHECK("symlink.enoent_parent", symlink("t", "missing/s3"));
    CHECK("symlinkat.dirfd", symlinkat("/etc/hostname", dfd, "s-in-sub"));
    CHECK_OPEN("symlinkat.follow_absolute", open("sub/s-in-sub", O_RDONLY));
    CHECK("symlinkat.readonly_fs", symlinkat("x", AT_FDCWD, "/usr/s"));
    close(dfd);
}

static void chmod_chown(void) {
    write_file("m", "m", 0644);
    CHECK("chmod.file", chmod("m", 0640));
    CHECK_STAT("chmod.file_mode", stat("m", ST));
    CHECK("chmod.setuid_bits", chmod("m", 04755));
    CHECK_STAT("chmod.setuid_mode", stat("m", ST));
    CHECK("chmod.through_symlink", chmod("lnk", 0600));
    CHECK_STAT("chmod.through_symlink_target", stat("f", ST));
    CHECK("chmod.enoent", chmod("missing", 0644));
    CHECK("chmod.readonly_fs", chmod("/usr/bin/env", 0777));
    int dfd = open("sub", O_RDONLY | O_DIRECTORY);
    CHECK("fchmodat.dirfd", syscall(SYS_fchmodat, dfd, "g", 0600));
    CHECK_STAT("fchmodat.dirfd_mode", stat("sub/g", ST));
    CHECK("fchmodat2.symlink_nofollow", syscall(SYS_fchmodat2, AT_FDCWD, "lnk", 0644, AT_SYMLINK_NOFOLLOW));
    CHECK("fchmodat2.file_nofollow", syscall(SYS_fchmodat2, AT_FDCWD, "m", 0644, AT_SYMLINK_NOFOLLOW));
    CHECK_STAT("fchmodat2.file_nofollow_mode", stat("m", ST));
    int fd = open("m", O_RDONLY);
    CHECK("fchmodat2.empty_path", syscall(SYS_fchmodat2, fd, "", 0604, AT_EMPTY_PATH));
    CHECK_STAT("fchmodat2.empty_path_mode", stat("m", ST));
    CHECK("fchmodat2.bad_flags", syscall(SYS_fchmodat2, AT_FDCWD, "m", 0644, 0x40000000));
    close(fd);
    chmod("f", 0644);

    CHECK("chown.file", chown("m", 1000, 1000));
    CHECK_STAT("chown.file_ids", stat("m", ST));
    CHECK("chown.unchanged_ids", chown("m", -1, -1));
    CHECK("chmod.setuid_again", chmod("m", 04755));
    CHECK("chown.clears_setuid", chown("m", 0, 0));
    CHECK_STAT("chown.clears_setuid_mode", stat("m", ST));
    CHECK("lchown.symlink", lchown("lnk", 1000, 1000));
    CHECK_STAT("lchown.symlink_ids", lstat("lnk", ST));
    CHECK_STAT("lchown.target_ids", stat("f", ST));
    CHECK("chown.through_symlink", chown("lnk", 1000, 0));
    CHECK_STAT("chown.through_symlink_target", stat("f", ST));
    CHECK("fchownat.dirfd", fchownat(dfd, "g", 1000, 1000, 0));
    CHECK_STAT("fchownat.dirfd_ids", stat("sub/g", ST));
    fd = open("f", O_RDONLY);
    CHECK("fchownat.empty_path", fchownat(fd, "", 0, 0, AT_EMPTY_PATH));
    CHECK_STAT("fchownat.empty_path_ids", stat("f", ST));
    close(fd);
    CHECK("fchownat.symlink_nofollow", fchownat(AT_FDCWD, "lnk", 0, 0, AT_SYMLINK_NOFOLLOW));
    CHECK_STAT("fchownat.symlink_nofollow_ids", lstat("lnk", ST));
    CHECK("chown.unmapped_uid", chown("m", 70000, 70000));
    CHECK("chown.enoent", chown("missing", 0, 0));
    CHECK("fchownat.bad_flags", fchownat(AT_FDCWD, "m", 0, 0, 0x1));
    close(dfd);
}

static void utimes_family(void) {
    write_file("t", "t", 0644);
    struct stat st;
    long r;
    int e;
#define TIMES_LINE(name, path, flags)                                                                           \
    do {                                                                                                        \
        if (fstatat(AT_FDCWD, path, &st, flags) < 0)                                                            \
            out(name, "stat %s", ename(errno));                                                                 \
        else                                                                                                    \
            out(name, "atime=%lld.%09ld mtime=%lld.%09ld", (long long)st.st_atim.tv_sec, st.st_atim.tv_nsec,   \
                (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);                                              \
    } while (0)
    struct timespec ts[2] = {{1000000000, 123456789}, {1500000000, 987654321}};
    CHECK("utimensat.path", utimensat(AT_FDCWD, "t", ts, 0));
    TIMES_LINE("utimensat.path_times", "t", 0);
    int fd = open("t", O_RDWR);
    struct timespec ts2[2] = {{1100000000, 1}, {1600000000, 2}};
    CHECK("utimensat.null_path_fd", syscall(SYS_utimensat, fd, NULL, ts2, 0));
    TIMES_LINE("utimensat.null_path_fd_times", "t", 0);
    struct timespec omit[2] = {{0, UTIME_OMIT}, {1700000000, 500}};
    CHECK("utimensat.omit_atime", utimensat(AT_FDCWD, "t", omit, 0));
    TIMES_LINE("utimensat.omit_atime_times", "t", 0);
    struct timespec both_omit[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
    CHECK("utimensat.omit_both", utimensat(AT_FDCWD, "t", both_omit, 0));
    TIMES_LINE("utimensat.omit_both_times", "t", 0);
    struct timespec now[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
    CHECK("utimensat.now", utimensat(AT_FDCWD, "t", now, 0));
    fstatat(AT_FDCWD, "t", &st, 0);
    out("utimensat.now_changed_mtime", "%s", st.st_mtim.tv_sec > 1700000000 ? "yes" : "no");
    CHECK("utimensat.symlink_nofollow", utimensat(AT_FDCWD, "lnk", ts, AT_SYMLINK_NOFOLLOW));
    TIMES_LINE("utimensat.symlink_nofollow_link_times", "lnk", AT_SYMLINK_NOFOLLOW);
    CHECK("utimensat.follow", utimensat(AT_FDCWD, "lnk", ts2, 0));
    TIMES_LINE("utimensat.follow_target_times", "f", 0);
    int dfd = open("sub", O_RDONLY | O_DIRECTORY);
    CHECK("utimensat.dirfd", utimensat(dfd, "g", ts, 0));
    TIMES_LINE("utimensat.dirfd_times", "sub/g", 0);
    close(dfd);
    CHECK("utimensat.empty_path", utimensat(fd, "", ts, AT_EMPTY_PATH));
    TIMES_LINE("utimensat.empty_path_times", "t", 0);
    struct timespec bad[2] = {{0, 1000000000}, {0, 0}};
    CHECK("utimensat.bad_nsec", utimensat(AT_FDCWD, "t", bad, 0));
    CHECK("utimensat.enoent", utimensat(AT_FDCWD, "missing", ts, 0));
    CHECK("utimensat.null_path_cwd", syscall(SYS_utimensat, AT_FDCWD, NULL, ts, 0));
    CHECK("utimensat.readonly_fs", utimensat(AT_FDCWD, "/usr/bin/env", ts, 0));
    close(fd);
    struct timeval tv[2] = {{1200000000, 250000}, {1300000000, 999999}};
    CHECK("utimes.path", utimes("t", tv));
    TIMES_LINE("utimes.path_times", "t", 0);
    (void)r;
    (void)e;
}

static void truncate_family(void) {
    write_file("tr", "0123456789", 0644);
    CHECK("truncate.shrink", truncate("tr", 3));
    CHECK_OPEN("truncate.shrink_content", open("tr", O_RDONLY));
    CHECK("truncate.extend", truncate("tr", 6));
    CHECK_OPEN("truncate.extend_content", open("tr", O_RDONLY));
    CHECK("truncate.through_symlink", truncate("lnk", 2));
    CHECK_OPEN("truncate.through_symlink_content", open("f", O_RDONLY));
    write_file("f", "hello\n", 0644);
    CHECK("truncate.dir", truncate("sub", 0));
    CHECK("truncate.enoent", truncate("missing", 0));
    CHECK("truncate.negative", truncate("tr", -1));
    CHECK("truncate.readonly_fs", truncate("/usr/bin/env", 0));
    int fd = open("tr", O_RDONLY);
    CHECK("ftruncate.readonly_fd", ftruncate(fd, 0));
    close(fd);
}

static void cwd_family(const char *dir) {
    char buf[PATH_MAX];
#define CWD_LINE(name)                                                 \
    do {                                                               \
        char *p_ = getcwd(buf, sizeof buf);                            \
        out(name, "%s", p_ ? p_ : res(-1, errno));                     \
    } while (0)
    CWD_LINE("getcwd.start");
    CHECK("chdir.sub", chdir("sub"));
    CWD_LINE("getcwd.sub");
    CHECK_OPEN("chdir.relative_open", open("g", O_RDONLY));
    CHECK_OPEN("chdir.relative_dotdot_open", open("../f", O_RDONLY));
    CHECK("chdir.dotdot", chdir(".."));
    CWD_LINE("getcwd.back");
    setup(symlink("sub", "sublink") == 0, "symlink sublink");
    CHECK("chdir.through_symlink", chdir("sublink"));
    CWD_LINE("getcwd.through_symlink_is_physical");
    CHECK("chdir.root", chdir("/"));
    CWD_LINE("getcwd.root");
    CHECK("chdir.dotdot_at_root", chdir(".."));
    CWD_LINE("getcwd.dotdot_at_root");
    CHECK("chdir.absolute_back", chdir(dir));
    CHECK("chdir.file", chdir("f"));
    CHECK("chdir.enoent", chdir("missing"));
    int dfd = open("sub", O_RDONLY | O_DIRECTORY);
    CHECK("fchdir.dirfd", fchdir(dfd));
    CWD_LINE("getcwd.fchdir");
    close(dfd);
    chdir(dir);
    CHECK("chdir.etclink", chdir("etclink"));
    CWD_LINE("getcwd.etclink_resolves_inside");
    chdir(dir);
    char small[4];
    char *p = getcwd(small, sizeof small);
    out("getcwd.small_buffer", "%s", p ? p : res(-1, errno));
    CHECK("getcwd.raw_small_buffer", syscall(SYS_getcwd, small, sizeof small));
    setup(mkdir("gone", 0755) == 0, "mkdir gone");
    CHECK("chdir.gone", chdir("gone"));
    CHECK("rmdir.own_cwd", rmdir("../gone"));
    CWD_LINE("getcwd.removed_cwd");
    CHECK_FD("open.in_removed_cwd", open("x", O_WRONLY | O_CREAT, 0644));
    CHECK("chdir.from_removed_cwd", chdir(dir));
    CWD_LINE("getcwd.restored");
}

static const char *fs_name(long type) {
    switch ((unsigned long)type) {
    case 0xEF53: return "ext4";
    case 0x794c7630: return "overlay";
    case 0x01021994: return "tmpfs";
    case 0x9fa0: return "proc";
    case 0x62656572: return "sysfs";
    case 0x1cd1: return "devpts";
    }
    return "other";
}

static void statfs_family(void) {
    struct statfs sf;
#define STATFS_LINE(name, expr)                                                                   \
    do {                                                                                          \
        long r_ = CALL(expr);                                                                     \
        int e_ = errno;                                                                           \
        if (r_ < 0)                                                                               \
            out(name, "%s", res(r_, e_));                                                         \
        else                                                                                      \
            out(name, "0 f_type=%#lx (%s)", (unsigned long)sf.f_type, fs_name((long)sf.f_type)); \
    } while (0)
    STATFS_LINE("statfs.cwd", statfs(".", &sf));
    STATFS_LINE("statfs.tmp", statfs("/tmp", &sf));
    STATFS_LINE("statfs.usr", statfs("/usr", &sf));
    STATFS_LINE("statfs.proc", statfs("/proc", &sf));
    STATFS_LINE("statfs.dev", statfs("/dev", &sf));
    STATFS_LINE("statfs.dev_shm", statfs("/dev/shm", &sf));
    STATFS_LINE("statfs.through_symlink", statfs("lnk", &sf));
    STATFS_LINE("statfs.enoent", statfs("missing", &sf));
    int fd = open("f", O_RDONLY);
    STATFS_LINE("fstatfs.fd", fstatfs(fd, &sf));
    close(fd);
}

static int by_string(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void xattr_family(void) {
    char buf[256];
    long r;
    int e;
    write_file("xa", "x", 0644);
    CHECK("setxattr.user", setxattr("xa", "user.fnbox", "value-1", 7, 0));
    memset(buf, 0, sizeof buf);
    r = CALL(getxattr("xa", "user.fnbox", buf, sizeof buf));
    e = errno;
    out("getxattr.user", "%s '%s'", res(r, e), r > 0 ? buf : "");
    CHECK("getxattr.size_query", getxattr("xa", "user.fnbox", NULL, 0));
    CHECK("getxattr.short_buffer", getxattr("xa", "user.fnbox", buf, 3));
    CHECK("getxattr.missing", getxattr("xa", "user.none", buf, sizeof buf));
    CHECK("setxattr.create_existing", setxattr("xa", "user.fnbox", "v", 1, XATTR_CREATE));
    CHECK("setxattr.replace_missing", setxattr("xa", "user.other", "v", 1, XATTR_REPLACE));
    CHECK("setxattr.second", setxattr("xa", "user.second", "2", 1, XATTR_CREATE));
    memset(buf, 0, sizeof buf);
    r = CALL(listxattr("xa", buf, sizeof buf));
    e = errno;
    {
        /* user.* names only (security.* labels depend on the host), sorted: the order is the
         * file system's (tmpfs lists the newest first, ext4 the oldest). */
        const char *found[16];
        int count = 0;
        for (long i = 0; r > 0 && i < r && count < 16; i += strlen(buf + i) + 1)
            if (strncmp(buf + i, "user.", 5) == 0)
                found[count++] = buf + i;
        qsort(found, count, sizeof found[0], by_string);
        char names[256] = "";
        for (int i = 0; i < count; i++) {
            strcat(names, found[i]);
            strcat(names, " ");
        }
        out("listxattr.user_names", "%s %s", r < 0 ? res(r, e) : "ok", names);
    }
    CHECK("setxattr.trusted", setxattr("xa", "trusted.fnbox", "v", 1, 0));
    CHECK("setxattr.bad_namespace", setxattr("xa", "bogus.fnbox", "v", 1, 0));
    CHECK("setxattr.through_symlink", setxattr("lnk", "user.via-link", "v", 1, 0));
    CHECK("lsetxattr.user_on_symlink", lsetxattr("lnk", "user.on-link", "v", 1, 0));
    CHECK("lgetxattr.symlink", lgetxattr("lnk", "user.via-link", buf, sizeof buf));
    CHECK("removexattr.user", removexattr("xa", "user.fnbox"));
    CHECK("getxattr.after_remove", getxattr("xa", "user.fnbox", buf, sizeof buf));
    CHECK("removexattr.missing", removexattr("xa", "user.fnbox"));
    CHECK("setxattr.enoent", setxattr("missing", "user.fnbox", "v", 1, 0));
    CHECK("setxattr.on_dir", setxattr("sub", "user.dir", "d", 1, 0));
    CHECK("setxattr.readonly_fs", setxattr("/usr/bin/env", "user.fnbox", "v", 1, 0));
    int fd = open("xa", O_RDONLY);
    CHECK("fsetxattr.fd", fsetxattr(fd, "user.fd", "fdv", 3, 0));
    CHECK("fgetxattr.fd", fgetxattr(fd, "user.fd", buf, sizeof buf));
    close(fd);
}

static void unix_sockets(const char *dir) {
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    char abs[sizeof a.sun_path];
    snprintf(abs, sizeof abs, "%s/sock", dir);
    int srv = socket(AF_UNIX, SOCK_STREAM, 0);
    strcpy(a.sun_path, "sock");
    CHECK("bind.unix_relative", bind(srv, (struct sockaddr *)&a, sizeof a));
    CHECK_STAT("bind.unix_relative_inode", stat("sock", ST));
    {
        struct sockaddr_un got;
        socklen_t len = sizeof got;
        memset(&got, 0, sizeof got);
        long r = CALL(getsockname(srv, (struct sockaddr *)&got, &len));
        out("getsockname.unix_relative", "%s '%s'", res(r, errno), got.sun_path);
    }
    CHECK("listen.unix", listen(srv, 4));
    int c = socket(AF_UNIX, SOCK_STREAM, 0);
    strcpy(a.sun_path, abs);
    CHECK("connect.unix_absolute", connect(c, (struct sockaddr *)&a, sizeof a));
    int acc = accept(srv, NULL, NULL);
    CHECK("send.unix", send(c, "ping", 4, 0));
    {
        char buf[8] = {0};
        long r = CALL(recv(acc, buf, sizeof buf - 1, 0));
        out("recv.unix", "%s '%s'", res(r, errno), buf);
    }
    close(acc);
    close(c);
    c = socket(AF_UNIX, SOCK_STREAM, 0);
    chdir("sub");
    strcpy(a.sun_path, "../sock");
    CHECK("connect.unix_relative_dotdot", connect(c, (struct sockaddr *)&a, sizeof a));
    chdir(dir);
    close(c);
    int again = socket(AF_UNIX, SOCK_STREAM, 0);
    strcpy(a.sun_path, "sock");
    CHECK("bind.unix_existing_path", bind(again, (struct sockaddr *)&a, sizeof a));
    close(again);
    c = socket(AF_UNIX, SOCK_STREAM, 0);
    strcpy(a.sun_path, "missing.sock");
    CHECK("connect.unix_enoent", connect(c, (struct sockaddr *)&a, sizeof a));
    strcpy(a.sun_path, "f");
    CHECK("connect.unix_not_a_socket", connect(c, (struct sockaddr *)&a, sizeof a));
    close(c);
    int b = socket(AF_UNIX, SOCK_STREAM, 0);
    strcpy(a.sun_path, "missing/sock");
    CHECK("bind.unix_enoent_parent", bind(b, (struct sockaddr *)&a, sizeof a));
    strcpy(a.sun_path, "/usr/fnbox.sock");
    CHECK("bind.unix_readonly_fs", bind(b, (struct sockaddr *)&a, sizeof a));
    close(b);
    /* Datagrams by path. */
    int d1 = socket(AF_UNIX, SOCK_DGRAM, 0), d2 = socket(AF_UNIX, SOCK_DGRAM, 0);
    strcpy(a.sun_path, "sub/dgram");
    CHECK("bind.unix_dgram_subdir", bind(d1, (struct sockaddr *)&a, sizeof a));
    CHECK("sendto.unix_dgram_path", sendto(d2, "dgram", 5, 0, (struct sockaddr *)&a, sizeof a));
    {
        char buf[8] = {0};
        long r = CALL(recv(d1, buf, sizeof buf - 1, MSG_DONTWAIT));
        out("recv.unix_dgram", "%s '%s'", res(r, errno), buf);
    }
    strcpy(a.sun_path, "sub/nobody");
    CHECK("sendto.unix_dgram_enoent", sendto(d2, "x", 1, 0, (struct sockaddr *)&a, sizeof a));
    close(d1);
    close(d2);
    /* An abstract name has no path: nothing to resolve. */
    int ab = socket(AF_UNIX, SOCK_STREAM, 0);
    memset(a.sun_path, 0, sizeof a.sun_path);
    memcpy(a.sun_path, "\0fnbox-conformance", 18);
    CHECK("bind.unix_abstract", bind(ab, (struct sockaddr *)&a, offsetof(struct sockaddr_un, sun_path) + 18));
    close(ab);
    close(srv);
}

static void mknod_family(void) {
    CHECK("mknod.fifo", mknod("fifo", S_IFIFO | 0644, 0));
    CHECK_STAT("mknod.fifo_stat", stat("fifo", ST));
    CHECK("mkfifo.eexist", mkfifo("fifo", 0644));
    int r = open("fifo", O_RDONLY | O_NONBLOCK);
    int w = open("fifo", O_WRONLY | O_NONBLOCK);
    out("open.fifo_both_ends", "%s", (r >= 0 && w >= 0) ? "ok" : ename(errno));
    CHECK("write.fifo", write(w, "through", 7));
    {
        char buf[16] = {0};
        long n = CALL(read(r, buf, sizeof buf - 1));
        out("read.fifo", "%s '%s'", res(n, errno), buf);
    }
    close(r);
    close(w);
    CHECK_FD("open.fifo_writer_without_reader", open("fifo", O_WRONLY | O_NONBLOCK));
    CHECK("mknod.regular", mknod("mkreg", S_IFREG | 0600, 0));
    CHECK_STAT("mknod.regular_stat", stat("mkreg", ST));
    CHECK("mknod.socket", mknod("mksock", S_IFSOCK | 0600, 0));
    CHECK_STAT("mknod.socket_stat", stat("mksock", ST));
    CHECK("mknod.char_device", mknod("mkchr", S_IFCHR | 0600, makedev(1, 3)));
    CHECK("mknod.block_device", mknod("mkblk", S_IFBLK | 0600, makedev(7, 0)));
    int dfd = open("sub", O_RDONLY | O_DIRECTORY);
    CHECK("mknodat.dirfd_fifo", mknodat(dfd, "fifo2", S_IFIFO | 0600, 0));
    CHECK_STAT("mknodat.dirfd_fifo_stat", stat("sub/fifo2", ST));
    close(dfd);
}

static void inotify_family(void) {
    setup(mkdir("watched", 0755) == 0, "mkdir watched");
    int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    CHECK("inotify_add_watch.dir", inotify_add_watch(in, "watched", IN_CREATE | IN_DELETE | IN_MOVED_TO));
    CHECK("inotify_add_watch.enoent", inotify_add_watch(in, "missing", IN_CREATE));
    CHECK("inotify_add_watch.onlydir_on_file", inotify_add_watch(in, "f", IN_ONLYDIR | IN_MODIFY));
    CHECK("inotify_add_watch.dont_follow_symlink", inotify_add_watch(in, "lnk", IN_DONT_FOLLOW | IN_ATTRIB));
    write_file("watched/born", "b", 0644);
    setup(rename("watched/born", "watched/renamed") == 0, "rename in watched");
    setup(unlink("watched/renamed") == 0, "unlink in watched");
    lchown("lnk", 0, 0);
    char buf[4096] __attribute__((aligned(8)));
    long n = CALL(read(in, buf, sizeof buf));
    char events[512] = "";
    for (long i = 0; n > 0 && i < n;) {
        struct inotify_event *ev = (struct inotify_event *)(buf + i);
        const char *what = (ev->mask & IN_CREATE) ? "create" : (ev->mask & IN_DELETE) ? "delete"
                           : (ev->mask & IN_MOVED_TO) ? "moved_to" : (ev->mask & IN_ATTRIB) ? "attrib" : "other";
        char one[128];
        snprintf(one, sizeof one, "wd%d:%s:%s ", ev->wd, what, ev->len ? ev->name : "-");
        strcat(events, one);
        i += sizeof *ev + ev->len;
    }
    out("inotify.events", "%s", n < 0 ? res(n, errno) : events);
    close(in);
}

/* Runs a program with execve in a child and reports its output and status. */
static void exec_line(const char *name, int dfd, const char *path, char *const argv[], int flags) {
    int p[2];
    setup(pipe(p) == 0, "pipe");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        char *envp[] = {"PATH=/usr/bin:/bin", NULL};
        if (dfd == -1)
            execve(path, argv, envp);
        else
            syscall(SYS_execveat, dfd, path, argv, envp, flags);
        /* Report the error through the exit status. */
        _exit(100 + errno);
    }
    close(p[1]);
    char buf[256] = {0};
    size_t got = 0;
    ssize_t n;
    while (got < sizeof buf - 1 && (n = read(p[0], buf + got, sizeof buf - 1 - got)) > 0)
        got += n;
    close(p[0]);
    int status;
    waitpid(pid, &status, 0);
    buf[strcspn(buf, "\n")] = 0;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (code >= 100)
        out(name, "-1 %s", ename(code - 100));
    else
        out(name, "exit=%d out='%s'", code, buf);
}

static void exec_family(void) {
    write_file("script.sh", "#!/bin/sh\necho script-ran \"$0\" \"$1\"\n", 0755);
    write_file("noexec.sh", "#!/bin/sh\necho should-not-run\n", 0644);
    write_file("badinterp.sh", "#!/nonexistent/sh\necho x\n", 0755);
    write_file("sub/nested.sh", "#!/bin/sh\necho nested \"$(pwd)\"\n", 0755);
    char *args[] = {"script.sh", "arg1", NULL};
    exec_line("execve.shebang_relative", -1, "./script.sh", args, 0);
    char abs[PATH_MAX];
    getcwd(abs, sizeof abs);
    strcat(abs, "/script.sh");
    exec_line("execve.shebang_absolute", -1, abs, args, 0);
    setup(symlink("script.sh", "script-link") == 0, "symlink script-link");
    exec_line("execve.through_symlink", -1, "./script-link", args, 0);
    exec_line("execve.not_executable", -1, "./noexec.sh", args, 0);
    exec_line("execve.missing_interpreter", -1, "./badinterp.sh", args, 0);
    exec_line("execve.enoent", -1, "./missing", args, 0);
    exec_line("execve.directory", -1, "./sub", args, 0);
    char *true_args[] = {"true", NULL};
    exec_line("execve.binary", -1, "/usr/bin/true", true_args, 0);
    int dfd = open("sub", O_RDONLY | O_DIRECTORY);
    char *nargs[] = {"nested.sh", NULL};
    exec_line("execveat.dirfd_script", dfd, "nested.sh", nargs, 0);
    int tfd = open("/usr/bin/true", O_RDONLY);
    exec_line("execveat.empty_path_binary", tfd, "", true_args, AT_EMPTY_PATH);
    close(tfd);
    close(dfd);
}

/* ---------------------------------------------------------------------------------------------- */

static void suite(const char *dir) {
    label = dir;
    int before = nchecks;
    setup(mkdir(dir, 0755) == 0, "mkdir of the fresh working directory");
    setup(chdir(dir) == 0, "chdir to the working directory");
    open_family();
    stat_family();
    access_family();
    readlink_family(dir);
    mkdir_rmdir();
    unlink_family();
    rename_family();
    link_symlink();
    chmod_chown();
    utimes_family();
    truncate_family();
    cwd_family(dir);
    statfs_family();
    xattr_family();
    unix_sockets(dir);
    mknod_family();
    inotify_family();
    exec_family();
    printf("%s: %d checks\n", dir, nchecks - before);
}

/* ---------------------------------------------------------------------------------------------- */

static void forbidden_line(const char *name, long r, int e) {
    printf("forbidden %s: %s\n", name, r >= 0 ? (r == 0 ? "0" : "ok") : res(r, e));
    nchecks++;
}

#define FORBID(name, expr)              \
    do {                                \
        long r_ = CALL(expr);           \
        int e_ = errno;                 \
        forbidden_line(name, r_, e_);   \
    } while (0)

static void forbidden(void) {
    label = "forbidden";
    char zero[256];
    memset(zero, 0, sizeof zero);
    FORBID("io_uring_setup", syscall(SYS_io_uring_setup, 1, zero));
    /* PTRACE_ATTACH to the sandbox's init; PTRACE_TRACEME from a child of ours. */
    FORBID("ptrace_attach", syscall(SYS_ptrace, PTRACE_ATTACH, 1, 0, 0));
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        long r = CALL(syscall(SYS_ptrace, PTRACE_TRACEME, 0, 0, 0));
        forbidden_line("ptrace_traceme", r, errno);
        fflush(stdout);
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    nchecks++;
    FORBID("bpf", syscall(SYS_bpf, 0 /* BPF_MAP_CREATE */, zero, 72));
    {
        /* A software clock counter on ourselves: harmless if it were ever allowed. */
        struct {
            unsigned type, size;
            unsigned long long config;
            char rest[112];
        } attr;
        memset(&attr, 0, sizeof attr);
        attr.type = 1; /* PERF_TYPE_SOFTWARE */
        attr.size = 128;
        attr.config = 0; /* PERF_COUNT_SW_CPU_CLOCK */
        FORBID("perf_event_open", syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0));
    }
    FORBID("userfaultfd", syscall(SYS_userfaultfd, O_CLOEXEC));
    FORBID("keyctl", syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3 /* session */, 0));
    FORBID("add_key", syscall(SYS_add_key, "user", "fnbox", "x", 1, -3));
    FORBID("mount", syscall(SYS_mount, "none", "/mnt", "tmpfs", 0, NULL));
    FORBID("umount2", syscall(SYS_umount2, "/proc", 2 /* MNT_DETACH */));
    FORBID("pivot_root", syscall(SYS_pivot_root, "/mnt", "/mnt"));
    FORBID("fsopen", syscall(SYS_fsopen, "tmpfs", 0));
    FORBID("open_tree", syscall(SYS_open_tree, AT_FDCWD, "/usr", 1 /* OPEN_TREE_CLONE */));
    FORBID("unshare_newuser", syscall(SYS_unshare, CLONE_NEWUSER));
    FORBID("unshare_newns", syscall(SYS_unshare, CLONE_NEWNS));
    {
        fflush(stdout);
        long r = CALL(syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0));
        if (r == 0)
            _exit(0);
        forbidden_line("clone_newuser", r, errno);
        if (r > 0)
            waitpid((pid_t)r, NULL, 0);
    }
    {
        int fd = open("/proc/self/ns/uts", O_RDONLY);
        FORBID("setns", syscall(SYS_setns, fd, 0));
        close(fd);
    }
    /* Invalid magic numbers: if the call ever reached the kernel it would fail with EINVAL. */
    FORBID("reboot", syscall(SYS_reboot, 0, 0, 0, NULL));
    {
        /* CLOCK_MONOTONIC cannot be set: EINVAL if the call ever reached the kernel. */
        struct timespec ts = {1, 0};
        FORBID("clock_settime", syscall(SYS_clock_settime, CLOCK_MONOTONIC, &ts));
        struct timeval tv = {1, 0};
        FORBID("settimeofday", syscall(SYS_settimeofday, &tv, NULL));
    }
    FORBID("init_module", syscall(SYS_init_module, NULL, 0, ""));
    FORBID("finit_module", syscall(SYS_finit_module, -1, "", 0));
    FORBID("delete_module", syscall(SYS_delete_module, "fnbox_none", 0));
    FORBID("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0));
    FORBID("kexec_file_load", syscall(SYS_kexec_file_load, -1, -1, 0, "", 0));
    {
        char handle[128];
        memset(handle, 0, sizeof handle);
        FORBID("open_by_handle_at", syscall(SYS_open_by_handle_at, AT_FDCWD, handle, O_RDONLY));
    }
    {
        char buf[8];
        struct iovec local = {buf, sizeof buf}, remote = {(void *)0x400000, sizeof buf};
        FORBID("process_vm_readv_init", syscall(SYS_process_vm_readv, 1, &local, 1, &remote, 1, 0));
    }
    FORBID("socket_packet", socket(AF_PACKET, SOCK_RAW, 0));
    FORBID("socket_raw_inet", socket(AF_INET, SOCK_RAW, IPPROTO_ICMP));
    FORBID("swapon", syscall(SYS_swapon, "/nonexistent", 0));
    FORBID("acct", syscall(SYS_acct, NULL));
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    umask(022);
    alarm(120);
    if (argc < 2) {
        fprintf(stderr, "usage: conformance DIR... | conformance --forbidden\n");
        return 2;
    }
    if (strcmp(argv[1], "--forbidden") == 0) {
        forbidden();
    } else {
        for (int i = 1; i < argc; i++)
            suite(argv[i]);
    }
    printf("conformance: complete, %d checks\n", nchecks);
    return 0;
}
