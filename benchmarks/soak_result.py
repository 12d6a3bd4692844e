"""What a soak run records: its settings, the samples taken every --every frames, and the growth
figures computed from them (against the end of warm-up)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

TARGET_PCT = 5.0
DEFAULT_CACHE = Path.home() / ".cache" / "scaseg" / "soak"


@dataclass(frozen=True)
class Sample:
    frames: int  # inferred so far (0: before the run; "after close": see SoakResult.after)
    written: int  # written to every sink so far (the writer runs a few frames behind)
    t_s: float  # since the run started
    rss_mib: float
    py_blocks: int  # sys.getallocatedblocks(): objects held by Python's allocator
    gc_objects: int  # objects tracked by the garbage collector
    fds: int
    threads: int  # OS threads of the process (ONNX Runtime's pool and FFmpeg's included)
    cpu_s: float  # process CPU time (user + system) since the run started
    load1: float  # the machine's 1-minute load average: other processes slow the run down
    stats_mib: float  # held by the pipeline's latency record (PipelineStats.times), estimated


@dataclass
class SoakConfig:
    frames: int = 20_000
    every: int = 1_000
    warmup: int | None = None  # frames; None: two samples
    size: int = 256  # model input (square)
    frame_hw: tuple[int, int] = (360, 640)  # generated source frames
    video_frames: int = 250  # length of the generated clip that is looped
    threads: int | None = None  # ONNX Runtime intra-op threads (None: all cores)
    model: Path | None = None  # None: the tiny variant, exported (and cached) here
    cache: Path = DEFAULT_CACHE
    workdir: Path | None = None  # None: a temporary folder, removed afterwards
    sinks: bool = True  # False: no sinks (to tell their memory from the rest's)
    progress: bool = True

    def __post_init__(self) -> None:
        if self.frames < 1 or self.every < 1:
            raise ValueError(f"--frames and --every must be >= 1, got {self.frames}, {self.every}")
        if self.warmup is None:
            self.warmup = 2 * self.every
        if not 0 <= self.warmup < self.frames:
            raise ValueError(f"--warmup must be in [0, --frames), got {self.warmup}")
        if self.video_frames < 1:
            raise ValueError(f"--video-frames must be >= 1, got {self.video_frames}")


@dataclass
class SoakResult:
    config: SoakConfig
    samples: list[Sample]  # frame 0 (before the run), every --every frames, and the last frame
    after: Sample  # after run_pipeline returned (sinks closed)
    frames: int
    wall_s: float
    fps: float
    latency_ms: dict
    model: str
    outputs: dict[str, str] = field(default_factory=dict)  # what the sinks wrote, checked

    @property
    def run_samples(self) -> list[Sample]:
        return [s for s in self.samples if s.frames > 0]

    @property
    def warm(self) -> Sample:
        """The sample at the end of warm-up: the first one at or past --warmup frames."""
        return next(s for s in self.run_samples if s.frames >= self.config.warmup)

    @property
    def last(self) -> Sample:
        return self.run_samples[-1]

    @property
    def growth_pct(self) -> float:
        return 100.0 * (self.last.rss_mib - self.warm.rss_mib) / self.warm.rss_mib

    @property
    def max_growth_pct(self) -> float:
        """Largest RSS after warm-up, relative to the end of warm-up."""
        after = [s.rss_mib for s in self.run_samples if s.frames >= self.warm.frames]
        return 100.0 * (max(after) - self.warm.rss_mib) / self.warm.rss_mib

    @property
    def slope_mib_per_1k(self) -> float:
        """Least-squares RSS slope after warm-up, MiB per 1,000 frames (0 with < 2 samples)."""
        pts = [(s.frames, s.rss_mib) for s in self.run_samples if s.frames >= self.warm.frames]
        if len(pts) < 2:
            return 0.0
        n = len(pts)
        mx, my = sum(x for x, _ in pts) / n, sum(y for _, y in pts) / n
        sxx = sum((x - mx) ** 2 for x, _ in pts)
        return 1000.0 * sum((x - mx) * (y - my) for x, y in pts) / sxx if sxx else 0.0

    @property
    def growth_ex_stats_pct(self) -> float:
        """Growth after warm-up less what the pipeline's latency record took."""
        last, warm = self.last, self.warm
        grown = (last.rss_mib - last.stats_mib) - (warm.rss_mib - warm.stats_mib)
        return 100.0 * grown / warm.rss_mib

    @property
    def passed(self) -> bool:
        return self.growth_pct < TARGET_PCT
