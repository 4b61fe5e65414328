"""Content types we decode, and which decoder each one gets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from service.errors import UnsupportedMediaType

JSON = "application/json"
CSV = "text/csv"
PARQUET = frozenset({"application/vnd.apache.parquet", "application/x-parquet"})
ARROW = frozenset({"application/vnd.apache.arrow.stream", "application/vnd.apache.arrow.file"})
#: a batch whose format is told from its magic bytes (service.ingest.sniff)
OCTET_STREAM = "application/octet-stream"
BATCH_TYPES = (JSON, CSV, *sorted(PARQUET), *sorted(ARROW), OCTET_STREAM)
LABEL_TYPES = (JSON, CSV)


@dataclass(frozen=True)
class MediaType:
    essence: str
    params: Mapping[str, str]

    @property
    def charset(self) -> str | None:
        return self.params.get("charset")


def parse_media_type(content_type: str | None, *, accepted: tuple[str, ...]) -> MediaType:
    """Split ``type/subtype; key=value`` (case-insensitive) and refuse types not in ``accepted``."""
    essence, _, rest = (content_type or "").partition(";")
    params: dict[str, str] = {}
    for part in rest.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            params[key.strip().lower()] = value.strip().strip('"')
    media = MediaType(essence.strip().lower(), params)
    if media.essence not in accepted:
        shown = media.essence or "no content type"
        raise UnsupportedMediaType(detail=f"cannot decode {shown}; send one of {', '.join(accepted)}")
    if media.essence == JSON and (media.charset or "utf-8").lower().replace("-", "") != "utf8":
        raise UnsupportedMediaType(detail="JSON bodies must be UTF-8")
    return media
