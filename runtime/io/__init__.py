"""Frames in and results out: sources (files, folders, cameras, streams), capture, video writing,
sinks (overlay video, masks, JSON lines) and the colour overlay."""
