"""Admin side of the risk config: rules editing, commitment mode, and the log and audit readers."""
