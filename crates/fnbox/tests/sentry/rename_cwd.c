/* A process stats a file by a path relative to its working directory while another renames
 * an ancestor of that directory back and forth. Linux finds the file every time (a working
 * directory is a directory, not a path); so must the Sentry, whose workers may answer the two
 * processes at once. Prints "failures F stats S renames R". */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

int main(void) {
  if (mkdir("/tmp/r", 0755) || mkdir("/tmp/r/x", 0755) || mkdir("/tmp/r/x/in", 0755)) { perror("mkdir"); return 2; }
  int fd = open("/tmp/r/x/in/file", O_CREAT | O_WRONLY, 0644);
  if (fd < 0) { perror("open"); return 2; }
  close(fd);
  if (chdir("/tmp/r/x/in")) { perror("chdir"); return 2; } /* before any rename: the child's */
  int p[2];
  if (pipe(p)) return 2;
  pid_t child = fork();
  if (child == 0) {
    close(p[0]);
    long fails = 0, stats = 0;
    struct stat st;
    double end = now() + 1.5;
    while (now() < end) {
      for (int i = 0; i < 100; i++, stats++)
        if (stat("file", &st) != 0) fails++;
    }
    dprintf(p[1], "%ld %ld\n", fails, stats);
    _exit(0);
  }
  close(p[1]);
  long renames = 0;
  int status;
  while (waitpid(child, &status, WNOHANG) == 0) {
    if (rename("/tmp/r/x", "/tmp/r/y") || rename("/tmp/r/y", "/tmp/r/x")) { perror("rename"); return 2; }
    renames += 2;
  }
  char buf[64] = {0};
  long fails, stats;
  if (read(p[0], buf, sizeof buf - 1) <= 0 || sscanf(buf, "%ld %ld", &fails, &stats) != 2) {
    fprintf(stderr, "rename_cwd: no count from the child (status %d)\n", status);
    return 2;
  }
  printf("failures %ld stats %ld renames %ld\n", fails, stats, renames);
  return 0;
}
