"""Rasterisation of the face mesh (OpenGL through moderngl, headless EGL)."""
