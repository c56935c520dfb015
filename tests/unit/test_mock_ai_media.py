"""What the mock AI draws (mock_ai_server.render) and when a queued job's
place is worth a report (mock_ai_server.progress): pure logic."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageChops

from mock_ai_server.render import _caption, render_animation, render_image


@pytest.mark.parametrize("size", [(64, 64), (320, 192), (2048, 64)])
def test_an_image_is_a_png_of_the_size_asked(size):
    made = render_image("3fa85f64-5717-4562-b3fc-2c963f66afa6", 0, "a lighthouse at dusk", *size)
    picture = Image.open(io.BytesIO(made.data))
    assert (picture.format, picture.size, made.content_type, made.extension) == ("PNG", size, "image/png", "png")
    assert (made.width, made.height, made.frame_count, made.duration_ms) == (*size, 0, 0)


def test_the_same_generation_index_and_prompt_make_the_same_bytes():
    one = render_image("g", 1, "a fox", 128, 128).data
    assert render_image("g", 1, "a fox", 128, 128).data == one
    assert len({one, render_image("g", 2, "a fox", 128, 128).data, render_image("g", 1, "a cat", 128, 128).data}) == 3
    assert render_image("h", 1, "a fox", 128, 128).data != one


@pytest.mark.parametrize("side", [64, 512])
def test_the_prompt_is_written_light_on_dark_in_the_top_left_corner(side):
    blank = Image.new("RGB", (side, side), (128, 128, 128))
    picture = blank.copy()
    _caption(picture, "a lighthouse at dusk")
    left, top, _, bottom = ImageChops.difference(picture, blank).getbbox()
    assert left < side // 10 and top < side // 10 and bottom < side // 2
    darkest, lightest = picture.convert("L").getextrema()
    assert darkest < 64 and lightest > 192


def test_a_blank_prompt_writes_nothing():
    picture = Image.new("RGB", (64, 64), (128, 128, 128))
    _caption(picture, "  ")
    assert picture.getcolors() == [(64 * 64, (128, 128, 128))]


def test_an_animation_has_the_frames_and_length_asked():
    made = render_animation("g", "a whale", 96, 64, frames=5, fps=10)
    animation = Image.open(io.BytesIO(made.data))
    assert (animation.format, animation.size, animation.n_frames, animation.is_animated) == ("WEBP", (96, 64), 5, True)
    assert (made.content_type, made.extension, made.frame_count, made.duration_ms) == ("image/webp", "webp", 5, 500)
    frames = []
    for index in range(animation.n_frames):
        animation.seek(index)
        frames.append(animation.convert("RGB").tobytes())
    assert len(set(frames)) == 5  # it moves
