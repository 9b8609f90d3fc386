"""The default image of an animated PNG: :func:`gpuimg.codec.containers.png.default_image`,
under the name first published here."""

from .containers.png import default_image

__all__ = ["default_image"]
