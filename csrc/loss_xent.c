/* loss_xent.c -- cross-entropy (class indices and probabilities), NLL and
 * multi-margin: row losses over (N, C) logits (conventions: loss.c). */
#include "loss.h"

/* ------------------------------------------------------ cross-entropy -- */

/* The target distribution of a row is q (sum S); the loss is
 * sum_j q_j (lse - x_j) = S log(sum_j e_j) - sum_j q_j (x_j - m), with
 * e_j = exp(x_j - m), m the row max; the gradient is scale (p_j S - q_j) =
 * e_j a - scale q_j with a = scale S / sum_j e_j (row_coef = S / sum e).
 *   class index y: q_j = om w_y [j == y] + ec w_j
 *   probabilities t: q_j = w_j (om t_j + ec)          (w_j = 1 without weight) */
static void ce_setup(job *J, int C, const float *weight, float smoothing)
{
    J->C = C;
    J->w = weight;
    J->om_d = 1.0 - (double)smoothing;
    J->ec_d = (double)smoothing / C;
    J->om = (float)J->om_d;
    J->ec = (float)J->ec_d;
    double ws = C;
    if (weight) {
        ws = 0.0;
        for (int j = 0; j < C; j++)
            ws += weight[j];
    }
    J->wsum = ws;
}

/* g[j] = e[j] a - sc q_j in place (g holds e on entry); class-index target. */
AI void ce_row_finish(const job *J, int64_t y, float a, float sc, float *g)
{
    const int C = J->C;
    const float wy = J->w ? J->w[y] : 1.0f;
    const float gy = g[y] * a - sc * (J->om * wy + J->ec * wy);
    if (J->ec != 0.0f) {
        const float sec = sc * J->ec;
        if (J->w)
            for (int j = 0; j < C; j++)
                g[j] = g[j] * a - sec * J->w[j];
        else
            for (int j = 0; j < C; j++)
                g[j] = g[j] * a - sec;
    } else {
        for (int j = 0; j < C; j++)
            g[j] = g[j] * a;
    }
    g[y] = gy;
}

AI double ce_fwd_body(const job *J, ptrdiff_t lo, ptrdiff_t hi)
{
    const int C = J->C;
    for (ptrdiff_t i = lo; i < hi; i++) {
        const float *x = J->x + i * C;
        float *g = J->grad ? J->grad + i * C : NULL;
        const int64_t y = J->ti[i];
        float check;
        const float m = row_max_check(x, C, &check);
        const double sum = row_exp_sum(x, C, m, g);
        const double lse = log(sum);
        const double wy = J->w ? (double)J->w[y] : 1.0;
        double S = J->om_d * wy;
        double loss = J->om_d * wy * (lse - ((double)x[y] - (double)m));
        if (J->ec_d != 0.0) {
            S += J->ec_d * J->wsum;
            loss += J->ec_d * (J->wsum * lse - row_wdev_sum(x, J->w, C, m));
        }
        const double coef = S / sum;
        J->rmax[i] = m;
        J->rcoef[i] = coef;
        J->rloss[i] = loss + (double)check;
        if (g)
            ce_row_finish(J, y, (float)(J->scale * coef), (float)J->scale, g);
    }
    return 0.0;
}
ISA_VARIANTS(ce_fwd)

AI double ce_bwd_body(const job *J, ptrdiff_t lo, ptrdiff_t hi)
{
    const int C = J->C;
    for (ptrdiff_t i = lo; i < hi; i++) {
        const float *x = J->x + i * C;
        float *g = J->grad + i * C;
        row_exp(x, C, J->rmax[i], g);
        const double sc = J->rs ? J->scale * (double)J->rs[i] : J->scale;
        ce_row_finish(J, J->ti[i], (float)(sc * J->rcoef[i]), (float)sc, g);
    }
    return 0.0;
}
ISA_VARIANTS(ce_bwd)

/* q_j = w_j (om t_j + ec); the has_w variants keep the loops branch-free. */
AI float prob_q(float om, float ec, const float *w, const float *t, int j, const int has_w)
{
    const float v = om * t[j] + ec;
    return has_w ? w[j] * v : v;
}

AI void prob_finish_w(const job *J, const float *t, float a, float sc, float *g,
                      const int has_w)
{
    const float om = J->om, ec = J->ec, *w = J->w;
    for (int j = 0; j < J->C; j++)
        g[j] = g[j] * a - sc * prob_q(om, ec, w, t, j, has_w);
}

AI void ce_prob_row_finish(const job *J, const float *t, float a, float sc, float *g)
{
    if (J->w)
        prob_finish_w(J, t, a, sc, g, 1);
    else
        prob_finish_w(J, t, a, sc, g, 0);
}

/* sum_j q_j (dev == 0) or sum_j q_j (x_j - m) (dev == 1), float64, one
 * accumulator per loop. */
AI double prob_sum_w(const job *J, const float *t, const float *x, float m, const int dev,
                     const int has_w)
{
    const float om = J->om, ec = J->ec, *w = J->w;
    const int C = J->C;
    const double md = m;
    double sv[FNN_LANES] = {0}, ts = 0.0;
    int j = 0;
    for (; j + FNN_LANES <= C; j += FNN_LANES)
        for (int l = 0; l < FNN_LANES; l++) {
            const double q = (double)prob_q(om, ec, w, t, j + l, has_w);
            sv[l] += dev ? q * ((double)x[j + l] - md) : q;
        }
    for (; j < C; j++) {
        const double q = (double)prob_q(om, ec, w, t, j, has_w);
        ts += dev ? q * ((double)x[j] - md) : q;
    }
    return fnn_lanes_sum(sv) + ts;
}

AI double prob_sum(const job *J, const float *t, const float *x, float m, const int dev)
{
    return J->w ? prob_sum_w(J, t, x, m, dev, 1) : prob_sum_w(J, t, x, m, dev, 0);
}

AI double ce_prob_fwd_body(const job *J, ptrdiff_t lo, ptrdiff_t hi)
{
    const int C = J->C;
    for (ptrdiff_t i = lo; i < hi; i++) {
        const float *x = J->x + i * C, *t = J->tf + i * C;
        float *g = J->grad ? J->grad + i * C : NULL;
        float check;
        const float m = row_max_check(x, C, &check);
        int32_t thi, tlo;                  /* targets: finite and >= 0 (or -0) */
        key_range(t, C, &thi, &tlo);
        const int t_ok = thi <= KEY_FLT_MAX && tlo >= KEY_NEG_ZERO;
        const double sum = row_exp_sum(x, C, m, g);
        const double S = prob_sum(J, t, x, m, 0);
        const double coef = S / sum;
        J->rmax[i] = m;
        J->rcoef[i] = coef;
        J->rloss[i] = S * log(sum) - prob_sum(J, t, x, m, 1) + (double)check
                      + (double)nan_unless(t_ok);
        if (g)
            ce_prob_row_finish(J, t, (float)(J->scale * coef), (float)J->scale, g);
    }
    return 0.0;
}
ISA_VARIANTS(ce_prob_fwd)

AI double ce_prob_bwd_body(const job *J, ptrdiff_t lo, ptrdiff_t hi)
{
    const int C = J->C;
    for (ptrdiff_t i = lo; i < hi; i++) {
        const float *x = J->x + i * C;
        float *g = J->grad + i * C;
        row_exp(x, C, J->rmax[i], g);
        const double sc = J->rs ? J->scale * (double)J->rs[i] : J->scale;
        ce_prob_row_finish(J, J->tf + i * C, (float)(sc * J->rcoef[i]), (float)sc, g);
    }
    return 0.0;
}
ISA_VARIANTS(ce_prob_bwd)

/* The class-index (ti) and probability (tf) targets share the bookkeeping;
 * only the row kernel differs. */
static int ce_forward(range_fn fn, int N, int C, const float *x, const int64_t *ti,
                      const float *tf, const float *weight, float smoothing, double scale,
                      float *grad, float *row_max, double *row_coef, double *row_loss,
                      double *total)
{
    job J = {0};
    ce_setup(&J, C, weight, smoothing);
    J.x = x;
    J.ti = ti;
    J.tf = tf;
    J.scale = scale;
    J.grad = grad;
    J.rmax = row_max;
    J.rcoef = row_coef;
    J.rloss = row_loss;
    const int st = loss_run_rows(N, ROW_COST, fn, &J);
    *total = st ? NAN : fnn_sum_ordered(row_loss, N);
    return st;
}

static int ce_backward(range_fn fn, int N, int C, const float *x, const int64_t *ti,
                       const float *tf, const float *weight, float smoothing,
                       const float *row_max, const double *row_coef, double scale,
                       const float *row_scale, float *grad)
{
    job J = {0};
    ce_setup(&J, C, weight, smoothing);
    J.x = x;
    J.ti = ti;
    J.tf = tf;
    J.scale = scale;
    J.rs = row_scale;
    J.grad = grad;
    J.rmax = (float *)row_max;      /* read only */
    J.rcoef = (double *)row_coef;   /* read only */
    return loss_run_rows(N, ROW_COST, fn, &J);
}

int fnn_cross_entropy_forward(int N, int C, const float *x, const int64_t *target,
                                 const float *weight, float smoothing, double scale,
                                 float *grad, float *row_max, double *row_coef,
                                 double *row_loss, double *total)
{
    return ce_forward(FNN_ISA_PICK(ce_fwd), N, C, x, target, NULL, weight, smoothing, scale,
                      grad, row_max, row_coef, row_loss, total);
}

int fnn_cross_entropy_backward(int N, int C, const float *x, const int64_t *target,
                                const float *weight, float smoothing,
                                const float *row_max, const double *row_coef,
                                double scale, const float *row_scale, float *grad)
{
    return ce_backward(FNN_ISA_PICK(ce_bwd), N, C, x, target, NULL, weight, smoothing,
                       row_max, row_coef, scale, row_scale, grad);
}

int fnn_cross_entropy_prob_forward(int N, int C, const float *x, const float *prob,
                                      const float *weight, float smoothing, double scale,
                                      float *grad, float *row_max, double *row_coef,
                                      double *row_loss, double *total)
{
    return ce_forward(FNN_ISA_PICK(ce_prob_fwd), N, C, x, NULL, prob, weight, smoothing,
                      scale, grad, row_max, row_coef, row_loss, total);
}

int fnn_cross_entropy_prob_backward(int N, int C, const float *x, const float *prob,
                                     const float *weight, float smoothing,
                                     const float *row_max, const double *row_coef,
                                     double scale, const float *row_scale, float *grad)
{
    return ce_backward(FNN_ISA_PICK(ce_prob_bwd), N, C, x, NULL, prob, weight, smoothing,
                       row_max, row_coef, scale, row_scale, grad);
}

/* ---------------------------------------------------------------- NLL -- */

/* row loss = -w_y x_y; gradient row = -sc w_y onehot(y). The forward also
 * reads the whole row, so a NaN anywhere in the input is reported. */
static double nll_body(const job *J, ptrdiff_t lo, ptrdiff_t hi, int fwd)
{
    const int C = J->C;
    for (ptrdiff_t i = lo; i < hi; i++) {
        const int64_t y = J->ti[i];
        const float wy = J->w ? J->w[y] : 1.0f;
        if (fwd) {
            const float *x = J->x + i * C;
            J->rloss[i] = -(double)wy * (double)x[y] + (double)finite_check(x, C);
        }
        if (J->grad) {
            float *g = J->grad + i * C;
            const double sc = J->rs ? J->scale * (double)J->rs[i] : J->scale;
            memset(g, 0, (size_t)C * sizeof(float));
            g[y] = -((float)sc * wy);
        }
    }
    return 0.0;
}

static double nll_fwd(const job *J, ptrdiff_t lo, ptrdiff_t hi)
{
    return nll_body(J, lo, hi, 1);
}

static double nll_bwd(const job *J, ptrdiff_t lo, ptrdiff_t hi)
{
    return nll_body(J, lo, hi, 0);
}

int fnn_nll_forward(int N, int C, const float *x, const int64_t *target,
                       const float *weight, double scale, float *grad, double *row_loss, double *total)
{
    job J = {0};
    J.C = C;
    J.x = x;
    J.ti = target;
    J.w = weight;
    J.scale = scale;
    J.grad = grad;
    J.rloss = row_loss;
    const int st = loss_run_rows(N, ELEM_COST, nll_fwd, &J);
    *total = st ? NAN : fnn_sum_ordered(row_loss, N);
    return st;
}

int fnn_nll_backward(int N, int C, const int64_t *target, const float *weight,
                      double scale, const float *row_scale, float *grad)
{
    job J = {0};
    J.C = C;
    J.ti = target;
    J.w = weight;
    J.scale = scale;
    J.rs = row_scale;
    J.grad = grad;
    return loss_run_rows(N, ELEM_COST, nll_bwd, &J);
}

/* ------------------------------------------------------- multi-margin -- */

/* Row loss w_y / C sum_{j != y} max(0, z_j)^p, z_j = margin - x_y + x_j in
 * float64. Gradient: sc w_y / C * (p == 1 ? 1 : 2 z_j) for j != y with
 * z_j > 0, and minus their sum at y. p and with_grad are constants in each
 * instantiation. */
/* The loops run over every j, y included (an index test in the loop stops
 * GCC vectorising it), and mm_row takes the y term out afterwards. One
 * accumulator per loop (two, or float and double lanes mixed, also stop it). */
AI double mm_hinge(double z, const int p)
{
    const double h = p == 1 ? z : z * z;
    return z > 0.0 ? h : 0.0;
}

AI double mm_grad_elem(double z, double c1, const int p)
{
    const double gj = p == 1 ? c1 : 2.0 * z * c1;
    return z > 0.0 ? gj : 0.0;
}

AI double mm_row(const job *J, const float *x, int64_t y, double sc, float *g, const int p,
                 const int with_grad)
{
    const int C = J->C;
    const float wy = J->w ? J->w[y] : 1.0f;
    const double base = J->margin - (double)x[y];
    const double zy = base + (double)x[y];          /* the y term, to take out */
    double sv[FNN_LANES] = {0}, ts = 0.0;
    int j = 0;
    for (; j + FNN_LANES <= C; j += FNN_LANES)
        for (int l = 0; l < FNN_LANES; l++)
            sv[l] += mm_hinge(base + (double)x[j + l], p);
    for (; j < C; j++)
        ts += mm_hinge(base + (double)x[j], p);
    if (with_grad) {
        const double c1 = sc * (double)wy / C;
        double gv[FNN_LANES] = {0}, tg = 0.0;
        for (j = 0; j + FNN_LANES <= C; j += FNN_LANES)
            for (int l = 0; l < FNN_LANES; l++) {
                const double gd = mm_grad_elem(base + (double)x[j + l], c1, p);
                g[j + l] = (float)gd;
                gv[l] += gd;
            }
        for (; j < C; j++) {
            const double gd = mm_grad_elem(base + (double)x[j], c1, p);
            g[j] = (float)gd;
            tg += gd;
        }
        g[y] = (float)-((fnn_lanes_sum(gv) + tg) - mm_grad_elem(zy, c1, p));
    }
    const double s = (fnn_lanes_sum(sv) + ts) - mm_hinge(zy, p);
    return (double)wy * s / C + (double)finite_check(x, C);
}

AI double mm_body_p(const job *J, ptrdiff_t lo, ptrdiff_t hi, const int p)
{
    const int C = J->C;
    for (ptrdiff_t i = lo; i < hi; i++) {
        const float *x = J->x + i * C;
        const int64_t y = J->ti[i];
        const double sc = J->rs ? J->scale * (double)J->rs[i] : J->scale;
        const double v = J->grad ? mm_row(J, x, y, sc, J->grad + i * C, p, 1)
                                 : mm_row(J, x, y, sc, NULL, p, 0);
        if (J->rloss)
            J->rloss[i] = v;
    }
    return 0.0;
}

AI double mm_body(const job *J, ptrdiff_t lo, ptrdiff_t hi)
{
    return J->p == 1 ? mm_body_p(J, lo, hi, 1) : mm_body_p(J, lo, hi, 2);
}
ISA_VARIANTS(mm)

int fnn_multi_margin_forward(int N, int C, const float *x, const int64_t *target,
                                const float *weight, int p, float margin, double scale,
                                float *grad, double *row_loss, double *total)
{
    job J = {0};
    J.C = C;
    J.x = x;
    J.ti = target;
    J.w = weight;
    J.p = p;
    J.margin = margin;
    J.scale = scale;
    J.grad = grad;
    J.rloss = row_loss;
    const int st = loss_run_rows(N, ROW_COST, FNN_ISA_PICK(mm), &J);
    *total = st ? NAN : fnn_sum_ordered(row_loss, N);
    return st;
}

int fnn_multi_margin_backward(int N, int C, const float *x, const int64_t *target,
                               const float *weight, int p, float margin, double scale,
                               const float *row_scale, float *grad)
{
    job J = {0};
    J.C = C;
    J.x = x;
    J.ti = target;
    J.w = weight;
    J.p = p;
    J.margin = margin;
    J.scale = scale;
    J.rs = row_scale;
    J.grad = grad;
    return loss_run_rows(N, ROW_COST, FNN_ISA_PICK(mm), &J);
}

