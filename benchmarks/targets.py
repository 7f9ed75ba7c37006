"""The issue's `make bench` targets, judged from one run's figures (benchmarks/run.py writes them)."""

from __future__ import annotations

from typing import Any

# How far under pyvips's an encoded PSNR may be and still count as no worse, when the pixels that went into
# the encoder are at least as close to the reference as pyvips's: the encoder alone moves a variant by more.
# The reference itself, rounded and encoded, scores up to 0.07 dB under pyvips's variant (friends, method
# 4), and method 3 against 4 moves it by up to 0.09 dB (sunset); the issue called 0.1 dB "equal".
ENCODED_PSNR_TOLERANCE_DB = 0.05


def check_targets(results: list[dict[str, Any]]) -> list[str]:
    """The issue's targets, as ratios within this run: one line each, met or not."""
    lines = []
    by_input: dict[str, dict[str, dict[str, Any]]] = {}
    for row in results:
        by_input.setdefault(row["input"], {})[row["contender"]] = row
    largest = max(by_input, key=lambda name: by_input[name]["imgflow"]["megapixels"])
    for name, rows in by_input.items():
        ours, vips, naive = rows["imgflow"], rows["pyvips"], rows["naive"]
        checks = [
            ("CPU <= pyvips", ours["cpu_s"] <= vips["cpu_s"], f"{ours['cpu_s'] / vips['cpu_s']:.2f}x"),
            (
                "bytes within 3% of pyvips",
                ours["bytes"] <= 1.03 * vips["bytes"],
                f"{ours['bytes'] / vips['bytes']:.3f}x",
            ),
            (
                "PSNR@1200 no worse than pyvips (pixels >=, encoded within 0.05 dB)",
                ours["psnr_1200_pixels"] >= vips["psnr_1200_pixels"] - 0.005
                and ours["psnr_1200"] >= vips["psnr_1200"] - ENCODED_PSNR_TOLERANCE_DB,
                f"pixels {ours['psnr_1200_pixels'] - vips['psnr_1200_pixels']:+.2f} dB, "
                f"encoded {ours['psnr_1200'] - vips['psnr_1200']:+.2f} dB",
            ),
            (
                "peak RSS <= 1.5x pyvips",
                ours["peak_rss_mb"] <= 1.5 * vips["peak_rss_mb"],
                f"{ours['peak_rss_mb'] / vips['peak_rss_mb']:.2f}x",
            ),
        ]
        if name == largest:
            checks += [
                (
                    "CPU >= 1.5x lower than naive",
                    naive["cpu_s"] >= 1.5 * ours["cpu_s"],
                    f"{naive['cpu_s'] / ours['cpu_s']:.2f}x",
                ),
                ("peak RSS <= 200 MB", ours["peak_rss_mb"] <= 200, f"{ours['peak_rss_mb']:.0f} MB"),
            ]
        for label, met, figure in checks:
            lines.append(f"  {'met ' if met else 'MISS'} {name}: {label} ({figure})")
    return lines
