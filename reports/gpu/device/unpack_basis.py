"""Restore the learned appearance basis carried as float16 (device transfer limit) to the float32 npz the generator reads."""
import sys
import numpy as np
src, dst = sys.argv[1], sys.argv[2]
z = np.load(src)
arrays = {k: (z[k].astype(np.float32) if z[k].dtype == np.float16 else z[k]) for k in z.files}
np.savez(dst, **arrays)
print("basis restored:", dst, {k: arrays[k].shape for k in ("basis", "residual_basis")})
