"""The detector networks: an MLP autoencoder, a β-VAE and a classifier (CWoLa, supervised).

Every network standardizes its inputs itself (a :class:`simkit.nn.Standardizer` in
its state, fitted on the weighted training events), so a saved model scores raw
event columns. Each has ``loss(...)`` — a weighted mean over the batch, so event
weights (e.g. OmniFold's) count — and ``scores(x)`` — a dict of per-event anomaly
scores where higher means more anomalous:

- autoencoder: ``recon`` = mean squared reconstruction error of the standardized
  features;
- β-VAE (Higgins et al., ICLR 2017; Kingma & Welling, arXiv:1312.6114): ``recon`` =
  ½ Σ (x − x̂)² at the posterior mean, the Gaussian negative log-likelihood of unit
  variance up to a constant; ``kl`` = KL(q(z|x) ‖ N(0, 1)); ``total`` = recon + kl, the
  negative ELBO at β = 1, a bound on −log p(x) whatever β was trained with. The
  training loss is recon + β·kl with β = 1 unless asked otherwise: a KL term that is
  silently off turns the VAE into a noisy autoencoder. ``recon`` is the score used
  unless asked otherwise (:data:`DEFAULT_SCORE` says why);
- classifier: ``logit`` = the log-odds of the positive class (signal region in CWoLa,
  signal with truth labels). Logits, not probabilities: a float32 sigmoid saturates at
  1 in the far tail and would turn the ε_B = 1e-4 region into ties.

>>> import torch
>>> vae = build_network(NetworkConfig("vae", n_features=3, latent=2, hidden=(8,)))
>>> sorted(vae.scores(torch.randn(5, 3)))
['kl', 'recon', 'total']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from simkit.errors import SimkitError
from simkit.nn import Standardizer, mlp

#: Model kinds, the scores each offers, and the one used unless asked otherwise.
SCORES: dict[str, tuple[str, ...]] = {
    "ae": ("recon",),
    "vae": ("recon", "kl", "total"),
    "classifier": ("logit",),
}
#: The VAE's default is ``recon``, not ``total``: its KL part measures how atypical an event
#: is in the latent space, and the W' signals sit where QCD is dense there. Trained on the
#: reference simulation's QCD (default architecture, 3 seeds), the KL score had AUC
#: 0.14–0.34 against W' → X(500) Y(100) and X(200) Y(200), below 0.5; ``recon`` 0.81–0.84,
#: ``total`` 0.78–0.80 (BENCHMARKS.md, "Detectors against pyod").
DEFAULT_SCORE = {"ae": "recon", "vae": "recon", "classifier": "logit"}
MODEL_KINDS = tuple(SCORES)
#: Latent size and encoder widths when none are asked for. AE and VAE: a one-dimensional
#: bottleneck behind one hidden layer of 16. A detector flags what it cannot reconstruct,
#: and a network with room to reconstruct the bulk (latent 4, 64-64, the former default)
#: also reconstructs a signal that sits inside it: on the reference simulation's QCD (8
#: substructure features, 5 seeds, two training sets) that AE had AUC 0.52–0.70 against
#: W' → X(500) Y(100) and 0.55–0.84 against X(200) Y(200), seed to seed; latent 1, hidden
#: 16 had 0.80–0.84 and 0.83–0.88. Latent 2, or two hidden layers, was worse and unstable
#: again. Per jet (tag-and-probe, 4 inputs) this AE still depends on the seed (0.73–0.78,
#: and 0.59–0.82 against X(200) Y(200)); the VAE does not (±0.003). Not universal: on a
#: toy background on a thin curved 1-D manifold, with the anomaly off it, latent 4, 64-64
#: did better (AUC 0.94–0.96 against 0.66–0.81).
DEFAULT_ARCHITECTURE: dict[str, dict] = {
    "ae": {"latent": 1, "hidden": (16,)},
    "vae": {"latent": 1, "hidden": (16,)},
    "classifier": {"latent": 1, "hidden": (64, 64)},  # latent unused
}


@dataclass(frozen=True)
class NetworkConfig:
    """What is needed to rebuild a detector network (saved in its ``config.json``).

    ``hidden`` are the encoder's widths; the decoder mirrors them. ``latent`` and
    ``hidden`` left at None take the kind's :data:`DEFAULT_ARCHITECTURE`.
    """

    kind: str
    n_features: int
    latent: int | None = None
    hidden: tuple[int, ...] | None = None
    activation: str = "silu"
    beta: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in SCORES:
            raise SimkitError(f"unknown model {self.kind!r}; use {', '.join(MODEL_KINDS)}")
        for name, value in DEFAULT_ARCHITECTURE[self.kind].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        if self.n_features < 1:
            raise SimkitError("a detector needs at least one input feature")
        if self.latent < 1:
            raise SimkitError(f"latent size must be at least 1, got {self.latent}")
        if not self.hidden or any(int(h) < 1 for h in self.hidden):
            raise SimkitError(f"hidden widths must be positive integers, got {self.hidden}")
        if not (self.beta >= 0 and np.isfinite(self.beta)):
            raise SimkitError(f"β must be a finite number ≥ 0, got {self.beta}")
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))

    def to_dict(self) -> dict:
        return {**asdict(self), "hidden": list(self.hidden)}

    @classmethod
    def from_dict(cls, data: Mapping) -> NetworkConfig:
        fields = ("kind", "n_features", "latent", "hidden", "activation", "beta")
        missing = [f for f in fields if f not in data]
        if missing:
            raise SimkitError(f"network config lacks {', '.join(missing)}")
        return cls(**{f: data[f] for f in fields})


def _weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    weights = weights.float()
    return (values * weights).sum() / weights.sum()


class Autoencoder(nn.Module):
    """An MLP autoencoder ``features → latent → features`` on standardized inputs."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        n = config.n_features
        self.standardizer = Standardizer(n)
        self.encoder = mlp(n, config.latent, config.hidden, config.activation)
        self.decoder = mlp(config.latent, n, config.hidden[::-1], config.activation)

    def reconstruction_error(self, x: torch.Tensor) -> torch.Tensor:
        """Per-event mean squared error in standardized units (float32 under autocast)."""
        xs = self.standardizer(x)
        return ((self.decoder(self.encoder(xs)).float() - xs.float()) ** 2).mean(dim=1)

    def loss(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return _weighted_mean(self.reconstruction_error(x), weights)

    def validation_loss(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return self.loss(x, weights)

    def scores(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"recon": self.reconstruction_error(x)}


class BetaVAE(nn.Module):
    """A β-VAE with a diagonal Gaussian posterior and a unit-variance Gaussian decoder."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        n = config.n_features
        self.standardizer = Standardizer(n)
        self.encoder = mlp(n, 2 * config.latent, config.hidden, config.activation)
        self.decoder = mlp(config.latent, n, config.hidden[::-1], config.activation)

    def terms(self, x: torch.Tensor, sample: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-event ``(recon, kl)``; ``sample`` draws z (training), else z = posterior mean."""
        xs = self.standardizer(x)
        mean, log_var = self.encoder(xs).float().chunk(2, dim=1)
        z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean) if sample else mean
        recon = 0.5 * ((self.decoder(z).float() - xs.float()) ** 2).sum(dim=1)
        kl = 0.5 * (mean**2 + torch.exp(log_var) - 1.0 - log_var).sum(dim=1)
        return recon, kl

    def loss(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Weighted mean of recon + β·KL with one reparametrized sample per event."""
        recon, kl = self.terms(x, sample=True)
        return _weighted_mean(recon + self.config.beta * kl, weights)

    def validation_loss(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        # no sampling noise in the quantity early stopping watches
        recon, kl = self.terms(x, sample=False)
        return _weighted_mean(recon + self.config.beta * kl, weights)

    def scores(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        recon, kl = self.terms(x, sample=False)
        return {"recon": recon, "kl": kl, "total": recon + kl}


class Classifier(nn.Module):
    """A binary MLP classifier on standardized inputs (CWoLa or supervised)."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        self.standardizer = Standardizer(config.n_features)
        self.net = mlp(config.n_features, 1, config.hidden, config.activation)

    def logit(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.standardizer(x)).float().squeeze(1)

    def loss(self, x: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        per_event = nn.functional.binary_cross_entropy_with_logits(
            self.logit(x), target.float(), reduction="none"
        )
        return _weighted_mean(per_event, weights)

    def validation_loss(self, x, target, weights) -> torch.Tensor:
        return self.loss(x, target, weights)

    def scores(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logit": self.logit(x)}


_NETWORKS = {"ae": Autoencoder, "vae": BetaVAE, "classifier": Classifier}


def build_network(config: NetworkConfig) -> Autoencoder | BetaVAE | Classifier:
    """The network of ``config.kind``, freshly initialized (seed torch first)."""
    return _NETWORKS[config.kind](config)
