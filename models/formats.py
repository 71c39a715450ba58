"""Output formats a run can write (no heavy imports: the command line checks
``--format`` / ``--figure-format`` against these before pandas or Pyomo load)."""

FORMATS = ("csv", "parquet", "latex", "md")
"""Table formats (csv is always written)."""

FIGURE_FORMATS = ("png", "pdf")
"""Figure formats."""
