"""``python -m instaseg_ros.data.coco ANN.json ...``: see :func:`instaseg_ros.data.coco.cli.main`."""

from instaseg_ros.data.coco.cli import main

raise SystemExit(main())
