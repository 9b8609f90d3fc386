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
    field, which the child's time limit contains (BENCHMARKS.md). ``engine``: what decodes
    it, "nvimgcodec" or "pillow" (the formats nvImageCodec lacks: GIF, ICO/CUR, TGA and
    PSD, decoded with Pillow in the isolated child, never encoded).

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
    engine: str = "nvimgcodec"

    @property
    def keeps_alpha(self) -> bool:
        return 4 in self.channels

    @property
    def encodes(self) -> bool:
        """gpuimg can write this format (nvImageCodec's encoders; Pillow's formats are read only)."""
        return self.engine == "nvimgcodec"

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
    # Decoded with Pillow in the isolated child (gpuimg.codec.pillow): read, not written.
    Format("gif", ".gif", ("gif",), False, (3, 4), ("uint8",), (b"GIF87a", b"GIF89a"), "GIF", engine="pillow"),
    Format("ico", ".ico", ("ico", "cur"), False, (1, 2, 3, 4), ("uint8",), (b"\x00\x00\x01\x00", b"\x00\x00\x02\x00"),
           "ICO", engine="pillow"),
    Format("tga", ".tga", ("tga",), False, (1, 2, 3, 4), ("uint8",), (), "TGA", engine="pillow"),
    Format("psd", ".psd", ("psd",), False, (1, 3, 4), ("uint8",), (b"8BPS\x00\x01",), "PSD", engine="pillow"),
)  # fmt: skip

_BY_ALIAS = {alias: fmt for fmt in FORMATS for alias in fmt.aliases}

# Formats nvImageCodec cannot read, by their magic numbers: named in UnsupportedFormatError.
_UNSUPPORTED_MAGIC = (
    (b"8BPS\x00\x02", "PSB"), (b"\xff\x0a", "JPEG XL"), (b"\x00\x00\x00\x0cJXL ", "JPEG XL"), (b"qoif", "QOI"),
)  # fmt: skip
# ISO base media files (AVIF, HEIC) say what they hold in their ftyp box's brands.
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"})
_GENERIC_BRANDS = frozenset({b"mif1", b"msf1"})


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
        ['jpeg', 'png', 'webp', 'tiff', 'jpeg2k', 'bmp', 'pnm', 'gif', 'ico', 'tga', 'psd']
    """
    return [fmt.name for fmt in FORMATS]


def encodable_names() -> list[str]:
    """The names of the formats gpuimg writes, in table order.

    Example:
        >>> encodable_names()
        ['jpeg', 'png', 'webp', 'tiff', 'jpeg2k', 'bmp', 'pnm']
    """
    return [fmt.name for fmt in FORMATS if fmt.encodes]


def aliases() -> list[str]:
    """Every accepted spelling, sorted.

    Example:
        >>> aliases()[:4]
        ['bmp', 'cur', 'gif', 'ico']
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
    """The supported format whose magic number ``head`` (a file's first bytes: 64 let an
    ISO base media file's ftyp box list its brands) starts with. A TGA has none (see
    :mod:`gpuimg.codec.containers.tga`).

    Example:
        >>> sniff(b"\\x89PNG\\r\\n\\x1a\\n...").name, sniff(b"GIF89a").name, sniff(b"JUNK")
        ('png', 'gif', None)
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
        >>> unsupported_format_name(b"qoif..."), unsupported_format_name(b"\\x00\\x00\\x00\\x18ftypheic\\x00\\x00\\x00\\x00mif1heic")
        ('QOI', 'HEIC/HEIF')
    """
    for magic, name in _UNSUPPORTED_MAGIC:
        if head.startswith(magic):
            return name
    return {"avif": "AVIF", "heif": "HEIC/HEIF"}.get(_ftyp_format(head) or "")


def _ftyp_format(head: bytes) -> str | None:
    """"avif" or "heif" for an ISO base media file whose ftyp box names either, else None:
    the major brand, or for a generic one (mif1, msf1) the first compatible brand that says."""
    if head[4:8] != b"ftyp":
        return None
    size = int.from_bytes(head[:4], "big")
    brands = [bytes(head[8:12])] + [bytes(head[i : i + 4]) for i in range(16, min(size, len(head)) - 3, 4)]
    for k, brand in enumerate(brands):
        if brand in _AVIF_BRANDS:
            return "avif"
        if brand in _HEIF_BRANDS:
            return "heif"
        if k == 0 and brand not in _GENERIC_BRANDS:
            return None  # an MP4, a QuickTime movie, ... (their major brands are their own)
    return None
