"""Running as a service: log files, systemd (Linux), the Windows service, sd_notify."""
