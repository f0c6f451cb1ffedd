"""Image files for explanations: the PNG of a pixel-attribution overlay.

The picture itself is :func:`vigil.core.explain.image.overlay_pixels`; this
module only writes it, with pillow (``pip install pillow``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vigil.core.explain.adapters import ExplainError
from vigil.core.explain.image import ImageExplanation, overlay_pixels


def save_overlay(
    explanation: ImageExplanation,
    index: int,
    path: str | Path,
    *,
    image: Any = None,
    cmap: str | None = None,
    scale: int = 32,
    alpha: float = 0.75,
) -> Path:
    """Write a PNG: the image in grey with the signed attribution map blended over it.

    Positive attributions are red, negative blue (or the two ends of the
    matplotlib colormap ``cmap``, e.g. "bwr"); each pixel becomes a ``scale`` x
    ``scale`` block (an 8x8 digit is 256x256 at the default 32). ``image``: the
    picture to draw under the map (default: the explained input). The pixels are
    :func:`vigil.core.explain.image.overlay_pixels` with the same options.
    Returns the path written.

    >>> import pytest, tempfile; _ = pytest.importorskip("PIL")
    >>> import numpy as np
    >>> e = ImageExplanation("occlusion", "score", np.array([[[1.0, -1.0], [0.0, 0.5]]]), np.array([-1]),
    ...                      np.array([1.0]), np.array([0.0]), "constant image (0)", np.ones((1, 1, 2, 2)))
    >>> from PIL import Image
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     with Image.open(save_overlay(e, 0, Path(tmp) / "map.png", scale=4)) as png:
    ...         png.format, png.size, png.mode
    ('PNG', (8, 8), 'RGB')
    """
    try:
        from PIL import Image
    except ImportError as err:
        raise ExplainError("save_overlay needs pillow: pip install pillow") from err
    pixels = overlay_pixels(explanation, index, image=image, cmap=cmap, scale=scale, alpha=alpha)
    path = Path(path)
    Image.fromarray(pixels).save(path, format="PNG")
    return path


__all__ = ["save_overlay"]
