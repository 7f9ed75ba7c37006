"""One contender's variants of one input, in a process of its own: `contender.py NAME INPUT OUT_DIR [WORKERS]`.

Prints one JSON line: CPU and wall seconds of the work (imports and reading the file excluded: a warm
Lambda container has paid for them), this process's own peak resident memory (`VmHWM`, imports included:
a container holds them), the bytes of every output, the stage CPU times where the contender has stages.
Writes the 1200 px variant to OUT_DIR/NAME.webp for the parent to score against its reference.

With `--pixels` it measures nothing: it writes OUT_DIR/NAME.png, the 1200 px variant's pixels as they went
into the encoder, for the parent to score the resize apart from the encoder.
"""

from __future__ import annotations

import io
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

EDGES = (4096, 1200, 600, 150)  # the deployment's default presets: full, large, small, thumb
SCORED_EDGE = 1200
QUALITY = 85

# Called with each size's pixels before they are encoded, in a `--pixels` run; None when measuring.
Keep = Callable[[int, Image.Image], None] | None
Outcome = tuple[dict[int, bytes], dict[str, float]]  # each size's encoded bytes; stage CPU seconds


def peak_rss_mb() -> float:
    """This process's own high-water mark; ru_maxrss would fold in the parent's at fork time."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def imgflow(data: bytes, workers: int, keep: Keep = None) -> Outcome:
    """The variants function's own path: the domain calls VariantsService makes, through the same helpers."""
    from imgflow import variants
    from imgflow.imaging import load_normalized, placeholder
    from imgflow.models import OutputFormat
    from imgflow.settings import Settings
    from imgflow.variants import render_stills

    # Measurement only: each encode's CPU on its own thread, for the model of wall time on 2 vCPUs.
    encode_cpu: dict[int, float] = {}
    encode = variants.render_variant

    def timed_encode(image: Any, long_edge: int, *args: Any) -> Any:
        if keep is not None:
            keep(long_edge, image)
        started = time.thread_time()
        rendered = encode(image, long_edge, *args)
        encode_cpu[long_edge] = time.thread_time() - started
        return rendered

    variants.render_variant = timed_encode  # type: ignore[assignment]

    settings = Settings(jobs_table="bench", uploads_bucket="bench", media_bucket="bench")
    # What plan() makes of a job that asks for the defaults: every preset in WebP, largest first.
    formats: tuple[OutputFormat, ...] = ("webp",)
    steps = [
        (preset, fmt) for preset in sorted(settings.variant_presets, key=lambda p: -p.long_edge) for fmt in formats
    ]
    started, started_wall = time.process_time(), time.perf_counter()
    image = load_normalized(data, settings.image_limits, max_edge=steps[0][0].long_edge, workers=workers)
    decoded, decoded_wall = time.process_time(), time.perf_counter()
    placeholder(image)
    stills = render_stills(image, steps, settings, workers)
    del image  # as VariantsService does: the stills hold what they need
    rendered = {preset.long_edge: variant.data for preset, _, variant in stills}
    render = time.process_time() - decoded
    return rendered, {
        "decode_s": decoded - started,
        # On two workers the decode's resize runs on both: its wall time, not its CPU, is on the critical path.
        "decode_wall_s": decoded_wall - started_wall,
        "render_s": render,
        "largest_encode_s": encode_cpu[steps[0][0].long_edge],
    }


def ingest(data: bytes, workers: int, keep: Keep = None) -> Outcome:
    """What the ingest function does to the pixels: every bound, and a strict decode of the whole image."""
    from imgflow.imaging import inspect_image
    from imgflow.settings import Settings

    inspect_image(data, Settings(jobs_table="bench", uploads_bucket="bench", media_bucket="bench").image_limits)
    return {}, {}


def naive(data: bytes, workers: int, keep: Keep = None) -> Outcome:
    """What a first Pillow version does: decode every pixel, orient, each size from the full image."""
    from PIL import ImageOps

    with Image.open(io.BytesIO(data)) as opened:
        opened.load()
        full = ImageOps.exif_transpose(opened).convert("RGB")
    outputs = {}
    for edge in EDGES:
        scale = min(1.0, edge / max(full.size))
        size = (max(1, round(full.width * scale)), max(1, round(full.height * scale)))
        resized = full.resize(size, Image.Resampling.LANCZOS) if scale < 1 else full
        if keep is not None:
            keep(edge, resized)
        buffer = io.BytesIO()
        resized.save(buffer, format="WEBP", quality=QUALITY, method=4)
        outputs[edge] = buffer.getvalue()
    return outputs, {}


def pyvips(data: bytes, workers: int, keep: Keep = None) -> Outcome:
    """libvips as its users call it: a shrink-on-load thumbnail per size, WebP without metadata."""
    import pyvips as vips

    # sRGB export only where the file embeds a profile: asked for always, libvips would take every
    # pixel of an untagged file through XYZ and back.
    header = vips.Image.new_from_buffer(data, "")
    export = {"export_profile": "srgb"} if header.get_typeof("icc-profile-data") else {}
    outputs = {}
    for edge in EDGES:
        thumb = vips.Image.thumbnail_buffer(data, edge, height=edge, size="down", **export)
        if keep is not None:
            thumb = thumb.copy_memory()  # read twice: a streamed decode would refuse the second read
            keep(edge, _from_vips(thumb))
        outputs[edge] = thumb.webpsave_buffer(Q=QUALITY, effort=4, keep="none")
    return outputs, {}


def pyvips_cascade(data: bytes, workers: int, keep: Keep = None) -> Outcome:
    """libvips as imgflow's core would use it, the fair test of switching: one decode (shrink-on-load to
    the largest size), each smaller size from the next larger (lanczos3), WebP at imgflow's effort 3."""
    import pyvips as vips

    header = vips.Image.new_from_buffer(data, "")
    export = {"export_profile": "srgb"} if header.get_typeof("icc-profile-data") else {}
    largest, *smaller = EDGES
    # In memory: the sizes below read it again, which a sequential (streamed) decode would not allow.
    image = vips.Image.thumbnail_buffer(data, largest, height=largest, size="down", **export).copy_memory()
    if image.hasalpha() and image.extract_band(image.bands - 1).min() == 255:
        image = image.extract_band(0, n=image.bands - 1).copy_memory()  # an opaque alpha, as imgflow drops it
    outputs = {largest: image.webpsave_buffer(Q=QUALITY, effort=3, keep="none")}
    for edge in smaller:
        scale = edge / max(image.width, image.height)
        if scale < 1:
            image = image.resize(scale, kernel="lanczos3").copy_memory()
        if keep is not None:
            keep(edge, _from_vips(image))
        outputs[edge] = image.webpsave_buffer(Q=QUALITY, effort=3, keep="none")
    return outputs, {}


def _from_vips(image: Any) -> Image.Image:
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[image.bands]
    return Image.frombytes(mode, (image.width, image.height), image.write_to_memory())


CONTENDERS: dict[str, Callable[[bytes, int, Keep], Outcome]] = {
    "imgflow": imgflow,
    "naive": naive,
    "pyvips": pyvips,
    "pyvips-cascade": pyvips_cascade,
    "ingest": ingest,
}


def main(name: str, source: Path, out_dir: Path, workers: int, pixels: bool = False) -> None:
    run = CONTENDERS[name]
    data = source.read_bytes()
    if pixels:
        kept: dict[int, Image.Image] = {}

        def keep(edge: int, image: Image.Image) -> None:
            kept[edge] = image.copy()

        run(data, workers, keep)
        kept[SCORED_EDGE].save(out_dir / f"{name}.png")
        return
    # Imports first, outside the timed work (each contender imports its library on first use).
    run(_tiny_jpeg(), workers, None)
    started, started_cpu = time.perf_counter(), time.process_time()
    outputs, stages = run(data, workers, None)
    wall, cpu = time.perf_counter() - started, time.process_time() - started_cpu
    if SCORED_EDGE in outputs:
        (out_dir / f"{name}.webp").write_bytes(outputs[SCORED_EDGE])
    result = {
        "cpu_s": cpu,
        "wall_s": wall,
        "peak_rss_mb": peak_rss_mb(),
        "bytes": sum(len(output) for output in outputs.values()),
        "bytes_by_edge": {str(edge): len(output) for edge, output in outputs.items()},
        **stages,
    }
    print(json.dumps(result))


def _tiny_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "gray").save(buffer, format="JPEG")
    return buffer.getvalue()


if __name__ == "__main__":
    arguments = [argument for argument in sys.argv[1:] if argument != "--pixels"]
    workers = int(arguments[3]) if len(arguments) > 3 else 1
    main(arguments[0], Path(arguments[1]), Path(arguments[2]), workers, pixels="--pixels" in sys.argv)
