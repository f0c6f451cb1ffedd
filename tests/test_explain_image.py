"""Pixel attributions: Integrated Gradients and occlusion on a small digits CNN, overlays as pixels (core) and
PNG files (interfaces); core writes no files."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import vigil
from vigil.core.explain.adapters import ExplainError
from vigil.core.explain.image import ImageExplanation, image_attributions, overlay_pixels
from vigil.interfaces.images import save_overlay

torch = pytest.importorskip("torch")
pytest.importorskip("captum")
Image = pytest.importorskip("PIL.Image")


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def digits_cnn():
    """A conv layer of 8 filters and a linear layer, trained on scikit-learn's bundled 8x8 digits."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    X = (digits.images / 16.0).astype(np.float32)
    y = digits.target
    order = np.random.default_rng(0).permutation(len(X))
    train, test = order[:1400], order[1400:]
    torch.manual_seed(0)
    cnn = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(8 * 8 * 8, 10))
    opt = torch.optim.Adam(cnn.parameters(), lr=0.01)
    xt, yt = torch.tensor(X[train])[:, None], torch.tensor(y[train])
    for _ in range(3):
        for batch in torch.randperm(len(train)).split(64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(cnn(xt[batch]), yt[batch]).backward()
            opt.step()
    with torch.no_grad():
        accuracy = (cnn(torch.tensor(X[test])[:, None]).argmax(dim=1).numpy() == y[test]).mean()
    assert accuracy > 0.9
    return cnn, X[test[:8]], y[test[:8]]


def _logits(cnn, images: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return cnn(torch.tensor(images, dtype=torch.float32)[:, None]).double().numpy()


def test_integrated_gradients_on_digits_is_complete_and_explains_the_predicted_class(digits_cnn):
    cnn, images, labels = digits_cnn
    for output in ("auto", "probability"):
        e = image_attributions(cnn, images, output=output)
        logits = _logits(cnn, images)
        np.testing.assert_array_equal(e.targets, logits.argmax(axis=1))
        assert np.mean(e.targets == labels) >= 0.75
        scores = logits if output == "auto" else np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        np.testing.assert_allclose(e.model_output, scores[np.arange(8), e.targets], atol=1e-5)
        np.testing.assert_allclose(e.expected_value, _zero_image_score(cnn, output)[e.targets], atol=1e-5)
        assert e.maps.shape == (8, 8, 8)
        assert e.extra["completeness_delta_relative"].max() < 0.01
        assert e.efficiency_gap() == pytest.approx(np.abs(e.extra["completeness_delta"]).max())
        assert e.baseline == "constant image (0)"
    assert e.output == "probability of the target class"


def _zero_image_score(cnn, output: str) -> np.ndarray:
    logits = _logits(cnn, np.zeros((1, 8, 8)))[0]
    return logits if output == "auto" else np.exp(logits) / np.exp(logits).sum()


def test_attribution_mass_lies_on_the_ink_rather_than_the_blank_background(digits_cnn):
    cnn, images, _ = digits_cnn
    ink, blank = images > 0.5, images == 0
    for method in ("integrated_gradients", "occlusion"):
        e = image_attributions(cnn, images, method=method)
        mass = np.abs(e.maps)
        per_image = [mass[i][ink[i]].mean() > 2 * mass[i][blank[i]].mean() for i in range(len(images))]
        assert all(per_image), (method, per_image)
        # a transposed map would put the mass elsewhere: digits are not symmetric about the diagonal
        transposed = np.abs(e.maps.transpose(0, 2, 1))
        assert mass[ink].mean() > transposed[ink].mean()


def test_occlusion_is_the_drop_of_the_output_when_a_tile_is_blanked(digits_cnn):
    cnn, images, _ = digits_cnn
    e = image_attributions(cnn, images[:3], method="occlusion", target=[1, 2, 3], window=(2, 4))
    assert e.extra["windows"] == 8 and e.extra["stride"] == (2, 4)
    assert e.output == "model output of the target class"
    for i, target in enumerate([1, 2, 3]):
        full = _logits(cnn, images[i:i + 1])[0, target]
        for r in range(0, 8, 2):
            for c in range(0, 8, 4):
                blanked = images[i].copy()
                blanked[r:r + 2, c:c + 4] = 0.0
                drop = full - _logits(cnn, blanked[None])[0, target]
                np.testing.assert_allclose(e.maps[i, r:r + 2, c:c + 4], drop, atol=1e-5)
    whole = image_attributions(cnn, images[:3], method="occlusion", target=4, window=8)
    change = (whole.model_output - whole.expected_value)[:, None, None]
    np.testing.assert_allclose(whole.maps, np.broadcast_to(change, whole.maps.shape), atol=1e-5)
    assert whole.output == "model output 4"


def test_overlapping_windows_average_over_the_windows_covering_a_pixel(digits_cnn):
    cnn, images, _ = digits_cnn
    e = image_attributions(cnn, images[:1], method="occlusion", target=0, window=2, stride=1)
    assert e.extra["windows"] == 49
    full = _logits(cnn, images[:1])[0, 0]

    def drop(r: int, c: int) -> float:
        blanked = images[0].copy()
        blanked[r:r + 2, c:c + 2] = 0.0
        return full - _logits(cnn, blanked[None])[0, 0]
    corner = drop(0, 0)  # pixel (0, 0) is covered by one window only
    inner = np.mean([drop(r, c) for r in (2, 3) for c in (4, 5)])  # pixel (3, 5) by four
    assert e.maps[0, 0, 0] == pytest.approx(corner, abs=1e-5)
    assert e.maps[0, 3, 5] == pytest.approx(inner, abs=1e-5)


def test_linear_colour_model_gets_weight_times_distance_summed_over_channels():
    torch.manual_seed(2)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 5, 2))
    images = np.random.default_rng(0).random((2, 3, 4, 5))
    e = image_attributions(model, images, target=1, baseline=0.5, steps=4)
    w = model[1].weight.detach().numpy()[1].reshape(3, 4, 5)
    np.testing.assert_allclose(e.maps, (w * (images - 0.5)).sum(axis=1), atol=1e-5)
    assert e.baseline == "constant image (0.5)" and e.output == "model output 1"
    assert e.efficiency_gap() < 1e-4
    frame = e.to_frame()
    assert list(frame.columns) == ["image", "row", "col", "attribution"] and len(frame) == 2 * 4 * 5
    assert frame.iloc[7][["image", "row", "col"]].tolist() == [0, 1, 2]
    assert frame.iloc[7]["attribution"] == e.maps[0, 1, 2]


def test_single_output_model_and_a_baseline_image():
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(9, 1))
    image = np.arange(9.0).reshape(3, 3) / 9
    base = np.full((1, 3, 3), 0.2)
    e = image_attributions(model, image, baseline=base, output="probability")
    assert e.targets.tolist() == [-1] and e.output == "probability" and e.baseline == "the given baseline image"
    with torch.no_grad():
        p = torch.sigmoid(model(torch.tensor(image[None, None], dtype=torch.float32))).item()
    assert e.model_output[0] == pytest.approx(p, abs=1e-6)
    assert e.extra["completeness_delta_relative"][0] < 0.01
    with pytest.raises(ExplainError, match="single output"):
        image_attributions(model, image, target=3)


def test_overlay_png_has_the_size_and_colours_of_the_map(digits_cnn, tmp_path):
    cnn, images, _ = digits_cnn
    e = image_attributions(cnn, images[:2])
    path = save_overlay(e, 1, tmp_path / "digit.png")
    assert path.is_file()
    with Image.open(path) as png:
        assert png.format == "PNG" and png.size == (256, 256) and png.mode == "RGB"
        pixels = np.asarray(png, dtype=int)
    hot = np.unravel_index(np.argmax(e.maps[1]), (8, 8))
    cold = np.unravel_index(np.argmin(e.maps[1]), (8, 8))
    r, g, b = pixels[hot[0] * 32 + 16, hot[1] * 32 + 16]
    assert r > b and r > g, "the strongest positive pixel is red"
    r, g, b = pixels[cold[0] * 32 + 16, cold[1] * 32 + 16]
    assert b > r, "the strongest negative pixel is blue"
    zero = np.argwhere(e.maps[1] == 0)[0]
    r, g, b = pixels[zero[0] * 32 + 16, zero[1] * 32 + 16]
    assert r == g == b, "an unattributed pixel shows the grey image"
    small = save_overlay(e, 0, tmp_path / "small.png", cmap="bwr", scale=4)
    with Image.open(small) as png:
        assert png.size == (32, 32)


def test_overlay_errors_are_named(tmp_path):
    e = ImageExplanation("occlusion", "score", np.zeros((1, 2, 2)), np.array([-1]), np.array([0.0]),
                         np.array([0.0]), "constant image (0)")
    cases = [({}, "pass image="), ({"index": 3, "image": np.zeros((2, 2))}, "index=3"),
             ({"image": np.zeros((3, 3))}, "does not match"), ({"image": np.zeros((2, 2)), "cmap": "nope"},
                                                                "cmap='nope'")]
    for options, message in cases:
        index = options.pop("index", 0)
        with pytest.raises(ExplainError, match=message):
            save_overlay(e, index, tmp_path / "x.png", **options)
        with pytest.raises(ExplainError, match=message):
            overlay_pixels(e, index, **options)
    assert list(tmp_path.iterdir()) == [], "a refused overlay writes no file"


def test_the_png_holds_exactly_the_core_pixels(digits_cnn, tmp_path):
    cnn, images, _ = digits_cnn
    e = image_attributions(cnn, images[:2], method="occlusion")
    for options in ({}, {"cmap": "bwr", "scale": 3, "alpha": 0.4}, {"scale": 0}, {"image": images[0] * 0}):
        pixels = overlay_pixels(e, 0, **options)
        with Image.open(save_overlay(e, 0, tmp_path / "o.png", **options)) as png:
            assert np.array_equal(np.asarray(png), pixels)
        size = max(1, options.get("scale", 32))
        assert pixels.shape == (8 * size, 8 * size, 3) and pixels.dtype == np.uint8


def test_overlay_pixels_match_a_hand_computed_blend():
    heat = np.array([[2.0, -1.0, 0.0]])
    grey_in = np.array([[0.0, 1.0, 2.0]])
    e = ImageExplanation("occlusion", "s", heat[None], np.array([-1]), np.array([0.0]), np.array([0.0]), "b")
    pixels = overlay_pixels(e, 0, image=grey_in, scale=2, alpha=0.5)
    grey = 0.85 * grey_in / 2
    signed = heat / 2
    red, blue = np.array([0.85, 0.05, 0.05]), np.array([0.05, 0.25, 0.95])
    colour = np.where(signed[..., None] >= 0, red, blue)
    weight = 0.5 * np.abs(signed)[..., None]
    expected = np.round(((1 - weight) * grey[..., None] + weight * colour) * 255).astype(np.uint8)
    assert np.array_equal(pixels[::2, ::2], expected) and np.array_equal(pixels[1::2, 1::2], expected)
    assert pixels[0, 4].tolist() == [round(0.85 * 255)] * 3, "an unattributed pixel is the plain grey image"


def test_save_overlay_is_not_in_core():
    import vigil.core.explain as core_explain
    import vigil.core.explain.image as core_image

    assert not hasattr(core_image, "save_overlay") and not hasattr(core_explain, "save_overlay")
    assert save_overlay.__module__ == "vigil.interfaces.images"


_WRITE_CALLS = {"save", "savefig", "write_text", "write_bytes", "to_parquet", "to_csv", "to_pickle", "to_feather",
                "to_excel"}


def _open_mode(call: ast.Call) -> ast.expr | None:
    if len(call.args) > 1:
        return call.args[1]
    return next((k.value for k in call.keywords if k.arg == "mode"), None)


def _file_writes(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, call) of every call that writes a file: a writer method, or open() in a writing mode."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if name in _WRITE_CALLS:
            # to_csv() without a destination returns the text and writes nothing
            if name == "to_csv" and not node.args and not any(k.arg == "path_or_buf" for k in node.keywords):
                continue
            found.append((node.lineno, name))
        elif name == "open":
            mode = _open_mode(node)
            if mode is None:
                continue
            if not (isinstance(mode, ast.Constant) and isinstance(mode.value, str)):
                found.append((node.lineno, "open(mode=<computed>)"))
            elif set(mode.value) & set("wax+"):
                found.append((node.lineno, f"open(mode={mode.value!r})"))
    return found


def test_no_core_module_writes_files():
    core = Path(vigil.__file__).resolve().parent / "core"
    offenders = [f"{path.relative_to(core)}:{line} {call}" for path in sorted(core.rglob("*.py"))
                 for line, call in _file_writes(ast.parse(path.read_text()))]
    assert offenders == []


def test_the_write_scan_would_catch_a_write():
    source = ("from PIL import Image\nImage.fromarray(a).save(p)\nopen(p, 'w')\nopen(p, mode='ab')\n"
              "Path(p).write_bytes(b)\ndf.to_parquet(p)\ndf.to_csv(p)\nopen(p)\ndf.to_csv()\n")
    assert [call for _, call in _file_writes(ast.parse(source))] == [
        "save", "open(mode='w')", "open(mode='ab')", "write_bytes", "to_parquet", "to_csv"]


def test_core_does_not_import_pillow():
    core = Path(vigil.__file__).resolve().parent / "core"
    offenders = []
    for path in core.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.relative_to(core)}:{node.lineno}" for n in names if n.split(".")[0] == "PIL"]
    assert offenders == []


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"method": "lime"}, "method='lime'"),
    ({"target": 12}, "out of range"),
    ({"target": [1, 2, 3]}, "3 classes for 2 images"),
    ({"method": "occlusion", "window": 9}, "larger than the 8x8"),
    ({"method": "occlusion", "window": 2, "stride": 3}, r"stride=\(3, 3\) is larger"),
    ({"baseline": np.zeros((2, 2))}, "baseline of shape"),
    ({"output": "odds"}, "output='odds'"),
    ({"integration": "simpson"}, "integration='simpson'"),
])
def test_bad_options_are_named(kwargs, message):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    with pytest.raises(ExplainError, match=message):
        image_attributions(model, np.zeros((2, 8, 8)), **kwargs)


def test_bad_images_and_models_are_named():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    with pytest.raises(ExplainError, match="images of shape"):
        image_attributions(model, np.zeros((1, 1, 1, 8, 8)))
    with pytest.raises(ExplainError, match="NaN"):
        image_attributions(model, np.full((8, 8), np.nan))
    with pytest.raises(ExplainError, match="torch.nn.Module"):
        image_attributions(lambda x: x, np.zeros((8, 8)))
