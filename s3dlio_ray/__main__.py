import sys

from s3dlio_ray._cli import main

sys.exit(main())
