"""CAVGA: Convolutional Adversarial Variational autoencoder with Guided Attention
(Venkataramanan, Peng, Singh & Mahalanobis, "Attention Guided Anomaly Localization in
Images", ECCV 2020), on k×k×B patches, bands as channels (docs/models/cavga.md).

Networks: a convolutional encoder (1×1 spectral convolution, then 3×3 spatial ones, 'same'
padding) whose last feature map F ``(N, C, k, k)`` feeds a 1×1 Gaussian head, so the latent
z ``(N, c_z, k, k)`` is a spatial map (c_z = ``latent``); a mirrored decoder; a
discriminator D on patches; a classifier C on z (used only with labels).

Losses (paper's weights w_r = w_adv = 1, w_ae = 0.01; w_c = 0.001, w_cga = 0.01):

- L = mean (x − x̂)² + KL(q(z|x) ‖ N(0, I)) per latent element (paper: the VAE loss; the
  scaling is ours); L_adv = −log D(x) − log(1 − D(x̂)) for D, −log D(x̂) for the VAE;
- attention A = Grad-CAM on F of y = Σ μ (the latent), scaled by its maximum per patch;
  L_ae = 1/|A|·Σ(1 − A_ij); unsupervised total: w_r L + w_adv L_adv + w_ae L_ae;
- with labelled anomaly pixels (``fit(cube, labels=mask)``, CLI ``--labels``), CAVGA_w:
  C is trained on the labelled anomalies' patches against the background sample (L_bce,
  cross-entropy), and the complementary guided attention loss
  L_cga = 1(p = y = normal)/|A|·Σ(1 − A^n_ij + A^a_ij), on normal patches C gets right,
  replaces L_ae (A^n, A^a: Grad-CAM of C's normal and anomalous logits on F).

Score ``attention``: the paper's anomalous attention map, 1 − A for CAVGA_u, A^a for
CAVGA_w, taken at the patch centre; ``error``: the centre's reconstruction error
(1/B)‖x − x̂‖² with z = μ; ``_reconstruct`` (centre spectrum) feeds D_SS.

Where the paper is silent we chose: patch k = 5 (the 5×5 latent map gives the attention a
neighbourhood to compare the centre with; k = 7 doubles the cost); attention scaled by its
maximum, not min–max (min–max sets one cell of every map to 0, so L_ae could never vanish,
and it would stretch a flat map's noise to [0, 1]); the pixel's value is the attention at
the centre of its own patch (the paper upsamples the latent map to the image: each pixel
takes the attention of the latent cell over it, computed with the whole image in view;
the centred patch is the one that sees the pixel's whole neighbourhood, so maps do not
depend on tiling and need only the k//2 halo); non-saturating generator loss; the VAE and
adversarial losses see the background sample only (labelled pixels are kept out of it);
each mini-batch carries all labelled patches (at most ``max_labelled``) for C.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from hsad.detectors.reconstruction import ReconstructionDetector
from hsad.errors import ParameterError
from hsad.nn.attention import grad_cam
from hsad.nn.blocks import PatchFrontEnd, activation
from hsad.nn.critics import CriticX
from hsad.nn.gaussian import ConvGaussianHead, kl_standard_normal, reparameterise
from hsad.nn.noise import PixelNoise
from hsad.nn.trainer import Stage, Update

if TYPE_CHECKING:
    from typing_extensions import Self

    from hsad.cube.array_types import CubeLike


def _convs(sizes, kernels) -> nn.Sequential:
    layers = []
    for a, b, k in zip(sizes[:-1], sizes[1:], kernels, strict=True):
        layers += [nn.Conv2d(a, b, k, padding=k // 2), activation("leaky_relu")]
    return nn.Sequential(*layers)


class CAVGAEncoder(nn.Module):
    """Patch ``(N, B, k, k)`` → ``(mu, logvar, F)``: latent maps ``(N, c_z, k, k)`` and the
    last feature map F ``(N, C, k, k)`` (Grad-CAM's layer)."""

    def __init__(self, n_bands: int, widths, c_z: int):
        super().__init__()
        self.body = _convs([n_bands, *widths], [1] + [3] * (len(widths) - 1))
        self.head = ConvGaussianHead(widths[-1], c_z)

    def forward(self, x):
        f = self.body(x)
        return (*self.head(f), f)


class CAVGAClassifier(nn.Module):
    """C: latent map ``(N, c_z, k, k)`` → logits (normal, anomalous). ``weak`` records
    whether it was trained (CAVGA_w), and is saved with the weights."""

    def __init__(self, c_z: int, patch: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(c_z * patch * patch, hidden),
                                 activation("leaky_relu"), nn.Linear(hidden, 2))
        self.register_buffer("weak", torch.zeros(1))

    def forward(self, z):
        return self.net(z)


class CAVGA(ReconstructionDetector):
    """CAVGA: convolutional-latent VAE-GAN with Grad-CAM attention on k×k×B patches."""

    name = "cavga"
    summary = ("CAVGA (Venkataramanan et al., ECCV 2020): conv-latent VAE-GAN, Grad-CAM "
               "attention 1 − A with attention expansion; --labels: CAVGA_w")
    score_terms = ("attention", "error")
    score_needs_grad = True

    input = "patch"
    patch = 5
    hidden = 32
    epochs = 6
    batch_size = 64
    sample_size = 2_500
    w_r: float = 1.0
    w_adv: float = 1.0
    w_ae: float = 0.01
    w_c: float = 0.001
    w_cga: float = 0.01
    max_labelled: int = 256

    #: the weak-supervision settings, read only with labels
    LABELLED_ONLY = ("w_c", "w_cga", "max_labelled")

    def _checks(self):
        weights = ("w_r", "w_adv", "w_ae", "w_c", "w_cga")
        return [(self.input == "patch", "CAVGA needs input='patch' (a spatial latent map)"),
                *((float(getattr(self, w)) >= 0,
                   f"loss weight {w} must be ≥ 0, got {getattr(self, w)!r}") for w in weights),
                (int(self.max_labelled) >= 1, "max_labelled must be ≥ 1")]

    def _build(self, n_bands):
        c_z, widths, k = self.latent_size(n_bands), self.widths, self.patch_size
        return {"encoder": CAVGAEncoder(n_bands, widths, c_z),
                "decoder": nn.Sequential(_convs([c_z, *widths[::-1]], [3] * len(widths)),
                                         nn.Conv2d(widths[0], n_bands, 1)),
                "discriminator": CriticX(int(self.hidden) * (k - 2) ** 2, widths,
                                         front=PatchFrontEnd(n_bands, k, int(self.hidden))),
                "classifier": CAVGAClassifier(c_z, k, int(self.hidden))}

    # ---- weak supervision -------------------------------------------------------------
    def _ignored(self) -> dict[str, str]:
        """As :meth:`NeuralDetector._ignored`, and the classifier's settings without labels."""
        ignored = super()._ignored()
        if getattr(self, "_labelled", None) is None:
            why = "it applies to labelled anomalies (labels=, --labels); none were given"
            ignored.update({k: why for k in self.LABELLED_ONLY
                            if getattr(self, k) != self._declared[k]})
        return ignored

    def fit(self, cube: CubeLike, train_mask=None, background=None,
            labels=None) -> Self:
        """As :meth:`NeuralDetector.fit`; ``labels`` (a (y, x) array or a raster file on the
        scene's grid, non-zero = anomaly) trains CAVGA_w on those pixels' patches."""
        self._labelled = None
        if labels is not None:
            from hsad.cube import good_band_mask
            from hsad.cube.background import array_mask, raster_mask
            from hsad.nn.sampling import region_mask, sample_pixels

            path = cube.attrs.get("source_path")
            if isinstance(labels, (str, bytes)) or hasattr(labels, "__fspath__"):
                mask = raster_mask(labels, cube, what="label mask")
            else:
                mask = array_mask(labels, cube, what="label mask")
            if not mask.any():
                raise ParameterError("the label mask marks no anomaly pixel", path)
            self._validate()
            sample = sample_pixels(cube, int(self.max_labelled), seed=int(self.seed),
                                   bands=good_band_mask(cube), patch=self.patch_size, mask=mask)
            if len(sample.rows) == 0:
                raise ParameterError("no labelled anomaly pixel holds valid data", path)
            self._labelled = sample.values
            region = region_mask(cube, mask=train_mask)
            train_mask = ~mask if region is None else region & ~mask
        try:
            return super().fit(cube, train_mask=train_mask, background=background)
        finally:
            self._labelled = None

    # ---- losses -----------------------------------------------------------------------
    def _cam(self, f, y):
        return grad_cam(f, y, normalise="max", create_graph=torch.is_grad_enabled())

    def _stages(self):
        nets = self.networks_
        enc, dec, disc, clf = (nets[k] for k in ("encoder", "decoder", "discriminator",
                                                 "classifier"))
        weak = getattr(self, "_labelled", None) is not None
        anomalies = self._prepare(self._labelled) if weak else None
        clf.weak.fill_(float(weak))
        vae_params = [*enc.parameters(), *dec.parameters()] + ([*clf.parameters()] if weak
                                                               else [])
        opt_vae = torch.optim.Adam(vae_params, lr=float(self.lr))
        opt_d = torch.optim.Adam(disc.parameters(), lr=float(self.lr))

        def vae(batch, shared):
            (x,) = batch
            mu, logvar, f = enc(x)
            z = reparameterise(mu, logvar)
            xh = dec(z)
            shared["fake"] = xh.detach()
            rec = ((x - xh) ** 2).sum(dim=1).mean()
            kl = kl_standard_normal(mu, logvar).mean() / x[0, 0].numel()
            adv = F.binary_cross_entropy_with_logits(disc(xh), torch.ones_like(x[:, :1, 0, 0]))
            out = {"rec": rec, "kl": kl, "adv_g": adv}
            loss = float(self.w_r) * (rec + kl) + float(self.w_adv) * adv
            if not weak:
                out["ae"] = (1 - self._cam(f, mu.flatten(1).sum(1))).mean()
                loss = loss + float(self.w_ae) * out["ae"]
            else:
                xa = anomalies.to(x.device)
                mu_a, logvar_a, _ = enc(xa)
                logits = clf(z)
                both = torch.cat([logits, clf(reparameterise(mu_a, logvar_a))])
                target = torch.cat([torch.zeros(len(x)), torch.ones(len(xa))]).long()
                out["bce"] = F.cross_entropy(both, target.to(x.device))
                a_n, a_a = self._cam(f, logits[:, 0]), self._cam(f, logits[:, 1])
                right = (logits.argmax(1) == 0).float()
                out["cga"] = (right * (1 - a_n + a_a).flatten(1).mean(1)).mean()
                loss = loss + float(self.w_c) * out["bce"] + float(self.w_cga) * out["cga"]
            return {"loss": loss, **out}

        def discriminator(batch, shared):
            (x,) = batch
            real = F.binary_cross_entropy_with_logits(disc(x), torch.ones_like(x[:, :1, 0, 0]))
            fake = F.binary_cross_entropy_with_logits(disc(shared["fake"]),
                                                      torch.zeros_like(x[:, :1, 0, 0]))
            return {"adv_d": real + fake}

        return [Stage("train", [Update("loss", vae, opt_vae, frozen=(disc,)),
                                Update("adv_d", discriminator, opt_d)],
                      int(self.epochs), monitor="loss")]

    # ---- score ------------------------------------------------------------------------
    def _reconstruct(self, x):
        return self._centre(self.networks_["decoder"](self.networks_["encoder"](x)[0]))

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The anomalous attention map ``(N, k, k)``: 1 − A (CAVGA_u) or A^a (CAVGA_w)."""
        enc, clf = self.networks_["encoder"], self.networks_["classifier"]
        with torch.enable_grad():
            f = enc.body(x).detach().requires_grad_(True)
            mu = enc.head(f)[0]
            if bool(clf.weak.item()):
                return self._cam(f, clf(mu)[:, 1]).detach()
            return 1 - self._cam(f, mu.flatten(1).sum(1)).detach()

    def _score(self, x: torch.Tensor, noise: PixelNoise) -> torch.Tensor:
        h = x.shape[-1] // 2
        attention = self.attention(x)[:, h, h]
        error = ((self._centre(x) - self._reconstruct(x)) ** 2).mean(dim=1)
        return torch.stack([attention, error], dim=1)
