"""Closed forms of the theory (docs/model.md).  This package never imports Pyomo:
it is the independent side of every numeric check (tests/test_closed_form.py
asserts the import boundary)."""
