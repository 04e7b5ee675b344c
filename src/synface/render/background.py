"""Procedural backgrounds: varied textures, not flat colours, from 8 numbers per image.

params in [0, 1): two colours (0-5), a pattern mix (6) and a spatial frequency (7). The
pattern blends a tilted gradient, soft blobs and stripes, so a recogniser cannot use the
background as a shortcut and the face edge meets varied surroundings, as in real photos.

The pattern is a GLSL function: the renderer's downsample pass (render/gl.py) evaluates it
at each output pixel and composites the face over it, so the background costs no CPU time
and no second pass over the images.
"""

from __future__ import annotations

# params p0 = (c1.rgb, c2.r), p1 = (c2.gb, angle, frequency/kind); xy in [-1, 1]², x to the
# right, y down, at output pixel centres (xy = -1 and 1 on the first and last pixel).
BACKGROUND_GLSL = """
vec3 procedural_background(vec4 p0, vec4 p1, vec2 xy) {
    vec3 c1 = 0.1 + 0.8 * p0.xyz;
    vec3 c2 = 0.1 + 0.8 * vec3(p0.w, p1.xy);
    float angle = p1.z * 6.283185307;
    float freq = 1.0 + 6.0 * p1.w;
    float u = xy.x * cos(angle) + xy.y * sin(angle);
    float v = -xy.x * sin(angle) + xy.y * cos(angle);
    float gradient = 0.5 + 0.5 * u;
    float kind = p1.w;
    float pattern;
    if (kind < 0.4) {
        pattern = gradient;
    } else if (kind < 0.75) {
        pattern = 0.5 + 0.25 * (sin(freq * 2.1 * u + 3.0 * p0.x) + sin(freq * 1.7 * v + 5.0 * p0.y));
    } else {
        pattern = 0.6 * gradient + 0.4 * (0.5 + 0.5 * sin(freq * 4.0 * u));
    }
    return clamp(c1 * pattern + c2 * (1.0 - pattern), 0.0, 1.0);
}
"""
