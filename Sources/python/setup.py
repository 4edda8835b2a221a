"""Copies libbus1.so from the Swift build into the package (release, else debug),
so the installed package is self-contained: `swift build -c release --product bus1`
first, then `pip install Sources/python`. BUS1_LIBRARY still overrides it at run time."""
import os
import shutil
import sys

from setuptools import setup

HERE = os.path.dirname(os.path.abspath(__file__))
for build in ("release", "debug"):
    built = os.path.join(HERE, "..", "..", ".build", build, "libbus1.so")
    if os.path.exists(built):
        shutil.copyfile(built, os.path.join(HERE, "bus1", "libbus1.so"))
        break
else:
    sys.stderr.write("bus1: no libbus1.so in .build (swift build -c release --product bus1): "
                     "the package will need BUS1_LIBRARY at run time\n")

setup()
