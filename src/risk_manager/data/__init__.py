"""Data shipped with the package (contract catalogue, holiday calendars, templates)."""
