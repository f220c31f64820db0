"""Analysis of ltray experiment folders: `ltray analysis EXPERIMENT [--out DIR]` (or `python -m ltray_analysis`) turns an
experiment folder into PNG figures, CSV tables and report.md. Reads only; the ltray package never
imports this one."""

from .loading import Experiment, load_experiment
from .report import Options, Report, build_report

__all__ = ["Experiment", "Options", "Report", "build_report", "load_experiment"]
