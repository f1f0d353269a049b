"""Training logs: a CSV file that resumes cleanly."""

import csv
import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["CSVLogger"]


class CSVLogger:
    """Append rows of metrics to a CSV file; on resume, rows after ``resume_step`` are dropped.

    Columns are fixed by the first row written (later rows may omit some). Each write is
    flushed, so the file is readable while training runs.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     log = CSVLogger(Path(d) / "log.csv")
        ...     for step in (1, 2, 3):
        ...         log.log({"step": step, "loss": 1.0 / step})
        ...     resumed = CSVLogger(Path(d) / "log.csv", resume_step=2)  # drops step 3
        ...     resumed.log({"step": 3, "loss": 0.25})
        ...     lines = (Path(d) / "log.csv").read_text().splitlines()
        >>> lines
        ['step,loss', '1,1.0', '2,0.5', '3,0.25']
    """

    def __init__(self, path: str | os.PathLike, *, resume_step: int | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fieldnames: list[str] | None = None
        rows: list[dict[str, str]] = []
        if resume_step is not None and self.path.exists():
            with self.path.open(newline="") as f:
                reader = csv.DictReader(f)
                self.fieldnames = list(reader.fieldnames or [])
                rows = [r for r in reader if int(float(r.get("step", 0))) <= resume_step]
        elif self.path.exists():
            self.path.unlink()
        if self.fieldnames:
            with self.path.open("w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=self.fieldnames)
                w.writeheader()
                w.writerows(rows)

    def log(self, row: Mapping[str, float | int | str]) -> None:
        """Append one row (must contain ``step``)."""
        if "step" not in row:
            raise ValueError("every logged row needs a 'step' entry")
        new = not self.path.exists() or self.fieldnames is None
        if self.fieldnames is None:
            self.fieldnames = list(row.keys())
        extra = [k for k in row if k not in self.fieldnames]
        if extra:
            raise ValueError(f"columns {extra} were not in the first logged row {self.fieldnames}")
        with self.path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.fieldnames)
            if new:
                w.writeheader()
            w.writerow(dict(row))
