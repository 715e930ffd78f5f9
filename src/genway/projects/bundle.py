"""Reading a git bundle (`git bundle create repo.bundle --all`) without git: libgit2 (and so
pygit2) cannot read bundles, so the header and the packfile are parsed here and every object is
written into the project's repository through libgit2, which hashes what it stores.

Nothing of the upload touches the disk as a repository (no config, hooks or alternates of the
sender's are ever read); only objects and branch names come out of it. Bundles v2 and v3 with
SHA-1 objects are supported; prerequisites (an incremental bundle) must already be present.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass

import pygit2

from genway.errors import InvalidInput, PayloadTooLarge

SIGNATURES = (b"# v2 git bundle\n", b"# v3 git bundle\n")
TYPES = {
    1: pygit2.enums.ObjectType.COMMIT,
    2: pygit2.enums.ObjectType.TREE,
    3: pygit2.enums.ObjectType.BLOB,
    4: pygit2.enums.ObjectType.TAG,
}
OFS_DELTA, REF_DELTA = 6, 7
MAX_OBJECTS = 1_000_000
MIN_UNPACKED_BYTES = 64 * 1024 * 1024
MAX_UNPACKED_BYTES = 512 * 1024 * 1024
UNPACK_FACTOR = 16  # text history compresses well, but not 16 times over


class InvalidBundle(InvalidInput):
    detail = "Not a readable git bundle"


@dataclass(frozen=True)
class Bundle:
    refs: list[tuple[str, str]]  # (name, sha), in the bundle's order; HEAD included if sent
    prerequisites: list[str]
    pack: bytes


def parse(data: bytes) -> Bundle:
    """The header and the packfile of a bundle. Raises InvalidBundle."""
    signature = next((s for s in SIGNATURES if data.startswith(s)), None)
    if signature is None:
        raise InvalidBundle("Not a git bundle (expected '# v2 git bundle' or '# v3 git bundle')")
    position, refs, prerequisites = len(signature), [], []
    while True:
        end = data.find(b"\n", position)
        if end < 0:
            raise InvalidBundle("The bundle header is not terminated")
        line = data[position:end].decode("utf-8", errors="replace")
        position = end + 1
        if line == "":
            break
        if line.startswith("@"):
            if line.startswith("@object-format=") and line != "@object-format=sha1":
                raise InvalidBundle("Only SHA-1 repositories can be imported")
            continue
        if line.startswith("-"):
            prerequisites.append(line[1:41])
            continue
        sha, _, name = line.partition(" ")
        if len(sha) != 40 or not name:
            raise InvalidBundle(f"Bad reference line in the bundle header: {line[:80]!r}")
        refs.append((name, sha))
    return Bundle(refs, prerequisites, data[position:])


def _varint_header(pack: bytes, position: int) -> tuple[int, int, int]:
    byte = pack[position]
    kind, size, shift = (byte >> 4) & 7, byte & 15, 4
    position += 1
    while byte & 0x80:
        byte = pack[position]
        size |= (byte & 0x7F) << shift
        shift += 7
        position += 1
    return kind, size, position


def _inflate(pack: bytes, position: int, size: int) -> tuple[bytes, int]:
    """The object of `size` bytes compressed at `position`, and where the next one starts.
    Never inflates more than `size` + 1 bytes, whatever the stream holds (a zlib bomb)."""
    inflater = zlib.decompressobj()
    view = memoryview(pack)
    output, fed, produced, chunk = [], 0, 0, 64 * 1024
    while not inflater.eof:
        piece: bytes | memoryview = inflater.unconsumed_tail
        if not piece:
            piece = view[position + fed : position + fed + chunk]
            if not piece:
                raise InvalidBundle("The packfile is truncated")
            fed += len(piece)
        out = inflater.decompress(piece, size + 1 - produced)
        produced += len(out)
        if produced > size:
            raise InvalidBundle("A packed object has the wrong size")
        output.append(out)
    if produced != size:
        raise InvalidBundle("A packed object has the wrong size")
    return b"".join(output), position + fed - len(inflater.unused_data)


def _delta_size(delta: bytes, position: int) -> tuple[int, int]:
    size, shift = 0, 0
    while True:
        byte = delta[position]
        position += 1
        size |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return size, position


def apply_delta(base: bytes, delta: bytes) -> bytes:
    """A git delta applied to `base`. Raises InvalidBundle."""
    source_size, position = _delta_size(delta, 0)
    target_size, position = _delta_size(delta, position)
    if source_size != len(base):
        raise InvalidBundle("A delta does not match its base")
    out = bytearray()
    while position < len(delta):
        op = delta[position]
        position += 1
        if op & 0x80:
            offset = size = 0
            for bit in range(4):
                if op & (1 << bit):
                    offset |= delta[position] << (8 * bit)
                    position += 1
            for bit in range(3):
                if op & (0x10 << bit):
                    size |= delta[position] << (8 * bit)
                    position += 1
            size = size or 0x10000
            if offset + size > len(base):
                raise InvalidBundle("A delta copies beyond its base")
            out += base[offset : offset + size]
        elif op:
            out += delta[position : position + op]
            position += op
        else:
            raise InvalidBundle("A delta has a reserved instruction")
    if len(out) != target_size:
        raise InvalidBundle("A delta produced the wrong size")
    return bytes(out)


def write_pack(repo: pygit2.Repository, pack: bytes) -> int:
    """Store every object of a packfile in `repo`; returns how many. Raises InvalidBundle."""
    if len(pack) < 32 or pack[:4] != b"PACK":
        raise InvalidBundle("The bundle holds no packfile")
    if hashlib.sha1(pack[:-20]).digest() != pack[-20:]:  # noqa: S324 (git's own checksum)
        raise InvalidBundle("The packfile checksum does not match (corrupt or truncated)")
    version, count = struct.unpack(">II", pack[4:12])
    if version not in (2, 3) or count > MAX_OBJECTS:
        raise InvalidBundle("Unsupported packfile")
    by_offset: dict[int, tuple[int, bytes]] = {}
    by_sha: dict[str, tuple[int, bytes]] = {}
    position = 12
    # Objects are held in memory to resolve deltas: their total is bounded, so that a small
    # upload cannot unpack into gigabytes.
    budget = min(MAX_UNPACKED_BYTES, max(MIN_UNPACKED_BYTES, UNPACK_FACTOR * len(pack)))
    unpacked = 0
    try:
        for _ in range(count):
            start = position
            kind, size, position = _varint_header(pack, position)
            base: tuple[int, bytes] | None = None
            if kind == OFS_DELTA:
                byte = pack[position]
                distance = byte & 0x7F
                position += 1
                while byte & 0x80:
                    byte = pack[position]
                    distance = ((distance + 1) << 7) | (byte & 0x7F)
                    position += 1
                base = by_offset.get(start - distance)
            elif kind == REF_DELTA:
                base_sha = pack[position : position + 20].hex()
                position += 20
                base = by_sha.get(base_sha) or _from_repo(repo, base_sha)
            elif kind not in TYPES:
                raise InvalidBundle(f"Unknown packed object type {kind}")
            unpacked += size
            if unpacked > budget:
                raise PayloadTooLarge(f"The bundle unpacks to more than {budget} bytes")
            data, position = _inflate(pack, position, size)
            if kind in (OFS_DELTA, REF_DELTA):
                if base is None:
                    raise InvalidBundle("A delta's base is missing (incomplete bundle)")
                unpacked += _delta_size(data, _delta_size(data, 0)[1])[0]
                if unpacked > budget:
                    raise PayloadTooLarge(f"The bundle unpacks to more than {budget} bytes")
                kind, data = base[0], apply_delta(base[1], data)
            sha = str(repo.odb.write(TYPES[kind], data))
            by_offset[start] = by_sha[sha] = (kind, data)
    except IndexError as exc:
        raise InvalidBundle("The packfile is truncated") from exc
    except zlib.error as exc:
        raise InvalidBundle(f"The packfile is corrupt: {exc}") from exc
    return int(count)


def _from_repo(repo: pygit2.Repository, sha: str) -> tuple[int, bytes] | None:
    try:
        kind, data = repo.odb.read(sha)[:2]
    except KeyError:
        return None
    code = {v: k for k, v in TYPES.items()}[pygit2.enums.ObjectType(kind)]
    return code, data
