"""xueliang: a GB/T 28181 video networking and sharing platform."""

__version__ = "0.1.0"
