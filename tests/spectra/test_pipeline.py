"""Specification of the spectra demo stage (``make demo``)."""

import json

from skyscene.pipelines.spectra import demo_stage


def test_demo_stage_writes_results_and_plot(tmp_path):
    text = demo_stage(tmp_path, progress=False)
    assert "spectra: two-component" in text and "preferred model: mixture" in text
    result = json.loads((tmp_path / "spectra" / "spectrum_mixture_fit.json").read_text())
    assert abs(result["mixture"]["c"]["value"] - 0.35) < 0.03
    assert abs(result["mixture"]["theta2"]["Teff"] - 3900.0) < 100.0
    assert (tmp_path / "spectra" / "spectrum_mixture_fit.png").stat().st_size > 10_000
