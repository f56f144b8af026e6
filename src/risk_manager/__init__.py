"""risk-manager: a real-time risk-management daemon for TopstepX (ProjectX Gateway) accounts."""

__version__ = "0.1.0"
