"""s3dlio-ray: a distributed S3 workload runner and transfer engine."""

__version__ = "0.1.0"
