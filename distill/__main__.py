"""`python -m distill ...`: every stage from the command line. The command names are a contract."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from distill.errors import ConfigError, DistillError


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args) or 0
    except DistillError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m distill",
                                     description="DLLM2Rec: distil an LLM recommender into a sequential student.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("synth", help="generate the deterministic synthetic catalogue (CSV)")
    p.add_argument("--out", required=True, help="directory for interactions.csv and items.csv")
    p.add_argument("--users", type=int, default=1000)
    p.add_argument("--items", type=int, default=1000)
    p.add_argument("--topics", type=int, default=20)
    p.add_argument("--min-interactions", type=int, default=20)
    p.add_argument("--max-interactions", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=cmd_synth)

    p = commands.add_parser("prepare", help="read interactions + titles, window and split them")
    p.add_argument("--format", help="csv, recbole, movielens or reference (default: recognised from the "
                   "file names when --input is a folder)")
    p.add_argument("--input", required=True, help="interactions file, or the folder of the dataset's files")
    p.add_argument("--items", help="items/titles file where the format needs one")
    p.add_argument("--out", required=True, help="prepared dataset directory")
    _prepare_option_flags(p)
    p.set_defaults(handler=cmd_prepare)

    p = commands.add_parser("export-reference", help="write the reference code's CSV files")
    p.add_argument("--data", required=True, help="prepared dataset directory")
    p.add_argument("--out", required=True)
    p.set_defaults(handler=cmd_export_reference)

    p = commands.add_parser("import-teacher", help="convert the reference code's teacher files")
    p.add_argument("--data", required=True, help="prepared dataset directory")
    p.add_argument("--ranks", required=True, help="myrank_train.txt")
    p.add_argument("--confidence", required=True, help="confidence_train.txt")
    p.add_argument("--embeddings", help="all_embeddings.pt (loaded with weights_only=True)")
    _budget_options(p)
    p.add_argument("--out", required=True, help="teacher artifacts directory")
    p.set_defaults(handler=cmd_import_teacher)

    p = commands.add_parser("teacher", help="compute a teacher's top-K lists and item embeddings")
    kinds = p.add_subparsers(dest="kind", required=True, metavar="KIND")
    t = kinds.add_parser("titles", help="TF-IDF title similarity (no model needed)")
    t.add_argument("--data", required=True)
    t.add_argument("--k", type=int, default=20)
    t.add_argument("--dim", type=int, default=256)
    _budget_options(t)
    t.add_argument("--out", required=True)
    t.set_defaults(handler=cmd_teacher_titles)
    t = kinds.add_parser("semantic", help="a local sentence encoder over the titles (CPU-friendly)")
    t.add_argument("--data", required=True)
    t.add_argument("--model", help="sentence-encoder directory (default: all-MiniLM-L6-v2 from its wheel)")
    t.add_argument("--k", type=int, default=20)
    t.add_argument("--exclude-history", action="store_true", help="rank the history's own items last")
    t.add_argument("--history", default="mean", choices=["mean", "text"],
                   help="mean of the items' vectors (fast) or the encoded concatenated titles")
    _budget_options(t)
    t.add_argument("--out", required=True)
    t.set_defaults(handler=cmd_teacher_semantic)
    t = kinds.add_parser("finetune", help="LoRA-fine-tune a causal LM on BIGRec prompts (writes an adapter)")
    t.add_argument("--data", required=True)
    t.add_argument("--model", help="causal-LM directory or cached hub id (default: SmolLM2-135M-Instruct, offline)")
    t.add_argument("--sample", type=int, default=1024, help="training instances sampled (BIGRec: 1,024)")
    t.add_argument("--val-sample", type=int, default=128, help="validation instances for early stopping")
    t.add_argument("--epochs", type=int, default=3)
    t.add_argument("--patience", type=int, default=1, help="epochs without a better val loss before stopping")
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--lr", type=float, default=1e-4)
    _prompt_options(t)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="auto")
    t.add_argument("--out", required=True, help="adapter directory")
    t.set_defaults(handler=cmd_teacher_finetune)
    t = kinds.add_parser("bigrec", help="BIGRec: generate the next title with a causal LM, ground it to items")
    t.add_argument("--data", required=True)
    t.add_argument("--model", help="base causal-LM directory or cached hub id (default: the adapter's base "
                   "model, else SmolLM2-135M-Instruct, offline)")
    t.add_argument("--adapter", help="LoRA adapter directory from `teacher finetune`")
    t.add_argument("--backend", default="hf", choices=["hf", "vllm", "openai"],
                   help="hf (transformers), vllm (offline engine) or openai (an OpenAI-compatible server: --url)")
    t.add_argument("--k", type=int, default=20)
    t.add_argument("--beams", type=int, default=4)
    t.add_argument("--max-new-tokens", type=int, default=32)
    t.add_argument("--batch", type=int, default=16, help="generation batch (hf backend)")
    t.add_argument("--block", type=int, default=256, help="instances per checkpoint / shard unit")
    t.add_argument("--limit", type=int, help="only the first N instances of each split (a smoke run)")
    t.add_argument("--eval-sample", type=int, metavar="N",
                   help="rank a recorded seeded sample of N val and N test instances (--budget-seed) for the "
                        "teacher's own metrics, instead of all of them")
    t.add_argument("--shard", help="i/n: compute shard i of n (from 1); join them with `teacher merge`")
    t.add_argument("--exclude-history", action="store_true", help="rank the history's own items last")
    t.add_argument("--device", default="auto")
    t.add_argument("--dtype", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    t.add_argument("--tensor-parallel", type=int, default=1, help="GPUs per model (vllm backend)")
    t.add_argument("--gpu-memory", type=float, default=0.9, help="GPU memory fraction (vllm backend)")
    t.add_argument("--latency-requests", type=int, default=16, help="single-history requests timed (0: none)")
    t.add_argument("--max-empty", type=float, default=0.5, help="largest share of empty generations accepted")
    _budget_options(t)
    server = t.add_argument_group("backend openai: an OpenAI-compatible server (vllm serve, ...)")
    server.add_argument("--url", help="the server's base URL, e.g. http://llm.internal:8000")
    server.add_argument("--served-model", help="the model name the server knows (default: --model's folder name)")
    server.add_argument("--api-key-env", help="environment variable holding the API key (the key is never stored)")
    server.add_argument("--grounding", choices=["local", "server"], default="local",
                        help="embed titles with the local base model (default) or the server's /v1/embeddings")
    server.add_argument("--embed-url", help="the pooling server's base URL for --grounding server (default --url)")
    server.add_argument("--embed-model", help="the pooling model's served name (default --served-model)")
    server.add_argument("--concurrency", type=int, default=4, help="requests in flight (default 4)")
    server.add_argument("--retries", type=int, default=3, help="attempts after the first, with backoff (default 3)")
    server.add_argument("--timeout", type=float, default=120.0, help="seconds per request (default 120)")
    server.add_argument("--request-budget", type=int, help="requests at most for this run (default: no limit)")
    _prompt_options(t, default=None)
    t.add_argument("--cache", help="teacher cache directory (default $DLLM2REC_HOME/teachers)")
    t.add_argument("--out", required=True)
    t.set_defaults(handler=cmd_teacher_bigrec)
    t = kinds.add_parser("merge", help="join `teacher bigrec --shard i/n` outputs into one artifacts directory")
    t.add_argument("shards", nargs="+", help="shard directories")
    t.add_argument("--data", required=True)
    t.add_argument("--cache", help="teacher cache directory (default $DLLM2REC_HOME/teachers)")
    t.add_argument("--out", required=True)
    t.set_defaults(handler=cmd_teacher_merge)
    t = kinds.add_parser("tiny-model", help="build a tiny random Llama + tokenizer for smoke tests (no download)")
    t.add_argument("--data", required=True, help="prepared dataset whose titles train the tokenizer")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", required=True)
    t.set_defaults(handler=cmd_teacher_tiny)

    p = commands.add_parser("train", help="train a student, optionally distilled from a teacher")
    p.add_argument("--data", required=True, help="prepared dataset directory")
    p.add_argument("--student", required=True, choices=["gru4rec", "sasrec", "dros", "caser"])
    p.add_argument("--teacher", help="teacher artifacts directory (enables DLLM2Rec)")
    p.add_argument("--epochs", type=int, help="maximum epochs (default 200, early stopping on val)")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", type=int, default=1, metavar="N",
                       help="train N students, seeds SEED..SEED+N-1 (at most 20), into OUT/seed-<s>/ with their "
                       "mean and 95%% t interval in OUT/seeds.json (default 1: OUT is the run directory)")
    seeds.add_argument("--seed-list", metavar="S,S,...", help="the seeds to train, e.g. 3,4,5 (instead of --seeds)")
    p.add_argument("--baseline", metavar="DIR",
                   help="with --teacher: plain students trained on the same data (a run directory or a --seeds "
                   "directory); writes OUT/comparison.json, the paired test over test users")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any training option, e.g. --set lam=auto --set ed_weight=0.2")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    p.set_defaults(handler=cmd_train)

    p = commands.add_parser("sweep", help="train one distilled student per grid or random point, the best chosen on val")
    p.add_argument("--data", required=True, help="prepared dataset directory")
    p.add_argument("--teacher", required=True, help="teacher artifacts directory (computed once, beforehand)")
    points = p.add_mutually_exclusive_group(required=True)
    points.add_argument("--grid", action="append", metavar="KEY=V,V,...",
                        help="one option's values, e.g. --grid lam=0,0.3,0.7 --grid student=sasrec,dros; the "
                        "points are every combination (at most 64)")
    points.add_argument("--random", type=int, metavar="N", help="N distinct points drawn from --space (at most 64)")
    p.add_argument("--space", metavar="JSONFILE", help='with --random: {"option": [choices] | {"low": a, "high": b'
                   '[, "log": true | "int": true]}, ...}')
    p.add_argument("--random-seed", type=int, default=0, metavar="S", help="seed of the --random draw (default 0)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a training option of every point, e.g. --set epochs=5 (a point's own value wins)")
    p.add_argument("--seeds", type=int, default=1, metavar="N",
                   help="students per point, seeds SEED..SEED+N-1 (SEED from --set seed=S, default 0; at most 20); "
                   "their mean is the point's value (default 1)")
    p.add_argument("--metric", default="ndcg@20", help="the val metric that picks the best point (default ndcg@20)")
    p.add_argument("--out", required=True, help="sweep directory: point-<i>/ runs and sweep.json (a rerun "
                   "reuses complete points)")
    p.add_argument("--quiet", action="store_true", help="only the table: no progress or per-epoch lines")
    p.set_defaults(handler=cmd_sweep)

    p = commands.add_parser("recommend", help="top-k items for a history from a trained run")
    p.add_argument("--run", required=True, help="run directory written by `train`")
    p.add_argument("--history", required=True, help="comma-separated item ids as in the input data")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--include-history", action="store_true", help="allow items already in the history")
    p.set_defaults(handler=cmd_recommend)

    p = commands.add_parser("export", help="a trained run as ONNX or TorchScript with items, model card and serve.py")
    p.add_argument("--run", required=True, help="run directory written by `train`")
    p.add_argument("--format", required=True, metavar="FORMAT", help="onnx or torchscript")
    p.add_argument("--out", required=True, help="export directory (replaced only once the export is checked)")
    p.add_argument("--data", help="the prepared dataset the run was trained on; its test histories check the "
                   "export (default: data/ beside the run or its seeds folder, when its hash matches)")
    p.add_argument("--k", type=int, default=20, help="items the model answers, fixed at export (default 20)")
    p.add_argument("--uncertainty", metavar="SEEDS_JSON", help="seeds.json of `train --seeds N`: the metrics' "
                   "95%% intervals for the model card")
    p.add_argument("--name", help="the dataset's name for the model card")
    p.set_defaults(handler=cmd_export)

    p = commands.add_parser("bench", help="a trained run's inference latency (p50/p95, throughput)")
    p.add_argument("--run", help="run directory written by `train`")
    p.add_argument("--data", help="prepared dataset for --run (its test histories are the requests)")
    p.add_argument("--ml100k", help=argparse.SUPPRESS)  # moved: python bench/training_bench.py --ml100k DIR
    p.add_argument("--quick", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", help="write the result as JSON here")
    p.set_defaults(handler=cmd_bench)

    p = commands.add_parser("demo", help="the whole pipeline: prepare, teacher, baseline and distilled student")
    p.add_argument("--out", required=True, help="work directory (stages already there are skipped)")
    p.add_argument("--data", help="input data (default: the synthetic catalogue)")
    p.add_argument("--format", default="csv")
    p.add_argument("--items")
    p.add_argument("--student", default="sasrec", choices=["gru4rec", "sasrec", "dros", "caser"])
    p.add_argument("--teacher", default="titles", choices=["titles", "semantic"])
    p.add_argument("--teacher-model", help="sentence-encoder directory for --teacher semantic")
    p.add_argument("--seeds", type=int, default=1, metavar="N",
                   help="students per role, seeds 0..N-1 (or from --set seed=S), at most 20; the summary shows "
                   "their mean and 95%% t interval (default 1, the quick demo: the comparison's interval then "
                   "reflects the test users only, not the training noise)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(handler=cmd_demo)
    return parser


def cmd_synth(args) -> None:
    from distill.data.synth import generate_synthetic
    summary = generate_synthetic(args.out, users=args.users, items=args.items, topics=args.topics,
                                 interactions_per_user=(args.min_interactions, args.max_interactions),
                                 seed=args.seed)
    print(json.dumps(summary, default=str))


def _prepare_option_flags(parser) -> None:
    """One flag per prepare option (--max-len, --split, ..., --sep), from the library's schema, so
    the command line and the web service share the options and their bounds."""
    from distill.data.prepare import prepare_fields
    for field in prepare_fields():
        default = "none" if field["default"] is None else field["default"]
        extra = f"; one of {', '.join(field['choices'])}" if field["choices"] else ""
        if field["min"] is not None:
            extra += f"; {field['min']}..{field['max']}"
        metavar = field["type"].upper() if not field["choices"] else "{" + ",".join(field["choices"]) + "}"
        parser.add_argument("--" + field["name"].replace("_", "-"), dest=field["name"], metavar=metavar,
                            help=f"{field['help']} (default {default}{extra})".replace("%", "%%"))


def cmd_prepare(args) -> None:
    from distill.data import PrepareOptions, prepare_dataset
    from distill.data.prepare import prepare_fields
    options = PrepareOptions.from_form({field["name"]: getattr(args, field["name"]) for field in prepare_fields()
                                        if getattr(args, field["name"]) is not None})
    dataset = prepare_dataset(args.format, args.input, args.out, items=args.items, options=options)
    print(json.dumps({k: dataset.stats[k] for k in ("format", "users", "items", "interactions", "instances",
                                                     "content_hash")}))


def cmd_export_reference(args) -> None:
    from distill.data import PreparedDataset, export_reference
    export_reference(PreparedDataset.load(args.data), args.out)
    print(f"wrote {args.out}")


def cmd_import_teacher(args) -> None:
    from distill.data import PreparedDataset
    from distill.teacher import import_reference
    dataset = PreparedDataset.load(args.data)
    artifacts = import_reference(dataset, args.ranks, args.confidence, args.embeddings, args.out,
                                 **_budget(args))
    print(f"wrote {args.out}: top-{artifacts.k} lists, embedding dim {artifacts.dim}{_budget_note(artifacts.meta)}")


def _budget_options(parser) -> None:
    from distill.teacher.budget import BUDGET_RULES
    parser.add_argument("--budget", metavar="N|FRACTION",
                        help="rank only part of the training instances: a count (2000) or a fraction (0.1); the "
                        "student distils rankings on those and item embeddings everywhere (default: all)")
    parser.add_argument("--budget-rule", default="random", choices=BUDGET_RULES,
                        help="which instances the budget ranks: random (seeded), recent (each user's latest "
                        "first) or uncertain (where a quick plain student is least sure first)")
    parser.add_argument("--budget-seed", type=int, default=0, help="seed of the budget rule (default 0)")


def _budget(args) -> dict:
    """The teacher options of --budget/--budget-rule/--budget-seed (none without --budget)."""
    from distill.teacher.budget import parse_budget_text
    if args.budget is None:
        return {}
    return {"budget": parse_budget_text(args.budget), "budget_rule": args.budget_rule, "budget_seed": args.budget_seed}


def _budget_note(meta: dict) -> str:
    record = meta.get("budget")
    if not record:
        return ""
    return (f"; ranked {record['ranked']:,} of {record['instances']:,} training instances "
            f"(budget {record['budget']}, rule {record['rule']}, seed {record['seed']})")


def cmd_teacher_titles(args) -> None:
    _build_teacher(args, "titles", k=args.k, dim=args.dim, **_budget(args))


def cmd_teacher_semantic(args) -> None:
    _build_teacher(args, "semantic", model=args.model, k=args.k, exclude_history=args.exclude_history,
                   history=args.history, **_budget(args))


def _build_teacher(args, kind: str, cache=None, **options) -> None:
    """Compute a teacher through the registry, then print its metrics beside most-popular."""
    from distill.data import PreparedDataset
    from distill.io import read_json
    from distill.teacher import build_teacher
    dataset = PreparedDataset.load(args.data)
    out = build_teacher(kind, dataset, args.out, cache=cache, log=print if kind == "bigrec" else None, **options)
    _print_teacher(read_json(out / "metrics.json"), dataset, args.out)
    if options.get("budget") is not None:
        print(_budget_note(read_json(out / "teacher.json")).removeprefix("; "))


def _prompt_options(parser, default: str | None = "neutral") -> None:
    parser.add_argument("--style", default=default, choices=["neutral", "movies", "video games"],
                        help="item noun and verb of the prompt" + ("" if default else " (default: the adapter's)"))
    parser.add_argument("--template", help="file with a custom prompt template containing {instruction} and {input}")


def _template(args) -> str | None:
    if args.template is None:
        return None
    try:
        return Path(args.template).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--template {args.template}: cannot read it ({exc.strerror})") from None


def cmd_teacher_finetune(args) -> None:
    from distill.data import PreparedDataset
    from distill.teacher.finetune import FinetuneOptions, finetune
    options = FinetuneOptions(sample=args.sample, val_sample=args.val_sample, epochs=args.epochs,
                              patience=args.patience, batch=args.batch, lr=args.lr, style=args.style,
                              template=_template(args), seed=args.seed, device=args.device)
    record = finetune(PreparedDataset.load(args.data), args.out, args.model, options, log=print)
    print(f"wrote {args.out}: LoRA adapter from epoch {record['best_epoch']} (val loss {record['best_val_loss']:.4f})")


def cmd_teacher_bigrec(args) -> None:
    from distill.teacher.bigrec import parse_shard
    options = dict(backend=args.backend, model=args.model, adapter=args.adapter, k=args.k, beams=args.beams,
                   max_new_tokens=args.max_new_tokens, batch=args.batch, block=args.block, style=args.style,
                   template=_template(args), exclude_history=args.exclude_history, limit=args.limit,
                   device=args.device, dtype=args.dtype, tensor_parallel=args.tensor_parallel,
                   gpu_memory=args.gpu_memory, latency_requests=args.latency_requests, max_empty=args.max_empty,
                   eval_sample=args.eval_sample, **_budget(args))
    if args.backend == "openai":
        options.update(url=args.url, served_model=args.served_model, api_key_env=args.api_key_env,
                       grounding=args.grounding, embed_url=args.embed_url, embed_model=args.embed_model,
                       concurrency=args.concurrency, retries=args.retries, timeout=args.timeout,
                       request_budget=args.request_budget)
    shard = parse_shard(args.shard)
    if shard is None:
        _build_teacher(args, "bigrec", cache=args.cache, **options)
        return
    # One shard is not a teacher yet (`teacher merge` makes one): computed outside the registry.
    from distill.data import PreparedDataset
    from distill.teacher.bigrec import bigrec_teacher
    from distill.teacher.registry import bigrec_arguments
    model, adapter, bigrec_options = bigrec_arguments(options)
    bigrec_teacher(PreparedDataset.load(args.data), args.out, model, adapter, bigrec_options, shard, args.cache,
                   log=print)


def cmd_teacher_merge(args) -> None:
    from distill.data import PreparedDataset
    from distill.io import read_json
    from distill.teacher.bigrec import merge_shards
    dataset = PreparedDataset.load(args.data)
    merge_shards(dataset, args.shards, args.out, args.cache)
    _print_teacher(read_json(f"{args.out}/metrics.json"), dataset, args.out)


def cmd_teacher_tiny(args) -> None:
    from distill.data import PreparedDataset
    from distill.teacher.tiny import build_tiny_llm
    build_tiny_llm(args.out, PreparedDataset.load(args.data).titles, seed=args.seed)
    print(f"wrote {args.out}")


def _print_teacher(report: dict, dataset, out) -> None:
    from distill.evaluate import most_popular_metrics
    chance = 20 / dataset.num_items
    for split in ("val", "test"):
        if split not in report:
            continue
        m = report[split]
        popular = most_popular_metrics(dataset.train, dataset.split(split), dataset.num_items)
        shown = "  ".join(f"{name} {m.get(name, float('nan')):.4f}" for name in ("hr@10", "ndcg@10", "hr@20", "ndcg@20"))
        print(f"teacher {split}: {shown}  (most popular hr@20 {popular['hr@20']:.4f}, random hr@20 {chance:.4f})")
    print(f"wrote {out}")


def cmd_train(args) -> None:
    from distill.config import TrainConfig, parse_set_options
    from distill.data import PreparedDataset
    from distill.teacher import TeacherArtifacts
    from distill.recipe import run_dirs
    from distill.rundir import save_run
    from distill.train import Callbacks, train
    options = {"student": args.student, **parse_set_options(args.set)}
    if args.epochs is not None:
        options["epochs"] = args.epochs
    if args.seed is not None:
        options["seed"] = args.seed
    config = TrainConfig.from_options(options)
    seeds = _seed_list(args, config.seed)
    if args.baseline and not args.teacher:
        raise ConfigError("--baseline compares distilled students with plain ones: give --teacher TDIR too")
    baseline_dirs = run_dirs(args.baseline) if args.baseline else None
    dataset = PreparedDataset.load(args.data)

    def on_epoch(record):
        metrics = record.get(config.selection, {})
        print(f"epoch {record['epoch']:3d}  lam {record['lam']:.1f}  loss {record['loss']:.4f}  "
              f"{config.selection} ndcg@20 {metrics.get('ndcg@20', 0):.4f}  hr@20 {metrics.get('hr@20', 0):.4f}  "
              f"{record['seconds']:.1f}s", flush=True)

    callbacks = Callbacks(on_epoch=None if args.quiet else on_epoch)
    if seeds is not None:
        _train_several_seeds(args, dataset, config, seeds, callbacks, baseline_dirs)
        return
    teacher = TeacherArtifacts.load(args.teacher, dataset) if args.teacher else None
    result = train(dataset, config, teacher, callbacks)
    metrics = save_run(result, dataset, args.out, teacher)
    print(f"best epoch {result.best_epoch} (lambda_d {result.lam})")
    if result.lam_auto is not None:
        print(f"lam=auto: chose lambda_d={result.lam} on val; val ndcg@20 per lambda_d "
              f"{json.dumps(result.lam_auto['val_ndcg@20'])}")
        if result.lam == 0:
            print("warning: no lambda_d beat the baseline student on val; the saved student is the baseline one")
    elif teacher is not None:
        print(f"note: lambda_d fixed at {result.lam}; this student was not compared with the baseline one. "
              "--set lam=auto trains both and keeps the better on val")
    for split in ("val", "test"):
        m = metrics[split]
        print(f"{split}: hr@10 {m['hr@10']:.4f}  ndcg@10 {m['ndcg@10']:.4f}  "
              f"hr@20 {m['hr@20']:.4f}  ndcg@20 {m['ndcg@20']:.4f}")
    if baseline_dirs:
        _write_comparison(args, dataset, [Path(args.out)], baseline_dirs)
    print(f"wrote {args.out}")


def _seed_list(args, first: int) -> list[int] | None:
    """The seeds of `train --seeds N` / `--seed-list`, None for the one-run layout (one seed, no list)."""
    from distill.recipe import check_seeds
    if args.seed_list is None:
        return None if args.seeds == 1 else check_seeds(range(first, first + args.seeds))
    if args.seed is not None:
        raise ConfigError("--seed-list names every seed: drop --seed")
    try:
        seeds = [int(part) for part in args.seed_list.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"--seed-list {args.seed_list}: give whole numbers separated by commas, e.g. 3,4,5") from None
    return check_seeds(seeds)


def _train_several_seeds(args, dataset, config, seeds: list[int], callbacks, baseline_dirs: list | None) -> None:
    """One student per seed into OUT/seed-<s>/ (lam=auto: one lambda_d for all, on the mean val),
    their mean and t interval in OUT/seeds.json."""
    from distill.io import write_json
    from distill.recipe import seed_dir, seed_summary, train_role
    _, metrics = train_role(dataset, config, Path(args.teacher) if args.teacher else None, args.out, seeds,
                            callbacks, log=print)
    for seed, m in zip(seeds, metrics):
        print(f"seed {seed}: best epoch {m['best_epoch']} (lambda_d {m['lam']})  test hr@20 {m['test']['hr@20']:.4f}  "
              f"ndcg@20 {m['test']['ndcg@20']:.4f}")
    summary = seed_summary(metrics)
    write_json(Path(args.out) / "seeds.json", summary)
    for split in ("val", "test"):
        shown = "  ".join(f"{name} {u['mean']:.4f} [95% CI {u['ci95'][0]:.4f}, {u['ci95'][1]:.4f}]"
                          for name, u in summary["uncertainty"][split].items() if name in ("hr@20", "ndcg@20"))
        print(f"{split}, t interval over {len(seeds)} seeds: {shown}")
    if baseline_dirs:
        _write_comparison(args, dataset, [seed_dir(args.out, s) for s in seeds], baseline_dirs)
    written = [seed_dir(args.out, s).name for s in seeds] + ["seeds.json"] + ["comparison.json"] * bool(baseline_dirs)
    print(f"wrote {args.out}: {', '.join(written)}")


def _write_comparison(args, dataset, distilled_dirs: list, baseline_dirs: list) -> None:
    """OUT/comparison.json: these distilled students against the --baseline ones and the teacher."""
    from distill.io import write_json
    from distill.pipeline import format_verdict
    from distill.recipe import compare_students
    comparison = compare_students(dataset, distilled_dirs, baseline_dirs, Path(args.teacher))
    write_json(Path(args.out) / "comparison.json", comparison)
    print(format_verdict(comparison, args.student))


def cmd_sweep(args) -> None:
    from distill.config import parse_set_options
    from distill.data import PreparedDataset
    from distill.recipe import MAX_SEEDS, check_seeds
    from distill.sweep import SWEEP_FILE, expand_grid, format_table, parse_grid_args, random_points, run_sweep
    from distill.train import Callbacks
    base = parse_set_options(args.set)
    try:
        first = int(base.pop("seed", 0))
    except ValueError:
        raise ConfigError("--set seed=S: S must be a whole number (the first of the --seeds N seeds)") from None
    if not 1 <= args.seeds <= MAX_SEEDS:
        raise ConfigError(f"--seeds {args.seeds}: give 1 to {MAX_SEEDS} students per point")
    seeds = check_seeds(range(first, first + args.seeds))
    if args.random is not None:
        if not args.space:
            raise ConfigError("--random N draws from a space: give --space FILE, a JSON object such as "
                              '{"lam": {"low": 0, "high": 1}, "student": ["sasrec", "dros"]}')
        try:
            space = json.loads(Path(args.space).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"--space {args.space}: cannot read it ({exc.strerror})") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"--space {args.space}: not valid JSON ({exc})") from None
        points = random_points(space, args.random, args.random_seed)
    else:
        if args.space:
            raise ConfigError("--space is the space of --random N: give --random N too, or drop --space")
        points = expand_grid(parse_grid_args(args.grid))

    def on_epoch(record):
        metrics = record.get("val", record.get("test", {}))
        print(f"  epoch {record['epoch']:3d}  lam {record['lam']:.1f}  loss {record['loss']:.4f}  "
              f"ndcg@20 {metrics.get('ndcg@20', 0):.4f}  hr@20 {metrics.get('hr@20', 0):.4f}  "
              f"{record['seconds']:.1f}s", flush=True)

    sweep = run_sweep(PreparedDataset.load(args.data), Path(args.teacher), points, base, args.out, seeds=seeds,
                      metric=args.metric, log=None if args.quiet else print,
                      callbacks=None if args.quiet else Callbacks(on_epoch=on_epoch))
    print(format_table(sweep))
    print(f"wrote {Path(args.out) / SWEEP_FILE}")


def cmd_recommend(args) -> None:
    from distill.inference import TrainedStudent
    student = TrainedStudent.load(args.run)
    history = [part.strip() for part in args.history.split(",") if part.strip()]
    items, scores = student.recommend(history, args.k, exclude_history=not args.include_history)
    titles = dict(zip(student.item_ids, student.titles))
    print(json.dumps({"items": items, "scores": [round(s, 6) for s in scores],
                      "titles": [titles[i] for i in items]}))


def cmd_export(args) -> None:
    from distill.export import export_run, find_dataset
    from distill.io import read_json
    data = args.data or find_dataset(args.run)
    if data is None:
        raise ConfigError(f"export --run {args.run}: give --data DIR, the prepared dataset the run was trained on "
                          "(its test histories check the export)")
    uncertainty = read_json(args.uncertainty) if args.uncertainty else None
    card = export_run(args.run, data, args.format, args.out, k=args.k, uncertainty=uncertainty, name=args.name)
    latency, runtime = card["latency"], card["interface"]["runtime"]
    print(f"checked on {card['check']['histories']} {card['check']['split']} histories (largest score difference "
          f"{card['check']['max_abs_score_diff']:.2g}); p50 per request: torch {latency['torch']['p50_ms']:.3f} ms, "
          f"{runtime} {latency[runtime]['p50_ms']:.3f} ms")
    print(f"wrote {args.out}: {card['interface']['file']}, items.json, model_card.md, model_card.json, serve.py")


def cmd_bench(args) -> None:
    if args.run is None:
        if args.ml100k or args.quick:
            raise ConfigError("the training benchmark moved out of the library: run `python bench/training_bench.py "
                              "--ml100k DIR --out FILE` (or `make bench`) from the repository")
        raise ConfigError("bench needs --run RUN --data DATA (a trained run and the prepared dataset whose test "
                          "histories are the requests); the training benchmark is `python bench/training_bench.py`")
    if not args.data:
        raise ConfigError("bench --run needs --data DIR (the prepared dataset whose test histories are the requests)")
    from distill.data import PreparedDataset
    from distill.inference import TrainedStudent
    from distill.latency import student_latency
    student = TrainedStudent.load(args.run)
    result = student_latency(student.model, PreparedDataset.load(args.data).test)
    print(json.dumps(result))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


def cmd_demo(args) -> None:
    from distill.config import parse_set_options
    from distill.pipeline import PipelineOptions, run_pipeline
    run_pipeline(args.out, PipelineOptions(data=args.data, format=args.format, items=args.items,
                                           student=args.student, overrides=parse_set_options(args.set),
                                           teacher=args.teacher, teacher_model=args.teacher_model,
                                           seeds=args.seeds))


if __name__ == "__main__":
    sys.exit(main())
