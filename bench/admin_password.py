"""Cost of the admin password check and of opening the credential vault on this machine."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from argon2 import PasswordHasher

from risk_manager.benchkit import Figure, Progress, median, percentile
from risk_manager.security.password import TARGET_SECONDS, hash_password, tune_parameters
from risk_manager.security.vault import Credential, Vault

DESCRIPTION = "admin password: tuned argon2id cost (target ~250 ms), vault open/save, ms"

_PASSWORD = "bench-admin-password"


def run(progress: Progress) -> list[Figure]:
    tunings = []
    for i in range(3):
        progress(f"tuning {i + 1}/3")
        tunings.append(tune_parameters())
    tuned = tunings[-1]
    encoded = hash_password(_PASSWORD, tuned.params)
    hasher = PasswordHasher.from_parameters(tuned.params)
    verify_ms = []
    for i in range(15):
        progress(f"verify {i + 1}/15")
        start = time.perf_counter()
        hasher.verify(encoded, _PASSWORD)
        verify_ms.append((time.perf_counter() - start) * 1000)
    open_ms, save_ms = [], []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "credentials.vault"
        vault = Vault.create_with_password(path, _PASSWORD, tuned.params)
        for n in range(10):
            vault.put(f"account-{n}", Credential(f"user{n}", "k" * 44))
        vault.save()
        for i in range(10):
            progress(f"vault {i + 1}/10")
            start = time.perf_counter()
            opened = Vault.open(path, _PASSWORD)
            opened.credentials()
            open_ms.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            opened.save()
            save_ms.append((time.perf_counter() - start) * 1000)
    p = tuned.params
    return [
        Figure("tuned time cost (median of 3 tunings)", median([t.params.time_cost for t in tunings]), "passes",
               note=f"m={p.memory_cost // 1024} MiB, p={p.parallelism}"),
        Figure("password check, median", median(verify_ms), "ms", note=f"tuned toward {TARGET_SECONDS * 1000:.0f} ms"),
        Figure("password check, p95", percentile(verify_ms, 95), "ms"),
        Figure("vault open + decrypt 10 entries, median", median(open_ms), "ms", note="argon2id key derivation"),
        Figure("vault save (10 entries, fsync + rename), median", median(save_ms), "ms"),
    ]
