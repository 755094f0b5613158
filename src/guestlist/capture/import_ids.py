"""The `messageId` of an imported row: in file order, ending in the hash of the row.

A file's rows get ids in the order they are read, so storing them appends to the
`events (source_id, message_id)` index instead of writing a random page of it per row
(a sixth of a million-row import's time). The same file imported again repeats its ids
and `drop_seen` skips them before anything else; a row imported again from another file
has a new id but the same hash, and `drop_reimported` skips it once resolution has
found its profile.
"""

from __future__ import annotations

import re

PREFIX = "import-"
FILE_KEY_LENGTH = 16  # hex digits of the file's SHA-256 that name it in its rows' ids
# `import-<file>-<line>-<sha1>`, or `import-<sha1>` as imports wrote before (stop 14).
_IMPORTED = re.compile(
    re.escape(PREFIX) + rf"(?:[0-9a-f]{{{FILE_KEY_LENGTH}}}-[0-9]{{10}}-)?([0-9a-f]{{40}})\Z"
)


def file_key(digest: str) -> str:
    """What names a file (by its SHA-256, `imports.file_digest`) in its rows' ids."""
    return digest[:FILE_KEY_LENGTH]


def row_message_id(file_key: str, line: int, row_hash: str) -> str:
    return f"{PREFIX}{file_key}-{line:010d}-{row_hash}"


def row_hash(message_id: str) -> str | None:
    """The hash of the row an import's `messageId` names, or None for any other id."""
    if not message_id.startswith(PREFIX):
        return None
    matched = _IMPORTED.match(message_id)
    return None if matched is None else matched.group(1)
