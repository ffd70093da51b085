/* loss_reg.c -- mean squared error and binary cross-entropy with logits:
 * element-wise losses summed over fixed blocks (conventions: loss.c). */
#include "loss.h"

/* ---------------------------------------------------------------- MSE -- */

/* Elements [lo, hi): returns sum (x - y)^2 (float64, differences taken in
 * float64 so nothing overflows); writes elem_loss and the gradient
 * 2 (x - y) scale [* es] when asked. */
AI double mse_body(const job *J, ptrdiff_t lo, ptrdiff_t hi)
{
    const float *x = J->x, *y = J->tf;
    double s = 0.0;
    if (J->want_sum) {
        double sv[FNN_LANES] = {0};
        ptrdiff_t k = lo;
        for (; k + FNN_LANES <= hi; k += FNN_LANES)
            for (int l = 0; l < FNN_LANES; l++) {
                const double d = (double)x[k + l] - (double)y[k + l];
                sv[l] += d * d;
            }
        double t = 0.0;
        for (; k < hi; k++) {
            const double d = (double)x[k] - (double)y[k];
            t += d * d;
        }
        s = fnn_lanes_sum(sv) + t;
    }
    if (J->eloss)
        for (ptrdiff_t k = lo; k < hi; k++) {
            const double d = (double)x[k] - (double)y[k];
            J->eloss[k] = (float)(d * d);
        }
    if (J->grad) {
        const double s2 = 2.0 * J->scale;
        float *g = J->grad;
        if (J->rs)
            for (ptrdiff_t k = lo; k < hi; k++)
                g[k] = (float)(((double)x[k] - (double)y[k]) * (s2 * (double)J->rs[k]));
        else
            for (ptrdiff_t k = lo; k < hi; k++)
                g[k] = (float)(((double)x[k] - (double)y[k]) * s2);
    }
    return s;
}
ISA_VARIANTS(mse)

int fnn_mse_forward(ptrdiff_t n, const float *x, const float *y, double scale,
                    float *grad, float *elem_loss, double *total)
{
    job J = {0};
    J.x = x;
    J.tf = y;
    J.scale = scale;
    J.grad = grad;
    J.eloss = elem_loss;
    J.want_sum = 1;
    return loss_run_blocks(n, FNN_ISA_PICK(mse), &J, total);
}

int fnn_mse_backward(ptrdiff_t n, const float *x, const float *y, double scale,
                      const float *elem_scale, float *grad)
{
    job J = {0};
    J.x = x;
    J.tf = y;
    J.scale = scale;
    J.rs = elem_scale;
    J.grad = grad;
    return loss_run_blocks(n, FNN_ISA_PICK(mse), &J, NULL);
}

/* ----------------------------------------------------- BCE with logits -- */

/* One element: returns its loss (float64) and its derivative in *d. With
 * e = exp(-|x|), pos_weight p, l = 1 + (p - 1) y:
 *   loss = max(x,0) - x y + log1p(e) + (p - 1) y (max(-x,0) + log1p(e))
 *        = (1 - y) x + l softplus(-x)
 *   d    = l sigmoid(x) - p y. */
AI double bce_elem(float xv, float yv, float p, float *d)
{
    const float ax = xv < 0.0f ? -xv : xv;
    const float e = fnn_exp_neg(-ax);
    const float lp = fnn_log1p_01(e);
    const double sp_neg = (double)(xv < 0.0f ? -xv : 0.0f) + (double)lp;
    const float sig = fnn_sigmoid_e(xv, e);     /* bitwise Sigmoid's */
    const float lw = 1.0f + (p - 1.0f) * yv;
    *d = lw * sig - p * yv;
    return (double)(xv > 0.0f ? xv : 0.0f) - (double)xv * (double)yv + (double)lp
           + ((double)p - 1.0) * (double)yv * sp_neg;
}

/* A run of n elements sharing the pos_weight slice pw[0..n) (has_pw 0:
 * pos_weight 1). Returns the float64 loss sum if want_sum, NaN if an x is
 * not finite or a target is outside [0, 1] (checked on the f_key scale, in
 * separate passes: one accumulator per loop keeps the loss loop vectorised).
 * The flags are constants in each instantiation, so every loop is
 * branch-free. */
AI double bce_run(const float *restrict x, const float *restrict y,
                  const float *restrict pw, ptrdiff_t n, float sc, const float *restrict es,
                  float *restrict grad, float *restrict eloss, const int has_pw,
                  const int want_sum, const int want_grad, const int has_es,
                  const int want_eloss)
{
    double sv[FNN_LANES] = {0}, ts = 0.0;
    ptrdiff_t k = 0;
    for (; k + FNN_LANES <= n; k += FNN_LANES)
        for (int l = 0; l < FNN_LANES; l++) {
            float d;
            const double v = bce_elem(x[k + l], y[k + l], has_pw ? pw[k + l] : 1.0f, &d);
            if (want_sum)
                sv[l] += v;
            if (want_eloss)
                eloss[k + l] = (float)v;
            if (want_grad)
                grad[k + l] = d * (has_es ? sc * es[k + l] : sc);
        }
    for (; k < n; k++) {
        float d;
        const double v = bce_elem(x[k], y[k], has_pw ? pw[k] : 1.0f, &d);
        if (want_sum)
            ts += v;
        if (want_eloss)
            eloss[k] = (float)v;
        if (want_grad)
            grad[k] = d * (has_es ? sc * es[k] : sc);
    }
    if (!want_sum || n == 0)
        return 0.0;
    int32_t xhi, xlo, yhi, ylo;
    key_range(x, n, &xhi, &xlo);
    key_range(y, n, &yhi, &ylo);
    const int ok = xhi <= KEY_FLT_MAX && xlo >= KEY_NEG_FLT_MAX && yhi <= KEY_ONE
                   && ylo >= KEY_NEG_ZERO;
    return ok ? fnn_lanes_sum(sv) + ts : NAN;
}

/* Elements [lo, hi) in runs that do not cross a pos_weight period. Modes:
 * forward sum / sum + grad / sum + elem_loss; backward grad / grad * es. */
AI double bce_body_pw(const job *J, ptrdiff_t lo, ptrdiff_t hi, const int has_pw)
{
    const float sc = (float)J->scale;
    const int fwd = J->want_sum;
    double s = 0.0;
    ptrdiff_t k = lo;
    while (k < hi) {
        ptrdiff_t end = hi;
        const float *pw = NULL;
        if (has_pw) {
            const ptrdiff_t c = k % J->C;
            end = k - c + J->C < hi ? k - c + J->C : hi;
            pw = J->w + c;
        }
        const float *x = J->x + k, *y = J->tf + k;
        const ptrdiff_t n = end - k;
        float *g = J->grad ? J->grad + k : NULL;
        if (fwd) {
            if (J->eloss)
                s += bce_run(x, y, pw, n, sc, NULL, NULL, J->eloss + k, has_pw, 1, 0, 0, 1);
            else if (g)
                s += bce_run(x, y, pw, n, sc, NULL, g, NULL, has_pw, 1, 1, 0, 0);
            else
                s += bce_run(x, y, pw, n, sc, NULL, NULL, NULL, has_pw, 1, 0, 0, 0);
        } else if (J->rs) {
            bce_run(x, y, pw, n, sc, J->rs + k, g, NULL, has_pw, 0, 1, 1, 0);
        } else {
            bce_run(x, y, pw, n, sc, NULL, g, NULL, has_pw, 0, 1, 0, 0);
        }
        k = end;
    }
    return s;
}

AI double bce_body(const job *J, ptrdiff_t lo, ptrdiff_t hi)
{
    return J->w ? bce_body_pw(J, lo, hi, 1) : bce_body_pw(J, lo, hi, 0);
}
ISA_VARIANTS(bce)

int fnn_bce_logits_forward(ptrdiff_t n, const float *x, const float *y,
                           const float *pos_weight, ptrdiff_t C, double scale,
                           float *grad, float *elem_loss, double *total)
{
    job J = {0};
    J.C = (int)C;
    J.x = x;
    J.tf = y;
    J.w = pos_weight;
    J.scale = scale;
    J.grad = elem_loss ? NULL : grad;   /* at most one of the two (fastnn.h) */
    J.eloss = elem_loss;
    J.want_sum = 1;
    return loss_run_blocks(n, FNN_ISA_PICK(bce), &J, total);
}

int fnn_bce_logits_backward(ptrdiff_t n, const float *x, const float *y,
                             const float *pos_weight, ptrdiff_t C, double scale,
                             const float *elem_scale, float *grad)
{
    job J = {0};
    J.C = (int)C;
    J.x = x;
    J.tf = y;
    J.w = pos_weight;
    J.scale = scale;
    J.rs = elem_scale;
    J.grad = grad;
    return loss_run_blocks(n, FNN_ISA_PICK(bce), &J, NULL);
}
