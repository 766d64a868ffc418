"""PyTorch architectures cpuai trains: small CNN, ResNet family, Wide & Deep.

Each is built by a factory ``name(num_classes=..., in_channels=...)`` so that a package's
``architecture.factory`` can rebuild it for transfer learning and re-export.
"""
