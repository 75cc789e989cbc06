"""``python -m tvbinv_hpc.bench`` == ``tvbinv-hpc bench``."""
import sys

from tvbinv_hpc.cli.main import main

sys.exit(main(["bench", *sys.argv[1:]]))
