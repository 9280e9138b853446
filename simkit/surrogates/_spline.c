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
 * The network epilogues further down serve the torch-free sampler (sampler.py).
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
#include <string.h>

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

/* exp(x) for x in [-87.3, 88], relative error ~1e-7 (Cody-Waite range reduction and
 * the Cephes single-precision polynomial). Below -87.3 it returns 0 (float32 underflows
 * there), above 88 exp(88): callers check the totals they form (bin_total_ok). NaN gives
 * NaN. The power of two 2^n is built from n in [-126, 127], a normal float. */
INLINE float exp_f32(float x) {
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
    const float round = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float xc = x < -87.3f ? -87.3f : x;
    xc = xc > 88.0f ? 88.0f : xc;
    xc = xc == xc ? xc : 0.0f; /* NaN: a defined integer part; r below keeps the NaN */
    float n = (xc * log2e + round) - round;
    float r = (x == x ? xc : x) - n * ln2_hi;
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

/* Scratch arrays of one call: a chunk's values, bins, outputs and log-dets (one array
 * per quantity), and its bin weights. */
typedef struct {
    Bins bins;
    float *values, *out, *log_det, *weights;
    float *memory;
} Scratch;

static int scratch_new(Scratch *s, Py_ssize_t values, Py_ssize_t weights) {
    s->memory = PyMem_RawMalloc(sizeof(float) * (9 * values + weights + 1));
    if (!s->memory) return 0;
    float *at = s->memory;
    float **slots[9] = {&s->bins.x_low, &s->bins.x_size, &s->bins.y_low, &s->bins.y_size,
                        &s->bins.d_lo,  &s->bins.d_hi,   &s->values,     &s->out,
                        &s->log_det};
    for (int i = 0; i < 9; i++, at += values) *slots[i] = at;
    s->weights = at;
    return 1;
}

/* ------------------------------------------------------------------ the two splines
 *
 * Both transform, in place, `columns` columns of a (rows x stride) float32 table `z`,
 * those listed in `cols`: the flow keeps its events in one table, and a coupling reads
 * and writes its halves where they are (fast_flow.FastSplineFlow._sample_compiled). */

typedef struct {
    float *z;
    Py_ssize_t stride;
    const int32_t *cols;
    Py_ssize_t rows, columns;
    int bins;
    float tail, min_w, min_h, min_d;
    const float *bin_logits, *derivative_logits; /* conditional: (rows, 2 D K), (rows, D (K + 1)) */
    const float *table, *knots;                  /* shared: (6, D K), (D, K - 1) */
    float *log_det;                              /* (rows,), added to; NULL to skip */
} Args;

/* The values of rows [first, last) into s->values. */
INLINE void gather_chunk(const Args *a, Py_ssize_t first, Py_ssize_t last, const Scratch *s) {
    const Py_ssize_t d = a->columns;
    for (Py_ssize_t i = first; i < last; i++)
        for (Py_ssize_t j = 0; j < d; j++)
            s->values[(i - first) * d + j] = a->z[i * a->stride + a->cols[j]];
}

/* Loop 3 over the chunk, then its outputs (and log-dets, per row) back into the table. */
INLINE void finish_chunk(const Args *a, Py_ssize_t first, Py_ssize_t last, const Scratch *s) {
    const Py_ssize_t d = a->columns;
    rq_inverse_array(s->values, &s->bins, (last - first) * d, a->tail, s->out,
                     a->log_det ? s->log_det : NULL);
    for (Py_ssize_t i = first; i < last; i++) {
        const float *row = s->out + (i - first) * d;
        for (Py_ssize_t j = 0; j < d; j++) a->z[i * a->stride + a->cols[j]] = row[j];
        if (a->log_det) {
            float sum = 0.0f;
            for (Py_ssize_t j = 0; j < d; j++) sum += s->log_det[(i - first) * d + j];
            a->log_det[i] += sum;
        }
    }
}

/* One specialization per bin count keeps the bin loops' trip count a constant. */
INLINE void conditional_rows(const Args *a, int k, const Scratch *s) {
    const Py_ssize_t d = a->columns;
    const Py_ssize_t per_row = 2 * d * k;
    for (Py_ssize_t first = 0; first < a->rows; first += CHUNK_ROWS) {
        Py_ssize_t last = first + CHUNK_ROWS < a->rows ? first + CHUNK_ROWS : a->rows;
        gather_chunk(a, first, last, s);
        exp_array(a->bin_logits + first * per_row, s->weights, (last - first) * per_row);
        for (Py_ssize_t i = first; i < last; i++) {
            const float *row_bins = a->bin_logits + i * per_row;
            float *row_weights = s->weights + (i - first) * per_row;
            const float *row_slopes = a->derivative_logits + i * d * (k + 1);
            for (Py_ssize_t j = 0; j < d; j++) {
                Py_ssize_t q = (i - first) * d + j;
                conditional_bin(s->values[q], row_weights + j * k, row_weights + (d + j) * k,
                                row_bins + j * k, row_bins + (d + j) * k,
                                row_slopes + j * (k + 1), k, a->tail, a->min_w, a->min_h,
                                &s->bins, q);
            }
        }
        Py_ssize_t n = (last - first) * d;
        derivatives(s->bins.d_lo, n, a->min_d);
        derivatives(s->bins.d_hi, n, a->min_d);
        finish_chunk(a, first, last, s);
    }
}

/* The spline whose knots every row shares (the unconditional spline of a coupling's
 * conditioning half): `table` (6, D K) the bins' x_low, x_size, y_low, y_size, d_low,
 * d_high; `knots` (D, K - 1) the interior knots of the y axis. */
INLINE void shared_rows(const Args *a, int k, const Scratch *s) {
    const Py_ssize_t d = a->columns;
    const Py_ssize_t n = d * k;
    const float *table = a->table;
    for (Py_ssize_t first = 0; first < a->rows; first += CHUNK_ROWS) {
        Py_ssize_t last = first + CHUNK_ROWS < a->rows ? first + CHUNK_ROWS : a->rows;
        gather_chunk(a, first, last, s);
        for (Py_ssize_t q = 0; q < (last - first) * d; q++) {
            Py_ssize_t j = q % d;
            float v = s->values[q];
            int bin = 0;
            for (int m = 0; m < k - 1; m++) bin += v >= a->knots[j * (k - 1) + m];
            Py_ssize_t c = j * k + bin;
            s->bins.x_low[q] = table[c];
            s->bins.x_size[q] = table[n + c];
            s->bins.y_low[q] = table[2 * n + c];
            s->bins.y_size[q] = table[3 * n + c];
            s->bins.d_lo[q] = table[4 * n + c];
            s->bins.d_hi[q] = table[5 * n + c];
        }
        finish_chunk(a, first, last, s);
    }
}

/* One build for any x86-64, one for AVX2 + FMA and one for AVX-512, chosen when the module
 * loads. The arithmetic is the same in all three (no contraction, IEEE division and
 * square root): they give the same bits, only more lanes at a time. */
#define SPLINE_ROWS(name, attributes)                                                   \
    attributes static void name(const Args *a, int conditional, const Scratch *s) {   \
        if (conditional)                                                                \
            if (a->bins == 8)                                                           \
                conditional_rows(a, 8, s);                                              \
            else                                                                        \
                conditional_rows(a, a->bins, s);                                        \
        else if (a->bins == 8)                                                          \
            shared_rows(a, 8, s);                                                       \
        else                                                                            \
            shared_rows(a, a->bins, s);                                                 \
    }

SPLINE_ROWS(spline_rows_default, )
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_AVX2_BUILD 1
SPLINE_ROWS(spline_rows_avx2, __attribute__((target("avx2,fma"))))
#define AVX512 "avx512f,avx512dq,avx512vl,avx512bw,avx2,fma"
SPLINE_ROWS(spline_rows_avx512, __attribute__((target(AVX512))))
#endif

static void (*spline_rows)(const Args *, int, const Scratch *) = spline_rows_default;

static int address(PyObject *obj, void **ptr) {
    unsigned long long value = PyLong_AsUnsignedLongLong(obj);
    if (PyErr_Occurred()) return 0;
    *ptr = (void *)(uintptr_t)value;
    return 1;
}

/* The two entry points share everything but their parameter arrays. */
static PyObject *run(Args *a, int conditional, PyObject *o_z, PyObject *o_cols,
                     PyObject *o_first, PyObject *o_second, PyObject *o_log_det) {
    void *z, *cols, *first, *second, *log_det;
    if (!address(o_z, &z) || !address(o_cols, &cols) || !address(o_first, &first) ||
        !address(o_second, &second) || !address(o_log_det, &log_det))
        return NULL;
    if (a->bins < 2 || a->bins > MAX_BINS) {
        PyErr_Format(PyExc_ValueError, "bins must be in [2, %d], got %d", MAX_BINS, a->bins);
        return NULL;
    }
    a->z = z;
    a->cols = cols;
    a->log_det = log_det;
    if (conditional) {
        a->bin_logits = first;
        a->derivative_logits = second;
    } else {
        a->table = first;
        a->knots = second;
    }
    Scratch s;
    Py_ssize_t chunk = CHUNK_ROWS * a->columns;
    if (!scratch_new(&s, chunk, conditional ? 2 * chunk * a->bins : 0)) return PyErr_NoMemory();
    Py_BEGIN_ALLOW_THREADS
    spline_rows(a, conditional, &s);
    Py_END_ALLOW_THREADS
    PyMem_RawFree(s.memory);
    Py_RETURN_NONE;
}

static PyObject *conditional_inverse_py(PyObject *Py_UNUSED(self), PyObject *args) {
    Args a = {0};
    PyObject *o_z, *o_cols, *o_bins, *o_slopes, *o_log_det;
    if (!PyArg_ParseTuple(args, "OnOnOOOniffff", &o_z, &a.stride, &o_cols, &a.columns, &o_bins,
                          &o_slopes, &o_log_det, &a.rows, &a.bins, &a.tail, &a.min_w, &a.min_h,
                          &a.min_d))
        return NULL;
    return run(&a, 1, o_z, o_cols, o_bins, o_slopes, o_log_det);
}

static PyObject *shared_inverse_py(PyObject *Py_UNUSED(self), PyObject *args) {
    Args a = {0};
    PyObject *o_z, *o_cols, *o_table, *o_knots, *o_log_det;
    if (!PyArg_ParseTuple(args, "OnOnOOOnif", &o_z, &a.stride, &o_cols, &a.columns, &o_table,
                          &o_knots, &o_log_det, &a.rows, &a.bins, &a.tail))
        return NULL;
    return run(&a, 0, o_z, o_cols, o_table, o_knots, o_log_det);
}

/* ------------------------------------------------------------------ network epilogues
 * The elementwise steps around each matrix product of the coupling networks, for the
 * torch-free sampler (simkit/surrogates/sampler.py, which does the products with numpy):
 * one pass each where numpy needs two to four. Same arithmetic and order as the torch
 * path (fast_flow.FastSplineFlow._residual_blocks; -ffp-contract=off keeps it unfused):
 *   0 bias:      out = out + bias                 then relu_out = relu(out) (if given)
 *   1 bias_relu: out = relu(out + bias)           (NaN stays NaN, as torch's relu)
 *   2 residual:  hidden += (out + bias) * gate    then relu_out = relu(hidden) (if given)
 * and the context gates of a one-column context c (gate_stride: c's row stride):
 *   3 gates:     out = 1 / (1 + exp(-(c * weight + bias)))
 * out, hidden and relu_out are row-major float32 with `cols` values per row; gate rows
 * are gate_stride floats apart (NULL: no gate). */
INLINE float relu_f32(float v) { return v < 0.0f ? 0.0f : v; }

#define EPILOGUE(name, attributes)                                                        \
    attributes static void name(int op, float *restrict out, float *restrict hidden,      \
                                const float *restrict bias, const float *restrict gate,   \
                                Py_ssize_t gate_stride, float *restrict relu_out,         \
                                Py_ssize_t rows, Py_ssize_t cols) {                       \
        for (Py_ssize_t r = 0; r < rows; r++) {                                            \
            float *o = out + r * cols;                                                     \
            float *t = relu_out ? relu_out + r * cols : NULL;                              \
            if (op == 0) {                                                                 \
                for (Py_ssize_t c = 0; c < cols; c++) o[c] = o[c] + bias[c];               \
                if (t)                                                                     \
                    for (Py_ssize_t c = 0; c < cols; c++) t[c] = relu_f32(o[c]);           \
            } else if (op == 1) {                                                          \
                for (Py_ssize_t c = 0; c < cols; c++) o[c] = relu_f32(o[c] + bias[c]);     \
            } else if (op == 2) {                                                          \
                float *h = hidden + r * cols;                                              \
                if (gate) {                                                                \
                    const float *g = gate + r * gate_stride;                               \
                    for (Py_ssize_t c = 0; c < cols; c++) h[c] += (o[c] + bias[c]) * g[c]; \
                } else {                                                                   \
                    for (Py_ssize_t c = 0; c < cols; c++) h[c] += o[c] + bias[c];          \
                }                                                                          \
                if (t)                                                                     \
                    for (Py_ssize_t c = 0; c < cols; c++) t[c] = relu_f32(h[c]);           \
            } else {                                                                       \
                const float x = gate[r * gate_stride];                                     \
                for (Py_ssize_t c = 0; c < cols; c++)                                      \
                    o[c] = 1.0f / (1.0f + exp_f32(-(x * hidden[c] + bias[c])));            \
            }                                                                              \
        }                                                                                  \
    }

EPILOGUE(epilogue_default, )
#ifdef HAVE_AVX2_BUILD
EPILOGUE(epilogue_avx2, __attribute__((target("avx2,fma"))))
EPILOGUE(epilogue_avx512, __attribute__((target(AVX512))))
#endif

static void (*epilogue_rows)(int, float *, float *, const float *, const float *, Py_ssize_t,
                             float *, Py_ssize_t, Py_ssize_t) = epilogue_default;

static PyObject *epilogue_py(PyObject *Py_UNUSED(self), PyObject *args) {
    int op;
    PyObject *o_out, *o_hidden, *o_bias, *o_gate, *o_relu;
    Py_ssize_t gate_stride, rows, cols;
    void *out, *hidden, *bias, *gate, *relu_out;
    if (!PyArg_ParseTuple(args, "iOOOOnOnn", &op, &o_out, &o_hidden, &o_bias, &o_gate,
                          &gate_stride, &o_relu, &rows, &cols))
        return NULL;
    if (!address(o_out, &out) || !address(o_hidden, &hidden) || !address(o_bias, &bias) ||
        !address(o_gate, &gate) || !address(o_relu, &relu_out))
        return NULL;
    if (op < 0 || op > 3 || (op == 2 && !hidden) || (op == 3 && (!hidden || !gate))) {
        PyErr_Format(PyExc_ValueError, "epilogue op %d: bad op or missing array", op);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    epilogue_rows(op, out, hidden, bias, gate, gate_stride, relu_out, rows, cols);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* The builds of the loops, best last: the module takes the best this CPU runs. */
typedef struct {
    const char *name;
    void (*spline)(const Args *, int, const Scratch *);
    void (*epilogue)(int, float *, float *, const float *, const float *, Py_ssize_t, float *,
                     Py_ssize_t, Py_ssize_t);
} Build;

static const Build builds[] = {
#ifdef HAVE_AVX2_BUILD
    {"x86-64", spline_rows_default, epilogue_default},
    {"avx2+fma", spline_rows_avx2, epilogue_avx2},
    {"avx512", spline_rows_avx512, epilogue_avx512},
#else
    {"generic", spline_rows_default, epilogue_default},
#endif
};
#define N_BUILDS ((int)(sizeof(builds) / sizeof(builds[0])))

static int runs_here(int i) {
#ifdef HAVE_AVX2_BUILD
    if (i == 0) return 1;
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return 0;
    return i == 1 || (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw"));
#else
    return i == 0;
#endif
}

static int use_build(PyObject *module, int i) {
    PyObject *name = PyUnicode_FromString(builds[i].name);
    if (!name || PyObject_SetAttrString(module, "instruction_set", name) < 0) {
        Py_XDECREF(name);
        return -1;
    }
    Py_DECREF(name);
    spline_rows = builds[i].spline;
    epilogue_rows = builds[i].epilogue;
    return 0;
}

/* use(name): switch to another build this CPU runs (tests compare their numbers); returns
 * the name of the build that was in use. */
static PyObject *use_py(PyObject *module, PyObject *args) {
    const char *name;
    if (!PyArg_ParseTuple(args, "s", &name)) return NULL;
    for (int i = 0; i < N_BUILDS; i++) {
        if (strcmp(name, builds[i].name) != 0) continue;
        if (!runs_here(i)) {
            PyErr_Format(PyExc_ValueError, "this CPU cannot run the %s build", name);
            return NULL;
        }
        PyObject *previous = PyObject_GetAttrString(module, "instruction_set");
        if (!previous || use_build(module, i) < 0) {
            Py_XDECREF(previous);
            return NULL;
        }
        return previous;
    }
    PyErr_Format(PyExc_ValueError, "no build named %s", name);
    return NULL;
}

static PyMethodDef methods[] = {
    {"conditional_inverse", conditional_inverse_py, METH_VARARGS,
     "conditional_inverse(z, stride, cols, columns, bin_logits, derivative_logits, log_det, "
     "rows, bins, tail_bound, min_bin_width, min_bin_height, min_derivative): the inverse "
     "of a conditional rational-quadratic spline, in place on the listed columns of z "
     "(addresses of contiguous float32 arrays, cols int32; log_det (rows,) is added to, "
     "0 to skip)."},
    {"epilogue", epilogue_py, METH_VARARGS,
     "epilogue(op, out, hidden, bias, gate, gate_stride, relu_out, rows, cols): an "
     "elementwise step of a coupling network, in place (op 0 bias, 1 bias + relu, 2 hidden "
     "+= (out + bias) * gate, each optionally writing relu of its result into relu_out; 3 "
     "out = sigmoid(c * hidden + bias) for a one-column context c in gate; addresses of "
     "float32 arrays, 0 for none)."},
    {"shared_inverse", shared_inverse_py, METH_VARARGS,
     "shared_inverse(z, stride, cols, columns, table, knots, log_det, rows, bins, "
     "tail_bound): the same for a spline whose knots every row shares."},
    {"use", use_py, METH_VARARGS,
     "use(name): evaluate with another of the builds in instruction_sets (all give the same "
     "numbers; tests compare them); returns the name of the one in use before."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_spline",
    "Compiled sampling direction of simkit's spline couplings (see fast_flow.py).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__spline(void) {
#ifdef HAVE_AVX2_BUILD
    __builtin_cpu_init();
#endif
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    PyObject *names = PyList_New(0), *usable = NULL;
    int best = 0;
    for (int i = 0; names && i < N_BUILDS; i++) {
        if (!runs_here(i)) continue;
        best = i;
        PyObject *name = PyUnicode_FromString(builds[i].name);
        if (!name || PyList_Append(names, name) < 0) Py_CLEAR(names);
        Py_XDECREF(name);
    }
    if (names) usable = PyList_AsTuple(names);
    Py_XDECREF(names);
    if (!usable || PyModule_AddObject(m, "instruction_sets", usable) < 0) {
        Py_XDECREF(usable); /* PyModule_AddObject takes it only when it succeeds */
        Py_DECREF(m);
        return NULL;
    }
    if (use_build(m, best) < 0 || PyModule_AddIntConstant(m, "max_bins", MAX_BINS) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
