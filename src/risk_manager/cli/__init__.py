"""Command line: `risk-manager <command>`."""
