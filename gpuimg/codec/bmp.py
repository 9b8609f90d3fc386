"""The BMP variants gpuimg decodes itself: :mod:`gpuimg.codec.containers.bmp`, under the
name first published here."""

from .containers.bmp import BI_ALPHABITFIELDS, BI_BITFIELDS, BI_RGB, BmpHeader, decode, header, needs_own_decoder

__all__ = ["BmpHeader", "needs_own_decoder", "header", "decode", "BI_RGB", "BI_BITFIELDS", "BI_ALPHABITFIELDS"]
