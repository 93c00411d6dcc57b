"""Drift and data quality: reference profiles, binned statistics, verdicts.

``profile`` fixes the bins from reference data and counts values in them; ``stats`` turns two
sets of counts into a statistic, p-value and verdict; ``quality`` reads data-quality metrics
off the same counts; ``multivariate`` runs the sample-based detectors; ``offline`` reads files
through DuckDB for ``watchkeeper drift``; ``report`` renders the HTML report.
"""
