"""The CPU a benchmark ran on, for its results: the 2-core VM changed CPU between sessions
without notice (BENCHMARKS.md, "An AVX-512 build and addresses looked up once"), and
speeds from different CPUs do not compare."""

from __future__ import annotations

import os
import platform


def cpu() -> str:
    """``'AMD EPYC, family 25 model 17, avx512, 2 cores'`` from ``/proc/cpuinfo`` where
    the OS has it; otherwise what :mod:`platform` knows."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as stream:
            for line in stream:
                if not line.strip():
                    break  # the first processor's block
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    flags = set(fields.get("flags", "").split())
    vector = next((v for v in ("avx512f", "avx2", "avx", "sse2") if v in flags), None)
    parts = [fields.get("model name") or platform.processor() or platform.machine()]
    if "cpu family" in fields:
        parts.append(f"family {fields['cpu family']} model {fields.get('model', '?')}")
    if vector:
        parts.append(vector.removesuffix("f"))
    parts.append(f"{os.cpu_count()} cores")
    return ", ".join(parts)


if __name__ == "__main__":
    print(cpu())
