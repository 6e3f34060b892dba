"""Generate ``qmeq_reference.csv``: ``anderson`` and ``single_level`` by QmeQ 1.1's Pauli solver.

QmeQ (G. Kiršanskas et al., Comput. Phys. Commun. 221, 317 (2017); github.com/gedaskir/qmeq)
is an independent implementation of the same sequential-tunnelling master equation. Its
package-index source does not build on Python 3.11, its repository does, so the comparison is
golden data: this script builds QmeQ from a source tree in a venv of its own, evaluates random
points and writes the CSV beside itself with the QmeQ commit recorded in a comment line.
``tests/test_anderson.py`` compares the models with the file.

Usage (from the repository root; needs network access only for pip)::

    python3 tests/data/make_qmeq_reference.py /path/to/qmeq-source [--commit SHA]
        [--venv /tmp/qmeq-venv]

(the commit is read with ``git rev-parse HEAD`` when the tree is a git checkout). Release 1.1
is commit 8212daa97e34c6497a2462af79994c157616777b. The venv gets ``numpy<2 scipy<1.12 cython
setuptools<61 wheel`` and then ``pip install --no-build-isolation <source>``.

QmeQ setup (conventions checked numerically, not assumed: ``U = 0`` must give twice the
single level, and it does to 1e-15)::

    anderson:     nsingle=2, hsingle={(0,0): eps, (1,1): eps}, coulomb={(0,1,1,0): U},
                  leads 0..3 = (L up, R up, L down, R down),
                  tleads={(0,0): t_L, (1,0): t_R, (2,1): t_L, (3,1): t_R}, t_v = sqrt(gamma_v/2pi)
    single_level: nsingle=1, leads (L, R), tleads={(0,0): t_L, (1,0): t_R}
    kerntype='Pauli', itype=3 (no band-edge integrals), dband=1e4

QmeQ's ``current[l]`` is the particle current out of lead l and ``heat_current[l]`` the heat
out of lead l, so ``J_L = I_0 (+ I_2)``, ``Q_L = H_0 (+ H_2)``, ``Q_R = -(H_1 (+ H_3))``.
QmeQ forms ``1 - f`` by subtraction, which costs ``1e-16 / min(f, 1 - f)`` relative: points
are kept only where every transition has ``|x| = |(E - mu_v)/T_v| <= XMAX = 15`` (loss at most
~3e-10; U up to 30 T still fits with the two levels on either side of the leads' mu). The
file is deterministic (fixed seed).
"""

from __future__ import annotations

import argparse
import csv
import math
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "qmeq_reference.csv"
SEED = 20261201
N_ANDERSON = 300
N_SINGLE = 100
XMAX = 15.0
COLUMNS = ("model", "eps", "U", "T", "dT", "dV", "mu", "gamma_L", "gamma_R", "J_L", "Q_L",
           "Q_R")


def _draw(rng, model):
    """One point with every transition |x| <= XMAX, asymmetric rates, both bias signs."""
    while True:
        T = 10.0 ** rng.uniform(-0.5, 1.0)
        U = rng.uniform(0.0, 30.0) * T if model == "anderson" else 0.0
        dT = rng.uniform(-1.6, 1.6) * T * (1.0 - U / (40.0 * T))  # room for large U
        dV = rng.uniform(-8.0, 8.0) * T
        mu = rng.uniform(-2.0, 2.0)
        eps = mu + rng.uniform(-15.0, 15.0) * T - (U / 2 if model == "anderson" else 0.0)
        gL, gR = 10.0 ** rng.uniform(-1.5, 1.5), 10.0 ** rng.uniform(-1.5, 1.5)
        levels = (eps, eps + U) if model == "anderson" else (eps,)
        xs = [abs((e - m) / t) for e in levels for m, t in ((mu + dV / 2, T + dT / 2),
                                                            (mu - dV / 2, T - dT / 2))]
        if max(xs) <= XMAX:
            return dict(model=model, eps=eps, U=U, T=T, dT=dT, dV=dV, mu=mu, gamma_L=gL,
                        gamma_R=gR)


def _qmeq_point(qmeq, np, p):
    TL, TR = p["T"] + p["dT"] / 2, p["T"] - p["dT"] / 2
    mL, mR = p["mu"] + p["dV"] / 2, p["mu"] - p["dV"] / 2
    tL, tR = math.sqrt(p["gamma_L"] / (2 * math.pi)), math.sqrt(p["gamma_R"] / (2 * math.pi))
    if p["model"] == "anderson":
        system = qmeq.Builder(nsingle=2, hsingle={(0, 0): p["eps"], (1, 1): p["eps"]},
                              coulomb={(0, 1, 1, 0): p["U"]}, nleads=4,
                              mulst={0: mL, 1: mR, 2: mL, 3: mR},
                              tlst={0: TL, 1: TR, 2: TL, 3: TR}, dband=1e4,
                              tleads={(0, 0): tL, (1, 0): tR, (2, 1): tL, (3, 1): tR},
                              kerntype="Pauli", itype=3)
    else:
        system = qmeq.Builder(nsingle=1, hsingle={(0, 0): p["eps"]}, coulomb={}, nleads=2,
                              mulst={0: mL, 1: mR}, tlst={0: TL, 1: TR}, dband=1e4,
                              tleads={(0, 0): tL, (1, 0): tR}, kerntype="Pauli", itype=3)
    system.solve()
    I, H = np.asarray(system.current), np.asarray(system.heat_current)
    if p["model"] == "anderson":
        return I[0] + I[2], H[0] + H[2], -(H[1] + H[3])
    return I[0], H[0], -H[1]


def worker(out_path: str, commit: str) -> None:
    """Runs inside the QmeQ venv: draw the points, solve them, write the CSV."""
    import numpy as np
    import qmeq

    rng = np.random.default_rng(SEED)
    rows = [_draw(rng, "anderson") for _ in range(N_ANDERSON)]
    rows += [_draw(rng, "single_level") for _ in range(N_SINGLE)]
    with open(out_path, "w", newline="") as fh:
        fh.write(f"# QmeQ {qmeq.__version__ if hasattr(qmeq, '__version__') else '1.1'} "
                 f"commit {commit}, Pauli kernel, itype=3; generated by "
                 f"tests/data/make_qmeq_reference.py (seed {SEED}, |x| <= {XMAX})\n")
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        for p in rows:
            J, QL, QR = _qmeq_point(qmeq, np, p)
            w.writerow([p["model"]] + [repr(float(p[k])) for k in COLUMNS[1:9]]
                       + [repr(float(J)), repr(float(QL)), repr(float(QR))])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", nargs="?", help="path to a QmeQ 1.1 source tree")
    ap.add_argument("--commit", help="QmeQ commit of the tree (default: git rev-parse HEAD)")
    ap.add_argument("--venv", default="/tmp/qmeq-venv")
    ap.add_argument("--worker", nargs=2, metavar=("OUT", "COMMIT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    if not args.source:
        ap.error("the path to a QmeQ source tree is required")
    commit = args.commit or subprocess.run(
        ["git", "-C", args.source, "rev-parse", "HEAD"], capture_output=True, text=True,
        check=True).stdout.strip()
    venv = Path(args.venv)
    py = venv / "bin" / "python"
    if not (py.exists() and subprocess.run([str(py), "-c", "import qmeq"]).returncode == 0):
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "numpy<2", "scipy<1.12", "cython",
                        "setuptools<61", "wheel"], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "--no-build-isolation", args.source],
                       check=True)
    subprocess.run([str(py), str(Path(__file__).resolve()), "--worker", str(OUT), commit],
                   check=True, cwd="/")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
