"""Pixel attributions for PyTorch image classifiers, and an overlay picture to look at them.

Two methods, one result (:class:`ImageExplanation`, one H x W map an image):

- "integrated_gradients": Integrated Gradients from a baseline image (black by
  default), summed over the colour channels; the map adds up to
  f(image) - f(baseline) up to the completeness delta reported per image.
- "occlusion": a ``window`` of pixels (all channels) is set to the baseline,
  slid by ``stride``; a pixel gets the mean drop of the output over the windows
  that cover it.

torch and captum are an optional extra: ``pip install 'vigil[torch]'``.
:func:`overlay_pixels` draws a map over its image as an RGB array (writing it
as a PNG is ``vigil.interfaces.images.save_overlay``, which needs pillow).

>>> import pytest; torch = pytest.importorskip("torch")
>>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
>>> with torch.no_grad():
...     _ = model[1].weight.copy_(torch.tensor([[1.0, 0.0, 0.0, -1.0], [0.0, 0.0, 0.0, 0.0]]))
>>> e = image_attributions(model, np.array([[[1.0, 1.0], [1.0, 1.0]]]), target=0)
>>> e.maps[0].round(6).tolist(), e.output
([[1.0, 0.0], [0.0, -1.0]], 'model output 0')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from vigil.core.explain.adapters import ExplainError
from vigil.core.explain.gradients import (
    IG_METHODS,
    check_output,
    is_torch_module,
    module_place,
    needs_more_steps,
    output_text,
    relative_delta,
    require_torch,
)

IMAGE_METHODS = ("integrated_gradients", "occlusion")


@dataclass(frozen=True)
class ImageExplanation:
    """Pixel attributions of ``output`` for ``len(maps)`` images.

    ``maps[i]`` is an H x W map (channels summed for Integrated Gradients);
    ``targets[i]`` the explained class (-1 for a single-output model);
    ``model_output[i]`` the explained number for image i and
    ``expected_value[i]`` the same number for the baseline image.
    ``images`` holds the explained inputs as (n, C, H, W).
    """

    method: str
    output: str
    maps: np.ndarray
    targets: np.ndarray
    model_output: np.ndarray
    expected_value: np.ndarray
    baseline: str
    images: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.maps)

    def efficiency_gap(self) -> float:
        """Largest |sum of the map + baseline output - model output| (IG: the completeness delta)."""
        gap = self.maps.reshape(len(self), -1).sum(axis=1) + self.expected_value - self.model_output
        return float(np.max(np.abs(gap))) if gap.size else 0.0

    def to_frame(self) -> pd.DataFrame:
        """One row per (image, pixel): image, row, col, attribution."""
        n, h, w = self.maps.shape
        return pd.DataFrame({
            "image": np.repeat(np.arange(n), h * w),
            "row": np.tile(np.repeat(np.arange(h), w), n),
            "col": np.tile(np.arange(w), n * h),
            "attribution": self.maps.ravel(),
        })

    def __repr__(self) -> str:
        shape = "x".join(str(s) for s in self.maps.shape[1:])
        return (f"ImageExplanation(method={self.method!r}, output={self.output!r}, images={len(self)}, "
                f"map={shape}, baseline={self.baseline!r})")


def _as_batch(images: Any) -> np.ndarray:
    if hasattr(images, "detach"):
        images = images.detach().cpu().numpy()
    try:
        arr = np.array(images, dtype=float)
    except (TypeError, ValueError) as err:
        raise ExplainError("images must be numbers: an (n, C, H, W), (n, H, W) or (H, W) array") from err
    if arr.ndim == 2:
        arr = arr[None, None]
    elif arr.ndim == 3:
        arr = arr[:, None]
    elif arr.ndim != 4:
        raise ExplainError(f"images of shape {arr.shape}: give (n, C, H, W), (n, H, W) or one (H, W) image")
    if not np.all(np.isfinite(arr)):
        raise ExplainError("images hold NaN or infinite values")
    return arr


def _baseline_batch(baseline: Any, x: np.ndarray) -> tuple[np.ndarray, str]:
    if np.isscalar(baseline):
        return np.full_like(x, float(baseline)), f"constant image ({float(baseline):g})"
    b = np.asarray(baseline, dtype=float)
    try:
        return np.broadcast_to(b, x.shape).copy(), "the given baseline image"
    except ValueError as err:
        raise ExplainError(f"baseline of shape {b.shape} does not fit images of shape {x.shape[1:]}: give a number, "
                           "a (C, H, W) image or one baseline per image") from err


def _pair(value: Any, name: str) -> tuple[int, int]:
    pair = (int(value), int(value)) if np.isscalar(value) else tuple(int(v) for v in value)
    if len(pair) != 2 or min(pair) < 1:
        raise ExplainError(f"{name}={value!r}: give a positive (height, width) pair")
    return pair


def image_attributions(
    model: Any,
    images: Any,
    *,
    method: str = "integrated_gradients",
    target: int | Any = None,
    output: str = "auto",
    baseline: Any = 0.0,
    steps: int = 64,
    integration: str = "gausslegendre",
    tolerance: float | None = 0.01,
    max_steps: int = 1024,
    window: int | tuple[int, int] = (2, 2),
    stride: int | tuple[int, int] | None = None,
    batch_size: int = 256,
) -> ImageExplanation:
    """Attribute a torch image classifier's output to its input pixels.

    ``images``: (n, C, H, W), (n, H, W) (one channel) or one (H, W) image.
    ``target``: the class to explain, one for all images or one per image;
    default the predicted class of each image (ignored for a single-output
    model). ``output``: "probability" (softmax, or sigmoid of a single
    output) or the raw module output for "auto"/"raw"/"log-odds", as in
    ``adapters.as_model_function``. ``baseline``: a number or an image.

    Integrated Gradients: ``steps`` (doubled up to ``max_steps`` while the
    completeness delta exceeds ``tolerance`` of |f(image) - f(baseline)|),
    ``integration`` rule; ``extra["completeness_delta"]`` per image.
    Occlusion: ``window`` pixels (height, width), moved by ``stride``
    (default: the window, so the windows tile the image).

    >>> import pytest; torch = pytest.importorskip("torch")
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    >>> e = image_attributions(model, np.ones((2, 4, 4)), method="occlusion", window=2)
    >>> e.maps.shape, len(e.targets), e.extra["model_calls"]
    ((2, 4, 4), 2, 4)
    """
    torch, attr = require_torch("image_attributions")
    if not is_torch_module(model):
        raise ExplainError(f"image_attributions explains a torch.nn.Module, not a {type(model).__name__}")
    if method not in IMAGE_METHODS:
        raise ExplainError(f"method={method!r}: choose one of {list(IMAGE_METHODS)}")
    check_output(output)
    x = _as_batch(images)
    n, c, h, w = x.shape
    base, described = _baseline_batch(baseline, x)
    device, dtype = module_place(model, torch)
    probability = output == "probability"
    calls = {"forward": 0}

    def forward(inputs: Any) -> Any:
        calls["forward"] += 1
        out = model(inputs)
        if out.ndim == 1 or out.shape[-1] == 1:
            out = out.reshape(-1)
            return torch.sigmoid(out) if probability else out
        return torch.softmax(out, dim=-1) if probability else out

    def tensor(a: np.ndarray) -> Any:
        return torch.tensor(a, dtype=dtype, device=device)

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out_x = torch.cat([forward(tensor(x[s:s + batch_size])) for s in range(0, n, batch_size)])
            out_b = torch.cat([forward(tensor(base[s:s + batch_size])) for s in range(0, n, batch_size)])
        single = out_x.ndim == 1
        targets = _targets(target, out_x, n, single)
        if single:
            f_x, f_b = out_x.double().cpu().numpy(), out_b.double().cpu().numpy()
            text = "probability" if probability else "model output"
        else:
            rows = np.arange(n)
            f_x = out_x.double().cpu().numpy()[rows, targets]
            f_b = out_b.double().cpu().numpy()[rows, targets]
            if target is not None and len(set(targets.tolist())) == 1:
                text = output_text(output, int(targets[0]))
            else:
                text = f"{'probability' if probability else 'model output'} of the target class"
        target_arg = None if single else torch.tensor(targets, device=device)

        def select(part: np.ndarray) -> Any:
            return None if target_arg is None else target_arg[part]

        if method == "integrated_gradients":
            maps, extra = _integrated_gradients(attr, forward, tensor, x, base, select, f_x, f_b, steps=steps,
                                                integration=integration, tolerance=tolerance, max_steps=max_steps,
                                                batch_size=batch_size)
        else:
            maps, extra = _occlusion(attr, forward, tensor, x, base, select, window=window, stride=stride,
                                     batch_size=batch_size)
    finally:
        model.train(was_training)
    extra["model_calls"] = calls["forward"]
    return ImageExplanation(method=method, output=text, maps=maps, targets=np.where(single, -1, targets),
                            model_output=f_x, expected_value=f_b, baseline=described, images=x, extra=extra)


def _targets(target: Any, out: Any, n: int, single: bool) -> np.ndarray:
    if single:
        if target not in (None, 0):
            raise ExplainError(f"target={target!r}: the model has a single output (leave target=None)")
        return np.zeros(n, dtype=int)
    k = out.shape[-1]
    if target is None:
        return out.argmax(dim=-1).cpu().numpy().astype(int)
    t = np.broadcast_to(np.asarray(target), (n,)).astype(int) if np.ndim(target) == 0 else np.asarray(target, int)
    if t.shape != (n,):
        raise ExplainError(f"target has {t.size} classes for {n} images: give one class, or one per image")
    if t.min() < 0 or t.max() >= k:
        raise ExplainError(f"target={target!r} is out of range for a model with {k} outputs")
    return t


def _integrated_gradients(attr: Any, forward: Any, tensor: Any, x: np.ndarray, base: np.ndarray, select: Any,
                          f_x: np.ndarray, f_b: np.ndarray, *, steps: int, integration: str,
                          tolerance: float | None, max_steps: int, batch_size: int) -> tuple[np.ndarray, dict]:
    if integration not in IG_METHODS:
        raise ExplainError(f"integration={integration!r}: choose one of {list(IG_METHODS)}")
    if int(steps) < 2:
        raise ExplainError(f"steps={steps}: Integrated Gradients needs at least 2 steps")
    n = len(x)
    ig = attr.IntegratedGradients(forward)
    maps = np.zeros((n, *x.shape[2:]))
    delta = np.zeros(n)
    used = np.full(n, int(steps))
    todo, n_steps = np.arange(n), int(steps)
    while len(todo):
        chunk = max(1, int(batch_size) * 64 // n_steps)
        for start in range(0, len(todo), chunk):
            part = todo[start:start + chunk]
            a = ig.attribute(tensor(x[part]), baselines=tensor(base[part]), target=select(part), n_steps=n_steps,
                             method=integration, internal_batch_size=max(n_steps, int(batch_size)))
            maps[part] = a.detach().double().sum(dim=1).cpu().numpy()
            delta[part] = maps[part].reshape(len(part), -1).sum(axis=1) - (f_x[part] - f_b[part])
            used[part] = n_steps
        if tolerance is None or n_steps * 2 > max_steps:
            break
        todo = todo[needs_more_steps(delta[todo], f_x[todo], f_b[todo], tolerance)]
        n_steps *= 2
    return maps, {"steps": used, "integration": integration, "completeness_delta": delta,
                  "completeness_delta_relative": relative_delta(delta, f_x - f_b)}


def _occlusion(attr: Any, forward: Any, tensor: Any, x: np.ndarray, base: np.ndarray, select: Any, *,
               window: Any, stride: Any, batch_size: int) -> tuple[np.ndarray, dict]:
    n, c, h, w = x.shape
    win = _pair(window, "window")
    step = win if stride is None else _pair(stride, "stride")
    if win[0] > h or win[1] > w:
        raise ExplainError(f"window={win} is larger than the {h}x{w} images")
    if any(s > k for s, k, size in zip(step, win, (h, w), strict=True) if k < size):
        raise ExplainError(f"stride={step} is larger than window={win}: some pixels would never be occluded")
    occlusion = attr.Occlusion(forward)
    maps = np.zeros((n, h, w))
    for start in range(0, n, int(batch_size)):
        part = np.arange(start, min(n, start + int(batch_size)))
        per_eval = max(1, int(batch_size) // len(part))
        a = occlusion.attribute(tensor(x[part]), sliding_window_shapes=(c, *win), strides=(c, *step),
                                baselines=tensor(base[part]), target=select(part), perturbations_per_eval=per_eval)
        # the window spans every channel, so each channel holds the same value
        maps[part] = a.detach().double().mean(dim=1).cpu().numpy()
    windows = (-(-(h - win[0]) // step[0]) + 1) * (-(-(w - win[1]) // step[1]) + 1)
    return maps, {"window": win, "stride": step, "windows": windows}


def overlay_pixels(
    explanation: ImageExplanation,
    index: int,
    *,
    image: Any = None,
    cmap: str | None = None,
    scale: int = 32,
    alpha: float = 0.75,
) -> np.ndarray:
    """The RGB picture of image ``index``: the image in grey with the signed attribution map blended over it.

    Positive attributions are red, negative blue (or the two ends of the
    matplotlib colormap ``cmap``, e.g. "bwr"); the colour's weight grows with
    |attribution| / the largest |attribution| of the map, so unattributed
    pixels show the plain image. Each pixel becomes a ``scale`` x ``scale``
    block (an 8x8 digit is 256x256 at the default 32). ``image``: the picture
    to draw under the map (default: the explained input). Returns a uint8
    array of shape (H * scale, W * scale, 3); ``vigil.interfaces.images.save_overlay``
    writes it as a PNG.

    >>> e = ImageExplanation("occlusion", "score", np.array([[[1.0, -1.0], [0.0, 0.5]]]), np.array([-1]),
    ...                      np.array([1.0]), np.array([0.0]), "constant image (0)", np.ones((1, 1, 2, 2)))
    >>> pixels = overlay_pixels(e, 0, scale=4)
    >>> pixels.shape, pixels.dtype.name
    ((8, 8, 3), 'uint8')
    >>> pixels[0, 0].tolist(), pixels[0, 4].tolist(), pixels[4, 0].tolist()   # red, blue, the plain image
    ([163, 10, 10], [10, 48, 182], [0, 0, 0])
    """
    if not -len(explanation) <= index < len(explanation):
        raise ExplainError(f"index={index}: the explanation holds {len(explanation)} images")
    heat = np.asarray(explanation.maps[index], dtype=float)
    if image is None:
        if explanation.images is None:
            raise ExplainError("the explanation does not hold its images: pass image=")
        image = explanation.images[index]
    grey = np.asarray(image, dtype=float)
    if grey.ndim == 3:
        grey = grey.mean(axis=0)
    if grey.shape != heat.shape:
        raise ExplainError(f"image of shape {grey.shape} does not match the {heat.shape} attribution map")
    span = grey.max() - grey.min()
    # kept below white so that a light colour still shows on the brightest pixels
    grey = 0.85 * (grey - grey.min()) / span if span > 0 else np.zeros_like(grey)
    top = np.abs(heat).max()
    signed = heat / top if top > 0 else np.zeros_like(heat)
    if cmap is None:
        colour = np.where(signed[..., None] >= 0, np.array([0.85, 0.05, 0.05]), np.array([0.05, 0.25, 0.95]))
    else:
        try:
            from matplotlib import colormaps
        except ImportError as err:
            raise ExplainError("cmap= needs matplotlib (or leave cmap=None for red and blue)") from err
        if cmap not in colormaps:
            raise ExplainError(f"cmap={cmap!r} is not a matplotlib colormap (try 'bwr' or 'coolwarm')")
        colour = colormaps[cmap]((signed + 1) / 2)[..., :3]
    weight = float(alpha) * np.abs(signed)[..., None]
    rgb = (1 - weight) * grey[..., None] + weight * colour
    pixels = np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)
    size = max(1, int(scale))
    # an integer enlargement by nearest neighbour: each pixel becomes a size x size block
    return np.repeat(np.repeat(pixels, size, axis=0), size, axis=1)
