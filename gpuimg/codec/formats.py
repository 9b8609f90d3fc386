"""The one table of image formats: names, aliases, suffixes, what each codec stores.

Every other place that needs to know about formats (the decoder's error messages, the
encoder's codec names, the pipeline's output suffixes, the folder scan's patterns, the
command line's ``--format`` choices) asks this module instead of keeping a list of its own.

Example:
    >>> from gpuimg.codec import formats
    >>> formats.lookup("JPG").name, formats.lookup("jpg").suffix
    ('jpeg', '.jpg')
    >>> formats.lookup("tif").keeps_alpha, formats.lookup("jpeg").lossy
    (True, True)
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ArgumentTypeError, UnsupportedFormatError

__all__ = [
    "Format",
    "FORMATS",
    "lookup",
    "for_path",
    "names",
    "aliases",
    "image_patterns",
    "unsupported_format_name",
    "sniff",
]


@dataclass(frozen=True)
class Format:
    """One codec as users see it.

    ``name``: nvImageCodec's codec name. ``suffix``: what an output file of this format ends
    with. ``aliases``: every name and file extension (without the dot, lower case) that
    means this format, ``name`` and the suffix included. ``lossy``: takes a ``quality``.
    ``channels`` / ``dtypes``: what the format can store (1 gray, 3 RGB, 4 RGBA; uint8,
    uint16). ``magic``: byte strings a file of this format starts with. ``title``: how
    messages name it ("JPEG 2000"). ``encode_options``: the keyword options the encoder
    takes for it besides ``quality``. ``gpu_decode``: gpuimg decodes it with nvImageCodec's GPU
    decoder (the others decode on the CPU, which gpuimg runs in an isolated child
    process). Only JPEG is. TIFF is not: nvTIFF, fed corrupt strips, was seen leaving a
    few bytes of the target unwritten (too few for the written-check canary to see) and
    hanging in this process, where libtiff in the child fails cleanly. JPEG 2000 is not:
    nvJPEG2000 hung in this process on files with a changed subsampling or coding-style
    field, which the child's time limit contains (BENCHMARKS.md).

    Example:
        >>> fmt = lookup("png")
        >>> fmt.title, fmt.lossy, fmt.encode_options
        ('PNG', False, ('compression_level',))
    """

    name: str
    suffix: str
    aliases: tuple[str, ...]
    lossy: bool
    channels: tuple[int, ...]
    dtypes: tuple[str, ...]
    magic: tuple[bytes, ...] = ()
    title: str = ""
    encode_options: tuple[str, ...] = ()
    gpu_decode: bool = False

    @property
    def keeps_alpha(self) -> bool:
        return 4 in self.channels

    @property
    def keeps_16bit(self) -> bool:
        return "uint16" in self.dtypes

    @property
    def extensions(self) -> tuple[str, ...]:
        """The file extensions (with the dot) a folder scan takes for this format."""
        return tuple("." + a for a in self.aliases if a not in _NAMES_ONLY)


# Names that are not file extensions (``jpeg2k`` is nvImageCodec's name, ``jpeg2000`` a
# spelling users type); every other alias is also a file extension.
_NAMES_ONLY = frozenset({"jpeg2k", "jpeg2000"})

FORMATS: tuple[Format, ...] = (
    Format("jpeg", ".jpg", ("jpeg", "jpg", "jpe"), True, (1, 3), ("uint8",), (b"\xff\xd8\xff",),
           "JPEG", ("chroma_subsampling", "progressive", "optimized_huffman"), gpu_decode=True),
    Format("png", ".png", ("png",), False, (1, 3, 4), ("uint8", "uint16"), (b"\x89PNG\r\n\x1a\n",),
           "PNG", ("compression_level",)),
    Format("webp", ".webp", ("webp",), True, (3, 4), ("uint8",), (b"RIFF",), "WebP", ("lossless",)),
    Format("tiff", ".tif", ("tiff", "tif"), False, (1, 3, 4), ("uint8", "uint16"), (b"II*\x00", b"MM\x00*"), "TIFF"),
    Format("jpeg2k", ".jp2", ("jpeg2k", "jpeg2000", "jp2", "j2k", "j2c", "jpx"), True, (1, 3, 4), ("uint8", "uint16"),
           (b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xff\x4f\xff\x51"), "JPEG 2000", ("lossless", "psnr")),
    Format("bmp", ".bmp", ("bmp",), False, (1, 3, 4), ("uint8",), (b"BM",), "BMP"),
    Format("pnm", ".pnm", ("pnm", "ppm", "pgm", "pbm"), False, (1, 3), ("uint8", "uint16"),
           (b"P1", b"P2", b"P3", b"P4", b"P5", b"P6"), "PNM"),
)  # fmt: skip

_BY_ALIAS = {alias: fmt for fmt in FORMATS for alias in fmt.aliases}

# Formats nvImageCodec cannot read, by their magic numbers: named in UnsupportedFormatError.
_UNSUPPORTED_MAGIC = (
    (b"GIF87a", "GIF"), (b"GIF89a", "GIF"), (b"\x00\x00\x01\x00", "ICO"), (b"8BPS", "PSD"),
    (b"\xff\x0a", "JPEG XL"), (b"\x00\x00\x00\x0cJXL ", "JPEG XL"), (b"qoif", "QOI"),
)  # fmt: skip
_FTYP_BRANDS = {b"heic": "HEIC", b"heix": "HEIC", b"mif1": "HEIF", b"msf1": "HEIF", b"avif": "AVIF", b"avis": "AVIF"}


def lookup(name: str) -> Format:
    """The format called ``name`` (a codec name, an alias or an extension, any case, with
    or without the dot); UnsupportedFormatError naming the choices otherwise.

    Example:
        >>> lookup(".JP2").name
        'jpeg2k'
    """
    if not isinstance(name, str):
        raise ArgumentTypeError(f"a format must be a string such as 'jpeg', got {type(name).__name__}")
    fmt = _BY_ALIAS.get(name.lower().lstrip("."))
    if fmt is None:
        raise UnsupportedFormatError(f"format {name!r} is not supported; use one of {names()} (or an alias: {aliases()})")
    return fmt


def for_path(path: str) -> Format | None:
    """The format a file name's extension stands for, or None.

    Example:
        >>> for_path("a/photo.JPEG").name, for_path("notes.txt")
        ('jpeg', None)
    """
    dot = str(path).rfind(".")
    return _BY_ALIAS.get(str(path)[dot + 1 :].lower()) if dot >= 0 else None


def names() -> list[str]:
    """The canonical format names, in table order.

    Example:
        >>> names()
        ['jpeg', 'png', 'webp', 'tiff', 'jpeg2k', 'bmp', 'pnm']
    """
    return [fmt.name for fmt in FORMATS]


def aliases() -> list[str]:
    """Every accepted spelling, sorted.

    Example:
        >>> aliases()[:4]
        ['bmp', 'j2c', 'j2k', 'jp2']
    """
    return sorted(_BY_ALIAS)


def image_patterns() -> tuple[str, ...]:
    """Glob patterns (``*.jpg``, ...) of every extension gpuimg can decode.

    Example:
        >>> image_patterns()[:3]
        ('*.jpeg', '*.jpg', '*.jpe')
    """
    return tuple("*" + ext for fmt in FORMATS for ext in fmt.extensions)


def sniff(head: bytes) -> Format | None:
    """The supported format whose magic number ``head`` (a file's first bytes) starts with.

    Example:
        >>> sniff(b"\\x89PNG\\r\\n\\x1a\\n...").name, sniff(b"GIF89a")
        ('png', None)
    """
    for fmt in FORMATS:
        if any(head.startswith(magic) for magic in fmt.magic):
            if fmt.name == "webp" and head[8:12] != b"WEBP":
                continue
            return fmt
    return None


def unsupported_format_name(head: bytes) -> str | None:
    """The name of a format gpuimg cannot decode that ``head`` (a file's first bytes) is in.

    Example:
        >>> unsupported_format_name(b"GIF89a...")
        'GIF'
    """
    for magic, name in _UNSUPPORTED_MAGIC:
        if head.startswith(magic):
            return name
    if head[4:8] == b"ftyp":
        return _FTYP_BRANDS.get(bytes(head[8:12]))
    return None
