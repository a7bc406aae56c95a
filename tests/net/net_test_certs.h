/* Test helper: certificates made at test time with deploy/gen-certs.sh, in
 * FRL_BINARY_DIR/test-certs/<name> (a CA, server, clients alice and bob)
 * and <name>/other (an unrelated CA with its own server and alice). */
#ifndef FRL_NET_TEST_CERTS_H
#define FRL_NET_TEST_CERTS_H

#include <stdio.h>
#include <stdlib.h>

static char test_certs_path[512];

/* Returns the directory; aborts the test run if the script fails. */
static const char *test_certs_make(const char *name)
{
    char cmd[2048];
    snprintf(test_certs_path, sizeof test_certs_path, "%s/test-certs/%s", FRL_BINARY_DIR, name);
    snprintf(cmd, sizeof cmd,
             "'%s/deploy/gen-certs.sh' '%s' alice bob >/dev/null 2>&1 && "
             "'%s/deploy/gen-certs.sh' '%s/other' alice >/dev/null 2>&1",
             FRL_SOURCE_DIR, test_certs_path, FRL_SOURCE_DIR, test_certs_path);
    if (system(cmd) != 0) {
        fprintf(stderr, "test: deploy/gen-certs.sh failed for %s\n", test_certs_path);
        exit(1);
    }
    return test_certs_path;
}

/* dir/file into a static rotating buffer (8 slots). */
static const char *test_cert_file(const char *file)
{
    static char bufs[8][600];
    static int slot;
    char *b = bufs[slot++ % 8];
    snprintf(b, sizeof bufs[0], "%s/%s", test_certs_path, file);
    return b;
}

#endif
