"""A multipart/form-data body's one item (``curl -F file=@cat.jpg``), parsed in memory.

python-multipart parses; this module only keeps what the plain endpoint needs: the first file's
bytes, else the first non-empty text field. Starlette's ``Request.form()`` builds an
``UploadFile`` on a ``SpooledTemporaryFile`` for every file, which cost about 0.1 ms of the event
loop's time per digit upload here (this parse: 0.03 ms); the body is already whole in memory and
bounded by the server's body limit.
"""

from __future__ import annotations

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from cpuai.errors import InvalidInput

_FIX = "send a form such as curl -F file=@image.png, or the raw body: curl -T image.png"


class _Parts:
    """Collects each part's headers and data from the parser's callbacks."""

    def __init__(self) -> None:
        self.parts: list[tuple[dict[bytes, bytes], bytes]] = []
        self.ended = False
        self._headers: dict[bytes, bytes] = {}
        self._field, self._value = bytearray(), bytearray()
        self._data: list[bytes] = []

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._begin,
            "on_header_field": lambda b, s, e: self._field.extend(b[s:e]),
            "on_header_value": lambda b, s, e: self._value.extend(b[s:e]),
            "on_header_end": self._header_end,
            "on_part_data": lambda b, s, e: self._data.append(b[s:e]),
            "on_part_end": self._end_part,
            "on_end": self._end,
        }

    def _begin(self) -> None:
        self._headers, self._data = {}, []

    def _header_end(self) -> None:
        self._headers[bytes(self._field).lower()] = bytes(self._value)
        self._field.clear()
        self._value.clear()

    def _end_part(self) -> None:
        self.parts.append((self._headers, b"".join(self._data)))

    def _end(self) -> None:
        self.ended = True


def boundary_of(content_type: str) -> bytes:
    """The boundary of a ``multipart/form-data; boundary=...`` content type (InvalidInput if none)."""
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary", b"")
    if not boundary:
        raise InvalidInput("the multipart/form-data content type has no boundary", fix=_FIX)
    return boundary


def first_item(body: bytes, content_type: str) -> bytes | str:
    """The form's first file (bytes) or, failing that, its first non-empty text field (str)."""
    parts = _Parts()
    parser = MultipartParser(boundary_of(content_type), parts.callbacks())  # type: ignore[arg-type]
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError as err:
        raise InvalidInput(f"the multipart body is malformed: {err}", fix=_FIX) from None
    if not parts.ended:
        raise InvalidInput("the multipart body ends before its closing boundary", fix=_FIX)
    texts = []
    for headers, data in parts.parts:
        _, disposition = parse_options_header(headers.get(b"content-disposition", b""))
        if b"filename" in disposition:
            return data
        texts.append(data)
    for data in texts:
        if data.strip():
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidInput("a form field is not UTF-8 text", fix="send UTF-8 text") from None
    raise InvalidInput("the form holds no file and no text field", fix="send -F file=@image.png")
