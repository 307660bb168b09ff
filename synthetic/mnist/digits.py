"""Grey-scale digit images: MNIST from its IDX files, digits rendered from matplotlib's fonts, or
scikit-learn's bundled handwritten digits (load_digits) upsampled; the last two need no download.

All three return ``(images_NxHxW uint8, digits_N int32)`` with digits in ``0..k-1``.
"""

import functools
import gzip
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

# The paper trains on MNIST's first 50000 training images (the rest is validation); filtering them to the
# digits 0..k-1 gives exactly its sample counts for k = 2, 3, 5, 6, 8, 10.
MNIST_TRAIN_PREFIX = 50_000
PAPER_N = {2: 10610, 3: 15578, 5: 25538, 6: 30044, 8: 40170, 10: 50000}

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_DTYPE = {0x08: np.uint8}


def read_idx(path: pathlib.Path) -> np.ndarray:
    """Read one IDX file (raw or .gz) into a numpy array of its stated shape."""
    gz = path.suffix == ".gz"
    try:
        with (gzip.open if gz else open)(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:  # BadGzipFile is an OSError; a truncated .gz is an EOFError
        what = "a gzip-compressed IDX file (the name ends in .gz)" if gz else "an IDX file"
        raise ValueError(f"{path}: cannot be read as {what} ({type(e).__name__}: {e})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPE:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (magic bytes {data[:4]!r})")
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise ValueError(f"{path}: truncated IDX header ({len(data)} bytes for {ndim} dimensions)")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=_IDX_DTYPE[data[2]], offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says shape {shape} but holds {body.size} values")
    return body.reshape(shape)


def _find_idx(root: pathlib.Path, stem: str) -> pathlib.Path:
    for name in (stem, stem + ".gz"):
        if (root / name).is_file():
            return root / name
    expected = ", ".join(f"{a}[.gz]" for pair in IDX_FILES.values() for a in pair)
    raise FileNotFoundError(
        f"MNIST file {stem}[.gz] not found in mnist.root={str(root)!r}; expected the four IDX files "
        f"{expected} directly in that folder (see docs/mnist.md for the download)"
    )


def load_idx(root: str | None, split: str) -> tuple[np.ndarray, np.ndarray]:
    """All MNIST images and labels of ``split`` ("train" or "test") from the IDX files in ``root``."""
    if root is None:
        raise ValueError("mnist.source=idx needs mnist.root: the folder holding the MNIST IDX files")
    if split not in IDX_FILES:
        raise ValueError(f"split={split!r}; expected one of {sorted(IDX_FILES)}")
    folder = pathlib.Path(root).expanduser()
    image_path, label_path = (_find_idx(folder, stem) for stem in IDX_FILES[split])
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"{image_path}: images of shape {images.shape}; expected (N, 28, 28) as MNIST's")
    if labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(
            f"{label_path}: labels of shape {labels.shape} for the {len(images)} images of {image_path}"
        )
    if labels.size and labels.max() > 9:
        raise ValueError(f"{label_path}: labels up to {int(labels.max())}; expected digits 0..9")
    return images, labels.astype(np.int32)


# ---------------------------------------------------------------- offline digits

# (family, weight) pairs from the fonts bundled with matplotlib; stroke widths add thickness variation.
_FONTS = (
    ("DejaVu Sans", "normal"),
    ("DejaVu Sans", "bold"),
    ("DejaVu Serif", "normal"),
    ("DejaVu Serif", "bold"),
    ("DejaVu Sans Mono", "normal"),
    ("STIXGeneral", "normal"),
    ("STIXGeneral", "bold"),
)
_STROKES = (0.0, 2.0, 4.0)  # outline width in template pixels added around the glyph
_TEMPLATE = 64  # template side in pixels; the glyph's height is about 0.7 of it


@functools.cache
def digit_templates() -> np.ndarray:
    """Glyphs of 0-9 rendered with Agg: float32 (10, n_styles, T, T) in [0, 1], lightly blurred."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.font_manager import FontProperties
    from matplotlib.patches import PathPatch
    from matplotlib.textpath import TextPath
    from matplotlib.transforms import Affine2D
    from scipy.ndimage import gaussian_filter

    out = np.zeros((10, len(_FONTS) * len(_STROKES), _TEMPLATE, _TEMPLATE), np.float32)
    # one figure for all 210 glyphs, each drawn alone (its patch removed after the draw): the same pixels
    # as a figure per glyph, at a sixth of the cost (building a figure and its axes is most of it)
    fig = Figure(figsize=(1, 1), dpi=_TEMPLATE, facecolor="black")
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1), xlim=(0, _TEMPLATE), ylim=(0, _TEMPLATE))
    ax.set_axis_off()
    for d in range(10):
        for f, (family, weight) in enumerate(_FONTS):
            path = TextPath((0, 0), str(d), size=1.0, prop=FontProperties(family=family, weight=weight))
            box = path.get_extents()
            scale = 0.7 * _TEMPLATE / box.height
            centred = Affine2D().translate(-box.x0 - box.width / 2, -box.y0 - box.height / 2)
            path = centred.scale(scale).translate(_TEMPLATE / 2, _TEMPLATE / 2).transform_path(path)
            for s, stroke in enumerate(_STROKES):
                # linewidth is in points; at dpi = T one point is T/72 pixels
                patch = ax.add_patch(PathPatch(path, fc="white", ec="white", lw=stroke * 72 / _TEMPLATE))
                canvas.draw()
                patch.remove()
                grey = np.asarray(canvas.buffer_rgba())[..., 0].astype(np.float32) / 255.0
                out[d, f * len(_STROKES) + s] = gaussian_filter(grey, 1.0)
    return out


@functools.partial(jax.jit, static_argnames=("size",))
def _warp(templates, digit_N, style_N, params_Nx6, size):
    """Sample each template through its own affine map onto a size x size grid (bilinear)."""
    t = templates.shape[-1]
    # output pixel centres relative to the image centre, in units of a 28-pixel MNIST image
    u = (jnp.arange(size) + 0.5 - size / 2) * (28.0 / size)
    uy_HxW, ux_HxW = jnp.meshgrid(u, u, indexing="ij")
    angle, scale, shear, aspect, ty, tx = params_Nx6.T
    # the glyph (0.7 T high in the template) becomes about 18 px high, like MNIST's 20-px box with margins
    zoom = 0.7 * t / 18.0 / scale

    def one(d, s, c, sn, z, sh, a, dy, dx):
        y = uy_HxW - dy
        x = ux_HxW - dx
        # inverse map: output -> template coordinates (rotation, shear, anisotropic zoom)
        ys = z * a * (c * y - sn * x)
        xs = z / a * (sn * y + c * x + sh * y)
        return jax.scipy.ndimage.map_coordinates(
            templates[d, s], [ys + t / 2 - 0.5, xs + t / 2 - 0.5], order=1
        )

    return jax.vmap(one)(digit_N, style_N, jnp.cos(angle), jnp.sin(angle), zoom, shear, aspect, ty, tx)


def render_digits(
    n: int, k: int, seed: int | tuple[int, ...], size: int = 28
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random digits from ``0..k-1`` drawn from the font templates with random affine jitter.

    Deterministic in ``seed``; rotation +-15 degrees, scale 0.8-1.15, shear +-0.3, aspect 0.85-1.15,
    shift +-2 px, one of 7 fonts x 3 stroke widths. Returns uint8 (n, size, size) and int32 (n,).
    """
    if not 2 <= k <= 10:
        raise ValueError(f"k={k}; expected 2..10 digit classes")
    rng = np.random.default_rng(seed)
    templates = digit_templates()
    digit = rng.integers(0, k, n).astype(np.int32)
    style = rng.integers(0, templates.shape[1], n).astype(np.int32)
    params = _jitter(rng, n)
    return _warp_chunked(templates, digit, style, params, size), digit


def _jitter(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random affine parameters (angle, scale, shear, aspect, shift y, shift x) per image: float32 (n, 6)."""
    return np.stack(
        [
            rng.uniform(-np.pi / 12, np.pi / 12, n),
            rng.uniform(0.8, 1.15, n),
            rng.uniform(-0.3, 0.3, n),
            rng.uniform(0.85, 1.15, n),
            rng.uniform(-2, 2, n),
            rng.uniform(-2, 2, n),
        ],
        axis=1,
    ).astype(np.float32)


def _warp_chunked(templates, index, style, params, size) -> np.ndarray:
    """:func:`_warp` in fixed-size chunks (the last one padded; bounds memory, compiles once): uint8."""
    n = len(index)
    chunk = 2048
    pad = -n % chunk
    index_p, style_p = np.pad(index, (0, pad)), np.pad(style, (0, pad))
    params_p = np.pad(params, ((0, pad), (0, 0)), constant_values=1.0)
    images = np.concatenate(
        [
            np.asarray(
                _warp(
                    templates, index_p[s : s + chunk], style_p[s : s + chunk], params_p[s : s + chunk], size
                )
            )
            for s in range(0, n + pad, chunk)
        ]
        or [np.zeros((0, size, size), np.float32)]
    )[:n]
    return np.round(np.clip(images, 0.0, 1.0) * 255).astype(np.uint8)


# ---------------------------------------------------------------- scikit-learn's handwritten digits

# sklearn.datasets.load_digits: 1797 real handwritten digits (UCI optdigits), 8 x 8, grey levels 0..16,
# bundled with scikit-learn (no download). A fixed split by position: the first SKLEARN_TRAIN images
# are the training pool, the rest the test pool, so no test image is a warp of a training image.
SKLEARN_TRAIN = 1200
SKLEARN_SPLITS = ("train", "test")


@functools.cache
def sklearn_templates(split: str) -> tuple[np.ndarray, np.ndarray]:
    """The ``split`` pool of load_digits upsampled to templates: float32 (N, 1, T, T) in [0, 1], digits (N,).

    Each 8 x 8 image is resampled bilinearly so that its 8-pixel box spans 0.7 T, the glyph height of the
    font templates (the warp in :func:`_warp` assumes it), centred, then blurred by 1.5 template pixels
    to soften the 8 x 8 blocks.
    """
    from scipy.ndimage import gaussian_filter, map_coordinates
    from sklearn.datasets import load_digits

    if split not in SKLEARN_SPLITS:
        raise ValueError(f"split={split!r}; expected one of {SKLEARN_SPLITS}")
    bunch = load_digits()
    images, labels = bunch.images.astype(np.float32) / 16.0, bunch.target.astype(np.int32)
    part = slice(0, SKLEARN_TRAIN) if split == "train" else slice(SKLEARN_TRAIN, None)
    images, labels = images[part], labels[part]
    # template pixel centre -> source coordinate (source pixel centres at 0..7)
    u = (np.arange(_TEMPLATE) + 0.5 - _TEMPLATE / 2) * (8.0 / (0.7 * _TEMPLATE)) + 3.5
    grid = np.meshgrid(u, u, indexing="ij")
    out = np.stack([gaussian_filter(map_coordinates(im, grid, order=1, cval=0.0), 1.5) for im in images])
    return np.clip(out, 0.0, 1.0)[:, None], labels


def sklearn_digits(
    n: int, k: int, seed: int | tuple[int, ...], size: int = 28, split: str = "train"
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` real handwritten digits from ``0..k-1`` (scikit-learn's load_digits), upsampled to size x size.

    Each image is a random draw (with replacement) from the ``split`` pool of digits < k, warped by the
    same random affine jitter as :func:`render_digits`; deterministic in ``seed``. load_digits has about
    180 images per digit (about 120 in the training pool), so at the paper's counts every base image
    appears many times under different warps. Returns uint8 (n, size, size) and int32 (n,).
    """
    if not 2 <= k <= 10:
        raise ValueError(f"k={k}; expected 2..10 digit classes")
    templates, labels = sklearn_templates(split)
    pool = np.flatnonzero(labels < k)
    rng = np.random.default_rng(seed)
    index = pool[rng.integers(0, len(pool), n)].astype(np.int32)
    params = _jitter(rng, n)
    images = _warp_chunked(templates, index, np.zeros(n, np.int32), params, size)
    return images, labels[index]
