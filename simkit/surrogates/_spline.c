/* The sampling direction of simkit's rational-quadratic spline couplings, one loop per
 * value, for CPU sampling (simkit/surrogates/fast_flow.py, BENCHMARKS.md "A compiled
 * spline stage").
 *
 * The torch path of fast_flow.py evaluates the conditional spline in ~40 tensor
 * operations, each a pass over a batch's (rows x 2 x columns x bins) numbers; most of
 * its time goes to writing and re-reading those intermediate tensors. Here every value
 * is carried from its bin logits to its output in registers: the softmax of the width
 * and height logits, their cumulative sums, the bin search on the searched axis, the
 * derivatives at the bin's two knots and the root of the rational-quadratic equation
 * (Durkan et al. 2019, arXiv:1906.04032, eq. 6-8), with the same arithmetic as
 * fast_flow.conditional_bins and fast_flow.rq_transform. Numbers agree with the torch
 * path to float32 rounding (tests/simkit/test_fast_flow.py).
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
#if defined(__GNUC__)
#define INLINE static inline __attribute__((always_inline))
#else
#define INLINE static inline
#endif
/* |logit| <= EXP_SAFE: exp without subtracting the maximum (fast_flow.EXP_SAFE). */
#define EXP_SAFE 80.0f

/* exp(x) for x in [-87.3, 88.7], relative error ~1e-7 (Cody-Waite range reduction and
 * the Cephes single-precision polynomial); branch-free, so that a loop over an array of
 * logits vectorizes (SSE2 and up). Below -87.3 it returns 0 (float32 underflows there),
 * above 88.7 exp(88.7): callers check the totals they form (bin_totals_ok). */
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

/* torch.nn.functional.softplus with its defaults (beta 1, threshold 20): log1p(exp(x)),
 * with log1p(e) = log(u) e / (u - 1), u = 1 + e (Goldberg 1991: within a few ulp; glibc's
 * log1pf took half of a first version's time). */
INLINE float softplus_f32(float x) {
    if (x > 20.0f) return x;
    float e = expf(x);
    float u = 1.0f + e;
    return u == 1.0f ? e : logf(u) * (e / (u - 1.0f));
}

/* exp of n logits, vectorized: the bin weights before normalization. */
static void exp_array(const float *restrict logits, float *restrict weights, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) weights[i] = exp_f32(logits[i]);
}

/* A sum of bin weights that every weight was exact for: no logit beyond exp_f32's clamps,
 * the largest weight a normal number. Outside this range (or NaN) the bins take
 * exp(logit - max), as fast_flow.conditional_bins takes torch.softmax beyond EXP_SAFE. */
INLINE int bin_total_ok(float total) { return total >= 1e-30f && total <= 1e30f; }

/* exp(logit - max logit) of one value's k bins. */
static void shifted_weights(const float *logits, float *weights, int k) {
    float hi = logits[0];
    for (int m = 1; m < k; m++) hi = logits[m] > hi || logits[m] != logits[m] ? logits[m] : hi;
    for (int m = 0; m < k; m++) weights[m] = exp_f32(logits[m] - hi);
}

/* The inverse rational-quadratic map of v in a bin (x_low, x_size) -> (y_low, y_size)
 * with derivatives d_lo, d_hi at its knots; identity outside [-tail, tail]. Writes
 * log|dx/dy| to *ld when ld is not NULL. fast_flow.rq_transform(inverse=True). */
INLINE void rq_inverse(float v, float x_low, float x_size, float y_low, float y_size,
                              float d_lo, float d_hi, float tail, float *out, float *ld) {
    int inside = (v >= -tail) && (v <= tail);
    float vc = v < -tail ? -tail : (v > tail ? tail : v);
    float delta = y_size / x_size;
    float slope_sum = d_lo + d_hi - 2.0f * delta;
    float dy = vc - y_low;
    float a = dy * slope_sum + y_size * (delta - d_lo);
    float b = y_size * d_lo - dy * slope_sum;
    float c = -delta * dy;
    float theta = (2.0f * c) / (-b - sqrtf(b * b - 4.0f * a * c));
    *out = inside ? theta * x_size + x_low : v;
    if (ld) {
        float t1mt = theta * (1.0f - theta);
        float omt = 1.0f - theta;
        float numerator =
            delta * delta * (d_hi * theta * theta + 2.0f * delta * t1mt + d_lo * omt * omt);
        float value = logf(numerator) - 2.0f * logf(delta + slope_sum * t1mt);
        *ld = inside ? -value : 0.0f;
    }
}

/* One value of a conditional spline's inverse: `ww`, `hw` its K width and height bin
 * weights (exp of the logits; recomputed from `wl`, `hl` with the maximum subtracted when
 * their total is out of range), `dl` the K + 1 derivative logits (outer ones pinned by the
 * caller). The inverse searches the height (y) axis. */
INLINE void conditional_inverse(float v, float *ww, float *hw, const float *wl, const float *hl,
                                const float *dl, int k, float tail, float min_w, float min_h,
                                float min_d, float *out, float *ld) {
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
    /* searched axis: interior knots (m * min_h * 2t - t) + cumsum[m - 1] * scale, the bin
     * the number of interior knots at or below v (normflows' searchsorted) */
    float h_scale = (1.0f - min_h * k) * two_t / h_total;
    float h_step = min_h * two_t;
    int bin = 0;
    float cum = 0.0f, y_low = -tail, y_high = tail;
    for (int m = 1; m < k; m++) {
        cum += hw[m - 1];
        float knot = ((float)m * h_step - tail) + cum * h_scale;
        if (v >= knot) {
            bin = m;
            y_low = knot;
        } else if (m == bin + 1) {
            y_high = knot;
        }
    }
    /* the other axis: only the bin's own edge and size */
    float w_scale = (1.0f - min_w * k) * two_t / w_total;
    float below = 0.0f;
    for (int m = 0; m < bin; m++) below += ww[m];
    float fraction = ww[bin];
    float x_low = below * w_scale + ((float)bin * (min_w * two_t) - tail);
    float x_size = fraction * w_scale + min_w * two_t;
    float d_lo = min_d + softplus_f32(dl[bin]);
    float d_hi = min_d + softplus_f32(dl[bin + 1]);
    rq_inverse(v, x_low, x_size, y_low, y_high - y_low, d_lo, d_hi, tail, out, ld);
}

/* Rows per chunk: the chunk's bin weights (rows x 2 x D x K floats) stay in L1/L2. */
#define CHUNK_ROWS 32

typedef struct {
    const float *values, *bin_logits, *derivative_logits;
    float *out, *log_det;
    Py_ssize_t rows, columns;
    int bins;
    float tail, min_w, min_h, min_d;
} ConditionalArgs;

/* One specialization per bin count keeps the bin loops' trip count a constant. */
INLINE void conditional_rows(const ConditionalArgs *a, int k, float *weights) {
    const Py_ssize_t d = a->columns;
    const Py_ssize_t per_row = 2 * d * k;
    for (Py_ssize_t first = 0; first < a->rows; first += CHUNK_ROWS) {
        Py_ssize_t last = first + CHUNK_ROWS < a->rows ? first + CHUNK_ROWS : a->rows;
        exp_array(a->bin_logits + first * per_row, weights, (last - first) * per_row);
        for (Py_ssize_t i = first; i < last; i++) {
            const float *row_bins = a->bin_logits + i * per_row;
            float *row_weights = weights + (i - first) * per_row;
            const float *row_slopes = a->derivative_logits + i * d * (k + 1);
            for (Py_ssize_t j = 0; j < d; j++) {
                Py_ssize_t at = i * d + j;
                conditional_inverse(a->values[at], row_weights + j * k,
                                    row_weights + (d + j) * k, row_bins + j * k,
                                    row_bins + (d + j) * k, row_slopes + j * (k + 1), k,
                                    a->tail, a->min_w, a->min_h, a->min_d, a->out + at,
                                    a->log_det ? a->log_det + at : NULL);
            }
        }
    }
}

static void conditional_rows_8(const ConditionalArgs *a, float *w) { conditional_rows(a, 8, w); }
static void conditional_rows_any(const ConditionalArgs *a, float *w) {
    conditional_rows(a, a->bins, w);
}

static int address(PyObject *obj, void **ptr) {
    unsigned long long value = PyLong_AsUnsignedLongLong(obj);
    if (PyErr_Occurred()) return 0;
    *ptr = (void *)(uintptr_t)value;
    return 1;
}

static PyObject *conditional_inverse_py(PyObject *self, PyObject *args) {
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
    if (a.bins < 2 || a.bins > MAX_BINS) {
        PyErr_Format(PyExc_ValueError, "bins must be in [2, %d], got %d", MAX_BINS, a.bins);
        return NULL;
    }
    a.values = values;
    a.bin_logits = bin_logits;
    a.derivative_logits = slopes;
    a.out = out;
    a.log_det = log_det;
    float *weights = PyMem_RawMalloc(sizeof(float) * CHUNK_ROWS * 2 * a.columns * a.bins);
    if (!weights) return PyErr_NoMemory();
    Py_BEGIN_ALLOW_THREADS
    if (a.bins == 8)
        conditional_rows_8(&a, weights);
    else
        conditional_rows_any(&a, weights);
    Py_END_ALLOW_THREADS
    PyMem_RawFree(weights);
    Py_RETURN_NONE;
}

/* A spline whose knots every row shares (the unconditional spline of a coupling's
 * conditioning half): `table` (6, D*K) the bins' x_low, x_size, y_low, y_size, d_low,
 * d_high; `knots` (D, K - 1) the interior knots of the y axis. */
static PyObject *shared_inverse_py(PyObject *self, PyObject *args) {
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
    if (k < 2 || k > MAX_BINS) {
        PyErr_Format(PyExc_ValueError, "bins must be in [2, %d], got %d", MAX_BINS, k);
        return NULL;
    }
    const float *values = values_p, *table = table_p, *knots = knots_p;
    float *out = out_p, *log_det = log_det_p;
    const Py_ssize_t n = d * k;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < rows; i++) {
        for (Py_ssize_t j = 0; j < d; j++) {
            Py_ssize_t at = i * d + j;
            float v = values[at];
            int bin = 0;
            for (int m = 0; m < k - 1; m++) bin += v >= knots[j * (k - 1) + m];
            Py_ssize_t c = j * k + bin;
            rq_inverse(v, table[c], table[n + c], table[2 * n + c], table[3 * n + c],
                       table[4 * n + c], table[5 * n + c], tail, out + at,
                       log_det ? log_det + at : NULL);
        }
    }
    Py_END_ALLOW_THREADS
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
    methods,
};

PyMODINIT_FUNC PyInit__spline(void) { return PyModule_Create(&module); }
