"""Fusion rules beyond a fixed λ with min-max scaling, each judged out of sample
(issue #12, "a fusion that never hurts"): docs/fusion_rules.md.

Input: the maps of ``benchmarks/collect_fusion_maps.py`` (HADGAN at the library defaults,
seed 0: its residual, D_spectral, global RX, the cube's principal components, on the 10 real
scenes and 90 implanted ones, flat and textured). Every family below is given the same
spatial maps (the multi-scale AED map with largest area 49, 121 or 225: the library's
``multiscale`` variant) and, where it has a weight, the same λ grid. Within a family, a
setting is eligible when it meets the implanted rule (mean D_SS ≥ max(mean D_spectral, mean
RX) − 0.01 at every target size); its leave-one-scene-out score picks, for each real scene,
the eligible setting that ``choose_fusion.py``'s rule picks on the other nine, and scores it
on the scene left out. A last row pools every family, so the choice of family is made out of
sample too.

Families (N = the normalisation of each map before the weighted sum):

- ``minmax``: N = min-max (the library's rule; its row reproduces docs/fusion_choice.md);
- ``robust``: N = (m − median) / (99th percentile − median), unbounded above;
- ``zscore``: N = (m − mean) / sd;
- ``log-zscore``: the z-score of log m (RX-type maps are heavy-tailed);
- ``gaussian``: N = max(0, erf((m − mean) / (sd·√2))), Kriegel et al.'s (SDM 2011) unified
  outlier scores;
- ``rank``: N = rank / N (ties averaged);
- ``product``: N(spatial)^λ · N(spectral)^(1−λ) of the min-max maps (a weighted geometric
  mean: a pixel must score in both);
- ``max``: max of the min-max maps (no weight);
- ``guided-spectral``: D_spectral smoothed by a guided filter with the first principal
  component as guide (r = 1, ε = 1e-3 or 1e-2, as the spatial map's), then min-max;
- ``trimmed-spectral``: D_spectral with the residual's mean and covariance re-estimated
  without its top 1 % or 5 % RX pixels (anomalies contaminate the statistics), then min-max;
- ``reliability``: an unsupervised check of each map before weighting it. Each min-max map
  gets a peakedness r (``kurtosis``: its excess kurtosis; ``peak``: the mean of its top
  0.1 % over its mean: a map that singles out few pixels scores high, a map of edges or
  texture low), and the scene's weight is λ = r_spatial^γ / (r_spatial^γ + r_spectral^γ),
  γ ∈ {0.5, 1, 2, 4}, instead of a fixed λ.

Every family is judged twice: with D_spectral itself as its spectral map, and (family name
ending ``+tophat``) with D_spectral's area top-hat over the spatial map's areas
(``hsad.fusion.spectral_tophat``, the library default since 2026-12-02; for the
guided-filtered and trimmed families, the top-hat of their own spectral map). The pooled
rows choose among the plain families, among the top-hat ones, and among all of them.

    .venv/bin/python benchmarks/collect_fusion_maps.py /tmp/fusion_maps
    .venv/bin/python benchmarks/fusion_rules.py /tmp/fusion_maps --out docs/fusion_rules.md
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy.special import erf
from scipy.stats import kurtosis

from hsad import fusion as F
from hsad.engine.covariance import mahalanobis, pinv_precision

sys.path.insert(0, str(Path(__file__).parent))
from choose_fusion import (  # noqa: E402
    LAMS,
    file_aucs,
    implanted_gap,
    leave_one_out,
    mean,
    parse_args,
    report,
    split,
)

AREAS = (49, 121, 225)
RULE = -0.01


def _robust(m):
    med = np.nanmedian(m)
    return (m - med) / (np.nanquantile(m, 0.99) - med)


def _zscore(m):
    return (m - np.nanmean(m)) / np.nanstd(m)


def _log_zscore(m):
    return _zscore(np.log(np.clip(m, 1e-12, None)))


def _gaussian(m):
    return np.clip(erf(_zscore(m) / np.sqrt(2)), 0, None)


NORMS = {"minmax": F.normalise_map, "robust": _robust, "zscore": _zscore,
         "log-zscore": _log_zscore, "gaussian": _gaussian,
         "rank": lambda m: F.normalise_map(m, "rank")}


def _kurtosis(m):
    return max(float(kurtosis(m[np.isfinite(m)])), 1e-6)


def _peak(m):
    v = m[np.isfinite(m)]
    return float(v[v >= np.quantile(v, 0.999)].mean() / max(v.mean(), 1e-12))


PEAKEDNESS = {"kurtosis": _kurtosis, "peak": _peak}
GAMMAS = (0.5, 1, 2, 4)


def trimmed_rx(residual: np.ndarray, spec: np.ndarray, share: float) -> np.ndarray:
    """RX of the residual with its statistics re-estimated without the top ``share`` of
    ``spec`` (the plain RX map)."""
    flat = residual.reshape(-1, residual.shape[-1]).astype(np.float64)
    keep = (spec <= np.nanquantile(spec, 1 - share)).ravel()
    mean_ = flat[keep].mean(axis=0)
    cov = np.cov(flat[keep], rowvar=False, bias=True)
    return mahalanobis(flat, mean_, pinv_precision(cov)).reshape(spec.shape)


def rule_maps(d: dict) -> dict[str, np.ndarray]:
    """Every family's candidate D_SS maps of one map file, keyed ``family | setting``; each
    family twice, against D_spectral and (``family+tophat``) against its area top-hat."""
    spec, pcs = d["spec"], d["pcs"][:, :, :4]
    out = {"rx": d["rx"], "d_spectral": spec}
    guide = F.quantise(pcs[:, :, 0], 0)
    others = {f"guided-spectral | ε={eps}": F.guided_filter(guide, F.normalise_map(spec), 1, eps)
              for eps in (1e-3, 1e-2)}
    others |= {f"trimmed-spectral | top {q:.0%}": trimmed_rx(d["residual"], spec, q)
               for q in (0.01, 0.05)}
    for a in AREAS:
        areas = F.ladder(a)
        sp = F.spatial_aed(pcs, area=areas, radius=1, eps=1e-3)
        for suffix, term in (("", lambda m: m),
                             ("+tophat", lambda m, areas=areas: F.spectral_tophat(m, areas))):
            out |= _family_maps(sp, term(spec), {k: term(m) for k, m in others.items()},
                                a, suffix)
    return out


def _family_maps(sp, spec, others: dict, a: int, suffix: str) -> dict[str, np.ndarray]:
    """The candidates of every family for one spatial map ``sp`` (largest area ``a``) and
    one spectral term ``spec``; ``others``: the alternative spectral maps, keyed
    ``family | setting``; ``suffix`` is appended to every family name."""
    out = {}
    for name, norm in NORMS.items():
        s_n, p_n = norm(sp), norm(spec)
        for lam in LAMS:
            out[f"{name}{suffix} | area={a} λ={lam}"] = lam * s_n + (1 - lam) * p_n
    s_n, p_n = F.normalise_map(sp), F.normalise_map(spec)
    for lam in LAMS:
        out[f"product{suffix} | area={a} λ={lam}"] = s_n ** lam * p_n ** (1 - lam)
    out[f"max{suffix} | area={a}"] = np.maximum(s_n, p_n)
    for name, peakedness in PEAKEDNESS.items():
        r_s, r_p = peakedness(s_n), peakedness(p_n)
        for g in GAMMAS:
            lam = r_s ** g / (r_s ** g + r_p ** g)
            out[f"reliability{suffix} | {name} γ={g} area={a}"] = lam * s_n + (1 - lam) * p_n
    for key, m in others.items():
        family, setting = key.split(" | ")
        m_n = F.normalise_map(m)
        for lam in LAMS:
            out[f"{family}{suffix} | {setting} area={a} λ={lam}"] = lam * s_n + (1 - lam) * m_n
    return out


def family_row(aucs: dict, family: str, keys: list[str]) -> tuple[str, list[str]]:
    """One table row: candidates, eligible ones, best eligible in-sample mean, the
    leave-one-out mean and worst left-out margin over RX; and the settings folds chose."""
    real, _, _ = split(aucs)
    eligible = [k for k in keys if implanted_gap(aucs, k) >= RULE]
    if not eligible:
        return f"| {family} | {len(keys)} | 0 | – | – | – |", []
    best = max(mean(aucs, k, real) for k in eligible)
    folds = leave_one_out(aucs, eligible)
    loo = float(np.mean([aucs[s][k] for s, k in folds]))
    worst = min(aucs[s][k] - aucs[s]["rx"] for s, k in folds)
    return (f"| {family} | {len(keys)} | {len(eligible)} | {best:.4f} | **{loo:.4f}** | "
            f"{worst:+.4f} |", sorted({k for _, k in folds}))


def family_tables(aucs: dict, pools: dict | None = None) -> list[str]:
    """Markdown lines: one row per family of the ``family | setting`` maps in ``aucs`` and
    one per pool (:func:`family_row`), then the settings the folds chose. ``pools`` maps a
    row name to a test on the family name; by default one row pools every family."""
    keys = [k for k in next(iter(aucs.values())) if " | " in k]
    families = list(dict.fromkeys(k.split(" | ")[0] for k in keys))
    pools = pools or {"all families pooled": lambda family: True}
    groups = {f: [k for k in keys if k.split(" | ")[0] == f] for f in families}
    groups |= {name: [k for k in keys if test(k.split(" | ")[0])]
               for name, test in pools.items()}
    rows, chosen = [], []
    for family, members in groups.items():
        row, picks = family_row(aucs, family, members)
        rows.append(row)
        chosen.append(f"- {family}: " + ("; ".join(picks) if picks else "none eligible"))
    return ["| family | settings | eligible | best in-sample | leave-one-out | worst left-out "
            "− RX |", "|---|---|---|---|---|---|", *rows, "",
            "Settings the leave-one-out folds chose:", "", *chosen, ""]


#: the pooled rows of this script's table
POOLS = {"plain families pooled": lambda f: not f.endswith("+tophat"),
         "top-hat families pooled": lambda f: f.endswith("+tophat"),
         "all families pooled": lambda f: True}


def main() -> None:
    args = parse_args(__doc__)
    aucs = file_aucs(args.folder, rule_maps)
    real, implanted, _ = split(aucs)
    text = ["# Fusion rules judged out of sample", "",
            "Written by `benchmarks/fusion_rules.py` (do not edit by hand) from the maps of",
            "`benchmarks/collect_fusion_maps.py` (HADGAN at the library defaults, seed 0) on",
            f"{len(real)} real scenes and {len(implanted)} implanted ones; the families are "
            "described in the script's docstring.", "",
            "AUC(D,F). *eligible*: settings meeting the implanted rule (mean D_SS ≥ "
            "max(D_spectral, RX) − 0.01 at every target size). *best in-sample*: the best "
            "eligible setting's mean over the real scenes, chosen on them (optimistic). "
            "*leave-one-out*: each scene scored with the setting chosen on the other nine. "
            f"Global RX: {mean(aucs, 'rx', real):.4f}; D_spectral alone: "
            f"{mean(aucs, 'd_spectral', real):.4f}.", "", *family_tables(aucs, POOLS)]
    report(text, args.out)


if __name__ == "__main__":
    main()
