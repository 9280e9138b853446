/* The sampling direction of simkit's rational-quadratic spline couplings, one loop per
 * value, for CPU sampling (simkit/surrogates/fast_flow.py, BENCHMARKS.md "A compiled
 * spline stage").
 *
 * The torch path of fast_flow.py evaluates the conditional spline in ~40 tensor
 * operations, each a pass over a batch's (rows x 2 x columns x bins) numbers; most of
 * its time goes to writing and re-reading those intermediate tensors. Here a chunk of
 * rows small enough for the L1/L2 cache goes through three loops:
 *   1. exp of every bin logit (vectorized: the softmax weights before normalization);
 *   2. per value: the totals and cumulative sums, the bin search on the searched axis,
 *      the bin's edges and sizes on both axes and its two derivative logits, into
 *      arrays (one per quantity);
 *   3. over those arrays (vectorized): the derivatives (softplus) and the root of the
 *      rational-quadratic equation (Durkan et al. 2019, arXiv:1906.04032, eq. 6-8).
 * The arithmetic is that of fast_flow.conditional_bins and fast_flow.rq_transform;
 * numbers agree with the torch path to float32 rounding (tests/simkit/test_fast_flow.py).
 *
 * Built at install time as an optional extension (setup.py); without a C compiler
 * simkit keeps the torch path. The functions take raw addresses of contiguous float32
 * tensors: the Python wrapper in fast_flow.py checks dtype, device, shape and
 * contiguity before calling, and the loops run without the GIL.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>

#define MAX_BINS 64
/* Rows per chunk: a chunk's bin weights (rows x 2 x D x K floats) stay in L1/L2. */
#define CHUNK_ROWS 32

#if defined(__GNUC__)
#define INLINE static inline __attribute__((always_inline))
#else
#define INLINE static inline
#endif

/* ------------------------------------------------------------------ elementary functions
 * Branch-free, so that loops over arrays vectorize (SSE2 and up); float32 accuracy. */

/* exp(x) for x in [-87.3, 88.7], relative error ~1e-7 (Cody-Waite range reduction and
 * the Cephes single-precision polynomial). Below -87.3 it returns 0 (float32 underflows
 * there), above 88.7 exp(88.7): callers check the totals they form (bin_total_ok). */
INLINE float exp_f32(float x) {
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
    const float round = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float xc = x < -87.3f ? -87.3f : x;
    xc = xc > 88.7f ? 88.7f : xc;
    float n = (xc * log2e + round) - round;
    float r = xc - n * ln2_hi;
    r = r - n * ln2_lo;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union { int32_t i; float f; } scale;
    scale.i = ((int32_t)n + 127) * (1 << 23);
    float y = p * scale.f;
    return x < -87.3f ? 0.0f : y;
}

/* log(x) for normal x > 0 (the Cephes single-precision polynomial on the mantissa in
 * [sqrt(1/2), sqrt(2))); 0 gives -inf, a negative number or NaN gives NaN, +inf gives
 * +inf. Subnormal x is not handled (the arguments here are >= ~1e-9). */
INLINE float log_f32(float x) {
    union { float f; int32_t i; } bits = {x};
    float e = (float)(((bits.i >> 23) & 0xff) - 126);
    bits.i = (bits.i & 0x007fffff) | 0x3f000000; /* mantissa in [0.5, 1) */
    float m = bits.f;
    int small = m < 0.707106781186547524f;
    e = small ? e - 1.0f : e;
    m = small ? m + m - 1.0f : m - 1.0f;
    float z = m * m;
    float y = 7.0376836292e-2f;
    y = y * m - 1.1514610310e-1f;
    y = y * m + 1.1676998740e-1f;
    y = y * m - 1.2420140846e-1f;
    y = y * m + 1.4249322787e-1f;
    y = y * m - 1.6668057665e-1f;
    y = y * m + 2.0000714765e-1f;
    y = y * m - 2.4999993993e-1f;
    y = y * m + 3.3333331174e-1f;
    y = y * m * z;
    y += -2.12194440e-4f * e;
    y += -0.5f * z;
    float r = m + y + 0.693359375f * e;
    r = x > 0.0f ? r : (x == 0.0f ? -INFINITY : NAN);
    r = x == INFINITY ? x : r;
    return x != x ? x : r;
}

/* torch.nn.functional.softplus with its defaults (beta 1, threshold 20): log1p(exp(x)),
 * with log1p(e) = log(u) e / (u - 1), u = 1 + e (Goldberg 1991, within a few ulp). */
INLINE float softplus_f32(float x) {
    float e = exp_f32(x);
    float u = 1.0f + e;
    float log1p = u == 1.0f ? e : log_f32(u) * (e / (u - 1.0f));
    return x > 20.0f ? x : log1p;
}

/* ------------------------------------------------------------------ the three loops */

/* 1. exp of n logits: the bin weights before normalization. */
INLINE void exp_array(const float *restrict logits, float *restrict weights, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) weights[i] = exp_f32(logits[i]);
}

/* A sum of bin weights that every weight was exact for: no logit beyond exp_f32's clamps,
 * the largest weight a normal number. Outside this range (or NaN) the bins take
 * exp(logit - max), as fast_flow.conditional_bins takes torch.softmax beyond EXP_SAFE. */
INLINE int bin_total_ok(float total) { return total >= 1e-30f && total <= 1e30f; }

/* exp(logit - max logit) of one value's k bins; a NaN logit makes them NaN. */
static void shifted_weights(const float *logits, float *weights, int k) {
    float hi = logits[0];
    for (int m = 1; m < k; m++) hi = logits[m] > hi || logits[m] != logits[m] ? logits[m] : hi;
    for (int m = 0; m < k; m++) weights[m] = exp_f32(logits[m] - hi);
}

/* The bins of a chunk's values, one array per quantity (struct of arrays). */
typedef struct {
    float *x_low, *x_size, *y_low, *y_size, *d_lo, *d_hi;
} Bins;

/* 2. One value of a conditional spline: `ww`, `hw` its K width and height bin weights
 * (recomputed from the logits `wl`, `hl` with the maximum subtracted when their total
 * is out of range), `dl` its K + 1 derivative logits (outer ones pinned by the caller).
 * The inverse searches the height (y) axis. Writes the bin into slot q of `bins`, with
 * the derivative *logits* (loop 3 applies the softplus). */
INLINE void conditional_bin(float v, float *ww, float *hw, const float *wl, const float *hl,
                            const float *dl, int k, float tail, float min_w, float min_h,
                            const Bins *bins, Py_ssize_t q) {
    float two_t = 2.0f * tail;
    float w_total = 0.0f, h_total = 0.0f;
    for (int m = 0; m < k; m++) {
        w_total += ww[m];
        h_total += hw[m];
    }
    if (!bin_total_ok(w_total)) {
        shifted_weights(wl, ww, k);
        w_total = 0.0f;
        for (int m = 0; m < k; m++) w_total += ww[m];
    }
    if (!bin_total_ok(h_total)) {
        shifted_weights(hl, hw, k);
        h_total = 0.0f;
        for (int m = 0; m < k; m++) h_total += hw[m];
    }
    /* searched axis: knots (m * min_h * 2t - t) + cumsum[m - 1] * scale, the ends exact;
     * the bin is the number of interior knots at or below v (normflows' searchsorted),
     * counted without branches */
    float h_scale = (1.0f - min_h * k) * two_t / h_total;
    float h_step = min_h * two_t;
    float knots[MAX_BINS + 1], below[MAX_BINS];
    float cum = 0.0f, w_cum = 0.0f;
    knots[0] = -tail;
    for (int m = 1; m < k; m++) {
        cum += hw[m - 1];
        knots[m] = ((float)m * h_step - tail) + cum * h_scale;
    }
    knots[k] = tail;
    int bin = 0;
    for (int m = 1; m < k; m++) bin += v >= knots[m];
    /* the other axis: only the bin's own edge and size */
    for (int m = 0; m < k; m++) {
        below[m] = w_cum;
        w_cum += ww[m];
    }
    float w_scale = (1.0f - min_w * k) * two_t / w_total;
    bins->x_low[q] = below[bin] * w_scale + ((float)bin * (min_w * two_t) - tail);
    bins->x_size[q] = ww[bin] * w_scale + min_w * two_t;
    bins->y_low[q] = knots[bin];
    bins->y_size[q] = knots[bin + 1] - knots[bin];
    bins->d_lo[q] = dl[bin];
    bins->d_hi[q] = dl[bin + 1];
}

/* 3. The inverse rational-quadratic map of value q in its bin, identity outside
 * [-tail, tail]; log|dx/dy| into *ld when `with_log_det`. fast_flow.rq_transform with
 * inverse=True. */
INLINE void rq_inverse(const float *restrict values, const Bins *bins, Py_ssize_t q,
                       float tail, float *restrict out, float *restrict ld, int with_log_det) {
    float v = values[q];
    float x_low = bins->x_low[q], x_size = bins->x_size[q];
    float y_low = bins->y_low[q], y_size = bins->y_size[q];
    float d_lo = bins->d_lo[q], d_hi = bins->d_hi[q];
    int inside = (v >= -tail) & (v <= tail);
    float vc = v < -tail ? -tail : v;
    vc = vc > tail ? tail : vc;
    float delta = y_size / x_size;
    float slope_sum = d_lo + d_hi - 2.0f * delta;
    float dy = vc - y_low;
    float a = dy * slope_sum + y_size * (delta - d_lo);
    float b = y_size * d_lo - dy * slope_sum;
    float c = -delta * dy;
    float theta = (2.0f * c) / (-b - sqrtf(b * b - 4.0f * a * c));
    out[q] = inside ? theta * x_size + x_low : v;
    if (with_log_det) {
        float t1mt = theta * (1.0f - theta);
        float omt = 1.0f - theta;
        float numerator =
            delta * delta * (d_hi * theta * theta + 2.0f * delta * t1mt + d_lo * omt * omt);
        float value = log_f32(numerator) - 2.0f * log_f32(delta + slope_sum * t1mt);
        ld[q] = inside ? -value : 0.0f;
    }
}

/* Loop 3 over n values (two loops, so that each vectorizes without a branch). */
INLINE void rq_inverse_array(const float *restrict values, const Bins *bins, Py_ssize_t n,
                             float tail, float *restrict out, float *restrict ld) {
    if (ld)
        for (Py_ssize_t q = 0; q < n; q++) rq_inverse(values, bins, q, tail, out, ld, 1);
    else
        for (Py_ssize_t q = 0; q < n; q++) rq_inverse(values, bins, q, tail, out, NULL, 0);
}

/* min_derivative + softplus(logit), in place over n derivative logits. */
INLINE void derivatives(float *restrict d, Py_ssize_t n, float min_d) {
    for (Py_ssize_t q = 0; q < n; q++) d[q] = min_d + softplus_f32(d[q]);
}

/* Scratch arrays of one call: the bins of a chunk of values, and its bin weights. */
typedef struct {
    Bins bins;
    float *weights;
    float *memory;
} Scratch;

static int scratch_new(Scratch *s, Py_ssize_t values, Py_ssize_t weights) {
    s->memory = PyMem_RawMalloc(sizeof(float) * (6 * values + weights + 1));
    if (!s->memory) return 0;
    float *at = s->memory;
    float **slots[6] = {&s->bins.x_low, &s->bins.x_size, &s->bins.y_low,
                        &s->bins.y_size, &s->bins.d_lo, &s->bins.d_hi};
    for (int i = 0; i < 6; i++, at += values) *slots[i] = at;
    s->weights = at;
    return 1;
}

/* ------------------------------------------------------------------ the two splines */

typedef struct {
    const float *values, *bin_logits, *derivative_logits;
    float *out, *log_det;
    Py_ssize_t rows, columns;
    int bins;
    float tail, min_w, min_h, min_d;
} ConditionalArgs;

/* One specialization per bin count keeps the bin loops' trip count a constant. */
INLINE void conditional_rows(const ConditionalArgs *a, int k, const Scratch *s) {
    const Py_ssize_t d = a->columns;
    const Py_ssize_t per_row = 2 * d * k;
    for (Py_ssize_t first = 0; first < a->rows; first += CHUNK_ROWS) {
        Py_ssize_t last = first + CHUNK_ROWS < a->rows ? first + CHUNK_ROWS : a->rows;
        exp_array(a->bin_logits + first * per_row, s->weights, (last - first) * per_row);
        for (Py_ssize_t i = first; i < last; i++) {
            const float *row_bins = a->bin_logits + i * per_row;
            float *row_weights = s->weights + (i - first) * per_row;
            const float *row_slopes = a->derivative_logits + i * d * (k + 1);
            for (Py_ssize_t j = 0; j < d; j++)
                conditional_bin(a->values[i * d + j], row_weights + j * k,
                                row_weights + (d + j) * k, row_bins + j * k,
                                row_bins + (d + j) * k, row_slopes + j * (k + 1), k, a->tail,
                                a->min_w, a->min_h, &s->bins, (i - first) * d + j);
        }
        Py_ssize_t n = (last - first) * d;
        derivatives(s->bins.d_lo, n, a->min_d);
        derivatives(s->bins.d_hi, n, a->min_d);
        rq_inverse_array(a->values + first * d, &s->bins, n, a->tail, a->out + first * d,
                         a->log_det ? a->log_det + first * d : NULL);
    }
}

/* One build for any x86-64 and one for AVX2 + FMA, chosen when the module loads. */
static void conditional_rows_default(const ConditionalArgs *a, const Scratch *s) {
    if (a->bins == 8)
        conditional_rows(a, 8, s);
    else
        conditional_rows(a, a->bins, s);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_AVX2_BUILD 1
__attribute__((target("avx2,fma"))) static void conditional_rows_avx2(const ConditionalArgs *a,
                                                                     const Scratch *s) {
    if (a->bins == 8)
        conditional_rows(a, 8, s);
    else
        conditional_rows(a, a->bins, s);
}
#endif

static void (*conditional_rows_best)(const ConditionalArgs *, const Scratch *) =
    conditional_rows_default;

static int address(PyObject *obj, void **ptr) {
    unsigned long long value = PyLong_AsUnsignedLongLong(obj);
    if (PyErr_Occurred()) return 0;
    *ptr = (void *)(uintptr_t)value;
    return 1;
}

static int check_bins(int k) {
    if (k >= 2 && k <= MAX_BINS) return 1;
    PyErr_Format(PyExc_ValueError, "bins must be in [2, %d], got %d", MAX_BINS, k);
    return 0;
}

static PyObject *conditional_inverse_py(PyObject *Py_UNUSED(self), PyObject *args) {
    ConditionalArgs a;
    void *values, *bin_logits, *slopes, *out, *log_det;
    PyObject *o_values, *o_bins, *o_slopes, *o_out, *o_log_det;
    if (!PyArg_ParseTuple(args, "OOOOOnniffff", &o_values, &o_bins, &o_slopes, &o_out,
                          &o_log_det, &a.rows, &a.columns, &a.bins, &a.tail, &a.min_w,
                          &a.min_h, &a.min_d))
        return NULL;
    if (!address(o_values, &values) || !address(o_bins, &bin_logits) ||
        !address(o_slopes, &slopes) || !address(o_out, &out) || !address(o_log_det, &log_det))
        return NULL;
    if (!check_bins(a.bins)) return NULL;
    a.values = values;
    a.bin_logits = bin_logits;
    a.derivative_logits = slopes;
    a.out = out;
    a.log_det = log_det;
    Scratch s;
    if (!scratch_new(&s, CHUNK_ROWS * a.columns, CHUNK_ROWS * 2 * a.columns * a.bins))
        return PyErr_NoMemory();
    Py_BEGIN_ALLOW_THREADS
    conditional_rows_best(&a, &s);
    Py_END_ALLOW_THREADS
    PyMem_RawFree(s.memory);
    Py_RETURN_NONE;
}

/* A spline whose knots every row shares (the unconditional spline of a coupling's
 * conditioning half): `table` (6, D*K) the bins' x_low, x_size, y_low, y_size, d_low,
 * d_high; `knots` (D, K - 1) the interior knots of the y axis. */
static PyObject *shared_inverse_py(PyObject *Py_UNUSED(self), PyObject *args) {
    void *values_p, *table_p, *knots_p, *out_p, *log_det_p;
    PyObject *o_values, *o_table, *o_knots, *o_out, *o_log_det;
    Py_ssize_t rows, d;
    int k;
    float tail;
    if (!PyArg_ParseTuple(args, "OOOOOnnif", &o_values, &o_table, &o_knots, &o_out,
                          &o_log_det, &rows, &d, &k, &tail))
        return NULL;
    if (!address(o_values, &values_p) || !address(o_table, &table_p) ||
        !address(o_knots, &knots_p) || !address(o_out, &out_p) || !address(o_log_det, &log_det_p))
        return NULL;
    if (!check_bins(k)) return NULL;
    const float *values = values_p, *table = table_p, *knots = knots_p;
    float *out = out_p, *log_det = log_det_p;
    const Py_ssize_t n = d * k;
    Scratch s;
    if (!scratch_new(&s, CHUNK_ROWS * d, 0)) return PyErr_NoMemory();
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t first = 0; first < rows; first += CHUNK_ROWS) {
        Py_ssize_t last = first + CHUNK_ROWS < rows ? first + CHUNK_ROWS : rows;
        for (Py_ssize_t i = first; i < last; i++) {
            for (Py_ssize_t j = 0; j < d; j++) {
                float v = values[i * d + j];
                int bin = 0;
                for (int m = 0; m < k - 1; m++) bin += v >= knots[j * (k - 1) + m];
                Py_ssize_t c = j * k + bin, q = (i - first) * d + j;
                s.bins.x_low[q] = table[c];
                s.bins.x_size[q] = table[n + c];
                s.bins.y_low[q] = table[2 * n + c];
                s.bins.y_size[q] = table[3 * n + c];
                s.bins.d_lo[q] = table[4 * n + c];
                s.bins.d_hi[q] = table[5 * n + c];
            }
        }
        rq_inverse_array(values + first * d, &s.bins, (last - first) * d, tail, out + first * d,
                         log_det ? log_det + first * d : NULL);
    }
    Py_END_ALLOW_THREADS
    PyMem_RawFree(s.memory);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"conditional_inverse", conditional_inverse_py, METH_VARARGS,
     "conditional_inverse(values, bin_logits, derivative_logits, out, log_det, rows, "
     "columns, bins, tail_bound, min_bin_width, min_bin_height, min_derivative): the "
     "inverse of a conditional rational-quadratic spline, per value (addresses of "
     "contiguous float32 arrays; log_det 0 to skip)."},
    {"shared_inverse", shared_inverse_py, METH_VARARGS,
     "shared_inverse(values, table, knots, out, log_det, rows, columns, bins, "
     "tail_bound): the inverse of a spline whose knots every row shares."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_spline",
    "Compiled sampling direction of simkit's spline couplings (see fast_flow.py).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__spline(void) {
    PyObject *m = PyModule_Create(&module);
    const char *isa = "x86-64";
#ifdef HAVE_AVX2_BUILD
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        conditional_rows_best = conditional_rows_avx2;
        isa = "avx2+fma";
    }
#else
    isa = "generic";
#endif
    if (m && PyModule_AddStringConstant(m, "instruction_set", isa) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
