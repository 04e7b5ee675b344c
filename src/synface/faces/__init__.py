"""Real-face front end: 5-point detection (MTCNN), similarity alignment, templates."""
