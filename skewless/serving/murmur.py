"""MurmurHash3_x86_32 exactly as Spark ML's `FeatureHasher` computes it (seed 42, standard tail handling,
Spark's `hashUnsafeBytes2`), in plain Python: the serving side hashes a category to the same slot."""

from __future__ import annotations

SPARK_SEED = 42
_C1, _C2, _MASK = 0xCC9E2D51, 0x1B873593, 0xFFFFFFFF


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _MASK


def _mix_k(k: int) -> int:
    return (_rotl((k * _C1) & _MASK, 15) * _C2) & _MASK


def murmur3_32(data: bytes, seed: int = SPARK_SEED) -> int:
    """The signed 32-bit hash of `data` (as Java's int)."""
    h = seed & _MASK
    n = len(data)
    body = n - n % 4
    for i in range(0, body, 4):
        h ^= _mix_k(int.from_bytes(data[i:i + 4], "little"))
        h = (_rotl(h, 13) * 5 + 0xE6546B64) & _MASK
    tail = data[body:]
    if tail:
        h ^= _mix_k(int.from_bytes(tail, "little"))
    h ^= n
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _MASK
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _MASK
    h ^= h >> 16
    return h - (1 << 32) if h & 0x80000000 else h


def hashed_slot(column: str, value: str, num_features: int) -> int:
    """The vector slot FeatureHasher gives categorical `column=value` (Spark's nonNegativeMod)."""
    return murmur3_32(f"{column}={value}".encode()) % num_features
