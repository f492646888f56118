"""The model worker: loads once, runs queued jobs on its thread, throttles its signals, cancels and stops
cooperatively. Most tests use the real bundled model; a scripted engine stands in where timing must be exact
(cancelling mid-job, flooding the GUI with events)."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from desktop.core.segment import Segment
from desktop.core.settings import Settings
from desktop.engine.events import JobCancelled, JobFinished, JobProgress, JobStarted, SegmentsDecoded
from desktop.workers.model_worker import ModelStatus, ModelWorker

JOB_TIMEOUT_MS = 60_000


class Recorder:
    """Every signal of a worker, in the order the GUI thread received them."""

    def __init__(self, worker) -> None:
        self.events: list[tuple] = []
        for name in (
            "model_status_changed", "model_ready", "model_failed", "job_started", "segments_decoded",
            "job_progressed", "job_finished", "job_failed", "job_cancelled",
        ):
            getattr(worker, name).connect(lambda *args, name=name: self.events.append((name, *args)))

    def of(self, name: str, job_id: int | None = None) -> list[tuple]:
        return [e for e in self.events if e[0] == name and (job_id is None or e[1] == job_id)]

    def kinds(self, job_id: int) -> list[str]:
        return [e[0] for e in self.events if e[0].startswith(("job_", "segments_")) and e[1] == job_id]


class ScriptedEngine:
    """Stands in for Engine. Each job streams `segments_per_job` one-segment events and finishes; a job whose
    file name starts with "hold" runs until it (or the run) is cancelled."""

    def __init__(self, segments_per_job: int = 3) -> None:
        self.segments_per_job = segments_per_job
        self.options_seen: list = []
        self.cancelled: set[int] = set()
        self.holding = threading.Event()
        self._lock = threading.Lock()

    def cancel_job(self, job_id: int) -> None:
        with self._lock:
            self.cancelled.add(job_id)

    def run(self, jobs, options, cancel):
        self.options_seen.append(options)
        for job in jobs:
            yield JobStarted(job.job_id, float(self.segments_per_job), "en", 0.9)
            if job.source.name.startswith("hold"):
                self.holding.set()
                while not cancel.is_set() and job.job_id not in self.cancelled:
                    cancel.wait(0.005)
                yield JobCancelled(job.job_id)
                continue
            for i in range(self.segments_per_job):
                yield SegmentsDecoded(job.job_id, (Segment(float(i), i + 1.0, f" part {i}"),))
                yield JobProgress(job.job_id, i + 1.0, float(self.segments_per_job))
            yield JobFinished(job.job_id)


@pytest.fixture
def hosts():
    """Builds hosts and always shuts them down, even when the test fails."""
    made: list[ModelWorker] = []

    def make(*args, **kwargs) -> ModelWorker:
        host = ModelWorker(*args, **kwargs)
        made.append(host)
        return host

    yield make
    for host in made:
        host.shutdown(timeout_s=30)


def test_real_model_streams_a_job_then_finishes(qtbot, hosts, loaded_model, make_speech):
    clip = make_speech("The quick brown fox jumps over the lazy dog.")
    host = hosts(Settings(), loaded_model)
    seen = Recorder(host)
    host.start()
    host.enqueue(1, clip)
    with qtbot.waitSignal(host.job_finished, timeout=JOB_TIMEOUT_MS):
        pass
    assert seen.kinds(1)[0] == "job_started" and seen.kinds(1)[-1] == "job_finished"
    started = seen.of("job_started", 1)[0][2]
    assert started.language == "en" and started.duration_s == pytest.approx(3.0, abs=2.0)
    text = "".join(s.text for e in seen.of("segments_decoded", 1) for s in e[2]).lower()
    assert "brown fox" in text
    done_s, total_s = seen.of("job_progressed", 1)[-1][2:]
    assert done_s == pytest.approx(total_s)
    # The preloaded model is used as it is: no loading at all.
    assert seen.of("model_status_changed") == []


def test_jobs_queued_before_the_model_is_ready_wait_then_run(qtbot, hosts, loaded_model, make_speech):
    gate = threading.Event()
    calls: list[str] = []

    def gated_loader(name, *, on_status, **kwargs):
        calls.append(name)
        on_status("loading")
        gate.wait(30)
        on_status("warming")
        return loaded_model

    host = hosts(Settings(), loader=gated_loader)
    seen = Recorder(host)
    host.start()
    host.enqueue(7, make_speech("One two three."))
    qtbot.waitUntil(lambda: any(s[1].stage == "loading" for s in seen.of("model_status_changed")), timeout=5000)
    assert host.queued_ids() == [7] and seen.of("job_started") == []
    with qtbot.waitSignal(host.job_finished, timeout=JOB_TIMEOUT_MS) as finished:
        gate.set()
    assert finished.args == [7]
    ready = seen.of("model_ready")[0][1]
    assert isinstance(ready, ModelStatus) and ready.device == "cpu" and ready.compute_type == "int8"
    stages = [e[1].stage for e in seen.of("model_status_changed")]
    assert stages.index("loading") < stages.index("warming") < stages.index("ready")
    assert calls == ["base"]


@pytest.fixture
def offline_hub(tmp_path, monkeypatch) -> str:
    """HF_ENDPOINT at a port on this machine where nothing listens: every download fails as it does offline."""
    import huggingface_hub.constants

    from tests.engine.hubserver import FakeHub

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    with FakeHub({}) as server:
        endpoint = server.endpoint
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    return endpoint


def counting_loader(loaded_model, loads: list[str]):
    """The real loader, except that base is the session's loaded model (loading it again takes seconds)."""
    from desktop.engine.loading import load_model

    def loader(name, **kwargs):
        loads.append(name)
        return loaded_model if name == "base" else load_model(name, **kwargs)

    return loader


def failures(seen: Recorder) -> list[ModelStatus]:
    return [e[1] for e in seen.of("model_status_changed") if e[1].stage == "failed"]


def test_a_failed_download_keeps_the_working_model_and_the_queue_runs(
    qtbot, hosts, loaded_model, make_speech, offline_hub, verbatim_home
):
    loads: list[str] = []
    host = hosts(Settings(language="en"), loaded_model, loader=counting_loader(loaded_model, loads))
    seen = Recorder(host)
    host.start()
    host.apply_settings(Settings(model="small", language="en"))
    host.enqueue(1, make_speech("The quick brown fox jumps over the lazy dog."))
    with qtbot.waitSignal(host.job_finished, timeout=JOB_TIMEOUT_MS) as finished:
        pass
    assert finished.args == [1]
    assert "brown fox" in "".join(s.text for e in seen.of("segments_decoded", 1) for s in e[2]).lower()
    [failed] = failures(seen)
    assert failed.model == "small" and "could not download model 'small'" in failed.error
    assert offline_hub in failed.error  # the reason names the hub it could not reach
    assert failed.still_using is not None and failed.still_using.model == "base"
    assert failed.still_using.device == "cpu" and failed.still_using.stage == "ready"
    # The worker now runs with base; the rest of the settings stay as chosen.
    assert failed.effective_settings == Settings(language="en")
    # The working model was never let go (no reload), and nothing says "no model": jobs did not wait.
    assert loads == ["small"]
    assert seen.of("model_failed") == []
    assert not (verbatim_home / "models" / "small").exists()


def test_a_model_that_fails_after_loading_began_brings_the_previous_one_back(
    qtbot, hosts, loaded_model, make_speech, tmp_path
):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "model.bin").write_bytes(b"not weights" * 100)
    (broken / "config.json").write_text("{}")
    loads: list[str] = []
    host = hosts(Settings(), loaded_model, loader=counting_loader(loaded_model, loads))
    seen = Recorder(host)
    host.start()
    host.apply_settings(Settings(model=str(broken)))
    host.enqueue(1, make_speech("One two three."))
    with qtbot.waitSignal(host.job_finished, timeout=JOB_TIMEOUT_MS):
        pass
    # The broken model got as far as loading (the previous one was let go), so base was loaded again.
    assert loads == [str(broken), "base"]
    [failed] = failures(seen)
    assert "cannot load the model at" in failed.error and str(broken) in failed.error
    assert failed.still_using.model == "base" and failed.effective_settings == Settings()
    assert seen.of("model_failed") == []


def test_a_model_that_cannot_load_at_start_up_falls_back_to_base(qtbot, hosts, loaded_model, tmp_path):
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    loads: list[str] = []
    engine = ScriptedEngine()
    host = hosts(Settings(model=str(empty), beam_size=2), loader=counting_loader(loaded_model, loads),
                 engine_factory=lambda model: engine)
    seen = Recorder(host)
    host.enqueue(3, tmp_path / "a.wav")
    with qtbot.waitSignal(host.job_finished, timeout=10_000):
        host.start()
    assert seen.kinds(3) == ["job_started", "segments_decoded", "job_progressed", "job_finished"]
    [failed] = failures(seen)
    assert "not-a-model" in failed.error and failed.still_using.model == "base"
    assert failed.effective_settings == Settings(beam_size=2)
    assert loads == [str(empty), "base"] and seen.of("model_failed") == []
    # Choosing the failed model again tries it again (and fails again the same way).
    host.apply_settings(Settings(model=str(empty), beam_size=2))
    qtbot.waitUntil(lambda: len(failures(seen)) == 2, timeout=10_000)
    assert loads == [str(empty), "base", str(empty)]


def test_when_no_model_at_all_can_be_loaded_jobs_wait_and_the_reason_is_given(qtbot, hosts, tmp_path):
    from desktop.engine.models import ModelError

    def loader(name, **kwargs):
        raise ModelError(f"could not load {name}")

    host = hosts(Settings(model="small"), loader=loader)
    seen = Recorder(host)
    host.enqueue(1, tmp_path / "a.wav")
    with qtbot.waitSignal(host.model_failed, timeout=10_000) as failed:
        host.start()
    # What the user chose is the reason given, not the fallback's failure.
    assert failed.args == ["could not load small"]
    assert failures(seen)[-1].still_using is None
    assert host.queued_ids() == [1] and seen.of("job_started") == []


def test_a_failing_input_fails_alone(qtbot, hosts, loaded_model, make_speech, tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF but not really a wave file" * 10)
    host = hosts(Settings(), loaded_model)
    seen = Recorder(host)
    host.start()
    host.enqueue(1, broken)
    host.enqueue(2, make_speech("Still here."))
    qtbot.waitUntil(lambda: bool(seen.of("job_finished", 2) and seen.of("job_failed", 1)), timeout=JOB_TIMEOUT_MS)
    assert seen.of("job_failed", 1)[0][2]  # a reason for the user


def test_signals_are_coalesced_and_keep_order(qtbot, hosts):
    engine = ScriptedEngine(segments_per_job=3000)
    host = hosts(Settings(), object(), engine_factory=lambda model: engine, flush_interval_ms=50)
    seen = Recorder(host)
    begin = time.monotonic()
    host.start()
    for job_id in (1, 2):
        host.enqueue(job_id, Path(f"/clips/{job_id}.wav"))
    qtbot.waitUntil(lambda: len(seen.of("job_finished")) == 2, timeout=30_000)
    elapsed_ms = (time.monotonic() - begin) * 1000
    for job_id in (1, 2):
        segments = [s for e in seen.of("segments_decoded", job_id) for s in e[2]]
        assert [s.start_s for s in segments] == [float(i) for i in range(3000)]
        kinds = seen.kinds(job_id)
        assert kinds[0] == "job_started" and kinds[-1] == "job_finished"
    deliveries = len(seen.of("segments_decoded"))
    # 6000 engine events arrive in at most one delivery per job per flush interval.
    assert deliveries <= 2 * (elapsed_ms / 50 + 2), (deliveries, elapsed_ms)
    assert deliveries < 200


def test_notices_of_a_finished_job_come_before_its_end(qtbot, hosts):
    class NoticingEngine(ScriptedEngine):
        def run(self, jobs, options, cancel):
            for job in jobs:
                yield JobStarted(job.job_id, 1.0, "en", 0.9)
                yield JobFinished(job.job_id, ("no speech found",) if job.job_id == 1 else ())

    engine = NoticingEngine()
    host = hosts(Settings(), object(), engine_factory=lambda model: engine, flush_interval_ms=10)
    seen = Recorder(host)
    host.job_noticed.connect(lambda *args: seen.events.append(("job_noticed", *args)))
    host.start()
    for job_id in (1, 2):
        host.enqueue(job_id, Path(f"/clips/{job_id}.wav"))
    qtbot.waitUntil(lambda: len(seen.of("job_finished")) == 2, timeout=10_000)
    assert seen.of("job_noticed") == [("job_noticed", 1, ("no speech found",))]
    assert seen.kinds(1)[-2:] == ["job_noticed", "job_finished"]


def test_cancel_a_waiting_job_and_a_running_one(qtbot, hosts, tmp_path):
    engine = ScriptedEngine()
    host = hosts(Settings(), object(), engine_factory=lambda model: engine)
    seen = Recorder(host)
    host.start()
    host.enqueue(1, tmp_path / "hold.wav")
    host.enqueue(2, tmp_path / "waiting.wav")
    host.enqueue(3, tmp_path / "after.wav")
    assert engine.holding.wait(10)
    with qtbot.waitSignal(host.job_cancelled, timeout=5000) as cancelled:
        host.cancel_job(2)
    assert cancelled.args == [2] and seen.of("job_started", 2) == []
    with qtbot.waitSignal(host.job_finished, timeout=5000) as finished:
        host.cancel_job(1)
    assert finished.args == [3]
    assert seen.kinds(1) == ["job_started", "job_cancelled"]


def test_retry_of_a_cancelled_job_runs_it_again(qtbot, hosts, tmp_path):
    engine = ScriptedEngine()
    host = hosts(Settings(), object(), engine_factory=lambda model: engine)
    seen = Recorder(host)
    host.start()
    host.enqueue(1, tmp_path / "hold.wav")
    assert engine.holding.wait(10)
    with qtbot.waitSignal(host.job_cancelled, timeout=5000):
        host.cancel_job(1)
    engine.cancelled.clear()
    with qtbot.waitSignal(host.job_finished, timeout=5000):
        host.enqueue(1, tmp_path / "again.wav")
    assert seen.kinds(1)[-1] == "job_finished"


def test_new_options_apply_to_later_jobs_and_a_new_model_reloads_once(qtbot, hosts, tmp_path):
    engine = ScriptedEngine()
    loads: list[str] = []

    def loader(name, **kwargs):
        loads.append(name)
        return SimpleNamespace(name=name, device="cpu", compute_type="int8", device_note=None)

    host = hosts(Settings(), loader=loader, engine_factory=lambda model: engine)
    seen = Recorder(host)
    host.start()
    with qtbot.waitSignal(host.job_finished, timeout=10_000):
        host.enqueue(1, tmp_path / "a.wav")
    with qtbot.waitSignal(host.job_finished, timeout=10_000):
        host.apply_settings(Settings(language="de", beam_size=2))
        host.enqueue(2, tmp_path / "b.wav")
    assert engine.options_seen[-1].language == "de" and engine.options_seen[-1].beam_size == 2
    assert loads == ["base"]
    with qtbot.waitSignal(host.job_finished, timeout=10_000):
        host.apply_settings(replace(Settings(language="de"), model="tiny"))
        host.enqueue(3, tmp_path / "c.wav")
    assert loads == ["base", "tiny"]
    assert [e[1].model for e in seen.of("model_ready")] == ["base", "tiny"]


def test_shutdown_during_a_job_is_prompt_and_cancels_it(qtbot, hosts, tmp_path):
    engine = ScriptedEngine()
    host = hosts(Settings(), object(), engine_factory=lambda model: engine)
    seen = Recorder(host)
    host.start()
    host.enqueue(1, tmp_path / "hold.wav")
    assert engine.holding.wait(10)
    begin = time.monotonic()
    assert host.shutdown(timeout_s=5)
    assert time.monotonic() - begin < 2
    assert not host.is_running()
    assert seen.of("job_cancelled", 1)


def test_shutdown_while_the_model_waits_for_jobs(qtbot, hosts, loaded_model):
    host = hosts(Settings(), loaded_model)
    host.start()
    qtbot.waitUntil(host.is_running, timeout=5000)
    assert host.shutdown(timeout_s=5) and not host.is_running()


def test_a_gpu_failure_mid_run_moves_to_the_cpu_and_resumes_the_jobs(qtbot, hosts, loaded_model, make_speech):
    from desktop.engine.engine import Engine
    from desktop.engine.events import DeviceFailure

    gpu_model = SimpleNamespace(name="base", device="cuda", compute_type="float16", device_note=None)

    class FailingGpuEngine:
        """Decodes job 1 up to 1.5 s, then the card fails."""

        def cancel_job(self, job_id):
            pass

        def run(self, jobs, options, cancel):
            job = next(iter(jobs))
            yield JobStarted(job.job_id, 4.0, "en", 0.9)
            yield SegmentsDecoded(job.job_id, (Segment(0.0, 1.5, " decoded on the GPU"),))
            yield JobProgress(job.job_id, 1.5, 4.0)
            raise DeviceFailure("the GPU failed: CUDA failed with error an illegal memory access was encountered")

    loads: list[dict] = []

    def loader(name, **kwargs):
        loads.append(kwargs)
        return loaded_model

    clip = make_speech("The quick brown fox jumps over the lazy dog. Then the dog goes back to sleep.")
    host = hosts(Settings(device="cuda"), gpu_model, loader=loader,
                 engine_factory=lambda model: FailingGpuEngine() if model is gpu_model else Engine(model))
    seen = Recorder(host)
    host.enqueue(1, clip)
    host.enqueue(2, clip)
    host.start()
    with qtbot.waitSignal(host.job_finished, timeout=JOB_TIMEOUT_MS,
                          check_params_cb=lambda job_id: job_id == 2):
        pass
    assert [kwargs["device"] for kwargs in loads] == ["cpu"]
    ready = seen.of("model_ready")[-1][1]
    assert ready.device == "cpu" and "the GPU failed" in ready.device_note and "CPU" in ready.device_note
    # Job 1 started on the GPU, then again on the CPU from where its progress reached; job 2 from the start.
    assert [e[2].start_at_s for e in seen.of("job_started", 1)] == [0.0, 1.5]
    assert [e[2].start_at_s for e in seen.of("job_started", 2)] == [0.0]
    assert seen.of("job_failed") == [] and seen.of("job_cancelled") == []
    assert [e[1] for e in seen.of("job_finished")] == [1, 2]
    resumed = [s for e in seen.of("segments_decoded", 1)[1:] for s in e[2]]
    assert resumed and all(s.start_s >= 1.5 - 0.001 for s in resumed)
    assert "dog" in "".join(s.text for s in resumed).lower()


def test_a_job_that_starts_again_before_a_flush_keeps_its_two_runs_apart():
    from desktop.workers.messages import Outbox as _Outbox

    outbox = _Outbox()
    outbox.put(JobStarted(1, 4.0, "en", 0.9))
    outbox.put(SegmentsDecoded(1, (Segment(0.0, 1.5, " first"),)))
    outbox.put(JobStarted(1, 4.0, "en", 0.9, start_at_s=1.5))
    outbox.put(SegmentsDecoded(1, (Segment(1.5, 3.0, " second"),)))
    batches = outbox.take()
    assert [(b.started.start_at_s, [s.text for s in b.segments]) for b in batches] == [
        (0.0, [" first"]), (1.5, [" second"])
    ]
