/* One thread stats files by paths relative to the working directory while another thread of
 * the same process (sharing it) changes it between two directories, each holding a marker file
 * of its own. Once a chdir has returned, Linux resolves every relative path from the new
 * directory; so must the Sentry, whose workers may answer the two threads at once (a working
 * directory read while the chdir was answered must not be cached for after it).
 * Prints "failures F checks C chdirs D". */
#include <pthread.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *dirs[2] = {"/tmp/c/d0", "/tmp/c/d1"};
static const char *marks[2] = {"m0", "m1"};
#define CHECKERS 3
static long gen, busy = 1, stop, fails, checks;

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static void *checker(void *arg) {
  (void)arg;
  struct stat st;
  while (!__atomic_load_n(&stop, __ATOMIC_SEQ_CST)) {
    long b1 = __atomic_load_n(&busy, __ATOMIC_SEQ_CST), g1 = __atomic_load_n(&gen, __ATOMIC_SEQ_CST);
    int r = stat(marks[g1 % 2], &st);
    long g2 = __atomic_load_n(&gen, __ATOMIC_SEQ_CST), b2 = __atomic_load_n(&busy, __ATOMIC_SEQ_CST);
    if (!b1 && !b2 && g1 == g2) {
      __atomic_add_fetch(&checks, 1, __ATOMIC_SEQ_CST);
      if (r != 0) __atomic_add_fetch(&fails, 1, __ATOMIC_SEQ_CST);
    }
  }
  return NULL;
}

int main(void) {
  if (mkdir("/tmp/c", 0755) || mkdir(dirs[0], 0755) || mkdir(dirs[1], 0755)) { perror("mkdir"); return 2; }
  for (int i = 0; i < 2; i++) {
    char p[64];
    snprintf(p, sizeof p, "%s/%s", dirs[i], marks[i]);
    FILE *f = fopen(p, "w");
    if (!f) { perror("fopen"); return 2; }
    fclose(f);
  }
  if (chdir(dirs[0])) { perror("chdir"); return 2; }
  __atomic_store_n(&busy, 0, __ATOMIC_SEQ_CST);
  pthread_t t[CHECKERS];
  for (int i = 0; i < CHECKERS; i++)
    if (pthread_create(&t[i], NULL, checker, NULL)) return 2;
  struct stat st;
  long chdirs = 0;
  double end = now() + 2.0;
  for (long i = 1; now() < end; i++) {
    for (double until = now() + 300e-6; now() < until;) {} /* a window for checked stats */
    __atomic_store_n(&busy, 1, __ATOMIC_SEQ_CST);
    if (chdir(dirs[i % 2])) { perror("chdir"); return 2; }
    stat("/", &st); /* a call of this thread's: its chdir has finished */
    __atomic_store_n(&gen, i, __ATOMIC_SEQ_CST);
    __atomic_store_n(&busy, 0, __ATOMIC_SEQ_CST);
    chdirs++;
  }
  __atomic_store_n(&stop, 1, __ATOMIC_SEQ_CST);
  for (int i = 0; i < CHECKERS; i++) pthread_join(t[i], NULL);
  printf("failures %ld checks %ld chdirs %ld\n", fails, checks, chdirs);
  return 0;
}
