"""The SICL-AT study on the embedded world: what `sicl demo` (= `make demo`) runs.

Stages, each reused when its output is already complete (``fresh=True`` starts over):

1. the synthetic world (``sicl synth``) in ``OUT/data``;
2. zero-shot evaluation of the base model on every eval set; its transcripts are the TICL
   pseudo-labels of the queries for every in-context method (the paper's setting: one ASR pass);
3. vanilla ICL (base model, TICL demonstrations from each set's pool);
4. the adapters: SICL-AT1/2/3 trained on the high-resource sets only, and direct fine-tuning on a small
   in-domain set, into ``OUT/models/<method>`` (resumable);
5. their evaluations;
6. the report (``OUT/report.md``, ``OUT/results.csv``, plots) and ``OUT/demo.json`` (settings, stage wall
   times, peak memory, target checks).

The study itself is data (``configs/demo/study.yaml``); this module only runs it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import json
import resource
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sicl.errors import ConfigError, SiclError
from sicl.report.reading import Target

BASE_METHODS = ("zero-shot", "vanilla-icl")
# The configs ship inside the package (sicl/configs; the repository's configs/ is a link to it), so an installed
# wheel runs the demo from any folder; config paths inside the study are relative to the package folder.
DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "demo" / "study.yaml"


@dataclass
class EvalSet:
    name: str = field(metadata={"help": "eval-set label in the report"})
    data: str = field(metadata={"help": "test manifest, relative to the world folder"})
    pool: str | None = field(default=None, metadata={"help": "demonstration pool, relative to the world folder"})


@dataclass
class AdapterSpec:
    method: str = field(metadata={"help": "method label (sicl-at1, direct-ft, ...)"})
    config: str = field(metadata={"help": "training config (sicl train CONFIG.yaml)"})
    eval_k: list[int] | None = field(default=None, metadata={
        "help": "k values to evaluate it at (default: k=0 if it was trained with k=0, else as the ICL methods)"})


@dataclass
class StudyConfig:
    model: str = field(default="tiny-omni", metadata={"help": "base model (built-in name or folder)"})
    world_size: str = field(default="default", metadata={"help": "synthetic world size (small | default)"})
    world_seed: int = field(default=0, metadata={"help": "synthetic world seed"})
    k: int = field(default=3, metadata={"help": "demonstrations in the main comparison"})
    sweep: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4], metadata={"help": "k-sweep values"})
    sweep_sets: list[str] = field(default_factory=list, metadata={
        "help": "eval sets that get the whole sweep (others: k=0 and k); [all] for every set"})
    eval_limit: int | None = field(default=100, metadata={"help": "first N test queries per set (null: all)"})
    batch_size: int = field(default=16, metadata={"help": "evaluation batch size"})
    retriever: str = field(default="ticl", metadata={"help": "demonstration retriever"})
    embedder: str | None = field(default=None, metadata={
        "help": "TICL text embedder of the evaluations: a sentence-transformers name or folder, or char-tfidf[:dim] "
                "(null: the packaged all-MiniLM-L6-v2); training keeps its own config's"})
    scorer: str = field(default="official", metadata={
        "help": "scoring rules (official: each benchmark's own script | mimo-eval | lenient), docs/metrics.md"})
    eval_sets: list[EvalSet] = field(default_factory=list, metadata={"help": "[{name, data, pool}]"})
    adapters: list[AdapterSpec] = field(default_factory=list, metadata={"help": "[{method, config, eval_k}]"})
    train_overrides: list[str] = field(default_factory=list, metadata={
        "help": "key=value overrides for every adapter's training config"})
    threads: int = field(default=0, metadata={
        "help": "torch CPU threads for training and evaluation (0: torch's default)"})
    loop_trim: int = field(default=0, metadata={
        "help": "ASR/ST predictions: a span repeated this many times in a row keeps one copy (0: off)"})
    backend: str = field(default="hf", metadata={
        "help": "evaluation engine: hf (transformers) | vllm (vLLM, one engine for every evaluation; make vllm-env)"})
    targets: list[Target] = field(default_factory=list, metadata={
        "help": "targets checked on the results (sicl.report.Target: eval_set, metric, method, baseline, factor, ...)"})

    def config_problems(self) -> Iterator[tuple[str, str]]:
        """``(key, problem)`` for :func:`sicl.config.load_config`, which names the file or override."""
        from sicl.data.synth.world import SIZES

        if self.threads < 0:
            yield "threads", f"must be >= 0 (0: torch's default), got {self.threads}"
        if self.world_size not in SIZES:
            yield "world_size", f"must be one of {', '.join(SIZES)}, got {self.world_size!r}"
        if self.world_seed < 0:
            yield "world_seed", f"must be >= 0, got {self.world_seed}"
        if self.eval_limit is not None and self.eval_limit < 1:
            yield "eval_limit", f"must be >= 1 (null: every query), got {self.eval_limit}"
        if self.batch_size < 1:
            yield "batch_size", f"must be >= 1, got {self.batch_size}"
        problem = model_problem(self.model)
        if problem:
            yield "model", problem
        if not self.eval_sets:
            yield "eval_sets", "is empty: the study has nothing to evaluate"
        names = [s.name for s in self.eval_sets]
        if len(set(names)) != len(names):
            yield "eval_sets", f"names repeat: {names}"
        unknown = sorted(set(self.sweep_sets) - set(names) - {"all"})
        if unknown:
            yield "sweep_sets", f"{unknown} are not eval sets ({names})"
        if self.k < 1:
            yield "k", f"must be >= 1, got {self.k}"
        if any(k < 0 for k in self.sweep):
            yield "sweep", f"values must be >= 0, got {self.sweep}"
        from sicl.episodes.prompts import check_loop_trim
        from sicl.eval.scorers import SCORER_NAMES

        try:
            check_loop_trim(self.loop_trim)
        except ValueError as e:
            yield "loop_trim", str(e).removeprefix("loop_trim ")
        if self.scorer not in SCORER_NAMES:
            yield "scorer", f"{self.scorer!r} is not one of {', '.join(SCORER_NAMES)}"
        problem = backend_problem(self.backend)
        if problem:
            yield "backend", problem
        for i, t in enumerate(self.targets):
            for key, problem in t.problems():
                yield f"targets[{i}]{'.' + key if key else ''}", problem


def load_study(path: str | Path | None = None, overrides: Sequence[str] = ()) -> StudyConfig:
    from sicl.config import load_config

    cfg = load_config(StudyConfig, path or DEFAULT_CONFIG, list(overrides))
    check_target_names(cfg, path or DEFAULT_CONFIG, overrides)
    return cfg


def study_methods(cfg: StudyConfig) -> list[str]:
    """The methods a study evaluates: the base model's, then its adapters'."""
    return [*BASE_METHODS, *(a.method for a in cfg.adapters)]


def check_target_names(cfg: StudyConfig, path: str | Path, overrides: Sequence[str] = ()) -> None:
    """Every target names one of the study's eval sets, a ``method`` (name or pattern) that matches one of its
    methods and a ``baseline`` that is one: a target that names anything else could never be checked, and would
    only be missing from the report. A target of the file is checked against the file's own ``eval_sets`` and
    ``adapters``, so that a study reduced on the command line (``eval_sets=[...]``, ``adapters=[...]``) still
    runs: its targets on what it left out are said to be unchecked when the report is made
    (:meth:`Study.check_targets`). One line naming the file (or the override of ``targets``), the entry, the
    unknown name and the known ones."""
    from sicl.config import read_config_file

    given = {item.partition("=")[0].strip(): item for item in overrides}
    # targets from the command line are checked against the study as it runs
    source = f"override {given['targets']}" if "targets" in given else str(path)
    sets, methods = [s.name for s in cfg.eval_sets], study_methods(cfg)
    if "targets" not in given and ("eval_sets" in given or "adapters" in given):
        raw = read_config_file(path)
        if "eval_sets" in given and isinstance(raw.get("eval_sets"), list):
            sets = _names(raw["eval_sets"], "name")
        if "adapters" in given and isinstance(raw.get("adapters"), list):
            methods = [*BASE_METHODS, *_names(raw["adapters"], "method")]
    for i, t in enumerate(cfg.targets):
        entry = f"targets[{i}]" + (f" ({t.label!r})" if t.label else "")
        if t.eval_set not in sets:
            raise ConfigError(f"{source}: {entry}: eval_set {t.eval_set!r} is not one of the study's eval sets "
                              f"({', '.join(sets) or 'none'})")
        if not any(fnmatch.fnmatchcase(m, t.method) for m in methods):
            pattern = any(c in t.method for c in "*?[")
            raise ConfigError(f"{source}: {entry}: method {t.method!r} {'matches none' if pattern else 'is not one'} "
                              f"of the study's methods ({', '.join(methods)})")
        if t.baseline is not None and t.baseline not in methods:
            raise ConfigError(f"{source}: {entry}: baseline {t.baseline!r} is not one of the study's methods "
                              f"({', '.join(methods)})")


def _names(entries: list[Any], key: str) -> list[str]:
    """The ``key`` of every mapping in a config file's list ``entries`` (others ignored)."""
    return [str(e[key]) for e in entries if isinstance(e, dict) and key in e]


def model_problem(name: str) -> str | None:
    """What is wrong with a study's ``model`` before anything runs: not a built-in name, a model folder or (with
    downloads on, ``SICL_ALLOW_DOWNLOAD=1``) a Hugging Face hub id; None when it can be used. A built-in model
    without weights is left to its first use, which says how to build them."""
    from sicl.models.zoo import BUILTINS, ENV_ALLOW, download_allowed

    if name in BUILTINS:
        return None
    path = Path(name).expanduser()
    if path.exists():
        return None if (path / "config.json").is_file() else f"{path} is not a model folder (no config.json)"
    if name.startswith((".", "/", "~")) or name.count("/") != 1:
        return f"{name!r} is neither a built-in model ({', '.join(BUILTINS)}) nor a folder"
    if not download_allowed(False):
        return (f"{name!r} looks like a Hugging Face hub id, and downloads are off: set {ENV_ALLOW}=1, or give a "
                f"local folder or a built-in model ({', '.join(BUILTINS)})")
    return None


def backend_problem(name: str) -> str | None:
    """Why evaluation backend ``name`` cannot run here (unknown; vllm not importable in this Python), or None."""
    from sicl.eval.backends import backends

    if name not in backends():
        return f"{name!r} is not one of {', '.join(backends())}"
    if name == "vllm":
        from sicl.eval.vllm_backend import vllm_missing_reason

        reason = vllm_missing_reason()
        if reason:
            return f"vllm: {reason}"
    return None


class Study:
    """One run folder: ``data/`` (world), ``eval/<method>/<set>/`` (runs), ``models/<method>/`` (adapters)."""

    def __init__(self, cfg: StudyConfig, out: str | Path, workers: int = 2, config_root: str | Path | None = None,
                 log: Callable[[str], None] = print) -> None:
        self.cfg = cfg
        self.out = Path(out)
        self.data = self.out / "data"
        self.workers = workers
        self.root = Path(config_root) if config_root else DEFAULT_CONFIG.parents[2]
        self.log = log
        self.timings: dict[str, float] = {}
        self.tower_cache: Any = None
        self.world_rebuilt_from: int | None = None  # set when stage 1 replaced an older world

    # ------------------------------------------------------------------ plan
    def ks_for(self, method: str, eval_set: str, adapter: AdapterSpec | None = None) -> list[int]:
        cfg = self.cfg
        if method == "zero-shot":
            return [0]
        if adapter is not None and adapter.eval_k is not None:
            return sorted(set(adapter.eval_k))
        swept = "all" in cfg.sweep_sets or eval_set in cfg.sweep_sets
        ks = set(cfg.sweep) | {cfg.k} if swept else {0, cfg.k}
        if method == "vanilla-icl":
            ks.discard(0)  # the base model at k=0 is the zero-shot run
        return sorted(ks)

    def run_dir(self, method: str, eval_set: str) -> Path:
        return self.out / "eval" / method / eval_set

    # --------------------------------------------------------------- stages
    def run(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        if self.cfg.threads:
            import torch

            torch.set_num_threads(self.cfg.threads)
        adapters = self._adapter_plan()
        n_stages = 6
        self._stage(1, n_stages, "synthetic world", self.build_world)
        self.check_base_model()
        with self.engines() as pool:
            self._stage(2, n_stages, "zero-shot", lambda: self.evaluate_method("zero-shot"))
            self._stage(3, n_stages, "vanilla ICL", lambda: self.evaluate_method("vanilla-icl"))
            self._stage(4, n_stages, "adapters (SICL-AT, direct fine-tuning)",
                        lambda: [self.train_adapter(a) for a in adapters])
            self._stage(5, n_stages, "adapter evaluations",
                        lambda: [self.evaluate_method(a.method, a) for a in adapters])
        summary: dict[str, Any] = {"backend": self.cfg.backend}
        if pool is not None:
            summary["vllm_engines_started"] = pool.starts
        self._stage(6, n_stages, "report", lambda: summary.update(self.report()))
        summary["wall_seconds"] = round(time.perf_counter() - t0, 1)
        summary["stage_seconds"] = {k: round(v, 1) for k, v in self.timings.items()}
        summary["peak_rss_mb"] = peak_rss_mb()
        _write_json(self.out / "demo.json", summary)
        return summary

    def engines(self) -> Any:
        """backend vllm: one vLLM engine (LoRA on) serves every evaluation of the study, base model and adapters
        (:func:`sicl.eval.vllm_backend.shared_engines`); hf needs nothing."""
        if self.cfg.backend != "vllm":
            return contextlib.nullcontext()
        from sicl.eval.vllm_backend import shared_engines

        return shared_engines()

    def check_base_model(self) -> None:
        """Evaluations and adapters are reused by their settings, which name the base model (``tiny-omni``) and
        the world's manifests by path, not the weights or the world's content. Record both identities in
        ``OUT/base_model.json`` (the weights' hash; the world's version, seed and size); when either changed since
        the last run (a re-shipped tiny-omni, a re-saved folder, a world rebuilt at a new version) or was never
        recorded, the derived outputs (``eval/``, ``models/``, the report) are removed so they are made again."""
        mark = self.out / "base_model.json"
        info = json.loads((self.data / "world.json").read_text(encoding="utf-8"))
        now = {"model": self.cfg.model, "identity": model_identity(self.cfg.model),
               "world": {k: info.get(k) for k in ("version", "seed", "size")}}
        before = json.loads(mark.read_text(encoding="utf-8")) if mark.is_file() else None
        rebuilt = self.world_rebuilt_from
        if (before != now or rebuilt is not None) and any((self.out / name).exists() for name in ("eval", "models")):
            if rebuilt is not None:
                why = f"the world was rebuilt (version {rebuilt} -> {now['world']['version']})"
            elif not before:
                why = "no record of the base model and world its results were made with"
            elif before.get("identity") != now["identity"]:
                why = f"base model changed since the last run ({before.get('identity')} -> {now['identity']})"
            else:
                why = f"world changed since the last run ({before.get('world')} -> {now['world']})"
            self.log(f"{self.out}: {why}; its evaluations and adapters are made again")
            for name in ("eval", "models", "report.md", "results.csv", "plots", "demo.json"):
                p = self.out / name
                if p.is_dir():
                    shutil.rmtree(p)
                elif p.exists():
                    p.unlink()
        _write_json(mark, now)

    def _stage(self, i: int, n: int, name: str, fn: Callable[[], Any]) -> None:
        self.log(f"[{i}/{n}] {name}")
        t = time.perf_counter()
        fn()
        self.timings[name] = time.perf_counter() - t
        self.log(f"      {name}: {self.timings[name]:.0f} s")

    def build_world(self) -> None:
        from sicl.data.synth.world import SIZES, WORLD_VERSION, build_world, upgradable_domains
        from sicl.progress import progress as tqdm

        size = self.cfg.world_size
        if size not in SIZES:
            raise ConfigError(f"world_size: unknown size {size!r} (expected one of {', '.join(SIZES)})")
        total = sum(sum(c) for c in SIZES[size].values())
        info = self.data / "world.json"
        old = json.loads(info.read_text(encoding="utf-8")).get("version", 1) if info.is_file() else None
        force = old is not None and old != WORLD_VERSION and not upgradable_domains(self.data, self.cfg.world_seed, size)
        if force:  # the study's own world, made by an older sicl: build the current one (results follow it)
            self.log(f"      {self.data}: a version-{old} world; building version {WORLD_VERSION}")
            self.world_rebuilt_from = old
        from sicl.guard import check_stop, stop_requested

        try:
            with tqdm(total=total, unit="clip", desc="synth", dynamic_ncols=True) as bar:
                summary = build_world(self.data, seed=self.cfg.world_seed, size=size, workers=self.workers,
                                      progress=bar.update, force=force, stop=lambda: stop_requested() is not None)
        except KeyboardInterrupt:  # stopped by build_world on SIGTERM/SIGINT: its finished splits are kept
            check_stop(f"the world's finished splits are kept in {self.data}; run the same sicl demo command again "
                       "to finish it")
            raise
        self.log(f"      {summary['clips']} clips, {summary['audio_hours']:.2f} h of audio"
                 + (" (reused)" if summary.get("skipped") else ""))
        for s in self.cfg.eval_sets:
            for rel in (s.data, s.pool):
                if rel and not (self.data / rel).is_file():
                    raise ConfigError(f"eval set {s.name}: {self.data / rel} does not exist in the world")

    def evaluate_method(self, method: str, adapter: AdapterSpec | None = None) -> None:
        for s in self.cfg.eval_sets:
            ks = self.ks_for(method, s.name, adapter)
            self.evaluate(method, s, ks, adapter_dir=self.out / "models" / method if adapter else None)

    def evaluate(self, method: str, s: EvalSet, ks: list[int], adapter_dir: Path | None) -> Path:
        from sicl.eval.backends import shared_tower_cache
        from sicl.eval.runner import EvalConfig, evaluate, read_settings, settings_changed

        if self.tower_cache is None and self.cfg.backend == "hf":  # one base model: adapters leave the tower alone
            self.tower_cache = shared_tower_cache()
        out = self.run_dir(method, s.name)
        pool = labels = None
        if max(ks) > 0:
            if not s.pool:
                raise ConfigError(f"eval set {s.name} has no pool, but {method} needs demonstrations")
            pool = str(self.data / s.pool)
            labels = f"file:{self.run_dir('zero-shot', s.name) / 'predictions.jsonl'}"
        cfg = EvalConfig(data=str(self.data / s.data), out=str(out), model=self.cfg.model,
                         adapter=str(adapter_dir) if adapter_dir else None, pool=pool, ks=ks,
                         retriever=self.cfg.retriever, pseudo_labeler=labels or "backbone",
                         embedder=self.cfg.embedder, batch_size=self.cfg.batch_size, limit=self.cfg.eval_limit, method=method,
                         eval_set=s.name, scorer=self.cfg.scorer, backend=self.cfg.backend,
                         loop_trim=self.cfg.loop_trim)
        saved = read_settings(out)
        changed = settings_changed(out, cfg)
        old_root = _eval_root(saved.get("data"), s.data) if saved else None
        moved = old_root is not None and not _same_dir(old_root, self.out)
        if changed:  # the study owns this folder: an evaluation made with other settings is made again
            if moved and "data_sha1" not in (saved or {}):
                # written before settings recorded the run folder and its inputs' SHA-1: compared by path
                self.log(f"      {out}: made in {old_root} (the study folder was moved or copied) by an earlier sicl, "
                         f"whose settings name its files by path only; evaluating again")
            elif moved:
                self.log(f"      {out}: made in {old_root} (the study folder was moved or copied) with other "
                         f"settings or inputs ({', '.join(changed)}); evaluating again")
            else:
                self.log(f"      {out}: made with other settings ({', '.join(changed)}); evaluating again")
            shutil.rmtree(out)
        elif moved:  # the same inputs (same place in the study folder, same content): its predictions are kept
            self.log(f"      {out}: made in {old_root} (the study folder was moved or copied), with the same "
                     f"settings and inputs; reused")
        self.log(f"      {method} on {s.name}, k={','.join(map(str, ks))}")
        evaluate(cfg, resume=True, progress=True, tower_cache=self.tower_cache)
        return out

    def _adapter_plan(self) -> list[AdapterSpec]:
        plan = []
        for a in self.cfg.adapters:
            if a.method in BASE_METHODS:
                raise ConfigError(f"adapter method {a.method!r} clashes with a base-model method")
            cfg = self.train_config(a)
            if a.eval_k is None and max(cfg.k) == 0:
                a = AdapterSpec(method=a.method, config=a.config, eval_k=[0])
            plan.append(a)
        return plan

    def train_config(self, a: AdapterSpec) -> Any:
        from sicl.config import load_config
        from sicl.train.sicl_at_config import TrainConfig

        path = Path(a.config)
        if not path.is_absolute() and not path.exists():
            path = self.root / path
        cfg = load_config(TrainConfig, path, list(self.cfg.train_overrides))
        for t in cfg.tasks:  # re-root manifests into this study's world: <set>/<split>.jsonl
            t.queries = str(self.data / Path(t.queries).parent.name / Path(t.queries).name)
            if t.pool:
                t.pool = str(self.data / Path(t.pool).parent.name / Path(t.pool).name)
        cfg.model = self.cfg.model
        cfg.output_dir = str(self.out / "models" / a.method)
        cfg.report_to = ["none"]
        return cfg

    def train_adapter(self, a: AdapterSpec) -> Path:
        """Train ``a`` into ``OUT/models/<method>``, which the study owns: a finished adapter whose saved config
        matches is reused (paths inside the study folder compared relative to it, so a moved or copied study
        keeps its adapters); one trained with another config (``train_overrides``, a changed recipe) is removed
        and trained again, and its evaluations follow (their settings record the adapter's weights); a stopped
        run continues from its last checkpoint when its config allows (``sicl train --resume``), else starts
        over."""
        from sicl.config import load_config, read_config_file, to_dict
        from sicl.train.sicl_at import RESUME_SAFE_KEYS, train
        from sicl.train.sicl_at_config import TrainConfig

        cfg = self.train_config(a)
        out = Path(cfg.output_dir)
        done = out / "adapter_model.safetensors"
        saved = out / "config.yaml"
        if saved.is_file():
            now = to_dict(cfg)
            # Read back through TrainConfig, so a key added to sicl since that run (at its default) is no change.
            try:
                before = to_dict(load_config(TrainConfig, saved))
            except SiclError:  # a mapping TrainConfig no longer takes: compared as it is
                try:
                    before = read_config_file(saved)
                except SiclError:
                    before = {}
            old_root = _study_root(before, a.method)
            keys = sorted(k for k in {*before, *now}
                          if _under_root(before.get(k), old_root) != _under_root(now.get(k), str(self.out)))
            moved = old_root is not None and old_root != str(self.out)
            if done.is_file() and not keys:
                where = (f", trained in {old_root}: the study folder was moved or copied"
                         if moved and not _same_dir(old_root, self.out) else "")
                self.log(f"      {a.method}: adapter reused ({out}{where})")
                return out
            if done.is_file():
                what = f"another config ({', '.join(keys)} differ)" if before else f"a {saved.name} that cannot be read"
                self.log(f"      {a.method}: {out} holds an adapter trained with {what}; training it again")
                shutil.rmtree(out)
            elif moved or any(k not in RESUME_SAFE_KEYS for k in keys):
                # `sicl train --resume` continues a run only with the config it saved (paths included)
                why = (f"other config: {', '.join(k for k in keys if k not in RESUME_SAFE_KEYS)} differ"
                       if any(k not in RESUME_SAFE_KEYS for k in keys) else f"it was started in {old_root}")
                self.log(f"      {a.method}: the stopped run in {out} cannot continue ({why}); starting over")
                shutil.rmtree(out)
        self.log(f"      {a.method}: training {cfg.max_steps} steps ({len(cfg.tasks)} task(s), k={cfg.k})")
        # the study owns this folder: a run stopped before its first checkpoint starts over, a later one continues
        train(cfg, resume=out.is_dir())
        if not done.is_file():
            raise SiclError(f"training {a.method} stopped before the end; rerun to resume")
        return out

    # --------------------------------------------------------------- report
    def report(self) -> dict[str, Any]:
        from sicl.report import build_report

        targets, diagnosis = self.check_targets(), self.diagnosis()
        # report.md gets each sentence with its names' markdown characters escaped (text_md); demo.json the text
        verdicts = [({True: "met", False: "not met", None: "exempt"}[t["met"]], t.pop("text_md")) for t in targets]
        paths = build_report([self.out / "eval"], self.out, title="SICL-AT on the embedded world (tiny-omni)",
                             main_k=self.cfg.k, notes=diagnosis, verdicts=verdicts)
        return {"report": {k: json_value(v) for k, v in dict(paths).items()}, "targets": targets,
                "diagnosis": diagnosis}

    def results(self) -> Any:
        """The study's evaluations as :class:`sicl.report.Results` (the report's one reader of run folders), or
        None before any evaluation exists."""
        from sicl.report import ReportError, Results, collect_runs

        try:
            runs = collect_runs([self.out / "eval"], warn=lambda msg: None)
        except ReportError:
            return None
        return Results([r for run in runs for r in run.rows], self.cfg.k)

    def check_targets(self) -> list[dict[str, Any]]:
        """The study's ``targets`` (:class:`sicl.report.Target`, issue 8's by default) checked on the measured
        numbers; never used to choose anything. A target whose baseline is an adapter trained on the target's
        own domain (direct-ft on child-reading) and that is not met is EXEMPT: issue 8 lets in-domain fine-tuning
        win there. Each check's ``text`` is plain; ``text_md`` is the same sentence for report.md (names escaped)."""
        from sicl.report import check_target
        from sicl.report.build import md_text

        res = self.results()
        if res is None:
            return []
        checks: list[dict[str, Any]] = []
        sets, methods = [s.name for s in self.cfg.eval_sets], study_methods(self.cfg)
        for t in self.cfg.targets:
            label = t.label or f"{t.method} vs {t.baseline if t.baseline else t.value}"
            left_out = [f"eval set {t.eval_set!r}"] if t.eval_set not in sets else []
            if not any(fnmatch.fnmatchcase(m, t.method) for m in methods):
                left_out.append(f"method {t.method!r}")
            if t.baseline is not None and t.baseline not in methods:
                left_out.append(f"baseline {t.baseline!r}")
            if left_out:
                # a study reduced on the command line (load_study refuses such names in the file's own targets)
                self.log(f"      target {label!r} not checked: this study leaves out its {' and '.join(left_out)} "
                         f"(eval sets: {', '.join(sets)}; methods: {', '.join(methods)})")
                continue
            r = check_target(res, dataclasses.replace(t, label=None))
            if r.met is None:
                # a number is missing (e.g. that k was not run, a misspelt metric): left out of the checks and
                # said, with the names the results do have
                self.log(f"      target {label!r} {r.sentence}")
                continue
            met: bool | None = r.met
            exempt = not met and t.baseline in self._trained_on(t.eval_set)

            md = check_target(res, dataclasses.replace(t, label=None), name=md_text).sentence
            texts = []
            for sentence, name in ((r.sentence, str), (md, md_text)):
                text = ("MET" if met else "NOT MET") + sentence[sentence.index(":"):]
                if exempt:
                    text = (f"EXEMPT: {text[len('NOT MET: '):]} ({name(t.baseline)} was trained on "
                            f"{name(t.eval_set)}'s domain, where the targets let it win)")
                texts.append(text)
            checks.append({"eval_set": t.eval_set, "target": label, "met": None if exempt else met,
                           "text": texts[0], "text_md": texts[1]})
        return checks

    def diagnosis(self) -> list[str]:
        """Plain sentences on what the numbers say about the method (data-driven; no claim without a number)."""
        res = self.results()
        if res is None:
            return []
        k = self.cfg.k
        zero_shot, vanilla = BASE_METHODS
        names = [s.name for s in self.cfg.eval_sets]
        # the study's adapters by how they were trained (their configs' k), not by their names
        with_demos = {a.method: max(self.train_config(a).k) > 0 for a in self.cfg.adapters}
        sicl_methods = [m for m, demos in with_demos.items() if demos]
        out: list[str] = []
        for eval_set in names:  # the sets with WER numbers (ASR), in the config's order
            zs = res.value(zero_shot, eval_set, 0, "wer")
            icl = res.value(vanilla, eval_set, k, "wer")
            if zs is None or icl is None:
                continue
            ats = [(m, res.value(m, eval_set, k, "wer")) for m in sicl_methods]
            ats = [(m, w) for m, w in ats if w is not None]
            demos = f"{k} demonstration" + ("s" if k != 1 else "")
            change = (f"{'raises' if icl > zs else 'lowers'} WER from {zs:.3f} (zero-shot) to {icl:.3f}" if icl != zs
                      else f"leaves WER at zero-shot's {zs:.3f}")
            line = f"Prompt with {demos}, {eval_set}: vanilla ICL {change}"
            if ats:
                line += "; after SICL-AT: " + ", ".join(f"{m} {w:.3f}" for m, w in ats)
                best = min(w for _, w in ats)
                line += (f" ({'below' if best < zs else 'not below'} zero-shot"
                         f"{', below vanilla ICL' if best < icl else ''})")
            out.append(line + ".")
        ks = sorted(set(self.cfg.sweep))
        if len(ks) > 1:
            for eval_set in names:  # the sets with WER at both ends of the sweep
                deltas = []
                for m in [vanilla, *sicl_methods]:
                    first = ks[0] if m != vanilla else min(x for x in ks if x > 0)
                    if first == ks[-1]:
                        continue
                    lo = res.value(m, eval_set, first, "wer")
                    hi = res.value(m, eval_set, ks[-1], "wer")
                    if lo is not None and hi is not None:
                        deltas.append(f"{m} {hi - lo:+.3f} (k={first} -> {ks[-1]})")
                if deltas:
                    out.append(f"More demonstrations on {eval_set}, change in WER: " + ", ".join(deltas) + ".")
        for m in [m for m, demos in with_demos.items() if not demos]:  # fine-tuned without demonstrations
            parts = []
            for eval_set in names:
                zs = res.value(zero_shot, eval_set, 0, "wer")
                ft = res.value(m, eval_set, 0, "wer")
                if zs is not None and ft is not None:
                    where = " (its training domain)" if m in self._trained_on(eval_set) else ""
                    parts.append(f"{eval_set}{where} {ft:.3f} vs zero-shot {zs:.3f}")
            if parts:
                out.append(f"Fine-tuned without demonstrations, {m} (k=0) WER: " + "; ".join(parts) + ".")
        return out

    def _trained_on(self, eval_set: str) -> set[str]:
        """Adapter methods trained on ``eval_set``'s domain: their training queries come from the world folder
        that holds the eval set's data (child-reading/train.jsonl for child-reading/test.jsonl)."""
        domain = next((Path(s.data).parent.name for s in self.cfg.eval_sets if s.name == eval_set), eval_set)
        return {a.method for a in self.cfg.adapters
                if any(Path(t.queries).parent.name == domain for t in self.train_config(a).tasks)}


#: stands for the study folder in paths compared across a moved or copied study
_ROOT_MARK = "<study>"


def _study_root(saved: dict[str, Any], method: str) -> str | None:
    """The study folder an adapter's saved training config was made in: its ``output_dir`` is
    ``<study>/models/<method>``; None when it is not (a config from elsewhere)."""
    p = saved.get("output_dir")
    if not isinstance(p, str) or not p:
        return None
    path = Path(p)
    return str(path.parents[1]) if path.name == method and path.parent.name == "models" else None


def _under_root(value: Any, root: str | None) -> Any:
    """``value`` with every path inside ``root`` (strings equal to it or below it, ``file:`` ones too) spelled
    relative to it, so configs of a moved or copied study compare equal; lists and mappings are walked."""
    if root is None:
        return value
    if isinstance(value, str):
        prefix = "file:" if value.startswith("file:") else ""
        rest = value[len(prefix):]
        if rest == root:
            return prefix + _ROOT_MARK
        if rest.startswith(root.rstrip("/") + "/"):
            return prefix + _ROOT_MARK + rest[len(root.rstrip("/")):]
        return value
    if isinstance(value, list | tuple):
        return [_under_root(v, root) for v in value]
    if isinstance(value, dict):
        return {k: _under_root(v, root) for k, v in value.items()}
    return value


def _eval_root(saved_data: Any, rel: str) -> str | None:
    """The study folder an evaluation was made in, from the test manifest its settings.json names
    (``<study>/data/<rel>``); None when that is not such a path."""
    tail = "/" + (Path("data") / rel).as_posix()
    if isinstance(saved_data, str) and saved_data.endswith(tail) and len(saved_data) > len(tail):
        return saved_data[:-len(tail)]
    return None


def _same_dir(a: str | Path, b: str | Path) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak resident memory of this process and of its finished children (MB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    scale = 1 / 1024 if sys.platform != "darwin" else 1 / 2**20
    return round(max(own, kids) * scale, 1)


def json_value(v: Any) -> Any:
    """``v`` as JSON data: paths as strings, lists and tuples as lists of such values, mappings as objects."""
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, list | tuple):
        return [json_value(x) for x in v]
    if isinstance(v, dict):
        return {str(k): json_value(x) for k, x in v.items()}
    return v


def _write_json(path: Path, data: Any) -> None:
    from sicl.atomic import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def model_identity(name_or_path: str) -> str:
    """Identity of a base model's weights: the SHA-256 of its config and weight files when they total at most
    1 GB (tiny-omni: about 16 MB, tens of milliseconds), else names, sizes and modification times
    (:func:`sicl.retrieval.cache.model_fingerprint`); a model that is not a local folder is its name."""
    import hashlib

    from sicl.models.zoo import resolve_model
    from sicl.retrieval.cache import model_fingerprint

    try:
        path = resolve_model(name_or_path)
    except SiclError:
        return str(name_or_path)
    files = sorted(f for f in path.iterdir() if f.is_file() and (f.suffix == ".safetensors" or f.name == "config.json"))
    if sum(f.stat().st_size for f in files) > 2**30:
        return "fingerprint:" + model_fingerprint(path)
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return "sha256:" + h.hexdigest()[:16]


def run_study(out: str | Path, config: str | Path | None = None, overrides: Sequence[str] = (),
              fresh: bool = False, workers: int = 2) -> dict[str, Any]:
    cfg = load_study(config, overrides)
    out = Path(out)
    if fresh and out.exists():
        from sicl.guard import LOCK_NAME

        for p in out.iterdir():  # everything but the writer lock the CLI may hold on this folder
            if p.name != LOCK_NAME:
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return Study(cfg, out, workers=workers).run()
