"""Headless OpenGL rasteriser for batches of deformed face meshes.

Geometry is projected on the CPU (or GPU) by torch; OpenGL only rasterises, interpolates
normals and albedo, and shades with spherical-harmonics irradiance in the fragment shader.
Faces are drawn into slots of one atlas framebuffer, one indexed draw per face, and read back
with a single transfer per batch. An image is always drawn in the slot its key selects, so its
pixels never depend on which other images share the batch (byte-identical across batch sizes).
Runs on Mesa llvmpipe (CPU) and on NVIDIA EGL unchanged.
"""

from __future__ import annotations

import os

import numpy as np

from synface.errors import SynfaceError

_VERTEX = """
#version 330
in vec3 in_pos;      // x, y in NDC, z depth in [-1, 1]
in vec3 in_normal;
in vec3 in_albedo;
out vec3 v_normal;
out vec3 v_albedo;
void main() {
    gl_Position = vec4(in_pos, 1.0);
    v_normal = in_normal;
    v_albedo = in_albedo;
}
"""

_FRAGMENT = """
#version 330
uniform vec3 sh[9];
in vec3 v_normal;
in vec3 v_albedo;
out vec4 f_color;
void main() {
    vec3 n = normalize(v_normal);
    float x = n.x, y = n.y, z = n.z;
    vec3 e = sh[0] * 0.282095
           + sh[1] * 0.488603 * y + sh[2] * 0.488603 * z + sh[3] * 0.488603 * x
           + sh[4] * 1.092548 * x * y + sh[5] * 1.092548 * y * z
           + sh[6] * 0.315392 * (3.0 * z * z - 1.0)
           + sh[7] * 1.092548 * x * z + sh[8] * 0.546274 * (x * x - y * y);
    f_color = vec4(clamp(v_albedo * max(e, vec3(0.0)), 0.0, 1.0), 1.0);
}
"""


def create_context(backend: str | None = None):
    """A standalone OpenGL 3.3+ context: EGL (headless) by default, or ``SYNFACE_GL_BACKEND``."""
    import moderngl

    backend = backend or os.environ.get("SYNFACE_GL_BACKEND", "egl")
    try:
        return moderngl.create_context(standalone=True, backend=backend, require=330)
    except Exception as exc:  # moderngl raises plain Exceptions for missing drivers
        raise SynfaceError(
            f"cannot create a headless OpenGL context ({backend}): {exc}. On Debian install "
            "libegl1 and libgl1-mesa-dri (Mesa llvmpipe), or use an NVIDIA driver with EGL."
        ) from exc


class MeshRenderer:
    """Renders up to ``slots`` faces of one fixed triangle list per pass."""

    def __init__(self, height: int, width: int, triangles: np.ndarray, num_vertices: int, slots: int = 64) -> None:
        import moderngl

        self.height, self.width, self.slots = height, width, slots
        self.num_vertices = num_vertices
        self.cols = int(np.ceil(np.sqrt(slots)))
        self.rows = int(np.ceil(slots / self.cols))
        self.ctx = create_context()
        self.program = self.ctx.program(vertex_shader=_VERTEX, fragment_shader=_FRAGMENT)
        triangles = np.ascontiguousarray(triangles, dtype=np.int32)
        self.indices_per_face = triangles.size
        # One index block per slot, offset to that slot's vertices: draw k = indices of block k.
        blocks = triangles.reshape(1, -1) + (np.arange(slots, dtype=np.int32) * num_vertices)[:, None]
        self.ibo = self.ctx.buffer(blocks.astype(np.int32).tobytes())
        self.vbo = self.ctx.buffer(reserve=slots * num_vertices * 9 * 4)
        self.vao = self.ctx.vertex_array(
            self.program, [(self.vbo, "3f 3f 3f", "in_pos", "in_normal", "in_albedo")], self.ibo, index_element_size=4
        )
        size = (self.cols * width, self.rows * height)
        self.fbo = self.ctx.framebuffer(
            color_attachments=[self.ctx.texture(size, 4)], depth_attachment=self.ctx.depth_renderbuffer(size)
        )
        self._moderngl = moderngl

    def slot_rect(self, slot: int) -> tuple[int, int, int, int]:
        return ((slot % self.cols) * self.width, (slot // self.cols) * self.height, self.width, self.height)

    def render(
        self,
        pixels: np.ndarray,
        depth: np.ndarray,
        normals: np.ndarray,
        albedo: np.ndarray,
        sh: np.ndarray,
        keys: np.ndarray,
    ) -> np.ndarray:
        """Rasterise B faces. pixels (B, V, 2) in pixel coordinates (integer = pixel centre,
        y down), depth (B, V) in [0, 1], normals/albedo (B, V, 3), sh (B, 9, 3), keys (B,)
        choose the slots. Returns RGBA uint8 (B, H, W, 4); alpha is coverage."""
        n = len(pixels)
        out = np.empty((n, self.height, self.width, 4), np.uint8)
        slots = np.asarray(keys, dtype=np.int64) % self.slots
        remaining = list(range(n))
        while remaining:
            taken: dict[int, int] = {}
            later = []
            for i in remaining:
                if int(slots[i]) in taken:
                    later.append(i)  # slot busy: this image waits for the next pass
                else:
                    taken[int(slots[i])] = i
            self._pass(taken, pixels, depth, normals, albedo, sh, out)
            remaining = later
        return out

    def _pass(self, taken, pixels, depth, normals, albedo, sh, out) -> None:
        ctx, mgl = self.ctx, self._moderngl
        # Only the slots drawn in this pass are uploaded; the others are not drawn.
        block = np.empty((self.num_vertices, 9), np.float32)
        for slot, i in taken.items():
            block[:, 0] = (pixels[i, :, 0] + 0.5) * (2.0 / self.width) - 1.0
            block[:, 1] = 1.0 - (pixels[i, :, 1] + 0.5) * (2.0 / self.height)
            block[:, 2] = depth[i] * 2.0 - 1.0
            block[:, 3:6] = normals[i]
            block[:, 6:9] = albedo[i]
            self.vbo.write(block.tobytes(), offset=slot * block.nbytes)
        self.fbo.use()
        ctx.enable(mgl.DEPTH_TEST)
        # Back faces are always hidden behind front ones (the mesh is closed where it is seen);
        # culling them before rasterisation saves llvmpipe a third of its work.
        ctx.enable(mgl.CULL_FACE)
        ctx.front_face = "ccw"
        ctx.scissor = None
        ctx.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        for slot, i in taken.items():
            rect = self.slot_rect(slot)
            ctx.viewport = rect
            ctx.scissor = rect
            self.program["sh"].write(np.ascontiguousarray(sh[i], dtype=np.float32).tobytes())
            self.vao.render(mgl.TRIANGLES, vertices=self.indices_per_face, first=slot * self.indices_per_face)
        ctx.scissor = None
        atlas = np.frombuffer(self.fbo.read(components=4, alignment=1), np.uint8)
        atlas = atlas.reshape(self.rows * self.height, self.cols * self.width, 4)
        for slot, i in taken.items():
            x, y, w, h = self.slot_rect(slot)
            out[i] = atlas[y : y + h, x : x + w][::-1]  # GL rows run bottom-up
