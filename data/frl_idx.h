/* IDX data files (the MNIST / Fashion-MNIST / EMNIST format) and the data
 * set they hold.
 *
 * IDX layout (all integers big-endian):
 *
 *   magic   = 0x00 0x00 <type> <ndim>     type 0x08 = unsigned byte
 *   dims    = ndim x uint32                (1 <= ndim <= 4, every dim > 0)
 *   payload = dims[0] * ... * dims[ndim-1] elements, row-major
 *
 * Files may be plain or gzip-compressed; gzip is detected by its magic bytes
 * (1f 8b), never by the file name. Concatenated gzip members are accepted
 * (as gzip(1) does); anything else after the last member is an error.
 *
 * Only type 0x08 (unsigned byte) is read. The other IDX element types are
 * well-formed but give FRL_EUNSUPPORTED; an unknown type or bad magic gives
 * FRL_EFORMAT.
 *
 * Error codes shared by every reader here:
 *   FRL_ENOENT       the file does not exist
 *   FRL_EIO          it cannot be opened or read
 *   FRL_EFORMAT      bad magic, ndim not in 1..4, a zero dim, the wrong number
 *                    of dims for the call, bytes after the payload, or a corrupt
 *                    gzip stream (including a CRC or length check failure)
 *   FRL_ETRUNC       the file (or gzip stream) ends before the header or
 *                    payload is complete
 *   FRL_ETOOBIG      the payload would exceed FRL_IDX_MAX_BYTES
 *   FRL_EUNSUPPORTED a valid IDX element type other than unsigned byte
 *   FRL_ENOMEM       an allocation failed
 *
 * Memory grows with the data actually read, not with the size a header
 * claims: a 16-byte file that announces 2 GB fails with FRL_ETRUNC after
 * allocating at most a few MB. */
#ifndef FRL_IDX_H
#define FRL_IDX_H

#include <stddef.h>
#include <stdint.h>

/* Largest payload (in bytes) any reader here accepts: 2 GiB. EMNIST "byclass"
 * (the largest public IDX set, 697,932 x 28 x 28) is 547 MB. */
#define FRL_IDX_MAX_BYTES ((uint64_t)1 << 31)

#define FRL_FMNIST_DIR "/usr/share/datasets/fashion-mnist"

typedef struct frl_dataset_s {
    uint32_t n;          /* number of examples */
    uint32_t rows, cols; /* image size, e.g. 28 x 28 */
    uint8_t *images;     /* (n, rows, cols) pixels, row-major; caller frees via frl_dataset_free */
    uint8_t *labels;     /* (n) labels */
    uint32_t n_classes;  /* max label + 1 over the WHOLE label file (10 for Fashion-MNIST), even when a selection was loaded */
} frl_dataset_t;

/* Reads an IDX file of unsigned bytes with 1..4 dims. On success *ndim and
 * dims[0..*ndim) hold the shape (unused dims are set to 0), *data is a new
 * malloc'd buffer of *len = product(dims) bytes that the caller frees.
 * The payload size must match the header exactly. On failure *data is NULL,
 * *len and *ndim are 0, and the codes are those listed at the top of this
 * file. */
int frl_idx_read(const char *path, uint32_t *ndim, uint32_t dims[4], uint8_t **data, size_t *len);

/* Loads an image file (3 dims: n, rows, cols) and its label file (1 dim: n).
 *
 * select == NULL: loads all n examples (n_select is ignored).
 * select != NULL: keeps only examples select[0..n_select), in that order
 *   (duplicates are allowed and copied); every index must be < n, else
 *   FRL_ERANGE before anything is read past the headers. Both files are
 *   streamed: memory is O(n_select) (plus fixed 64 KiB buffers and zlib's
 *   state), never O(file). n_select == 0 gives an empty data set (n = 0,
 *   images = labels = NULL) whose n_classes is still set.
 *
 * Both files are always read to their end, so a selection gets exactly the
 * same validation (size, trailing bytes, gzip CRC) as a full load.
 * Image and label counts must match (FRL_EMISMATCH). Labels are unsigned
 * bytes, so they are < 256 by construction. On failure *out is zeroed. */
int frl_dataset_load(const char *images_path, const char *labels_path, const uint32_t *select, uint32_t n_select,
                     frl_dataset_t *out);

/* Reads just a label file (1 dim): *labels is a new malloc'd array of *n
 * bytes (caller frees). Used to partition before loading a shard. On
 * failure *labels is NULL and *n is 0. */
int frl_labels_load(const char *labels_path, uint8_t **labels, uint32_t *n);

/* Fills the image and label paths of split "train" or "t10k" of an
 * MNIST-layout directory (`dir` NULL = FRL_FMNIST_DIR):
 * <dir>/<split>-images-idx3-ubyte.gz and <dir>/<split>-labels-idx1-ubyte.gz.
 * For each file, if the .gz is missing but the unzipped name exists, the
 * unzipped name is used. Returns 0 when both files exist; FRL_ENOENT when
 * one is missing (the paths are still filled, with the .gz names, so the
 * caller can report them); FRL_EINVAL for another split name; FRL_ETOOBIG
 * when a path does not fit its buffer. */
int frl_mnist_paths(const char *dir, const char *split, char *images, size_t images_cap, char *labels, size_t labels_cap);

/* Convenience: frl_mnist_paths + frl_dataset_load. */
int frl_mnist_load(const char *dir, const char *split, const uint32_t *select, uint32_t n_select, frl_dataset_t *out);

/* Frees the buffers and zeroes *d. Safe on a zeroed or already freed data
 * set, and on NULL. */
void frl_dataset_free(frl_dataset_t *d);

#endif
