"""What the mock AI makes: pictures drawn with Pillow, the same every time
for the same generation, index and prompt (a seeded gradient with circles,
the prompt written on it). CPU work: callers run it on a thread pool."""

from __future__ import annotations

import functools
import hashlib
import io
import math
import random
import textwrap
import zlib
from dataclasses import dataclass

from PIL import Image, ImageChops, ImageDraw, ImageFont

PNG = "image/png"
WEBP = "image/webp"
EXTENSIONS = {PNG: "png", WEBP: "webp"}
# The gradient is made small and scaled up: smooth, and cheap at any size.
_RAMP_SIDE = 96
_GRADIENT_SIDE = 64  # the middle of the ramp, which every rotation leaves whole


@dataclass(frozen=True)
class Rendered:
    """A file and what it is."""

    data: bytes
    content_type: str
    width: int
    height: int
    duration_ms: int = 0
    frame_count: int = 0

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.content_type]


def _rng(generation_id: str, index: int, prompt: str) -> random.Random:
    seed = hashlib.sha256(f"{generation_id}\x1f{index}\x1f{prompt}".encode()).digest()
    return random.Random(seed)


def _colour(rng: random.Random) -> tuple[int, int, int]:
    return (rng.randrange(256), rng.randrange(256), rng.randrange(256))


def _background(rng: random.Random, width: int, height: int) -> Image.Image:
    """A two-colour gradient at a random angle, with a few circles."""
    start, end = _colour(rng), _colour(rng)
    ramp = Image.linear_gradient("L").resize((_RAMP_SIDE, _RAMP_SIDE), Image.Resampling.BILINEAR)
    ramp = ramp.rotate(rng.uniform(0, 360), resample=Image.Resampling.BILINEAR)
    inset = (_RAMP_SIDE - _GRADIENT_SIDE) // 2
    ramp = ramp.crop((inset, inset, inset + _GRADIENT_SIDE, inset + _GRADIENT_SIDE))
    small = Image.composite(Image.new("RGB", ramp.size, end), Image.new("RGB", ramp.size, start), ramp)
    picture = small.resize((width, height), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(picture)
    short = min(width, height)
    for _ in range(6):
        x, y = rng.randrange(width), rng.randrange(height)
        radius = rng.randrange(max(1, short // 8), max(2, short // 3))
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), outline=_colour(rng), width=max(1, short // 100))
    return picture


@functools.lru_cache(maxsize=64)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _widened(mask: Image.Image, by: int) -> Image.Image:
    """The mask grown by `by` pixels each way: the largest of its shifted
    copies, along rows and then along columns (a square max filter in
    4·by passes instead of (2·by + 1)² per pixel). The mask's empty margin
    of `by` pixels keeps the shifts from wrapping letters around."""
    rows = mask
    for shift in range(1, by + 1):
        rows = ImageChops.lighter(rows, ImageChops.offset(mask, shift, 0))
        rows = ImageChops.lighter(rows, ImageChops.offset(mask, -shift, 0))
    grown = rows
    for shift in range(1, by + 1):
        grown = ImageChops.lighter(grown, ImageChops.offset(rows, 0, shift))
        grown = ImageChops.lighter(grown, ImageChops.offset(rows, 0, -shift))
    return grown


def _caption(picture: Image.Image, prompt: str) -> None:
    """The prompt, white with a black outline, in the top left corner.

    The outline is the letters' own mask widened: the same look as
    FreeType's stroker at a fraction of its cost, which was most of a small
    picture's render."""
    width, height = picture.size
    size = max(8, min(width, height) // 20)
    font = _font(size)
    lines = textwrap.wrap(" ".join(prompt.split()), width=max(8, int(width * 0.9 / (size * 0.55))))[:3]
    if not lines:
        return
    text, outline = "\n".join(lines), max(1, size // 12)
    _, _, right, bottom = ImageDraw.Draw(picture).multiline_textbbox((0, 0), text, font=font)
    letters = Image.new("L", (math.ceil(right) + 2 * outline, math.ceil(bottom) + 2 * outline))
    ImageDraw.Draw(letters).multiline_text((outline, outline), text, fill=255, font=font)
    halo = _widened(letters, outline)
    corner = (width // 20 - outline, height // 20 - outline)
    picture.paste((0, 0, 0), corner, halo)
    picture.paste((255, 255, 255), corner, letters)


def render_image(generation_id: str, index: int, prompt: str, width: int, height: int) -> Rendered:
    """One PNG of the given size."""
    picture = _background(_rng(generation_id, index, prompt), width, height)
    _caption(picture, prompt)
    out = io.BytesIO()
    # Fast compression: the gradient compresses well anyway.
    picture.save(out, "PNG", compress_level=1, compress_type=zlib.Z_RLE)
    return Rendered(out.getvalue(), PNG, width, height)


def render_animation(generation_id: str, prompt: str, width: int, height: int, frames: int, fps: int) -> Rendered:
    """An animated WebP of `frames` frames at `fps`: the background slides
    across once while a dot crosses it; the caption stays."""
    rng = _rng(generation_id, 0, prompt)
    background = _background(rng, width, height)
    dot, radius = _colour(rng), max(2, min(width, height) // 16)
    pictures = []
    for frame in range(frames):
        picture = ImageChops.offset(background, frame * width // frames, 0)
        x = radius + (width - 2 * radius) * frame // max(1, frames - 1)
        y = height // 2
        ImageDraw.Draw(picture).ellipse((x - radius, y - radius, x + radius, y + radius), fill=dot)
        _caption(picture, prompt)
        pictures.append(picture)
    out = io.BytesIO()
    frame_ms = round(1000 / fps)
    pictures[0].save(
        out, "WEBP", save_all=True, append_images=pictures[1:], duration=frame_ms, loop=0, quality=70, method=0
    )
    return Rendered(out.getvalue(), WEBP, width, height, duration_ms=frame_ms * frames, frame_count=frames)
