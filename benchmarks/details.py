"""`make bench ARGS=--details`: per-stage figures beside the comparison of benchmarks/run.py: the decode
of phone formats, each output format's cost, animations, edits, and the time from upload to `succeeded`
on the local runtime. Figures, not assertions: this machine is shared."""

from __future__ import annotations

import io
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from PIL import Image

from imgflow.imaging import ImageLimits, inspect_image, load_normalized, placeholder, render_variant
from imgflow.models import OutputFormat

ROOT = Path(__file__).resolve().parent.parent
PHOTO = ROOT / "tests" / "fixtures" / "images" / "photos" / "sunset_by_Aitzol_Berasategi.jpg"
LIMITS = ImageLimits(max_bytes=25 * 2**20, max_pixels=60_000_000, max_side=16384, max_frames=300)
PRESETS = (4096, 1200, 600, 150)
ROUNDS = 3


def timed(label: str, action: Callable[[], object], rounds: int = ROUNDS) -> float:
    samples, cpu = [], []
    for _ in range(rounds):
        started, started_cpu = time.perf_counter(), time.process_time()
        action()
        samples.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    median = statistics.median(samples)
    # CPU beside wall time: libheif, libavif and the encoders use several threads, and Lambda bills
    # the wall time of however many vCPUs the memory setting gives.
    print(
        f"  {label:<58} median {median * 1000:8.0f} ms  (min {min(samples) * 1000:.0f}, n={rounds}; "
        f"CPU {statistics.median(cpu) * 1000:.0f} ms)"
    )
    return median


def decode_without_draft(data: bytes, edge: int = 4096) -> Image.Image:
    """The naive alternative: decode every pixel, then orient and resize."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        rgb = image.convert("RGB")
    rgb.thumbnail((edge, edge), Image.Resampling.LANCZOS)
    return rgb


QUALITY: dict[OutputFormat, int] = {"webp": 85, "avif": 60, "jpeg": 82}  # Settings' defaults


def all_variants(image: Image.Image, fmt: OutputFormat) -> None:
    for edge in PRESETS:
        render_variant(image, edge, fmt, QUALITY[fmt])


def twelve_megapixels() -> Image.Image:
    """The photo at a phone camera's 4032 x 3024."""
    with Image.open(PHOTO) as photo:
        return photo.convert("RGB").resize((4032, 3024), Image.Resampling.BILINEAR)


def peak_rss_mb(code: str) -> float:
    """Peak resident memory of a fresh interpreter running `code` (what one Lambda container would hold): its
    own VmHWM, since ru_maxrss would fold in this (large) process's at fork time."""
    peak = "next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM:'))"
    script = f"{code}\nprint({peak})"
    output = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout
    return int(output.strip().splitlines()[-1]) / 1024


def imaging() -> None:
    data = PHOTO.read_bytes()
    with Image.open(PHOTO) as probe:
        print(f"\nimaging: {PHOTO.name}, {probe.width}x{probe.height} ({probe.width * probe.height / 1e6:.1f} MP)")
    timed("inspect_image (bounds + strict decode, a JPEG's IDCT at 1/8)", lambda: inspect_image(data, LIMITS))
    timed("decode to 4096 px: load_normalized (libvips, sRGB, orient)", lambda: load_normalized(data, LIMITS, 4096))
    timed("decode to 4096 px: naive full decode + resize", lambda: decode_without_draft(data))
    timed("decode to 1200 px: load_normalized (libvips)", lambda: load_normalized(data, LIMITS, 1200))
    timed("decode to 1200 px: naive full decode + resize", lambda: decode_without_draft(data, 1200))
    image = load_normalized(data, LIMITS, 4096)
    timed("placeholder (blurhash + dominant colour)", lambda: placeholder(image))
    timed("4 WebP variants q85 (each from the decoded image)", lambda: all_variants(image, "webp"))
    for edge in PRESETS:
        timed(f"  one WebP variant at {edge} px", partial(render_variant, image, edge, "webp", 85))
    timed("4 AVIF variants q60 speed 8", lambda: all_variants(image, "avif"), rounds=1)
    sizes = {fmt: len(render_variant(image, 1200, fmt, QUALITY[fmt]).data) for fmt in ("webp", "avif")}
    print(f"  large (1200 px) bytes: WebP q85 {sizes['webp']:,}  AVIF q60 {sizes['avif']:,}")
    prelude = "\n".join(
        [
            f"import sys; sys.path.insert(0, {str(ROOT / 'layers/imgflow')!r})",
            "import io",
            "from PIL import Image",
            "from imgflow.imaging import ImageLimits, load_normalized, render_variant",
            f"limits = ImageLimits({LIMITS.max_bytes}, {LIMITS.max_pixels}, {LIMITS.max_side}, {LIMITS.max_frames})",
            f"data = open({str(PHOTO)!r}, 'rb').read()",
            "",
        ]
    )
    variants_task = (
        "im = load_normalized(data, limits, 4096)\nfor e in (4096, 1200, 600, 150): render_variant(im, e, 'webp', 85)"
    )
    naive = "im = Image.open(io.BytesIO(data)); im.load(); im = im.convert('RGB'); im.thumbnail((4096, 4096))"
    imgflow = peak_rss_mb(prelude + variants_task)
    without = peak_rss_mb(prelude + naive)
    print(f"  peak RSS, whole variants task (imgflow):     {imgflow:6.0f} MB")
    print(f"  peak RSS, naive full decode + resize only:   {without:6.0f} MB")


def phone_formats() -> None:
    """HEIC and AVIF uploads of a 12 MP photo: what validating and decoding them costs beside a JPEG."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    twelve_mp = twelve_megapixels()
    uploads: dict[str, bytes] = {}
    encodings: tuple[tuple[str, dict[str, Any]], ...] = (
        ("JPEG q90", {"format": "JPEG", "quality": 90}),
        # As an iPhone writes it: HEVC in 512 px tiles of a grid.
        ("HEIC q80, 512 px grid", {"format": "HEIF", "quality": 80}),
        ("AVIF q75 (8-bit)", {"format": "AVIF", "quality": 75, "speed": 6}),
    )
    for name, options in encodings:
        pillow_heif.options.GRID_TILE_SIZE = 512
        buffer = io.BytesIO()
        twelve_mp.save(buffer, **options)
        pillow_heif.options.GRID_TILE_SIZE = 0
        uploads[name] = buffer.getvalue()
    print("\nHEIC and AVIF input: a 12 MP photo (4032x3024)")
    for name, data in uploads.items():
        print(f"  {name}: {len(data):,} bytes")
        timed(f"  inspect_image ({name})", partial(inspect_image, data, LIMITS))
        timed(f"  load_normalized to 4096 px ({name})", partial(load_normalized, data, LIMITS, 4096))


def output_formats() -> None:
    """What each output format costs: encode time and bytes of every preset of a 12 MP photo."""
    image = twelve_megapixels()
    print("\noutput formats: the presets of a 12 MP photo (4032x3024), at the deployment's qualities")
    formats: tuple[OutputFormat, ...] = ("webp", "avif", "jpeg")
    for fmt in formats:
        for edge in PRESETS:
            rendered = render_variant(image, edge, fmt, QUALITY[fmt])
            label = f"{fmt} q{QUALITY[fmt]} at {min(edge, 4032)} px: {len(rendered.data):,} bytes"
            timed(label, partial(render_variant, image, edge, fmt, QUALITY[fmt]), rounds=1 if fmt == "avif" else 3)


def animations() -> None:
    """An animated GIF of 60 frames of 480 x 360: validation, one decode of every frame, each preset's encode."""
    from imgflow.imaging import load_animation, render_animation

    with Image.open(PHOTO) as photo:
        strip = photo.convert("RGB").resize((480 + 60 * 4, 360))
    frames = [strip.crop((index * 4, 0, index * 4 + 480, 360)) for index in range(60)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=40, loop=0)
    data = buffer.getvalue()
    print(f"\nanimations: a GIF of 60 frames of 480x360 ({len(data):,} bytes)")
    timed("inspect_image (every frame decoded)", partial(inspect_image, data, LIMITS), rounds=1)
    animation = load_animation(data, LIMITS)
    timed("load_animation (every frame, upright sRGB RGBA)", partial(load_animation, data, LIMITS), rounds=1)
    formats: tuple[OutputFormat, ...] = ("webp", "avif")
    for fmt in formats:
        for edge in PRESETS:
            size = len(render_animation(animation, edge, fmt, QUALITY[fmt]).data)
            label = f"animated {fmt} q{QUALITY[fmt]} at {edge} px: {size:,} bytes"
            timed(label, partial(render_animation, animation, edge, fmt, QUALITY[fmt]), rounds=1)


def edits() -> None:
    from imgflow.operations import apply_recipe
    from imgflow.recipes import Recipe

    data = PHOTO.read_bytes()
    image = load_normalized(data, LIMITS)
    recipe = Recipe.model_validate({"operations": [{"op": "grayscale"}, {"op": "rotate", "degrees": 90}]})
    print(f"\nedits: a recipe at full size ({image.width}x{image.height}), and how its result is stored")
    timed("decode at full size (recipes work on the size the view shows)", lambda: load_normalized(data, LIMITS))
    result = apply_recipe(image, recipe)
    timed("recipe grayscale + rotate 90", lambda: apply_recipe(image, recipe))
    choices: tuple[tuple[str, dict[str, Any]], ...] = (
        (
            "lossless WebP, effort 50, method 2 (chosen)",
            {"format": "WEBP", "lossless": True, "quality": 50, "method": 2},
        ),
        ("lossless WebP, effort 0, method 0", {"format": "WEBP", "lossless": True, "quality": 0, "method": 0}),
        ("PNG, compress level 1", {"format": "PNG", "compress_level": 1}),
    )
    for label, options in choices:
        buffer = io.BytesIO()
        timed(label, partial(result.save, buffer, **options), rounds=1)
        print(f"    {len(buffer.getvalue()):,} bytes")


def _memory_mb(pids: list[int]) -> tuple[float, float]:
    """Resident and proportional (shared pages split among their sharers) memory of `pids`, in MB."""
    rss = pss = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in {"Rss", "Pss"}:
                kilobytes = int(value.split()[0])
                rss, pss = (rss + kilobytes, pss) if name == "Rss" else (rss, pss + kilobytes)
    return rss / 1024, pss / 1024


def local_runtime() -> None:
    """What isolating invocations costs: each function's init, each container's cold start, and memory."""
    import os
    import re
    from concurrent.futures import ThreadPoolExecutor

    import requests

    from imgflow_client import Client
    from imgflow_local.runtime import LocalRuntime, RuntimeOptions

    print("\nlocal runtime: a container per invocation (loader imports once, containers fork from it)")
    log: list[str] = []
    options = RuntimeOptions(
        template=ROOT / "template.yaml", api_port=0, aws_port=0, parameters={"LogLevel": "WARNING"}, log=log.append
    )
    # One runtime per process: the embedded emulator's state belongs to the process.
    with LocalRuntime(options) as runtime:
        client = Client(runtime.api_url, runtime.token("bench"))
        print("  end to end (POST /uploads, presigned POST through the policy check, long-poll), first run cold:")
        for run in range(3):
            started = time.perf_counter()
            job_id = client.upload(PHOTO, wait=False)["job_id"]
            uploaded = time.perf_counter()
            view = client.wait(job_id)
            done = time.perf_counter()
            print(
                f"    run {run + 1}: {view['status']}; POST /uploads + presigned POST {uploaded - started:.2f} s, "
                f"-> succeeded {done - started:.2f} s"
            )
        for line in log:
            if " init " in line:
                print("  " + line.split("  ", 1)[1].split("; imported")[0] + ")")
        own = [os.getpid()]
        warm_pids = own + [pid for function in runtime.functions.values() for pid in function.pids()]
        rss, pss = _memory_mb(warm_pids)
        own_rss, _ = _memory_mb(own)
        print(f"  after three uploads (one container per function used): RSS {rss:.0f} MB, PSS {pss:.0f} MB")
        print(f"    of which the runtime's own process (emulator, front door, pollers): RSS {own_rss:.0f} MB")
        api = runtime.functions["ApiFunction"]
        pending = client.create_upload(PHOTO.name, PHOTO.stat().st_size, content_type="image/jpeg")["job_id"]
        with ThreadPoolExecutor(api.max_containers) as pollers:
            list(
                pollers.map(
                    lambda _: requests.get(
                        f"{runtime.api_url}/jobs/{pending}",
                        params={"wait": 2},
                        headers={"Authorization": f"Bearer {runtime.token('bench')}"},
                        timeout=60,
                    ),
                    range(api.max_containers),
                )
            )
        cold = [float(m[1]) for line in log if (m := re.search(r"ApiFunction .*new container, (\d+) ms", line))]
        print(
            f"  ApiFunction cold starts: {len(cold)}, fork to ready median {statistics.median(cold):.0f} ms "
            f"(max {max(cold):.0f} ms); {api.containers} containers now"
        )
        pids = own + [pid for function in runtime.functions.values() for pid in function.pids()]
        rss, pss = _memory_mb(pids)
        api_rss, api_pss = _memory_mb(api.pids()[1:])
        print(f"  with ApiFunction at its limit ({api.containers} containers): RSS {rss:.0f} MB, PSS {pss:.0f} MB")
        print(f"    of which its containers: RSS {api_rss:.0f} MB, PSS {api_pss:.0f} MB")


def main() -> None:
    imaging()
    phone_formats()
    output_formats()
    animations()
    edits()
    local_runtime()


if __name__ == "__main__":
    main()
