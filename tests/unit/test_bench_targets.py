"""Unit tests of how `make bench` judges the issue's targets from one run's figures."""

from __future__ import annotations

from typing import Any

from support import load_benchmark

targets = load_benchmark("targets")


def figures(contender: str, **overrides: Any) -> dict[str, Any]:
    row = {
        "input": "photo.jpg",
        "megapixels": 24.0,
        "contender": contender,
        "cpu_s": 1.0,
        "wall_s": 1.0,
        "peak_rss_mb": 150.0,
        "bytes": 500_000,
        "psnr_1200": 39.0,
        "psnr_1200_pixels": 56.0,
    }
    return {**row, **overrides}


def psnr_verdict(**ours: Any) -> str:
    results = [figures("imgflow", **ours), figures("pyvips"), figures("naive", cpu_s=2.0)]
    return next(line for line in targets.check_targets(results) if "PSNR" in line)


def test_given_closer_pixels_and_an_encoded_psnr_a_little_under_pyvips_then_the_psnr_target_is_met() -> None:
    verdict = psnr_verdict(psnr_1200_pixels=57.0, psnr_1200=38.96)

    assert verdict.startswith("  met ")
    assert "pixels +1.00 dB, encoded -0.04 dB" in verdict


def test_given_an_encoded_psnr_past_the_tolerance_under_pyvips_then_the_psnr_target_is_missed() -> None:
    assert psnr_verdict(psnr_1200_pixels=57.0, psnr_1200=38.94).startswith("  MISS ")


def test_given_pixels_further_from_the_reference_than_pyvips_then_the_psnr_target_is_missed() -> None:
    # A softer resize can encode to a higher PSNR: the encoded figure alone would reward it.
    assert psnr_verdict(psnr_1200_pixels=55.9, psnr_1200=39.2).startswith("  MISS ")
