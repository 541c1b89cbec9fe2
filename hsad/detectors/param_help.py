"""What each hyperparameter means, with its unit: the text ``hsad methods`` prints.

:data:`COMMON` holds the names shared by several detectors (one meaning each across hsad);
:data:`SPECIFIC` the names one detector adds, keyed ``"detector:name"``. A test checks that
every parameter of every registered detector has a meaning here.
"""

from __future__ import annotations

import inspect
import textwrap

#: Parameters that say how to run, not what is computed: not listed by ``hsad methods``.
RUNTIME = ("device", "progress")

COMMON = {
    # classic detectors
    "ridge": "diagonal loading of the covariance, as a share of its mean eigenvalue "
             "tr(Σ)/B (0 = pseudo-inverse only)",
    "dtype": ("precision of the scores and the map (float32 or float64); the statistics "
              "are always float64"),
    "inner": "inner guard window, pixels (odd; excluded from the background)",
    "outer": "outer window, pixels (odd; the ring between it and the guard window is the "
             "local background)",
    "pca": "project the cube on this many leading principal components first (None = all "
           "bands)",
    # neural detectors: input, networks, training
    "input": "what the network sees: 'pixel' (one spectrum) or 'patch' (a k×k×B "
             "neighbourhood)",
    "patch": "patch side k, pixels (odd; input='patch')",
    "hidden": "width of the hidden layers (units)",
    "depth": "number of hidden layers in each network",
    "latent": "latent size (None = int(√B + 1))",
    "channels": "convolution channels of the first stage",
    "epochs": "training epochs (passes over the training sample)",
    "batch_size": "training batch, spectra (or patches)",
    "lr": "Adam learning rate",
    "sample_size": "background pixels drawn (seeded) to train on",
    "normalisation": "per-band input scaling before the network, robust to anomalies: "
                     "'percentile' (2-98 %), 'iqr' or 'std'",
    "train_window": "train only on rows r0..r1-1, columns c0..c1-1 (r0,r1,c0,c1; None = "
                    "the whole scene)",
    "seed": "random seed (CPU runs are deterministic for a seed)",
    "device": "where the networks run: 'auto' (CUDA when present), 'cpu' or 'cuda'",
    "progress": "show training and tile progress bars (None: when stderr is a terminal)",
    "early_stopping": "stop when the monitored loss has not improved for this many epochs "
                      "(None = off)",
    "output": "which map score() returns: the plain paper score (None), another of the "
              "model's score terms, or a fusion stage (d_spectral, d_spatial, d_ss)",
    "disc_hidden": "width of the discriminator's hidden layers (units)",
    "dropout": "dropout rate in the discriminators while training",
    "w_adv": "weight of the adversarial loss",
    # the fusion stage D_SS = λ·D_spatial + (1 − λ)·D_spectral
    "fusion": "spatial variant of D_SS: 'multiscale', 'aed' or 'paper' (docs/hadgan.md)",
    "lam": "λ of D_SS = λ·N(D_spatial) + (1 − λ)·N(D_spectral), 0..1 (None: the fusion "
           "variant's own: multiscale 0.4, aed and paper 0.5)",
    "n_components": "principal components (aed, multiscale) or minimum-energy residual "
                    "bands (paper) the spatial map is built from",
    "area": "largest attribute-filter area, pixels (objects up to this size count as "
            "anomalies; None: the fusion variant's own: multiscale 225, aed 36, paper 25)",
    "levels": "grey levels the components are quantised to before the area filters",
    "radius": "guided-filter radius, pixels",
    "eps": "guided-filter regularisation ε (in the guide's normalised units)",
    "fusion_norm": "normalisation N of the two maps before fusing: 'minmax' or 'rank'",
    "spectral_tophat": "fuse D_spectral's area top-hat (bright blobs up to the largest area "
                       "kept, larger structures dropped) instead of D_spectral itself (None: "
                       "the variant's own: true for multiscale, false for aed and paper)",
    "target_size_m": "instead of area: the target size in metres (side of a square); the "
                     "area is (target_size_m / pixel size)² on each scene, which needs a "
                     "projected CRS in metres",
    "stats_sample": "on scenes of more pixels than this, the statistics of the residual and "
                    "of the components come from a stratified sample of rows of about this "
                    "many pixels, so the network runs once over the scene (0 = exact "
                    "statistics: a second network pass when the residual does not fit in "
                    "memory)",
    "pc_source": "what D_spatial's components come from: 'cube' (the scene) or 'residual' "
                 "(the network's residual)",
}

SPECIFIC = {
    "cluster-rx:n_clusters": "k-means clusters of the background",
    "cluster-rx:min_cluster_size": "sampled pixels a cluster needs to count as background "
                                   "(None: bands + 1); smaller clusters' pixels are scored "
                                   "against the others (1: keep every cluster)",
    "cluster-rx:covariance": "'pooled' (one within-cluster covariance), 'shrunk' (each "
                             "cluster's, shrunk to the pooled one) or 'cluster' (each alone)",
    "local-mean-rx:kernel": "side of the moving window the local mean is taken over, "
                            "pixels (odd)",
    "lrx:ridge": "diagonal loading of each ring's covariance, as a share of its mean "
                 "eigenvalue tr(Σ)/B, plus a floor of 1e-10 of the scene's mean variance (solved "
                 "by Cholesky; 0 = the floor alone, never a pseudo-inverse)",
    "aed:n_components": "principal components the spatial map is built from",
    "aed:area": "largest attribute-filter area, pixels (objects up to this size count as "
                "anomalies; None: the variant's own: multiscale 225, aed 36)",
    "crd:lam": "Tikhonov weight λ of the collaborative representation (scale-free)",
    "aed:variant": "'multiscale' (areas 9..area averaged) or 'aed' (the single area, Kang "
                   "et al. 2017)",
    "hadgan:w_ziz": "weight of the latent consistency loss ‖z − E(D(z))‖",
    "hadgan:w_shrink": "weight of the latent shrink loss",
    "hadgan:w_adv_z": "weight of the latent discriminator's adversarial loss",
    "hadgan:w_adv_i": "weight of the spectral (image) discriminator's adversarial loss",
    "aae:w_const": "weight of the latent consistency loss ‖E(x) − E(De(E(x)))‖",
    "ganomaly:w_con": "weight of the contextual (reconstruction) loss",
    "ganomaly:w_enc": "weight of the encoder (latent) loss ‖z − ẑ‖",
    "skip-ganomaly:w_con": "weight of the contextual (reconstruction) loss",
    "skip-ganomaly:w_lat": "weight of the latent (discriminator feature) loss",
    "skip-ganomaly:unet_levels": "down-sampling levels of the U-Net generator",
    "skip-ganomaly:score_lambda": "λ of the score λ·R(x) + (1 − λ)·L(x), 0..1",
    "skip-ganomaly:score_form": "the score's terms: 'paper' (R = ‖x − x̂‖₁, L = ‖f(x) − "
                                "f(x̂)‖₂, Eq. 5) or 'code' (the authors' code's means of "
                                "squares)",
    "adae:residual_net": "whose rebuild feeds D_SS: 'discriminator' D(G(x)) (the paper's "
                         "score) or 'generator' G(x)",
    "adae:out_bound": "outputs bounded to ±out_bound normalised units (None = linear "
                      "output, the paper's)",
    "alocc:lam_r": "λ of L_(R+D) + λ·L_R (the reconstruction weight)",
    "alocc:noise_std": "σ of the training noise added to the input, normalised units",
    "vae:n_samples": "latent draws L per pixel of the importance-weighted score",
    "ae:weight_decay": "L2 weight decay of the optimiser",
    "anogan:n_critic": "critic updates per generator update (WGAN-GP)",
    "anogan:gp_weight": "weight of the gradient penalty",
    "anogan:lam_feature": "λ of the score (1 − λ)·‖x − G(z*)‖₁ + λ·‖f(x) − f(G(z*))‖₁",
    "anogan:search_steps": "Adam steps of the latent search for z* per pixel (time grows "
                           "linearly with it)",
    "anogan:search_lr": "learning rate of the latent search",
    "alae:gamma": "γ of the R1 penalty (γ/2)·E‖∇D‖² on real samples",
    "egbad:alpha": "α of the score α·‖x − G(E(x))‖₁ + (1 − α)·L_D(x), 0..1",
    "egbad:disc_score": "L_D of the score: 'fm' (feature matching) or 'bce' "
                        "(cross-entropy of D(x, E(x)))",
    "alad:disc_hidden_z": "width of the latent discriminator D_zz's hidden layer (units)",
    "cavga:w_r": "weight of the VAE loss (reconstruction + KL)",
    "cavga:w_ae": "weight of the attention-expansion loss L_ae = mean(1 − A)",
    "cavga:w_c": "weight of the classifier's cross-entropy (with --labels)",
    "cavga:w_cga": "weight of the complementary guided attention loss (with --labels)",
    "cavga:max_labelled": "labelled anomaly patches drawn (seeded) for the classifier",
    "fanogan:arch": "network family of pixel input: 'mlp' or 'conv1d' (1-D convolutions "
                    "over bands); patches always go through the patch front end",
    "fanogan:encoder_epochs": "epochs of the second stage (the encoder, GAN frozen)",
    "fanogan:encoder_lr": "learning rate of the encoder stage",
    "fanogan:n_critic": "critic updates per generator update (WGAN-GP)",
    "fanogan:gp_weight": "weight of the gradient penalty",
    "fanogan:objective": "encoder training objective: 'izi_f' (the paper's), 'izi' or 'ziz'",
    "fanogan:kappa": "κ of the score A(x) = A_residual + κ·A_feature",
}


def describe(detector: str, name: str, cls: type | None = None) -> str | None:
    """The meaning of parameter ``name`` of ``detector`` (None if none is written): the
    class's own ``param_help`` (a plugin's, see docs/adding_a_model.md) first, then this
    module's, for the detector or the hsad detector its class derives from."""
    text = _written(detector, name, cls)
    if name == "output" and text and isinstance(getattr(cls, "outputs", None), property):
        choices = cls.outputs.fget(cls)  # the class's score_terms (and fusion stages)
        if choices:
            text = f"{text}; one of {', '.join(choices)}"
    return text


def _written(detector: str, name: str, cls: type | None) -> str | None:
    for klass in getattr(cls, "__mro__", ()):
        own = vars(klass).get("param_help") or {}
        if name in own:
            return own[name]
        base_name = vars(klass).get("name")
        if base_name and f"{base_name}:{name}" in SPECIFIC:
            return SPECIFIC[f"{base_name}:{name}"]
    return SPECIFIC.get(f"{detector}:{name}") or COMMON.get(name)


def parameters_section(cls: type) -> str:
    """A numpydoc ``Parameters`` section of detector class ``cls``: each hyperparameter with
    its type, default and meaning (what ``help()`` and an IDE's hover show)."""
    sig = inspect.signature(cls.__init__)
    kinds = cls._param_kinds()
    lines = ["Parameters", "----------"]
    for name in cls._param_names():
        kind = kinds.get(name)
        default = sig.parameters[name].default
        shown = [] if kind is None else [str(kind)]
        if default is not inspect.Parameter.empty:
            shown.append(f"default {default!r}")
        lines.append(f"{name} : {', '.join(shown)}".rstrip(" :"))
        text = describe(cls.name, name, cls)
        lines += textwrap.wrap(str(text or ""), 88, initial_indent="    ",
                               subsequent_indent="    ")
    return "\n".join(lines)


def document_parameters(cls: type) -> None:
    """Append :func:`parameters_section` to ``cls``'s own docstring, unless it has one; a
    section that cannot be made (a plugin's odd ``param_help`` or default) is left out:
    documentation never stops a class from being defined."""
    doc = cls.__dict__.get("__doc__")
    if doc and "\nParameters\n" in "\n" + inspect.cleandoc(doc):
        return
    try:
        if not cls._param_names():
            return
        section = parameters_section(cls)
    except Exception:  # noqa: BLE001  (a plugin's repr or help that fails: no section)
        return
    cls.__doc__ = (inspect.cleandoc(doc) + "\n\n" if doc else "") + section


__all__ = ["COMMON", "RUNTIME", "SPECIFIC", "describe", "document_parameters",
           "parameters_section"]
