"""Headless OpenGL rasteriser for batches of deformed face meshes.

Geometry is projected on the CPU (or GPU) by torch; OpenGL only rasterises, evaluates
spherical-harmonics irradiance per vertex, interpolates it with the texture coordinates, and
multiplies it by each face's own albedo texture (one layer of a texture array per slot).
Faces are drawn into slots of one atlas framebuffer, one indexed draw per face, and read back
with a single transfer per batch. An image is always drawn in the slot its key selects, so its
pixels never depend on which other images share the batch (byte-identical across batch sizes).
Runs on Mesa llvmpipe (CPU) and on NVIDIA EGL unchanged.
"""

from __future__ import annotations

import os
import time

import numpy as np

from synface.errors import SynfaceError
from synface.render.background import BACKGROUND_GLSL, background_style_index

# Spherical-harmonics irradiance is smooth, so it is evaluated per vertex and interpolated;
# the fragment shader only fetches the albedo texel and multiplies (llvmpipe's cost is per
# fragment).
_VERTEX = """
#version 330
uniform vec3 sh[9];
uniform float shine;  // specular strength
in vec3 in_pos;      // x, y in NDC, z depth in [-1, 1]
in vec3 in_normal;
in vec2 in_uv;
out vec3 v_irradiance;
out vec3 v_specular;
out vec2 v_uv;
void main() {
    gl_Position = vec4(in_pos, 1.0);
    vec3 n = normalize(in_normal);
    float x = n.x, y = n.y, z = n.z;
    vec3 e = sh[0] * 0.282095
           + sh[1] * 0.488603 * y + sh[2] * 0.488603 * z + sh[3] * 0.488603 * x
           + sh[4] * 1.092548 * x * y + sh[5] * 1.092548 * y * z
           + sh[6] * 0.315392 * (3.0 * z * z - 1.0)
           + sh[7] * 1.092548 * x * z + sh[8] * 0.546274 * (x * x - y * y);
    v_irradiance = max(e, vec3(0.0));
    // Blinn-Phong highlight of the light's dominant direction (its first SH band), seen
    // from the camera on +z; white, so it is not tinted by the albedo.
    vec3 band1 = vec3(dot(sh[3], vec3(1.0)), dot(sh[1], vec3(1.0)), dot(sh[2], vec3(1.0)));
    float power = length(band1);
    vec3 h = normalize(band1 / max(power, 1e-6) + vec3(0.0, 0.0, 1.0));
    v_specular = vec3(shine * power * pow(max(dot(n, h), 0.0), 12.0));
    v_uv = in_uv;
}
"""

_FRAGMENT = """
#version 330
uniform sampler2DArray albedo_atlas;
uniform float layer;
in vec3 v_irradiance;
in vec3 v_specular;
in vec2 v_uv;
out vec4 f_color;
void main() {
    vec3 albedo = texture(albedo_atlas, vec3(v_uv, layer)).rgb;
    f_color = vec4(clamp(albedo * v_irradiance + v_specular, 0.0, 1.0), 1.0);
}
"""


_QUAD_VERTEX = """
#version 330
in vec2 in_corner;
void main() { gl_Position = vec4(in_corner, 0.0, 1.0); }
"""

# Box filter: each output pixel is the mean of its factor x factor supersampled pixels; then,
# when ``composite`` is set, the face (colour premultiplied by coverage) goes over its slot's
# procedural background (render/background.py), evaluated at the output pixel.
_DOWNSAMPLE_FRAGMENT = """
#version 330
uniform sampler2D source;
uniform sampler2D backgrounds;  // texel (0, slot), (1, slot): that slot's 8 parameters
uniform int factor;
uniform ivec2 cell;  // output (width, height) of one slot
uniform int cols;
uniform bool composite;
uniform int background_style;  // BACKGROUND_STYLES index
out vec4 f_color;
""" + BACKGROUND_GLSL + """
void main() {
    ivec2 pixel = ivec2(gl_FragCoord.xy);
    ivec2 base = pixel * factor;
    vec4 sum = vec4(0.0);
    for (int dy = 0; dy < factor; ++dy)
        for (int dx = 0; dx < factor; ++dx)
            sum += texelFetch(source, base + ivec2(dx, dy), 0);
    vec4 face = sum / float(factor * factor);
    if (composite) {
        ivec2 slot_cell = pixel / cell;
        int slot = slot_cell.y * cols + slot_cell.x;
        ivec2 local = pixel - slot_cell * cell;
        // GL rows run bottom-up; the image's row 0 is the slot's top row.
        vec2 xy = vec2(-1.0 + 2.0 * float(local.x) / float(cell.x - 1),
                       -1.0 + 2.0 * float(cell.y - 1 - local.y) / float(cell.y - 1));
        vec3 background = background_colour(background_style, texelFetch(backgrounds, ivec2(0, slot), 0),
                                            texelFetch(backgrounds, ivec2(1, slot), 0), xy);
        face = vec4(face.rgb + (1.0 - face.a) * background, 1.0);
    }
    f_color = face;
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
    """Renders up to ``slots`` faces of one fixed triangle list per pass, at ``supersample``
    times (height, width), and box-filters them down on the GPU (or llvmpipe) before the one
    readback, which is then ``supersample``² times smaller."""

    def __init__(
        self, height: int, width: int, triangles: np.ndarray, uv: np.ndarray, texture_size: tuple[int, int],
        slots: int = 64, supersample: int = 2, background: str = "procedural",
    ) -> None:
        import moderngl

        self.out_height, self.out_width, self.supersample = height, width, supersample
        height, width = height * supersample, width * supersample
        self.height, self.width, self.slots = height, width, slots
        num_vertices = len(uv)
        self.num_vertices = num_vertices
        self.texture_size = tuple(texture_size)  # (height, width)
        self.cols = int(np.ceil(np.sqrt(slots)))
        self.rows = int(np.ceil(slots / self.cols))
        self.ctx = create_context()
        self.program = self.ctx.program(vertex_shader=_VERTEX, fragment_shader=_FRAGMENT)
        triangles = np.ascontiguousarray(triangles, dtype=np.int32)
        self.indices_per_face = triangles.size
        # One index block per slot, offset to that slot's vertices: draw k = indices of block k.
        blocks = triangles.reshape(1, -1) + (np.arange(slots, dtype=np.int32) * num_vertices)[:, None]
        self.ibo = self.ctx.buffer(blocks.astype(np.int32).tobytes())
        self.vbo = self.ctx.buffer(reserve=slots * num_vertices * 6 * 4)
        # Texture coordinates never change: uploaded once for every slot.
        self.uv_vbo = self.ctx.buffer(np.tile(np.asarray(uv, np.float32), (slots, 1)).tobytes())
        self.vao = self.ctx.vertex_array(
            self.program,
            [(self.vbo, "3f 3f", "in_pos", "in_normal"), (self.uv_vbo, "2f", "in_uv")],
            self.ibo,
            index_element_size=4,
        )
        th, tw = self.texture_size
        self.atlas = self.ctx.texture_array((tw, th, slots), 3, dtype="f1")
        self.atlas.filter = (moderngl.LINEAR, moderngl.LINEAR)
        self.atlas.repeat_x = self.atlas.repeat_y = False
        self.atlas.use(location=0)
        self.program["albedo_atlas"].value = 0
        size = (self.cols * width, self.rows * height)
        self.frame = self.ctx.texture(size, 4)
        self.fbo = self.ctx.framebuffer(color_attachments=[self.frame], depth_attachment=self.ctx.depth_renderbuffer(size))
        small = (self.cols * self.out_width, self.rows * self.out_height)
        self.small_fbo = self.ctx.framebuffer(color_attachments=[self.ctx.texture(small, 4)])
        self.downsample = self.ctx.program(vertex_shader=_QUAD_VERTEX, fragment_shader=_DOWNSAMPLE_FRAGMENT)
        self.downsample["factor"].value = supersample
        self.downsample["source"].value = 1
        self.downsample["backgrounds"].value = 2
        self.downsample["cell"].value = (self.out_width, self.out_height)
        self.downsample["cols"].value = self.cols
        self.downsample["background_style"].value = background_style_index(background)
        self.backgrounds = self.ctx.texture((2, slots), 4, dtype="f4")
        self.backgrounds.filter = (moderngl.NEAREST, moderngl.NEAREST)
        quad = np.array([-1, -1, 1, -1, -1, 1, 1, 1], np.float32)
        self.quad = self.ctx.vertex_array(self.downsample, [(self.ctx.buffer(quad.tobytes()), "2f", "in_corner")])
        self._moderngl = moderngl
        # Seconds per phase of a pass (upload, clear, draw, filter, readback) when set to a
        # dict: each phase then waits for the driver to finish (ctx.finish), which costs the
        # overlap of the phases but shows where llvmpipe's time goes.
        self.profile: dict[str, float] | None = None

    def _phase(self, name: str, since: float) -> float:
        if self.profile is None:
            return since
        self.ctx.finish()
        now = time.perf_counter()
        self.profile[name] = self.profile.get(name, 0.0) + now - since
        return now

    def slot_rect(self, slot: int, width: int, height: int) -> tuple[int, int, int, int]:
        """(x, y, width, height) of ``slot`` in an atlas of width x height cells."""
        return ((slot % self.cols) * width, (slot // self.cols) * height, width, height)

    def render(
        self,
        pixels: np.ndarray,
        depth: np.ndarray,
        normals: np.ndarray,
        textures: np.ndarray,
        sh: np.ndarray,
        specular: np.ndarray,
        keys: np.ndarray,
        backgrounds: np.ndarray | None = None,
    ) -> np.ndarray:
        """Rasterise B faces. pixels (B, V, 2) in supersampled pixel coordinates (integer =
        pixel centre, y down), depth (B, V) in [0, 1], normals (B, V, 3), textures uint8
        (B, th, tw, 3) albedo atlases (row 0 = v 0), sh (B, 9, 3), specular (B,) highlight
        strengths, keys (B,) choose the slots.

        With ``backgrounds`` (B, 8) procedural background parameters (render/background.py),
        returns the composited RGB uint8 (B, height, width, 3) at the output size. Without,
        returns RGBA uint8 (B, height, width, 4) over black: colour premultiplied by alpha,
        the coverage."""
        n = len(pixels)
        channels = 4 if backgrounds is None else 3
        out = np.empty((n, self.out_height, self.out_width, channels), np.uint8)
        slots = np.asarray(keys, dtype=np.int64) % self.slots
        remaining = list(range(n))
        with self.ctx:  # make this context current: another one (ValueRasterizer) may be
            while remaining:
                taken: dict[int, int] = {}
                later = []
                for i in remaining:
                    if int(slots[i]) in taken:
                        later.append(i)  # slot busy: this image waits for the next pass
                    else:
                        taken[int(slots[i])] = i
                self._pass(taken, pixels, depth, normals, textures, sh, specular, backgrounds, out)
                remaining = later
        return out

    def _pass(self, taken, pixels, depth, normals, textures, sh, specular, backgrounds, out) -> None:
        ctx, mgl = self.ctx, self._moderngl
        th, tw = self.texture_size
        t = time.perf_counter()
        # Only the slots drawn in this pass are uploaded; the others are not drawn.
        block = np.empty((self.num_vertices, 6), np.float32)
        for slot, i in taken.items():
            block[:, 0] = (pixels[i, :, 0] + 0.5) * (2.0 / self.width) - 1.0
            block[:, 1] = 1.0 - (pixels[i, :, 1] + 0.5) * (2.0 / self.height)
            block[:, 2] = depth[i] * 2.0 - 1.0
            block[:, 3:6] = normals[i]
            self.vbo.write(block.tobytes(), offset=slot * block.nbytes)
            self.atlas.write(np.ascontiguousarray(textures[i]), viewport=(0, 0, slot, tw, th, 1))
        t = self._phase("upload", t)
        self.fbo.use()
        ctx.enable(mgl.DEPTH_TEST)
        # Back faces are always hidden behind front ones (the mesh is closed where it is seen);
        # culling them before rasterisation saves llvmpipe a third of its work.
        ctx.enable(mgl.CULL_FACE)
        ctx.front_face = "ccw"
        ctx.scissor = None
        ctx.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        t = self._phase("clear", t)
        for slot, i in taken.items():
            rect = self.slot_rect(slot, self.width, self.height)
            ctx.viewport = rect
            ctx.scissor = rect
            self.program["sh"].write(np.ascontiguousarray(sh[i], dtype=np.float32).tobytes())
            self.program["layer"].value = float(slot)
            self.program["shine"].value = float(specular[i])
            self.vao.render(mgl.TRIANGLES, vertices=self.indices_per_face, first=slot * self.indices_per_face)
        t = self._phase("draw", t)
        ctx.scissor = None
        ctx.disable(mgl.DEPTH_TEST | mgl.CULL_FACE)
        composite = backgrounds is not None
        if composite:
            params = np.zeros((self.slots, 8), np.float32)
            for slot, i in taken.items():
                params[slot] = backgrounds[i]
            self.backgrounds.write(params.tobytes())
        self.downsample["composite"].value = composite
        self.small_fbo.use()
        self.frame.use(location=1)
        self.backgrounds.use(location=2)
        # Only the slots of this pass are filtered: a pass that takes the few images whose
        # slots were busy (keys collide modulo the slot count) filters a few cells, not the
        # whole atlas (-45 % filter time, same bytes). Clearing per cell instead was slower.
        ctx.viewport = (0, 0, self.cols * self.out_width, self.rows * self.out_height)
        for slot in taken:
            ctx.scissor = self.slot_rect(slot, self.out_width, self.out_height)
            self.quad.render(mgl.TRIANGLE_STRIP)
        ctx.scissor = None
        t = self._phase("filter_and_background", t)
        h, w, c = out.shape[1:]
        atlas = np.frombuffer(self.small_fbo.read(components=c, alignment=1), np.uint8)
        atlas = atlas.reshape(self.rows * h, self.cols * w, c)
        for slot, i in taken.items():
            x, y, _, _ = self.slot_rect(slot, w, h)
            out[i] = atlas[y : y + h, x : x + w][::-1]  # GL rows run bottom-up
        self._phase("readback", t)
        if self.profile is not None:
            self.profile["passes"] = self.profile.get("passes", 0) + 1


_VALUE_VERTEX = """
#version 330
in vec3 in_pos;
in vec4 in_value;
out vec4 v_value;
void main() {
    gl_Position = vec4(in_pos, 1.0);
    v_value = in_value;
}
"""

_VALUE_FRAGMENT = """
#version 330
in vec4 v_value;
layout(location = 0) out vec4 f_value;
layout(location = 1) out vec4 f_covered;  // 1 wherever the mesh is drawn
void main() {
    f_value = v_value;
    f_covered = vec4(1.0);
}
"""


class ValueRasterizer:
    """Draws meshes with up to 4 float values per vertex into an (h, w) float image: each
    pixel gets the values interpolated at the surface point it shows (nearest one when depth
    testing). Used to unwrap photos into texture space and to find what each texel shows.
    One OpenGL context for many draws; ``close()`` releases it."""

    def __init__(self, size: tuple[int, int]) -> None:
        self.height, self.width = size
        self.ctx = create_context()
        self.program = self.ctx.program(vertex_shader=_VALUE_VERTEX, fragment_shader=_VALUE_FRAGMENT)
        w, h = self.width, self.height
        self.fbo = self.ctx.framebuffer(
            color_attachments=[self.ctx.texture((w, h), 4, dtype="f4") for _ in range(2)],
            depth_attachment=self.ctx.depth_renderbuffer((w, h)),
        )

    def draw(
        self, positions: np.ndarray, triangles: np.ndarray, values: np.ndarray, depth_test: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """positions (V, 3): x, y in NDC (y up), z in [-1, 1] (smaller = nearer); values (V, C<=4).
        Returns (values (h, w, C) float32, covered (h, w) bool), row 0 at NDC y = -1."""
        channels = values.shape[1]
        padded = np.zeros((len(values), 4), np.float32)
        padded[:, :channels] = values
        data = np.concatenate([np.asarray(positions, np.float32), padded], axis=1)
        with self.ctx:  # current for this draw (a MeshRenderer may have been used since)
            return self._draw(data, triangles, channels, depth_test)

    def _draw(self, data, triangles, channels, depth_test):
        import moderngl

        vbo = self.ctx.buffer(data.tobytes())
        ibo = self.ctx.buffer(np.ascontiguousarray(triangles, dtype=np.int32).tobytes())
        vao = self.ctx.vertex_array(self.program, [(vbo, "3f 4f", "in_pos", "in_value")], ibo, index_element_size=4)
        try:
            self.fbo.use()
            self.ctx.viewport = (0, 0, self.width, self.height)
            self.ctx.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
            if depth_test:
                self.ctx.enable(moderngl.DEPTH_TEST)
            else:
                self.ctx.disable(moderngl.DEPTH_TEST)
            vao.render(moderngl.TRIANGLES)
            shape = (self.height, self.width, 4)
            out = np.frombuffer(self.fbo.read(components=4, dtype="f4", attachment=0), np.float32).reshape(shape)
            covered = np.frombuffer(self.fbo.read(components=4, dtype="f4", attachment=1), np.float32).reshape(shape)
            return out[..., :channels].copy(), covered[..., 0] > 0.5
        finally:
            vao.release()
            vbo.release()
            ibo.release()

    def close(self) -> None:
        self.ctx.release()


def rasterize_in_uv(uv: np.ndarray, triangles: np.ndarray, values: np.ndarray, size: tuple[int, int]):
    """Draw a mesh flat in texture space: each texel gets the interpolated ``values`` (V, <=4)
    of the surface point it shows. Returns (values (h, w, C) float32, covered (h, w) bool),
    row 0 at v = 0 (the texture upload order)."""
    uv = np.asarray(uv, np.float32)
    positions = np.concatenate([uv * 2.0 - 1.0, np.zeros((len(uv), 1), np.float32)], axis=1)
    rasterizer = ValueRasterizer(size)
    try:
        return rasterizer.draw(positions, triangles, values, depth_test=False)
    finally:
        rasterizer.close()
