"""The built-in task: a class-conditional DiT trained by flow matching on scikit-learn's digits.

Data: the 1,797 8 × 8 handwritten digits that ship inside scikit-learn (``load_digits``, no
download), grey levels 0–16 mapped to [-1, 1], one channel, optionally upsampled. A fixed
permutation (seed 0) holds out ``heldout`` images; the rest are the training set.

Objective: flow matching with the straight (rectified-flow) path,
``x_t = (1 − t)·x + t·ε``, target velocity ``ε − x``, ``t ~ U(0, 1)``, plain MSE
(Lipman et al., arXiv 2210.02747; Liu et al., arXiv 2209.03003). We prefer it to DiT's
ε-prediction for a learning-rate study because the target has about the same size at every
``t`` (ε-prediction near ``t = 0`` asks for noise that is almost invisible, a high-variance
term that makes loss curves noisy), there is no noise schedule to choose, and it is the
objective of SD3's MMDiT, the largest model the seed paper scales (arXiv 2505.15270).
DiT's timestep embedder was designed for ``t`` in [0, 1000], so the model sees ``1000·t``.

Held-out loss: every held-out image gets ``draws`` fixed (t, ε) pairs from a generator seeded
once, with ``t`` stratified over [0, 1], so the number is the same measurement for every run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from tpcheck.errors import TpcheckError
from tpcheck.spec import ModelSpec

#: the DiT timestep embedder's range; flow-matching time t ∈ [0, 1] is fed as 1000·t
TIME_SCALE = 1000.0


def load_digits_tensor(size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """(images (N, 1, size, size) in [-1, 1], labels (N,)) from scikit-learn's bundled digits."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise TpcheckError("the digits task needs scikit-learn, which is not installed.",
                           fix="pip install 'tpcheck[transfer]'") from exc
    if size < 8 or size % 8:
        raise TpcheckError(f"image size {size} is not a multiple of 8 (the digits are 8 × 8).",
                           fix="use --image-size 8 or 16")
    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32)[:, None] / 8.0 - 1.0  # (N, 1, 8, 8)
    if size != 8:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x, torch.tensor(data.target, dtype=torch.long)


@dataclass
class DigitsTask:
    """DiT (``tpcheck.models.dit``) on the digits, head dim fixed: width grows by adding heads.

    ``depth`` blocks, ``patch`` × ``patch`` patches on ``image_size`` images, 10 classes, no
    label dropout (the forward is deterministic), ``learn_sigma`` off (flow matching predicts
    a velocity only).
    """

    depth: int = 2
    head_dim: int = 16
    patch: int = 2
    image_size: int = 8
    heldout: int = 297
    draws: int = 4
    name: str = "dit-digits"
    _data: dict[str, torch.Tensor] = field(default_factory=dict, init=False, repr=False)

    # --- the model ---------------------------------------------------------------------

    def config(self, width: int) -> Any:
        """The DiTConfig at ``width`` (imported here: loading tpcheck.models costs time)."""
        from tpcheck.models.dit import DiTConfig

        try:
            return DiTConfig(input_size=self.image_size, patch_size=self.patch, in_channels=1,
                             hidden_size=width, depth=self.depth, head_dim=self.head_dim,
                             num_heads=None, num_classes=10, class_dropout_prob=0.0,
                             learn_sigma=False)
        except ValueError as exc:
            raise TpcheckError(f"no DiT at width {width}: {exc}", where=self.name,
                               fix=f"use widths that are multiples of the head dim "
                                   f"{self.head_dim} (and of 4)") from exc

    def build(self, width: int) -> torch.nn.Module:
        from tpcheck.models.dit import DiT

        return DiT(self.config(width))

    def spec(self, widths: Sequence[int]) -> ModelSpec:
        size = self.image_size

        def inputs(width: int) -> tuple[torch.Tensor, ...]:
            del width
            gen = torch.Generator().manual_seed(0)
            return (torch.randn(2, 1, size, size, generator=gen),
                    torch.rand(2, generator=gen) * TIME_SCALE,
                    torch.randint(0, 10, (2,), generator=gen))

        return ModelSpec(self.build, inputs, tuple(widths), base_width=min(widths),
                         name=self.name, meta={"head_dim": "fixed"})

    # --- the data ----------------------------------------------------------------------

    @property
    def give_up_loss(self) -> float:
        """The loss of the best input-independent prediction (see ``train.train``).

        Predicting the per-pixel mean of ``ε − x`` whatever the input scores
        ``1 + mean pixel variance`` of the images (ε and x are independent); a run that is no
        better than that after a third of its steps has collapsed (seen at too large learning
        rates, where it ends near 1.5) and is stopped there.
        """
        x = self._split()["train_x"]
        return 1.0 + float(x.var(dim=0).mean())

    def _split(self) -> dict[str, torch.Tensor]:
        """Train / held-out tensors and the held-out (t, ε), built once per process."""
        if not self._data:
            x, y = load_digits_tensor(self.image_size)
            if not 0 < self.heldout < len(x) // 2:
                raise TpcheckError(f"heldout={self.heldout} must be between 1 and "
                                   f"{len(x) // 2 - 1} of the {len(x)} digits.")
            order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
            test, train = order[:self.heldout], order[self.heldout:]
            gen = torch.Generator().manual_seed(1234)
            k = self.heldout * self.draws
            strata = torch.arange(k).remainder(self.draws).float()
            self._data.update(
                train_x=x[train], train_y=y[train],
                test_x=x[test].repeat(self.draws, 1, 1, 1), test_y=y[test].repeat(self.draws),
                test_t=(strata + torch.rand(k, generator=gen)) / self.draws,
                test_eps=torch.randn(k, *x.shape[1:], generator=gen))
        return self._data

    def batch(self, generator: torch.Generator, size: int) -> tuple[torch.Tensor, ...]:
        data = self._split()
        idx = torch.randint(0, len(data["train_x"]), (size,), generator=generator)
        x = data["train_x"][idx]
        t = torch.rand(size, generator=generator)
        eps = torch.randn(x.shape, generator=generator)
        return x, data["train_y"][idx], t, eps

    def loss(self, model: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return flow_matching_loss(model, *batch)

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, chunk: int = 512) -> float:
        data = self._split()
        was_training = model.training
        model.eval()
        total, count = 0.0, 0
        for i in range(0, len(data["test_x"]), chunk):
            part = slice(i, i + chunk)
            loss = flow_matching_loss(model, data["test_x"][part], data["test_y"][part],
                                      data["test_t"][part], data["test_eps"][part])
            total += float(loss) * len(data["test_x"][part])
            count += len(data["test_x"][part])
        model.train(was_training)
        return total / count

    def __getstate__(self) -> dict:
        """Pickle without the cached tensors: each worker process rebuilds them in ms."""
        state = self.__dict__.copy()
        state["_data"] = {}
        return state


def flow_matching_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                       t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """MSE between the predicted and the straight-path velocity ``ε − x`` at ``x_t``."""
    tb = t[:, None, None, None]
    x_t = (1.0 - tb) * x + tb * eps  # (B, 1, H, W)
    return (model(x_t, t * TIME_SCALE, y) - (eps - x)).pow(2).mean()
