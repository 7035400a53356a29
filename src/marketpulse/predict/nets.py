"""Small CPU-friendly PyTorch sequence classifiers.

Every net maps a standardised window ``(batch, T, F)`` (oldest step first) to logits ``(batch, classes)``; none
looks at anything but its input window, and none mixes samples of a batch (no batch norm), so a prediction does
not depend on what else is in the batch. Sizes default to tens of units: a batch of 100 five-step windows runs in
about a millisecond on one CPU core.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class LSTMNet(nn.Module):
    """LSTM over the window; the last hidden state → dropout → linear."""

    def __init__(self, features: int, classes: int, hidden: int = 32, layers: int = 1, dropout: float = 0.2) -> None:
        super().__init__()
        self.rnn = nn.LSTM(features, hidden, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.rnn(x)
        return self.head(self.drop(out[:, -1]))


class GRUNet(nn.Module):
    """GRU over the window; the last hidden state → dropout → linear."""

    def __init__(self, features: int, classes: int, hidden: int = 32, layers: int = 1, dropout: float = 0.2) -> None:
        super().__init__()
        self.rnn = nn.GRU(features, hidden, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.rnn(x)
        return self.head(self.drop(out[:, -1]))


class ALSTMNet(nn.Module):
    """Attentive LSTM (Feng et al. 2019, without the adversarial term).

    ``m_t = tanh(W_m x_t + b_m)`` (feature mapping), ``h_t = LSTM(m_t)``, temporal attention
    ``α = softmax_t(uᵀ tanh(W_a h_t + b_a))``, ``a = Σ_t α_t h_t``; logits from ``[a, h_T]``.
    """

    def __init__(self, features: int, classes: int, hidden: int = 32, mapping: int = 32, dropout: float = 0.2) -> None:
        super().__init__()
        self.mapping = nn.Sequential(nn.Linear(features, mapping), nn.Tanh())
        self.rnn = nn.LSTM(mapping, hidden, batch_first=True)
        self.att = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1, bias=False))
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(2 * hidden, classes)

    def forward(self, x: Tensor) -> Tensor:
        h, _ = self.rnn(self.mapping(x))  # (B, T, H)
        alpha = torch.softmax(self.att(h), dim=1)  # (B, T, 1)
        context = (alpha * h).sum(dim=1)
        return self.head(self.drop(torch.cat([context, h[:, -1]], dim=1)))


def sinusoidal(length: int, dim: int) -> Tensor:
    """The ``(length, dim)`` sinusoidal position table of Vaswani et al. 2017."""
    pos = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)[:, : dim // 2]
    return table


class TransformerNet(nn.Module):
    """Pre-norm Transformer encoder over the window.

    Input projection to ``d_model``, positional encoding (``pos``: ``"sinusoidal"`` or ``"learned"``, the latter
    for windows of at most ``window`` steps), ``layers`` encoder layers, pooling (``pool``: ``"mean"`` over steps or
    ``"last"`` step), layer norm → linear.
    """

    def __init__(
        self,
        features: int,
        classes: int,
        window: int,
        d_model: int = 32,
        heads: int = 4,
        layers: int = 1,
        ff: int = 64,
        dropout: float = 0.1,
        pos: str = "sinusoidal",
        pool: str = "last",
    ) -> None:
        super().__init__()
        if pos not in ("sinusoidal", "learned") or pool not in ("mean", "last"):
            raise ValueError(f"pos must be sinusoidal|learned and pool mean|last; got {pos!r}, {pool!r}")
        self.pool = pool
        self.proj = nn.Linear(features, d_model)
        self.pos: Tensor | nn.Parameter
        if pos == "learned":
            self.pos = nn.Parameter(torch.randn(window, d_model) * 0.02)
        else:
            self.register_buffer("pos", sinusoidal(window, d_model), persistent=False)
        layer = nn.TransformerEncoderLayer(d_model, heads, ff, dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, classes)

    def forward(self, x: Tensor) -> Tensor:
        t = x.shape[1]
        z = self.encoder(self.proj(x) + self.pos[-t:])
        pooled = z.mean(dim=1) if self.pool == "mean" else z[:, -1]
        return self.head(self.norm(pooled))


class _CausalBlock(nn.Module):
    """Two dilated causal convolutions (left padding only) with ReLU and dropout, plus a residual connection."""

    def __init__(self, cin: int, cout: int, kernel: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.pad = (kernel - 1) * dilation
        self.conv1 = nn.Conv1d(cin, cout, kernel, dilation=dilation)
        self.conv2 = nn.Conv1d(cout, cout, kernel, dilation=dilation)
        self.drop = nn.Dropout(dropout)
        self.down = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        y = self.drop(torch.relu(self.conv1(nn.functional.pad(x, (self.pad, 0)))))
        y = self.drop(torch.relu(self.conv2(nn.functional.pad(y, (self.pad, 0)))))
        return torch.relu(y + self.down(x))


class TCNNet(nn.Module):
    """Temporal convolutional network (Bai et al. 2018): ``levels`` residual blocks of dilated causal
    convolutions with dilations ``1, 2, 4, …``; logits from the output at the last step.

    Receptive field ``1 + 2·(kernel−1)·(2^levels − 1)`` steps (13 with the defaults), so every step of a
    window of up to that length reaches the output.
    """

    def __init__(
        self, features: int, classes: int, channels: int = 32, levels: int = 2, kernel: int = 3, dropout: float = 0.2
    ) -> None:
        super().__init__()
        blocks = [
            _CausalBlock(features if i == 0 else channels, channels, kernel, 2**i, dropout) for i in range(levels)
        ]
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(channels, classes)

    def forward(self, x: Tensor) -> Tensor:
        z = self.blocks(x.transpose(1, 2))  # (B, C, T)
        return self.head(z[:, :, -1])
