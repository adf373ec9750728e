"""The running CPU's data-cache sizes, read once per process on the host.

Used to size cache-blocked loops (the EM engine's ``chunk_size="auto"``,
:func:`espresso_jax.em.auto_chunk_bytes`). On Linux the sizes come from sysfs
(``/sys/devices/system/cpu/cpu0/cache/index*/{level,type,size}``), else from the C library's
``sysconf`` (``_SC_LEVEL1_DCACHE_SIZE``, ... where the platform defines them); a platform that
reports neither gives an empty mapping and callers use their fallback. Nothing here touches
JAX or the device.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

__all__ = ["cache_sizes", "parse_cache_size", "read_sysfs"]

_SYSFS = Path("/sys/devices/system/cpu/cpu0/cache")
_SYSCONF = {1: "SC_LEVEL1_DCACHE_SIZE", 2: "SC_LEVEL2_CACHE_SIZE", 3: "SC_LEVEL3_CACHE_SIZE"}
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_cache_size(text: str) -> int:
    """Bytes of a sysfs cache size such as ``"48K"``, ``"2048K"``, ``"32M"`` or ``"512"``.

    Raises:
        ValueError: ``text`` is not a number with an optional K/M/G suffix.
    """
    value = text.strip().upper().removesuffix("B")
    unit = value[-1:] if value[-1:] in ("K", "M", "G") else ""
    number = value[: len(value) - len(unit)]
    if not number.isdigit():
        raise ValueError(f"cache size must be a number with an optional K/M/G suffix, got "
                         f"{text!r}")
    return int(number) * _UNITS[unit]


def read_sysfs(root: str | os.PathLike = _SYSFS) -> dict[int, int]:
    """``{level: bytes}`` of the data and unified caches listed under a sysfs cache folder
    (``index*/{level,type,size}``; instruction caches and unreadable entries are skipped).
    Empty when the folder does not exist."""
    sizes: dict[int, int] = {}
    root = Path(root)
    for index in sorted(root.glob("index*")):
        try:
            kind = (index / "type").read_text().strip()
            level = int((index / "level").read_text())
            size = parse_cache_size((index / "size").read_text())
        except (OSError, ValueError):
            continue
        if kind in ("Data", "Unified") and size > 0:
            sizes[level] = max(size, sizes.get(level, 0))
    return sizes


def _from_sysconf() -> dict[int, int]:
    sizes: dict[int, int] = {}
    for level, name in _SYSCONF.items():
        if name in os.sysconf_names:
            try:
                size = os.sysconf(name)
            except (OSError, ValueError):
                continue
            if size > 0:
                sizes[level] = int(size)
    return sizes


@functools.cache
def cache_sizes() -> dict[int, int]:
    """``{level: bytes}`` of the data (or unified) caches that CPU 0 sees, e.g. ``{1: 49152,
    2: 2097152, 3: 314572800}``; L1/L2 are per core on current x86 and ARM servers, the last
    level is shared. Empty when the platform reports none. Read once per process (cached)."""
    return read_sysfs(_SYSFS) or _from_sysconf()
