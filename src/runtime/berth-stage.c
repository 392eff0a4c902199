/*
 * berth-stage: conmon's staging mount namespace in one process (issue #19, runtime/conmon.ts
 * `Staged`, ../snapshot/README.md "The rootfs in conmon's namespace"). Built static by
 * scripts/berth-stage.sh into /usr/local/lib/berth/berth-stage; berthd falls back to busybox's
 * unshare + sh + mount (the same protocol) when it is absent.
 *
 *   berth-stage stage TARGET N [TYPE OPTIONS SOURCE]*N CONMON [ARG...]
 *     unshare(CLONE_NEWNS); / made rslave (nothing made here reaches the host); each mount made
 *     at TARGET (OPTIONS: comma-separated, the mount flags below taken out, the rest passed as the
 *     file system's data, never parsed by a shell); "mounted\n" written on fd 6, which is closed;
 *     then one line is read from stdin: "go" execs CONMON with its arguments (same pid, stdin
 *     /dev/null); anything else, or stdin closed (berthd aborted or died), exits 125 and the
 *     namespace with its mount goes.
 *   berth-stage detach-netns PID
 *     enters PID's mount namespace and lazily unmounts /run/netns there (conmon.ts
 *     `detachNetnsCopies`).
 *
 * Exit codes: 125 a staging failure (the words on stderr), 127 conmon could not be exec'd,
 * 1 detach-netns failed, 2 usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#define REPORT_FD 6

static int fail(int code, const char *what, const char *arg) {
  fprintf(stderr, "berth-stage: %s%s%s: %s\n", what, arg ? " " : "", arg ? arg : "", strerror(errno));
  return code;
}

static const struct {
  const char *name;
  unsigned long set, clear;
} FLAGS[] = {
    {"ro", MS_RDONLY, 0},        {"rw", 0, MS_RDONLY},        {"nosuid", MS_NOSUID, 0},
    {"suid", 0, MS_NOSUID},      {"nodev", MS_NODEV, 0},      {"dev", 0, MS_NODEV},
    {"noexec", MS_NOEXEC, 0},    {"exec", 0, MS_NOEXEC},      {"noatime", MS_NOATIME, 0},
    {"relatime", MS_RELATIME, 0}, {"nodiratime", MS_NODIRATIME, 0}, {"sync", MS_SYNCHRONOUS, 0},
};

/* Splits OPTIONS into mount flags and the data string (written into `data`, same size). */
static unsigned long parse_options(const char *opts, char *data) {
  unsigned long flags = 0;
  size_t n = 0;
  const char *p = opts;
  data[0] = '\0';
  while (*p) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    int known = 0;
    for (size_t i = 0; i < sizeof FLAGS / sizeof FLAGS[0]; i++)
      if (strlen(FLAGS[i].name) == len && strncmp(FLAGS[i].name, p, len) == 0) {
        flags = (flags | FLAGS[i].set) & ~FLAGS[i].clear;
        known = 1;
        break;
      }
    if (!known && len > 0) {
      if (n) data[n++] = ',';
      memcpy(data + n, p, len);
      n += len;
      data[n] = '\0';
    }
    p += len;
    if (*p == ',') p++;
  }
  return flags;
}

/* Reads one line from stdin (at most a few bytes matter); 1 when it is "go". */
static int read_go(void) {
  char buf[8];
  size_t n = 0;
  while (n < sizeof buf) {
    ssize_t r = read(0, buf + n, sizeof buf - n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return 0;
    n += (size_t)r;
    if (memchr(buf, '\n', n)) break;
  }
  return n >= 3 && memcmp(buf, "go\n", 3) == 0;
}

static int stage(int argc, char **argv) {
  if (argc < 4) return 2;
  const char *target = argv[2];
  char *endp;
  long count = strtol(argv[3], &endp, 10);
  if (*endp || count < 0 || count > 64 || argc < 4 + 3 * count + 1) {
    fprintf(stderr, "berth-stage: bad arguments\n");
    return 2;
  }
  char **m = argv + 4;
  char **conmon = m + 3 * count;
  if (unshare(CLONE_NEWNS) < 0) return fail(125, "unshare", "--mount");
  if (mount("none", "/", NULL, MS_REC | MS_SLAVE, NULL) < 0) return fail(125, "make / rslave", NULL);
  for (long i = 0; i < count; i++, m += 3) {
    char *data = malloc(strlen(m[1]) + 1);
    if (!data) return fail(125, "malloc", NULL);
    unsigned long flags = parse_options(m[1], data);
    if (mount(m[2], target, m[0], flags, data[0] ? data : NULL) < 0) {
      fprintf(stderr, "berth-stage: mount %s on %s: %s\n", m[0], target, strerror(errno));
      return 125;
    }
    free(data);
  }
  static const char said[] = "mounted\n";
  if (write(REPORT_FD, said, sizeof said - 1) != (ssize_t)(sizeof said - 1)) return fail(125, "report", NULL);
  close(REPORT_FD);
  if (!read_go()) return 125;
  int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null < 0 || dup2(null, 0) < 0) return fail(125, "open", "/dev/null");
  close(null);
  execv(conmon[0], conmon);
  return fail(127, "exec", conmon[0]);
}

static int detach_netns(int argc, char **argv) {
  if (argc != 3) return 2;
  char path[64];
  char *endp;
  long pid = strtol(argv[2], &endp, 10);
  if (*endp || pid <= 0) return 2;
  snprintf(path, sizeof path, "/proc/%ld/ns/mnt", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(1, "open", path);
  if (setns(fd, CLONE_NEWNS) < 0) return fail(1, "setns", path);
  if (umount2("/run/netns", MNT_DETACH) < 0) return fail(1, "umount", "/run/netns");
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "stage") == 0) return stage(argc, argv);
  if (argc >= 2 && strcmp(argv[1], "detach-netns") == 0) return detach_netns(argc, argv);
  if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
    puts("berth-stage 1");
    return 0;
  }
  fprintf(stderr, "usage: berth-stage stage TARGET N [TYPE OPTIONS SOURCE]... CONMON [ARG...]\n"
                  "       berth-stage detach-netns PID\n");
  return 2;
}
