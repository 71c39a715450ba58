#!/usr/bin/env python
"""Benchmark the cyipopt builds on one screening NLP, measured in one run.

Problem (docs/model.md §2.4, 1-D, LOCAL incentive constraints): N types uniform on
[0, 1] (cell midpoints θ_k, masses p_k = 1/N), variables Q_k >= 0 and t_k,

    max  Σ_k p_k (t_k − c Q_k^(1/η))
    s.t. θ_1 Q_1 − t_1 >= 0                                   (IR, type 1)
         θ_k Q_k − t_k >= θ_k Q_{k−1} − t_{k−1},  k >= 2       (adjacent downward IC)
         Q_k >= Q_{k−1},                          k >= 2       (monotone)

built standalone with Pyomo (no project code) and solved through PyNumero
(``PyomoNLP`` + ``CyIpoptNLP``) with each available cyipopt build:

(a) ``venv``   the project's .venv: cyipopt built against casadi's Ipopt;
(b) ``wheels`` the ``cyipopt-wheels==1.7.0.dev0`` wheel, in a second venv
    ``.build/bench-venv-wheels`` that this script creates if missing.

The same worker code (this file with ``--worker``) runs under each
interpreter in a subprocess, one build after the other, and prints JSON
(build / translate / solve seconds per repeat, iterations, objective, Ipopt
and MUMPS versions).  The parent checks that the objectives agree to 1e-8
relative, compares them with the discrete closed form, and prints a table
and the ratios (best of ``--repeat``).

    .venv/bin/python bench/solver_routes.py [--n 5000] [--repeat 3]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYOMO_CONFIG_DIR = ROOT / ".pyomo"  # PyNumero finds libpynumero_ASL.so in lib/ under it
WHEELS_VENV = ROOT / ".build" / "bench-venv-wheels"
# scipy: PyNumero's PyomoNLP imports scipy.sparse (pinned as in requirements.txt)
WHEELS_REQUIREMENTS = ["pyomo==6.10.1", "numpy==2.4.6", "scipy==1.17.1", "packaging", "cyipopt-wheels==1.7.0.dev0"]
AGREE_RTOL = 1e-8  # both builds solve the same NLP to tol 1e-10: objectives agree to ~1e-12
STATUS = {0: "optimal", 1: "acceptable"}  # Ipopt return codes counted as converged


# ------------------------------------------------------------------ worker
def closed_form_profit(n: int, eta: float, c: float) -> float:
    """Exact optimum of the discrete program (docs/model.md §2.4, no ironing needed for uniform)."""
    import numpy as np

    k = np.arange(1, n + 1)
    theta = (k - 0.5) / n
    p = np.full(n, 1.0 / n)
    P = np.cumsum(p)
    phi = theta.copy()
    phi[:-1] = theta[:-1] - (theta[1:] - theta[:-1]) * (1 - P[:-1]) / p[:-1]
    # C(Q) = c Q^(1/η), C'(Q) = (c/η) Q^(1/η − 1) = φ  ->  Q = (η φ / c)^(η/(1−η))
    Q = np.where(phi > 0, (eta * np.maximum(phi, 0) / c) ** (eta / (1 - eta)), 0.0)
    t = np.empty(n)
    t[0] = theta[0] * Q[0]
    for i in range(1, n):
        t[i] = t[i - 1] + theta[i] * (Q[i] - Q[i - 1])
    return float(np.sum(p * (t - c * Q ** (1 / eta))))


def build_model(n: int, eta: float, c: float):
    import pyomo.environ as pyo

    m = pyo.ConcreteModel(name=f"screening_local_ic_{n}")
    m.TYPES = pyo.RangeSet(1, n)
    m.theta = pyo.Param(m.TYPES, initialize=lambda m, k: (k - 0.5) / n)
    m.p = pyo.Param(m.TYPES, initialize=1.0 / n)
    m.Q = pyo.Var(m.TYPES, bounds=(0, None), initialize=0.1)
    m.t = pyo.Var(m.TYPES, initialize=0.0)
    m.ir = pyo.Constraint(expr=m.theta[1] * m.Q[1] - m.t[1] >= 0)
    m.ic = pyo.Constraint(pyo.RangeSet(2, n), rule=lambda m, k:
                          m.theta[k] * m.Q[k] - m.t[k] >= m.theta[k] * m.Q[k - 1] - m.t[k - 1])
    m.monotone = pyo.Constraint(pyo.RangeSet(2, n), rule=lambda m, k: m.Q[k] >= m.Q[k - 1])
    m.profit = pyo.Objective(expr=sum(m.p[k] * (m.t[k] - c * m.Q[k] ** (1 / eta)) for k in m.TYPES),
                             sense=pyo.maximize)
    return m


def _ipopt_banner() -> str:
    """'This is Ipopt version X, running with linear solver MUMPS Y.' from a 1-type solve."""
    import tempfile

    from pyomo.contrib.pynumero.interfaces.cyipopt_interface import CyIpoptNLP
    from pyomo.contrib.pynumero.interfaces.pyomo_nlp import PyomoNLP

    with tempfile.TemporaryDirectory() as d:
        log = os.path.join(d, "ipopt.log")
        prob = CyIpoptNLP(PyomoNLP(build_model(2, 0.7, 1.0)))
        for k, v in {"print_level": 0, "output_file": log, "file_print_level": 5}.items():
            prob.add_option(k, v)
        prob.solve(prob.x_init())
        prob.close()
        with open(log) as fh:
            for line in fh:
                if line.startswith("This is Ipopt version"):
                    return line.strip()
    return ""


def worker(args) -> dict:
    import numpy as np
    import pyomo
    import pyomo.environ as pyo
    from pyomo.contrib.pynumero.asl import AmplInterface
    from pyomo.contrib.pynumero.interfaces.cyipopt_interface import CyIpoptNLP
    from pyomo.contrib.pynumero.interfaces.pyomo_nlp import PyomoNLP

    import cyipopt

    if not AmplInterface.available():
        raise SystemExit(f"PyNumero ASL library not found (PYOMO_CONFIG_DIR={os.environ.get('PYOMO_CONFIG_DIR')})")
    runs = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        m = build_model(args.n, args.eta, args.c)
        t1 = time.perf_counter()
        nlp = PyomoNLP(m)
        iters = [0]

        def cb(nlp_, problem, alg_mod, iter_count, obj_value, inf_pr, inf_du, mu, d_norm,
               regularization_size, alpha_du, alpha_pr, ls_trials):  # Pyomo >= 6.8 signature
            iters[0] = iter_count
            return True

        prob = CyIpoptNLP(nlp, intermediate_callback=cb)
        for k, v in {"tol": args.tol, "print_level": 0, "max_iter": 3000, **dict(args.ipopt)}.items():
            try:
                prob.add_option(k, v)
            except TypeError:  # cyipopt rejects an int for a real-valued option
                if not isinstance(v, int):
                    raise
                prob.add_option(k, float(v))
        x0 = nlp.init_primals()
        t2 = time.perf_counter()
        x, info = prob.solve(x0)
        t3 = time.perf_counter()
        nlp.set_primals(x)
        nlp.load_state_into_pyomo()
        obj = float(pyo.value(m.profit))
        prob.close()
        t4 = time.perf_counter()
        runs.append({"build": t1 - t0, "translate": (t2 - t1) + (t4 - t3), "solve": t3 - t2,
                     "iterations": iters[0], "status": int(info["status"]), "objective": obj})
        del m, nlp, prob
    v = getattr(cyipopt, "IPOPT_VERSION", None)
    return {
        "python": sys.executable,
        "python_version": ".".join(map(str, sys.version_info[:3])),
        "cyipopt_version": getattr(cyipopt, "__version__", "?"),
        "cyipopt_file": getattr(cyipopt, "__file__", "?"),
        "ipopt_version": ".".join(map(str, v)) if v else "?",
        "ipopt_banner": _ipopt_banner(),
        "pyomo_version": pyomo.version.version,
        "numpy_version": np.__version__,
        "n_variables": nlp_size(args.n)[0],
        "n_constraints": nlp_size(args.n)[1],
        "runs": runs,
    }


def nlp_size(n: int) -> tuple[int, int]:
    return 2 * n, 1 + 2 * (n - 1)


# ------------------------------------------------------------------ parent
def ensure_wheels_venv(log) -> Path | None:
    """Create .build/bench-venv-wheels with cyipopt-wheels if it is not there yet."""
    py = WHEELS_VENV / "bin" / "python"
    check = [str(py), "-c", "import cyipopt, pyomo, numpy, scipy, packaging"]
    if py.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return py
    log(f"creating {WHEELS_VENV.relative_to(ROOT)} (python3.11 -m venv; pip install --pre "
        + " ".join(WHEELS_REQUIREMENTS) + ")")
    try:
        if not py.exists():
            subprocess.run(["python3.11", "-m", "venv", str(WHEELS_VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "--pre", *WHEELS_REQUIREMENTS], check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        log(f"could not set up the cyipopt-wheels venv: {exc}")
        return None
    return py if subprocess.run(check, capture_output=True).returncode == 0 else None


def run_worker(python: Path, args) -> dict:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env["PYOMO_CONFIG_DIR"] = str(PYOMO_CONFIG_DIR)
    if args.threads:
        for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[k] = str(args.threads)
    cmd = [str(python), str(Path(__file__).resolve()), "--worker", "--n", str(args.n), "--repeat",
           str(args.repeat), "--eta", repr(args.eta), "--c", repr(args.c), "--tol", repr(args.tol)]
    for k, v in args.ipopt:
        cmd += ["--ipopt", f"{k}={v!r}" if isinstance(v, float) else f"{k}={v}"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"worker under {python} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _ipopt_option(text: str) -> tuple[str, object]:
    key, sep, val = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    for conv in (int, float):
        try:
            return key, conv(val)
        except ValueError:
            pass
    return key, val


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=5000, help="number of types (default 5000)")
    ap.add_argument("--repeat", type=int, default=3, help="solves per build; the best is reported (default 3)")
    ap.add_argument("--eta", type=float, default=0.7, help="C(Q) = c Q^(1/eta) (default 0.7)")
    ap.add_argument("--c", type=float, default=1.0, help="cost coefficient (default 1)")
    ap.add_argument("--tol", type=float, default=1e-10, help="Ipopt tol (default 1e-10, as the project)")
    ap.add_argument("--threads", type=int, default=None,
                    help="set OMP/OPENBLAS/MKL_NUM_THREADS for the workers (default: leave as is)")
    ap.add_argument("--ipopt", type=_ipopt_option, action="append", default=[], metavar="KEY=VALUE",
                    help="extra Ipopt option for every build, e.g. bound_relax_factor=0 (repeatable)")
    ap.add_argument("--json", type=Path, default=None, help="also write all measurements to this file")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.n < 2 or args.repeat < 1:
        ap.error("--n must be >= 2 and --repeat >= 1")

    if args.worker:
        print(json.dumps(worker(args)))
        return 0

    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    builds = {}
    venv_py = ROOT / ".venv" / "bin" / "python"
    builds["venv (casadi Ipopt)"] = venv_py if venv_py.exists() else Path(sys.executable)
    wheels_py = ensure_wheels_venv(log)
    if wheels_py is not None:
        builds["cyipopt-wheels"] = wheels_py
    nv, nc = nlp_size(args.n)
    print(f"1-D screening, local IC: N={args.n} types ({nv} variables, {nc} constraints), eta={args.eta}, "
          f"c={args.c}, tol={args.tol:g}, best of {args.repeat}")
    print(f"machine: {os.cpu_count()} CPUs, load average at start {os.getloadavg()[0]:.2f}")
    results = {}
    for name, py in builds.items():
        log(f"running {name} ({py}) ...")
        results[name] = run_worker(py, args)
    print(f"load average at end {os.getloadavg()[0]:.2f}\n")

    ref = closed_form_profit(args.n, args.eta, args.c)
    hdr = (f"{'build':<21}{'cyipopt':<12}{'Ipopt':<9}{'MUMPS':<7}{'build s':>9}{'transl. s':>10}"
           f"{'solve s':>9}{'iter':>6}{'status':>12}  {'objective':<20}")
    print(hdr)
    print("-" * len(hdr))
    best = {}
    failed = False
    for name, r in results.items():
        runs = r["runs"]
        b = {k: min(x[k] for x in runs) for k in ("build", "translate", "solve")}
        obj = runs[-1]["objective"]
        best[name] = b | {"objective": obj}
        mumps = r["ipopt_banner"].rsplit("MUMPS", 1)[-1].strip(" .") if "MUMPS" in r["ipopt_banner"] else "?"
        status = "/".join(sorted({STATUS.get(x["status"], str(x["status"])) for x in runs}))
        print(f"{name:<21}{r['cyipopt_version']:<12}{r['ipopt_version']:<9}{mumps:<7}{b['build']:>9.3f}"
              f"{b['translate']:>10.3f}{b['solve']:>9.3f}{runs[-1]['iterations']:>6}{status:>12}  {obj:<20.15g}")
        if any(x["status"] not in STATUS for x in runs):
            print(f"  !! {name}: Ipopt did not converge (status {[x['status'] for x in runs]})")
            failed = True
        objs = {x["objective"] for x in runs}
        if max(objs) - min(objs) > AGREE_RTOL * abs(obj):
            print(f"  !! {name}: repeats disagree: {sorted(objs)}")
            failed = True
    print("\nsolve seconds per repeat: " + "; ".join(
        f"{name}: {[round(x['solve'], 3) for x in r['runs']]}" for name, r in results.items()))

    names = list(best)
    if len(names) == 2:
        a, b = names
        oa, ob = best[a]["objective"], best[b]["objective"]
        rel = abs(oa - ob) / max(abs(oa), abs(ob))
        ok = rel <= AGREE_RTOL
        print(f"objectives agree across builds: rel diff {rel:.2e} ({'ok' if ok else 'FAILED'}, "
              f"tolerance {AGREE_RTOL:g})")
        failed |= not ok
        print(f"\nratio {b} / {a} (best of {args.repeat}; > 1 means {a} is faster):")
        for k in ("build", "translate", "solve"):
            print(f"  {k:<16}{best[b][k] / best[a][k]:>7.2f}x   ({best[b][k]:.3f} s / {best[a][k]:.3f} s)")
        tot_a = sum(best[a][k] for k in ("translate", "solve"))
        tot_b = sum(best[b][k] for k in ("translate", "solve"))
        print(f"  {'translate+solve':<16}{tot_b / tot_a:>7.2f}x   ({tot_b:.3f} s / {tot_a:.3f} s)")
    else:
        print("\nonly one build available: no ratio (see messages above)")
        failed = True

    # Information, not a pass/fail: the exact discrete optimum (docs/model.md §2.4).  With Ipopt's
    # default bound_relax_factor = 1e-8 every one of the N-1 chained IC rows may be violated by
    # 1e-8, which lets t_k drift up by ~k·1e-8: an objective gap ~N·1e-8/2, far above tol.
    rel_cf = (best[names[0]]["objective"] - ref) / abs(ref)
    print(f"\nclosed-form discrete optimum: {ref:.15g}; NLP - closed form = {rel_cf:+.2e} relative")
    if "bound_relax_factor" not in dict(args.ipopt):
        print(f"  (Ipopt's default bound_relax_factor 1e-8 on {args.n - 1} chained IC rows allows "
              f"~{(args.n - 1) / 2 * 1e-8 / abs(ref):.1e}; --ipopt bound_relax_factor=0 removes it)")
    else:
        print(f"  (what remains shrinks with --tol: Ipopt's tol is absolute and the objective's "
              f"gradient entries are p_k = 1/N = {1 / args.n:.0e})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"args": {k: v for k, v in vars(args).items() if k != "json"},
                                         "closed_form": ref, "results": results}, indent=2, default=str))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
