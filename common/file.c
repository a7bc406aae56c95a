#define _POSIX_C_SOURCE 200809L
#include "common/frl_file.h"
#include "common/frl_error.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int frl_file_read_all(const char *path, size_t max_len, uint8_t **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? FRL_ENOENT : FRL_EIO;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return FRL_EIO;
    }
    if ((uint64_t)st.st_size > max_len) {
        close(fd);
        return FRL_ETOOBIG;
    }
    size_t len = (size_t)st.st_size;
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) {
        close(fd);
        return FRL_ENOMEM;
    }
    size_t got = 0;
    while (got < len) {
        ssize_t r = read(fd, buf + got, len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            free(buf);
            close(fd);
            return FRL_EIO;
        }
        got += (size_t)r;
    }
    close(fd);
    *out = buf;
    *out_len = len;
    return 0;
}

static int write_full(int fd, const uint8_t *p, size_t len)
{
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return FRL_EIO;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int frl_file_write_atomic(const char *path, const void *data, size_t len)
{
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 32);
    char *dircopy = strdup(path);
    int rc = FRL_ENOMEM;
    int fd = -1;
    if (!tmp || !dircopy)
        goto done;
    snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
    rc = FRL_EIO;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        goto done;
    if (write_full(fd, data, len) != 0 || fsync(fd) != 0) {
        close(fd);
        unlink(tmp);
        goto done;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        goto done;
    }
    int dfd = open(dirname(dircopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    rc = 0;
done:
    free(tmp);
    free(dircopy);
    return rc;
}

int frl_file_mkdirs(const char *path)
{
    char *p = strdup(path);
    if (!p)
        return FRL_ENOMEM;
    for (char *s = p + 1; *s; s++) {
        if (*s == '/') {
            *s = '\0';
            if (mkdir(p, 0755) != 0 && errno != EEXIST) {
                free(p);
                return FRL_EIO;
            }
            *s = '/';
        }
    }
    int rc = (mkdir(p, 0700) != 0 && errno != EEXIST) ? FRL_EIO : 0;
    free(p);
    return rc;
}

static long status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return 0;
    char line[256];
    long v = 0;
    size_t klen = strlen(key);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, klen) == 0) {
            v = strtol(line + klen, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

long frl_peak_rss_kb(void)
{
    return status_kb("VmHWM:");
}

long frl_rss_kb(void)
{
    return status_kb("VmRSS:");
}

double frl_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
