"""Latency profiling on the target: per-stage timings (`profiler`), per-layer timings
(`layer_profile`), machine facts (`envinfo`), the report and its plots (`report`) and the
`scaseg-profile` command (`cli`). The plots need the `profile` extra (matplotlib, psutil); without
it the JSON and CSV are still written."""
