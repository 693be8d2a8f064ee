"""Data: symmetric targets with their transforms T, samplers, datamodules."""
