import sys

from s3dlio_ray._entry import main

sys.exit(main())
