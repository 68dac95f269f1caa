"""The SustainScore experiment: baseline -> self-evident constraints -> constrained runs -> report.

Every stage appends to its own JSONL store in the run directory, batch by batch, so a run killed at
any point and started again skips what is done and ends with exactly the records of an
uninterrupted run. A record's key covers the prompt token ids, so a changed prompt is generated anew.
The run-directory layout and its one-writer lock live in `interp.rundir.RunDir`.
"""
from __future__ import annotations

import functools
import hashlib
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from ..attention.cas import CAS
from ..attention.storage import save_cas
from ..constraints import (Constraint, ProposeContext, accepted_constraints, extract_constraints_many,
                           insert_constraints, neutral_control, paraphrase_task, sample_constraint_set)
from ..errors import InterpError
from ..models.generation import GenConfig
from ..models.thinking import (PHASE_SCOPES, Segments, ThinkingBudget, segment_generation, template_kwargs,
                               thinking_spec)
from ..prompts import Part, Prompt, build_prompt
from .. import shards
from ..rundir import STAGES, RunDir
from ..shards import Shard
from ..store import ResultStore, record_key
from ..records import BaselineRecord, ConstrainedRecord, ConstraintsRecord
from ..registry import ref_of
from ..tasks import Item, Task, get_task, task_ref
from .config import SustainConfig
from .outcomes import error_type
from .report import write_report

__all__ = ["STAGES", "Condition", "SustainRun", "error_type", "run_sustain"]


@dataclass
class Condition:
    """One way of changing the baseline prompt: constraints to insert, or a control."""

    id: str
    condition_kind: str  # "single" | "set" | "control" (the record field of the same name)
    ctype: str  # constraint type, "mixed" for sets, control name for controls
    hardness: str  # "hard" | "soft" | "mixed" | "control"
    constraints: list[Constraint]
    k: int = 1
    insert_texts: list[str] | None = None  # neutral control: plain sentences in the constraint slot
    task_text: str | None = None  # paraphrase control: replaces the task part

    def to_dict(self) -> dict:
        """The condition's fields of a `ConstrainedRecord`."""
        return {"condition": self.id, "condition_kind": self.condition_kind, "ctype": self.ctype, "hardness": self.hardness,
                "k": self.k, "constraints": [c.to_dict() for c in self.constraints],
                "insert_texts": self.insert_texts, "task_text": self.task_text}


def _seed_of(*parts) -> int:
    return int(hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:8], 16)


def _writer(method):
    """Run a stage holding the run directory's lock (re-entrant; another process holding it is an error)."""

    @functools.wraps(method)
    def wrapped(self, *a, **k):
        with self.rundir.lock("interp sustain"):
            return method(self, *a, **k)

    return wrapped


class SustainRun:
    """A SustainScore run bound to a run directory; `run()` executes or resumes all stages.

    The config and task are validated before anything is written; each stage holds the directory's lock.
    """

    def __init__(self, cfg: SustainConfig, run_dir: str | Path, model=None, task: Task | None = None,
                 extractor=None, progress: bool = True, log: Callable[[str], None] = print,
                 shard: Shard | tuple[int, int] | None = None, backend_client=None):
        """`backend_client`: an object with OpenAIChatBackend's `generate` (e.g. backends.scripted.ScriptedGenerator)
        used for a non-local `cfg.backend` instead of connecting to it."""
        cfg.validate()
        self.cfg = cfg
        self.thinking = thinking_spec(cfg.thinking, cfg.thinking_delimiters)
        self._check_thinking()
        if backend_client is not None and cfg.backend == "local":
            raise InterpError("backend_client replaces a non-local backend; set cfg.backend to 'scripted'")
        if cfg.backend == "scripted" and backend_client is None:
            raise InterpError("backend 'scripted' generates through a backend_client passed to SustainRun (Python only)")
        self.rundir = RunDir(run_dir)
        self.dir = self.rundir.path
        given = task is not None
        if task is None:
            recorded = self.rundir.read_config().get("task_ref") if self.rundir.config_path.exists() else None
            try:
                task = get_task(cfg.task, ref=recorded, **cfg.task_kwargs)
            except (TypeError, ValueError) as e:
                raise InterpError(f"task {cfg.task!r} refuses task_kwargs {cfg.task_kwargs!r}: {e}") from None
        self.task = task
        self.shard = Shard.of(shard)
        with self.rundir.lock("interp sustain"):
            self.rundir.claim(cfg, task_ref=ref_of(task) if given else task_ref(cfg.task))
            if self.shard:
                shards.begin(self.dir, "sustain", self.shard, cfg.hash())
        self.model = model
        self._extractor = extractor
        self.progress = progress
        self.log = log
        self._http = backend_client

    def _check_thinking(self) -> None:
        cfg = self.cfg
        if cfg.phase_scope not in PHASE_SCOPES:
            raise InterpError(f"phase_scope must be one of {PHASE_SCOPES}, got {cfg.phase_scope!r}")
        if cfg.think_budget is not None:
            if self.thinking is None:
                raise InterpError("think_budget needs thinking delimiters; thinking is 'none'")
            if cfg.think is False:
                raise InterpError("think_budget with think: false: there is no trace to cap")
            if cfg.backend != "local":
                raise InterpError("think_budget needs the local hooked model (budget forcing runs inside our "
                                  "generation loop); an HTTP backend cannot force tokens")
        if cfg.think is not None and cfg.backend != "local":
            raise InterpError("think on/off is applied through the local chat template; with an HTTP backend set "
                              "it on the server (e.g. vLLM chat_template_kwargs) and leave `think` unset")

    def scoped_text(self, record: BaselineRecord) -> str:
        """The part of a stored output that scoring, proposal and checks read (`phase_scope`)."""
        if self.cfg.phase_scope == "answer" and record.answer_text is not None:
            return record.answer_text
        return record.output_text

    @property
    def stores(self) -> dict[str, ResultStore]:
        """The stages' writable stores (only while the run directory's lock is held)."""
        return {s: self.rundir.store(s) for s in STAGES}

    # ---- helpers -------------------------------------------------------------------------------
    def _model(self):
        if self.model is None:
            self.log(f"loading model {self.cfg.model} ...")
            self.model = self.cfg.load_model()
        return self.model

    @property
    def extractor(self):
        if self._extractor is None and self.cfg.soft:
            spec = self.cfg.extractor
            if spec == "self" and self.http is not None:
                self._extractor = self.http
            elif spec == "self":
                from ..backends.local import LocalGenerator

                self._extractor = LocalGenerator(self._model(), thinking=self.thinking)
            elif spec.startswith(("http://", "https://")):
                from ..backends.openai_http import OpenAIChatBackend

                base, _, name = spec.partition("#")
                self._extractor = OpenAIChatBackend(base, model=name or "default")
            else:
                from ..backends.local import LocalGenerator
                from ..models import load_model

                self._extractor = LocalGenerator(load_model(spec))
        return self._extractor

    @property
    def http(self):
        """The OpenAI-compatible backend when `cfg.backend` is a URL (generation without hooks), else None."""
        if self.cfg.backend == "local":
            return None
        if getattr(self, "_http", None) is None:
            from ..backends.openai_http import OpenAIChatBackend

            self._http = OpenAIChatBackend(self.cfg.backend, model=self.cfg.backend_model or self.cfg.model,
                                           api_key_env=self.cfg.backend_api_key_env,
                                           max_concurrency=self.cfg.backend_concurrency,
                                           cache_path=self.dir / "http_cache.jsonl")
        return self._http

    def tokenizer(self):
        if self.model is not None:
            return self.model.tokenizer
        if getattr(self, "_tok", None) is None:
            from ..models.loading import load_tokenizer

            self._tok = load_tokenizer(self.cfg.model)
        return self._tok

    def prompt(self, parts: list[Part]) -> Prompt:
        """The rendered prompt of a job (its token ids enter the record key)."""
        tok = self.tokenizer()
        return build_prompt(tok, parts, template_kwargs=template_kwargs(tok, self.cfg.think))

    def _generate(self, js: list[dict], cfg: GenConfig):
        """Generations for one batch of jobs: hooked local model (with CAS) or the HTTP backend."""
        from ..api import generate  # the one door to generation
        from ..models.generation import Generation
        from ..prompts import messages_from_parts

        prompts = [j["prompt"] for j in js]
        if self.http is None:
            model = self._model()
            keyed_apart = getattr(self, "_tok", None) is not None  # keys made with a separately loaded tokenizer
            for j, p in zip(js, prompts):
                if keyed_apart and build_prompt(model.tokenizer, j["parts"], template_kwargs=template_kwargs(model.tokenizer, self.cfg.think)).input_ids != p.input_ids:
                    raise InterpError(f"the loaded model's tokenizer renders the prompt of {j['item'].id} differently "
                                      f"from the tokenizer of {self.cfg.model!r} that keyed it; cannot key records")
            def budget(b):
                return [] if self.cfg.think_budget is None else [
                    ThinkingBudget(model.tokenizer, self.thinking, self.cfg.think_budget)]

            return generate(model, prompts, cfg, capture=[CAS()] if self.cfg.capture_cas else [],
                            providers_for_batch=budget, progress=False, row_keys=[j["key"] for j in js])
        tok = self.tokenizer()
        outs = self.http.generate([messages_from_parts(j["parts"])[0] for j in js], max_new_tokens=cfg.max_new_tokens,
                                  temperature=cfg.temperature, seed=cfg.seed)
        reasons = {"stop": "eos", "length": "length"}
        return [Generation(p, o["text"], tok(o["text"], add_special_tokens=False)["input_ids"],
                           reasons.get(o.get("finish_reason"), o.get("finish_reason") or "eos"))
                for p, o in zip(prompts, outs)]

    def items(self) -> list[Item]:
        items = self.task.items(self.cfg.n_items, self.cfg.offset)
        if self.cfg.n_items is not None and len(items) < self.cfg.n_items:
            raise InterpError(f"task {self.cfg.task!r} has only {len(items)} items from offset {self.cfg.offset}, "
                              f"n_items={self.cfg.n_items} asked; lower n_items (None = all) or, for a generated "
                              "task, ask for more items through task_kwargs (e.g. {'n': 120})")
        return shards.select(items, self.shard, lambda it: it.id)

    def gen_config(self, seed: int) -> GenConfig:
        return GenConfig(max_new_tokens=self.cfg.max_new_tokens or self.task.max_new_tokens,
                         temperature=self.cfg.temperature, seed=seed, batch_size=self.cfg.batch_size)

    def key(self, stage: str, item_id: str, condition: str, seed: int, prompt_ids: Sequence[int]) -> str:
        """Record key: everything that determines the output, the prompt token ids included."""
        prompt = hashlib.sha256(",".join(map(str, prompt_ids)).encode()).hexdigest()[:16]
        return record_key(model=self.cfg.model, task=self.cfg.task, task_kwargs=self.cfg.task_kwargs, stage=stage,
                          item=item_id, condition=condition, seed=seed, gen=self.gen_config(seed).key_dict(),
                          position=self.cfg.position, config=self.cfg.hash(), prompt=prompt)

    def _job(self, stage: str, item: Item, cond_id: str, seed: int, parts: list[Part], **extra) -> dict:
        prompt = self.prompt(parts)
        return {"key": self.key(stage, item.id, cond_id, seed, prompt.input_ids), "parts": parts, "prompt": prompt,
                "item": item, "seed": seed, **extra}

    def _generate_and_store(self, stage: str, jobs: list[dict]) -> None:
        """Generate the pending jobs (dicts with key, parts, item, seed, ...) batch by batch, appending records."""
        from ..progress import progress_bar

        self._refuse_changed(stage, jobs)
        pending = [j for j in jobs if j["key"] not in self.stores[stage]]
        if not pending:
            return
        pending.sort(key=lambda j: (j["seed"], j["key"]))
        bs = self.cfg.batch_size or 64
        bar = progress_bar(total=len(pending), desc=stage, disable=not self.progress)
        for s in range(0, len(pending), bs):
            chunk = pending[s: s + bs]
            by_seed: dict[int, list[dict]] = {}
            for j in chunk:
                by_seed.setdefault(j["seed"], []).append(j)
            for seed, js in by_seed.items():
                gens = self._generate(js, self.gen_config(seed))
                items = [j["item"] for j in js]
                segs = [segment_generation(g, self.tokenizer(), self.thinking) for g in gens]
                outs = [s.answer_text if self.cfg.phase_scope == "answer" else g.output_text
                        for g, s in zip(gens, segs)]
                scores = self.task.score_many(items, outs)
                lenient = self.task.lenient_score_many(items, outs)
                for j, g, sc, le, seg, out in zip(js, gens, scores, lenient, segs, outs):
                    rec = self._record(stage, j, g, sc, le, seg, out)
                    if self.cfg.capture_cas and "cas" in g.extras:
                        rec.cas_file = save_cas(self.dir, j["key"], g.extras["cas"], g.extras["cas_spans"],
                                                g.extras["cas_span_len"])
                    self.stores[stage].append(rec)
            bar.update(len(chunk))
        bar.close()

    def _refuse_changed(self, stage: str, jobs: list[dict]) -> None:
        """Refuse to mix answers: a stored record of the same (item, condition, seed) under another key means its
        prompt (or what else the key covers) changed since it was written."""
        stored = {(r.item_id, r.condition if isinstance(r, ConstrainedRecord) else "baseline", r.seed): r
                  for r in self.typed(stage) if r.item_id}
        for j in jobs:
            cond = j["condition"].id if j.get("condition") else "baseline"
            old = stored.get((j["item"].id, cond, j["seed"]))
            if old is not None and old.key != j["key"]:
                what = "prompt" if old.prompt_ids != j["prompt"].input_ids else "generation settings"
                raise InterpError(f"{self.dir}: the {what} of {stage} item {j['item'].id} ({cond}, seed {j['seed']}) "
                                  f"changed since its record {old.key} was written (task prompt parts or code "
                                  "changed?); resuming would mix old and new answers: use a new --out folder")

    def _record(self, stage: str, job: dict, g, sc, le, seg: Segments,
                scoped: str) -> BaselineRecord | ConstrainedRecord:
        """One stored record; thinking fields (interp.models.thinking.Segments) only when there is a trace."""
        item: Item = job["item"]
        fields = dict(
            key=job["key"], model=self.cfg.model, model_label=self.cfg.model_label,
            model_revision=self.cfg.backend if self.http else getattr(self._model(), "revision", ""), task=self.cfg.task,
            domain=self.task.domain, item_id=item.id, item_input=item.input, seed=job["seed"],
            prompt_text=g.prompt.text, spans={k: list(v) for k, v in g.prompt.spans.items()},
            prompt_ids=g.prompt.input_ids, output_text=g.output_text, output_ids=g.output_ids,
            finish_reason=g.finish_reason, success=bool(sc.success), score_value=float(sc.value),
            prediction=None if sc.prediction is None else str(sc.prediction), score_detail=sc.detail,
            lenient_success=bool(le.success), gen_config=self.gen_config(job["seed"]).key_dict(),
            **(seg.to_record() if seg.state != "none" else {}))
        cond: Condition | None = job.get("condition")
        if cond is None:
            return BaselineRecord(**fields)
        checks = [c.check(scoped, judge=self.extractor if c.kind == "soft" else None)
                  for c in cond.constraints if c.kind == "hard" or self.extractor is not None]
        from ..constraints.ifeval import ifeval_checks  # IFEval's verdict beside ours (None: no equivalent)

        return ConstrainedRecord(
            **fields, **cond.to_dict(), baseline_key=job["baseline_key"],
            constraint_checks=[{"ok": c.ok, "reason": c.reason, "judge_output": c.judge_output} for c in checks],
            constraint_met=all(c.ok for c in checks) if checks else None,
            ifeval_checks=ifeval_checks(cond.constraints, scoped),
            error_type=error_type(sc.success, le.success, g.finish_reason, fields.get("thinking_state")))

    # ---- stages --------------------------------------------------------------------------------
    @_writer
    def run_baseline(self) -> list[dict]:
        jobs = [self._job("baseline", it, "baseline", seed, self.task.parts(it))
                for it in self.items() for seed in self.cfg.seeds]
        self._generate_and_store("baseline", jobs)
        return self.records("baseline")

    def baseline_successes(self) -> dict[str, BaselineRecord]:
        """item id -> the first successful baseline record (lowest seed) of that item."""
        out: dict[str, BaselineRecord] = {}
        ids = {it.id for it in self.items()}
        for r in sorted(self.typed("baseline"), key=lambda r: r.seed):
            if r.success and r.item_id in ids and r.item_id not in out:
                out[r.item_id] = r
        return out

    @_writer
    def run_constraints(self) -> list[dict]:
        succ = self.baseline_successes()
        store = self.stores["constraints"]
        items = {it.id: it for it in self.items()}
        todo = [(iid, r) for iid, r in succ.items()
                if record_key(base=r.key, types=self.cfg.types, soft=self.cfg.soft) not in store]
        if todo:
            self.log(f"extracting constraints for {len(todo)} items ...")
            ctxs = [ProposeContext(task_text=items[iid].input, domain=self.task.domain, seed=_seed_of(iid),
                                   extra={"extractor": self.extractor} if self.extractor else {}) for iid, _ in todo]
            cands = extract_constraints_many([self.scoped_text(r) for _, r in todo], ctxs, types=self.cfg.types,
                                             extractor=self.extractor, judge=self.extractor)
            for (iid, r), cs in zip(todo, cands):
                store.append(ConstraintsRecord(key=record_key(base=r.key, types=self.cfg.types, soft=self.cfg.soft),
                                               item_id=iid, baseline_key=r.key, candidates=[c.to_dict() for c in cs],
                                               n_proposed=sum(c.constraint is not None for c in cs),
                                               n_accepted=sum(c.accepted for c in cs)))
        return self.records("constraints")

    def conditions(self, item: Item, base: BaselineRecord, cons_rec: ConstraintsRecord) -> list[Condition]:
        """Single constraints (up to `per_type` per type), mixed K-sets and controls for one item."""
        from ..constraints.extract import Candidate

        cands = [c for c in map(Candidate.from_dict, cons_rec.candidates) if c.constraint is not None]
        acc = accepted_constraints(cands)
        conds: list[Condition] = []
        by_type: dict[str, list[Constraint]] = {}
        for c in sorted(acc, key=lambda c: (c.type, c.key)):
            by_type.setdefault(c.type, []).append(c)
        rng = random.Random(_seed_of(item.id, "types"))
        for t, cs in sorted(by_type.items()):
            for c in rng.sample(cs, min(self.cfg.per_type, len(cs))):
                conds.append(Condition(f"single:{t}:{c.key}", "single", t, c.kind, [c]))
        for k in self.cfg.k_values:
            if k < 2:
                continue
            s = sample_constraint_set(acc, k, _seed_of(item.id, "set", k), by_type="mixed",
                                      output=self.scoped_text(base), judge=self.extractor)
            if s:
                hard = {c.kind for c in s}
                conds.append(Condition(f"set:k{k}", "set", "mixed", hard.pop() if len(hard) == 1 else "mixed", s, k=k))
        singles = [c for c in conds if c.condition_kind == "single"]
        if "neutral" in self.cfg.controls and singles:
            ref = singles[_seed_of(item.id, "neutral") % len(singles)].constraints[0]
            text = neutral_control(ref.text, self.tokenizer(), seed=_seed_of(item.id))
            conds.append(Condition("control:neutral", "control", "neutral", "control", [], insert_texts=[text]))
        if "paraphrase" in self.cfg.controls:
            conds.append(Condition("control:paraphrase", "control", "paraphrase", "control", [],
                                   task_text=paraphrase_task(item.input, seed=_seed_of(item.id))))
        if "rerun" in self.cfg.controls:
            conds.append(Condition("control:rerun", "control", "rerun", "control", []))
        return conds

    def condition_parts(self, item: Item, cond: Condition) -> list[Part]:
        parts = self.task.parts(item)
        if cond.task_text is not None:
            parts = [Part(p.name, cond.task_text, p.role, p.sep) if p.name == "task" else p for p in parts]
        inserts: Sequence = cond.insert_texts or cond.constraints
        if inserts:
            parts = insert_constraints(parts, inserts, position=self.cfg.position)
        return parts

    @_writer
    def run_constrained(self) -> list[dict]:
        succ = self.baseline_successes()
        cons = {r.item_id: r for r in self.typed("constraints")}
        jobs = []
        for it in self.items():
            if it.id not in succ or it.id not in cons:
                continue
            for cond in self.conditions(it, succ[it.id], cons[it.id]):
                parts = self.condition_parts(it, cond)
                for seed in self.cfg.seeds:
                    s = seed + 1000 if cond.id == "control:rerun" and self.cfg.temperature > 0 else seed
                    job = self._job("constrained", it, cond.id, seed, parts, condition=cond,
                                    baseline_key=succ[it.id].key)
                    jobs.append({**job, "seed": s})
        self._generate_and_store("constrained", jobs)
        return self.records("constrained")

    def records(self, stage: str) -> list[dict]:
        return self.rundir.records(stage)

    def typed(self, stage: str) -> list:
        """A stage's records as `interp.records` classes."""
        return self.rundir.typed(stage)

    @_writer
    def run(self, report: bool = True):
        """Run (or resume) every stage, then write the report; returns the `SustainReport`."""
        base = self.run_baseline()
        n_succ = len(self.baseline_successes())
        self.log(f"baseline: {n_succ}/{len({r['item_id'] for r in base})} items solved")
        if n_succ == 0 and self.shard:
            self.log("no baseline successes in this shard; nothing more to run")
            shards.finish(self.dir)
            return None
        if n_succ == 0:
            raise InterpError(f"no baseline successes for {self.cfg.task} with {self.cfg.model} on "
                              f"{len(base)} runs: SustainScore is undefined; use more items or an easier task")
        self.run_constraints()
        self.run_constrained()
        if self.shard:
            shards.finish(self.dir)
        if not report:
            return None
        return write_report(self.dir)


def run_sustain(cfg: SustainConfig, out: str | Path, **kwargs):
    """Run or resume a SustainScore experiment into `out`; returns the `SustainReport`."""
    return SustainRun(cfg, out, **kwargs).run()
