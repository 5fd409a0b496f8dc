"""sha256 of a file, in blocks. Standard library only: install.py (no torch) checks the shipped
files with it as the engine checks its weights."""
import hashlib


def file_sha256(path, block=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(block), b""):
            digest.update(chunk)
    return digest.hexdigest()
