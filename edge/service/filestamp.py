"""Whether a file changed: the daemon watches its bundle file this way (`SIGHUP` not needed)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FileStamp:
    mtime_ns: int
    size: int
    inode: int  # a new file renamed into place changes it even within one mtime tick

    @classmethod
    def of(cls, path: Path) -> FileStamp | None:
        """The file's stamp now; None when it cannot be read (missing, mid-rename)."""
        try:
            st = path.stat()
        except OSError:
            return None
        return cls(st.st_mtime_ns, st.st_size, st.st_ino)
