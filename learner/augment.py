"""DrQ random-shift augmentation, on device: pad each image by `pad` pixels (replicating the
border) and crop back at a random integer offset per image, as one grid_sample call."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_shift(
    images: torch.Tensor, pad: int = 4, generator: torch.Generator | None = None
) -> torch.Tensor:
    """images: (N, C, H, W) float, H == W. Each image gets its own shift in [-pad, pad]^2."""
    n, _, h, w = images.shape
    if h != w:
        raise ValueError(f"random_shift expects square images, got {h}x{w}")
    if pad == 0:
        return images
    padded = F.pad(images, (pad, pad, pad, pad), mode="replicate")
    size = h + 2 * pad
    # Sampling grid of the centre crop in normalised coordinates (pixel centres, align_corners=False).
    step = 2.0 / size
    coords = torch.linspace(-1.0 + step / 2, 1.0 - step / 2, size, device=images.device, dtype=images.dtype)
    coords = coords[:h]
    base = torch.stack(torch.meshgrid(coords, coords, indexing="xy"), dim=-1)  # (h, w, 2) as (x, y)
    shift = torch.randint(0, 2 * pad + 1, (n, 1, 1, 2), device=images.device, generator=generator)
    grid = base.unsqueeze(0) + shift.to(images.dtype) * step
    return F.grid_sample(padded, grid, mode="nearest", padding_mode="border", align_corners=False)
