import sys

from s3dlio_ray.cli import main

sys.exit(main())
