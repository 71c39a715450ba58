r"""The menu of token distributions as a *structured* NLP for large type grids
(vectorised numpy callbacks behind ``solver.structured_base()``; no Pyomo
model, no NL file).  Same economics as ``models.distributions.build_menu``;
four exact reductions make it small (the fourth, after the program):

1. **Cell blocks.**  Cells whose columns of W are identical (every type
   values them equally) form one block.  The program is convex and
   invariant under permuting the cells of a block in every item at once,
   so averaging an optimum over those permutations is again an optimum:
   some optimum gives every cell of a block the same tokens.  A block of
   ``b`` cells is one variable of weight b/n.  (Value–scale grids: the
   blocks are the intervals between consecutive s values, so n = 2N cells
   for s at cell midpoints costs the same as n = N.)
2. **Cells the owner does not value.**  Tokens of item l on a cell where
   w^l = 0 are worth nothing to its owner, only raise deviators' values of
   item l and cost money: some optimum has none there (as
   ``MenuProblem.arrays`` zeroes them on read-back), so no variable exists.
3. **Token and fine-tuning classes.**  A cell's tokens x enter only through
   the degree-1 CES index H(x) and cost c·x, so an optimum buys H at the
   unit cost p_X with the unit bundle (``cost.unit_demands``); likewise the
   fine-tuning index.  Tokens per class are read back as H × unit bundle.

With per-block gains g (value of the block per unit weight), the fine-tuning
index z and transfers t, the gain g = Φ(z)·H^σ costs p_X·(g/Φ(z))^(1/σ),
convex in (g, z) when σ+γ ≤ 1 (Hessian determinant ∝ 1/σ − 1 − γ/σ ≥ 0), so
the program is convex with *linear* constraints only, the cost in the
objective::

    min  Σ_l p_l (Σ_b (n_b/n) p_X (g_lb/Φ(z_l))^(1/σ) + p_Z z_l − t_l)
    s.t. value[ω,l]: S_ωl − Σ_b r^ω_b (n_b/n) g_lb = 0
         ir[m]:      a_m S_{ω(m)m} − t_m ≥ 0
         ic[m,l]:    a_m (S_{ω(m)m} − S_{ω(m)l}) − t_m + t_l ≥ 0

4. **Null types.**  Types that value nothing (a_m = 0, e.g. w = 0 on the
   O(1/N²) grid) hold the null item (t = 0, no tokens; exact, as in
   ``models.distributions.build_menu``); their IR row (0 ≥ 0), the IC rows
   towards their item (= the deviator's IR) and from them (t_l ≥ 0, one
   bound per item) are not written.  Those rows are active together and
   linearly dependent at the optimum; with them, MUMPS reported the KKT
   matrix singular on most iterations, Ipopt raised the pivot tolerance to
   0.1 and refactorised 4× per iteration: 20×20 took 69 s and 81 iterations
   ("acceptable") where it now takes 28 iterations, ~2.5 s (session 5,
   print_timing_statistics: 98 % of the time in the PD solves; the
   callbacks 0.8 %).  That was the "1.5–2.8 s per iteration" of session 4.
   (An epigraph form, h ≥ φ(g, z) as rows with a linear objective, needs 53
   iterations on 20×20 against 28 for this one.)

(W = a·r^ω, rows as in models.distributions).  IC rows are generated lazily
(``models.lazy_ic``): each round rebuilds this NLP with the working set (numpy
only) and starts Ipopt from the previous round's primal point.  Only K ≤ 1
fine-tuning in baseline form or homogeneous Φ of any K is covered (Φ of the
scalar index z: (b+z)^γ or z^γ).  The Pyomo form stays the default for small
grids: it keeps the token classes as variables, so its check of the per-class
split is not implied by reduction 3.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from models import solver
from models.closed_form import cost as cf
from models.closed_form import distributions as D

_INF = 2e19


# Ipopt options of this formulation on top of the regime's
# (models.distributions.DIST_SOLVER_DEFAULTS).  MUMPS's pivot tolerance: at
# the default 1e-6 the factor grew from 2.5M to 13.5M doubles over the last
# iterations of the 40×40 grid (delayed pivots as μ → 0; types pooled on the
# null item keep the active set degenerate) and the Ipopt CPU time was 21.9 s;
# at 1e-8 it was 11.7 s, same optimum to 1e-15 relative (session 5).  Ipopt
# checks every solve's residual and raises the tolerance (up to
# mumps_pivtolmax) when a solve is inaccurate, so this is a start, not a
# loosening.
SOLVER_DEFAULTS = {"mumps_pivtol": 1e-8}


def supported(tech) -> bool:
    """Technologies this formulation writes exactly: Φ of one scalar
    fine-tuning index (baseline form with K ≤ 1, or homogeneous Φ of any K),
    and σ + γ ≤ 1 (the cost (g/Φ(z))^(1/σ) jointly convex)."""
    return (not tech.has_baseline or tech.K <= 1) and tech.sigma + (tech.gamma if tech.K else 0.0) <= 1.0


def cell_blocks(W):
    """Blocks of identical columns of W: (block of each cell (n,), first cell
    of each block (B,), cells per block (B,))."""
    _, first, inv, cnt = np.unique(np.asarray(W).T, axis=0, return_index=True, return_inverse=True,
                                   return_counts=True)
    return inv.ravel(), first, cnt


class _ReducedMenuNLP:
    """One round's NLP: types ``W`` (M, n), masses, IC ``pairs`` (k, 2).
    Used as ``ReducedMenuNLP`` (:func:`nlp_class`), which adds the cyipopt
    base class."""

    def __init__(self, tech, W, mass, pairs, scales, start=None, g_floor=0.0, z_floor=0.0):
        from models.distributions import _directions

        self.tech = tech
        W = np.asarray(W, float)
        M, n = W.shape
        self.M, self.n = M, n
        self.p = np.asarray(mass, float) / np.sum(mass)
        blk, first, cnt = cell_blocks(W)
        self.blk, self.first, self.cnt = blk, first, cnt
        Wb = W[:, first]  # (M, B)
        self.wt = cnt / n  # weight of a block in every sum
        a, R, omega = _directions(Wb)
        self.a, self.R, self.omega = a, R, omega
        # g variables: (item l, block b) where the owner values b
        gl, gb = np.nonzero(Wb > 0)
        self.gl, self.gb = gl, gb
        G = len(gl)
        self.G = G
        gid = -np.ones(Wb.shape, int)
        gid[gl, gb] = np.arange(G)
        self.gid = gid
        self.hz = tech.K > 0 and tech.gamma > 0
        self.nz = M if self.hz else 0
        self.iz = G
        self.it = self.iz + self.nz
        # value variables S[ω, l] for the rows' needs.  Types that value
        # nothing (a_m = 0: w = 0) hold the null item (t = 0, no tokens;
        # exact, as in models.distributions.build_menu), which removes three
        # kinds of rows that are identities or duplicates there and make
        # every such pair a linearly dependent active set (LICQ fails;
        # measured on 20×20: MUMPS "matrix is singular" on most iterations,
        # the pivot tolerance raised to 0.1, 348 factorizations for 81
        # iterations): IR of a null type (0 ≥ 0); IC towards a null item
        # (= the deviator's IR, its value of the null item being 0); IC from
        # a null type m to l (t_l ≥ t_m = 0: one bound t_l ≥ 0 for every l,
        # exact once any null type exists, whether or not the pair is in
        # the working set, since it is a row of the all-pairs program)
        pairs = np.asarray(pairs, int).reshape(-1, 2)
        served = a > 0
        self.served = served
        self.t_lb0 = bool(np.any(~served))
        pairs = pairs[served[pairs[:, 0]] & served[pairs[:, 1]]] if len(pairs) else pairs
        self.pairs = pairs
        need = set()
        for m in np.flatnonzero(served):
            need.add((omega[m], m))
        for m, l in pairs:
            need.add((omega[m], l))
        keys = sorted(need)
        self.keys = keys
        sidx = {k: i for i, k in enumerate(keys)}
        P = len(keys)
        self.iS = self.it + M
        self.nv = self.iS + P
        # linear rows: value (P, = 0), IR (served types, >= 0), IC (len(pairs), >= 0)
        r_, c_, v_ = [], [], []
        for i, (om, l) in enumerate(keys):
            bs = np.flatnonzero((R[om] > 0) & (gid[l] >= 0))
            r_ += [i] * (len(bs) + 1)
            c_ += [self.iS + i] + list(gid[l, bs])
            v_ += [1.0] + list(-R[om, bs] * self.wt[bs])
        row = P
        for m in np.flatnonzero(served):
            r_ += [row, row]
            c_ += [self.iS + sidx[(omega[m], m)], self.it + m]
            v_ += [a[m], -1.0]
            row += 1
        for m, l in pairs:
            om = omega[m]
            r_ += [row] * 4
            c_ += [self.iS + sidx[(om, m)], self.iS + sidx[(om, l)], self.it + m, self.it + l]
            v_ += [a[m], -a[m], -1.0, 1.0]
            row += 1
        self.nlin, self.P = row, P
        self.nrow = row
        A = sp.coo_matrix((v_, (r_, c_)), shape=(row, self.nv)).tocsr()
        A.sum_duplicates()
        self.A = A
        Ac = A.tocoo()
        self._jr, self._jc = Ac.row.copy(), Ac.col.copy()
        self._Av = Ac.data
        # objective constants
        s = tech.sigma
        self.ea = 1.0 / s
        self.ee = tech.gamma / s if self.hz else 0.0
        self.b0 = float(tech.baseline) if (self.hz and tech.has_baseline) else 0.0
        self.pX, self.pZ = cf.p_X(tech), (cf.p_Z(tech) if self.hz else 0.0)
        self.k = self.p[gl] * self.wt[gb] * self.pX  # weight of each block's cost φ = (g/Φ(z))^(1/σ)
        # Hessian structure (lower triangle): (g,g), (z_l, g) for each g, (z_l, z_l)
        if self.hz:
            zg = self.iz + gl
            self._hr = np.concatenate([np.arange(G), zg, self.iz + np.arange(M)])
            self._hc = np.concatenate([np.arange(G), np.arange(G), self.iz + np.arange(M)])
        else:
            self._hr = self._hc = np.arange(G)
        # bounds, scaling, start
        self.g_floor, self.z_floor = g_floor, z_floor
        self.sc = scales
        xs = np.concatenate([np.full(G, 1 / scales["Q"]), np.full(self.nz, 1 / scales["z"]),
                             np.full(M, 1 / scales["t"]), np.full(P, 1 / scales["Q"])])
        gs = np.concatenate([np.full(P, 1 / scales["Q"]), np.full(row - P, 1 / scales["t"])])
        self._scaling = (1 / scales["profit"], xs, gs)
        self._x0 = self.start_vector(start)
        super().__init__()

    # ------------------------------------------------------------ start
    def start_vector(self, start):
        """``start`` = (g per (item, block) (M, B) array, z (M,), t (M,)); S from g."""
        M = self.M
        gB, z, t = start
        g = np.maximum(np.asarray(gB, float)[self.gl, self.gb], max(self.g_floor, 1e-6 * self.sc["Q"]))
        v = np.zeros(self.nv)
        v[: self.G] = g
        if self.hz:
            v[self.iz: self.it] = np.maximum(np.asarray(z, float), max(self.z_floor, 1e-6 * self.sc["z"]))
        v[self.it: self.it + M] = np.where(self.served, t, 0.0)
        if self.hz:
            v[self.iz: self.it][~self.served] = self.z_floor
        v[self.iS:] = self._S_of(g)
        return v

    def _S_of(self, g):
        out = np.empty(self.P)
        for i, (om, l) in enumerate(self.keys):
            bs = np.flatnonzero((self.R[om] > 0) & (self.gid[l] >= 0))
            out[i] = np.sum(self.R[om, bs] * self.wt[bs] * g[self.gid[l, bs]])
        return out

    # ------------------------------------------------ problem interface
    def x_init(self):
        return self._x0

    def x_lb(self):
        tl = np.where(self.served, 0.0 if self.t_lb0 else -_INF, 0.0)
        return np.concatenate([np.full(self.G, self.g_floor), np.full(self.nz, self.z_floor),
                               tl, np.full(self.P, -_INF)])

    def x_ub(self):
        ub = np.full(self.nv, _INF)
        ub[self.it: self.it + self.M][~self.served] = 0.0  # the null item: t = 0 (fixed)
        if self.hz:
            ub[self.iz: self.it][~self.served] = self.z_floor  # no fine-tuning on the null item (fixed)
        return ub

    def g_lb(self):
        return np.zeros(self.nrow)

    def g_ub(self):
        return np.concatenate([np.zeros(self.P), np.full(self.nlin - self.P, _INF)])

    def scaling_factors(self):
        return self._scaling

    def _parts(self, v):
        g = v[: self.G]
        u = (v[self.iz: self.it][self.gl] + self.b0) if self.hz else np.ones(self.G)
        return g, u

    def _phi(self, v):
        """(g/Φ(z))^(1/σ) = g^a u^(−e) per block, a = 1/σ, e = γ/σ, u = b + z."""
        g, u = self._parts(v)
        return g**self.ea * u**(-self.ee)

    def objective(self, v):
        z = v[self.iz: self.it]
        return float(self.k @ self._phi(v) + (np.sum(self.p * self.pZ * z) if self.hz else 0.0)
                     - self.p @ v[self.it: self.it + self.M])

    def gradient(self, v):
        out = np.zeros(self.nv)
        g, u = self._parts(v)
        a, e = self.ea, self.ee
        out[: self.G] = self.k * a * g**(a - 1) * u**(-e)
        if self.hz:
            out[self.iz: self.it] = np.bincount(self.gl, -self.k * e * g**a * u**(-e - 1), minlength=self.M)
        if self.hz:
            out[self.iz: self.it] += self.p * self.pZ
        out[self.it: self.it + self.M] = -self.p
        return out

    def constraints(self, v):
        return self.A @ v

    def jacobianstructure(self):
        return self._jr, self._jc

    def jacobian(self, v):
        return self._Av

    def hessianstructure(self):
        return self._hr, self._hc

    def hessian(self, v, lam, obj_factor):
        # the rows are linear: the Lagrangian's Hessian is the objective's, Σ_i k_i ∇²φ_i times obj_factor
        g, u = self._parts(v)
        a, e = self.ea, self.ee
        c = obj_factor * self.k
        ugg = c * a * (a - 1) * g**(a - 2) * u**(-e)
        if not self.hz:
            return ugg
        ugz = -c * a * e * g**(a - 1) * u**(-e - 1)
        uzz = np.bincount(self.gl, c * e * (e + 1) * g**a * u**(-e - 2), minlength=self.M)
        return np.concatenate([ugg, ugz, uzz])

    def profit(self, v) -> float:
        return -self.objective(v)

    # ---------------------------------------------------------- results
    def blocks(self, v):
        """(g (M, B), z (M,), t (M,)) at v."""
        gB = np.zeros(self.gid.shape)
        gB[self.gl, self.gb] = v[: self.G]  # (tokens are read back from g: the least index that delivers it)
        z = v[self.iz: self.it] if self.hz else np.zeros(self.M)
        return gB, z, v[self.it: self.it + self.M].copy()


# ------------------------------------------------------------ end polish
# The interior point stops at a final barrier parameter μ ≈ 5e-13 (scaled):
# every bound whose multiplier is ~0 (the g ≥ 0 bounds of excluded types at
# the exclusion boundary, virtual value ±1/N) is off by ~√(μ/k), k ∝ 1/M the
# block's cost weight.  On 80×80 that left Q 2.4e-6 of max Q off the
# discrete closed form (session 5; 40×40: 2.2e-7).  The end polish re-solves
# the round's program from that point with the barrier continued downwards:
# μ starts at END_MU (about where the first solve stopped), the bound
# multipliers start at μ/slack (``bound_mult_init_method = mu-based``, i.e.
# on the central path of the point), the point is not pushed into the
# interior (bound_push 1e-14), and μ falls monotonically to END_MU_MIN with
# the complementarity test tightened to match.  Measured on 40×40 (session
# 6): 8 iterations, 4.4 s CPU (the first solve: 33 iterations, ~12 s),
# Q 2.2e-7 -> 1.1e-11 of max Q.
#
# Tried and rejected (session 6): an active-set polish (impose the rows and
# bounds the interior point marks active as equalities and fixed values,
# solve the equality-constrained program by Newton).  Exact on 8×8 and
# 20×20 (Q to 1e-15), but on 40×40 the identification is ambiguous: bound
# multipliers of excluded types (~1e-6 scaled) are within a factor 3 of
# their slacks, and inactive rows have slacks of 3e-9..5e-8 (< √μ); the
# face it chose was feasible and 1.5e-12 *more* profitable than the
# interior point yet excluded the lowest served column (Q 2.8e-5 of max Q
# off), so neither feasibility nor profit can accept a face.
END_MU = 1e-13
# μ and complementarity at the end: an excluded type's gain is ≈ μ/z with z
# its bound multiplier (~1e-6 scaled on 40×40), so μ = 1e-17 puts it at
# ~1e-11, below the closed-form row's 1e-6 by five decades; compl_inf_tol is
# unscaled (money × quantity units ~1e-4 × 1e-4) and must not stop it first.
END_MU_MIN = 1e-17
# MUMPS pivot tolerance 1e-12 at the end: as μ falls the barrier diagonal
# z/x spans ~30 decades (active bounds z/x ~ 1e12·…, inactive ~1e-12), and at
# the first solve's 1e-8 MUMPS delayed so many pivots that the 8 end
# iterations took 45 s CPU in the PD solves on 40×40; at 1e-12, 3.5 s, the
# same point (Q 1.5e-11 vs 1.1e-11).  Ipopt checks each solve's residual and
# raises the tolerance when a solve is inaccurate, so this is a start.
END_OPTIONS = {"mu_strategy": "monotone", "mu_init": END_MU, "mu_min": END_MU_MIN, "compl_inf_tol": 1e-19,
               "bound_mult_init_method": "mu-based", "bound_push": 1e-14, "bound_frac": 1e-14,
               "slack_bound_push": 1e-14, "slack_bound_frac": 1e-14, "mumps_pivtol": 1e-12}
# Feasibility of the polished point for the round's rows and bounds, in
# Ipopt's scaled units (rows and variables O(1)): solved to tol 1e-12 with
# linear rows, a correct solve violates nothing by more than ~1e-12; 1e-11
# is ten times that and a thousand times below the lazy loop's LAZY_TOL.
POLISH_FEAS = 1e-11


def _violations(nlp, xp):
    """Scaled violations of the round's rows (P..nrow) and lower bounds at xp."""
    obj_s, xs, gs = nlp._scaling
    P = nlp.P
    row = -gs[P:] * (nlp.A @ xp)[P:]
    lb = np.asarray(nlp.x_lb())
    bnd = np.where(lb > -1e19, xs * (lb - xp), -np.inf)
    return row, bnd


def polish(nlp, make, r, defaults, ctx=None, label=""):
    """The end polish of a round's optimal interior point (see above), on
    ``make()``, a new instance of the round's NLP.  -> (x, info); x is r.x unless the
    polished solve is optimal, feasible (POLISH_FEAS) and at least as
    profitable (round-off 1e-14 of the scaled objective)."""
    import time

    t0 = time.perf_counter()
    x = np.asarray(r.x, float)
    nlp2 = make()
    nlp2._x0 = x.copy()
    opts = {**(defaults or {}), **END_OPTIONS}
    if ctx is not None:
        rf = ctx.solve_structured(nlp2, label + " [end polish]", 0.0, defaults=opts)
    else:
        rf = solver.solve_structured(nlp2, options=opts, allow_nonoptimal=True)
    info = {"accepted": False, "iterations": rf.iterations, "status": rf.status.value}
    if rf.ok:
        xp = np.asarray(rf.x, float)
        vr, vb = _violations(nlp, xp)
        info["violation"] = float(max(np.max(vr, initial=0), np.max(vb, initial=0)))
        info["profit_change"] = float(nlp.profit(xp) - nlp.profit(x))
        if info["violation"] <= POLISH_FEAS and info["profit_change"] >= -1e-14 / nlp._scaling[0]:
            info["accepted"] = True
            info["seconds"] = time.perf_counter() - t0
            return xp, info
        info["why"] = "infeasible" if info["violation"] > POLISH_FEAS else "less profitable"
    else:
        info["why"] = f"solve {rf.status.value}"
    info["seconds"] = time.perf_counter() - t0
    return x, info


_NLP_CLASS = None


def nlp_class():
    """``ReducedMenuNLP``: the callbacks above on ``solver.structured_base()``.
    Created on first use, so that importing this module (as
    models.distributions does to ask :func:`supported`) needs no cyipopt."""
    global _NLP_CLASS
    if _NLP_CLASS is None:
        _NLP_CLASS = type("ReducedMenuNLP", (_ReducedMenuNLP, solver.structured_base()), {"__module__": __name__})
    return _NLP_CLASS


def __getattr__(name):  # models.distribution_nlp.ReducedMenuNLP (PEP 562)
    if name == "ReducedMenuNLP":
        return nlp_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def cell_gains(gB, blk):
    """Per-cell gains (M, n) from per-block gains."""
    return gB[:, blk]


def menu_from_blocks(tech, W, mass, gB, z, t, blk, z_lo=0.0) -> D.DistributionMenu:
    """The DistributionMenu (tokens per cell and class) of per-block gains.
    Gains and fine-tuning are put back on their bounds g >= 0, z >= ``z_lo``
    first: Ipopt's slack_move can return a point just outside a bound whose
    slack fell below machine precision (models.distributions.MenuProblem.arrays,
    value_scale_197_2: z < 0 made the fine-tuning cost negative).  Tokens are
    then read back from the gains, so a raised z only lowers the tokens and
    every row (in g and t) is unchanged."""
    M, n = W.shape
    gB = np.maximum(np.asarray(gB, float), 0.0)
    z = np.maximum(np.asarray(z, float), z_lo)
    G = cell_gains(gB, blk) * (W > 0)
    hz = tech.K > 0 and tech.gamma > 0
    Phi = (z + (tech.baseline if tech.has_baseline else 0.0)) ** tech.gamma if hz else np.ones(M)
    H = (G / Phi[:, None]) ** (1.0 / tech.sigma)
    x = H[..., None] * cf.unit_demands(tech.alpha, tech.cost, tech.rho)[None, None, :]
    zc = (z[:, None] * cf.unit_demands(tech.alpha_hat, tech.cost_hat, tech.rho_hat)[None, :]
          if (tech.K and not tech.has_baseline) else (z[:, None] if tech.K else np.zeros((M, 0))))
    if tech.K and not hz:
        zc = np.zeros((M, tech.K))
    X = D.aggregate_tokens(x)
    Q = cf.psi(tech, X) * (cf.phi(tech, zc) if tech.K else 1.0)
    p = np.asarray(mass, float) / np.sum(mass)
    return D.DistributionMenu(W=W, mass=p, x=x, z=zc, t=t, Q=np.asarray(Q),
                              profit=float(np.sum(p * (t - D.item_cost(x, zc, tech)))), regime="NLP-reduced")


def block_start(tech, types, start):
    """A start (x per type, cell and class (M, n, J), z per class (M, K), t
    (M,)) as models.distributions.solve_menu takes it -> (g per block, z
    index, t) of :class:`ReducedMenuNLP`."""
    x, zc, t = start
    hz = tech.K > 0 and tech.gamma > 0
    _, first, _ = cell_blocks(types.W)
    Gc = D.gain_profile(np.asarray(x, float), np.asarray(zc, float), tech)
    z = (zc[:, 0] if tech.has_baseline else cf.ces_index(zc, tech.alpha_hat, tech.rho_hat)) if hz \
        else np.zeros(types.M)
    return Gc[:, first], np.asarray(z, float), np.asarray(t, float)


class ReducedLazy:
    """``models.lazy_ic`` protocol for :class:`ReducedMenuNLP`: the working set
    of pairs, the last solution, the numpy utilities from the tokens."""

    def __init__(self, tech, types, ctx, label, defaults, start=None, polish=True):
        from models.distributions import G_FLOOR, Z_FLOOR, _scales, neutral_start

        self.tech, self.types, self.ctx, self.label, self.defaults = tech, types, ctx, label, defaults
        W = types.W
        self.n_types = types.M
        sc = _scales(tech, W, types.mass)
        hz = tech.K > 0 and tech.gamma > 0
        zs = float(cf.ces_index(np.atleast_2d(sc["Z"]), tech.alpha_hat, tech.rho_hat)[0]) if (
            hz and not tech.has_baseline) else (float(np.max(sc["Z"])) if hz else 1.0)
        Hs = float(cf.ces_index(np.atleast_2d(sc["X"]), tech.alpha, tech.rho)[0]) if tech.J > 1 else float(sc["X"][0])
        self.scales = {"Q": sc["Q"], "H": max(Hs, 1e-300), "z": max(zs, 1e-300), "t": sc["t"], "profit": sc["profit"]}
        self.money_scale = sc["t"]
        self.g_floor = G_FLOOR * sc["Q"] if tech.sigma > 0.5 else 0.0
        self.z_floor = Z_FLOOR * zs if (hz and not tech.has_baseline) else 0.0
        self.blk, first, _ = cell_blocks(W)
        self.state = block_start(tech, types, neutral_start(tech, types) if start is None else start)
        self._pairs: set = set()
        self.build_log: list[float] = []  # seconds to build each round's NLP (numpy)
        self.polish = polish  # end polish after each optimal round (see ``polish``)
        self.polish_log: list[dict] = []
        self.nlp = None
        self.last = None

    def n_pairs(self) -> int:
        return len(self._pairs)

    def add_pairs(self, pairs) -> int:
        n0 = len(self._pairs)
        self._pairs.update((int(m), int(l)) for m, l in np.asarray(pairs, int).reshape(-1, 2) if m != l)
        return len(self._pairs) - n0

    def solve(self, _warm=None):
        import time

        t0 = time.perf_counter()
        pairs = np.array(sorted(self._pairs), int)

        def make():
            return nlp_class()(self.tech, self.types.W, self.types.mass, pairs, self.scales, start=self.state,
                               g_floor=self.g_floor, z_floor=self.z_floor)

        nlp = make()
        build = time.perf_counter() - t0
        self.build_log.append(build)
        opts = {**(self.defaults or {}), **SOLVER_DEFAULTS}
        r = self.ctx.solve_structured(nlp, self.label, build, defaults=opts)
        if self.polish and r.ok:
            xp, info = polish(nlp, make, r, opts, self.ctx, self.label)
            self.polish_log.append(info)
            r.solve_seconds += info.get("seconds", 0.0)
            if info["accepted"]:
                r.x, r.objective = xp, float(nlp.profit(xp))
        self.nlp, self.last = nlp, r
        self.state = nlp.blocks(r.x)
        self.build_seconds = build
        return r

    def utilities(self):
        """From the tokens read back (menu), not from the NLP's gains."""
        mu = self.menu()
        G = D.gain_profile(mu.x, mu.z, self.tech)
        W, n, t = self.types.W, self.types.n, mu.t
        return lambda rows: W[rows] @ G.T / n - t[None, :]

    def menu(self) -> D.DistributionMenu:
        gB, z, t = self.state
        return menu_from_blocks(self.tech, self.types.W, self.types.mass, gB, z, t, self.blk, self.z_floor)
