"""Analysis of ltray experiment folders: `python -m analysis EXPERIMENT [--out DIR]` turns an
experiment folder into PNG figures, CSV tables and report.md. Reads only; the ltray package never
imports this one."""

from analysis.loading import Experiment, load_experiment
from analysis.report import Options, Report, build_report

__all__ = ["Experiment", "Options", "Report", "build_report", "load_experiment"]
