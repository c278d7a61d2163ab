/* The sandbox ("pause") container of the test node: it holds a Pod's namespaces and must block
 * until the runtime stops it. The upstream image (registry.k8s.io/pause) cannot be pulled here, so
 * scripts/k8s/node.sh builds this one statically and packs it as the node's sandbox image.
 * As PID 1 it reaps orphans (a Pod sharing its process namespace hands them here) and exits on
 * SIGINT or SIGTERM, as the upstream pause does. */
#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) {
  (void)sig;
  _exit(0);
}

static void reap(int sig) {
  int saved = errno;
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
  errno = saved;
}

int main(void) {
  struct sigaction term = {.sa_handler = stop};
  struct sigaction child = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP};
  sigaction(SIGINT, &term, NULL);
  sigaction(SIGTERM, &term, NULL);
  sigaction(SIGCHLD, &child, NULL);
  for (;;) pause();
}
