/* Splitting a training set across federated clients: IID, Dirichlet(alpha)
 * non-IID (the FRL reference's split), and label-sorted shards.
 *
 * Every split is a pure function of (spec, labels, n_classes, n_clients,
 * seed): the randomness comes from the single stream
 * frl_rng_init(seed, FRL_STREAM_PARTITION, 0, 0), so any machine that has the
 * federation seed and the label file rebuilds the same partition, and a
 * client can work out its own shard before it loads any image.
 *
 * In every split, each client's indices are sorted ascending (a canonical
 * form: the shard is the set; mini-batch order comes from the client's own
 * shuffle stream). */
#ifndef FRL_PARTITION_H
#define FRL_PARTITION_H

#include <stddef.h>
#include <stdint.h>

typedef struct frl_partition_s {
    uint32_t n_clients;
    uint32_t *offsets; /* (n_clients + 1); client u owns indices[offsets[u] .. offsets[u+1]) */
    uint32_t *indices; /* (offsets[n_clients]) example indices into the training set */
} frl_partition_t;

typedef enum { FRL_PART_IID = 0, FRL_PART_DIRICHLET = 1, FRL_PART_SHARDS = 2 } frl_part_kind;

typedef struct {
    frl_part_kind kind;
    double alpha;               /* Dirichlet concentration in [FRL_PART_MIN_ALPHA, FRL_PART_MAX_ALPHA] (FRL_PART_DIRICHLET) */
    uint32_t shards_per_client; /* >= 1 (FRL_PART_SHARDS) */
} frl_part_spec_t;

/* Accepted Dirichlet alphas. Below 1e-6 every class goes to one client
 * anyway, and the bounds keep the Gamma sampler's logs finite. */
#define FRL_PART_MIN_ALPHA 1e-6
#define FRL_PART_MAX_ALPHA 1e6

/* Largest shards_per_client that frl_part_spec_parse accepts. */
#define FRL_PART_MAX_SHARDS_PER_CLIENT 1000000u

/* Parses "iid", "dirichlet" (alpha 1.0), "dirichlet:<alpha>" (a C-locale
 * strtod number in [FRL_PART_MIN_ALPHA, FRL_PART_MAX_ALPHA], e.g.
 * "dirichlet:0.5"), "shards" (2 per client) or "shards:<k>" (decimal,
 * 1..FRL_PART_MAX_SHARDS_PER_CLIENT). Lower case, no spaces. Returns 0, or
 * FRL_EINVAL without touching *out. */
int frl_part_spec_parse(const char *text, frl_part_spec_t *out);

/* Writes the canonical text of `spec` ("iid", "dirichlet:0.5", "shards:2")
 * into buf, which frl_part_spec_parse reads back to the same spec (alpha is
 * printed with %.17g). FRL_EINVAL for an invalid spec, FRL_ETOOBIG when it
 * does not fit. */
int frl_part_spec_format(const frl_part_spec_t *spec, char *buf, size_t cap);

/* Splits examples 0..n-1 (labels[i] < n_classes, else FRL_ERANGE) across
 * n_clients >= 1 clients. `seed` is the 32-byte federation seed. Same inputs
 * give the same partition on every run. *out is filled on success (free it
 * with frl_partition_free) and zeroed on failure.
 *
 * FRL_PART_IID: a random permutation cut into n_clients contiguous parts;
 *   the first n % n_clients parts have one more example (numpy's
 *   array_split). Every example is assigned once.
 *
 * FRL_PART_DIRICHLET: the FRL reference's procedure
 *   (data/Dirichlet_noniid.py): for each class c = 0..n_classes-1 in order,
 *   shuffle that class's indices (ascending before the shuffle), draw
 *   p ~ Dir(alpha * 1_{n_clients}), then for u = 0..n_clients-1 give client u
 *   the next round(|class| * p_u) indices (round half to even, as numpy), or
 *   what is left of the class. A class with no example still draws its p.
 *   As in the reference, the rounded counts need not add up to |class|:
 *   when they fall short, the last few examples of the class stay
 *   UNASSIGNED (offsets[n_clients] < n; typically well under 1%), and when
 *   they overshoot, the last clients get less. A client may end up with no
 *   example at all (likely with small alpha and many clients).
 *   Gamma variates are Marsaglia-Tsang on top of frl_rng_unit_f64 and a
 *   Marsaglia polar normal (see partition.c); they use libm's log and exp,
 *   so the split is bit-reproducible on a given platform and libm, and may
 *   in rare cases differ by one example per affected class across libms.
 *
 * FRL_PART_SHARDS: examples sorted by (label, index), cut into
 *   n_clients * shards_per_client contiguous shards of near-equal size
 *   (sizes differ by at most 1; a shard is empty when there are more shards
 *   than examples), shard ids shuffled, and client u gets shards
 *   perm[u*k .. (u+1)*k). Every example is assigned once.
 *
 * Errors: FRL_EINVAL (NULL pointers, n_clients == 0, n_classes == 0, a bad
 * spec, n_clients * shards_per_client > UINT32_MAX), FRL_ERANGE (a label
 * >= n_classes), FRL_ENOMEM. */
int frl_partition_make(const frl_part_spec_t *spec, const uint8_t *labels, uint32_t n, uint32_t n_classes, uint32_t n_clients,
                       const uint8_t seed[32], frl_partition_t *out);

/* Frees the arrays and zeroes *p. Safe on a zeroed partition and on NULL. */
void frl_partition_free(frl_partition_t *p);

/* The partition as text, for other programs to train the same clients on
 * the same data: one line per client in id order, its example indices
 * (ascending) in decimal separated by single spaces, an empty line for a
 * client with none. *text is malloc'd (free it); FRL_ENOMEM or FRL_EINVAL
 * leave it NULL. */
int frl_partition_format(const frl_partition_t *p, char **text, size_t *len);

/* Number of examples client u owns (u < p->n_clients). */
static inline uint32_t frl_partition_size(const frl_partition_t *p, uint32_t u)
{
    return p->offsets[u + 1] - p->offsets[u];
}

/* Client u's indices (u < p->n_clients); frl_partition_size(p, u) of them. */
static inline const uint32_t *frl_partition_client(const frl_partition_t *p, uint32_t u)
{
    return p->indices + p->offsets[u];
}

#endif
