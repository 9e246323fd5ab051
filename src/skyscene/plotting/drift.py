"""Figure of a real/bogus drift report (:mod:`skyscene.classify.drift`)."""

from __future__ import annotations

import numpy as np

__all__ = ["plot_drift"]


def plot_drift(report):
    """PSI and fraction above threshold per night, one line per model version, with the
    PSI limit; flagged nights marked. Returns a matplotlib Figure (Agg)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5))
    ax_psi, ax_frac = fig.subplots(2, 1, sharex=True)
    versions = sorted({n.model_version for n in report.nights})
    for version in versions:
        rows = [n for n in report.nights if n.model_version == version]
        night = np.array([n.night for n in rows])
        ax_psi.plot(night, [n.psi for n in rows], "o-", label=version)
        flagged = [n for n in rows if n.flagged]
        if flagged:
            ax_psi.plot([n.night for n in flagged], [n.psi for n in flagged], "rx", ms=10)
        ax_frac.plot(night, [n.fraction_above for n in rows], "o-", label=version)
    ax_psi.axhline(report.config.psi_limit, color="r", ls="--", label="PSI limit")
    ax_psi.set_ylabel("PSI")
    ax_psi.legend(fontsize=7)
    ax_frac.set_ylabel("fraction above threshold")
    ax_frac.set_xlabel("night (floor(JD - 0.5))")
    return fig
