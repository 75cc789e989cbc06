"""Plain, loop-based reference implementations (np.corrcoef, scipy.stats) and test BOLD generators."""
from __future__ import annotations

import numpy as np
from scipy import stats as sps


def random_bold(B, T, N, seed=0):
    return np.random.default_rng(seed).standard_normal((B, T, N))


def simulated_like_bold(B, T, N, seed=1):
    """Smooth, correlated BOLD-like signals: coupled AR(1) 'neural' activity convolved with a gamma HRF,
    plus a global signal and homotopic (i, i + N/2) sharing."""
    rng = np.random.default_rng(seed)
    W = rng.uniform(0, 1, (N, N)) * (rng.uniform(size=(N, N)) < 0.2)
    W /= max(1.0, np.abs(np.linalg.eigvals(W)).max() * 1.2)
    n_pre = 30
    x = np.zeros((B, T + n_pre, N))
    for t in range(1, T + n_pre):
        x[:, t] = 0.6 * x[:, t - 1] + 0.3 * x[:, t - 1] @ W.T + rng.standard_normal((B, N))
    x += 0.5 * rng.standard_normal((B, T + n_pre, 1))
    h = N // 2
    x[:, :, h:2 * h] += 0.7 * x[:, :, :h]
    k = np.arange(12.0)
    hrf = k**3 * np.exp(-k)
    hrf /= hrf.sum()
    bold = np.stack([[np.convolve(x[b, :, n], hrf)[: T + n_pre] for n in range(N)] for b in range(B)])
    return bold.transpose(0, 2, 1)[:, n_pre:] + 3.0


def ref_fcd(b, L, sp, include_last, mask=None):
    N = b.shape[1]
    iu = np.triu_indices(N, 1)
    stack = []
    stop = b.shape[0] - L + (1 if include_last else 0)
    for t0 in range(0, stop, sp):
        c = np.corrcoef(b[t0:t0 + L].T)
        if mask is not None:
            c = c * (c > 0) * mask
        stack.append(c[iu])
    stack = np.array(stack)
    return np.corrcoef(stack), stack


def ref_inter_mask_halves(N):
    # tvb-inversion's get_masks: complement of the two N/2 diagonal blocks
    intra = np.zeros((N, N), dtype=bool)
    h = N // 2
    intra[:h, :h] = True
    intra[h:, h:] = True
    return ~intra


def ref_inter_mask(N, left, right):
    m = np.zeros((N, N), dtype=bool)
    for i in left:
        for j in right:
            m[i, j] = m[j, i] = True
    return m


def ref_bold_fcd_for_sbi(b, L, sp, left=None, right=None):
    N = b.shape[1]
    if left is None:
        left, right, mask = range(N // 2), range(N // 2, N), ref_inter_mask_halves(N)
    else:
        mask = ref_inter_mask(N, left, right)
    rs = np.corrcoef(b.T)
    rs[rs < 0] = 0
    np.fill_diagonal(rs, 0)
    homo = np.mean([rs[i, j] for i, j in zip(left, right)])
    F, _ = ref_fcd(b, L, sp, False)
    Fi, stack = ref_fcd(b, L, sp, False, mask)
    return [homo, np.std(stack), np.var(np.triu(Fi, k=L)) - np.var(np.triu(F, k=L)),
            np.sum(np.abs(rs)) - np.trace(np.abs(rs)),
            np.sum(np.abs(np.triu(F, k=L) + np.tril(F, k=-L)))]


def ref_moments(v, stats, quantiles):
    f = {"mean": np.mean, "std": np.std, "var": np.var, "fluidity": np.var,
         "skew": lambda a: sps.skew(a), "kurtosis": lambda a: sps.kurtosis(a)}
    return [f[s](v) for s in stats] + [np.quantile(v, q) for q in quantiles]


def ref_fc_stats(b, stats, quantiles):
    c = np.corrcoef(b.T)
    return ref_moments(c[np.triu_indices(b.shape[1], 1)], stats, quantiles)


def ref_fcd_stats(b, L, sp, include_last, min_lag, stats, quantiles):
    F, _ = ref_fcd(b, L, sp, include_last)
    return ref_moments(F[np.triu_indices(F.shape[0], min_lag)], stats, quantiles)


def ref_homotopic(b, left, right):
    c = np.corrcoef(b.T)
    return [np.mean([c[i, j] for i, j in zip(left, right)])]


def ref_eigenvalues(b, n):
    ev = np.linalg.eigvals(np.corrcoef(b.T)).real  # general solver: independent of eigvalsh
    return list(np.sort(ev)[::-1][:n])


def ref_region_stats(b, stats):
    out = []
    for s in stats:
        for i in range(b.shape[1]):
            out.append(np.mean(b[:, i]) if s == "mean" else np.std(b[:, i]))
    return out


def ref_connectome(N, seed=11):
    """Streamline-count-like SC (not symmetric, some zeros) and tract lengths (0 where no tract)."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 30, size=(N, N)).astype(float)
    np.fill_diagonal(counts, 0)
    return counts, np.where(counts > 0, rng.uniform(5, 120, size=(N, N)), 0.0)


def ref_fc_structure(b, counts, lengths):
    """Pair by pair, from the definitions: r with (W + W')/2, log(1 + that / min positive W), mean length."""
    c = np.corrcoef(b.T)
    N = b.shape[1]
    unit = min(counts[i, j] for i in range(N) for j in range(N) if i != j and counts[i, j] > 0)
    pairs = [(i, j) for i in range(N) for j in range(i + 1, N)]
    fc = np.array([c[i, j] for i, j in pairs])
    sc = np.array([(counts[i, j] + counts[j, i]) / 2 for i, j in pairs])
    ln = np.array([(lengths[i, j] + lengths[j, i]) / 2 for i, j in pairs])
    has = ln > 0
    return [np.corrcoef(fc, sc)[0, 1], np.corrcoef(fc, np.log1p(sc / unit))[0, 1],
            np.corrcoef(fc[has], ln[has])[0, 1]]


def ref_fc_contrast(b, left, right):
    c = np.corrcoef(b.T)
    N = b.shape[1]
    side = {i: 0 for i in left} | {i: 1 for i in right}
    pairs = [(i, j) for i in range(N) for j in range(i + 1, N)]
    v = np.array([c[i, j] for i, j in pairs])
    homo = np.mean([c[i, j] for i, j in zip(left, right)])
    within = np.mean([c[i, j] for i, j in pairs if i in side and j in side and side[i] == side[j]])
    between = np.mean([c[i, j] for i, j in pairs if i in side and j in side and side[i] != side[j]])
    return [(homo - v.mean()) / v.std(), (within - between) / v.std(), v.std() / (1 - v.mean())]
