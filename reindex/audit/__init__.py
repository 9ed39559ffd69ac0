"""Audit a fine-tune: which rows of the input embedding and output head differ from the base model.

    report = reindex.audit.audit("base/", "tuned/", expect=["added"])
    report.exit_code   # 0 when every row outside the expected set is unchanged, 3 otherwise
"""
from __future__ import annotations

from .check import audit
from .result import CHANGED_EXIT_CODE, AuditReport, MatrixAudit

__all__ = ["audit", "AuditReport", "MatrixAudit", "CHANGED_EXIT_CODE"]
