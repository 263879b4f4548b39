/* One thread changes the process's umask back and forth while others create directories. Once
 * umask() has returned, Linux creates every file with the new mask (the umask is shared by the
 * process's threads); so must the Sentry, whose workers may answer the threads at once (a
 * mask read while the umask call was answered must not be kept for after it).
 * Prints "failures F checks C umasks U". */
#include <pthread.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAKERS 3
static const mode_t masks[2] = {022, 077};
static long gen, busy = 1, stop, fails, checks;

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static void *maker(void *arg) {
  long me = (long)arg;
  char p[64];
  struct stat st;
  for (long n = 0; !__atomic_load_n(&stop, __ATOMIC_SEQ_CST); n++) {
    snprintf(p, sizeof p, "/tmp/u/%ld-%ld", me, n);
    long b1 = __atomic_load_n(&busy, __ATOMIC_SEQ_CST), g1 = __atomic_load_n(&gen, __ATOMIC_SEQ_CST);
    int r = mkdir(p, 0777);
    long g2 = __atomic_load_n(&gen, __ATOMIC_SEQ_CST), b2 = __atomic_load_n(&busy, __ATOMIC_SEQ_CST);
    if (r != 0 || stat(p, &st) != 0) { perror(p); __atomic_add_fetch(&fails, 1000000, __ATOMIC_SEQ_CST); return NULL; }
    if (!b1 && !b2 && g1 == g2) {
      __atomic_add_fetch(&checks, 1, __ATOMIC_SEQ_CST);
      if ((st.st_mode & 0777) != (0777 & ~masks[g1 % 2])) __atomic_add_fetch(&fails, 1, __ATOMIC_SEQ_CST);
    }
    rmdir(p);
  }
  return NULL;
}

int main(void) {
  if (mkdir("/tmp/u", 0777)) { perror("mkdir"); return 2; }
  umask(masks[0]);
  __atomic_store_n(&busy, 0, __ATOMIC_SEQ_CST);
  pthread_t t[MAKERS];
  for (long i = 0; i < MAKERS; i++)
    if (pthread_create(&t[i], NULL, maker, (void *)i)) return 2;
  long umasks = 0;
  struct stat st;
  double end = now() + 2.0;
  for (long i = 1; now() < end; i++) {
    __atomic_store_n(&busy, 1, __ATOMIC_SEQ_CST);
    umask(masks[i % 2]);
    stat("/", &st); /* a call of this thread's after it, as programs make */
    __atomic_store_n(&gen, i, __ATOMIC_SEQ_CST);
    __atomic_store_n(&busy, 0, __ATOMIC_SEQ_CST);
    umasks++;
    for (double until = now() + 300e-6; now() < until;) {} /* a window for checked creations */
  }
  __atomic_store_n(&stop, 1, __ATOMIC_SEQ_CST);
  for (int i = 0; i < MAKERS; i++) pthread_join(t[i], NULL);
  printf("failures %ld checks %ld umasks %ld\n", fails, checks, umasks);
  return 0;
}
