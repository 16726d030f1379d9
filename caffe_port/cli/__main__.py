"""``python -m caffe_port.cli``: the ``caffe-port`` command."""
import sys

from caffe_port.cli import main

sys.exit(main())
