"""The HTML report of a study output directory and the `study.json` metadata it reads.

`write_study_metadata(out, study=..., settings=..., options=..., seconds=..., device=...)` records what ran;
`write_report(out)` turns any directory of CSVs and figures into one self-contained `report.html`.
"""
from .html import REPORT_FILE, render_report, write_report
from .metadata import METADATA_FILE, read_study_metadata, write_study_metadata

__all__ = ["METADATA_FILE", "REPORT_FILE", "read_study_metadata", "render_report", "write_report",
           "write_study_metadata"]
