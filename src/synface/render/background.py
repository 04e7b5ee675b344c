"""Backgrounds drawn from 8 numbers per image, in one of two styles (``BACKGROUND_STYLES``):

- ``procedural``: params in [0, 1) give two colours (0-5), a pattern mix (6) and a spatial
  frequency (7). The pattern blends a tilted gradient, soft blobs and stripes, so a recogniser
  cannot use the background as a shortcut and the face edge meets varied surroundings.
- ``natural``: what the surroundings of a face in a photo look like statistically: colours of
  low saturation at any brightness from near black to near white, a soft light gradient, and
  structure with a natural image's 1/f amplitude spectrum (four octaves of value noise, each
  twice the frequency at half the amplitude), mostly at low frequency as out-of-focus scenes
  are. params: brightness (0), hue (1), saturation (2), a second tone's offset (3), gradient
  angle and strength (4, 5), noise contrast (6) and base frequency (7).

The pattern is a GLSL function: the renderer's downsample pass (render/gl.py) evaluates it
at each output pixel and composites the face over it, so the background costs no CPU time
and no second pass over the images.
"""

from __future__ import annotations

from synface.errors import SynfaceError

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

float background_hash(vec2 p) {
    vec3 p3 = fract(vec3(p.xyx) * 0.1031);
    p3 += dot(p3, p3.yzx + 33.33);
    return fract((p3.x + p3.y) * p3.z);
}

float value_noise(vec2 p) {
    vec2 i = floor(p);
    vec2 f = fract(p);
    vec2 u = f * f * (3.0 - 2.0 * f);
    return mix(mix(background_hash(i), background_hash(i + vec2(1.0, 0.0)), u.x),
               mix(background_hash(i + vec2(0.0, 1.0)), background_hash(i + vec2(1.0, 1.0)), u.x), u.y);
}

vec3 hue_rgb(float hue) {
    return clamp(abs(fract(hue + vec3(0.0, 2.0 / 3.0, 1.0 / 3.0)) * 6.0 - 3.0) - 1.0, 0.0, 1.0);
}

vec3 natural_background(vec4 p0, vec4 p1, vec2 xy) {
    float brightness = 0.05 + 0.85 * p0.x;
    vec3 tint = mix(vec3(1.0), hue_rgb(p0.y), 0.45 * p0.z);
    vec3 tone2 = mix(vec3(1.0), hue_rgb(fract(p0.y + 0.5 * p0.w - 0.25)), 0.45 * p0.z);
    float angle = p1.x * 6.283185307;
    float gradient = (xy.x * cos(angle) + xy.y * sin(angle)) * 0.35 * p1.y;
    // Four octaves, amplitude halving as frequency doubles: a 1/f spectrum.
    vec2 q = xy * (0.8 + 2.5 * p1.w) + 37.0 * vec2(p0.x + p1.z, p0.w + p1.x);
    float noise = 0.0;
    float amplitude = 0.5;
    for (int k = 0; k < 4; ++k) {
        noise += amplitude * (value_noise(q) - 0.5);
        q = q * 2.03 + vec2(17.1, 9.7);
        amplitude *= 0.5;
    }
    float level = brightness * (1.0 + gradient + 1.6 * p1.z * noise);
    vec3 colour = mix(tint, tone2, clamp(0.5 + 2.0 * noise, 0.0, 1.0));
    return clamp(level * colour, 0.0, 1.0);
}

vec3 background_colour(int style, vec4 p0, vec4 p1, vec2 xy) {
    return style == 1 ? natural_background(p0, p1, xy) : procedural_background(p0, p1, xy);
}
"""

# Style names, in the order of the shader's ``style`` numbers.
BACKGROUND_STYLES = ("procedural", "natural")


def background_style_index(style: str) -> int:
    if style not in BACKGROUND_STYLES:
        raise SynfaceError(f"unknown background style {style!r}; choose from {', '.join(BACKGROUND_STYLES)}")
    return BACKGROUND_STYLES.index(style)
