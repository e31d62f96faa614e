#!/usr/bin/env python3
"""Peak memory of one diff_edit_image on a large GRAY8 input (issue 21: the pixel policy's buffers at input size).

    DIFFEDIT_LIBRARY=build/lib/libdiffedit.so.0 /usr/bin/time -v python3 tools/big_input_check.py 16384 [MAX_MEMORY]

Edits an N x N mid-grey GRAY8 picture with the default model (2 steps) through the Python binding and prints
the output shape; `/usr/bin/time -v` reports the peak RSS ("Maximum resident set size"). MAX_MEMORY (bytes, the
model's max_memory) makes the request a rejected one: the peak of a refused request.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "python"))
import diffedit  # noqa: E402

n = int(sys.argv[1]) if len(sys.argv) > 1 else 8192
max_memory = int(sys.argv[2]) if len(sys.argv) > 2 else 0
with diffedit.Model("", max_memory=max_memory) as model, model.context() as ctx:
    a = np.full((n, n), 128, np.uint8)
    try:
        out = ctx.edit_image(a, "make the circle blue", format=diffedit.PixelFormat.GRAY8, steps=2)
        print("ok", out.shape)
    except diffedit.DiffEditError as e:
        print("error", type(e).__name__, e)
